"""The reply grammars, walked by llama.cpp's own grammar engine over the shipped model's
vocabulary: whatever it lets a model write inside a call must parse as that call. (vLLM's
xgrammar takes the same GBNF; tests/gpu/check.sh found the fault below with random weights.)"""

from __future__ import annotations

import ctypes
import json
import math
from collections.abc import Iterator

import pytest
from llama_cpp import Llama, llama_cpp

from app.llm.base import Message
from app.llm.llama_cpp_llm import (
    SAY_THE_RESULT,
    PromptTools,
    call_prefix,
    chat_message,
    parse_call,
    reply_grammar,
    tool_grammar,
    tool_schema,
)
from app.llm.model_files import qwen_gguf_path
from app.settings import get_settings
from app.tools.registry import TOOLS
from app.tools.transfer import Transfer

pytestmark = pytest.mark.integration

SPECS = {tool.name: tool.spec() for tool in TOOLS}


@pytest.fixture(scope="module")
def vocab() -> Iterator[Llama]:
    llama = Llama(
        model_path=str(qwen_gguf_path(get_settings().server.velox_data_dir)),
        vocab_only=True,
        verbose=False,
    )
    yield llama
    llama.close()


class GrammarWalk:
    """Feeds text token by token through a grammar sampler, as decoding would."""

    def __init__(self, llama: Llama, grammar: str) -> None:
        self._llama = llama
        vocab = llama_cpp.llama_model_get_vocab(llama.model)
        self._sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
        assert self._sampler, "llama.cpp refused the grammar"

    def tokens(self, text: str) -> list[int]:
        return list(self._llama.tokenize(text.encode(), add_bos=False, special=False))

    def allows(self, token: int) -> bool:
        data = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(token, 0.0, 0.0))
        candidates = llama_cpp.llama_token_data_array(data, 1, -1, False)
        llama_cpp.llama_sampler_apply(self._sampler, ctypes.byref(candidates))
        return math.isfinite(data[0].logit)

    def write(self, text: str) -> None:
        for token in self.tokens(text):
            assert self.allows(token), f"the grammar refuses {self._llama.detokenize([token])!r}"
            llama_cpp.llama_sampler_accept(self._sampler, token)

    def close(self) -> None:
        llama_cpp.llama_sampler_free(self._sampler)


@pytest.mark.parametrize("control", ["\n", "\t", "\r", "\x1b"])
def test_a_string_argument_cannot_hold_a_raw_control_character(vocab: Llama, control: str) -> None:
    """JSON forbids them unescaped: a call with a raw newline in its reason would not parse."""
    walk = GrammarWalk(vocab, tool_grammar([tool_schema(Transfer.spec())], required=True))
    walk.write('{"name": "transfer_to_agent", "arguments": {"reason": "Caller wants a person')
    (raw,) = walk.tokens(control)
    assert not walk.allows(raw)
    assert isinstance(
        parse_call('{"name": "x", "arguments": {"reason": "a' + control + 'b"}}'), Exception
    )
    # Escaped, it is JSON, and it parses.
    walk.write('\\n and a refund"}}')
    walk.close()
    call = parse_call('{"name": "transfer_to_agent", "arguments": {"reason": "a\\nb"}}')
    assert not isinstance(call, Exception) and call.arguments == {"reason": "a\nb"}


def test_well_formed_calls_can_be_written_whole(vocab: Llama) -> None:
    """The walk itself is sound: a call with arguments, and one without, pass token by token."""
    examples = {
        "check_order_status": {"order_id": "A1042"},
        "end_call": {},
    }
    for name, arguments in examples.items():
        walk = GrammarWalk(vocab, tool_grammar([tool_schema(SPECS[name])], required=True))
        walk.write(json.dumps({"name": name, "arguments": arguments}))
        walk.close()


def test_a_required_call_of_one_tool_starts_with_its_name_written_for_the_model(
    vocab: Llama,
) -> None:
    """The start of the call is read with the prompt; the grammar of the rest takes the
    arguments and closes the call, and refuses anything else."""
    examples = {
        "check_item_stock": {"item": "rye bread"},
        "end_call": {},
        "book_appointment": {"date": "2026-12-03", "time": "14:00", "name": "Ann Lee"},
    }
    for name, arguments in examples.items():
        offer = PromptTools(shown=None, callable=[tool_schema(SPECS[name])], required=True)
        forced = call_prefix(offer)
        assert forced is not None
        prefix, rest = forced
        whole = json.dumps({"name": name, "arguments": arguments})
        assert whole.startswith(prefix)
        walk = GrammarWalk(vocab, rest)
        walk.write(whole[len(prefix) :])
        walk.close()
        call = parse_call(prefix + whole[len(prefix) :])
        assert not isinstance(call, Exception) and (call.name, call.arguments) == (name, arguments)
    stock = PromptTools(
        shown=None, callable=[tool_schema(SPECS["check_item_stock"])], required=True
    )
    walk = GrammarWalk(vocab, call_prefix(stock)[1])  # type: ignore[index]
    walk.write(' {"item": "rye"')
    assert not walk.allows(walk.tokens(",")[0])  # no other argument
    walk.close()
    # Not required, or more than one tool: the model chooses, so nothing is written for it.
    assert call_prefix(PromptTools(shown=None, callable=stock.callable, required=False)) is None
    both = [tool_schema(SPECS["check_item_stock"]), tool_schema(SPECS["check_order_status"])]
    assert call_prefix(PromptTools(shown=None, callable=both, required=True)) is None


def test_a_reply_after_a_tool_result_is_words_not_json(vocab: Llama) -> None:
    """After a result, the small model may say it but not copy its JSON out."""
    result = [
        chat_message(Message("user", "Where is order A1042?")),
        chat_message(Message("tool", '{"status": "shipped"}', name="check_order_status")),
    ]
    grammar = reply_grammar(result, PromptTools.of(None, "auto", None))
    assert grammar is not None
    walk = GrammarWalk(vocab, grammar)
    walk.write("Order A1042 has shipped, it arrives on Sunday.")
    for piece in ('{"', "[", "<tool_call>", "}"):
        assert not any(walk.allows(t) for t in walk.tokens(piece)[:1]), piece
    walk.close()
    # A reply that is not about a result is free; offered tools, it is the tool grammar.
    assert reply_grammar(result[:1], PromptTools.of(None, "auto", None)) is None
    offer = PromptTools.of([SPECS["end_call"]], "required", None)
    assert offer.callable is not None
    assert reply_grammar(result, offer) == tool_grammar(offer.callable, required=True)


def test_tools_declared_but_not_callable_allow_words_only(vocab: Llama) -> None:
    """The prompt declares the agent's tools every turn (its cached prefix stays the same);
    on a turn that may call none of them, the reply cannot open a call."""
    question = [chat_message(Message("user", "What time do you open?"))]
    offer = PromptTools.of(None, "auto", [SPECS["check_order_status"], SPECS["end_call"]])
    assert offer.shown is not None and offer.callable is None
    grammar = reply_grammar(question, offer)
    assert grammar is not None
    for opening in ('{"', "<tool_call>"):
        walk = GrammarWalk(vocab, grammar)
        assert not any(walk.allows(t) for t in walk.tokens(opening)[:1]), opening
    walk = GrammarWalk(vocab, grammar)
    walk.write("We open at seven, see you then.")
    walk.close()
    # Some may be called: only those, under the tool grammar.
    shown = [SPECS["check_order_status"], SPECS["end_call"]]
    some = PromptTools.of([SPECS["end_call"]], "auto", shown)
    assert some.callable is not None and [t["function"]["name"] for t in some.callable] == [
        "end_call"
    ]
    assert reply_grammar(question, some) == tool_grammar(some.callable, required=False)


def test_the_small_model_is_told_to_say_a_result() -> None:
    """Qwen's template shows a result as a user turn of bare JSON; the instruction after it
    is what keeps the 0.5B model from answering it with its greeting."""
    message = chat_message(Message("tool", '{"in_stock": true}', name="check_item_stock"))
    assert message["content"] == '{"in_stock": true}\n' + SAY_THE_RESULT
    assert chat_message(Message("user", "Hi"))["content"] == "Hi"
