"""GeminiLLM through the real google-genai SDK, against a local server that speaks the Gemini REST
wire protocol (server-sent events for streaming)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any

import pytest
from google.genai import errors

from app.llm.base import (
    LanguageModel,
    LLMEvent,
    Message,
    TextDelta,
    Tier,
    ToolCall,
    ToolSpec,
    Usage,
    collect_reply,
)
from app.llm.gemini_llm import GeminiLLM
from tests.fakes.gemini_server import API_KEY, FakeGemini, FakeTurn

BOOK = ToolSpec(
    name="book_appointment",
    description="Book a visit for the caller.",
    parameters={
        "type": "object",
        "properties": {
            "day": {"type": "string", "enum": ["monday", "tuesday"]},
            "time": {"type": "string", "description": "24-hour HH:MM"},
        },
        "required": ["day"],
    },
)
HOURS = ToolSpec("opening_hours", "When the shop is open.", {"type": "object", "properties": {}})


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        yield fake


@pytest.fixture
async def llm(gemini: FakeGemini) -> AsyncIterator[GeminiLLM]:
    engine = GeminiLLM(api_key=API_KEY, base_url=gemini.url, timeout_s=5.0)
    yield engine
    await engine.aclose()


async def run(
    llm: GeminiLLM,
    messages: list[Message],
    tools: list[ToolSpec] | None = None,
    tier: Tier = Tier.FLASH,
) -> list[LLMEvent]:
    return [event async for event in llm.stream(messages, tools, tier)]


def sent(gemini: FakeGemini) -> tuple[str, dict[str, Any]]:
    path, body = gemini.requests[-1]
    return path, body


async def test_text_streams_in_pieces_then_usage(llm: GeminiLLM, gemini: FakeGemini) -> None:
    assert isinstance(llm, LanguageModel) and llm.name == "gemini"
    events = await run(llm, [Message("user", "what time do you open on monday")])
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) >= 3
    assert "".join(deltas) == "Gemini heard: what time do you open on monday"
    assert isinstance(events[-1], Usage) and sum(isinstance(e, Usage) for e in events) == 1
    usage = events[-1]
    assert usage.model == "gemini-2.5-flash" and usage.cached_tokens == 0
    assert usage.prompt_tokens == 7 and usage.completion_tokens == 9  # the fake counts words
    path, _ = sent(gemini)
    assert path.endswith("/models/gemini-2.5-flash:streamGenerateContent?alt=sse")


@pytest.mark.parametrize(
    ("tier", "model", "budget", "max_tokens"),
    [
        (Tier.SLM, "gemini-2.5-flash", 0, 256),
        (Tier.FLASH, "gemini-2.5-flash", 0, 256),
        (Tier.PRO, "gemini-2.5-pro", 512, 256 + 512),
    ],
)
async def test_tier_picks_the_model_and_its_thinking(
    llm: GeminiLLM, gemini: FakeGemini, tier: Tier, model: str, budget: int, max_tokens: int
) -> None:
    assert llm.model_for(tier) == model
    events = await run(llm, [Message("user", "hi")], tier=tier)
    assert isinstance(events[-1], Usage) and events[-1].model == model
    path, body = sent(gemini)
    assert f"/models/{model}:streamGenerateContent" in path
    config = body["generationConfig"]
    # The SDK passes ThinkingConfig through with its Python field names; Google's JSON parser
    # takes proto field names as well as lowerCamelCase.
    assert config["thinkingConfig"] == {"thinking_budget": budget}
    assert config["maxOutputTokens"] == max_tokens


async def test_models_and_limits_are_configurable(gemini: FakeGemini) -> None:
    engine = GeminiLLM(
        api_key=API_KEY,
        base_url=gemini.url,
        flash_model="gemini-2.5-flash-lite",
        pro_model="gemini-3-pro",
        max_output_tokens=64,
    )
    try:
        reply = await collect_reply(engine, [Message("user", "hello")], Tier.FLASH)
        assert reply.text == "Gemini heard: hello" and reply.first_token_s is not None
        assert reply.usage is not None and reply.usage.model == "gemini-2.5-flash-lite"
        assert sent(gemini)[1]["generationConfig"]["maxOutputTokens"] == 64
        await collect_reply(engine, [Message("user", "hello")], Tier.PRO)
        assert "/models/gemini-3-pro:" in sent(gemini)[0]
    finally:
        await engine.aclose()


async def test_system_messages_become_the_system_instruction(
    llm: GeminiLLM, gemini: FakeGemini
) -> None:
    messages = [
        Message("system", "You answer the phone for Rosa's Plumbing."),
        Message("system", "Keep replies under twenty words."),
        Message("user", "Do you fix boilers?"),
        Message("assistant", "Yes, we do."),
        Message("user", "Great"),
    ]
    await run(llm, messages)
    _, body = sent(gemini)
    instruction = body["systemInstruction"]["parts"]
    assert instruction == [
        {"text": "You answer the phone for Rosa's Plumbing.\n\nKeep replies under twenty words."}
    ]
    assert [(c["role"], c["parts"]) for c in body["contents"]] == [
        ("user", [{"text": "Do you fix boilers?"}]),
        ("model", [{"text": "Yes, we do."}]),
        ("user", [{"text": "Great"}]),
    ]
    assert "tools" not in body


async def test_tools_are_sent_as_function_declarations(llm: GeminiLLM, gemini: FakeGemini) -> None:
    await run(llm, [Message("user", "book me in")], [BOOK, HOURS])
    _, body = sent(gemini)
    assert len(body["tools"]) == 1
    declarations = body["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in declarations] == ["book_appointment", "opening_hours"]
    book = declarations[0]
    assert book["description"] == "Book a visit for the caller."
    # The JSON schema goes as is (the SDK keeps the Python field name on the wire).
    schema = book.get("parametersJsonSchema", book.get("parameters_json_schema"))
    assert schema == BOOK.parameters
    assert "parameters" not in book  # not converted to the OpenAPI subset


@pytest.mark.parametrize(
    ("choice", "mode"), [("auto", None), ("required", "ANY"), ("none", "NONE")]
)
async def test_tool_choice_becomes_the_function_calling_mode(
    llm: GeminiLLM, gemini: FakeGemini, choice: str, mode: str | None
) -> None:
    messages = [Message("user", "book me in")]
    [event async for event in llm.stream(messages, [BOOK], Tier.FLASH, choice)]  # type: ignore[arg-type]
    _, body = sent(gemini)
    config = body.get("toolConfig", body.get("tool_config"))
    if mode is None:
        assert config is None
    else:
        calling = config.get("functionCallingConfig", config.get("function_calling_config"))
        assert calling["mode"] == mode
        assert body["tools"]  # declared either way


async def test_function_calls_come_back_as_tool_calls(llm: GeminiLLM, gemini: FakeGemini) -> None:
    gemini.script = [
        FakeTurn(
            text="Let me book that.",
            function_calls=[("book_appointment", {"day": "monday", "time": "09:30"})],
        ),
        FakeTurn(
            function_calls=[("opening_hours", {}), ("book_appointment", {"day": "tuesday"})],
            call_ids=False,
        ),
    ]
    events = await run(llm, [Message("user", "monday at half nine")], [BOOK], Tier.PRO)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert text == "Let me book that."
    assert len(calls) == 1 and calls[0].name == "book_appointment"
    assert calls[0].arguments == {"day": "monday", "time": "09:30"}
    assert calls[0].id.startswith("fc-")  # the server's id, kept
    assert isinstance(events[-1], Usage) and events[-1].model == "gemini-2.5-pro"

    events = await run(llm, [Message("user", "and tuesday?")], [BOOK, HOURS])
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert [(c.name, c.arguments, c.id) for c in calls] == [
        ("opening_hours", {}, "call_0"),
        ("book_appointment", {"day": "tuesday"}, "call_1"),
    ]


async def test_tool_calls_and_results_round_trip(llm: GeminiLLM, gemini: FakeGemini) -> None:
    gemini.script = [FakeTurn(text="You're booked for Monday at nine thirty.")]
    messages = [
        Message("system", "Be brief."),
        Message("user", "Book Monday and tell me the hours."),
        Message(
            "assistant",
            "One moment.",
            tool_calls=(
                ToolCall("book_appointment", {"day": "monday", "time": "09:30"}, "fc-1"),
                ToolCall("opening_hours", {}, "fc-2"),
            ),
        ),
        Message(
            "tool",
            '{"booked": true, "slot": "09:30"}',
            name="book_appointment",
            tool_call_id="fc-1",
        ),
        Message("tool", '"9 to 5"', tool_call_id="fc-2"),  # the name comes from the call
    ]
    events = await run(llm, messages, [BOOK, HOURS])
    assert "".join(e.text for e in events if isinstance(e, TextDelta)).startswith("You're booked")
    _, body = sent(gemini)
    user, model, results = body["contents"]
    assert user == {"role": "user", "parts": [{"text": "Book Monday and tell me the hours."}]}
    assert model["role"] == "model"
    assert model["parts"] == [
        {"text": "One moment."},
        {
            "functionCall": {
                "id": "fc-1",
                "name": "book_appointment",
                "args": {"day": "monday", "time": "09:30"},
            }
        },
        {"functionCall": {"id": "fc-2", "name": "opening_hours", "args": {}}},
    ]
    assert results["role"] == "user"  # both results in one turn, in order
    assert results["parts"] == [
        {
            "functionResponse": {
                "id": "fc-1",
                "name": "book_appointment",
                "response": {"booked": True, "slot": "09:30"},
            }
        },
        {
            "functionResponse": {
                "id": "fc-2",
                "name": "opening_hours",
                "response": {"result": "9 to 5"},
            }
        },
    ]


async def test_thoughts_stay_private_and_signatures_go_back(
    llm: GeminiLLM, gemini: FakeGemini
) -> None:
    # Thinking models sign their function calls; Gemini 3 rejects a follow-up without it.
    signature = base64.b64encode(b"opaque reasoning state").decode()
    gemini.script = [
        FakeTurn(
            thought="The caller wants Monday.",
            function_calls=[("book_appointment", {"day": "monday"}), ("opening_hours", {})],
            thought_signature=signature,
        )
    ]
    events = await run(llm, [Message("user", "Monday please")], [BOOK, HOURS], Tier.PRO)
    assert not [e for e in events if isinstance(e, TextDelta)]  # the thought is not spoken
    first, second = [e for e in events if isinstance(e, ToolCall)]
    await run(
        llm,
        [
            Message("user", "Monday please"),
            Message("assistant", "", tool_calls=(first, second)),
            Message("tool", '{"booked": true}', name=first.name, tool_call_id=first.id),
            Message("tool", '{"open": "9-5"}', name=second.name, tool_call_id=second.id),
        ],
        [BOOK, HOURS],
        Tier.PRO,
    )
    parts = sent(gemini)[1]["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == signature and "thoughtSignature" not in parts[1]


async def test_a_tool_result_that_is_not_json_is_wrapped(
    llm: GeminiLLM, gemini: FakeGemini
) -> None:
    messages = [
        Message("user", "hours?"),
        Message("assistant", "", tool_calls=(ToolCall("opening_hours", {}, "call_0"),)),
        Message("tool", "closed on sundays", name="opening_hours", tool_call_id="call_0"),
        Message("user", "thanks"),
    ]
    await run(llm, messages, [HOURS])
    contents = sent(gemini)[1]["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user", "user"]
    assert contents[1]["parts"] == [
        {"functionCall": {"id": "call_0", "name": "opening_hours", "args": {}}}
    ]
    response = contents[2]["parts"][0]["functionResponse"]["response"]
    assert response == {"result": "closed on sundays"}


async def test_server_errors_raise_at_once_for_the_router(
    llm: GeminiLLM, gemini: FakeGemini
) -> None:
    gemini.fail_next = [503]  # only the first request fails: a retry would have succeeded
    with pytest.raises(errors.ServerError) as caught:
        await run(llm, [Message("user", "hello")])
    assert caught.value.code == 503
    assert len(gemini.requests) == 1  # no retries
    assert (await run(llm, [Message("user", "hello")]))[-1]  # the next turn goes through


async def test_a_bad_api_key_raises(gemini: FakeGemini) -> None:
    engine = GeminiLLM(api_key="wrong-key", base_url=gemini.url)
    try:
        with pytest.raises(errors.ClientError, match="API key not valid") as caught:
            await run(engine, [Message("user", "hello")])
        assert caught.value.code == 400
    finally:
        await engine.aclose()


async def test_a_blocked_prompt_or_reply_raises(llm: GeminiLLM, gemini: FakeGemini) -> None:
    gemini.script = [FakeTurn(block_reason="SAFETY"), FakeTurn(finish_reason="SAFETY")]
    with pytest.raises(RuntimeError, match="prompt blocked: SAFETY"):
        await run(llm, [Message("user", "something awful")])
    with pytest.raises(RuntimeError, match="no reply.*finish reason SAFETY"):
        await run(llm, [Message("user", "something awful")])


async def test_a_slow_server_times_out(gemini: FakeGemini) -> None:
    engine = GeminiLLM(api_key=API_KEY, base_url=gemini.url, timeout_s=0.3)
    # The reply comes after 1.5 s: only a deadline shorter than that (not the 10 s default)
    # raises, and a retry would be answered at once.
    gemini.script = [FakeTurn(text="too late", delay_s=1.5)]
    try:
        with pytest.raises(TimeoutError, match="sent nothing for 0.3s"):
            await run(engine, [Message("user", "hello")])
    finally:
        await engine.aclose()
    assert len(gemini.requests) == 1


async def test_closing_early_hangs_up_the_stream(llm: GeminiLLM, gemini: FakeGemini) -> None:
    words = " ".join(f"word{i}" for i in range(60))
    gemini.script = [FakeTurn(text=words, stall_after_first_s=0.2)]
    async with aclosing(llm.stream([Message("user", "talk to me")])) as stream:
        async for event in stream:
            assert isinstance(event, TextDelta) and event.text == "word0 word1 word2 "
            break
    for _ in range(100):  # the server notices when its next writes fail
        if gemini.disconnects:
            break
        await asyncio.sleep(0.02)
    assert gemini.disconnects == 1
    reply = await collect_reply(llm, [Message("user", "still there?")])
    assert reply.text == "Gemini heard: still there?"


async def test_non_streaming_route_of_the_fake(gemini: FakeGemini) -> None:
    """The fake also answers `generateContent`, for code that does not stream."""
    from google import genai
    from google.genai import types

    client = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=gemini.url))
    gemini.script = [FakeTurn(text="one two three four", function_calls=[("opening_hours", {})])]
    try:
        response = await client.aio.models.generate_content(
            model="gemini-2.5-flash", contents="hello"
        )
    finally:
        await client.aio.aclose()
    assert response.text == "one two three four"
    assert response.function_calls and response.function_calls[0].name == "opening_hours"
    assert response.usage_metadata and response.usage_metadata.prompt_token_count == 1
