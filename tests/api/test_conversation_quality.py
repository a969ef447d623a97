"""Conversation quality: scripted multi-turn conversations with three agents (prompt only; tools
against the demo business API; tools and the organization's default knowledge base), through
the playground API on the shipped local model (real SLM, real hybrid search, real tools), each
reply judged by rules anyone can state:

- no_repeat: its first sentence does not say again a sentence the agent said before (greeting
  included), unless the caller asked for that;
- topic: it carries the question's topic or fact (one of the listed words);
- tool: the expected tool ran with the id or item the caller spoke;
- discreet: it does not name documents, handbooks or the knowledge base;
- spoken: it is non-empty speech, not markup or data.

The lines were written for this suite and nothing was tuned on them; scores are printed per rule
and per agent, and guarded at the level measured (see the thresholds) so a change that makes the
agents less sensible fails here.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

import pytest

from app.engines import Engines, build_slm
from app.llm.base import LanguageModel
from app.observability.metrics import Metrics
from app.rag.embedder import MiniLMEmbedder
from app.services import Services, build_services
from app.settings import Settings, get_settings
from tests.api.conftest import Tenant
from tests.fakes import FakeSTT, FakeTTS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HANDBOOK = Path(__file__).parents[2] / "bench/data/bakery-handbook.md"
SHOP_PROMPT = (
    "You answer the phone for Acme Outdoor, a camping and hiking shop at 12 Mill Street. "
    "Open 10 am to 6 pm, Monday to Saturday; closed on Sunday. Tents, sleeping bags, boots "
    "and stoves are in stock. Returns within 30 days with the receipt. "
    "Reply in one or two short, friendly spoken sentences."
)
BAKERY_PROMPT = (
    "You answer the phone for Rosa's Bakery. Look orders and stock up with the tools. "
    "Reply in one or two short, friendly spoken sentences."
)


@dataclass(frozen=True)
class Line:
    """What the caller says, and what a sensible answer to it has."""

    said: str
    topic: tuple[str, ...] = ()  # one of these words is in the answer
    tool: tuple[str, str, str] | None = None  # (tool, argument, a piece of its value)


@dataclass(frozen=True)
class Script:
    agent: str
    lines: tuple[Line, ...]


AGENTS: dict[str, dict[str, Any]] = {
    "prompt": {
        "name": "Acme Outdoor",
        "system_prompt": SHOP_PROMPT,
        "greeting": "Hello, thanks for calling Acme Outdoor. How can I help you today?",
    },
    "tools": {
        "name": "Rosa's order desk",
        "system_prompt": BAKERY_PROMPT,
        "greeting": "Rosa's Bakery, how can I help?",
        "tools": ["check_order_status", "check_item_stock", "transfer_to_agent"],
    },
    "tools+kb": {
        "name": "Rosa's front desk",
        "system_prompt": BAKERY_PROMPT + " Answer questions about the bakery's policies.",
        "greeting": "Good morning, Rosa's Bakery.",
        "tools": ["check_order_status", "check_item_stock"],
        # No knowledge base named: the organization's default one answers.
    },
}

SCRIPTS = (
    Script(
        "prompt",
        (
            Line("Hi, what time do you open on Saturday?", topic=("10", "ten")),
            Line("And are you open on Sundays?", topic=("closed", "not open", "no")),
            Line("Where is the shop exactly?", topic=("mill",)),
            Line("Okay, and how long do I have to bring back a tent?", topic=("30", "thirty")),
        ),
    ),
    Script(
        "prompt",
        (
            Line("Do you sell sleeping bags?", topic=("sleeping bag", "yes")),
            Line("Great. Do you sell kayaks as well?", topic=("kayak", "don't", "not", "sorry")),
            Line("What are your hours during the week?", topic=("10", "ten", "6", "six")),
        ),
    ),
    Script(
        "tools",
        (
            Line(
                "Hi, I'm ringing about order A1050.",
                tool=("check_order_status", "order_id", "A1050"),
            ),
            Line(
                "Right. Have you got any rye bread today?", tool=("check_item_stock", "item", "rye")
            ),
            Line("And what about sesame bagels?", tool=("check_item_stock", "item", "bagel")),
            Line(
                "Thanks. Could I speak to somebody in person?", tool=("transfer_to_agent", "", "")
            ),
        ),
    ),
    Script(
        "tools",
        (
            Line(
                "Can you tell me if order A1001 is ready?",
                tool=("check_order_status", "order_id", "A1001"),
            ),
            Line("Do you have almond croissants?", tool=("check_item_stock", "item", "almond")),
            Line(
                "What's the status of A1043 then?", tool=("check_order_status", "order_id", "A1043")
            ),
        ),
    ),
    Script(
        "tools+kb",
        (
            Line("Do you make anything gluten free?", topic=("gluten", "friday")),
            Line(
                "How far ahead do I need to order a wedding cake?", topic=("three weeks", "3 weeks")
            ),
            Line("Do your gift cards expire?", topic=("never", "don't expire", "do not expire")),
            Line(
                "And is order A1042 on its way?", tool=("check_order_status", "order_id", "A1042")
            ),
        ),
    ),
)

RULES = ("no_repeat", "topic", "tool", "discreet", "spoken")
# Measured on 2026-12-05 with the shipped SLM and seed: no_repeat 94% (17/18), topic 80%
# (8/10), tool 100% (8/8), discreet 100%, spoken 100%; the code before the repeat check, the
# relevance gate and the grounding's new wording (8c99b0a) scored 89%, 70%, 75%, 100%, 100%
# (it read the bakery's handbook passages into "have you got rye bread?"). Each guard
# is the measured level less a margin for another CPU's arithmetic, so a regression fails here
# while the goals stay open.
GUARDS = {"no_repeat": 0.88, "topic": 0.6, "tool": 0.85, "discreet": 0.94, "spoken": 1.0}

_DOCUMENT_WORDS = re.compile(r"\b(handbook|document|knowledge base|passage|the context)\b", re.I)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def repeats_earlier(reply: str, earlier: list[str]) -> bool:
    """The reply's first sentence says an earlier sentence of the agent's again."""
    first = _words(_SENTENCE.split(reply.strip())[0]) if reply.strip() else []
    if len(first) < 4:
        return False
    said = [_words(s) for text in earlier for s in _SENTENCE.split(text)]
    return any(SequenceMatcher(None, first, s).ratio() >= 0.8 for s in said if s)


@dataclass
class Scores:
    by_rule: dict[str, list[bool]] = field(default_factory=lambda: defaultdict(list))
    by_agent: dict[str, list[bool]] = field(default_factory=lambda: defaultdict(list))
    failures: list[str] = field(default_factory=list)

    def judge(self, agent: str, line: Line, rule: str, ok: bool, reply: dict[str, Any]) -> None:
        self.by_rule[rule].append(ok)
        self.by_agent[agent].append(ok)
        if not ok:
            calls = [(c["name"], c["arguments"]) for c in reply["tool_calls"]]
            self.failures.append(f"{agent} {rule}: {line.said!r} -> {reply['reply']!r} {calls}")

    def rate(self, checks: list[bool]) -> float:
        return sum(checks) / len(checks)


@pytest.fixture(scope="module")
def slm() -> LanguageModel:
    return build_slm(get_settings())


@pytest.fixture
def settings(settings: Settings, demo_backend: str) -> Settings:
    return settings.replace(velox_allow_private_tool_urls=True, transfer_number="+15550100")


@pytest.fixture
async def services(
    settings: Settings, embedder: MiniLMEmbedder, slm: LanguageModel
) -> AsyncIterator[Services]:
    engines = Engines(stt=FakeSTT(), llm=slm, tts=FakeTTS())
    built = await build_services(settings, engines, Metrics(), embedder)
    try:
        yield built
    finally:
        await built.close()


async def make_agents(
    shop: Tenant, bakery: Tenant, services: Services, backend: str
) -> dict[str, tuple[Tenant, str]]:
    """The outdoor shop in its own organization; the bakery's agents in one whose default
    knowledge base holds its handbook."""
    upload = await bakery.client.post(
        "/api/documents/upload",
        files={"file": ("bakery-handbook.md", HANDBOOK.read_bytes(), "text/markdown")},
    )
    assert upload.status_code in (200, 201, 202), upload.text
    await services.knowledge.ingestor.drain()
    ids = {}
    for name, fields in AGENTS.items():
        urls = {t: backend for t in fields.get("tools", ()) if t != "transfer_to_agent"}
        if "transfer_to_agent" in fields.get("tools", ()):
            urls["handoff"] = backend  # the playground tells the handoff system
        body = {**fields, "tool_settings": {"urls": urls}}
        org = shop if name == "prompt" else bakery
        created = await org.client.post("/api/agents", json=body)
        assert created.status_code == 201, created.text
        ids[name] = (org, created.json()["id"])
    return ids


def judge_turn(
    scores: Scores, agent: str, line: Line, reply: dict[str, Any], earlier: list[str]
) -> None:
    text = reply["reply"]
    scores.judge(
        agent, line, "spoken", bool(text.strip()) and not re.search(r"[{}<>\[\]]", text), reply
    )
    scores.judge(agent, line, "no_repeat", not repeats_earlier(text, earlier), reply)
    scores.judge(agent, line, "discreet", not _DOCUMENT_WORDS.search(text), reply)
    if line.topic:
        said = text.lower()
        scores.judge(agent, line, "topic", any(w in said for w in line.topic), reply)
    if line.tool is not None:
        tool, argument, piece = line.tool
        ran = [
            c
            for c in reply["tool_calls"]
            if c["name"] == tool
            and c["ok"]
            and piece.lower() in str(c["arguments"].get(argument, "")).lower()
        ]
        scores.judge(agent, line, "tool", bool(ran), reply)


async def test_conversations_make_sense(
    org_a: Tenant, org_b: Tenant, services: Services, demo_backend: str
) -> None:
    agents = await make_agents(org_b, org_a, services, demo_backend)
    scores = Scores()
    for script in SCRIPTS:
        org, agent_id = agents[script.agent]
        conversation = None
        earlier = [AGENTS[script.agent]["greeting"]]
        for line in script.lines:
            response = await org.client.post(
                "/api/playground/chat",
                json={
                    "agent_id": agent_id,
                    "conversation_id": conversation,
                    "message": line.said,
                },
            )
            assert response.status_code == 200, response.text
            reply = response.json()
            conversation = reply["conversation_id"]
            judge_turn(scores, script.agent, line, reply, earlier)
            earlier.append(reply["reply"])

    rates = {rule: scores.rate(scores.by_rule[rule]) for rule in RULES}
    print("\nConversation quality (tests/api/test_conversation_quality.py):")
    for rule in RULES:
        print(f"  {rule:<10} {rates[rule]:.0%} of {len(scores.by_rule[rule])} checks")
    for agent, checks in scores.by_agent.items():
        print(f"  agent {agent:<9} {scores.rate(checks):.0%} of {len(checks)} checks")
    for failure in scores.failures:
        print(f"  failed: {failure}")
    for rule, guard in GUARDS.items():
        assert rates[rule] >= guard, (rule, scores.failures)
