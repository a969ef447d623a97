"""Clerk session-token verification: our own signing-key cache, then Clerk's SDK on the claims.

The SDK (`clerk_backend_api.security`) checks the RS256 signature, `exp`, `nbf`, `iat` and
`azp` against a key it is handed (`jwt_key`: networkless). The keys come from our cache
(`signing_keys.SigningKeys`), not the SDK's: the SDK refetches the JWKS for every token whose
kid it has not cached and again for every bad signature (its key-rotation retry), so a stream of
forged tokens would become a stream of requests to Clerk. What the SDK leaves out is done here
too: it never checks `iss`, it routes `ak_`/`oat_`/`m2m_`/`mt_` strings to Clerk's machine-token
endpoints (whose answer is not a session), and it leaks raw PyJWT errors on a few paths.
Callers get one `ClerkError` with a readable reason for every refusal.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from clerk_backend_api.security import (
    TokenVerificationError,
    TokenVerificationErrorReason,
    VerifyTokenOptions,
    verify_token_async,
)
from clerk_backend_api.security.machine import get_token_type
from clerk_backend_api.security.types import TokenType
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import RSAAlgorithm
from pydantic import SecretStr

from app.auth.signing_keys import KeyLookupError, KeySet, SigningKeys

_Reason = TokenVerificationErrorReason

# The SDK's messages are written for Clerk's own support flow; these say what to look at here.
_SDK_REASONS: dict[TokenVerificationErrorReason, str] = {
    _Reason.TOKEN_EXPIRED: "token expired",
    _Reason.TOKEN_INVALID_SIGNATURE: "token signature invalid",
    _Reason.TOKEN_INVALID: "token is not a valid JWT",
    _Reason.TOKEN_INVALID_AUTHORIZED_PARTIES: "token not issued for an authorized party (azp)",
    _Reason.TOKEN_INVALID_AUDIENCE: "token audience (aud) is not accepted",
    _Reason.TOKEN_NOT_ACTIVE_YET: "token not active yet (nbf is in the future)",
    _Reason.TOKEN_IAT_IN_THE_FUTURE: "token issued in the future (iat)",
    _Reason.JWK_KID_MISMATCH: "token signed with a key (kid) that is not in Clerk's JWKS",
    _Reason.JWK_FAILED_TO_RESOLVE: "Clerk's JWKS key for this token is not a usable RSA key",
    _Reason.INVALID_TOKEN_TYPE: "not a Clerk session token",
    _Reason.SECRET_KEY_MISSING: "Clerk secret key missing",
    _Reason.SERVER_ERROR: "Clerk could not be reached",
}

# Failures where the token was never judged: Clerk or its configuration is at fault, so an API
# can answer 503 instead of telling a caller with a good token that it is unauthorized.
UPSTREAM_CODES = frozenset(
    {
        "jwk-failed-to-load",
        "jwk-remote-invalid",
        "jwk-failed-to-resolve",
        "secret-key-missing",
        "server-error",
        "jwks-timeout",
        "jwks-unreachable",
    }
)


@dataclass(frozen=True, slots=True)
class ClerkIdentity:
    """Who a verified session token speaks for; `org_*` are None outside an organization.

    `org_role` always carries Clerk's `org:` prefix (e.g. `org:admin`), whichever token version
    it came from, so role checks need one spelling.
    """

    user_id: str
    org_id: str | None
    org_role: str | None
    org_slug: str | None


class ClerkError(Exception):
    """A session token was refused, or could not be checked.

    `reason` is for logs and error bodies. `code` is the SDK's reason slug (e.g.
    `token-expired`) or one of ours (`token-issuer-invalid`, `token-not-session`,
    `token-claims-invalid`, `jwks-timeout`, `jwks-unreachable`); `upstream` is true when the
    fault is Clerk's or the configuration's rather than the token's.
    """

    def __init__(self, reason: str, *, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code

    @property
    def upstream(self) -> bool:
        """True when no verdict on the token was reached (Clerk down, bad secret key)."""
        return self.code in UPSTREAM_CODES


class ClerkVerifier:
    """Verifies Clerk session JWTs for one Clerk instance."""

    def __init__(
        self,
        *,
        secret_key: str | SecretStr,
        api_url: str = "https://api.clerk.com",
        issuer: str | None = None,
        authorized_parties: list[str] | None = None,
        timeout_s: float = 10.0,
        min_refetch_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Bind to an instance; refuse configurations that would reject or accept everything.

        `issuer` is the instance's Frontend API URL (the token's `iss`); None skips the check,
        which is safe only because the JWKS is fetched with this instance's secret key.
        `authorized_parties` are the origins allowed in `azp`; None skips that check, and an
        empty list is refused because the SDK would read it as "no origin is allowed".
        `timeout_s` bounds a whole verification, key fetch included. `min_refetch_s` is the
        least time between two JWKS fetches, however many unknown kids arrive; `clock` times
        the key cache (tests move it forward instead of sleeping).
        """
        key = secret_key.get_secret_value() if isinstance(secret_key, SecretStr) else secret_key
        if not key:
            raise ValueError("the Clerk secret key is empty; set CLERK_SECRET_KEY")
        if authorized_parties is not None and not authorized_parties:
            raise ValueError("authorized_parties is empty; pass None to skip the azp check")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._api_url = api_url.rstrip("/")
        self._jwks_url = f"{self._api_url}/v1/jwks"
        self._secret_key = key
        self._issuer = issuer.rstrip("/") if issuer else None
        self._timeout_s = timeout_s
        self._authorized_parties = list(authorized_parties) if authorized_parties else None
        self.keys = SigningKeys(self._fetch_jwks, min_refetch_s=min_refetch_s, clock=clock)

    @property
    def jwks_fetches(self) -> int:
        """JWKS fetches started so far (for tests and the benchmark)."""
        return self.keys.fetches

    async def verify(self, token: str) -> ClerkIdentity:
        """The identity `token` proves, or ClerkError saying why it proves none.

        Raises:
            ClerkError: the token is refused, or Clerk's JWKS could not be loaded.
        """
        # Checked first: a machine-token prefix would make the SDK call Clerk's machine-token
        # verification and return that record, which has no session behind it.
        if get_token_type(token) is not TokenType.SESSION_TOKEN:
            raise ClerkError("not a Clerk session token", code="token-not-session")
        pem = await self._signing_key(_kid(token))
        claims = await self._verified_claims(token, pem)
        if self._issuer is not None:
            issuer = claims.get("iss")
            if not isinstance(issuer, str) or issuer.rstrip("/") != self._issuer:
                raise ClerkError(
                    f"token issuer {issuer!r} is not {self._issuer!r}", code="token-issuer-invalid"
                )
        return _identity(claims)

    async def _signing_key(self, kid: str) -> str:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self.keys.pem_for(kid)
        except KeyLookupError as exc:
            raise ClerkError(exc.reason, code=exc.code) from exc
        except TimeoutError as exc:
            raise ClerkError(
                f"Clerk's JWKS at {self._jwks_url} did not answer within {self._timeout_s:g}s",
                code="jwks-timeout",
            ) from exc

    async def _verified_claims(self, token: str, pem: str) -> dict[str, Any]:
        """The SDK's verified payload, with every way it can fail turned into ClerkError."""
        options = VerifyTokenOptions(jwt_key=pem, authorized_parties=self._authorized_parties)
        try:
            return await verify_token_async(token, options)
        except TokenVerificationError as exc:
            code, sdk_message = exc.reason.value
            raise ClerkError(_SDK_REASONS.get(exc.reason, sdk_message), code=code) from exc
        except jwt.PyJWTError as exc:
            raise ClerkError(f"token is not a valid JWT: {exc}", code="token-invalid") from exc

    async def _fetch_jwks(self) -> KeySet:
        """The instance's signing keys, for SigningKeys (which decides when to call this)."""
        try:
            async with (
                asyncio.timeout(self._timeout_s),
                httpx.AsyncClient(timeout=self._timeout_s) as client,
            ):
                response = await client.get(
                    self._jwks_url,
                    headers={
                        "Accept": "application/json",
                        "Authorization": f"Bearer {self._secret_key}",
                    },
                )
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise self._fetch_error(
                f"did not answer within {self._timeout_s:g}s", "jwks-timeout"
            ) from exc
        except httpx.HTTPError as exc:
            raise self._fetch_error(f"is unreachable: {exc!r}", "jwks-unreachable") from exc
        if response.status_code != 200:
            hint = " (check the secret key)" if response.status_code in (401, 403) else ""
            raise self._fetch_error(
                f"answered HTTP {response.status_code}{hint}", "jwk-failed-to-load"
            )
        try:
            document = response.json()
        except ValueError as exc:
            raise self._fetch_error(
                "answered something other than JSON", "jwk-failed-to-load"
            ) from exc
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list) or not entries:
            raise self._fetch_error("has no signing keys", "jwk-remote-invalid")
        return _key_set(entries)

    def _fetch_error(self, what: str, code: str) -> KeyLookupError:
        return KeyLookupError(f"Clerk's JWKS at {self._jwks_url} {what}", code=code, upstream=True)


def _kid(token: str) -> str:
    """The signing key a token names, read before anything is verified."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise ClerkError("token is not a valid JWT", code="token-invalid") from exc
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ClerkError("token names no signing key (kid)", code="token-invalid")
    return kid


def _key_set(entries: list[Any]) -> KeySet:
    """PEM keys by kid from JWKS entries; an entry that is no RSA key is marked unusable."""
    keys: dict[str, str] = {}
    unusable: set[str] = set()
    for entry in entries:
        kid = entry.get("kid") if isinstance(entry, dict) else None
        if not isinstance(kid, str) or not kid:
            continue
        try:
            public = RSAAlgorithm.from_jwk(entry)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            public = None
        if not isinstance(public, RSAPublicKey):
            unusable.add(kid)
            continue
        pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        keys[kid] = pem.decode()
    return KeySet(keys=keys, unusable=frozenset(unusable - keys.keys()))


def _identity(claims: Mapping[str, Any]) -> ClerkIdentity:
    """Read the user and active organization from either session-token version.

    v2 tokens nest the organization as `o: {id, rol, slg}` with the role key unprefixed
    (`admin`); v1 tokens carry flat `org_id`/`org_role`/`org_slug` with the prefix. Clerk's JS
    SDK picks the form by `v`, and so does this. The `exp` requirement is ours: PyJWT only
    checks expiry when the claim is present, and a session token without one would never end.
    """
    user_id = claims.get("sub")
    if not isinstance(user_id, str) or not user_id:
        raise ClerkError("token has no subject (sub)", code="token-claims-invalid")
    if not isinstance(claims.get("exp"), int | float):
        raise ClerkError("token has no expiry (exp)", code="token-claims-invalid")
    if claims.get("v") == 2:
        org = claims.get("o")
        org_claims: Mapping[str, Any] = org if isinstance(org, Mapping) else {}
        org_id, role, org_slug = org_claims.get("id"), org_claims.get("rol"), org_claims.get("slg")
        if isinstance(role, str) and role and not role.startswith("org:"):
            role = f"org:{role}"
    else:
        org_id, role, org_slug = (
            claims.get("org_id"),
            claims.get("org_role"),
            claims.get("org_slug"),
        )
    org_id = _text(org_id)
    if org_id is None:
        # A role or slug without an organization means nothing; never let one leak through.
        return ClerkIdentity(user_id=user_id, org_id=None, org_role=None, org_slug=None)
    return ClerkIdentity(
        user_id=user_id, org_id=org_id, org_role=_text(role), org_slug=_text(org_slug)
    )


def _text(value: object) -> str | None:
    """A claim as a non-empty string, else None: Clerk uses absent, null and "" alike."""
    return value if isinstance(value, str) and value else None
