"""End-of-turn detection: turns per-frame voice activity into caller turn events.

The detector is a pure state machine driven by frame times, so it is tested without audio or
clocks. It answers two questions: when did the caller start talking (for barge-in) and when are
they done (for the reply). A short pause produces `caller_paused`, on which a reply may be
prepared speculatively; the turn ends (`caller_done`) after a longer silence whose length depends
on whether what was said so far sounds finished: "Yes." ends quickly, "I'd like to book a" waits.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TurnEvent(StrEnum):
    """What the caller is doing, as the detector sees it."""

    STARTED = "caller_started"
    PAUSED = "caller_paused"
    RESUMED = "caller_resumed"
    DONE = "caller_done"


@dataclass(frozen=True, slots=True)
class TurnTiming:
    """Thresholds in milliseconds."""

    frame_ms: int = 20
    onset_ms: int = 60  # voiced audio needed to believe someone is talking
    pause_ms: int = 200  # silence that makes a candidate end of turn
    end_ms: int = 500  # silence that ends a turn that sounds complete
    end_incomplete_ms: int = 1100  # silence that ends a turn that sounds unfinished
    # A turn is ended here however long the caller goes on: what STT is handed, and what a call
    # holds in memory, stay bounded.
    max_turn_ms: int = 30_000


@dataclass(frozen=True, slots=True)
class Detection:
    """One event with the stream time (ms) it refers to."""

    event: TurnEvent
    at_ms: int


class TurnDetector:
    """Feed one `(is_speech, t_ms)` per frame; get the turn events that frame caused."""

    def __init__(self, timing: TurnTiming | None = None) -> None:
        self.timing = timing or TurnTiming()
        self._voiced_run_ms = 0
        self._silence_ms = 0
        self._in_turn = False  # caller has started and not finished
        self._paused = False
        self._speech_start_ms: int | None = None
        self._last_voiced_ms: int | None = None
        self._sounds_complete: bool | None = None

    @property
    def in_turn(self) -> bool:
        """The caller started speaking and has not finished the turn."""
        return self._in_turn

    @property
    def speaking(self) -> bool:
        """The caller is talking right now (in a turn, not in a pause)."""
        return self._in_turn and not self._paused

    @property
    def speech_start_ms(self) -> int | None:
        """Stream time of the first voiced frame of the current turn."""
        return self._speech_start_ms

    @property
    def last_voiced_ms(self) -> int | None:
        """Stream time at the end of the last voiced frame."""
        return self._last_voiced_ms

    @property
    def current_speech_ms(self) -> int:
        """Length of the caller's current run of speech (0 when silent)."""
        return self._voiced_run_ms if self.speaking else 0

    def hint_complete(self, sounds_complete: bool) -> None:
        """Tell the detector whether the words so far sound like a finished turn."""
        self._sounds_complete = sounds_complete

    def end_threshold_ms(self) -> int:
        """Silence that ends the current turn, given what the words sounded like."""
        if self._sounds_complete is False:
            return self.timing.end_incomplete_ms
        return self.timing.end_ms

    def reset(self) -> None:
        """Forget the current turn (after it has been handled)."""
        self._in_turn = False
        self._paused = False
        self._speech_start_ms = None
        self._sounds_complete = None
        self._voiced_run_ms = 0
        self._silence_ms = 0

    def feed(self, is_speech: bool, t_ms: int) -> list[Detection]:
        """Advance by one frame that starts at stream time `t_ms`."""
        out = self._advance(is_speech, t_ms)
        end = t_ms + self.timing.frame_ms
        start = self._speech_start_ms
        if self._in_turn and start is not None and end - start >= self.timing.max_turn_ms:
            out.append(Detection(TurnEvent.DONE, end))
            self.reset()
        return out

    def _advance(self, is_speech: bool, t_ms: int) -> list[Detection]:
        frame = self.timing.frame_ms
        out: list[Detection] = []
        if is_speech:
            self._silence_ms = 0
            self._voiced_run_ms += frame
            self._last_voiced_ms = t_ms + frame
            onset_start = t_ms + frame - self._voiced_run_ms
            if not self._in_turn and self._voiced_run_ms >= self.timing.onset_ms:
                self._in_turn = True
                self._paused = False
                self._speech_start_ms = onset_start
                self._sounds_complete = None
                out.append(Detection(TurnEvent.STARTED, onset_start))
            elif self._in_turn and self._paused and self._voiced_run_ms >= self.timing.onset_ms:
                self._paused = False
                self._sounds_complete = None
                out.append(Detection(TurnEvent.RESUMED, onset_start))
            return out

        self._silence_ms += frame
        if self._silence_ms >= self.timing.onset_ms or not self._in_turn:
            self._voiced_run_ms = 0
        if not self._in_turn:
            return out
        if not self._paused and self._silence_ms >= self.timing.pause_ms:
            self._paused = True
            self._voiced_run_ms = 0
            out.append(Detection(TurnEvent.PAUSED, t_ms + frame))
        if self._paused and self._silence_ms >= self.end_threshold_ms():
            out.append(Detection(TurnEvent.DONE, t_ms + frame))
            self.reset()
        return out


_TRAILING_INCOMPLETE = frozenset(
    "a an the and or but so because to of for with about from in on at my your our their "
    "is are was were i'd i'm i'll um uh like if that which who when where".split()
)


def sounds_complete(text: str) -> bool:
    """Whether a transcript sounds like a finished turn (a cheap stand-in for a turn model).

    Whisper punctuates what it hears; a trailing conjunction, article or filler, or a trailing
    comma or ellipsis, means the caller is most likely mid-sentence.
    """
    stripped = text.strip()
    if not stripped:
        return False
    if stripped.endswith((",", "...", "…", "-")):
        return False
    last = stripped.rstrip(".!?").split()[-1].lower().strip(",") if stripped.rstrip(".!?") else ""
    return last not in _TRAILING_INCOMPLETE
