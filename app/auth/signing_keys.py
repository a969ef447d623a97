"""Clerk's signing keys (JWKS), cached so that a flood of bad tokens is no flood of fetches.

Three rules bound the fetches. Concurrent lookups that miss share one fetch (single flight).
After a fetch no other starts for `min_refetch_s`, whatever kids arrive, and after a failed one
none for `failure_backoff_s`. A kid that a fresh fetch did not contain is remembered as unknown
for `unknown_kid_ttl_s`. A forger who sends a new random kid with every request therefore costs
Clerk at most one fetch per `min_refetch_s`; bad signatures and garbage under a known kid cost
none. Keys older than `max_age_s` are refetched on use, so a key Clerk withdraws stops working,
and stale keys keep serving while Clerk cannot be reached.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KeySet:
    """One fetched JWKS: PEM public keys by kid, and the kids whose JWK was not a usable key."""

    keys: Mapping[str, str]
    unusable: frozenset[str] = field(default_factory=frozenset)


class KeyLookupError(Exception):
    """No key for a kid: `code` as in ClerkError; `upstream` when Clerk, not the token, failed."""

    def __init__(self, reason: str, *, code: str, upstream: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.upstream = upstream


def unknown_kid(kid: str) -> KeyLookupError:
    """The refusal of a kid that Clerk's JWKS does not hold."""
    return KeyLookupError(
        f"token signed with a key (kid {kid[:64]!r}) that is not in Clerk's JWKS",
        code="jwk-kid-mismatch",
        upstream=False,
    )


class SigningKeys:
    """A JWKS cache in front of `fetch` (which raises KeyLookupError with upstream=True)."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[KeySet]],
        *,
        min_refetch_s: float = 30.0,
        failure_backoff_s: float = 5.0,
        unknown_kid_ttl_s: float = 300.0,
        max_age_s: float = 3600.0,
        max_unknown_kids: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Nothing is fetched until the first lookup."""
        if min(min_refetch_s, failure_backoff_s, unknown_kid_ttl_s, max_age_s) < 0:
            raise ValueError("cache intervals cannot be negative")
        self._fetch = fetch
        self._min_refetch_s = min_refetch_s
        self._failure_backoff_s = failure_backoff_s
        self._unknown_kid_ttl_s = unknown_kid_ttl_s
        self._max_age_s = max_age_s
        self._max_unknown_kids = max_unknown_kids
        self._clock = clock
        self._keys: KeySet | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None
        self._failure: KeyLookupError | None = None
        self._unknown: OrderedDict[str, float] = OrderedDict()  # kid -> forget after
        self._inflight: asyncio.Task[KeySet] | None = None
        self.fetches = 0  # every fetch started, failed ones included

    async def pem_for(self, kid: str) -> str:
        """The PEM public key Clerk signs `kid` tokens with.

        Raises:
            KeyLookupError: the kid is unknown (not upstream), or the JWKS could not be loaded
                or holds no usable key for it (upstream).
        """
        now = self._clock()
        keys = self._keys
        if keys is not None and kid in keys.keys:
            if now - self._fetched_at < self._max_age_s or not self._may_fetch(now):
                return keys.keys[kid]
            try:
                keys = await self._refresh()
            except KeyLookupError as exc:
                # Clerk is down but these keys were good an hour ago: better than refusing all.
                logger.warning("Clerk JWKS refresh failed, using cached keys: %s", exc.reason)
                return keys.keys[kid]
            return self._pick(keys, kid)
        if self._known_unknown(kid, now):
            raise unknown_kid(kid)
        if keys is not None and kid in keys.unusable:
            return self._pick(keys, kid)
        if not self._may_fetch(now):
            if keys is None and self._failure is not None:
                failure = self._failure
                raise KeyLookupError(failure.reason, code=failure.code, upstream=True)
            # Not remembered as unknown: this kid was never looked for, and may be a key Clerk
            # published since the last fetch; it is looked up once the interval has passed.
            raise unknown_kid(kid)
        return self._pick(await self._refresh(), kid)

    def _pick(self, keys: KeySet, kid: str) -> str:
        if kid in keys.keys:
            return keys.keys[kid]
        if kid in keys.unusable:
            raise KeyLookupError(
                f"Clerk's JWKS entry for kid {kid[:64]!r} is not a usable RSA key",
                code="jwk-failed-to-resolve",
                upstream=True,
            )
        self._remember_unknown(kid)
        raise unknown_kid(kid)

    def _may_fetch(self, now: float) -> bool:
        if self._inflight is not None and not self._inflight.done():
            return True  # joining a fetch under way costs nothing
        if self._attempted_at is None:
            return True
        wait = self._failure_backoff_s if self._failure is not None else self._min_refetch_s
        return now - self._attempted_at >= wait

    def _known_unknown(self, kid: str, now: float) -> bool:
        forget_at = self._unknown.get(kid)
        if forget_at is None:
            return False
        if now < forget_at:
            return True
        del self._unknown[kid]
        return False

    def _remember_unknown(self, kid: str) -> None:
        self._unknown[kid] = self._clock() + self._unknown_kid_ttl_s
        self._unknown.move_to_end(kid)
        while len(self._unknown) > self._max_unknown_kids:
            self._unknown.popitem(last=False)

    async def _refresh(self) -> KeySet:
        """The outcome of the fetch under way, or of a new one (single flight)."""
        loop = asyncio.get_running_loop()
        task = self._inflight
        if task is None or task.done() or task.get_loop() is not loop:
            task = loop.create_task(self._fetch_and_keep())
            # A caller that times out leaves the fetch running; nobody may be left to read its
            # exception, so read it here and keep asyncio from logging it as lost.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._inflight = task
        # Shielded: one waiter's deadline must not cancel the fetch the others wait on.
        return await asyncio.shield(task)

    async def _fetch_and_keep(self) -> KeySet:
        self._attempted_at = self._clock()
        self.fetches += 1
        try:
            keys = await self._fetch()
        except KeyLookupError as exc:
            self._failure = exc
            raise
        self._keys, self._fetched_at, self._failure = keys, self._clock(), None
        # A kid refused before may be in this set: the set is the truth now.
        for kid in (*keys.keys, *keys.unusable):
            self._unknown.pop(kid, None)
        return keys
