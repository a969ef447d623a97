"""On a call the voice reads times, prices and ids as a person says them, while the transcript
and the history keep the words the model (or the business's greeting) wrote."""

from __future__ import annotations

import asyncio

import pytest

from tests import factories
from tests.fakes import FakeLLM, FakeSTT, FakeTTS, silence, tone
from tests.unit.calls.test_session import Phone, make_session

pytestmark = pytest.mark.looptime

GREETING = "Hi! We're open 7am-6pm, Monday-Saturday."
REPLY = "Your order A1042 ships at 10:00am. It cost $49.99."


async def test_the_voice_reads_the_speakable_form_and_the_transcript_keeps_the_written() -> None:
    phone = Phone()
    tts = FakeTTS()
    llm = FakeLLM(replies=[REPLY, "You're welcome."])
    session, recorder, _, _ = await make_session(
        phone,
        stt=FakeSTT(script=["Where is my order?", "Thanks."]),
        llm=llm,
        tts=tts,
        agent=factories.agent(greeting=GREETING),
    )
    phone.start()
    task = asyncio.create_task(session.run())
    await phone.until_heard()
    await phone.say(tone(0.6) + silence(1.2))
    await asyncio.sleep(4)
    await phone.say(tone(0.6) + silence(1.2))
    await asyncio.sleep(2)
    phone.stop()
    await asyncio.wait_for(task, 5)

    assert "Hi! We're open seven a.m. to six p.m., Monday to Saturday." in tts.spoken
    assert "Your order A, 1 0 4 2 ships at ten a.m." in tts.spoken
    assert "It cost 49 dollars and 99 cents." in tts.spoken
    assert not any(written in tts.spoken for written in (GREETING, "It cost $49.99."))

    agent_said = [t.agent_text for t in recorder.turns]
    assert GREETING in agent_said and REPLY in agent_said
    history = [m.content for m in llm.seen[-1] if m.role == "assistant"]
    assert history == [GREETING, REPLY]
