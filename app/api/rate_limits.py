"""Rate limits on what an anonymous or hostile client can repeat: failed authentication, Twilio
webhooks, media-stream handshakes and playground turns, plus each org's daily playground token
budget while Gemini is configured.

Counters live in Redis when REDIS_URL is set, so every replica counts against the same limit,
and in process otherwise. The `limits` library keeps them (sliding-window counters: smooth, and
one key per client whatever the rate); this module only says what is counted, per whom.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from fastapi import HTTPException, status
from limits import RateLimitItem, RateLimitItemPerDay, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from app.settings import Settings

logger = logging.getLogger(__name__)


class RateLimited(HTTPException):
    """429 with the seconds to wait in `Retry-After`."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"{message}; retry in {retry_after_s} s",
            {"Retry-After": str(retry_after_s)},
        )
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class Limit:
    """One counted thing: its rate, and the words a refused client reads."""

    name: str
    rate: RateLimitItem
    message: str


def key_digest(secret: str) -> str:
    """What a presented credential is counted under: never the credential itself."""
    return hashlib.sha256(secret.encode()).hexdigest()[:32]


class RateLimits:
    """The process's rate limiter over one storage (Redis or memory)."""

    def __init__(self, storage: Storage, settings: Settings) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        limits = settings.limits
        self.auth_failures = Limit(
            "auth", parse(limits.rate_limit_auth_failures), "too many failed sign-ins"
        )
        self.webhooks = Limit("webhook", parse(limits.rate_limit_webhooks), "too many webhooks")
        self.stream_handshakes = Limit(
            "stream", parse(limits.rate_limit_stream_handshakes), "too many media streams"
        )
        self.playground_turns = Limit(
            "playground", parse(limits.rate_limit_playground_turns), "too many playground turns"
        )
        self.playground_tokens = Limit(
            "tokens",
            RateLimitItemPerDay(max(limits.playground_tokens_per_day, 1)),
            "the organization's daily playground token budget is spent",
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        url = settings.database.redis_url
        if url is None:
            return cls(MemoryStorage(), settings)
        # redis-py, the client the call-state store already uses, rather than a second one.
        return cls(RedisStorage(f"async+{url}", implementation="redispy"), settings)

    async def hit(self, limit: Limit, *identity: str, cost: int = 1) -> None:
        """Count one more (`cost` more); RateLimited when that passes the limit."""
        if not await self._limiter.hit(limit.rate, limit.name, *identity, cost=cost):
            raise await self._refusal(limit, identity)

    async def check(self, limit: Limit, *identity: str) -> None:
        """RateLimited if the limit is already spent; counts nothing."""
        if not await self._limiter.test(limit.rate, limit.name, *identity):
            raise await self._refusal(limit, identity)

    async def spend(self, limit: Limit, *identity: str, cost: int) -> None:
        """Count `cost` that has already been used, even past the limit (tokens a finished
        turn took): the next `check` refuses."""
        if cost > 0 and not await self._limiter.hit(limit.rate, limit.name, *identity, cost=cost):
            # hit() counts nothing when it refuses; count what was used anyway, capped at the
            # limit so the window still ends when it should.
            spare = await self._limiter.get_window_stats(limit.rate, limit.name, *identity)
            if spare.remaining > 0:
                await self._limiter.hit(limit.rate, limit.name, *identity, cost=spare.remaining)

    async def _refusal(self, limit: Limit, identity: tuple[str, ...]) -> RateLimited:
        stats = await self._limiter.get_window_stats(limit.rate, limit.name, *identity)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        logger.warning("rate limit %s reached (%s)", limit.name, limit.rate)
        return RateLimited(limit.message, retry_after)


@dataclass(frozen=True, slots=True)
class TokenBudget:
    """One org's daily budget of cloud-model tokens for playground turns."""

    limits: RateLimits
    org: str

    async def check(self) -> None:
        """RateLimited once today's tokens are spent."""
        await self.limits.check(self.limits.playground_tokens, self.org)

    async def spend(self, tokens: int) -> None:
        """Count the tokens a finished turn used."""
        await self.limits.spend(self.limits.playground_tokens, self.org, cost=tokens)
