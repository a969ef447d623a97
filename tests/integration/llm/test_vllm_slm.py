"""The SLM on vLLM: on CPU, that vLLM is handed the very prompt llama.cpp evaluates; on a GPU
machine (tests/gpu/check.sh), that it streams and calls tools under the shared grammar."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.llm.base import Confidence, Message, TextDelta, ToolCall, ToolSpec, Usage
from app.llm.llama_cpp_llm import LlamaCppLLM, chat_message, tool_grammar, tool_schema
from app.llm.model_files import qwen_gguf_path
from app.settings import get_settings

pytestmark = pytest.mark.integration
# One loop for the GPU tests: vLLM's async engine binds its output handler to the loop of its
# first request, and they share one engine.
ENGINE_LOOP = pytest.mark.asyncio(loop_scope="module")

ORDER_TOOL = ToolSpec(
    "check_order_status",
    "Look up an order by its number.",
    {
        "type": "object",
        "properties": {"order_id": {"type": "string", "enum": ["A1042"]}},
        "required": ["order_id"],
    },
)
BOOKING_TOOL = ToolSpec(
    "book_appointment",
    "Book a pickup slot.",
    {
        "type": "object",
        "properties": {"day": {"type": "string"}, "time": {"type": "string"}},
        "required": ["day", "time"],
    },
)
CONVERSATION = [
    Message("system", "You answer the phone for Rosa's Bakery. Be brief."),
    Message("user", "Where is my order A1042?"),
    Message(
        "assistant",
        "",
        tool_calls=(ToolCall("check_order_status", {"order_id": "A1042"}, id="call_1"),),
    ),
    Message(
        "tool",
        '{"status": "ready", "pickup": "after 3 pm"}',
        name="check_order_status",
        tool_call_id="call_1",
    ),
    Message("assistant", "It's ready for pickup after 3 pm."),
    Message("user", "Great. Can I book Saturday at 10, and do you bake croissants? ¿Sí?"),
]


@pytest.fixture(scope="module")
def shipped_gguf() -> Path:
    return qwen_gguf_path(get_settings().server.velox_data_dir)


async def test_vllm_is_handed_the_tokens_llama_cpp_evaluates(shipped_gguf: Path) -> None:
    pytest.importorskip("gguf")  # transformers reads the GGUF's tokenizer through it
    from app.llm.vllm_llm import ChatTemplatePrompt

    vllm_prompt = ChatTemplatePrompt(shipped_gguf)
    llama = LlamaCppLLM(model_path=shipped_gguf, threads=1, context=2048)
    tools = [tool_schema(ORDER_TOOL), tool_schema(BOOKING_TOOL)]
    for turns, offered in [
        (CONVERSATION[:2], None),
        (CONVERSATION[:2], tools),
        (CONVERSATION, tools),
        (CONVERSATION, None),
    ]:
        payload = [chat_message(m) for m in turns]
        expected = llama.prompt_tokens(payload, offered)
        assert vllm_prompt.tokens(payload, offered) == expected
    await llama.aclose()


async def test_the_gpu_checks_tiny_model_still_calls_tools_under_the_grammar(
    shipped_gguf: Path, tmp_path: Path
) -> None:
    """tests/gpu/check.sh runs the GPU test below on random weights (the real model cannot
    travel there): the grammar alone must still yield the exact call, and the model text."""
    pytest.importorskip("gguf")
    from tests.gpu.tiny_gguf import build

    tiny = tmp_path / "tiny-qwen2.gguf"
    build(shipped_gguf, tiny)
    slm = LlamaCppLLM(model_path=tiny, threads=1, context=1024)
    system = Message("system", "You answer the phone for Rosa's Bakery. Be brief.")
    ask = Message("user", "Where is my order A1042?")
    events = [e async for e in slm.stream([system, ask], [ORDER_TOOL], tool_choice="required")]
    (call,) = [e for e in events if isinstance(e, ToolCall)]
    assert call.arguments == {"order_id": "A1042"}
    events = [e async for e in slm.stream([system, Message("user", "Hi, are you open?")])]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)).strip()
    await slm.aclose()


def test_vllms_grammar_engine_holds_a_call_to_json(shipped_gguf: Path) -> None:
    """xgrammar (vLLM's structured-output engine; installed with the gpu extra, not in CI) takes
    the GBNF llama.cpp takes: a call with a raw newline in a string is refused, escaped it is
    accepted, and text is accepted only when a call is not required."""
    xgr = pytest.importorskip("xgrammar")
    from transformers import AutoTokenizer

    from app.llm.vllm_llm import gguf_tokenizer_dir

    tokenizer = AutoTokenizer.from_pretrained(str(gguf_tokenizer_dir(shipped_gguf)))
    compiler = xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(tokenizer))
    call = '{"name": "book_appointment", "arguments": {"day": "Saturday%s", "time": "10 am"}}'
    for required in (True, False):
        grammar = compiler.compile_grammar(
            tool_grammar([tool_schema(ORDER_TOOL), tool_schema(BOOKING_TOOL)], required=required)
        )
        for text, allowed in [
            (call % "", True),
            (call % "\\n", True),
            (call % "\n", False),
            ("Yes, we open at seven.", not required),
        ]:
            assert xgr.GrammarMatcher(grammar).accept_string(text) is allowed, (required, text)


@pytest.fixture(scope="module")
def vllm_slm():  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no GPU")
    pytest.importorskip("vllm")
    from app.engines import build_slm

    return build_slm(get_settings(), "vllm")


@pytest.mark.gpu
@ENGINE_LOOP
async def test_vllm_streams_a_reply_and_a_required_tool_call(vllm_slm) -> None:  # type: ignore[no-untyped-def]
    system = Message("system", "You answer the phone for Rosa's Bakery. Be brief.")
    events = [e async for e in vllm_slm.stream([system, Message("user", "Hi, are you open?")])]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)).strip()
    assert isinstance(events[-1], Usage) and events[-1].completion_tokens > 0
    # The router escalates on this score, so it must come from vLLM's log-probabilities too.
    (confidence,) = [e for e in events if isinstance(e, Confidence)]
    assert 0.0 < confidence.score <= 1.0
    ask = Message("user", "Where is my order A1042?")
    events = [e async for e in vllm_slm.stream([system, ask], [ORDER_TOOL], tool_choice="required")]
    (call,) = [e for e in events if isinstance(e, ToolCall)]
    assert call.name == "check_order_status" and call.arguments == {"order_id": "A1042"}


@pytest.mark.gpu
@ENGINE_LOOP
async def test_vllm_serves_concurrent_turns_each_its_own_reply(vllm_slm) -> None:  # type: ignore[no-untyped-def]
    """Calls share a replica: prompts are rendered in worker threads with one tokenizer and
    batched by the engine; each stream must end with its own usage (how much of each prompt the
    prefix cache served is printed)."""
    system = Message("system", "You answer the phone for Rosa's Bakery. Be brief.")

    async def turn(said: str, tools: list[ToolSpec] | None) -> list[object]:
        choice = "required" if tools else "auto"
        return [
            e
            async for e in vllm_slm.stream(
                [system, Message("user", said)], tools, tool_choice=choice
            )
        ]

    asks = [
        (f"Caller {n}: is order A1042 ready?", [ORDER_TOOL] if n % 2 else None) for n in range(16)
    ]
    results = await asyncio.gather(*(turn(said, tools) for said, tools in asks))
    for (said, tools), events in zip(asks, results, strict=True):
        usage = events[-1]
        assert isinstance(usage, Usage) and usage.prompt_tokens > 0, said
        if tools:
            (call,) = [e for e in events if isinstance(e, ToolCall)]
            assert call.arguments == {"order_id": "A1042"}, said
        else:  # random weights may stop at once: the check is that no call leaks into text
            assert not any(isinstance(e, ToolCall) for e in events), said
    cached = [e.cached_tokens for events in results for e in events if isinstance(e, Usage)]
    print(f"prefix cache: cached prompt tokens per concurrent turn {cached}")
