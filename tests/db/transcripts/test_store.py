"""ConversationStore: a call and a playground chat are stored the same way, a reply to a
transcript that moved on is refused, and one organization's calls never reach another's."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from app.calls.recorder import CallStart, CallSummary, TurnRecord, TurnTimings
from app.conversation.agent import AgentProfile
from app.db.database import Database
from app.db.models import Agent, Conversation, Message
from app.llm.base import Message as LLMMessage
from app.llm.base import ToolCall
from app.transcripts.call_recorder import StoreCallRecorder
from app.transcripts.costs import CallUsage
from app.transcripts.store import (
    CallEnd,
    ConversationNotFound,
    ConversationRef,
    ConversationStore,
    Opening,
    TranscriptMoved,
    TurnEntry,
)
from tests import factories
from tests.db.conftest import new_org

pytestmark = pytest.mark.integration

SETTINGS = factories.settings()

# One turn, as both channels would report it.
CALLER = "Where is my order A1042?"
AGENT = "It ships today."
TOOL_CALLS = [
    {
        "name": "check_order_status",
        "arguments": {"order_id": "A1042"},
        "ok": True,
        "result": {"order_id": "A1042", "status": "packed"},
        "latency_s": 0.12,
        "error": None,
    }
]
CITATIONS = [{"document_id": "d1", "document_name": "policies.pdf", "position": 4}]
ROUTING = {"tier": "flash", "reasons": ["tool turn"], "served": []}
TOKENS = {"flash": {"prompt": 812, "completion": 41}}
# Columns the database fills whatever the channel.
BOOKKEEPING = {"id", "org_id", "conversation_id", "created_at"}


async def make_agent(db: Database, org: uuid.UUID) -> uuid.UUID:
    async with db.tenant(org) as session:
        row = Agent(name="Desk", system_prompt="x", greeting="Hello!", voice_id="joe")
        session.add(row)
        await session.commit()
        return row.id


async def stored(db: Database, conversation_id: uuid.UUID) -> tuple[Conversation, list[Message]]:
    """The conversation and its messages, read across organizations (for assertions)."""
    async with db.system() as session:
        convo = await session.scalar(select(Conversation).where(Conversation.id == conversation_id))
        assert convo is not None
        rows = await session.scalars(
            select(Message)
            .where(Message.org_id == convo.org_id, Message.conversation_id == convo.id)
            .order_by(Message.seq)
        )
        return convo, list(rows)


def filled(row: Message) -> set[str]:
    """The columns a channel wrote on a message."""
    columns = {c.key for c in Message.__table__.columns} - BOOKKEEPING
    return {c for c in columns if getattr(row, c) not in (None, [], {}, "")}


def entry(t0: float, **fields: Any) -> TurnEntry:
    values: dict[str, Any] = {
        "caller_text": CALLER,
        "agent_text": AGENT,
        "intended_text": AGENT,
        "started_at": t0 + 5,
        "ended_at": t0 + 8,
        "latency": {"knowledge_s": 0.01, "first_text_s": 0.4, "total_s": 0.9},
        "model": "gemini-flash",
        "tool_calls": TOOL_CALLS,
        "citations": CITATIONS,
        "routing": ROUTING,
        "llm_tokens": TOKENS,
        **fields,
    }
    return TurnEntry(**values)


async def test_a_call_turn_and_a_playground_turn_are_stored_alike(db: Database) -> None:
    org = await new_org(db)
    agent_id = await make_agent(db, org)
    store = ConversationStore(db, SETTINGS)
    t0 = time.time()

    # The call path: the recorder, as a live call drives it.
    recorder = StoreCallRecorder(store)
    sid = f"CA{uuid.uuid4().hex}"
    agent = AgentProfile(
        id=str(agent_id), org_id=str(org), name="Desk", system_prompt="x", greeting="Hello!"
    )
    await recorder.call_started(CallStart(sid, "MZ1", agent, "+15550199", "+14155550100", t0))
    await recorder.turn_finished(
        TurnRecord(
            call_sid=sid,
            turn=1,
            caller_text=CALLER,
            agent_text=AGENT,
            agent_intended_text=AGENT,
            interrupted=False,
            started_at=t0 + 5,
            ended_at=t0 + 8,
            timings=TurnTimings(stt_s=0.2, llm_ttft_s=0.4, voice_to_voice_s=0.9),
            model="gemini-flash",
            citations=CITATIONS,
            llm_tokens=TOKENS,
            tool_calls=TOOL_CALLS,
            routing=ROUTING,
        )
    )
    await recorder.call_ended(CallSummary(sid, "MZ1", "completed", "hung up", t0, t0 + 30, 1))
    async with db.system() as session:
        call_id = await session.scalar(select(Conversation.id).where(Conversation.call_sid == sid))
    assert call_id is not None

    # The playground path: one message answered.
    chat = ConversationRef.new(org, t0)
    await store.open(chat, Opening(agent_id=agent_id, channel="playground"))
    assert await store.append_reply(chat, entry(t0), after_seq=0) == 2

    call, call_rows = await stored(db, call_id)
    play, play_rows = await stored(db, chat.id)
    assert (call.channel, play.channel) == ("phone", "playground")
    assert [(m.seq, m.role) for m in call_rows] == [(1, "caller"), (2, "agent")]
    assert [(m.seq, m.role) for m in play_rows] == [(1, "caller"), (2, "agent")]
    for from_call, from_play in zip(call_rows, play_rows, strict=True):
        assert filled(from_call) == filled(from_play)
        for column in ("text", "started_s", "ended_s", "intended_text", "model"):
            assert getattr(from_call, column) == getattr(from_play, column)
        for column in ("tool_calls", "citations", "routing"):
            assert getattr(from_call, column) == getattr(from_play, column)
    assert filled(call_rows[1]) >= {"tool_calls", "citations", "routing", "latency", "ended_s"}
    assert call_rows[1].started_s == 5.0 and call_rows[1].ended_s == 8.0
    # The same tokens cost the same; only a call adds minutes, listening and speaking.
    for part in ("llm", "llm_tokens"):
        assert call.cost[part] == play.cost[part]
    assert play.cost["llm"]["flash"] > 0 and play.cost["telephony"] == 0
    assert call.cost["billed_minutes"] == 1 and call.cost["total"] > play.cost["total"]


async def test_the_history_reads_back_as_the_engine_wrote_it(db: Database) -> None:
    org = await new_org(db)
    store = ConversationStore(db, SETTINGS)
    chat = ConversationRef.new(org, time.time())
    await store.open(chat, Opening(agent_id=await make_agent(db, org), channel="playground"))
    await store.append_reply(chat, entry(chat.started_at, node="ask_order"), after_seq=0)

    transcript = await store.read(org, chat.id)
    assert transcript.last_seq == 2 and transcript.current_node == "ask_order"
    call = ToolCall("check_order_status", {"order_id": "A1042"}, "call_2_0")
    user, asked, answered, said = transcript.history
    assert user == LLMMessage("user", CALLER)
    assert asked == LLMMessage("assistant", "", tool_calls=(call,))
    assert (answered.role, answered.name, answered.tool_call_id) == ("tool", call.name, call.id)
    assert json.loads(answered.content) == TOOL_CALLS[0]["result"]
    assert said == LLMMessage("assistant", AGENT)
    assert transcript.ref.started_at == pytest.approx(chat.started_at, abs=1e-3)


async def test_a_reply_to_a_transcript_that_moved_on_is_refused(db: Database) -> None:
    org = await new_org(db)
    store = ConversationStore(db, SETTINGS)
    chat = ConversationRef.new(org, time.time())
    await store.open(chat, Opening(agent_id=await make_agent(db, org), channel="playground"))
    t0 = chat.started_at

    # Two replies to the same (empty) transcript at once: one is stored, the other refused.
    outcomes = await asyncio.gather(
        store.append_reply(chat, entry(t0, agent_text="A", intended_text="A"), after_seq=0),
        store.append_reply(chat, entry(t0, agent_text="B", intended_text="B"), after_seq=0),
        return_exceptions=True,
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["TranscriptMoved", "int"]
    with pytest.raises(TranscriptMoved):
        await store.append_reply(chat, entry(t0), after_seq=0)
    convo, rows = await stored(db, chat.id)
    assert [m.seq for m in rows] == [1, 2]
    assert convo.cost["llm_tokens"] == TOKENS  # the refused replies cost nothing

    await store.append_reply(chat, entry(t0), after_seq=2, end_reason="the agent ended it")
    convo, rows = await stored(db, chat.id)
    assert len(rows) == 4 and convo.status == "completed" and convo.ended_at is not None
    assert convo.cost["llm_tokens"] == {"flash": {"prompt": 1624, "completion": 82}}


async def test_one_orgs_store_calls_never_touch_another_orgs_conversation(db: Database) -> None:
    org_a, org_b = await new_org(db, "A"), await new_org(db, "B")
    store = ConversationStore(db, SETTINGS)
    t0 = time.time()
    theirs = ConversationRef.new(org_b, t0)
    await store.open(
        theirs, Opening(agent_id=await make_agent(db, org_b), channel="phone", current_node="x")
    )
    await store.append_turn(theirs, entry(t0), after_seq=0)
    before, before_rows = await stored(db, theirs.id)

    # Org A naming org B's conversation, through every operation.
    as_a = ConversationRef(theirs.id, org_a, t0)
    with pytest.raises(ConversationNotFound):
        await store.read(org_a, theirs.id)
    with pytest.raises(ConversationNotFound):
        await store.append_turn(as_a, entry(t0, node="y"), after_seq=2)
    with pytest.raises(ConversationNotFound):
        await store.append_reply(as_a, entry(t0, node="y"), after_seq=2, end_reason="gone")
    end = CallEnd("completed", "done", t0 + 9, 9.0, CallUsage(llm_tokens=TOKENS), ["hi"], [])
    with pytest.raises(ConversationNotFound):
        await store.finish_call(as_a, end)

    after, after_rows = await stored(db, theirs.id)
    assert [m.id for m in after_rows] == [m.id for m in before_rows]
    assert (
        (after.status, after.current_node, after.cost, after.ended_at)
        == (
            before.status,
            before.current_node,
            before.cost,
            before.ended_at,
        )
        == ("in_progress", "x", {}, None)
    )
    async with db.system() as session:
        strays = await session.scalars(
            select(Message).where(Message.org_id == org_a, Message.conversation_id == theirs.id)
        )
        assert list(strays) == []
    assert (await store.read(org_b, theirs.id)).last_seq == 2
