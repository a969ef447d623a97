"""Routing policy: which model tier answers a turn, and why.

The policy reads features of the caller's turn and of the conversation (length, questions,
reasoning words, high-stakes topics, frustration, what the caller wants done) and the agent's tier
settings, and returns a tier with the reasons that chose it. `plan_turn` turns that decision into
the one plan the tiered model carries out: the tiers that try in order (falling back down to the
SLM), what each kind of model is offered, and where an unsure SLM escalates. Everything here is a
pure function, so the same turn routes the same way on a call, in the playground and in tests.

It also decides which tools the small model may see on a turn. A 0.5B model offered a tool tends
to call it: asked "Where is my order?" it invents an order number. So the SLM is offered a tool
only when the turn gives grounds for it (the caller asked for a person, said goodbye, named an
order code...), and an order code argument is constrained to the codes the caller actually said.
Gemini sees every tool of the step and decides for itself.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetPydanticSchema,
    model_validator,
)
from pydantic_core import core_schema

from app.llm.base import Message, Tier, ToolChoice, ToolSpec
from app.llm.plan import ToolOffer, TurnPlan
from app.tools.base import Intent
from app.tools.registry import TOOLS, tool_class

TIER_ORDER = (Tier.SLM, Tier.FLASH, Tier.PRO)
# A cloud tier that fails hands the round to the next one down; the local SLM always answers.
_FALLBACKS = {Tier.PRO: (Tier.PRO, Tier.FLASH, Tier.SLM), Tier.FLASH: (Tier.FLASH, Tier.SLM)}
# The SLM's mean top-token probability over its first tokens, under which it counts as unsure.
# Measured on sample turns: 0.85-0.98 for answers it knew, 0.69 for a bare "Goodbye!".
DEFAULT_MIN_CONFIDENCE = 0.6

# What callers want done, and the tools that do it: the small model sees a tool only on a turn
# that asks for what it does.
_INTENTS: tuple[Intent, ...] = tuple(dict.fromkeys(t.intent for t in TOOLS if t.intent))
_TOOL_INTENTS = frozenset(intent.name for intent in _INTENTS)
# An order number as callers say it: letters and digits with at least one digit ("A1042",
# "B-7781", "order 55123"). Speech-to-text often splits a spoken "A 1042" in two, so a single
# letter just before the digits joins them into one candidate ("a 1042" offers "A1042").
_CODE = re.compile(r"\b(?=[A-Za-z-]*\d)[A-Za-z]{0,4}-?\d{3,10}\b")
_SPLIT_CODE = re.compile(r"\b([A-Za-z])[ .,-]+(\d{3,10})\b")
# The letter said after the digits: "1042 with an A (in front)", "1042 with the letter A".
_LETTER_AFTER = re.compile(r"\b(\d{3,10}),? with (?:an? |the )?(?:letter )?([A-Za-z])\b")
# Digits said one by one, in words or not: "one oh four two", "1 0 4 2", "one-zero-four-two".
# Three or more in a row make a number; fewer are ordinary words ("one croissant").
_DIGIT_WORDS = {
    "zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
_DIGIT = rf"(?:{'|'.join(_DIGIT_WORDS)}|\d)"
_SPOKEN_DIGITS = re.compile(rf"\b{_DIGIT}(?:[ ,-]+{_DIGIT}){{2,}}\b", re.IGNORECASE)
# A phone number as said: digits with spaces, dots, dashes or brackets between them.
_PHONE_RUN = re.compile(r"\+?\(?\d[\d\s().-]{5,}\d")
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
# A turn that asks the last question again about something else: "and what about rye?"
_FOLLOW_UP = re.compile(
    r"^(?:(?:and|or|so|ok|okay|right|great|thanks)[,.!]?\s+)*(?:what|how) about\b"
)
# Words with which a caller takes back what they just said: what follows replaces it.
_CORRECTION = re.compile(r"\b(?:sorry|i mean|i meant|no wait|actually|make that|rather|no,)")
# A clock time as callers say it: "2:30", "3 pm", "10 o'clock", "4 in the afternoon", "noon".
_CLOCK = re.compile(
    r"\b(?:(\d{1,2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.|o'clock|in the morning|"
    r"in the afternoon|in the evening)|(\d{1,2}):(\d{2})|(noon|midday))"
)
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        "january february march april may june july august september october november "
        "december".split()
    )
}
_WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
_MONTH = r"(january|february|march|april|may|june|july|august|september|october|november|december)"
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_SPOKEN_DATE = re.compile(
    rf"\b(\d{{4}})-(\d{{2}})-(\d{{2}})\b|\b{_MONTH}\s+{_DAY}\b|\b{_DAY}\s+(?:of\s+)?{_MONTH}\b"
    rf"|\b(today|tomorrow)\b|\b(?<!last )({'|'.join(_WEEKDAYS)})\b"
)
# Names as speech-to-text writes them: capitalised words, not the words that start sentences
# or name days and months.
_CAPITALISED_RUN = re.compile(r"\b[A-Z][a-z']+(?:\s+[A-Z][a-z']+)*\b")
_NOT_NAMES = frozenset(
    "I Hi Hello Hey Yes No Okay Ok Thanks Thank Please Can Could Would Will I'd I'm My The "
    "This That What When Where Why How Is Are Do Does Book Sure Great It It's Its Me Name Um "
    "Well Alright Actually Sorry Schedule Reserve Monday Tuesday Wednesday "
    "Thursday Friday Saturday Sunday January February March April May June July August "
    "September October November December Today Tomorrow Next And But So Also Just".split()
)
_REASONING = re.compile(
    r"\b(why|explain|compare|difference|differences|versus|vs|pros and cons|what if|"
    r"how come|step by step|calculate|which is better|recommend)\b"
)
_HIGH_STAKES = re.compile(
    r"\b(refund|chargeback|charged twice|double charged|fraud|stolen|lawyer|legal|sue|"
    r"complaint|cancel my|cancellation|emergency|injury|injured|allergic|allergy|reaction|"
    r"dispute|unauthori[sz]ed)\b"
)
_SIMPLE = re.compile(
    r"^(hi|hello|hey|yes|yeah|yep|no|nope|ok|okay|sure|thanks|thank you|great|perfect|"
    r"sounds good|good morning|good afternoon|good evening|right|correct|that's right)\b"
)


def _tier_schema(_source: Any, _handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
    # Checked as a choice of values, then made a Tier: the API's schema lists the values inline
    # (not as a `Tier` schema of its own) and a wrong one is refused as a plain choice.
    values = [tier.value for tier in TIER_ORDER]
    return core_schema.no_info_after_validator_function(Tier, core_schema.literal_schema(values))


TierName = Annotated[Tier, GetPydanticSchema(_tier_schema)]


class TierPolicy(BaseModel):
    """Which model tiers the agent may use (the router picks among them per turn)."""

    # Forbidden in what a client sends; `from_json` drops unknown keys of a stored row instead.
    model_config = ConfigDict(extra="forbid", frozen=True)

    default_tier: TierName = Tier.SLM
    max_tier: TierName = Tier.PRO
    escalate_when_unsure: bool = True
    min_confidence: float = Field(
        default=DEFAULT_MIN_CONFIDENCE,
        ge=0.0,
        le=1.0,
        description="the small model's mean top-token probability under which it is unsure",
    )

    @model_validator(mode="after")
    def _ordered(self) -> TierPolicy:
        if _rank(self.default_tier) > _rank(self.max_tier):
            raise ValueError("default_tier must not be above max_tier")
        return self

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> TierPolicy:
        """From the agent's stored JSON (its `llm_policy`): unknown keys ignored, missing ones
        defaulted."""
        known = {k: v for k, v in (data or {}).items() if k in cls.model_fields}
        return cls.model_validate(known)


@dataclass(frozen=True, slots=True)
class TurnFeatures:
    """What the policy looks at."""

    words: int
    questions: int
    caller_turns: int  # caller turns before this one
    simple: bool  # a greeting, a thank-you, a yes or a no
    reasoning: bool  # asks to explain, compare, recommend
    high_stakes: tuple[str, ...]  # refund, legal, allergy...
    frustrated: bool  # strongly negative wording
    intents: frozenset[str]  # what the caller wants done (the tools' `intent`s)
    codes: tuple[str, ...]  # order-like codes the caller said in recent turns
    names: tuple[str, ...] = ()  # names the caller said in recent turns
    dates: tuple[str, ...] = ()  # days the caller named in recent turns, as YYYY-MM-DD
    times: tuple[str, ...] = ()  # clock times the caller said in recent turns, as HH:MM
    phones: tuple[str, ...] = ()  # phone numbers the caller said in recent turns, digits only
    # The intents this turn's own words ask for (not carried over from earlier turns): a
    # caller asking two things at once wants both done in this turn.
    asked_now: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """The tier for a turn and the reasons, in the order they were applied."""

    tier: Tier
    reasons: tuple[str, ...]
    features: TurnFeatures | None = field(default=None, compare=False)

    def record(self) -> dict[str, Any]:
        """What the conversation record keeps."""
        return {"tier": self.tier.value, "reasons": list(self.reasons)}


def turn_features(history: Sequence[Message], text: str, today: date | None = None) -> TurnFeatures:
    """Features of the caller's `text`, given the conversation so far (`today` turns spoken
    days into dates)."""
    from app.conversation.sentiment import caller_sentiment

    lowered = text.lower()
    words = len(re.findall(r"[\w']+", text))
    callers = [m.content for m in history if m.role == "user"]
    recent = " ".join([*callers[-2:], text])
    sentiment = caller_sentiment([text]) if words >= 3 else None
    asked_now = frozenset(i.name for i in _INTENTS if i.pattern.search(lowered))
    day = today or date.today()
    return TurnFeatures(
        words=words,
        questions=text.count("?"),
        caller_turns=len(callers),
        simple=words <= 6 and bool(_SIMPLE.match(lowered.strip(" .,!?"))),
        reasoning=bool(_REASONING.search(lowered)),
        high_stakes=tuple(sorted({m.group(0) for m in _HIGH_STAKES.finditer(lowered)})),
        frustrated=sentiment is not None and sentiment <= -0.6,
        intents=asked_now
        | _pending_intents(history, _heard(text, day), bool(_FOLLOW_UP.match(lowered))),
        codes=_latest_codes([*callers[-2:], text]),
        names=_names(recent),
        dates=spoken_dates(recent, day),
        times=spoken_times(recent),
        phones=_phones(recent),
        asked_now=asked_now,
    )


def _heard(text: str, today: date) -> TurnFeatures:
    """What `text` alone gives the tools' grounded arguments (the rest left empty)."""
    return TurnFeatures(
        words=0,
        questions=0,
        caller_turns=0,
        simple=False,
        reasoning=False,
        high_stakes=(),
        frustrated=False,
        intents=frozenset(),
        codes=_latest_codes([text]),
        names=_names(text),
        dates=spoken_dates(text, today),
        times=spoken_times(text),
        phones=_phones(text),
    )


def _pending_intents(
    history: Sequence[Message], heard_now: TurnFeatures, follow_up: bool
) -> frozenset[str]:
    """The lasting intents of the last two caller turns that are still wanted: not served by a
    call since, or served and given something new now ("what's the status of A1043 then?"
    after A1001 was looked up), or served and asked again about something else ("what about
    sesame bagels?" after rye: a `follow_up` of the last turn). Once the lookup ran, "what's
    your refund policy?" is not another one: the small model, offered it with the id pinned,
    looked the order up again instead of answering."""
    pending: set[str] = set()
    served: dict[str, set[str]] = {}  # intent -> the argument values its calls were given
    turns = 0
    for message in reversed(history):  # newest first: a call seen before a turn came after it
        if message.role == "assistant":
            for call in message.tool_calls:
                tool = tool_class(call.name)
                if tool is not None and tool.intent is not None:
                    values = served.setdefault(tool.intent.name, set())
                    values.update(str(v) for v in call.arguments.values())
        elif message.role == "user":
            lowered = message.content.lower()
            for intent in _INTENTS:
                if not intent.lasting or not intent.pattern.search(lowered):
                    continue
                used = served.get(intent.name)
                new = set(_grounded_values(intent.name, heard_now)) - (used or set())
                if used is None or new or (follow_up and turns == 0):
                    pending.add(intent.name)
            turns += 1
            if turns == 2:
                break
    return frozenset(pending)


def _grounded_values(intent: str, heard: TurnFeatures) -> list[str]:
    """The values `heard` gives the grounded arguments of the tools that serve `intent`."""
    return [
        value
        for tool in TOOLS
        if tool.intent is not None and tool.intent.name == intent
        for said in tool.grounding.values()
        for value in said(heard)
    ]


def spoken_dates(text: str, today: date) -> tuple[str, ...]:
    """The days named in `text` ("December 3rd", "the 3rd of December", "tomorrow", "on
    Friday", "2026-12-03"), as ISO dates; a day already past this year means next year's."""
    found: list[str] = []
    for m in _SPOKEN_DATE.finditer(text.lower()):
        iso, month_day, day_month, relative, weekday = (
            m.group(1),
            m.group(4),
            m.group(7),
            (m.group(8)),
            m.group(9),
        )
        try:
            if iso:
                day = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            elif month_day:
                day = _upcoming(today, _MONTHS[month_day], int(m.group(5)))
            elif day_month:
                day = _upcoming(today, _MONTHS[day_month], int(m.group(6)))
            elif relative:
                day = today + timedelta(days=0 if relative == "today" else 1)
            else:
                ahead = (_WEEKDAYS.index(weekday) - today.weekday() - 1) % 7 + 1
                day = today + timedelta(days=ahead)
        except ValueError:  # "February 30th"
            continue
        found.append(day.isoformat())
    return tuple(dict.fromkeys(found))


def _upcoming(today: date, month: int, day: int) -> date:
    candidate = date(today.year, month, day)
    return candidate if candidate >= today else date(today.year + 1, month, day)


def spoken_times(text: str) -> tuple[str, ...]:
    """The clock times in `text` ("2:30 pm", "3 pm", "14:30", "noon") as 24-hour HH:MM."""
    found: list[str] = []
    for m in _CLOCK.finditer(text.lower()):
        if m.group(6):
            found.append("12:00")
            continue
        hour = int(m.group(1) or m.group(4))
        minute = int(m.group(2) or m.group(5) or 0)
        suffix = (m.group(3) or "").replace(".", "")
        suffix = {"in the morning": "am", "in the afternoon": "pm", "in the evening": "pm"}.get(
            suffix, suffix
        )
        if suffix == "pm" and hour < 12:
            hour += 12
        elif suffix == "am" and hour == 12:
            hour = 0
        if hour < 24 and minute < 60:
            found.append(f"{hour:02d}:{minute:02d}")
    return tuple(dict.fromkeys(found))


def _latest_codes(turns: Sequence[str]) -> tuple[str, ...]:
    """The codes of the newest caller turn that says any: a caller who gives another number
    means that one now ("no, the order is A1001"); within a turn, a number said after a
    correction ("A1043, sorry, A1042") replaces those before it."""
    for turn in reversed(turns):
        said = _spoken_digits(turn)
        corrections = [m.end() for m in _CORRECTION.finditer(said.lower())]
        for cut in reversed(corrections):
            if codes := _codes(said[cut:]):
                return codes
        if codes := _codes(said):
            return codes
    return ()


def _spoken_digits(text: str) -> str:
    """`text` with digits said one by one written as one number ("a one oh four two" is
    "a 1042")."""

    def joined(m: re.Match[str]) -> str:
        pieces = re.split(r"[ ,-]+", m.group(0).lower())
        return "".join(_DIGIT_WORDS.get(piece, piece) for piece in pieces)

    return _SPOKEN_DIGITS.sub(joined, text)


def _phones(text: str) -> tuple[str, ...]:
    """Phone numbers said in `text` (7 to 15 digits, spoken one by one or not), digits only."""
    runs = [r for r in _PHONE_RUN.findall(_spoken_digits(text)) if not _ISO_DAY.fullmatch(r)]
    numbers = [re.sub(r"[^\d+]", "", run) for run in runs]
    return tuple(dict.fromkeys(n for n in numbers if 7 <= len(n.lstrip("+")) <= 15))


def _codes(text: str) -> tuple[str, ...]:
    text = _LETTER_AFTER.sub(lambda m: f"{m.group(2)}{m.group(1)}", text)
    pairs = _SPLIT_CODE.findall(text)
    split = [f"{letter}{digits}" for letter, digits in pairs]
    # "a 1042" is one code heard in two pieces: its digits alone are not another candidate.
    pieces = {digits for _, digits in pairs}
    whole = [code.replace("-", "") for code in _CODE.findall(text) if code not in pieces]
    return tuple(dict.fromkeys(code.upper() for code in [*split, *whole]))


def _names(text: str) -> tuple[str, ...]:
    found: list[str] = []
    for run in _CAPITALISED_RUN.finditer(text):
        group: list[str] = []
        for word in [*run.group(0).split(), ""]:  # "" flushes the last group
            if word and word not in _NOT_NAMES:
                group.append(word)
            elif group:
                found.append(" ".join(group[:3]))
                group = []
    return tuple(dict.fromkeys(found))


def choose_tier(
    features: TurnFeatures, policy: TierPolicy, *, tools_offered: bool
) -> RouteDecision:
    """The tier the turn needs, clamped to the agent's range."""
    reasons: list[str] = []
    if features.high_stakes:
        tier = Tier.PRO
        reasons.append(f"high stakes: {', '.join(features.high_stakes)}")
    elif features.frustrated:
        tier = Tier.PRO
        reasons.append("caller sounds upset")
    elif features.reasoning and (features.words >= 15 or features.questions > 1):
        tier = Tier.PRO
        reasons.append("asks for reasoning over several points")
    elif features.simple:
        tier = Tier.SLM
        reasons.append("simple turn")
    elif tools_offered and features.intents & _TOOL_INTENTS:
        tier = Tier.FLASH
        reasons.append(f"tool use: {', '.join(sorted(features.intents))}")
    elif features.questions > 1 or features.words > 18 or features.reasoning:
        tier = Tier.FLASH
        reasons.append("long or multi-part turn")
    else:
        tier = Tier.SLM
        reasons.append("short single question")

    if _rank(tier) < _rank(policy.default_tier):
        tier = policy.default_tier
        reasons.append(f"agent's default tier is {tier.value}")
    if _rank(tier) > _rank(policy.max_tier):
        tier = policy.max_tier
        reasons.append(f"capped at the agent's max tier {tier.value}")
    return RouteDecision(tier, tuple(reasons), features)


def slm_tools(tools: Sequence[ToolSpec], features: TurnFeatures) -> list[ToolSpec]:
    """The tools the small model may see on this turn, with grounded arguments constrained."""
    offered: list[ToolSpec] = []
    for spec in tools:
        tool = tool_class(spec.name)
        if tool is None:  # the flow's go_to_step
            offered.append(spec)
            continue
        if tool.intent is not None and tool.intent.name not in features.intents:
            continue
        heard = {argument: said(features) for argument, said in tool.grounding.items()}
        required = set(spec.parameters.get("required", ()))
        if not all(values for argument, values in heard.items() if argument in required):
            continue  # the model asks for what is missing instead of making it up
        for argument, values in heard.items():
            # An optional argument not heard is not shown at all: offered, it would be filled.
            spec = _constrain(spec, argument, values) if values else _withhold(spec, argument)
        offered.append(spec)
    if any(_asked_for(t) for t in offered):
        offered = [t for t in offered if not _yields(t)]
    return offered


def slm_tools_after(
    tools: Sequence[ToolSpec], features: TurnFeatures, ran: Collection[str]
) -> list[ToolSpec]:
    """The tools the small model may see once tools in `ran` have answered this turn: only
    those for something else the turn's own words asked ("where's A1042, and do you have
    rye?"). Offering the same tools again invites a loop of the same call."""
    left = [
        spec
        for spec in tools
        if spec.name not in ran
        and (tool := tool_class(spec.name)) is not None
        and tool.intent is not None
        and tool.intent.name in features.asked_now
    ]
    return slm_tools(left, features) if left else []


def slm_tool_choice(offered: Sequence[ToolSpec]) -> ToolChoice:
    """Require a call when the SLM was offered a tool the turn gives grounds for.

    Those tools are offered only when the caller asked for what they do (`slm_tools`), so a
    call is what the turn needs; left to choose, the 0.5B model often describes the call in
    words instead of making it. Which tool, and its arguments, it still picks under the grammar.
    """
    return "required" if any(_asked_for(t) for t in offered) else "auto"


def _asked_for(spec: ToolSpec) -> bool:
    """Whether the tool is offered for a caller intent (rather than on every turn)."""
    tool = tool_class(spec.name)
    return tool is not None and tool.intent is not None


def _yields(spec: ToolSpec) -> bool:
    tool = tool_class(spec.name)
    return tool is not None and tool.yields_to_intents


def fallback_chain(tier: Tier, served: Collection[Tier]) -> tuple[Tier, ...]:
    """The tiers that try a round routed to `tier`, in order: those this deployment serves."""
    return tuple(t for t in _FALLBACKS.get(tier, (Tier.SLM,)) if t is Tier.SLM or t in served)


def plan_turn(
    decision: RouteDecision,
    policy: TierPolicy,
    served: Collection[Tier],
    *,
    cloud: ToolOffer,
    slm: ToolOffer,
) -> TurnPlan:
    """The plan for one model round of a turn routed by `decision`.

    `cloud` is what Gemini is offered, `slm` what the small model is (see `slm_tools`). A turn
    the SLM serves escalates, when unsure, to the next tier the agent and the deployment allow.
    """
    chain = fallback_chain(decision.tier, served)
    unserved = f"no {decision.tier.value} engine configured"
    reason = "routed" if chain[0] is decision.tier else unserved
    target = escalation_target(chain[0], policy, served)
    escalation = (
        TurnPlan(chain=fallback_chain(target, served), reason="routed", cloud=cloud, slm=slm)
        if target is not None
        else None
    )
    return TurnPlan(
        chain=chain,
        reason=reason,
        cloud=cloud,
        slm=slm,
        escalation=escalation,
        min_confidence=policy.min_confidence,
    )


def escalation_target(tier: Tier, policy: TierPolicy, available: Collection[Tier]) -> Tier | None:
    """The tier an unsure SLM hands the turn to, if the agent and the deployment allow one."""
    if tier is not Tier.SLM or not policy.escalate_when_unsure:
        return None
    for candidate in TIER_ORDER[1:]:
        if candidate in available and _rank(candidate) <= _rank(policy.max_tier):
            return candidate
    return None


def _constrain(tool: ToolSpec, argument: str, values: Sequence[str]) -> ToolSpec:
    # Required too: an optional argument the caller gave (a booking's name) is one the small
    # model would otherwise leave out.
    parameters = dict(tool.parameters)
    properties = dict(parameters.get("properties", {}))
    properties[argument] = {**properties.get(argument, {"type": "string"}), "enum": list(values)}
    parameters["properties"] = properties
    parameters["required"] = list(dict.fromkeys([*parameters.get("required", ()), argument]))
    return replace(tool, parameters=parameters)


def _withhold(tool: ToolSpec, argument: str) -> ToolSpec:
    parameters = dict(tool.parameters)
    parameters["properties"] = {
        k: v for k, v in parameters.get("properties", {}).items() if k != argument
    }
    return replace(tool, parameters=parameters)


def _rank(tier: Tier) -> int:
    return TIER_ORDER.index(tier)
