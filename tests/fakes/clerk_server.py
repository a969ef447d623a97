"""A local stand-in for Clerk's Backend API JWKS endpoint, and a minter of real session tokens.

Clerk's SDK verifies a session token by fetching `{api_url}/v1/jwks` with the secret key and
checking an RS256 signature against it, so a test that wants to exercise that real path needs a
server to fetch from and tokens signed by the matching private key. Nothing here is mocked: the
SDK makes real HTTP requests and PyJWT makes real signatures.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Collection, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


def generate_rsa_key() -> rsa.RSAPrivateKey:
    """A fresh signing key; pass one to `session_token(key=...)` to forge a bad signature."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeClerk:
    """One fake Clerk instance: its own key, kid, secret key and port.

    Every instance is unique in all of those, so that no key cache keyed by (api_url,
    secret_key, kid), such as the SDK's process-wide one, can let one test's key answer for
    another's. `jwks_requests` counts the authorized JWKS fetches; `delay_s` makes the JWKS
    answer late (to hold concurrent fetches open) and `jwks_status` other than 200 makes it
    fail; `rotate()` publishes a new signing key.
    """

    def __init__(
        self,
        *,
        secret_key: str | None = None,
        issuer: str = "https://fake.clerk.accounts.dev",
    ) -> None:
        """Make the key pair now; no socket is opened until `start()`."""
        self.secret_key = secret_key or f"sk_test_fake_{secrets.token_hex(16)}"
        self.issuer = issuer
        self.kid = f"ins_fake{secrets.token_hex(8)}"
        self.private_key = generate_rsa_key()
        # Counted so tests can see the verifier's key cache at work (or not).
        self.jwks_requests = 0
        self.delay_s = 0.0
        self.jwks_status = 200
        self._retired: list[tuple[str, rsa.RSAPrivateKey]] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL to pass as the verifier's `api_url`."""
        if self._server is None:
            raise RuntimeError("FakeClerk is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def jwks(self) -> dict[str, Any]:
        """The JWKS document, shaped like Clerk's: the current RS256 key, then retired ones."""
        keys = []
        for kid, private in [(self.kid, self.private_key), *self._retired]:
            jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
            jwk.update(kid=kid, alg="RS256", use="sig")
            keys.append(jwk)
        return {"keys": keys}

    def rotate(self, *, keep_old: bool = True) -> str:
        """Sign with a new key from now on; the old one stays published unless `keep_old` is
        False. Returns the new kid."""
        if keep_old:
            self._retired.append((self.kid, self.private_key))
        self.kid = f"ins_fake{secrets.token_hex(8)}"
        self.private_key = generate_rsa_key()
        return self.kid

    def served_jwks(self) -> dict[str, Any]:
        """`jwks()`, counted: handler threads call this for each authorized fetch."""
        with self._lock:
            self.jwks_requests += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        return self.jwks()

    def start(self) -> FakeClerk:
        """Serve on 127.0.0.1 at a free port from a daemon thread."""
        if self._server is not None:
            return self
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        # A short poll keeps stop() quick: shutdown() waits for the loop's next poll.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-clerk",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port; safe to call twice."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeClerk:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def session_token(
        self,
        *,
        user_id: str = "user_1",
        org_id: str | None = "org_1",
        org_role: str | None = "org:admin",
        org_slug: str | None = "acme",
        azp: str | None = "http://localhost:3000",
        expires_in: int = 60,
        issuer: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        version: int = 2,
        extra_claims: Mapping[str, Any] | None = None,
        omit_claims: Collection[str] = (),
    ) -> str:
        """A session JWT laid out the way Clerk issues them.

        `org_role` is given in v1 spelling (`org:admin`); v2 tokens carry it unprefixed in
        `o.rol`, as Clerk does. A negative `expires_in` makes an expired token (the SDK allows
        5 s of clock skew, so go past that). `key`/`kid` sign with another key or name another
        kid, for bad-signature and unknown-key cases. `extra_claims` add or override claims
        and `omit_claims` drop them, for malformed-token cases.
        """
        now = int(time.time())
        claims: dict[str, Any] = {
            "azp": azp,
            "exp": now + expires_in,
            "fva": [0, -1],
            "iat": now,
            "iss": issuer if issuer is not None else self.issuer,
            "nbf": now - 5,
            "sid": f"sess_{secrets.token_hex(8)}",
            "sub": user_id,
        }
        if azp is None:
            del claims["azp"]
        if version == 2:
            claims["v"] = 2
            claims["sts"] = "active"
            if org_id is not None:
                role = org_role.removeprefix("org:") if org_role else org_role
                claims["o"] = {"id": org_id, "rol": role, "slg": org_slug}
        elif org_id is not None:
            claims.update(org_id=org_id, org_role=org_role, org_slug=org_slug, org_permissions=[])
        claims.update(extra_claims or {})
        for name in omit_claims:
            claims.pop(name, None)
        return jwt.encode(
            claims,
            key if key is not None else self.private_key,
            algorithm="RS256",
            headers={"kid": kid if kid is not None else self.kid},
        )


class _Server(ThreadingHTTPServer):
    """Carries the FakeClerk to its handlers."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        clerk: FakeClerk,
    ) -> None:
        self.clerk = clerk
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    """`GET /v1/jwks` behind the secret key, and Clerk-style JSON errors for the rest."""

    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (the name http.server dispatches to)
        clerk = self.server.clerk
        if self.path.split("?", 1)[0] != "/v1/jwks":
            self._send(404, _errors("resource_not_found", "Resource not found"))
            return
        if self.headers.get("Authorization") != f"Bearer {clerk.secret_key}":
            self._send(401, _errors("authentication_invalid", "Invalid secret key"))
            return
        document = clerk.served_jwks()
        if clerk.jwks_status != 200:
            self._send(clerk.jwks_status, _errors("internal_clerk_error", "Something went wrong"))
            return
        self._send(200, document)

    def _send(self, status: int, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: request lines on stderr would only clutter test output."""


def _errors(code: str, message: str) -> dict[str, Any]:
    """An error body in the shape Clerk's Backend API uses."""
    return {"errors": [{"code": code, "message": message, "long_message": message}]}
