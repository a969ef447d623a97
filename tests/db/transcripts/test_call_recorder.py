"""StoreCallRecorder: rows appear as the call happens, totals at the end, and a database
outage never reaches the call."""

from __future__ import annotations

import time
import uuid
from collections.abc import Coroutine
from typing import Any

import pytest

from app.call_state.live import LiveCallRecorder
from app.call_state.store import LiveCall, MemoryCallState
from app.calls.recorder import CallStart, CallSummary, TurnRecord, TurnTimings
from app.conversation.agent import AgentProfile
from app.db.database import Database
from app.db.models import Agent, Message
from app.transcripts.call_recorder import StoreCallRecorder
from app.transcripts.store import ConversationStore
from tests import factories
from tests.conversations import load_call
from tests.db.conftest import new_org

pytestmark = pytest.mark.integration

SETTINGS = factories.settings()


async def make_agent(db: Database) -> AgentProfile:
    org = await new_org(db)
    async with db.tenant(org) as session:
        row = Agent(name="Desk", system_prompt="x", greeting="Hello!", voice_id="joe")
        session.add(row)
        await session.commit()
    return AgentProfile(
        id=str(row.id), org_id=str(org), name="Desk", system_prompt="x", greeting="Hello!"
    )


def start(agent: AgentProfile, call_sid: str, t0: float) -> CallStart:
    return CallStart(call_sid, "MZ1", agent, "+15550199", "+14155550100", t0)


def turn(call_sid: str, n: int, t0: float, caller: str, agent: str, **kw: object) -> TurnRecord:
    return TurnRecord(
        call_sid=call_sid,
        turn=n,
        caller_text=caller,
        agent_text=agent,
        agent_intended_text=kw.pop("intended", agent),  # type: ignore[arg-type]
        interrupted=bool(kw.pop("interrupted", False)),
        started_at=t0 + n * 5,
        ended_at=t0 + n * 5 + 3,
        timings=TurnTimings(stt_s=0.2, llm_ttft_s=0.3, tts_ttfb_s=0.1, voice_to_voice_s=0.9),
        llm_tokens={"slm": {"prompt": 100, "completion": 20}} if caller else {},
        caller_audio_s=2.0 if caller else 0.0,
    )


saved = load_call


async def wait_for_messages(db: Database, call_sid: str, count: int) -> list[Message]:
    import asyncio

    for _ in range(100):
        _, messages = await saved(db, call_sid)
        if len(messages) >= count:
            return messages
        await asyncio.sleep(0.02)
    raise AssertionError(f"only {len(messages)} messages saved")


async def test_turns_are_saved_as_they_end_and_totals_at_the_end(db: Database) -> None:
    recorder = StoreCallRecorder(ConversationStore(db, SETTINGS))
    agent = await make_agent(db)
    sid, t0 = f"CA{uuid.uuid4().hex}", time.time()
    await recorder.call_started(start(agent, sid, t0))
    await recorder.turn_finished(turn(sid, 0, t0, "", "Hello!"))
    await recorder.turn_finished(turn(sid, 1, t0, "Thanks, that's great!", "You're welcome."))
    # Saved before the call ends: a crash now would keep both turns.
    messages = await wait_for_messages(db, sid, 3)
    assert [(m.role, m.text) for m in messages] == [
        ("agent", "Hello!"),
        ("caller", "Thanks, that's great!"),
        ("agent", "You're welcome."),
    ]
    assert messages[1].started_s == 5.0 and messages[2].ended_s == 8.0
    assert messages[2].latency["voice_to_voice_s"] == 0.9
    convo, _ = await saved(db, sid)
    assert convo is not None and convo.status == "in_progress"

    await recorder.turn_finished(
        turn(
            sid,
            2,
            t0,
            "Wait, this is wrong",
            "Sorry, I",
            intended="Sorry, I misheard.",
            interrupted=True,
        )
    )
    await recorder.call_ended(
        CallSummary(sid, "MZ1", "completed", "caller hung up", t0, t0 + 75, 3)
    )
    convo, messages = await saved(db, sid)
    assert convo is not None
    assert convo.status == "completed" and convo.duration_s == 75.0
    assert convo.cost["billed_minutes"] == 2 and convo.cost["telephony"] == pytest.approx(0.017)
    assert convo.cost["llm_tokens"] == {"slm": {"prompt": 200, "completion": 40}}
    assert convo.cost["stt_seconds"] == 4.0
    assert convo.sentiment is not None and convo.latency["turns"] == 3
    assert convo.latency["voice_to_voice_p50_s"] == 0.9
    last = messages[-1]
    assert (
        last.interrupted and last.text == "Sorry, I" and last.intended_text == "Sorry, I misheard."
    )


def without_waiting(step: Coroutine[Any, Any, None]) -> None:
    """Run `step` to its end in one go: it must not wait on anything (a database included)."""
    with pytest.raises(StopIteration):
        step.send(None)


async def test_a_database_outage_never_reaches_the_call(caplog: pytest.LogCaptureFixture) -> None:
    # Nothing listens here: every write fails, and the recorder must shrug it off.
    dead = Database("postgresql://postgres@127.0.0.1:9/none", pool_size=1)
    recorder = StoreCallRecorder(ConversationStore(dead, SETTINGS), flush_timeout_s=5)
    agent = AgentProfile(
        id=str(uuid.uuid4()), org_id=str(uuid.uuid4()), name="x", system_prompt="x", greeting="x"
    )
    sid, t0 = "CA-outage", time.time()
    # The call loop hands its records over and goes on: neither step waits for the database.
    without_waiting(recorder.call_started(start(agent, sid, t0)))
    without_waiting(recorder.turn_finished(turn(sid, 1, t0, "Hello?", "Hi.")))
    await recorder.call_ended(CallSummary(sid, "MZ1", "completed", "done", t0, t0 + 5, 1))
    assert "could not save to the database" in caplog.text  # failed, logged, not raised
    await dead.close()


async def test_live_call_state_follows_the_call() -> None:
    store = MemoryCallState()
    live = LiveCallRecorder(store)
    org = str(uuid.uuid4())
    agent = AgentProfile(id="a1", org_id=org, name="x", system_prompt="x", greeting="x")
    t0 = time.time()
    # Admission filed the call when its stream was let in.
    await store.put(LiveCall("CA-live", org, "a1", "replica-a", "+1555", "+1556", t0))
    await live.call_started(start(agent, "CA-live", t0))
    await live.turn_finished(turn("CA-live", 1, t0, "Are you open?", "Yes, until six."))
    (call,) = await store.live(org)
    assert call.turns == 1 and call.last_agent_text == "Yes, until six."
    assert call.replica == "replica-a"


async def test_live_state_is_written_only_into_the_calls_own_org() -> None:
    store = MemoryCallState()
    victim, attacker = str(uuid.uuid4()), str(uuid.uuid4())
    t0 = time.time()
    await store.put(LiveCall("CA-shared", victim, "a1", "replica-a", "+1555", "+1556", t0))
    # A recorder that started the same sid under another org writes nothing into this call.
    live = LiveCallRecorder(store)
    agent = AgentProfile(id="a2", org_id=attacker, name="x", system_prompt="x", greeting="x")
    await live.call_started(start(agent, "CA-shared", t0))
    await live.turn_finished(turn("CA-shared", 1, t0, "attacker words", "reply"))
    (call,) = await store.live(victim)
    assert call.turns == 0 and call.last_caller_text == ""
    await store.remove("CA-shared", attacker)
    assert [c.call_sid for c in await store.live(victim)] == ["CA-shared"]


async def test_citations_are_saved_with_the_agents_message(db: Database) -> None:
    recorder = StoreCallRecorder(ConversationStore(db, SETTINGS))
    agent = await make_agent(db)
    sid, t0 = f"CA{uuid.uuid4().hex}", time.time()
    await recorder.call_started(start(agent, sid, t0))
    record = turn(sid, 1, t0, "Can I return a part?", "Yes, within 30 days.")
    record.citations = [{"document_id": "d1", "document_name": "policies.pdf", "position": 4}]
    await recorder.turn_finished(record)
    await recorder.call_ended(CallSummary(sid, "MZ1", "completed", "done", t0, t0 + 20, 1))
    _, messages = await saved(db, sid)
    assert messages[-1].role == "agent" and messages[-1].citations == record.citations
    assert messages[0].citations == []
