"""The floor: who speaks when. A pure state machine over the call's turns.

It hears the caller frame by frame (voiced or not, at an injected time) and decides: answer a
pause speculatively, drop that guess when the caller goes on, commit the turn when they are done,
stop the agent when the caller talks over it (barge-in), resume it when that was only "uh-huh"
(a backchannel), and close each turn with whether the caller heard all of it. It does no I/O and
starts no tasks: each decision comes back as actions for the session to carry out, in order.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from app.calls.config import Listening
from app.calls.endpointing import TurnDetector, TurnEvent, sounds_complete
from app.calls.ledger import PCM_BYTES_PER_S, Turn

FRAME_MS = 20
PCM_BYTES_PER_MS = PCM_BYTES_PER_S // 1000
PREROLL_FRAMES = 15  # 300 ms before the detected onset belong to the utterance
# Audio of an utterance the caller talked over before it was answered is answered together with
# the next one, with 200 ms of silence between (16-bit samples at 8 kHz).
CARRY_GAP = b"\x00\x00" * 1600
BACKCHANNELS = frozenset(
    "uh-huh uh huh mm-hmm mhm mm hmm yeah yes yep yup okay ok right sure alright i see got it "
    "oh ah uh um".split()
)


def is_backchannel(text: str) -> bool:
    """'uh-huh', 'yeah', 'okay' and friends: the caller is listening, not taking the turn."""
    words = [w.strip(".,!?…").lower() for w in text.replace("-", " - ").split()]
    words = [w for w in words if w and w != "-"]
    return len(words) <= 3 and all(w in BACKCHANNELS for w in words)


@dataclass(frozen=True, slots=True)
class Answer:
    """Start producing the turn's reply."""

    turn: Turn


@dataclass(frozen=True, slots=True)
class Abandon:
    """Stop producing the turn's reply: it will never be heard."""

    turn: Turn


@dataclass(frozen=True, slots=True)
class Clear:
    """Stop the caller hearing the turn's reply now (its unplayed audio is kept, to resume)."""

    turn: Turn
    barge_in_since: float | None = None  # when the caller started talking over it


@dataclass(frozen=True, slots=True)
class Close:
    """Record the turn: the whole reply, or as much as was heard when `interrupted`."""

    turn: Turn
    interrupted: bool


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """The caller finished a turn after `silence_s` of silence."""

    turn: Turn
    silence_s: float


@dataclass(frozen=True, slots=True)
class Note:
    """Something worth counting that changes nothing else (a turn outcome)."""

    outcome: str
    detail: str = ""


Action = Answer | Abandon | Clear | Close | TurnEnded | Note


class Floor:
    """Turn-taking for one call. Every method is synchronous; times are the caller's clock."""

    def __init__(self, listening: Listening) -> None:
        self._listening = listening
        self._detector = TurnDetector(listening.timing)
        self.turns: list[Turn] = []
        self.speaking: Turn | None = None  # the turn whose reply owns the audio channel
        self._pending: Turn | None = None  # the utterance being formed, maybe answered early
        self._preroll: deque[bytes] = deque(maxlen=PREROLL_FRAMES)
        self._utterance = bytearray()
        self._carry = b""
        self._stream_ms = 0
        self._last_voiced_at: float | None = None
        self._voiced_ms = 0  # voiced audio in the current caller turn
        self._speech_started_at: float | None = None
        self._barged_in = False
        self._turn_ids = 0

    @property
    def caller_in_turn(self) -> bool:
        """The caller started speaking and has not finished."""
        return self._detector.in_turn

    # ------------------------------------------------------------------------------- hearing

    def hear(self, pcm: bytes, *, voiced: bool, now: float, may_speculate: bool) -> list[Action]:
        """One 20 ms frame of the caller's audio."""
        t_ms = self._stream_ms
        self._stream_ms += FRAME_MS
        self._preroll.append(pcm)
        if self._detector.in_turn:
            self._utterance += pcm
        if voiced:
            self._last_voiced_at = now
            self._voiced_ms += FRAME_MS
        actions: list[Action] = []
        for detection in self._detector.feed(voiced, t_ms):
            if detection.event is TurnEvent.STARTED:
                self._speech_started_at = now - (t_ms + FRAME_MS - detection.at_ms) / 1000
                actions += self._caller_started()
            elif detection.event is TurnEvent.PAUSED:
                actions += self._caller_paused(now, may_speculate)
            elif detection.event is TurnEvent.RESUMED:
                actions += self._caller_resumed()
            elif detection.event is TurnEvent.DONE:
                actions += self._caller_done(now)
        actions += self._barge_in()
        return actions

    def _caller_started(self) -> list[Action]:
        self._utterance = bytearray(b"".join(self._preroll))
        self._voiced_ms = self._detector.timing.onset_ms
        # The caller spoke again before hearing any answer: answer both utterances together.
        actions: list[Action] = []
        for turn in self.turns:
            if turn.committed and not turn.finalized and turn.reply.sent == 0 and turn.audio:
                if turn.answering:
                    self._carry = turn.audio + CARRY_GAP
                    actions.append(self._abandon(turn))
        return actions

    def _caller_paused(self, now: float, may_speculate: bool) -> list[Action]:
        # Answer speculatively: by the time the silence is long enough to end the turn,
        # the transcript and the first words of the reply are ready.
        if not may_speculate:
            return [Note("speculation_skipped")]
        self._pending = self._new_turn(bytes(self._utterance), committed=False, now=now)
        return [Answer(self._pending)]

    def _caller_resumed(self) -> list[Action]:
        turn, self._pending = self._pending, None
        if turn is not None and turn.reply.first_audio_sent_at is None:
            return [self._abandon(turn), Note("speculation_discarded")]
        return []

    def _caller_done(self, now: float) -> list[Action]:
        turn, self._pending = self._pending, None
        actions: list[Action] = []
        if turn is None:
            turn = self._new_turn(bytes(self._utterance), committed=True, now=now)
            actions.append(Answer(turn))
        turn.commit_event.set()
        self._carry = b""
        turn.reply.released = self.speaking is turn or self.speaking is None
        if self._last_voiced_at is not None:
            turn.timings.end_of_turn_s = now - self._last_voiced_at
            actions.append(TurnEnded(turn, turn.timings.end_of_turn_s))
        self._utterance = bytearray()
        self._barged_in = False
        return actions

    def _barge_in(self) -> list[Action]:
        speaking = self.speaking
        if speaking is None or self._barged_in or not self._detector.speaking:
            return []
        reply = speaking.reply
        if not reply.pending or reply.first_audio_sent_at is None:
            return []
        if self._detector.current_speech_ms < self._listening.barge_in_min_speech_ms:
            return []
        self._barged_in = True
        return [self._clear(speaking, barge_in_since=self._speech_started_at)]

    # ------------------------------------------------------------------------------- turns

    def greet(self, now: float) -> Turn:
        """The agent's greeting: the first turn, speaking at once."""
        turn = Turn(id=0, audio=b"", speech_end_at=now, caller_text="")
        turn.commit_event.set()
        turn.reply.released = True
        self.turns.append(turn)
        self.speaking = turn
        return turn

    def key_pressed(self, words: str, now: float) -> list[Action]:
        """A key press the conversation turned into `words` (keys count only between the
        caller's turns: see `caller_in_turn`)."""
        return [Answer(self._new_turn(b"", committed=True, now=now, text=words))]

    def transcribed(self, turn: Turn, text: str) -> bool:
        """The words of `turn` are known. True when its reply should wait for the caller to
        finish: a turn still being spoken whose words sound unfinished ("I'd like to book a")."""
        if self._pending is not turn:
            return False
        complete = sounds_complete(text)
        self._detector.hint_complete(complete)
        # Generating now would only take the CPU from the calls that need it.
        return not complete

    def nothing_said(self, turn: Turn) -> None:
        """Noise, a cough: the turn had no words."""
        turn.finish(recorded=False)
        self.resume()

    def take(self, turn: Turn) -> tuple[bool, list[Action]]:
        """Give `turn` the floor, settling a reply the caller talked over.

        A backchannel resumes the paused reply and is not answered (False); anything else ends
        that reply where the caller stopped hearing it, and this turn is answered (True).
        """
        actions: list[Action] = []
        current = self.speaking
        if current is not None and current is not turn and not current.finalized:
            reply = current.reply
            if reply.first_audio_sent_at is not None and not reply.finished_playing:
                if turn.caller_text is not None and is_backchannel(turn.caller_text):
                    if turn.speech_ms <= self._listening.backchannel_max_ms or not turn.audio:
                        turn.finish(recorded=False)
                        self.resume()
                        return False, [Note("backchannel", turn.caller_text)]
                if reply.released:
                    actions.append(self._clear(current))
                actions += self._close(current, interrupted=True)
            else:
                actions += self._close(current, interrupted=False)
        self.speaking = turn
        turn.reply.released = turn.committed
        return True, actions

    def claim(self, turn: Turn) -> bool:
        """Let `turn` speak (an apology) if no other reply holds the floor."""
        if self.speaking is not None and self.speaking is not turn:
            return False
        self.speaking = turn
        turn.reply.released = turn.committed or turn.reply.released
        return True

    def resume(self) -> None:
        """Carry on with a reply a barge-in paused, from where the caller stopped hearing it."""
        self._barged_in = False
        current = self.speaking
        if current is not None and not current.finalized and not current.reply.released:
            if current.reply.first_audio_sent_at is not None:
                current.reply.released = True

    def reply_done(self, turn: Turn) -> list[Action]:
        """`turn`'s reply will get no more audio; one that got none at all is closed now."""
        reply = turn.reply
        if reply.first_audio_sent_at is None and not reply.frames:
            if turn.caller_text and not turn.finalized and self.speaking is turn:
                return self._close(turn, interrupted=False)
        return []

    def mark_played(self, name: str) -> list[Action]:
        """Twilio echoed a mark: a reply played that far, and is closed once played in full."""
        for turn in self.turns:
            if not turn.finalized and turn.reply.on_mark(name):
                if turn.reply.finished_playing:
                    return self._close(turn, interrupted=False)
                return []
        return []

    def hang_up(self) -> list[Action]:
        """The call is over: close every turn the caller took part in."""
        actions: list[Action] = []
        for turn in self.turns:
            if turn.reply.first_audio_sent_at is not None or turn.caller_text:
                actions += self._close(turn, interrupted=not turn.reply.finished_playing)
        return actions

    def _new_turn(
        self, audio: bytes, *, committed: bool, now: float, text: str | None = None
    ) -> Turn:
        self._turn_ids += 1
        if audio and self._carry:
            # Both utterances, but never more than one turn may hold: the newest of them. The
            # carry stays until a turn is committed: a guess the caller talks on over is
            # dropped, and the turn that replaces it needs the first words too.
            limit = self._detector.timing.max_turn_ms * PCM_BYTES_PER_MS
            audio = (self._carry + audio)[-limit:]
            if committed:
                self._carry = b""
        turn = Turn(
            id=self._turn_ids,
            audio=audio,
            speech_end_at=self._last_voiced_at if audio else now,
            caller_text=text,
            speech_ms=self._voiced_ms if audio else 0,
        )
        if committed:
            turn.commit_event.set()
        turn.reply.released = committed and self.speaking is None
        self.turns.append(turn)
        return turn

    def _abandon(self, turn: Turn) -> Abandon:
        turn.finish(recorded=False)
        if self.speaking is turn:
            self.speaking = None
        return Abandon(turn)

    def _clear(self, turn: Turn, *, barge_in_since: float | None = None) -> Clear:
        turn.reply.released = False
        turn.reply.rewind_to_played()
        return Clear(turn, barge_in_since)

    def _close(self, turn: Turn, *, interrupted: bool) -> list[Action]:
        if turn.finalized:
            return []
        turn.finish(recorded=True)
        if self.speaking is turn:
            self.speaking = None
        return [Close(turn, interrupted)]
