"""Call state every ingress replica shares: who holds a live call, how it goes, what it holds.

A call's media WebSocket lives on one replica, but the requests about that call do not: Twilio's
status callbacks, the dashboard's "live calls" view and the billing check before a new call can
each land on any replica. So the facts that outlive a single request - which replica holds the
call, its live status, and the minutes reserved for it - are kept in Redis when `REDIS_URL` is
set, where every replica sees them, and survive a replica restarting. Without Redis (one process,
development, unit tests) an in-process store with the same contract stands in.

It also holds the two facts that make a media stream belong to the call that created it: the
single-use stream grants the incoming-call webhook issues (a stream may land on any replica), and
the claim that makes a call sid live at most once - atomically, with the org's cap on concurrent
calls checked in the same step, so two streams racing for one sid, or an org's eleventh call,
cannot both get in.

Every entry expires (`ttl_s`) unless it is touched: a replica that crashes cannot remove its
calls, and a call left "live" forever would hold an org's billing minutes forever. The replica
that holds a call refreshes the expiry with each `update`, so long calls stay.

The integration tests run both stores against the same cases, Redis against a real server, since
the points that matter here (expiry, transactions, two replicas on one server) are exactly what a
fake would get wrong.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, Protocol, cast, get_type_hints, runtime_checkable

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError
from redis.typing import EncodableT, FieldT

DEFAULT_TTL_S = 4 * 3600

# `update` may not move a call to another org or change its start: both key the org's index, so
# changing them in place would leave the index pointing at the wrong list or order. Re-`put` it.
_FIXED_FIELDS = frozenset({"org_id", "started_at"})

# `update` is the hot path - every turn of every call - so it is one script, atomic without
# WATCH: optimistic retries would livelock when many updates to one call pile up. It writes only
# if the call still exists (else it would bring back a partial hash of just these fields) and is
# filed under the org the writer belongs to (-1 otherwise: nothing is written).
_UPDATE_LUA = """
local org = redis.call('HGET', KEYS[1], 'org_id')
if not org then return 0 end
if org ~= ARGV[1] then return -1 end
if #ARGV > 2 then redis.call('HSET', KEYS[1], unpack(ARGV, 3)) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2], 'NX')
redis.call('EXPIRE', KEYS[2], ARGV[2], 'GT')
return 1
"""

# A new call: refused if its sid is live already, or if its org is at its cap (ARGV[1]; 0: no
# cap). Index entries whose hash expired are dropped as they are counted. Call hashes outside
# KEYS are named from ARGV[3] (the key prefix), so this needs a single Redis, not a cluster.
_CLAIM_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 'live' end
local cap = tonumber(ARGV[1])
if cap > 0 then
  local live = 0
  for _, sid in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    if redis.call('EXISTS', ARGV[3] .. sid) == 1 then
      live = live + 1
    else
      redis.call('ZREM', KEYS[2], sid)
    end
  end
  if live >= cap then return 'busy' end
end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[2], 'NX')
redis.call('EXPIRE', KEYS[2], ARGV[2], 'GT')
return 'claimed'
"""

Claim = Literal["claimed", "live", "busy"]

# A WATCHed key changes under us only when another writer touches the same call at the same
# moment; a few retries settle it, and a bound keeps a bug from becoming a busy loop.
_WATCH_RETRIES = 16


@dataclass(slots=True)
class LiveCall:
    """One live call as every replica sees it."""

    call_sid: str
    org_id: str
    agent_id: str
    replica: str
    from_number: str
    to_number: str
    started_at: float  # unix time, so it means the same on every replica
    status: str = "live"  # "live", "agent_speaking", "caller_speaking", ...
    turns: int = 0
    last_caller_text: str = ""
    last_agent_text: str = ""
    hold_minutes: float = 0.0  # minutes reserved for billing while the call is live

    def to_dict(self) -> dict[str, str]:
        """Flat strings, because that is all a Redis hash holds."""
        return {name: _encode(name, getattr(self, name)) for name in _FIELD_TYPES}

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> LiveCall:
        """Parse a hash back, ignoring fields this version does not know.

        Ignoring them lets replicas of two versions share Redis during a rolling deploy.
        """
        values: dict[str, Any] = {
            name: _FIELD_TYPES[name](data[name]) for name in _FIELD_TYPES if name in data
        }
        return cls(**values)


_FIELD_TYPES: dict[str, type] = {f.name: get_type_hints(LiveCall)[f.name] for f in fields(LiveCall)}


@dataclass(frozen=True, slots=True)
class StreamGrant:
    """What the incoming-call webhook established about a call, for the one media stream that
    may carry it: the stream takes org, agent and numbers from here, never from its own words."""

    call_sid: str
    account_sid: str
    org_id: str
    agent_id: str
    from_number: str
    to_number: str

    def to_dict(self) -> dict[str, str]:
        """Flat strings, for a Redis hash."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> StreamGrant:
        """Parse a hash back."""
        return cls(**{f.name: str(data.get(f.name, "")) for f in fields(cls)})


def _encode(name: str, value: object) -> str:
    """Check a value against the field's type before it is stored as text.

    Redis would store anything; checking here makes a bad `update` fail in the caller rather than
    in whichever replica next reads the call.
    """
    kind = _FIELD_TYPES.get(name)
    if kind is None:
        raise ValueError(f"LiveCall has no field {name!r}")
    if kind is str:
        if not isinstance(value, str):
            raise TypeError(f"LiveCall.{name} is a str, got {type(value).__name__}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"LiveCall.{name} is a number, got {type(value).__name__}")
    if kind is int:
        if value != int(value):
            raise ValueError(f"LiveCall.{name} is an int, got {value!r}")
        return str(int(value))
    return repr(float(value))  # repr round-trips a float exactly


def _encode_update(fields_: Mapping[str, str | int | float]) -> dict[str, str]:
    fixed = _FIXED_FIELDS.intersection(fields_)
    if fixed:
        raise ValueError(f"cannot update {sorted(fixed)} in place; put() the call again")
    return {name: _encode(name, value) for name, value in fields_.items()}


# The client is built with decode_responses=True, so replies are str; redis-py's annotations cover
# both modes, and these narrow them in one place instead of a cast at every call.
def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _texts(data: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    return {str(_text(k)): str(_text(v)) for k, v in data.items()}


def _fields(data: dict[str, str]) -> Mapping[FieldT, EncodableT]:
    return cast("Mapping[FieldT, EncodableT]", data)


def _newest_first(calls: list[LiveCall]) -> list[LiveCall]:
    # Ties broken by sid, in the same order as Redis's ZREVRANGE, so both stores list alike.
    return sorted(calls, key=lambda c: (c.started_at, c.call_sid), reverse=True)


@runtime_checkable
class CallStateStore(Protocol):
    """Where replicas publish their live calls and read everyone else's."""

    async def put(self, call: LiveCall) -> None:
        """Register the call, or replace it whole; it expires after the store's `ttl_s`."""

    async def claim(self, call: LiveCall, max_calls: int = 0) -> Claim:
        """Register a new call, atomically: "live" (and nothing changes) if its sid is live
        already, "busy" if its org has `max_calls` live calls (0: no cap), else "claimed"."""

    async def update(self, call_sid: str, org_id: str, **fields: str | int | float) -> None:
        """Change some fields and refresh the expiry - only while the call is filed under
        `org_id`; a call that is gone stays gone."""

    async def get(self, call_sid: str) -> LiveCall | None: ...

    async def remove(self, call_sid: str, org_id: str) -> None:
        """End the call, if it is filed under `org_id`."""

    async def grant(self, token_id: str, grant: StreamGrant, ttl_s: float) -> None:
        """Keep `grant` under `token_id` (a hash of the token, never the token) for `ttl_s`."""

    async def redeem(self, token_id: str) -> StreamGrant | None:
        """The grant under `token_id`, removed in the same step: a token works once."""

    async def live(self, org_id: str) -> list[LiveCall]:
        """The org's calls that have not ended or expired, newest first."""

    async def held_minutes(self, org_id: str) -> float:
        """Minutes reserved by the org's live calls, to subtract from its balance."""

    async def close(self) -> None: ...


class MemoryCallState:
    """The store for a single process: the same contract as Redis, with nothing to share.

    Expiry is checked on read against `clock` (injectable, so tests need not sleep).
    """

    def __init__(
        self, *, ttl_s: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._calls: dict[str, tuple[LiveCall, float]] = {}  # sid -> (call, expires at)
        self._by_org: dict[str, set[str]] = {}
        self._grants: dict[str, tuple[StreamGrant, float]] = {}

    def _alive(self, call_sid: str) -> LiveCall | None:
        entry = self._calls.get(call_sid)
        if entry is None:
            return None
        call, expires_at = entry
        if self._clock() >= expires_at:
            self._drop(call_sid)
            return None
        return call

    def _drop(self, call_sid: str) -> None:
        entry = self._calls.pop(call_sid, None)
        if entry is None:
            return
        org_id = entry[0].org_id
        sids = self._by_org.get(org_id)
        if sids is not None:
            sids.discard(call_sid)
            if not sids:
                del self._by_org[org_id]

    async def put(self, call: LiveCall) -> None:
        self._drop(call.call_sid)  # it may have moved org
        # Copies in and out, so callers cannot change stored state behind the store's back, as
        # they could not with Redis.
        self._calls[call.call_sid] = (replace(call), self._clock() + self.ttl_s)
        self._by_org.setdefault(call.org_id, set()).add(call.call_sid)

    async def claim(self, call: LiveCall, max_calls: int = 0) -> Claim:
        # No await until the call is in: the event loop makes this atomic.
        if self._alive(call.call_sid) is not None:
            return "live"
        if max_calls > 0:
            live = [self._alive(sid) for sid in list(self._by_org.get(call.org_id, ()))]
            if sum(1 for c in live if c is not None) >= max_calls:
                return "busy"
        await self.put(call)
        return "claimed"

    async def update(self, call_sid: str, org_id: str, **fields: str | int | float) -> None:
        encoded = _encode_update(fields)
        call = self._alive(call_sid)
        if call is None or call.org_id != org_id:
            return
        updated = LiveCall.from_dict({**call.to_dict(), **encoded})
        self._calls[call_sid] = (updated, self._clock() + self.ttl_s)

    async def get(self, call_sid: str) -> LiveCall | None:
        call = self._alive(call_sid)
        return None if call is None else replace(call)

    async def remove(self, call_sid: str, org_id: str) -> None:
        call = self._alive(call_sid)
        if call is not None and call.org_id == org_id:
            self._drop(call_sid)

    async def grant(self, token_id: str, grant: StreamGrant, ttl_s: float) -> None:
        now = self._clock()
        # Expired grants go as new ones come, so unredeemed tokens cannot pile up.
        for old in [t for t, (_, at) in self._grants.items() if at <= now]:
            del self._grants[old]
        self._grants[token_id] = (grant, now + ttl_s)

    async def redeem(self, token_id: str) -> StreamGrant | None:
        entry = self._grants.pop(token_id, None)
        if entry is None or entry[1] <= self._clock():
            return None
        return entry[0]

    async def live(self, org_id: str) -> list[LiveCall]:
        calls = [self._alive(sid) for sid in list(self._by_org.get(org_id, ()))]
        return _newest_first([replace(c) for c in calls if c is not None])

    async def held_minutes(self, org_id: str) -> float:
        return sum(call.hold_minutes for call in await self.live(org_id))

    async def close(self) -> None:
        self._calls.clear()
        self._by_org.clear()
        self._grants.clear()


class RedisCallState:
    """The store for several replicas: a hash per call plus a sorted set per org.

    The hash `{prefix}:call:{sid}` carries the expiry; a sorted set cannot expire its members, so
    the org's index `{prefix}:org:{org}:calls` (scored by started_at) may name calls whose hash
    has expired, and `live` drops those as it finds them. The index itself expires no sooner than
    its newest call, so an org whose replicas all crashed leaves nothing behind.

    Needs Redis 7 or later (or Valkey), for EXPIRE's NX and GT options.
    """

    def __init__(self, url: str, *, ttl_s: int = DEFAULT_TTL_S, prefix: str = "velox") -> None:
        if ttl_s < 1:
            raise ValueError("Redis expiries are whole seconds: ttl_s must be at least 1")
        self.ttl_s = ttl_s
        self.prefix = prefix
        self._redis: aioredis.Redis = aioredis.from_url(url, decode_responses=True)
        self._update_script = self._redis.register_script(_UPDATE_LUA)
        self._claim_script = self._redis.register_script(_CLAIM_LUA)

    def _call_key(self, call_sid: str) -> str:
        return f"{self.prefix}:call:{call_sid}"

    def _org_key(self, org_id: str) -> str:
        return f"{self.prefix}:org:{org_id}:calls"

    def _grant_key(self, token_id: str) -> str:
        return f"{self.prefix}:grant:{token_id}"

    def _expire_org(self, pipe: Pipeline, org_key: str) -> None:
        # NX gives a fresh index its first expiry; GT extends it but never shortens it, so one
        # call's refresh cannot cut short the index under another, longer-lived call.
        pipe.expire(org_key, self.ttl_s, nx=True)
        pipe.expire(org_key, self.ttl_s, gt=True)

    async def _transact(
        self, call_sid: str, queue: Callable[[Pipeline, str | None], bool], what: str
    ) -> None:
        """Run the commands `queue` adds, atomically, as long as the call's hash is unchanged.

        `queue` is told the org the call is filed under (None if the call is gone) and returns
        False to do nothing. The hash is WATCHed from that read to EXEC, so a decision made on
        the read (which index to leave, whether the call exists) cannot be acted on after another
        replica or an expiry has changed the answer; the whole thing is retried instead.
        """
        key = self._call_key(call_sid)
        async with self._redis.pipeline(transaction=True) as pipe:
            for _ in range(_WATCH_RETRIES):
                try:
                    await pipe.watch(key)
                    org_id = _text(await pipe.hget(key, "org_id"))
                    pipe.multi()  # type: ignore[no-untyped-call]
                    if queue(pipe, org_id):
                        await pipe.execute()
                    return
                except WatchError:
                    continue
        raise WatchError(f"call {call_sid} kept changing during {what}")

    async def put(self, call: LiveCall) -> None:
        key = self._call_key(call.call_sid)
        org_key = self._org_key(call.org_id)

        def queue(pipe: Pipeline, old_org: str | None) -> bool:
            if old_org is not None and old_org != call.org_id:
                pipe.zrem(self._org_key(old_org), call.call_sid)  # it moved org
            # Replace, not merge: a field left from an earlier put must not survive.
            pipe.delete(key)
            pipe.hset(key, mapping=_fields(call.to_dict()))
            pipe.expire(key, self.ttl_s)
            pipe.zadd(org_key, {call.call_sid: call.started_at})
            self._expire_org(pipe, org_key)
            return True

        await self._transact(call.call_sid, queue, "put")

    async def claim(self, call: LiveCall, max_calls: int = 0) -> Claim:
        pairs: list[EncodableT] = [item for pair in call.to_dict().items() for item in pair]
        result = await self._claim_script(
            keys=[self._call_key(call.call_sid), self._org_key(call.org_id)],
            args=[
                max(max_calls, 0),
                self.ttl_s,
                self._call_key(""),
                call.call_sid,
                repr(call.started_at),
                *pairs,
            ],
        )
        return cast("Claim", _text(result))

    async def update(self, call_sid: str, org_id: str, **fields: str | int | float) -> None:
        encoded = _encode_update(fields)
        pairs: list[EncodableT] = [item for pair in encoded.items() for item in pair]
        # The script writes only while the call is filed under `org_id`: a stream can never
        # write into another org's call.
        await self._update_script(
            keys=[self._call_key(call_sid), self._org_key(org_id)],
            args=[org_id, self.ttl_s, *pairs],
        )

    async def get(self, call_sid: str) -> LiveCall | None:
        data = await self._redis.hgetall(self._call_key(call_sid))
        return LiveCall.from_dict(_texts(data)) if data else None

    async def remove(self, call_sid: str, org_id: str) -> None:
        key = self._call_key(call_sid)

        def queue(pipe: Pipeline, filed_under: str | None) -> bool:
            if filed_under != org_id:
                return False  # gone already (`live` drops it from the index), or not theirs
            pipe.delete(key)
            pipe.zrem(self._org_key(org_id), call_sid)
            return True

        await self._transact(call_sid, queue, "remove")

    async def grant(self, token_id: str, grant: StreamGrant, ttl_s: float) -> None:
        key = self._grant_key(token_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=_fields(grant.to_dict()))
            pipe.pexpire(key, max(1, int(ttl_s * 1000)))
            await pipe.execute()

    async def redeem(self, token_id: str) -> StreamGrant | None:
        key = self._grant_key(token_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(key)
            pipe.delete(key)
            data, deleted = await pipe.execute()
        # MULTI reads and deletes in one step: of two replicas redeeming at once, one gets it.
        return StreamGrant.from_dict(_texts(data)) if data and deleted else None

    async def live(self, org_id: str) -> list[LiveCall]:
        org_key = self._org_key(org_id)
        sids = [str(sid) for sid in await self._redis.zrevrange(org_key, 0, -1)]
        if not sids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hgetall(self._call_key(sid))
            hashes = [_texts(h) for h in await pipe.execute()]
        calls: list[LiveCall] = []
        stale: list[str] = []
        for sid, data in zip(sids, hashes, strict=True):
            if data and data.get("org_id") == org_id:
                calls.append(LiveCall.from_dict(data))
            else:
                stale.append(sid)
        if stale:
            await self._drop_stale(org_id, stale)
        return calls

    async def _drop_stale(self, org_id: str, sids: list[str]) -> None:
        """Remove index entries whose call expired or moved org - unless it came back meanwhile.

        The hashes are watched and checked again before the removal, so a call that another
        replica re-puts between our listing and this cleanup keeps its place in the index. If
        one is re-put during the cleanup itself, the cleanup is left to the next listing.
        """
        async with self._redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(*(self._call_key(sid) for sid in sids))
                still_stale = [
                    sid
                    for sid in sids
                    if _text(await pipe.hget(self._call_key(sid), "org_id")) != org_id
                ]
                if not still_stale:
                    return
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.zrem(self._org_key(org_id), *still_stale)
                await pipe.execute()
            except WatchError:
                pass

    async def held_minutes(self, org_id: str) -> float:
        return sum(call.hold_minutes for call in await self.live(org_id))

    async def close(self) -> None:
        await self._redis.aclose()


def make_call_state(redis_url: str | None) -> CallStateStore:
    """Redis when there is one, so replicas share calls; in-process for a lone server."""
    if redis_url:
        return RedisCallState(redis_url)
    return MemoryCallState()
