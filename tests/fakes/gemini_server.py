"""A local stand-in for the Gemini API (generativelanguage.googleapis.com), reached through the
official `google-genai` SDK pointed at its URL (`HttpOptions(base_url=...)`).

It speaks the REST wire format the SDK uses. So far: `models/{model}:batchEmbedContents`, with
embeddings made by feature hashing of word stems, so texts that share words are close — enough
for retrieval tests to mean something. Requests are kept for assertions.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

API_KEY = "fake-gemini-key"
DEFAULT_DIMENSION = 3072  # gemini-embedding-001 without outputDimensionality


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
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeGemini:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
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
                return self._reply(404, _error(404, f"no route {self.path}", "NOT_FOUND"))

            def _reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def batch_embed(self, body: dict[str, Any]) -> dict[str, Any]:
        """`{"requests": [{"content": {"parts": [{"text"}]}, "outputDimensionality"}]}`."""
        embeddings = []
        for request in body["requests"]:
            text = " ".join(p.get("text", "") for p in request["content"]["parts"])
            size = int(request.get("outputDimensionality") or DEFAULT_DIMENSION)
            embeddings.append({"values": hashed_embedding(text, size)})
        return {"embeddings": embeddings}


def _error(code: int, message: str, status: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}
