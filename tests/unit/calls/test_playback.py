from app.calls.playback import MARK_EVERY_FRAMES, Reply

FRAME = b"\xff" * 160


def reply_with(pieces: list[tuple[str, int]]) -> Reply:
    reply = Reply(turn=3)
    for text, n in pieces:
        reply.begin_piece(text)
        reply.add_frames([FRAME] * n)
        reply.end_piece()
    reply.complete = True
    return reply


def test_marks_every_200ms_and_at_each_sentence_end() -> None:
    reply = reply_with([("Hello there.", 15), ("How can I help?", 10)])
    marks = [reply.mark_after(i) for i in range(len(reply.frames))]
    named = [(i, m) for i, m in enumerate(marks) if m]
    assert named == [(9, "3:0:10"), (14, "3:0:15"), (19, "3:0:20"), (24, "3:0:25")]
    assert MARK_EVERY_FRAMES == 10


def test_played_text_follows_echoed_marks() -> None:
    reply = reply_with([("Hello there.", 10), ("We open at nine tomorrow morning.", 20)])
    assert reply.text(played=True) == ""
    assert reply.on_mark("3:0:10")
    assert reply.text(played=True) == "Hello there."
    assert reply.on_mark("3:0:20")
    assert reply.text(played=True) == "Hello there. We open at…"
    reply.on_mark("3:0:30")
    assert reply.finished_playing
    assert reply.text(played=True) == reply.full_text


def test_an_aside_is_heard_and_transcribed_but_is_not_the_answer() -> None:
    reply = Reply(turn=3)
    for text, aside in (("One moment, please.", True), ("We open at nine.", False)):
        reply.begin_piece(text, aside=aside)
        reply.add_frames([FRAME] * 10)
        reply.end_piece()
    assert reply.full_text == "One moment, please. We open at nine."
    assert reply.text(asides=False) == "We open at nine."
    reply.on_mark("3:0:10")
    assert reply.text(played=True) == "One moment, please."
    assert reply.text(played=True, asides=False) == ""


def test_clear_drops_marks_of_the_old_epoch_and_rewinds() -> None:
    reply = reply_with([("One two three four.", 30)])
    reply.released = True
    reply.sent = 30
    reply.on_mark("3:0:10")
    reply.rewind_to_played()
    assert reply.sent == 10 and reply.epoch == 1
    assert not reply.on_mark("3:0:20"), "echo of a cleared mark must not count as played"
    assert reply.played == 10
    assert not reply.on_mark("4:1:20") and not reply.on_mark("garbage")
