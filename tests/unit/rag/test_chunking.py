"""Blocks → chunks: sections kept apart, sizes bounded, overlap where a section is cut."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest

from app.rag.chunking import Chunk, approx_tokens, chunk_document
from app.rag.parsing import Block, ParsedDocument, parse_document


def words(text: str) -> int:
    return len(text.split())


def sentence(tag: str, length: int) -> str:
    """A sentence of `length` words, every word unique so overlaps can be located exactly."""
    return " ".join([f"S{tag}"] + [f"{tag}w{i}" for i in range(1, length - 1)] + [f"{tag}end."])


def paragraph(tag: str, lengths: list[int]) -> str:
    return " ".join(sentence(f"{tag}s{i}", n) for i, n in enumerate(lengths))


def doc(*blocks: Block) -> ParsedDocument:
    return ParsedDocument(list(blocks), None, None)


def overlap(previous: Chunk, following: Chunk) -> int:
    """How many words `following` repeats from the end of `previous`."""
    a, b = previous.text.split(), following.text.split()
    return max((n for n in range(1, min(len(a), len(b)) + 1) if a[-n:] == b[:n]), default=0)


def without_overlaps(chunks: list[Chunk]) -> list[str]:
    out = chunks[0].text.split()
    for previous, following in zip(chunks, chunks[1:], strict=False):
        out += following.text.split()[overlap(previous, following) :]
    return out


def long_section(
    tag: str,
    heading: str,
    sentences: int = 60,
    seed: int = 7,
    *,
    per_block: int = 6,
    longest: int = 30,
) -> list[Block]:
    """Paragraphs of 1-`per_block` sentences of 6-`longest` words under one heading."""
    rng = random.Random(seed)
    blocks: list[Block] = []
    made = 0
    while made < sentences:
        count = min(rng.randint(1, per_block), sentences - made)
        lengths = [rng.randint(6, longest) for _ in range(count)]
        blocks.append(Block(paragraph(f"{tag}p{len(blocks)}", lengths), (heading,)))
        made += count
    return blocks


def test_sections_are_never_mixed_and_positions_are_sequential() -> None:
    document = doc(
        *long_section("a", "Returns"),
        Block("Gift cards cannot be returned.", ("Returns", "Exceptions")),
        *long_section("b", "Shipping", seed=3),
    )
    chunks = chunk_document(document, count_tokens=words)

    assert [c.position for c in chunks] == list(range(len(chunks)))
    runs = [heading for heading, _ in itertools.groupby(c.heading for c in chunks)]
    assert runs == ["Returns", "Returns › Exceptions", "Shipping"]  # in order, never interleaved
    prefixes = {"Returns": ("Sa", "a"), "Shipping": ("Sb", "b")}
    for chunk in chunks:
        if chunk.heading == "Returns › Exceptions":
            assert chunk.text == "Gift cards cannot be returned."
        else:
            assert chunk.heading is not None
            assert all(w.startswith(prefixes[chunk.heading]) for w in chunk.text.split())


@pytest.mark.parametrize("count", [words, approx_tokens])
@pytest.mark.parametrize(("max_tokens", "overlap_tokens"), [(200, 40), (60, 20), (25, 40)])
def test_no_chunk_exceeds_max_tokens(
    count: Callable[[str], int], max_tokens: int, overlap_tokens: int
) -> None:
    document = doc(*long_section("a", "A", sentences=120), *long_section("b", "B", seed=11))
    chunks = chunk_document(
        document, count_tokens=count, max_tokens=max_tokens, overlap_tokens=overlap_tokens
    )

    assert chunks
    for chunk in chunks:
        assert chunk.token_count == count(chunk.text) <= max_tokens


def test_consecutive_chunks_of_a_section_overlap_and_lose_nothing() -> None:
    # Paragraphs of at most 60 words: each fits in a chunk beside a 30-word overlap.
    blocks = long_section("a", "A", sentences=80, per_block=3, longest=20)
    chunks = chunk_document(doc(*blocks), count_tokens=words, max_tokens=120, overlap_tokens=30)

    assert len(chunks) > 3
    overlaps = [overlap(p, f) for p, f in zip(chunks, chunks[1:], strict=False)]
    assert all(0 < n <= 60 for n in overlaps), overlaps  # present, never over half of max
    assert sum(overlaps) / len(overlaps) >= 15  # about the overlap asked for
    for previous, following in zip(chunks, chunks[1:], strict=False):
        repeated = following.text.split()[: overlap(previous, following)]
        assert repeated[0].startswith("Sa")  # the overlap is whole sentences
    assert without_overlaps(chunks) == " ".join(b.text for b in blocks).split()


def test_no_overlap_across_sections() -> None:
    chunks = chunk_document(
        doc(*long_section("a", "A"), *long_section("b", "B", seed=5)), count_tokens=words
    )
    first_b = next(i for i, c in enumerate(chunks) if c.heading == "B")
    assert chunks[first_b].text.split()[0] == "Sbp0s0"


def test_overlap_never_exceeds_half_of_max_tokens() -> None:
    blocks = long_section("a", "A", sentences=80)
    chunks = chunk_document(doc(*blocks), count_tokens=words, max_tokens=60, overlap_tokens=500)
    assert all(overlap(p, f) <= 30 for p, f in zip(chunks, chunks[1:], strict=False))


def test_blocks_that_fit_are_kept_whole() -> None:
    blocks = [Block(paragraph(f"p{i}", [12, 15, 9]), ("A",)) for i in range(12)]  # 36 words each
    chunks = chunk_document(doc(*blocks), count_tokens=words, max_tokens=100, overlap_tokens=0)

    assert len(chunks) == 6
    for chunk in chunks:
        assert all(part in {b.text for b in blocks} for part in chunk.text.split("\n\n"))


def test_list_items_and_rows_are_one_per_line() -> None:
    document = doc(
        Block("Bring these.", ("A",)),
        Block("receipt", ("A",), "list_item"),
        Block("card", ("A",), "list_item"),
        Block("Plan | Price", ("A",), "table_row"),
        Block("Basic | $10", ("A",), "table_row"),
    )
    [chunk] = chunk_document(document, count_tokens=words)
    assert chunk.text == "Bring these.\n\nreceipt\ncard\n\nPlan | Price\nBasic | $10"


def test_tiny_tail_joins_the_previous_chunk_when_it_fits() -> None:
    # approx_tokens summed per sentence overestimates; the real count of the joined text fits.
    blocks = [Block(" ".join(sentence(f"t{i}", 5) for i in range(30)), ("A",))]
    chunks = chunk_document(
        doc(*blocks), count_tokens=approx_tokens, max_tokens=200, overlap_tokens=0
    )
    assert len(chunks) == 1
    assert chunks[0].token_count == approx_tokens(blocks[0].text) <= 200


def test_tiny_tail_takes_sentences_when_it_cannot_join() -> None:
    text = " ".join(sentence(f"t{i}", 5) for i in range(41))  # 205 words
    chunks = chunk_document(
        doc(Block(text, ("A",))), count_tokens=words, max_tokens=200, overlap_tokens=0
    )
    assert [c.token_count for c in chunks] == [185, 20]


def test_a_paragraph_that_fills_a_chunk_stays_whole_at_the_cost_of_overlap() -> None:
    first = Block(paragraph("a", [20, 20, 20]), ("A",))
    second = Block(paragraph("b", [30, 30, 30, 25]), ("A",))  # 115 of 120: no room for more
    chunks = chunk_document(
        doc(first, second), count_tokens=words, max_tokens=120, overlap_tokens=30
    )
    assert [c.text for c in chunks] == [first.text, second.text]


def test_tiny_section_of_its_own_is_kept() -> None:
    chunks = chunk_document(
        doc(Block("Closed on Sundays.", ("Hours",)), *long_section("a", "A")), count_tokens=words
    )
    assert chunks[0] == Chunk(0, "Hours", "Closed on Sundays.", 3)


def test_a_thousand_word_sentence_is_cut_at_words() -> None:
    text = " ".join(f"w{i}" for i in range(1000)) + "."
    chunks = chunk_document(doc(Block(text, ("A",))), count_tokens=words)

    assert len(chunks) > 5
    assert all(c.token_count <= 200 for c in chunks)
    assert all(overlap(p, f) > 0 for p, f in zip(chunks, chunks[1:], strict=False))
    assert without_overlaps(chunks) == text.split()  # no word lost, split or repeated


def test_a_giant_word_is_cut_by_characters() -> None:
    def characters(text: str) -> int:  # a tokenizer that sees every 4 characters as a token
        return sum(-(-len(word) // 4) for word in text.split())

    blob = "x" * 2000
    chunks = chunk_document(
        doc(Block(f"Key: {blob} end", ())), count_tokens=characters, max_tokens=100
    )
    assert all(c.token_count <= 100 for c in chunks)
    assert "".join(c.text for c in chunks).count("x") >= 2000


def test_abbreviations_do_not_end_sentences() -> None:
    text = " ".join(
        f"Dr. Smith sees patient number {i} at 9 a.m. on weekdays, e.g. Monday." for i in range(30)
    )
    chunks = chunk_document(
        doc(Block(text, ())), count_tokens=words, max_tokens=40, overlap_tokens=10
    )
    assert len(chunks) > 3
    assert all(c.text.startswith("Dr. Smith") for c in chunks)
    assert all(c.text.endswith("Monday.") for c in chunks)


def test_heading_is_separate_from_the_text_and_none_above_the_first_heading() -> None:
    chunks = chunk_document(
        doc(Block("Intro words here.", ()), Block("Refunds take five days.", ("Returns", "Time"))),
        count_tokens=words,
    )
    assert chunks == [
        Chunk(0, None, "Intro words here.", 3),
        Chunk(1, "Returns › Time", "Refunds take five days.", 4),
    ]


def test_chunking_is_deterministic() -> None:
    document = doc(*long_section("a", "A"), *long_section("b", "B", seed=2))
    first = chunk_document(document, count_tokens=approx_tokens, max_tokens=80)
    assert first == chunk_document(document, count_tokens=approx_tokens, max_tokens=80)


def test_count_tokens_is_called_linearly() -> None:
    calls = 0

    def counting(text: str) -> int:
        nonlocal calls
        calls += 1
        return words(text)

    blocks = long_section("a", "A", sentences=600)
    chunks = chunk_document(doc(*blocks), count_tokens=counting)
    # Once per sentence, once per chunk, and at most once more for the section's tail.
    assert calls <= 600 + len(chunks) + 1


def test_empty_document_and_bad_limits() -> None:
    assert chunk_document(doc(), count_tokens=words) == []
    with pytest.raises(ValueError):
        chunk_document(doc(), count_tokens=words, max_tokens=0)
    with pytest.raises(ValueError):
        chunk_document(doc(), count_tokens=words, overlap_tokens=-1)


def test_approx_tokens() -> None:
    assert approx_tokens("") == 0
    assert approx_tokens("one") == 2
    assert approx_tokens(" ".join(["w"] * 10)) == 13
    assert approx_tokens(" ".join(["w"] * 100)) == 130


def test_parsed_markdown_chunks_carry_their_headings() -> None:
    body = " ".join(f"Sentence number {i} explains the refund rules in detail." for i in range(40))
    markdown = f"# Returns\n\n{body}\n\n## Exceptions\n\nGift cards are final.\n"
    chunks = chunk_document(parse_document(markdown.encode(), "kb.md"), count_tokens=words)

    assert {c.heading for c in chunks} == {"Returns", "Returns › Exceptions"}
    assert chunks[-1] == Chunk(len(chunks) - 1, "Returns › Exceptions", "Gift cards are final.", 4)
    assert all(c.token_count <= 200 for c in chunks)
