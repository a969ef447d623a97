"""Numbers keyed on the phone's keypad, kept out of transcripts digit by digit.

Twilio reports each key as its own `dtmf` message and the conversation turns each into words of
its own ("(The caller pressed 4 on the keypad.)"), so a card number keyed in arrives as a run of
one-key turns. The first key of a run is kept, since it is how a caller picks from a menu; every
further digit of the run is stored and shown to the model as "[digit]". At most one digit of a
keyed number is ever kept, fewer than the first six a card's owner may be shown (PCI DSS 3.4).
"""

from __future__ import annotations

import re

# The words `ConversationState.press` gives a key press (tests/unit/privacy keep the two in step).
_KEY_PRESS = re.compile(r"\(The caller pressed (?P<key>[0-9*#]|\[digit\]) on the keypad\.\)")
MASKED_KEY_PRESS = "(The caller pressed [digit] on the keypad.)"
# Keys pressed closer together than this are one number being keyed in; a menu choice comes
# after the agent has spoken its options, which takes longer.
KEYPAD_RUN_GAP_S = 5.0


def pressed_digit(text: str) -> bool:
    """`text` is a key press of a digit (shown or already masked), not words or * or #."""
    match = _KEY_PRESS.fullmatch(text)
    return match is not None and match["key"] not in ("*", "#")


def mask_key_after(previous: str | None, text: str) -> str:
    """`text` as stored when the caller's message before it was `previous` (the playground,
    where each key press is one request and the history says what came before)."""
    if pressed_digit(text) and previous is not None and pressed_digit(previous):
        return MASKED_KEY_PRESS
    return text


class KeypadRun:
    """The key presses of one call, to tell a menu choice from a number being keyed in."""

    def __init__(self, *, gap_s: float = KEYPAD_RUN_GAP_S) -> None:
        self._gap_s = gap_s
        self._last_digit_at: float | None = None

    def screen(self, text: str, at: float) -> str:
        """What of the caller's turn `text`, taken at `at` (seconds), may be kept."""
        if not pressed_digit(text):
            self._last_digit_at = None  # words, * or #: whatever follows starts afresh
            return text
        last, self._last_digit_at = self._last_digit_at, at
        if last is not None and at - last <= self._gap_s:
            return MASKED_KEY_PRESS
        return text
