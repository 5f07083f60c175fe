"""Load on the status API while a study runs: N concurrent pollers (aiohttp) on
``GET /v1/studies/{id}`` and ``GET /v1/studies/{id}/trials?after=N`` against a real ``guidetune
serve`` whose study runs on a local Ray, on SQLite and on PostgreSQL. Goal: p99 under 50 ms.

The in-run yardstick is ``GET /healthz`` under the same load (one trivial database read, no auth):
what the server, the event loop and the threadpool cost on their own on this machine at that moment.

    python benchmarks/api_load.py --pollers 50 --interval 1 --seconds 30 --backends sqlite,postgresql
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "api"))

from server_process import Server  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def poller(session: aiohttp.ClientSession, url: str, study: int, stop_at: float, out: dict[str, list[float]],
                 errors: list[str], interval: float) -> None:
    """Like ``guidetune status --watch`` and the dashboard: a status and the newer trials every
    ``interval`` seconds (0: back to back, a closed loop), starting at a random offset."""
    after = -1
    await asyncio.sleep(random.random() * interval)
    while time.monotonic() < stop_at:
        cycle = time.monotonic()
        for kind, path in (("status", f"/v1/studies/{study}"), ("trials", f"/v1/studies/{study}/trials?after={after}"),
                           ("healthz", "/healthz")):
            t0 = time.perf_counter()
            async with session.get(url + path) as r:
                body = await r.read()
                elapsed = (time.perf_counter() - t0) * 1000
                if r.status != 200:
                    errors.append(f"{path}: {r.status}")
                    continue
            out[kind].append(elapsed)
            if kind == "trials":
                after = json.loads(body)["next_after"]
        await asyncio.sleep(max(0.0, cycle + interval - time.monotonic()))


async def load(url: str, token: str, study: int, pollers: int, seconds: float, interval: float) -> tuple[dict, list[str]]:
    out: dict[str, list[float]] = {"status": [], "trials": [], "healthz": []}
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=pollers)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}, connector=connector) as session:
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*(poller(session, url, study, stop_at, out, errors, interval) for _ in range(pollers)))
    return out, errors


def run_backend(backend: str, pollers: int, seconds: float, budget: int, interval: float) -> dict:
    from guidetune.api.client import Client

    home = Path(tempfile.mkdtemp(prefix=f"api-load-{backend}-"))
    storage, dropper = None, None
    if backend == "postgresql":
        from pgdb import create_pg_database, drop_pg_database

        storage = create_pg_database()
        dropper = lambda: drop_pg_database(storage)   # noqa: E731
    server = Server(home, storage=storage)
    try:
        token = server.token("load")
        with Client(server.url, token) as client:
            study = client.create_study(task="digits-label", target="3", searcher="beam-mf", n_samples=32,
                                        budget_samples=budget)["id"]
            for status in client.watch(study, interval=0.5, timeout=120):   # wait until it runs and has trials
                if status["trials"]["complete"] >= 2:
                    break
            out, errors = asyncio.run(load(server.url, token, study, pollers, seconds, interval))
            state = client.status(study)
        row = {"backend": backend, "pollers": pollers, "interval_s": interval, "seconds": seconds, "errors": len(errors),
               "requests_per_s": round(sum(len(v) for v in out.values()) / seconds, 1),
               "study_state_after": state["state"], "trials_told_after": state["trials"]["complete"]}
        for kind, values in out.items():
            row[kind] = {"requests": len(values), "p50_ms": round(statistics.median(values), 2),
                         "p95_ms": round(percentile(values, 95), 2), "p99_ms": round(percentile(values, 99), 2)}
        row["p99_vs_healthz"] = {k: round(row[k]["p99_ms"] / row["healthz"]["p99_ms"], 2) for k in ("status", "trials")}
        row["goal_p99_under_50ms"] = all(row[k]["p99_ms"] < 50 for k in ("status", "trials"))
        return row
    finally:
        server.stop()
        if dropper:
            dropper()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pollers", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--budget", type=int, default=4000, help="the running study's sample budget (it must outlast the load)")
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between one poller's polls (0: a closed loop)")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    for backend in args.backends.split(","):
        print(json.dumps(run_backend(backend, args.pollers, args.seconds, args.budget, args.interval)), flush=True)


if __name__ == "__main__":
    main()
