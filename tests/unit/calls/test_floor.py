"""The floor on its own: frames in, decisions out, time given by the test (no audio, no loop)."""

from __future__ import annotations

from app.calls.config import Listening
from app.calls.endpointing import TurnTiming
from app.calls.floor import (
    CARRY_GAP,
    PCM_BYTES_PER_MS,
    Abandon,
    Action,
    Answer,
    Clear,
    Close,
    Floor,
    Note,
    TurnEnded,
)
from app.calls.ledger import Turn

FRAME = b"\x01\x00" * 160  # 20 ms of 8 kHz PCM; the floor never looks inside
TIMING = TurnTiming(onset_ms=60, pause_ms=140, end_ms=500, end_incomplete_ms=1100)


class Caller:
    """Feeds a floor voiced and silent frames on a 20 ms clock."""

    def __init__(self, floor: Floor, *, may_speculate: bool = True) -> None:
        self.floor = floor
        self.now = 100.0
        self.may_speculate = may_speculate

    def talk(self, ms: int) -> list[Action]:
        return self._frames(ms, voiced=True)

    def pause(self, ms: int) -> list[Action]:
        return self._frames(ms, voiced=False)

    def _frames(self, ms: int, *, voiced: bool) -> list[Action]:
        actions: list[Action] = []
        for _ in range(ms // 20):
            self.now += 0.02
            actions += self.floor.hear(
                FRAME, voiced=voiced, now=self.now, may_speculate=self.may_speculate
            )
        return actions


def floor(**listening: object) -> Floor:
    return Floor(Listening(timing=TIMING, **listening))  # type: ignore[arg-type]


def of(kind: type, actions: list[Action]) -> list[Action]:
    return [a for a in actions if isinstance(a, kind)]


def playing(turn: Turn, *, frames: int = 50, sent: int = 20, at: float = 1.0) -> None:
    """`turn`'s reply is out: `sent` of its `frames` handed to Twilio, none played yet."""
    turn.reply.begin_piece("Our hours are nine to five.")
    turn.reply.add_frames([b"\xff" * 160] * frames)
    turn.reply.end_piece()
    turn.reply.sent = sent
    turn.reply.first_audio_sent_at = at


def test_a_pause_is_answered_early_and_the_guess_dropped_when_the_caller_goes_on() -> None:
    caller = Caller(floor())
    assert caller.talk(400) == []
    guess = of(Answer, caller.pause(160))
    assert len(guess) == 1 and not guess[0].turn.committed  # speculative
    resumed = caller.talk(100)
    assert [type(a) for a in resumed] == [Abandon, Note]
    assert resumed[0].turn is guess[0].turn and guess[0].turn.discarded
    assert resumed[1] == Note("speculation_discarded")


def test_the_turn_ends_after_the_silence_and_its_guess_is_committed_and_released() -> None:
    caller = Caller(floor())
    caller.talk(400)
    guess = of(Answer, caller.pause(160))[0].turn
    done = caller.pause(400)
    assert of(Answer, done) == []  # the guess is the answer: no second reply
    ended = of(TurnEnded, done)
    assert ended and ended[0].turn is guess
    assert guess.committed and guess.reply.released
    # A turn that sounds complete ends after TIMING.end_ms of silence, measured on the clock.
    assert abs(ended[0].silence_s - 0.5) < 1e-6
    assert abs(guess.speech_end_at - 100.4) < 1e-6  # type: ignore[operator]  # last voiced


def test_under_load_no_guess_is_made_and_the_turn_is_answered_when_it_ends() -> None:
    caller = Caller(floor(), may_speculate=False)
    caller.talk(400)
    assert caller.pause(160) == [Note("speculation_skipped")]
    answers = of(Answer, caller.pause(400))
    assert len(answers) == 1 and answers[0].turn.committed
    assert len(answers[0].turn.audio) >= 2 * 8 * 400  # the whole utterance, onset included


def test_talking_over_a_reply_being_heard_clears_it_after_the_minimum_speech() -> None:
    the_floor = floor(barge_in_min_speech_ms=160)
    caller = Caller(the_floor)
    turn = the_floor.greet(caller.now)
    playing(turn, sent=20)
    turn.reply.played = 10
    assert caller.talk(100) == []  # a cough is not a barge-in
    cleared = of(Clear, caller.talk(100))
    assert len(cleared) == 1 and cleared[0].turn is turn
    assert cleared[0].barge_in_since is not None
    assert not turn.reply.released and turn.reply.sent == 10  # rewound to what was heard
    assert of(Clear, caller.talk(200)) == []  # once per barge-in


def test_a_backchannel_resumes_the_paused_reply_instead_of_taking_the_floor() -> None:
    the_floor = floor()
    caller = Caller(the_floor)
    greeting = the_floor.greet(caller.now)
    playing(greeting)
    caller.talk(300)
    answer = of(Answer, caller.pause(600))[0].turn
    assert not greeting.reply.released  # paused by the barge-in
    granted, actions = the_floor.take(_said(answer, "Uh-huh."))
    assert not granted and actions == [Note("backchannel", "Uh-huh.")]
    assert answer.discarded and greeting.reply.released and the_floor.speaking is greeting


def test_a_real_question_over_a_reply_closes_it_where_the_caller_stopped_hearing() -> None:
    the_floor = floor()
    caller = Caller(the_floor)
    greeting = the_floor.greet(caller.now)
    playing(greeting)
    greeting.reply.played = 10
    caller.talk(300)
    answer = of(Answer, caller.pause(600))[0].turn
    granted, actions = the_floor.take(_said(answer, "What time do you open?"))
    assert granted and actions == [Close(greeting, interrupted=True)]
    assert the_floor.speaking is answer and answer.reply.released


def test_speaking_again_before_any_answer_carries_the_first_words_into_the_next_turn() -> None:
    caller = Caller(floor(), may_speculate=False)
    caller.talk(300)
    first = of(Answer, caller.pause(700))[0].turn
    first_words = first.audio
    abandoned = of(Abandon, caller.talk(100))
    assert [a.turn for a in abandoned] == [first] and first.discarded  # type: ignore[attr-defined]
    second = of(Answer, caller.pause(700))[0].turn
    # Both utterances answered together (every test frame is alike: lengths tell them apart).
    assert len(second.audio) >= len(first_words) + len(CARRY_GAP) + PCM_BYTES_PER_MS * 100


def test_the_first_words_survive_a_guess_dropped_while_the_caller_goes_on() -> None:
    # "Do you have almond croissants" (a pause long enough to end the turn) "in stock" (a
    # short pause: a guess) "today?": the turn that is answered holds all three parts.
    caller = Caller(floor())
    caller.talk(300)
    first = of(Answer, caller.pause(160))[0].turn
    assert of(TurnEnded, caller.pause(400))[0].turn is first and first.committed
    first_words = first.audio
    assert of(Abandon, caller.talk(300)) == [Abandon(first)]  # not answered yet: carried on
    guess = of(Answer, caller.pause(160))[0].turn
    assert len(guess.audio) >= len(first_words) + len(CARRY_GAP) + PCM_BYTES_PER_MS * 300
    assert of(Abandon, caller.talk(300)) == [Abandon(guess)]
    caller.pause(160)
    ended = of(TurnEnded, caller.pause(400))[0].turn
    # Every test frame is alike: lengths tell the parts apart.
    assert len(ended.audio) >= len(first_words) + len(CARRY_GAP) + PCM_BYTES_PER_MS * 600


def test_a_mark_closes_a_reply_once_all_of_it_was_played() -> None:
    the_floor = floor()
    turn = the_floor.greet(0.0)
    playing(turn, frames=20, sent=20)
    turn.reply.complete = True
    assert the_floor.mark_played("0:0:10") == []
    assert the_floor.mark_played("0:0:20") == [Close(turn, interrupted=False)]
    assert the_floor.mark_played("0:0:20") == []  # closed once
    assert the_floor.speaking is None


def test_keys_pressed_become_a_committed_turn_with_the_conversations_words() -> None:
    the_floor = floor()
    [answer] = the_floor.key_pressed("The caller pressed 1.", 5.0)
    assert isinstance(answer, Answer)
    assert answer.turn.caller_text == "The caller pressed 1." and answer.turn.committed
    assert answer.turn.speech_end_at == 5.0


def test_an_unfinished_sentence_asks_the_reply_to_wait_for_the_caller() -> None:
    caller = Caller(floor())
    caller.talk(400)
    guess = of(Answer, caller.pause(160))[0].turn
    assert the_floor_waits(caller.floor, guess, "I'd like to book a")
    assert not the_floor_waits(caller.floor, guess, "I'd like to book a table.")


def test_hanging_up_closes_every_turn_the_caller_took_part_in_once() -> None:
    the_floor = floor()
    greeting = the_floor.greet(0.0)
    playing(greeting, frames=20, sent=20)
    greeting.reply.played = 20
    greeting.reply.complete = True
    [answer] = the_floor.key_pressed("The caller pressed 2.", 1.0)
    assert the_floor.hang_up() == [
        Close(greeting, interrupted=False),
        Close(answer.turn, interrupted=True),  # type: ignore[attr-defined]
    ]
    assert the_floor.hang_up() == []


def the_floor_waits(the_floor: Floor, turn: Turn, text: str) -> bool:
    return the_floor.transcribed(turn, text)


def _said(turn: Turn, text: str) -> Turn:
    turn.caller_text = text
    return turn


def test_a_caller_who_never_stops_is_answered_at_the_utterance_limit() -> None:
    f = Floor(Listening(timing=TurnTiming(max_turn_ms=2000)))
    caller = Caller(f)
    answered = of(Answer, caller.talk(7000))
    # A turn every two seconds, each unanswered one carried into the next: STT is never handed
    # more than the limit, however long the caller talks.
    assert len(answered) == 3 and all(a.turn.committed for a in answered)
    assert all(a.turn.audio_s <= 2.0 for a in answered)


def test_a_finished_turn_lets_go_of_its_audio() -> None:
    caller = Caller(floor())
    caller.talk(400)
    (answer,) = of(Answer, caller.pause(600))
    turn = answer.turn
    assert len(turn.audio) > 0 and turn.audio_s > 0.4
    turn.caller_text = "Are you open today?"
    granted, _ = caller.floor.take(turn)
    assert granted
    turn.reply.complete = True
    caller.floor.reply_done(turn)
    caller.floor.hang_up()
    assert turn.recorded and turn.audio == b"" and turn.audio_s > 0.4  # the length is kept
