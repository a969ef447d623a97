from app.calls.endpointing import TurnDetector, TurnEvent, TurnTiming, sounds_complete


def run(detector: TurnDetector, pattern: list[tuple[bool, int]]) -> list[tuple[TurnEvent, int]]:
    """Feed (is_speech, duration_ms) runs; return (event, at_ms)."""
    out, t = [], 0
    for speech, ms in pattern:
        for _ in range(ms // 20):
            out += [(d.event, d.at_ms) for d in detector.feed(speech, t)]
            t += 20
    return out


def test_a_complete_turn_produces_started_paused_done() -> None:
    events = run(TurnDetector(), [(False, 200), (True, 1000), (False, 800)])
    assert events == [
        (TurnEvent.STARTED, 200),
        (TurnEvent.PAUSED, 1400),
        (TurnEvent.DONE, 1700),
    ]


def test_a_breath_inside_a_sentence_pauses_and_resumes_without_ending() -> None:
    events = run(TurnDetector(), [(True, 600), (False, 300), (True, 600), (False, 600)])
    kinds = [e for e, _ in events]
    assert kinds == [
        TurnEvent.STARTED,
        TurnEvent.PAUSED,
        TurnEvent.RESUMED,
        TurnEvent.PAUSED,
        TurnEvent.DONE,
    ]


def test_a_click_is_not_speech() -> None:
    assert run(TurnDetector(), [(True, 40), (False, 1000)]) == []


def test_an_unfinished_sentence_waits_longer() -> None:
    detector = TurnDetector(TurnTiming(end_ms=500, end_incomplete_ms=1100))
    events = run(detector, [(True, 600), (False, 300)])
    assert [e for e, _ in events] == [TurnEvent.STARTED, TurnEvent.PAUSED]
    detector.hint_complete(False)
    more = [(d.event, d.at_ms) for t in range(900, 1700, 20) for d in detector.feed(False, t)]
    assert more == [(TurnEvent.DONE, 600 + 1100)]


def test_a_finished_sentence_ends_at_the_short_threshold() -> None:
    detector = TurnDetector(TurnTiming(end_ms=500, end_incomplete_ms=1100))
    events = run(detector, [(True, 600), (False, 300)])
    detector.hint_complete(True)
    more = [(d.event, d.at_ms) for t in range(900, 1500, 20) for d in detector.feed(False, t)]
    assert more == [(TurnEvent.DONE, 1100)]
    assert events[-1][0] is TurnEvent.PAUSED


def test_speech_duration_tracks_the_current_run() -> None:
    detector = TurnDetector()
    run(detector, [(True, 300)])
    assert detector.speaking and detector.current_speech_ms == 300


def test_sounds_complete() -> None:
    assert sounds_complete("Yes.")
    assert sounds_complete("What time do you open tomorrow?")
    assert not sounds_complete("I'd like to book a")
    assert not sounds_complete("I was wondering if, um,")
    assert not sounds_complete("So I need to talk to someone about the.")
    assert not sounds_complete("")
