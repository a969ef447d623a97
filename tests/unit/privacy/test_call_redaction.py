"""On a call, the caller's words and keys reach the model, the history and the stored transcript
with payment data cut out; an organization that turned redaction off gets them as said. Runs the
real CallSession against scripted engines (tests/unit/calls/test_session.py's phone)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from app.observability.logs import install_log_privacy
from app.privacy import CARD_NUMBER, MASKED_KEY_PRESS, SECURITY_CODE
from tests import factories
from tests.fakes import FakeLLM, FakeSTT, silence, tone
from tests.unit.calls.test_session import Phone, make_session

pytestmark = pytest.mark.looptime

SAID = "my card is four two four two four two four two four two four two four two four two"
CODE = "and the code on the back is one two three"


async def call(phone: Phone, *, redact: bool, stt: FakeSTT, llm: FakeLLM) -> list[str]:
    """A call in which the caller says the STT's script, one utterance each; what was stored."""
    agent = factories.agent(redact_payment_data=redact)
    session, recorder, _, _ = await make_session(phone, stt=stt, llm=llm, agent=agent)
    phone.start()
    task = asyncio.create_task(session.run())
    await phone.until_heard()
    for _ in range(len(stt.script)):
        await phone.say(tone(0.6) + silence(1.2))
        await phone.until_heard()
    phone.stop()
    await asyncio.wait_for(task, 10)
    return [t.caller_text for t in recorder.turns if t.caller_text]


async def test_a_spoken_card_number_and_code_never_reach_the_model_or_the_transcript() -> None:
    phone = Phone()
    llm = FakeLLM(replies=["Thanks.", "Got it."])
    stored = await call(phone, redact=True, stt=FakeSTT(script=[SAID, CODE]), llm=llm)
    assert stored == [
        f"my card is {CARD_NUMBER}",
        f"and the code on the back is {SECURITY_CODE}",
    ]
    prompts = " ".join(m.content for prompt in llm.seen for m in prompt)
    assert "four two" not in prompts and "one two three" not in prompts
    assert CARD_NUMBER in prompts  # the second turn's history holds the redacted first


async def test_an_org_that_turned_redaction_off_keeps_the_words() -> None:
    phone = Phone()
    llm = FakeLLM(replies=["Thanks.", "Got it."])
    stored = await call(phone, redact=False, stt=FakeSTT(script=[SAID, CODE]), llm=llm)
    assert stored == [SAID, CODE]
    assert llm.seen[0][-1].content == SAID


async def test_a_card_number_keyed_in_is_stored_and_logged_without_its_digits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    factory = logging.getLogRecordFactory()
    install_log_privacy()  # as configure_logging does in the ingress
    try:
        phone = Phone()
        llm = FakeLLM(reply_for=lambda messages: "Go on.")
        session, recorder, _, _ = await make_session(phone, llm=llm, agent=factories.agent())
        phone.start()
        task = asyncio.create_task(session.run())
        await phone.until_heard()
        with caplog.at_level(logging.INFO):
            for digit in "4242424242424242":
                phone.press(digit)
                await asyncio.sleep(0.4)
            await asyncio.sleep(2)
        phone.stop()
        await asyncio.wait_for(task, 10)
    finally:
        logging.setLogRecordFactory(factory)

    keyed = [t.caller_text for t in recorder.turns if t.caller_text]
    assert len(keyed) == 16, keyed
    assert keyed[0] == "(The caller pressed 4 on the keypad.)"
    assert set(keyed[1:]) == {MASKED_KEY_PRESS}
    later_prompts = [m.content for prompt in llm.seen[1:] for m in prompt if m.role == "user"]
    assert all("pressed 2" not in text for text in later_prompts)
    assert "pressed 2" not in caplog.text and "pressed 4" not in caplog.text
