"""Clerk key fetches per 1,000 bad tokens: our verifier against Clerk's SDK left to itself.

Starts the local fake Clerk (tests/fakes/clerk_server.py: real HTTP, real RS256), then sends
1,000 bad session tokens through the real `ClerkVerifier`: random unknown kids, forged
signatures under the real kid, expired tokens, and garbage, half one by one and half 50 at a
time. The fake counts every JWKS request it answers. For comparison the same tokens go through
the SDK's own `verify_token_async` with the secret key (its own JWKS fetching and cache) against
a second fake instance. Three runs of our verifier: after a good token (warm), on an empty cache
(cold), and with the flood spread at one token a second on the cache's clock (simulated, so it
takes no real time), which shows the bound of one fetch per 30 s interval. A good token is
verified after each run, to show the keys still work. Prints the counts and writes
bench/results/clerk_keys.json.

Run: .venv/bin/python bench/clerk_keys.py [--tokens 1000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clerk_backend_api.security import VerifyTokenOptions, verify_token_async  # noqa: E402

from app.auth.clerk import ClerkVerifier  # noqa: E402
from tests.fakes.clerk_server import FakeClerk, generate_rsa_key  # noqa: E402

ORIGIN = "http://localhost:3000"
KINDS = ("unknown_kid", "bad_signature", "expired", "garbage")


def bad_tokens(clerk: FakeClerk, count: int) -> list[tuple[str, str]]:
    """`count` bad tokens for `clerk`, the kinds in turn: (kind, token)."""
    forger = generate_rsa_key()
    made: list[tuple[str, str]] = []
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        if kind == "unknown_kid":
            token = clerk.session_token(key=forger, kid=f"ins_{secrets.token_hex(8)}", azp=ORIGIN)
        elif kind == "bad_signature":
            token = clerk.session_token(key=forger, azp=ORIGIN)
        elif kind == "expired":
            token = clerk.session_token(expires_in=-120, azp=ORIGIN)
        else:
            token = ("eyJhbGciOiJSUzI1NiJ9.e30.", "not-a-jwt", "a.b.c")[index % 3] + str(index)
        made.append((kind, token))
    return made


def per_thousand(fetches: int, tokens: int) -> float:
    return round(fetches * 1000 / tokens, 2)


class SimulatedClock:
    """The key cache's clock: moved forward per token, so a long flood takes no real time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def drive(
    check: Any,
    tokens: list[tuple[str, str]],
    concurrency: int,
    clock: SimulatedClock | None = None,
    step_s: float = 0.0,
) -> dict[str, Any]:
    """Half the tokens one by one, half `concurrency` at a time; outcomes by kind. Each token
    moves `clock` on by `step_s` (a flood spread over time)."""
    outcomes: Counter[str] = Counter()

    async def one(kind: str, token: str) -> None:
        if clock is not None:
            clock.now += step_s
        try:
            await check(token)
        except Exception as exc:  # noqa: BLE001 - every refusal counts, whatever its type
            outcomes[f"{kind}: {getattr(exc, 'code', type(exc).__name__)}"] += 1
        else:
            outcomes[f"{kind}: ACCEPTED"] += 1

    half = len(tokens) // 2
    started = time.perf_counter()
    for kind, token in tokens[:half]:
        await one(kind, token)
    rest = tokens[half:]
    for start in range(0, len(rest), concurrency):
        await asyncio.gather(*(one(k, t) for k, t in rest[start : start + concurrency]))
    return {"seconds": round(time.perf_counter() - started, 3), "outcomes": dict(outcomes)}


async def ours(tokens: int, concurrency: int, *, warm: bool, step_s: float) -> dict[str, Any]:
    """Our verifier: `warm` verifies a good token first; `step_s` spreads the flood in time."""
    clock = SimulatedClock()
    with FakeClerk() as clerk:
        verifier = ClerkVerifier(
            secret_key=clerk.secret_key,
            api_url=clerk.url,
            issuer=clerk.issuer,
            authorized_parties=[ORIGIN],
            clock=clock,
        )
        if warm:
            await verifier.verify(clerk.session_token(azp=ORIGIN))
        before = clerk.jwks_requests
        run = await drive(verifier.verify, bad_tokens(clerk, tokens), concurrency, clock, step_s)
        fetches = clerk.jwks_requests - before
        good_after = (await verifier.verify(clerk.session_token(azp=ORIGIN))).user_id == "user_1"
        return {
            **run,
            "warm": warm,
            "simulated_seconds": round(clock.now, 1),
            "jwks_fetches": fetches,
            "fetches_per_1000_bad_tokens": per_thousand(fetches, tokens),
            "good_token_after": good_after,
        }


async def sdk_alone(tokens: int, concurrency: int) -> dict[str, Any]:
    with FakeClerk() as clerk:
        options = VerifyTokenOptions(
            secret_key=clerk.secret_key, api_url=clerk.url, authorized_parties=[ORIGIN]
        )

        async def check(token: str) -> None:
            await verify_token_async(token, options)

        await check(clerk.session_token(azp=ORIGIN))
        before = clerk.jwks_requests
        run = await drive(check, bad_tokens(clerk, tokens), concurrency)
        return {**run, "jwks_fetches": clerk.jwks_requests - before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--skip-sdk", action="store_true", help="skip the SDK-alone comparison")
    args = parser.parse_args()

    scenarios = {
        "warm_burst": asyncio.run(ours(args.tokens, args.concurrency, warm=True, step_s=0.0)),
        "cold_burst": asyncio.run(ours(args.tokens, args.concurrency, warm=False, step_s=0.0)),
        # One bad token a second for as long as the flood lasts (the cache's clock simulated).
        "one_per_second": asyncio.run(ours(args.tokens, args.concurrency, warm=True, step_s=1.0)),
    }
    report: dict[str, Any] = {
        "tokens": args.tokens,
        "concurrency": args.concurrency,
        "kinds": list(KINDS),
        "min_refetch_s": 30.0,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "verifier": scenarios,
    }
    if not args.skip_sdk:
        sdk = asyncio.run(sdk_alone(args.tokens, args.concurrency))
        report["sdk_alone"] = {
            **sdk,
            "fetches_per_1000_bad_tokens": per_thousand(sdk["jwks_fetches"], args.tokens),
        }

    print(f"{args.tokens} bad tokens ({', '.join(KINDS)}), half {args.concurrency} at a time")
    for name, run in scenarios.items():
        print(
            f"  ClerkVerifier {name:15s} {run['jwks_fetches']:4d} JWKS fetches "
            f"({run['fetches_per_1000_bad_tokens']} per 1,000) in {run['seconds']:.2f} s "
            f"(cache clock {run['simulated_seconds']:.0f} s); "
            f"a good token after: {run['good_token_after']}"
        )
    if "sdk_alone" in report:
        sdk = report["sdk_alone"]
        print(
            f"  SDK alone     {'warm_burst':15s} {sdk['jwks_fetches']:4d} JWKS fetches "
            f"({sdk['fetches_per_1000_bad_tokens']} per 1,000) in {sdk['seconds']:.2f} s"
        )
    accepted = [
        outcome
        for run in scenarios.values()
        for outcome in run["outcomes"]
        if outcome.endswith("ACCEPTED")
    ]
    if accepted:
        raise SystemExit(f"a bad token was accepted: {accepted}")
    out = ROOT / "bench" / "results" / "clerk_keys.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
