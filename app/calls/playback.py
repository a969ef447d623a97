"""One agent reply as the caller hears it: its audio frames, its text, and how much was played.

Twilio plays outbound audio in order and echoes a mark when playback reaches it (and at once
after a `clear`). So a reply is a buffer of 20 ms frames with a send cursor and a played cursor;
marks carry the frame count they follow, and an epoch that changes on every `clear`, so echoes of
marks that were dropped by a clear are told apart from marks that were really played.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MARK_EVERY_FRAMES = 10  # a mark every 200 ms: barge-in knows what was heard to that precision


@dataclass(slots=True)
class Piece:
    """A sentence (or first clause) of the reply and the frames that speak it."""

    text: str
    start_frame: int
    end_frame: int | None = None  # set when its audio is complete
    # Said while the answer was being made ("One moment, please."): the caller hears it and the
    # transcript keeps it, but it is not the answer, and a model reading it back in its history
    # starts its own answers with it.
    aside: bool = False


@dataclass(slots=True)
class Reply:
    """The audio and text of one agent turn."""

    turn: int
    frames: list[bytes] = field(default_factory=list)
    pieces: list[Piece] = field(default_factory=list)
    sent: int = 0  # frames handed to Twilio
    played: int = 0  # frames Twilio confirmed as played
    epoch: int = 0
    released: bool = False  # may go out (the turn is committed and not paused by barge-in)
    complete: bool = False  # no more audio will be added
    first_audio_sent_at: float | None = None

    def begin_piece(self, text: str, *, aside: bool = False) -> None:
        """Start the audio of a new sentence."""
        self.pieces.append(Piece(text=text, start_frame=len(self.frames), aside=aside))

    def add_frames(self, frames: list[bytes]) -> None:
        """Append 20 ms mu-law frames to the current sentence."""
        self.frames.extend(frames)

    def end_piece(self) -> None:
        """The current sentence's audio is complete."""
        if self.pieces and self.pieces[-1].end_frame is None:
            self.pieces[-1].end_frame = len(self.frames)

    def mark_after(self, index: int) -> str | None:
        """The mark name to send after frame `index`, if a mark belongs there."""
        count = index + 1
        piece_end = any(p.end_frame == count for p in self.pieces)
        if count % MARK_EVERY_FRAMES == 0 or piece_end:
            return f"{self.turn}:{self.epoch}:{count}"
        return None

    def on_mark(self, name: str) -> bool:
        """Record an echoed mark; True when it belonged to this reply and was really played."""
        try:
            turn, epoch, count = (int(part) for part in name.split(":"))
        except ValueError:
            return False
        if turn != self.turn or epoch != self.epoch:
            return False
        self.played = max(self.played, count)
        return True

    def rewind_to_played(self) -> None:
        """After a clear: unplayed audio will be sent again if the reply resumes."""
        self.epoch += 1
        self.sent = self.played

    @property
    def pending(self) -> bool:
        """Audio was sent that the caller has not finished hearing, or more is due."""
        return self.sent > self.played or (self.released and self.sent < len(self.frames))

    @property
    def finished_playing(self) -> bool:
        """Every frame of a complete reply has been played."""
        return self.complete and self.played >= len(self.frames)

    @property
    def full_text(self) -> str:
        """Everything the agent meant to say."""
        return self.text()

    def text(self, *, played: bool = False, asides: bool = True) -> str:
        """The reply's words: all of them, or (`played`) what the caller heard, whole sentences
        and a proportional share of a cut one; without `asides`, only the answer's words."""
        heard: list[str] = []
        for piece in self.pieces:
            end = piece.end_frame if piece.end_frame is not None else len(self.frames)
            cut = played and self.played < end
            if asides or not piece.aside:
                heard.append(self._heard_share(piece, end) if cut else piece.text)
            if cut:
                break
        return " ".join(words for words in heard if words).strip()

    def _heard_share(self, piece: Piece, end: int) -> str:
        """The words of a piece cut short, in proportion to its frames played."""
        if self.played <= piece.start_frame or end <= piece.start_frame:
            return ""
        words = piece.text.split()
        taken = int(len(words) * (self.played - piece.start_frame) / (end - piece.start_frame))
        return " ".join(words[:taken]) + "…" if taken else ""
