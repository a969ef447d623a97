"""Counting tokens the way the embedder does, to size chunks (the tokenizer alone is cheap)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache


@lru_cache(maxsize=1)
def wordpiece_counter() -> Callable[[str], int]:
    """all-MiniLM-L6-v2's WordPiece token count of a text (no [CLS]/[SEP])."""
    from tokenizers import Tokenizer

    from app.rag.embedder import tokenizer_path

    tokenizer = Tokenizer.from_file(str(tokenizer_path()))
    # The shipped tokenizer.json pads and truncates to 128: a counter must see the real length.
    tokenizer.no_padding()
    tokenizer.no_truncation()

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count
