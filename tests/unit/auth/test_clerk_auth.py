"""Clerk session-token verification, end to end through Clerk's SDK against a local fake Clerk.

The SDK fetches the JWKS over real HTTP and checks real RS256 signatures, so these tests cover
the SDK's behaviour as well as ours: a change in either shows up here. Each test gets its own
FakeClerk (own kid, secret key and port), so the SDK's process-wide key cache cannot carry a
key from one test into another.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from app.auth.clerk import ClerkError, ClerkIdentity, ClerkVerifier
from tests.fakes.clerk_server import FakeClerk, generate_rsa_key

APP_ORIGIN = "http://localhost:3000"


@pytest.fixture
def clerk() -> Iterator[FakeClerk]:
    with FakeClerk() as fake:
        yield fake


def verifier_for(clerk: FakeClerk, **kwargs: object) -> ClerkVerifier:
    options: dict[str, object] = {
        "secret_key": clerk.secret_key,
        "api_url": clerk.url,
        "issuer": clerk.issuer,
        "authorized_parties": [APP_ORIGIN],
        **kwargs,
    }
    return ClerkVerifier(**options)  # type: ignore[arg-type]


async def refusal(verifier: ClerkVerifier, token: str) -> ClerkError:
    with pytest.raises(ClerkError) as caught:
        await verifier.verify(token)
    return caught.value


async def test_v2_token_gives_user_and_org(clerk: FakeClerk) -> None:
    token = clerk.session_token(user_id="user_42", org_id="org_7", org_role="org:admin")

    identity = await verifier_for(clerk).verify(token)

    assert identity == ClerkIdentity(
        user_id="user_42", org_id="org_7", org_role="org:admin", org_slug="acme"
    )


async def test_v2_role_is_prefixed_like_v1(clerk: FakeClerk) -> None:
    # Clerk writes v2 roles without the prefix; callers should see one spelling for both.
    token = clerk.session_token(extra_claims={"o": {"id": "org_7", "rol": "member"}})

    identity = await verifier_for(clerk).verify(token)

    assert (identity.org_id, identity.org_role, identity.org_slug) == ("org_7", "org:member", None)


async def test_v1_org_claims(clerk: FakeClerk) -> None:
    token = clerk.session_token(version=1, org_id="org_9", org_role="org:member", org_slug="b")

    identity = await verifier_for(clerk).verify(token)

    assert identity == ClerkIdentity(
        user_id="user_1", org_id="org_9", org_role="org:member", org_slug="b"
    )


@pytest.mark.parametrize("version", [1, 2])
async def test_token_without_org(clerk: FakeClerk, version: int) -> None:
    token = clerk.session_token(version=version, org_id=None)

    identity = await verifier_for(clerk).verify(token)

    assert identity == ClerkIdentity(user_id="user_1", org_id=None, org_role=None, org_slug=None)


async def test_jwks_is_fetched_once_and_cached(clerk: FakeClerk) -> None:
    verifier = verifier_for(clerk)

    await verifier.verify(clerk.session_token(user_id="user_a"))
    await verifier.verify(clerk.session_token(user_id="user_b"))

    assert clerk.jwks_requests == 1


async def test_expired_token(clerk: FakeClerk) -> None:
    error = await refusal(verifier_for(clerk), clerk.session_token(expires_in=-60))

    assert "expired" in error.reason
    assert error.code == "token-expired"
    assert not error.upstream


async def test_token_not_active_yet(clerk: FakeClerk) -> None:
    token = clerk.session_token(extra_claims={"nbf": int(time.time()) + 600})

    error = await refusal(verifier_for(clerk), token)

    assert "not active yet" in error.reason


async def test_wrong_issuer(clerk: FakeClerk) -> None:
    token = clerk.session_token(issuer="https://evil.clerk.accounts.dev")

    error = await refusal(verifier_for(clerk), token)

    assert "issuer" in error.reason
    assert "https://evil.clerk.accounts.dev" in error.reason
    assert error.code == "token-issuer-invalid"


async def test_issuer_unchecked_when_not_configured(clerk: FakeClerk) -> None:
    token = clerk.session_token(issuer="https://other.clerk.accounts.dev")

    identity = await verifier_for(clerk, issuer=None).verify(token)

    assert identity.user_id == "user_1"


async def test_azp_not_authorized(clerk: FakeClerk) -> None:
    token = clerk.session_token(azp="https://attacker.example")

    error = await refusal(verifier_for(clerk), token)

    assert "authorized party" in error.reason
    assert error.code == "token-invalid-authorized-parties"


async def test_missing_azp_is_refused_when_parties_are_set(clerk: FakeClerk) -> None:
    error = await refusal(verifier_for(clerk), clerk.session_token(azp=None))

    assert "authorized party" in error.reason


async def test_azp_unchecked_when_no_parties(clerk: FakeClerk) -> None:
    token = clerk.session_token(azp="https://anything.example")

    identity = await verifier_for(clerk, authorized_parties=None).verify(token)

    assert identity.user_id == "user_1"


async def test_bad_signature_with_same_kid(clerk: FakeClerk) -> None:
    token = clerk.session_token(key=generate_rsa_key())

    error = await refusal(verifier_for(clerk), token)

    assert "signature" in error.reason
    assert error.code == "token-invalid-signature"
    assert not error.upstream


async def test_unknown_kid(clerk: FakeClerk) -> None:
    token = clerk.session_token(key=generate_rsa_key(), kid="ins_someone_else")

    error = await refusal(verifier_for(clerk), token)

    assert "kid" in error.reason
    assert error.code == "jwk-kid-mismatch"


@pytest.mark.parametrize("garbage", ["not-a-jwt", "", "a.b.c", "Bearer xyz", "eyJhbGciOi.."])
async def test_garbage_token(clerk: FakeClerk, garbage: str) -> None:
    error = await refusal(verifier_for(clerk), garbage)

    assert error.reason
    assert not error.upstream


@pytest.mark.parametrize("token", ["ak_123", "oat_123", "m2m_123", "mt_123"])
async def test_machine_token_prefixes_never_reach_clerk(clerk: FakeClerk, token: str) -> None:
    # The SDK would post these to Clerk's machine-token endpoints; they are not sessions.
    error = await refusal(verifier_for(clerk), token)

    assert error.code == "token-not-session"
    assert clerk.jwks_requests == 0


@pytest.mark.parametrize("claim", ["sub", "exp"])
async def test_missing_required_claim(clerk: FakeClerk, claim: str) -> None:
    error = await refusal(verifier_for(clerk), clerk.session_token(omit_claims=[claim]))

    assert f"({claim})" in error.reason
    assert error.code == "token-claims-invalid"


async def test_wrong_secret_key_cannot_load_jwks(clerk: FakeClerk) -> None:
    verifier = verifier_for(clerk, secret_key="sk_test_not_the_right_one")

    error = await refusal(verifier, clerk.session_token())

    assert "JWKS" in error.reason
    assert f"{clerk.url}/v1/jwks" in error.reason
    assert error.code == "jwk-failed-to-load"
    assert error.upstream
    assert clerk.jwks_requests == 0


async def test_unreachable_clerk_is_reported_at_once() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port now: the connection is refused, and not retried for minutes
    # (Clerk's SDK, fetching keys itself, retries a refused connection with backoff).
    verifier = ClerkVerifier(secret_key="sk_test_x", api_url=f"http://127.0.0.1:{port}")
    token = FakeClerk().session_token()

    error = await refusal(verifier, token)

    assert error.code == "jwks-unreachable"
    assert error.upstream
    assert f"http://127.0.0.1:{port}/v1/jwks" in error.reason


async def test_silent_clerk_fails_within_timeout() -> None:
    # A listening socket that never accepts: the TCP handshake completes, no answer ever comes.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port = sock.getsockname()[1]
        verifier = ClerkVerifier(
            secret_key="sk_test_x", api_url=f"http://127.0.0.1:{port}", timeout_s=0.5
        )

        error = await refusal(verifier, FakeClerk().session_token())

    assert error.code == "jwks-timeout"
    assert "did not answer within 0.5s" in error.reason
    assert error.upstream


@pytest.mark.parametrize(
    "kwargs",
    [
        {"secret_key": ""},
        {"secret_key": "sk", "authorized_parties": []},
        {"secret_key": "sk", "timeout_s": 0},
    ],
)
def test_configuration_that_would_misbehave_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ClerkVerifier(**kwargs)  # type: ignore[arg-type]


def test_fake_jwks_needs_the_secret_key(clerk: FakeClerk) -> None:
    jwks_url = f"{clerk.url}/v1/jwks"

    denied = httpx.get(jwks_url, headers={"Authorization": "Bearer sk_test_wrong"})
    allowed = httpx.get(jwks_url, headers={"Authorization": f"Bearer {clerk.secret_key}"})

    assert denied.status_code == 401
    assert denied.json()["errors"][0]["code"] == "authentication_invalid"
    assert allowed.status_code == 200
    [key] = allowed.json()["keys"]
    assert {key["kid"], key["kty"], key["alg"], key["use"]} == {clerk.kid, "RSA", "RS256", "sig"}
    assert key["n"] and key["e"]
