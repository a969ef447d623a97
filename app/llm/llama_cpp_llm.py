"""Local small language model: a GGUF chat model run on CPU by llama.cpp (llama-cpp-python)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from app.llm.base import (
    Confidence,
    LLMEvent,
    Message,
    TextDelta,
    Tier,
    ToolCall,
    ToolChoice,
    ToolSpec,
    Usage,
)

if TYPE_CHECKING:
    from llama_cpp import Llama

logger = logging.getLogger(__name__)

# Room for a few dozen conversations' KV prefixes: a Qwen2.5-0.5B state costs ~12 KB a token.
DEFAULT_CACHE_BYTES = 256 << 20
# The confidence check looks at this many first tokens: enough to see whether the model knows
# how to start its answer, few enough that escalating costs a fraction of a second.
CONFIDENCE_TOKENS = 8
# A tool call's JSON needs more room than a spoken sentence or two.
TOOL_CALL_EXTRA_TOKENS = 96
# A prefill reads this many tokens at a time (~0.3 s here) before looking for waiting replies.
PREFILL_STEP_TOKENS = 64


# Follows a tool's result in the small model's prompt. Qwen's template shows the result as a user
# turn of bare JSON, which the 0.5B model answers by repeating its greeting or copying the JSON
# out; told what to do with it, it says the result ("Rye loaf is in stock.").
SAY_THE_RESULT = "Tell the caller what this means, in one short spoken sentence."


@dataclass(frozen=True, slots=True)
class _Done:
    usage: Usage


Emitted = TextDelta | ToolCall | Confidence | _Done | Exception


class LlamaCppLLM:
    """Streams chat replies from a GGUF model; one generation at a time per instance.

    With tools, the reply is constrained by a grammar to be either plain spoken text or exactly
    one well-formed call `{"name": ..., "arguments": ...}` whose arguments match that tool's JSON
    schema: the model still decides whether to call (Qwen2.5 is trained on this format, rendered
    by its own chat template), but what it calls always parses.

    The KV cache of a conversation's prefix is reused between its turns: llama.cpp keeps the
    last prompt's state, and a RAM cache keyed by token prefixes restores the state of other
    conversations that were served in between.
    """

    def __init__(
        self,
        *,
        model_path: Path,
        threads: int = 2,
        batch_threads: int | None = None,
        context: int = 2048,
        max_tokens: int = 80,
        temperature: float = 0.3,
        seed: int = 0,
        batch: int = 256,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        """Load the model: `threads` generate, `batch_threads` (default `threads`) evaluate the
        prompt; `cache_bytes` bounds the saved KV states of recent conversations."""
        from llama_cpp.llama_cache import LlamaRAMCache
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.model_path = Path(model_path)
        self.model = self.model_path.stem
        self.name = f"llama.cpp:{self.model}"
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed
        self._llm: Llama = _slim_state_llama()(
            str(self.model_path),
            n_ctx=context,
            n_threads=threads,
            n_threads_batch=batch_threads or threads,
            n_batch=batch,
            n_ubatch=batch,
            verbose=False,
        )
        self._llm.set_cache(LlamaRAMCache(capacity_bytes=cache_bytes))
        self.context = self._llm.n_ctx()
        llm = self._llm
        eos_id = llm.token_eos()
        bos_id = llm.token_bos()
        eos_text = llm._model.token_get_text(eos_id) if eos_id != -1 else ""
        # Formatted here (the same Jinja template create_chat_completion uses) rather than by
        # create_chat_completion, so the prompt's tokens are known: they give exact usage and
        # the number of tokens served from the KV cache.
        self._formatter = Jinja2ChatFormatter(
            template=llm.metadata["tokenizer.chat_template"],
            eos_token=eos_text,
            bos_token=llm._model.token_get_text(bos_id) if bos_id != -1 else "",
        )
        self._stop = [eos_text] if eos_text else []
        # The single worker thread is the model's lock: llama.cpp's context is not
        # thread-safe, and requests queue in arrival order.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")
        # Replies queued for the worker (a prefill gives way to them), counted on two threads.
        self._replies_waiting = 0
        self._waiting_lock = threading.Lock()
        self._grammars: dict[str, Any] = {}  # GBNF text -> compiled LlamaGrammar

    async def stream(
        self,
        messages: list[Message],
        tools: list[ToolSpec] | None = None,
        tier: Tier = Tier.SLM,
        tool_choice: ToolChoice = "auto",
        shown: list[ToolSpec] | None = None,
    ) -> AsyncIterator[LLMEvent]:
        """Yield TextDelta pieces of the reply (or one ToolCall), a Confidence, then one Usage.

        `tier` is ignored (one model). Closing the iteration stops generation at the next token.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Emitted] = asyncio.Queue()
        cancel = threading.Event()

        def emit(item: Emitted) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the consumer's loop is gone: nobody is listening
                cancel.set()

        payload = [chat_message(m) for m in messages]
        offer = PromptTools.of(tools, tool_choice, shown)
        # Results and errors come back through the queue, so the returned future is not kept.
        with self._waiting_lock:
            self._replies_waiting += 1
        loop.run_in_executor(self._executor, self._generate, payload, offer, emit, cancel)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, Exception):
                    raise item
                if isinstance(item, _Done):
                    yield item.usage
                    break
                yield item
        finally:
            # Generation checks this between tokens; the worker then frees the model.
            cancel.set()

    async def prewarm(self, system_prompt: str | None = None) -> None:
        """Evaluate a short prompt once, leaving `system_prompt`'s prefix in the KV cache."""
        messages = [
            Message("system", system_prompt or "You are a helpful assistant."),
            Message("user", "Hi"),
        ]
        async for _ in self.stream(messages):
            pass

    async def prefill(self, messages: list[Message], shown: list[ToolSpec] | None = None) -> None:
        """Read `messages` (declaring `shown`) into the KV cache, so the next request that starts
        with them reads only what follows; stops early for a reply that is waiting."""
        payload = [chat_message(m) for m in messages]
        tools = PromptTools.of(None, "none", shown).shown
        await asyncio.wrap_future(self._executor.submit(self._prefill, payload, tools))

    async def aclose(self) -> None:
        """Wait for the generation in flight and free the model."""
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        self._llm.close()

    def _generate(
        self,
        messages: list[dict[str, Any]],
        offer: PromptTools,
        emit: Callable[[Emitted], None],
        cancel: threading.Event,
    ) -> None:
        with self._waiting_lock:
            self._replies_waiting -= 1
        if cancel.is_set():  # closed while it waited for the model
            return
        try:
            self._generate_locked(messages, offer, emit, cancel)
        except Exception as exc:  # re-raised in the consumer, which knows the call
            emit(exc)

    def _prefill(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> None:
        from llama_cpp import Llama

        llm = self._llm
        prompt = self.prompt_tokens(messages, tools)
        if len(prompt) + self.max_tokens > self.context:
            return
        done = int(Llama.longest_token_prefix(llm.input_ids[: llm.n_tokens].tolist(), prompt))
        if llm.cache is not None:
            with contextlib.suppress(KeyError):  # the saved state sharing the longest prefix
                saved = llm.cache[prompt]
                ids = saved.input_ids[: saved.n_tokens].tolist()
                if (reused := int(Llama.longest_token_prefix(ids, prompt))) > done:
                    llm.load_state(saved)
                    done = reused
        if done >= len(prompt):
            return
        read_from = llm.n_tokens = done
        # In small steps, so a caller's reply queued behind this waits for one step at most.
        while done < len(prompt) and not self._replies_waiting:
            llm.eval(prompt[done : done + PREFILL_STEP_TOKENS])
            done = llm.n_tokens
        if llm.cache is not None and done > read_from:
            llm.cache[prompt[:done]] = llm.save_state()

    def _generate_locked(
        self,
        messages: list[dict[str, Any]],
        offer: PromptTools,
        emit: Callable[[Emitted], None],
        cancel: threading.Event,
    ) -> None:
        import llama_cpp

        llm = self._llm
        callable_ = offer.callable is not None
        max_tokens = self.max_tokens + (TOOL_CALL_EXTRA_TOKENS if callable_ else 0)
        prompt = fit_context(
            messages, lambda turns: self.prompt_tokens(turns, offer.shown), self.context, max_tokens
        )
        call_text: str | None = None  # the reply is a tool call: its JSON, gathered whole
        grammar: str | None
        if forced := call_prefix(offer):
            call_text, grammar = forced
            prompt += llm.tokenize(call_text.encode(), add_bos=False, special=False)
        else:
            grammar = reply_grammar(messages, offer)
        cached = self._cached_prefix(prompt)
        n_prompt = len(prompt)
        n_completion = 0
        top_probs: list[float] = []
        confidence_sent = False
        started = call_text is not None

        def note_confidence(_input_ids: Any, logits: Any) -> Any:
            # Sampling runs inside llama.cpp, so this is the one place the distribution is
            # visible: keep the top token's probability for the first few tokens.
            if len(top_probs) < CONFIDENCE_TOKENS:
                shifted = np.exp(logits - logits.max())
                top_probs.append(float(1.0 / shifted.sum()))
            return logits

        def send_confidence() -> None:
            nonlocal confidence_sent
            if top_probs and not confidence_sent:
                confidence_sent = True
                emit(Confidence(sum(top_probs) / len(top_probs), len(top_probs)))

        def should_stop(input_ids: Any, _logits: Any) -> bool:
            # Called by llama.cpp after each sampled token: the cheapest place to count them
            # and to notice a closed stream without waiting for the next text piece.
            # `input_ids` does not hold the token just sampled yet, hence the + 1; the count
            # includes the end-of-turn token, which was generated like any other.
            nonlocal n_completion
            n_completion = max(n_completion, len(input_ids) - n_prompt + 1)
            # Spoken text keeps its usual length limit; only a tool call gets the extra room.
            too_long = call_text is None and n_completion > self.max_tokens
            return cancel.is_set() or too_long

        chunks = llm.create_completion(
            prompt=prompt,
            max_tokens=max_tokens,
            temperature=self.temperature,
            # Without a seed, llama-cpp-python draws each completion's seed from the one before,
            # so a reply would depend on how many replies the process sampled before it.
            seed=self.seed,
            stop=self._stop,
            stream=True,
            stopping_criteria=llama_cpp.StoppingCriteriaList([should_stop]),
            logits_processor=llama_cpp.LogitsProcessorList([note_confidence]),
            grammar=self._compiled(grammar),
        )
        for chunk in chunks:
            text = chunk["choices"][0]["text"]  # type: ignore[index]
            if len(top_probs) >= CONFIDENCE_TOKENS:
                send_confidence()
            if not text or cancel.is_set():
                continue
            if not started:
                started = True
                # The grammar lets a reply start with "{" only as a tool call.
                call_text = "" if callable_ and text.lstrip().startswith("{") else None
            if call_text is not None:
                call_text += text
            else:
                emit(TextDelta(text))
        send_confidence()
        if call_text is not None and not cancel.is_set():
            emit(parse_call(call_text))
        emit(
            _Done(
                Usage(
                    model=self.model,
                    prompt_tokens=n_prompt,
                    completion_tokens=n_completion,
                    cached_tokens=cached,
                )
            )
        )

    def _compiled(self, grammar: str | None) -> Any:
        """The compiled GBNF, cached per text."""
        from llama_cpp.llama_grammar import LlamaGrammar

        if grammar is None:
            return None
        if grammar not in self._grammars:
            self._grammars[grammar] = LlamaGrammar.from_string(grammar, verbose=False)
        return self._grammars[grammar]

    def prompt_tokens(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> list[int]:
        """The chat prompt's tokens: the GGUF's own template, then llama.cpp's tokenizer."""
        formatted = self._formatter(messages=cast(Any, messages), tools=cast(Any, tools))
        return list(
            self._llm.tokenize(
                formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True
            )
        )

    def _cached_prefix(self, prompt: list[int]) -> int:
        """How many leading prompt tokens already have KV state, live or in the RAM cache."""
        from llama_cpp import Llama

        llm = self._llm
        best = int(Llama.longest_token_prefix(llm.input_ids[: llm.n_tokens].tolist(), prompt))
        if llm.cache is not None:
            try:
                state = llm.cache[prompt]
            except KeyError:
                return best
            saved = state.input_ids[: state.n_tokens].tolist()
            best = max(best, int(Llama.longest_token_prefix(saved, prompt)))
        return best


# A reply spoken after a tool's result: words, without the braces, brackets and tags of the JSON
# it has just read (a 0.5B model tends to copy the result out instead of saying it).
SPOKEN_AFTER_RESULT_GRAMMAR = "root ::= [^{}<>\\[\\]\\x00]+"


@dataclass(frozen=True, slots=True)
class PromptTools:
    """One request's tools in chat-template form: those the prompt declares, and those that
    may be called (a subset; None: none)."""

    shown: list[dict[str, Any]] | None
    callable: list[dict[str, Any]] | None
    required: bool = False

    @classmethod
    def of(
        cls, tools: list[ToolSpec] | None, choice: ToolChoice, shown: list[ToolSpec] | None
    ) -> PromptTools:
        """From a `stream` call's arguments: `shown` declared (default: `tools`), `tools`
        callable unless `choice` is "none". Declared tools that may not be called keep the
        prompt starting as the round before did, so its KV cache is reused."""
        declared = shown if shown is not None else tools
        return cls(
            shown=[tool_schema(t) for t in declared] if declared else None,
            callable=[tool_schema(t) for t in tools] if tools and choice != "none" else None,
            required=choice == "required",
        )


def reply_grammar(messages: list[dict[str, Any]], offer: PromptTools) -> str | None:
    """The GBNF a reply is sampled under: `tool_grammar` when tools may be called, spoken words
    only when the reply says a tool's result, no call when tools are only declared, else none.
    llama.cpp and vLLM both use it."""
    if offer.callable:
        return tool_grammar(offer.callable, required=offer.required)
    if (messages and messages[-1]["role"] == "tool") or offer.shown:
        # Tools declared but not callable: the model would otherwise write a call as text
        # (measured: one in a ```json block, which the voice then read out).
        return SPOKEN_AFTER_RESULT_GRAMMAR
    return None


def tool_grammar(tools: list[dict[str, Any]], *, required: bool) -> str:
    """GBNF for a reply that is plain text, or one call `{"name": ..., "arguments": ...}` of one
    of `tools` (chat-template form) whose arguments match its JSON schema; only the call when
    `required`. llama.cpp and vLLM (xgrammar) both take it."""
    calls = {
        "anyOf": [
            {
                "type": "object",
                "properties": {
                    "name": {"const": t["function"]["name"]},
                    "arguments": t["function"]["parameters"] or {"type": "object"},
                },
                "required": ["name", "arguments"],
            }
            for t in tools
        ]
    }
    call_rules = _json_rules("call", calls)
    if required:
        return f"root ::= call\n{call_rules}"
    # Text may not open with "{" (that is a call) or "<" (Qwen's <tool_call> tag, which would
    # let an unconstrained call slip through as text).
    return f"root ::= call | text\ntext ::= [^{{<\\x00] [^\\x00]*\n{call_rules}"


def call_prefix(offer: PromptTools) -> tuple[str, str] | None:
    """For a required call of one tool: the start of its JSON, which leaves the model no choice,
    and the GBNF of the rest (None otherwise). The prefix is read with the prompt in one batch;
    sampled under `tool_grammar`, each of its ~10 tokens cost a forward pass of its own."""
    if not offer.required or not offer.callable or len(offer.callable) != 1:
        return None
    function = offer.callable[0]["function"]
    rules = _json_rules("arguments", function["parameters"] or {"type": "object"})
    # Cut where the model would go on with " {": a token of its own, as in its own calls.
    prefix = json.dumps({"name": function["name"]})[:-1] + ', "arguments":'
    return prefix, f'root ::= space arguments "}}" space\n{rules}'


def _json_rules(name: str, schema: dict[str, Any]) -> str:
    """GBNF rules for JSON matching `schema`, the top rule called `name`."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    rules = re.sub(
        r"^root ::=", f"{name} ::=", json_schema_to_gbnf(json.dumps(schema)), flags=re.MULTILINE
    )
    # llama-cpp-python's converter lets a string hold raw control characters, which JSON forbids:
    # a call whose reason had a raw newline could be written and would then fail to parse
    # (random weights on vLLM did). llama.cpp's own converter excludes them.
    return rules.replace('char ::= [^"\\\\]', 'char ::= [^"\\\\\\x00-\\x1F]')


def fit_context(
    messages: list[dict[str, Any]],
    render: Callable[[list[dict[str, Any]]], list[int]],
    context: int,
    room: int,
) -> list[int]:
    """The prompt's tokens (`render`), dropping the oldest turns after the system prompt until
    `room` tokens of the `context` are left for the reply. Both local engines fit this way."""
    messages = list(messages)
    while True:
        tokens = render(messages)
        if len(tokens) + room <= context:
            return tokens
        first = 1 if messages and messages[0]["role"] == "system" else 0
        if len(messages) - first <= 1:
            raise ValueError(
                f"prompt of {len(tokens)} tokens plus max_tokens={room} does not "
                f"fit the {context}-token context; shorten the system prompt or raise "
                "SLM_CONTEXT"
            )
        # Trimming breaks the cached prefix, but a reply beats a context-overflow error.
        logger.warning("prompt of %d tokens overflows the context; dropping a turn", len(tokens))
        del messages[first]


def chat_message(message: Message) -> dict[str, Any]:
    """A message as the chat template expects it (OpenAI-style tool calls, as Qwen's uses)."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.role == "tool":
        out["name"] = message.name
        out["tool_call_id"] = message.tool_call_id
        out["content"] = f"{message.content}\n{SAY_THE_RESULT}"
    return out


def tool_schema(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def parse_call(text: str) -> ToolCall | Exception:
    """The grammar-shaped call JSON as a ToolCall (an error only if generation was cut short)."""
    try:
        data = json.loads(text)
        return ToolCall(data["name"], dict(data["arguments"]), id=f"call_{uuid.uuid4().hex[:12]}")
    except (ValueError, KeyError, TypeError) as exc:
        return ValueError(f"the tool call was cut short ({exc}): {text[:200]!r}")


@cache
def _slim_state_llama() -> type[Llama]:
    """A Llama whose saved states leave out the logits matrix it no longer reads."""
    import llama_cpp
    from llama_cpp import Llama, LlamaState

    class SlimStateLlama(Llama):
        def save_state(self) -> LlamaState:
            # Llama.save_state copies `scores` (up to n_batch x vocab floats: 106 MB and
            # 220 ms for a 174-token Qwen prompt, measured) into every cache entry, at the
            # end of every stream and outside the cache's capacity accounting. Without
            # logits_all those rows are never written or read (sampling runs in llama.cpp),
            # so one row keeps LlamaState's shape for anything that inspects it.
            size = llama_cpp.llama_state_get_size(self._ctx.ctx)
            buffer = (ctypes.c_uint8 * int(size))()
            n_bytes = int(llama_cpp.llama_state_get_data(self._ctx.ctx, buffer, size))
            if n_bytes > int(size):
                raise RuntimeError("llama.cpp wrote more state than it announced")
            return LlamaState(
                input_ids=self.input_ids.copy(),
                scores=self.scores[:1].copy(),
                n_tokens=self.n_tokens,
                llama_state=ctypes.string_at(buffer, n_bytes),
                llama_state_size=n_bytes,
                seed=self._seed,
            )

        def load_state(self, state: LlamaState) -> None:
            # Llama.load_state also rewrites and scans the whole `scores` matrix; with its
            # rows unused, the token ids and llama.cpp's own state are the whole job.
            self.input_ids = state.input_ids.copy()
            self.n_tokens = state.n_tokens
            self._requires_eval = True
            self._seed = state.seed
            size = state.llama_state_size
            buffer = (ctypes.c_uint8 * size).from_buffer_copy(state.llama_state)
            if llama_cpp.llama_state_set_data(self._ctx.ctx, buffer, size) != size:
                raise RuntimeError("llama.cpp did not accept the saved state")

    return SlimStateLlama
