"""A local stand-in for the Gemini API (generativelanguage.googleapis.com), reached through the
official `google-genai` SDK pointed at its URL (`HttpOptions(base_url=...)`).

It speaks the REST wire format the SDK uses: `models/{model}:batchEmbedContents`, with embeddings
made by feature hashing of word stems, so texts that share words are close — enough for
retrieval tests to mean something; and `models/{model}:generateContent` and
`:streamGenerateContent?alt=sse`, which answer from `script` (a list of `FakeTurn`, consumed in
order) or, when it is empty, echo the last user text. Requests are kept for assertions.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

API_KEY = "fake-gemini-key"
DEFAULT_DIMENSION = 3072  # gemini-embedding-001 without outputDimensionality
WORDS_PER_EVENT = 3  # streamed text is cut into events of this many words
EVENT_INTERVAL_S = 0.005  # between streamed events, as a real stream trickles


@dataclass
class FakeTurn:
    """One scripted reply of `generateContent` / `streamGenerateContent`.

    `delay_s` passes before the first byte (status line included), so a client timeout fires
    before any response; `stall_after_first_s` passes after the first event. `block_reason`
    answers with `promptFeedback.blockReason` and no candidates, as when the prompt is blocked;
    `finish_reason` ends the candidate (e.g. "SAFETY" with no text: a blocked reply).
    """

    text: str = ""
    function_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    delay_s: float = 0.0
    stall_after_first_s: float = 0.0
    call_ids: bool = True  # give each functionCall an `id`, as newer models do
    thought: str = ""  # a thought summary part, sent first (as with includeThoughts)
    thought_signature: str | None = None  # base64, on the first functionCall part
    finish_reason: str = "STOP"
    block_reason: str | None = None


def hashed_embedding(text: str, dimension: int) -> list[float]:
    """A deterministic bag-of-stems vector (crude, but similar words land in the same slots)."""
    vector = np.zeros(dimension, dtype=np.float64)
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        stem = word[:5]
        slot = int.from_bytes(hashlib.sha256(stem.encode()).digest()[:4], "big") % dimension
        vector[slot] += 1.0
    vector[0] += 0.01  # never all zeros
    # Not unit length: the real API returns unnormalised vectors below 3072 dimensions.
    return [float(x) * 3.0 for x in vector]


class FakeGemini:
    """Run with `with FakeGemini() as gemini:`; `gemini.url` is the SDK's base URL."""

    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.fail_next: list[int] = []  # status codes to answer the next requests with
        self.script: list[FakeTurn] = []  # replies to the next generate requests, in order
        self.disconnects = 0  # streams the client hung up on before their end
        self._lock = threading.Lock()
        self._closing = threading.Event()  # cuts delays short when the server stops
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        # A short poll interval: shutdown() waits up to one interval for the loop to notice.
        serve = functools.partial(self._server.serve_forever, poll_interval=0.02)
        self._thread = threading.Thread(target=serve, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeGemini:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = json.loads(self.rfile.read(int(self.headers["content-length"] or 0)))
                fake.requests.append((self.path, body))
                if self.headers.get("x-goog-api-key") != fake.api_key:
                    return self._reply(400, _error(400, "API key not valid.", "INVALID_ARGUMENT"))
                if fake.fail_next:
                    code = fake.fail_next.pop(0)
                    return self._reply(code, _error(code, "try again later", "UNAVAILABLE"))
                match = re.fullmatch(r"/v1(?:beta)?/models/([^:/]+):(\w+)", self.path.split("?")[0])
                if match and match.group(2) == "batchEmbedContents":
                    return self._reply(200, fake.batch_embed(body))
                if match and match.group(2) in ("generateContent", "streamGenerateContent"):
                    model, method = match.groups()
                    turn = fake.next_turn(body)
                    if fake._closing.wait(turn.delay_s):
                        return None
                    events = list(fake.generate_events(model, body, turn))
                    if method == "generateContent":
                        return self._reply(200, _merge(events))
                    return self._stream(events, turn)
                return self._reply(404, _error(404, f"no route {self.path}", "NOT_FOUND"))

            def _reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, events: list[dict[str, Any]], turn: FakeTurn) -> None:
                # HTTP/1.0 without content-length: the body ends when the connection closes.
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                try:
                    for index, event in enumerate(events):
                        if index and fake._closing.wait(
                            turn.stall_after_first_s if index == 1 else EVENT_INTERVAL_S
                        ):
                            return
                        # The SSE framing Google sends: `data: {json}` then a blank line, CRLF.
                        self.wfile.write(f"data: {json.dumps(event)}\r\n\r\n".encode())
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    with fake._lock:
                        fake.disconnects += 1

        return Handler

    def next_turn(self, body: dict[str, Any]) -> FakeTurn:
        """The next scripted turn, or an echo of the last user text."""
        with self._lock:
            if self.script:
                return self.script.pop(0)
        return FakeTurn(text=f"Gemini heard: {last_user_text(body)}")

    def generate_events(
        self, model: str, body: dict[str, Any], turn: FakeTurn
    ) -> Iterator[dict[str, Any]]:
        """The `GenerateContentResponse` chunks of one reply, as `streamGenerateContent` sends."""
        prompt_tokens = _count_words(body)
        response_id = uuid.uuid4().hex[:16]

        def event(
            parts: list[dict[str, Any]], output_words: int, finish: str | None
        ) -> dict[str, Any]:
            candidate: dict[str, Any] = {"index": 0}
            if parts:
                candidate["content"] = {"role": "model", "parts": parts}
            if finish:
                candidate["finishReason"] = finish
            return {
                "candidates": [candidate],
                "usageMetadata": _usage(prompt_tokens, output_words),
                "modelVersion": model,
                "responseId": response_id,
            }

        if turn.block_reason:
            yield {
                "promptFeedback": {"blockReason": turn.block_reason},
                "usageMetadata": _usage(prompt_tokens, 0),
                "modelVersion": model,
                "responseId": response_id,
            }
            return
        pieces = re.findall(r"\S+\s*", turn.text)
        chunks = [
            "".join(pieces[i : i + WORDS_PER_EVENT]) for i in range(0, len(pieces), WORDS_PER_EVENT)
        ]
        calls: list[dict[str, Any]] = []
        for name, args in turn.function_calls:
            call: dict[str, Any] = {"name": name, "args": args}
            if turn.call_ids:
                call["id"] = f"fc-{uuid.uuid4().hex[:8]}"
            calls.append({"functionCall": call})
        if calls and turn.thought_signature:
            calls[0]["thoughtSignature"] = turn.thought_signature
        if turn.thought:
            yield event([{"text": turn.thought, "thought": True}], 0, None)
        words = 0
        for index, chunk in enumerate(chunks):
            words += len(chunk.split())
            last = index == len(chunks) - 1 and not calls
            yield event([{"text": chunk}], words, turn.finish_reason if last else None)
        if calls:  # function calls come whole, in the stream's last chunk
            words += sum(1 + len(json.dumps(c["functionCall"]["args"]).split()) for c in calls)
            yield event(calls, words, turn.finish_reason)
        if not chunks and not calls:
            yield event([], 0, turn.finish_reason)

    def batch_embed(self, body: dict[str, Any]) -> dict[str, Any]:
        """`{"requests": [{"content": {"parts": [{"text"}]}, "outputDimensionality"}]}`."""
        embeddings = []
        for request in body["requests"]:
            text = " ".join(p.get("text", "") for p in request["content"]["parts"])
            size = int(request.get("outputDimensionality") or DEFAULT_DIMENSION)
            embeddings.append({"values": hashed_embedding(text, size)})
        return {"embeddings": embeddings}


def last_user_text(body: dict[str, Any]) -> str:
    """The text of the last user turn that has any (function responses are not text)."""
    for content in reversed(body.get("contents", [])):
        if content.get("role", "user") == "user":
            text = " ".join(p["text"] for p in content.get("parts", []) if "text" in p)
            if text:
                return text
    return ""


def _count_words(body: dict[str, Any]) -> int:
    """Approximate prompt tokens: words of every text part, function part and instruction."""
    contents = [*body.get("contents", []), body.get("systemInstruction") or {}]
    words = 0
    for content in contents:
        for part in content.get("parts", []):
            words += len(part.get("text", "").split())
            for key in ("functionCall", "functionResponse"):
                if key in part:
                    words += len(json.dumps(part[key]).split())
    return words


def _usage(prompt_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt_tokens + output_tokens,
    }


def _merge(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The non-streaming response: the stream's parts in one candidate, the last usage."""
    last = dict(events[-1])
    streamed = [
        part
        for event in events
        for candidate in event.get("candidates", [])[:1]
        for part in candidate.get("content", {}).get("parts", [])
    ]
    text = "".join(part.get("text", "") for part in streamed if not part.get("thought"))
    parts = [{"text": text}] if text else []
    parts += [part for part in streamed if "functionCall" in part]
    if "candidates" in last:
        candidate = dict(last["candidates"][0])
        if parts:
            candidate["content"] = {"role": "model", "parts": parts}
        last["candidates"] = [candidate]
    return last


def _error(code: int, message: str, status: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}
