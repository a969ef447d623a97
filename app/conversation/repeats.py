"""Replies that say again what the agent already said.

A small model that loses the thread answers a new question with its greeting or with its last
answer ("We're open nine to five" again, for "can you check my order"), or says the caller's
question back. The start of each reply
is held back only while it could still be such a repeat: as soon as its words part from
everything the agent said before, they go on at once, so an ordinary reply loses no time. A
first sentence that does say an earlier sentence again is caught before the caller hears it.
A caller who asks to hear something again, or asks the same thing twice, gets it again.

Nor does a reply greet the caller again once the call has begun: a model that answered "Hi,
where is my order?" with "Hi, your order..." went on opening every answer with "Hi," (its own
earlier answers taught it to). The salutation is dropped and the answer goes on from its next
word.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from difflib import SequenceMatcher

from app.llm.base import Message

SIMILAR = 0.8  # word-level likeness above which two sentences say the same thing
MIN_WORDS = 4  # "Sure." or "Of course!" again is no repeat worth catching
_WORD = re.compile(r"[a-z0-9]+")  # "we're" is "we re": one word off "we are", not two
_SENTENCE_END = re.compile(r"[.!?](?:[\"')\]]*)(?:\s|$)")
# A salutation opening a reply, and the prefixes it passes through while it streams in.
_SALUTATION = re.compile(r"\s*(?:hi|hello|hey)(?: there)?\s*[,!.]\s*", re.IGNORECASE)
_SALUTATION_SO_FAR = re.compile(
    r"\s*(?:h|he|hel|hell|hello|hi|hey)(?: (?:t|th|the|ther|there)?)?", re.IGNORECASE
)
_ASKS_AGAIN = re.compile(
    r"\b(repeat|again|say that|come again|pardon|didn'?t (catch|hear|get)|what was that|"
    r"one more time)\b"
)


def words(text: str) -> list[str]:
    """The words of `text`, lower-cased, punctuation dropped."""
    return _WORD.findall(text.lower())


def _unsaluted(text: str) -> str:
    """`text` without the salutation it opens with, its next word capitalised."""
    salutation = _SALUTATION.match(text)
    if salutation is None:
        return text
    rest = text[salutation.end() :]
    return rest[:1].upper() + rest[1:]


def _likeness(a: Sequence[str], b: Sequence[str]) -> float:
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


def _sentences(text: str) -> list[list[str]]:
    pieces = _SENTENCE_END.split(text) if text else []
    return [w for piece in pieces if len(w := words(piece)) >= MIN_WORDS]


class RepeatCheck:
    """Watches the start of one reply: `push` each piece of streamed text and speak what it
    returns; `repeated` turns true when the first sentence says an earlier one again (what was
    held back is then dropped). `finish` returns what is still held once the reply is done."""

    def __init__(self, said: Sequence[str], *, active: bool = True, greeted: bool = False) -> None:
        self._said = [s for text in said for s in _sentences(text)] if active else []
        # What may still turn out to be a salutation (None: the opening is settled).
        self._opening: str | None = "" if greeted else None
        self._held = ""
        self._deciding = bool(self._said)
        self.repeated = False
        self.said_again: str | None = None  # the earlier sentence it repeated, for the log

    @classmethod
    def for_turn(
        cls, history: Sequence[Message], asked: str, *, active: bool = True
    ) -> RepeatCheck:
        """A check against everything the agent said in `history` and the caller's words
        `asked`, unless those call for a repeat (or it is not `active`: the reply has begun)."""
        # The caller's own words said back are no answer either (a small model echoes them).
        earlier = [m.content for m in history if m.role == "assistant" and m.content]
        said = [*earlier, asked]
        asked_words = words(asked)
        asked_before = any(
            _likeness(asked_words, words(m.content)) >= SIMILAR
            for m in history
            if m.role == "user" and m.content
        )
        asks_again = asked_before or bool(_ASKS_AGAIN.search(asked.lower()))
        judging = active and not asks_again
        return cls(said, active=judging, greeted=judging and bool(earlier))

    def push(self, text: str) -> str:
        """Add streamed text; return the text that may be spoken now ("" while deciding)."""
        return self._unsaluted(self._check(text))

    def _unsaluted(self, released: str, *, last: bool = False) -> str:
        # The repeat is judged on the words as the model wrote them (a reply that says the
        # greeting again, "Hi" included, is one; "Thanks for calling..., we open at 7" is not);
        # only what is then spoken loses its salutation.
        if self._opening is None:
            return released
        self._opening += released
        rest = _unsaluted(self._opening)
        if not last and (_SALUTATION_SO_FAR.fullmatch(self._opening) or not rest):
            return ""  # still a salutation, or nothing yet after one
        spoken, self._opening = rest or self._opening, None  # all of it a greeting: said
        return spoken

    def _check(self, text: str) -> str:
        if not self._deciding:
            return text
        self._held += text
        end = _SENTENCE_END.search(self._held)
        if end is not None:
            return self._decide(words(self._held[: end.start()]))
        # The last word may still be growing ("Hel" of "Hello"): judge the complete ones.
        done = self._held if self._held[-1:].isspace() else self._held.rpartition(" ")[0]
        complete = words(done)
        if complete and not self._could_repeat(complete):
            return self._release()
        return ""

    def finish(self) -> str:
        """The reply ended: what is still held back, unless it is a repeat."""
        held = self._decide(words(self._held)) if self._deciding else ""
        return self._unsaluted(held, last=True)

    def _could_repeat(self, start: list[str]) -> bool:
        # A word or two may differ ("thanks" for "thank you") and it still be the same
        # sentence, so a prefix is compared with a little slack; but a repeat starts as the
        # earlier sentence did, so a reply whose first word differs goes on at once.
        slack = max(1, len(start) // 5)
        for sentence in self._said:
            if sentence[0] != start[0]:
                continue
            matched = sum(
                block.size
                for block in SequenceMatcher(
                    None, start, sentence[: len(start) + slack], autojunk=False
                ).get_matching_blocks()
            )
            if len(start) - matched <= slack:
                return True
        return False

    def _decide(self, first: list[str]) -> str:
        if len(first) >= MIN_WORDS:
            for sentence in self._said:
                if _likeness(first, sentence) >= SIMILAR:
                    self.repeated, self._deciding = True, False
                    self.said_again, self._held = " ".join(sentence), ""
                    return ""
        return self._release()

    def _release(self) -> str:
        self._deciding = False
        held, self._held = self._held, ""
        return held
