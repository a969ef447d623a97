"""The verifier's signing-key cache against a local fake Clerk: bad tokens cost no key fetches.

Fetches are counted where they land, at the fake Clerk's JWKS endpoint. Time is a clock the
tests move forward (the cache's intervals are read from it), so nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest

from app.auth.clerk import ClerkError, ClerkVerifier
from tests.fakes.clerk_server import FakeClerk, generate_rsa_key

APP_ORIGIN = "http://localhost:3000"
FORGER = generate_rsa_key()  # one key for every forged token: making keys is slow


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clerk() -> Iterator[FakeClerk]:
    with FakeClerk() as fake:
        yield fake


@pytest.fixture
def clock() -> Clock:
    return Clock()


def verifier_for(clerk: FakeClerk, clock: Clock, **kwargs: object) -> ClerkVerifier:
    options: dict[str, object] = {
        "secret_key": clerk.secret_key,
        "api_url": clerk.url,
        "issuer": clerk.issuer,
        "authorized_parties": [APP_ORIGIN],
        "clock": clock,
        **kwargs,
    }
    return ClerkVerifier(**options)  # type: ignore[arg-type]


def random_kid_token(clerk: FakeClerk) -> str:
    return clerk.session_token(key=FORGER, kid=f"ins_{secrets.token_hex(8)}", azp=APP_ORIGIN)


async def refused(verifier: ClerkVerifier, token: str) -> ClerkError:
    with pytest.raises(ClerkError) as caught:
        await verifier.verify(token)
    return caught.value


async def test_200_unknown_kids_cost_one_fetch(clerk: FakeClerk, clock: Clock) -> None:
    verifier = verifier_for(clerk, clock)

    for _ in range(200):
        error = await refused(verifier, random_kid_token(clerk))
        assert error.code == "jwk-kid-mismatch" and not error.upstream

    assert clerk.jwks_requests == 1  # the first miss loaded the keys; no other was fetched
    identity = await verifier.verify(clerk.session_token(azp=APP_ORIGIN))
    assert identity.user_id == "user_1" and clerk.jwks_requests == 1


async def test_200_concurrent_unknown_kids_share_one_fetch(clerk: FakeClerk, clock: Clock) -> None:
    clerk.delay_s = 0.2  # every lookup arrives while the one fetch is still out
    verifier = verifier_for(clerk, clock)

    errors = await asyncio.gather(*(refused(verifier, random_kid_token(clerk)) for _ in range(200)))

    assert {e.code for e in errors} == {"jwk-kid-mismatch"}
    assert clerk.jwks_requests == 1


async def test_concurrent_good_tokens_on_a_cold_cache_share_one_fetch(
    clerk: FakeClerk, clock: Clock
) -> None:
    clerk.delay_s = 0.2
    verifier = verifier_for(clerk, clock)
    tokens = [clerk.session_token(user_id=f"user_{i}", azp=APP_ORIGIN) for i in range(20)]

    identities = await asyncio.gather(*(verifier.verify(t) for t in tokens))

    assert [i.user_id for i in identities] == [f"user_{i}" for i in range(20)]
    assert clerk.jwks_requests == 1


async def test_bad_signatures_under_a_known_kid_cost_no_fetch(
    clerk: FakeClerk, clock: Clock
) -> None:
    # Clerk's SDK, left to fetch keys itself, refetches the JWKS on every bad signature (its
    # key-rotation retry): a forger holding one real kid could make each request a fetch.
    verifier = verifier_for(clerk, clock)
    await verifier.verify(clerk.session_token(azp=APP_ORIGIN))

    for _ in range(100):
        error = await refused(verifier, clerk.session_token(key=FORGER, azp=APP_ORIGIN))
        assert error.code == "token-invalid-signature"

    assert clerk.jwks_requests == 1


@pytest.mark.parametrize(
    "garbage",
    [
        "not-a-jwt",
        "a.b.c",
        "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",  # a header without a kid
        "eyJhbGciOiJSUzI1NiIsImtpZCI6WzFdfQ.e30.c2ln",  # a kid that is not a string
        "\x00\x00.\x00.\x00",
        "e" * 10_000,
    ],
)
async def test_garbage_costs_no_fetch(clerk: FakeClerk, clock: Clock, garbage: str) -> None:
    verifier = verifier_for(clerk, clock)

    for _ in range(20):
        error = await refused(verifier, garbage)
        assert not error.upstream and error.reason

    assert clerk.jwks_requests == 0


async def test_unknown_kids_after_the_interval_cost_one_fetch_per_interval(
    clerk: FakeClerk, clock: Clock
) -> None:
    verifier = verifier_for(clerk, clock, min_refetch_s=30)
    repeated = random_kid_token(clerk)
    await refused(verifier, repeated)
    assert clerk.jwks_requests == 1

    clock.advance(31)
    for _ in range(50):  # a new random kid each time: one fetch for all of them
        await refused(verifier, random_kid_token(clerk))
    assert clerk.jwks_requests == 2

    clock.advance(31)
    # The kid a fetch already answered "unknown" stays unknown for a while (negative cache).
    await refused(verifier, repeated)
    assert clerk.jwks_requests == 2


async def test_a_rotated_key_is_found_after_the_interval(clerk: FakeClerk, clock: Clock) -> None:
    verifier = verifier_for(clerk, clock, min_refetch_s=30)
    await verifier.verify(clerk.session_token(azp=APP_ORIGIN))
    clerk.rotate()
    token = clerk.session_token(azp=APP_ORIGIN)

    # Within the interval the new kid is refused without a fetch, and not remembered as unknown.
    assert (await refused(verifier, token)).code == "jwk-kid-mismatch"
    assert clerk.jwks_requests == 1
    clock.advance(30)

    assert (await verifier.verify(token)).user_id == "user_1"
    assert clerk.jwks_requests == 2


async def test_old_keys_are_refetched_so_a_withdrawn_key_stops_working(
    clerk: FakeClerk, clock: Clock
) -> None:
    verifier = verifier_for(clerk, clock)
    old = clerk.session_token(azp=APP_ORIGIN, expires_in=7200)
    await verifier.verify(old)
    clerk.rotate(keep_old=False)
    clock.advance(3601)  # past the cached keys' maximum age

    assert (await refused(verifier, old)).code == "jwk-kid-mismatch"
    assert clerk.jwks_requests == 2
    assert (await verifier.verify(clerk.session_token(azp=APP_ORIGIN))).user_id == "user_1"
    assert clerk.jwks_requests == 2


async def test_clerk_failing_is_retried_after_a_backoff_not_per_token(
    clerk: FakeClerk, clock: Clock
) -> None:
    clerk.jwks_status = 500
    verifier = verifier_for(clerk, clock)

    for _ in range(50):
        error = await refused(verifier, clerk.session_token(azp=APP_ORIGIN))
        assert error.upstream and "HTTP 500" in error.reason
    assert clerk.jwks_requests == 1

    clerk.jwks_status = 200
    clock.advance(5)
    assert (await verifier.verify(clerk.session_token(azp=APP_ORIGIN))).user_id == "user_1"
    assert clerk.jwks_requests == 2


async def test_cached_keys_keep_serving_while_a_refresh_fails(
    clerk: FakeClerk, clock: Clock
) -> None:
    verifier = verifier_for(clerk, clock)
    await verifier.verify(clerk.session_token(azp=APP_ORIGIN))
    clerk.jwks_status = 503
    clock.advance(3601)

    assert (await verifier.verify(clerk.session_token(azp=APP_ORIGIN))).user_id == "user_1"
    assert clerk.jwks_requests == 2
