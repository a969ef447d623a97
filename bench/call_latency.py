"""Latency of whole simulated phone calls, for many caller voices and three kinds of agent.

Each call is placed exactly as Twilio would (signed webhook, real-time Media Streams, marks
echoed by a simulated phone). The caller is not the server's own voice: every question set is
spoken by each caller voice of `harness.simulator.voices` (Piper at several speeds, espeak-ng
American, English, Scottish and female voices at their own rates and pitches; pauses at commas
and around an "um", background noise, the phone band). Three agents answer, created through
the REST API: a plain prompt-only agent, the demo agent (the seeded demo organization's number)
and an agent with tools (orders and stock at `harness.demo_backend`) and a knowledge base
uploaded from `bench/data/bakery-handbook.md`.

Per turn, the clock starts at the last audible frame of the caller's speech and stops at
- first audio: the first audible frame the agent sends back, whatever it is;
- answer: when the caller hears the first audible frame of the actual answer (after any
  holding phrase before it has played). A holding phrase ("One moment,
  please." while the model is slow, "Let me check that for you." while a tool runs) is not the
  answer: the server's saved turn record says which replies began with one, and the marks that
  follow each sentence say where its audio ends. An apology is no answer at all.
The caller waits for the whole answer: `--patience` seconds of quiet after the agent's audio,
and `--hold-patience` after a reply no longer than a holding phrase (the model may take many
seconds after one on a slow CPU).

Also reported: the server's per-stage times from its turn records, completed calls, barge-in
(the caller's first frame → `clear`), and the CPU-seconds per call of the server's processes
(Ray's and the embedded Postgres's, net of their idle use measured before the calls).

Run: .venv/bin/python bench/call_latency.py [--quick] [--calls 1] [--concurrency 4]
     [--voices piper-joe,espeak-us] [--agents prompt,demo,tools] [--url URL]
Without --url it starts graph:app on a local Ray cluster (as `make run` does). With --url the
server must use the same database as this process (DATABASE_URL, or the embedded one under
var/) and allow tool URLs on 127.0.0.1 (VELOX_ALLOW_PRIVATE_TOOL_URLS=true).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import math
import os
import platform
import random
import re
import socket
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.settings import Settings, get_settings  # noqa: E402
from harness.simulator.caller import CallerTurn, CallResult, SimulatedCall  # noqa: E402
from harness.simulator.phone import is_audible  # noqa: E402
from harness.simulator.voices import VOICES, CallerVoice, select_voices  # noqa: E402

HANDBOOK = ROOT / "bench/data/bakery-handbook.md"
DEMO_NUMBER = "+15550100"  # claimed by nobody: the demo organization's agent answers it
STAGES = ("end_of_turn_s", "stt_s", "llm_ttft_s", "tts_ttfb_s", "voice_to_voice_s")
# The longest a holding phrase lasts (1.3-1.4 s with the shipped voice), with room to spare.
HOLD_MAX_S = 1.8
FRAME_S = 0.02  # one media message: 160 mu-law bytes
MARK_EVERY_FRAMES = 10  # the server marks every 10th frame, and the end of every sentence
QUICK_VOICES = ("piper-joe-slow", "espeak-gb-rp", "espeak-us-f3")


@dataclass(frozen=True)
class AgentSpec:
    """An agent under test and what its callers ask."""

    name: str
    questions: tuple[str, ...]
    fields: dict[str, Any] = field(default_factory=dict)  # POST /api/agents (None: the demo)


AGENTS = {
    "prompt": AgentSpec(
        "prompt",
        (
            "Hello, are you open on Friday afternoons?",
            "How much does a cleaning cost?",
            "Do you take new patients, and which insurance do you accept?",
            "What is your address?",
        ),
        {
            "name": "Harbor Dental front desk",
            "system_prompt": "You answer the phone for Harbor Dental, 40 Pier Road. Open 8 am "
            "to 5 pm, Monday to Friday. A cleaning costs 95 dollars. New patients are welcome; "
            "we accept most dental insurance plans. "
            "Reply in one or two short, friendly spoken sentences.",
            "greeting": "Harbor Dental, how can I help you?",
        },
    ),
    "demo": AgentSpec(
        "demo",
        (
            "Hi, what time do you open on Saturday?",
            "Where can I park my car?",
            "Can I order a birthday cake for Friday?",
            "Do you bake croissants?",
        ),
    ),
    "tools": AgentSpec(
        "tools",
        (
            "Hi, where is my order A1042?",
            "Do you have almond croissants in stock today?",
            "What is your refund policy on cakes?",
            "Do you deliver, and how much does delivery cost?",
        ),
        {
            "name": "Rosa's Bakery order desk",
            "system_prompt": "You answer the phone for Rosa's Bakery. Look orders and stock up "
            "with the tools; answer questions about policies from the handbook. "
            "Reply in one or two short, friendly spoken sentences.",
            "greeting": "Rosa's Bakery order desk, how can I help?",
            "tools": ["check_order_status", "check_item_stock"],
        },
    ),
}
BARGE_IN_LINE = "Where can I park?"


# --- numbers -----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def summary(values: list[float]) -> dict[str, Any]:
    """n, p50, p95, mean, max in seconds."""
    return {
        "n": len(values),
        "p50": _r(percentile(values, 50)),
        "p95": _r(percentile(values, 95)),
        "mean": _r(statistics.fmean(values)) if values else None,
        "max": _r(max(values)) if values else None,
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# --- the caller --------------------------------------------------------------------------------


class BenchCall(SimulatedCall):
    """A simulated call that keeps the marks it receives (with their arrival times) and waits
    longer after a reply that may be only a holding phrase."""

    def __init__(self, *args: Any, hold_patience_s: float, **kwargs: Any) -> None:
        super().__init__(*args, on_event=self._record_event, **kwargs)
        self.hold_patience_s = hold_patience_s
        self.marks: list[tuple[float, str]] = []

    def _record_event(self, name: str, data: dict[str, Any]) -> None:
        if name == "recv.mark":
            # Called while the mark is handled, after the media before it was logged.
            self.marks.append((self._now(), str(data["name"])))

    async def _wait_reply_done(self, *, since: float) -> float | None:
        """As SimulatedCall's, but after a reply no longer than a holding phrase the caller
        waits `hold_patience_s`: the answer may be coming after it. (It cannot tell a holding
        phrase from a short answer while the call goes on; a short answer costs a wait.)"""
        times = [t for t, _ in self._media_log]

        def done() -> float | None:
            first = self._first_audible(since)
            end = self._playback.last_audible_end
            if first is None or end < first or not self._playback.idle:
                return None  # nothing yet, or audio has arrived that has not played yet
            times[len(times) :] = [t for t, _ in self._media_log[len(times) :]]
            start = bisect.bisect_right(times, since)
            heard_s = sum(len(a) for _, a in self._media_log[start:]) / 8000
            patience = self.hold_patience_s if heard_s <= HOLD_MAX_S else self.reply_silence_s
            return end if self._now() - end >= patience else None

        return await self._wait_for(done, self.timeout_s)


@dataclass
class CallPlan:
    """One call to place: which agent, which voice, what to say."""

    agent: str
    voice: str
    number: str
    lines: list[str]
    audios: list[bytes]
    phase: str
    delay_s: float = 0.0
    barge_in: bool = False


@dataclass
class PlacedCall:
    """A call placed, and what the simulator saw of it."""

    plan: CallPlan
    call: BenchCall | None
    result: CallResult | None
    error: str | None = None


async def place(
    url: str, plan: CallPlan, token: str | None, args: argparse.Namespace
) -> PlacedCall:
    """Place one planned call; a failed setup is recorded, not raised."""
    await asyncio.sleep(plan.delay_s)
    if plan.barge_in:
        turns = [
            CallerTurn(audio_pcm16_8k=plan.audios[0], text=plan.lines[0], barge_in_after_s=1.0)
        ]
    else:
        turns = [
            CallerTurn(audio_pcm16_8k=a, text=q)
            for a, q in zip(plan.audios, plan.lines, strict=True)
        ]
    call = BenchCall(
        url,
        turns,
        to_number=plan.number,
        auth_token=token,
        timeout_s=args.turn_timeout,
        reply_silence_s=args.patience,
        hold_patience_s=args.hold_patience,
    )
    try:
        return PlacedCall(plan, call, await call.run())
    except Exception as exc:  # one failed call is a result, not the end of the run
        return PlacedCall(plan, call, None, error=repr(exc))


# --- what the server recorded ------------------------------------------------------------------


@dataclass
class AgentMessage:
    """An agent message the server saved: when its turn ran, what it said, its stage times."""

    started_s: float
    ended_s: float | None
    intended_text: str
    latency: dict[str, float]


async def saved_messages(
    settings: Settings, call_sids: list[str], wait_s: float = 20
) -> dict[str, list[AgentMessage]]:
    """The agent messages of these calls (in Postgres, as the dashboard shows them), once each
    call's record is closed (the server saves a call's last turns as it ends)."""
    from sqlalchemy import select

    from app.db.database import Database
    from app.db.models import Conversation, Message
    from app.db.setup import database_url

    db = Database(database_url(settings), pool_size=1)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            async with db.system() as session:
                open_calls = await session.scalar(
                    select(Conversation.id)
                    .where(
                        Conversation.call_sid.in_(call_sids),
                        Conversation.status == "in_progress",
                    )
                    .limit(1)
                )
                if open_calls is None or time.monotonic() > deadline:
                    rows = await session.execute(
                        select(Conversation.call_sid, Message)
                        .join(Message, Message.conversation_id == Conversation.id)
                        .where(Conversation.call_sid.in_(call_sids), Message.role == "agent")
                        .order_by(Message.seq)
                    )
                    out: dict[str, list[AgentMessage]] = {}
                    for call_sid, message in rows:
                        out.setdefault(call_sid, []).append(
                            AgentMessage(
                                started_s=message.started_s or 0.0,
                                ended_s=message.ended_s,
                                intended_text=message.intended_text or message.text,
                                latency=dict(message.latency or {}),
                            )
                        )
                    return out
            await asyncio.sleep(0.5)
    finally:
        await db.close()


# --- per-turn analysis -------------------------------------------------------------------------


@dataclass
class ServerTurn:
    """One server turn's audio as it arrived: frame index → (arrival time, audible)."""

    turn: int
    frames: dict[int, tuple[float, bool]] = field(default_factory=dict)
    piece_ends: list[int] = field(default_factory=list)  # mark counts (frames sent so far)

    @property
    def first_at(self) -> float:
        return min(t for t, _ in self.frames.values())

    def first_audible_from(self, index: int, after: float) -> tuple[float, float] | None:
        """When the first audible frame from `index` on (arriving after `after`) arrives, and
        when the caller hears it: a phone plays frames in order, each once it has arrived and
        the one before has played, so an answer that arrives during a holding phrase is heard
        after it."""
        played_until = -math.inf
        for i in sorted(self.frames):
            arrived, audible = self.frames[i]
            starts = max(arrived, played_until)
            played_until = starts + FRAME_S
            if i >= index and audible and arrived > after:
                return arrived, starts
        return None

    def first_piece_end(self) -> int:
        """Where the first sentence's audio ends. A mark that is not on a 10-frame boundary ends
        a sentence; one on a boundary may, so among those before it the first after which the
        audio paused on its way (the next sentence was still being made) is taken."""
        counts = sorted(set(self.piece_ends))
        sure = next((c for c in counts if c % MARK_EVERY_FRAMES), None)
        candidates = [c for c in counts if sure is None or c < sure]
        for count in candidates:
            before, after = self.frames.get(count - 1), self.frames.get(count)
            if before and after and after[0] - before[0] >= 0.04:
                return count
        return sure if sure is not None else (counts[-1] if counts else 0)


def server_turns(call: BenchCall) -> dict[int, ServerTurn]:
    """The agent's audio by server turn, from the media and the marks in arrival order: each
    mark `turn:epoch:count` follows the frame `count - 1` of that turn's reply."""
    events = [(t, 0, audio) for t, audio in call._media_log] + [(t, 1, n) for t, n in call.marks]
    events.sort(key=lambda e: (e[0], e[1]))
    turns: dict[int, ServerTurn] = {}
    pending: list[tuple[float, bool]] = []
    for at, kind, payload in events:
        if kind == 0:
            assert isinstance(payload, bytes)
            pending.append((at, is_audible(payload)))
            continue
        try:
            turn_id, _epoch, count = (int(p) for p in str(payload).split(":"))
        except ValueError:
            pending = []
            continue
        turn = turns.setdefault(turn_id, ServerTurn(turn_id))
        for offset, frame in enumerate(pending):
            # The first arrival counts: a frame sent again after a `clear` is not news.
            turn.frames.setdefault(count - len(pending) + offset, frame)
        turn.piece_ends.append(count)
        pending = []
    return {k: v for k, v in turns.items() if v.frames}


@dataclass
class TurnStat:
    """One caller turn of a call, measured."""

    agent: str
    voice: str
    phase: str
    call_sid: str
    question: str
    first_audio_s: float | None
    answer_s: float | None  # heard
    answer_arrived_s: float | None  # its first frame reached the phone
    opened_with: str | None  # the holding phrase the reply began with, if any
    apology: bool
    server_turns: int  # how many server turns answered it (a pause may split a question)


def analyse(placed: PlacedCall, messages: list[AgentMessage]) -> list[TurnStat]:
    """First-audio and answer latency of each caller turn of a finished call."""
    from app.calls.responder import APOLOGY
    from app.conversation.engine import MODEL_HOLDING_PHRASE, TOOL_HOLDING_PHRASE

    call, result, plan = placed.call, placed.result, placed.plan
    if call is None or result is None or result.rejected or result.opened_at is None:
        return []
    origin = result.opened_at
    by_turn = server_turns(call)
    starts = [t.started_at for t in result.turns]
    stats = []
    for position, turn in enumerate(result.turns):
        if turn.speech_end_at is None:
            continue
        window_end = starts[position + 1] if position + 1 < len(starts) else math.inf
        answer: tuple[float, float] | None = None
        opened_with, apology, count = None, False, 0
        for server in sorted(by_turn.values(), key=lambda s: s.first_at):
            first = server.first_at
            if not turn.speech_end_at < first < window_end:
                continue
            count += 1
            record = _record_for(messages, first - origin)
            text = record.intended_text if record else ""
            if text.startswith(APOLOGY):
                apology = True
                continue
            skip = 0
            for phrase in (TOOL_HOLDING_PHRASE, MODEL_HOLDING_PHRASE):
                if text.startswith(phrase):
                    opened_with, skip = phrase, server.first_piece_end()
            found = server.first_audible_from(skip, turn.speech_end_at)
            if found is not None and (answer is None or found[1] < answer[1]):
                answer = found
        stats.append(
            TurnStat(
                agent=plan.agent,
                voice=plan.voice,
                phase=plan.phase,
                call_sid=result.call_sid,
                question=turn.text or "",
                first_audio_s=_r(turn.voice_to_voice_s),
                answer_s=_r(answer[1] - turn.speech_end_at) if answer else None,
                answer_arrived_s=_r(answer[0] - turn.speech_end_at) if answer else None,
                opened_with=opened_with,
                apology=apology,
                server_turns=count,
            )
        )
    return stats


def _record_for(messages: list[AgentMessage], at_s: float) -> AgentMessage | None:
    """The saved message of the server turn whose audio began `at_s` into the call: the latest
    turn that had started by then and had not ended (the server's clock and the caller's
    differ by the time the stream took to open: a little slack)."""
    slack = 0.5
    fits = [
        m
        for m in messages
        if m.started_s - slack <= at_s and (m.ended_s is None or at_s <= m.ended_s + slack)
    ]
    return max(fits, key=lambda m: m.started_s) if fits else None


def completed(placed: PlacedCall) -> bool:
    """The call connected, every turn was answered, the caller hung up, Twilio saw no fault."""
    r = placed.result
    return (
        r is not None
        and placed.error is None
        and not r.rejected
        and not r.greeting_timed_out
        and not any(t.timed_out for t in r.turns)
        and r.ended_by == "caller"
        and not r.violations
    )


# --- server CPU --------------------------------------------------------------------------------


class ServerCpu:
    """CPU-seconds used by the server's processes: Ray's (GCS, raylet, workers: the replicas and
    the proxy) and the embedded Postgres's."""

    def __init__(self, settings: Settings, *, local: bool) -> None:
        self._local = local
        self._pg_dir = str(settings.server.velox_data_dir / "postgres")

    def processes(self) -> dict[str, list[Any]]:
        import psutil

        ray: list[Any] = []
        postgres: list[Any] = []
        me = os.getpid()
        if self._local:
            # Everything Ray runs hangs under this process (ray.init started it).
            ray = [p for p in psutil.Process(me).children(recursive=True) if _name(p) != "postgres"]
        for proc in psutil.process_iter(["name", "cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if proc.info["name"] == "postgres" and self._pg_dir in cmdline:
                postgres.append(proc)
                postgres.extend(proc.children(recursive=True))
            elif (
                not self._local
                and proc.pid != me
                and (proc.info["name"] in ("raylet", "gcs_server") or cmdline.startswith("ray::"))
            ):
                ray.append(proc)
        roles: dict[str, list[Any]] = {}
        for proc in ray:  # the same processes again, by what they do
            roles.setdefault(f"ray:{_role(proc)}", []).append(proc)
        return {"ray": ray, "postgres": postgres, **dict(sorted(roles.items()))}

    def sample(self) -> dict[str, dict[int, float]]:
        """CPU-seconds so far, by group and process."""
        import psutil

        out: dict[str, dict[int, float]] = {}
        for group, procs in self.processes().items():
            seen: dict[int, float] = {}
            for proc in procs:
                try:
                    times = proc.cpu_times()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                seen[proc.pid] = times.user + times.system
            out[group] = seen
        return out

    @staticmethod
    def used(
        before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
    ) -> dict[str, float]:
        """CPU-seconds between two samples (a process born in between counts from zero)."""
        return {
            group: sum(cpu - before.get(group, {}).get(pid, 0.0) for pid, cpu in seen.items())
            for group, seen in after.items()
        }


def _role(proc: Any) -> str:
    """A Ray process's part: a replica's deployment ("slm"), "proxy", "controller" or "other"."""
    try:
        title = " ".join(proc.cmdline())
    except Exception:  # gone meanwhile
        return "other"
    if replica := re.match(r"ray::ServeReplica:[^:]+:([\w-]+)", title):
        return replica.group(1)
    if title.startswith("ray::ProxyActor"):
        return "proxy"
    return "controller" if title.startswith("ray::ServeController") else "other"


def _name(proc: Any) -> str:
    try:
        return str(proc.name())
    except Exception:  # gone or not ours: not a server process then
        return ""


@contextmanager
def measured(cpu: ServerCpu, into: dict[str, Any]) -> Iterator[None]:
    """Wall time and server CPU-seconds of the block, into `into`."""
    before, started = cpu.sample(), time.monotonic()
    yield
    into["wall_s"] = time.monotonic() - started
    into["cpu_s"] = ServerCpu.used(before, cpu.sample())


# --- setting up the agents ---------------------------------------------------------------------


@contextmanager
def demo_backend() -> Iterator[str]:
    """The example business API (orders, stock) that the tools agent calls, on a free port."""
    from harness.demo_backend import create_demo_backend
    from harness.serving import serving

    with serving(create_demo_backend()) as url:
        yield url


async def create_agents(
    url: str, settings: Settings, wanted: list[str], backend_url: str
) -> dict[str, str]:
    """The phone number of each wanted agent: the demo's unclaimed number, and new agents of a
    new organization (created as `velox org create` does; the agents through the REST API)."""
    import httpx

    from app.db.organizations import create_org_with_key

    numbers = {"demo": DEMO_NUMBER} if "demo" in wanted else {}
    new = [name for name in wanted if name != "demo"]
    if not new:
        return numbers
    run = int(time.time())
    _, key = await create_org_with_key(settings, f"Call benchmark {run}", "bench")
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as api:
        for position, name in enumerate(new):
            fields = dict(AGENTS[name].fields)
            if name == "tools":
                fields["knowledge_base_id"] = await upload_handbook(api)
                fields["tool_settings"] = {"urls": {tool: backend_url for tool in fields["tools"]}}
            created = await api.post("/api/agents", json=fields)
            if created.status_code != 201:
                raise RuntimeError(
                    f"creating the {name} agent: {created.status_code} {created.text}"
                )
            for attempt in range(20):
                number = f"+1628{(run * 7 + position * 1009 + attempt) % 10**7:07d}"
                assigned = await api.post(
                    "/api/phone-numbers", json={"number": number, "agent_id": created.json()["id"]}
                )
                if assigned.status_code == 201:
                    numbers[name] = number
                    break
                if assigned.status_code != 409:
                    raise RuntimeError(
                        f"assigning {number}: {assigned.status_code} {assigned.text}"
                    )
            else:
                raise RuntimeError(f"no free number for the {name} agent")
    return numbers


async def upload_handbook(api: Any) -> str:
    """Upload the bakery handbook; wait until it is searchable; return its knowledge base."""
    upload = await api.post(
        "/api/documents/upload",
        files={"file": (HANDBOOK.name, HANDBOOK.read_bytes(), "text/markdown")},
    )
    if upload.status_code != 202:
        raise RuntimeError(f"uploading the handbook: {upload.status_code} {upload.text}")
    document = upload.json()
    deadline = time.monotonic() + 120
    while document["status"] not in ("ready", "failed") and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        document = (await api.get(f"/api/documents/{document['id']}")).json()
    if document["status"] != "ready":
        raise RuntimeError(f"the handbook was not ingested: {document}")
    return str(document["knowledge_base_id"])


# --- the run -----------------------------------------------------------------------------------


def speak_all(
    voices: list[CallerVoice], agents: list[str], turns: int, calls: int
) -> dict[tuple[str, str, int], list[bytes]]:
    """Every line each voice will say, by (voice, line, call index): made before the server
    starts, so that synthesizing them takes no CPU from it."""
    lines = {q for a in agents for q in AGENTS[a].questions[:turns]} | {BARGE_IN_LINE}
    audio: dict[tuple[str, str, int], list[bytes]] = {}
    for voice in voices:
        for line in sorted(lines):
            for seed in range(calls):
                audio[(voice.name, line, seed)] = [voice.speak(line, seed=seed)]
    from harness.simulator.voices import _piper_model

    _piper_model.cache_clear()  # the Piper graph (~60 MB) is not needed any more
    return audio


def plan_calls(
    args: argparse.Namespace,
    voices: list[CallerVoice],
    agents: list[str],
    numbers: dict[str, str],
    audio: dict[tuple[str, str, int], list[bytes]],
) -> tuple[list[CallPlan], list[CallPlan], list[list[CallPlan]]]:
    """Sequential calls (each agent with each voice), barge-in calls, concurrent rounds."""

    def plan(agent: str, voice: str, seed: int, phase: str, rotate: int = 0) -> CallPlan:
        lines = list(AGENTS[agent].questions[: args.turns])
        lines = lines[rotate:] + lines[:rotate]
        audios = [audio[(voice, line, seed)][0] for line in lines]
        return CallPlan(agent, voice, numbers[agent], lines, audios, phase)

    sequential = [
        plan(agent, voice.name, seed, "sequential")
        for seed in range(args.calls)
        for agent in agents
        for voice in voices
    ]
    barge_agent = "demo" if "demo" in agents else agents[0]
    barge = [
        CallPlan(
            barge_agent,
            voice.name,
            numbers[barge_agent],
            [BARGE_IN_LINE],
            audio[(voice.name, BARGE_IN_LINE, 0)],
            "barge_in",
            barge_in=True,
        )
        for voice in voices
    ]
    rounds: list[list[CallPlan]] = []
    rng = random.Random(20261125)
    if args.concurrency > 1:
        combos = [(a, v.name) for a in agents for v in voices]
        for index in range(args.rounds):
            group = []
            for slot in range(args.concurrency):
                agent, voice = combos[(index * args.concurrency + slot) % len(combos)]
                # Real calls overlap but do not dial in lockstep: each starts at a random moment
                # in the first `stagger` seconds and asks its questions in its own order.
                call = plan(agent, voice, 0, f"concurrent_{args.concurrency}", rotate=slot)
                call.delay_s = rng.uniform(0, args.stagger)
                group.append(call)
            rounds.append(group)
    return sequential, barge, rounds


async def run(
    url: str, args: argparse.Namespace, settings: Settings, local: bool
) -> dict[str, Any]:
    """Set the agents up, warm up, measure idle CPU, place the calls; the report's body."""
    token = (
        settings.telephony.twilio_auth_token.get_secret_value()
        if settings.telephony.twilio_auth_token
        else None
    )
    voices, agents = args.voice_list, args.agent_list
    cpu = ServerCpu(settings, local=local)
    with demo_backend() as backend_url:
        numbers = await create_agents(url, settings, agents, backend_url)
        sequential, barge, rounds = plan_calls(args, voices, agents, numbers, args.audio)
        # Warm-up: one short call per agent (its greeting and stock phrases cached, the model's
        # prompt for that agent seen once); not measured.
        for agent in agents:
            warm = next(p for p in sequential if p.agent == agent)
            warm = CallPlan(agent, warm.voice, warm.number, warm.lines[:1], warm.audios[:1], "warm")
            await place(url, warm, token, args)
        await asyncio.sleep(2)
        idle: dict[str, Any] = {}
        with measured(cpu, idle):
            await asyncio.sleep(args.idle)
        idle_rate = {g: s / idle["wall_s"] for g, s in idle["cpu_s"].items()}

        phases: dict[str, list[PlacedCall]] = {}
        usage: dict[str, dict[str, Any]] = {}
        usage["sequential"] = {}
        with measured(cpu, usage["sequential"]):
            phases["sequential"] = [await place(url, p, token, args) for p in sequential]
        if rounds:
            name = f"concurrent_{args.concurrency}"
            usage[name] = {}
            placed: list[PlacedCall] = []
            with measured(cpu, usage[name]):
                for group in rounds:
                    placed += await asyncio.gather(*(place(url, p, token, args) for p in group))
            phases[name] = placed
        barge_calls = [await place(url, p, token, args) for p in barge]

    every = [p for group in phases.values() for p in group]
    sids = [p.result.call_sid for p in every if p.result is not None]
    messages = await saved_messages(settings, sids)

    report: dict[str, Any] = {"agents": {a: numbers[a] for a in agents}}
    report["idle_cpu_per_s"] = {g: round(v, 4) for g, v in idle_rate.items()}
    all_turns: list[TurnStat] = []
    for name, group in phases.items():
        stats = [s for p in group for s in analyse(p, messages.get(_sid(p), []))]
        all_turns += stats
        block = phase_block(group, stats, messages)
        wall = usage[name]["wall_s"]
        net = {
            g: usage[name]["cpu_s"].get(g, 0.0) - idle_rate.get(g, 0.0) * wall
            for g in usage[name]["cpu_s"]
        }
        block["server_cpu"] = {
            "wall_s": round(wall, 1),
            "cpu_s": {g: round(v, 1) for g, v in usage[name]["cpu_s"].items()},
            "net_cpu_s_per_call": {g: round(v / max(1, len(group)), 2) for g, v in net.items()},
        }
        report[name] = block
    stops = [
        t.barge_in_stop_s
        for p in barge_calls
        if p.result is not None
        for t in p.result.turns
        if t.barge_in_stop_s is not None
    ]
    report["barge_in_stop_s"] = summary(stops)
    report["barge_in_calls"] = len(barge_calls)
    report["turns"] = [asdict(s) for s in all_turns]
    report["failed_calls"] = [
        {
            "agent": p.plan.agent,
            "voice": p.plan.voice,
            "phase": p.plan.phase,
            "error": p.error,
            "call": p.result.to_dict() if p.result is not None else None,
        }
        for p in every + barge_calls
        if not completed(p)
    ]
    return report


def _sid(placed: PlacedCall) -> str:
    return placed.result.call_sid if placed.result is not None else ""


def phase_block(
    group: list[PlacedCall], stats: list[TurnStat], messages: dict[str, list[AgentMessage]]
) -> dict[str, Any]:
    """One phase's numbers: per voice, per agent and overall; the server's stages."""

    def numbers(turns: list[TurnStat], calls: list[PlacedCall]) -> dict[str, Any]:
        return {
            "calls": len(calls),
            "completed": sum(completed(c) for c in calls),
            "turns": len(turns),
            "first_audio_s": summary(
                [t.first_audio_s for t in turns if t.first_audio_s is not None]
            ),
            "answer_s": summary([t.answer_s for t in turns if t.answer_s is not None]),
            "no_answer": sum(t.answer_s is None for t in turns),
            "holding_phrases": sum(t.opened_with is not None for t in turns),
            "apologies": sum(t.apology for t in turns),
            "split_turns": sum(t.server_turns > 1 for t in turns),
        }

    block: dict[str, Any] = {"overall": numbers(stats, group)}
    for key in ("voice", "agent"):
        values = sorted({getattr(p.plan, key) for p in group})
        block[f"by_{key}"] = {
            v: numbers(
                [t for t in stats if getattr(t, key) == v],
                [p for p in group if getattr(p.plan, key) == v],
            )
            for v in values
        }
    greetings = [
        p.result.greeting_latency_s
        for p in group
        if p.result is not None and p.result.greeting_latency_s is not None
    ]
    block["greeting_latency_s"] = summary(greetings)
    stages: dict[str, dict[str, list[float]]] = {}
    for placed in group:
        for message in messages.get(_sid(placed), []):
            if "stt_s" not in message.latency:
                continue  # the greeting: no caller turn behind it
            for bucket in ("overall", placed.plan.agent):
                for stage, value in message.latency.items():
                    stages.setdefault(bucket, {}).setdefault(stage, []).append(value)
    block["server_stages_s"] = {
        bucket: {stage: summary(values) for stage, values in by_stage.items()}
        for bucket, by_stage in stages.items()
    }
    return block


# --- printing ----------------------------------------------------------------------------------


def print_report(report: dict[str, Any]) -> None:
    """The readable table."""

    def s(value: float | None) -> str:
        return "   -  " if value is None else f"{value:6.2f}"

    for name in [k for k in report if k == "sequential" or k.startswith("concurrent_")]:
        block = report[name]
        o = block["overall"]
        print(
            f"\n{name}: {o['calls']} calls, {o['completed']} completed, {o['turns']} caller turns"
        )
        print(
            f"{'':20}{'first audio (s)':>22}{'answer (s)':>22}"
            f"{'no answer':>11}{'holding':>9}{'apology':>9}{'split':>7}"
        )
        print(f"{'':20}{'p50':>8}{'p95':>8}{'n':>6}{'p50':>8}{'p95':>8}{'n':>6}")
        rows = [(f"voice {k}", v) for k, v in block["by_voice"].items()]
        rows += [(f"agent {k}", v) for k, v in block["by_agent"].items()]
        rows += [("overall", o)]
        for label, r in rows:
            f, a = r["first_audio_s"], r["answer_s"]
            print(
                f"{label:<20}{s(f['p50']):>8}{s(f['p95']):>8}{f['n']:>6}"
                f"{s(a['p50']):>8}{s(a['p95']):>8}{a['n']:>6}"
                f"{r['no_answer']:>11}{r['holding_phrases']:>9}{r['apologies']:>9}"
                f"{r['split_turns']:>7}"
            )
        print("server stages, p50 / p95 s (the server's turn records):")
        for bucket, by_stage in block["server_stages_s"].items():
            cells = "  ".join(
                f"{stage.removesuffix('_s')} {s(v['p50']).strip()}/{s(v['p95']).strip()}"
                for stage, v in by_stage.items()
                if stage in STAGES
            )
            print(f"  {bucket:<10} {cells}")
        g = block["greeting_latency_s"]
        cpu = block["server_cpu"]
        per_call = ", ".join(f"{k} {v:.1f}" for k, v in cpu["net_cpu_s_per_call"].items())
        print(
            f"greeting p50 {s(g['p50']).strip()} s; server CPU-s per call, net of idle: {per_call}"
        )
    b = report["barge_in_stop_s"]
    print(
        f"\nbarge-in (caller's first frame -> clear): p50 {s(b['p50']).strip()} s  "
        f"p95 {s(b['p95']).strip()} s  (n={b['n']} of {report['barge_in_calls']} calls)"
    )
    idle = ", ".join(f"{k} {v:.3f}" for k, v in report["idle_cpu_per_s"].items())
    print(f"idle server CPU-s per s: {idle}")
    for failed in report["failed_calls"][:10]:
        call = failed["call"] or {}
        turns = call.get("turns", [])
        print(
            f"  not completed: {failed['phase']} {failed['agent']} {failed['voice']} "
            f"{call.get('call_sid', '')}: {failed['error'] or ''}"
            f"{sum(t['timed_out'] for t in turns)} of {len(turns)} turns unanswered, "
            f"ended by {call.get('ended_by')}, {len(call.get('violations', []))} violations"
        )


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an already running Velox server")
    parser.add_argument("--calls", type=int, default=1, help="sequential calls per agent and voice")
    parser.add_argument("--concurrency", type=int, default=4, help="calls at once (1: none)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of concurrent calls")
    parser.add_argument(
        "--stagger", type=float, default=4.0, help="concurrent calls start within this many s"
    )
    parser.add_argument("--turns", type=int, default=4, help="caller turns per call")
    parser.add_argument(
        "--voices", help=f"comma-separated caller voices (default all: {', '.join(VOICES)})"
    )
    parser.add_argument(
        "--agents", help=f"comma-separated agents (default all: {', '.join(AGENTS)})"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a short run: {', '.join(QUICK_VOICES)}; 2 turns; one call each; no concurrency",
    )
    parser.add_argument("--patience", type=float, default=3.0, help="s of quiet that end a reply")
    parser.add_argument(
        "--hold-patience", type=float, default=20.0, help="s of quiet after a holding phrase"
    )
    parser.add_argument("--turn-timeout", type=float, default=45.0, help="s to wait for a reply")
    parser.add_argument("--idle", type=float, default=20.0, help="s of idle CPU baseline")
    parser.add_argument("--serve-config", type=Path, help="a variant of serve_config.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/call_latency.json")
    args = parser.parse_args()
    if args.quick:
        args.voices = args.voices or ",".join(QUICK_VOICES)
        args.turns, args.calls, args.concurrency, args.idle = 2, 1, 1, 10.0
    args.voice_list = select_voices(args.voices.split(",") if args.voices else None)
    args.agent_list = args.agents.split(",") if args.agents else list(AGENTS)
    unknown = [a for a in args.agent_list if a not in AGENTS]
    if unknown:
        parser.error(f"unknown agents {unknown}; known: {', '.join(AGENTS)}")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # The tools agent's business API runs here, on 127.0.0.1.
    os.environ.setdefault("VELOX_ALLOW_PRIVATE_TOOL_URLS", "true")
    print(f"speaking the caller lines with {len(args.voice_list)} voices...", flush=True)
    args.audio = speak_all(args.voice_list, args.agent_list, args.turns, args.calls)
    settings = get_settings()
    url = args.url
    if url is None:
        import launch

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        print("starting graph:app on local Ray Serve...", flush=True)
        url = launch.run_local(port=port, config=args.serve_config)
    started = time.monotonic()
    try:
        results = asyncio.run(run(url, args, settings, local=args.url is None))
    finally:
        if args.url is None:
            launch.stop_local()

    report = {
        "benchmark": "call_latency",
        "server": args.url or "graph:app on local Ray Serve",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "run_s": round(time.monotonic() - started, 1),
        "options": {
            "voices": [v.name for v in args.voice_list],
            "agents": args.agent_list,
            "calls": args.calls,
            "turns": args.turns,
            "concurrency": args.concurrency,
            "rounds": args.rounds if args.concurrency > 1 else 0,
            "stagger_s": args.stagger,
            "patience_s": args.patience,
            "hold_patience_s": args.hold_patience,
            "idle_s": args.idle,
            "quick": args.quick,
        },
        "targets": {"sequential_p50_s": 1.0, "sequential_p95_s": 1.5, "concurrent_4_p95_s": 2.0},
        **results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print_report(report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
