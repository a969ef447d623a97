"""The SLM on vLLM (GPU machines only): streams, and calls tools under the shared grammar."""

from __future__ import annotations

import pytest

from app.llm.base import Message, TextDelta, ToolCall, ToolSpec, Usage

pytestmark = [pytest.mark.integration, pytest.mark.gpu]

ORDER_TOOL = ToolSpec(
    "check_order_status",
    "Look up an order by its number.",
    {
        "type": "object",
        "properties": {"order_id": {"type": "string", "enum": ["A1042"]}},
        "required": ["order_id"],
    },
)


@pytest.fixture(scope="module")
def vllm_slm():  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no GPU")
    pytest.importorskip("vllm")
    from app.engines import build_slm
    from app.settings import get_settings

    return build_slm(get_settings(), "vllm")


async def test_vllm_streams_a_reply_and_a_required_tool_call(vllm_slm) -> None:  # type: ignore[no-untyped-def]
    system = Message("system", "You answer the phone for Rosa's Bakery. Be brief.")
    events = [e async for e in vllm_slm.stream([system, Message("user", "Hi, are you open?")])]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)).strip()
    assert isinstance(events[-1], Usage)
    ask = Message("user", "Where is my order A1042?")
    events = [e async for e in vllm_slm.stream([system, ask], [ORDER_TOOL], tool_choice="required")]
    (call,) = [e for e in events if isinstance(e, ToolCall)]
    assert call.name == "check_order_status" and call.arguments == {"order_id": "A1042"}
