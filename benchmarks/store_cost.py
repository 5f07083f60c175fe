"""What the study store costs, measured against limits taken in the same run.

1. Per trial: number it (one ``add_trials`` per batch), mark it running (one ``start_trials`` per
   packed group), record its result and tell (``finish_trial``), on a beam-like round of 6 trials in
   2 groups, against a bare one-row INSERT + COMMIT on the same database and engine. Goal: ≤ 2×.
2. Reads as a study grows: the reported best (``best_trial``), a page of trials after N
   (``trials_after``) and the counts, in a study of 1,000 and of 100,000 stored trials. Goal: the
   100,000-trial read ≤ 1.5× the 1,000-trial read.

    python benchmarks/store_cost.py [--backends sqlite postgresql] [--trials 600] [--big 100000]

PostgreSQL: a fresh database on 127.0.0.1:5432 (user postgres), dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, text

from guidetune.evaluators.records import TrialResult
from guidetune.storage import StudySpec, StudyStore
from guidetune.storage.engine import make_engine
from guidetune.storage.store import _encode_result

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
ROUND, GROUPS = 6, 2
ME = "bench:1"


def fresh_url(backend: str, folder: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{folder / f'{uuid.uuid4().hex[:8]}.db'}"
    name = f"guidetune_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def drop(url: str) -> None:
    if url.startswith("postgresql"):
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
        admin.dispose()


def bare_commit_seconds(url: str, n: int) -> float:
    """One-row INSERT + COMMIT through the same engine settings as the store (WAL, NORMAL sync on SQLite)."""
    engine = make_engine(url)
    meta = MetaData()
    table = Table("bare", meta, Column("id", Integer, primary_key=True), Column("payload", String(200)))
    meta.create_all(engine)
    start = time.perf_counter()
    for i in range(n):
        with engine.begin() as conn:
            conn.execute(insert(table).values(payload=f"row {i}"))
    elapsed = (time.perf_counter() - start) / n
    engine.dispose()
    return elapsed


def result(v: float) -> TrialResult:
    return TrialResult(n_samples=16, seed=0, validity=v, validity_metric="acc", fidelity_fd=1.0,
                       forward_passes=50.0, backward_passes=50.0)


def store_seconds_per_trial(url: str, n_trials: int) -> float:
    store = StudyStore(url)
    study = store.create_study("bench", StudySpec(task="t", target="y", searcher="beam", space={"params": []}))
    store.claim_study(study.id, ME)
    rounds = n_trials // ROUND
    start = time.perf_counter()
    number = 0
    for r in range(rounds):
        batch = [dict(params={"rho": float(r * ROUND + i)}, config={"rho": float(r * ROUND + i)}, n_samples=16,
                      seed=0, tags={"beam_round": r}) for i in range(ROUND)]
        trials = store.add_trials(study.id, ME, batch, first_number=number)
        number += len(trials)
        size = ROUND // GROUPS
        for g in range(GROUPS):
            group = trials[g * size:(g + 1) * size]
            running = store.start_trials(study.id, ME, [t.number for t in group], worker="w")
            for t in running:
                done = t.finish(result(0.5))
                store.finish_trial(study.id, ME, done, score=0.5, passes=1600.0, best_number=0, best_score=0.5)
    elapsed = (time.perf_counter() - start) / (rounds * ROUND)
    store.close()
    return elapsed


def fill(url: str, n: int) -> tuple[StudyStore, int]:
    """A study of ``n`` finished trials (bulk-loaded through the store's own tables)."""
    store = StudyStore(url)
    study = store.create_study(f"big-{n}", StudySpec(task="t", target="y", searcher="random", space={"params": []}))
    store.claim_study(study.id, ME)
    chunk = 5000
    for lo in range(0, n, chunk):
        k = min(chunk, n - lo)
        store.add_trials(study.id, ME, [dict(params={"rho": float(lo + i)}, config={"rho": float(lo + i)},
                                             n_samples=16, seed=0, tags={}) for i in range(k)])
    payload = json.dumps(_encode_result(result(0.5)))
    cast = "CAST(:r AS json)" if store.backend == "postgresql" else ":r"
    with store.engine.begin() as conn:   # finish them all at once (PENDING -> COMPLETE is set-up, not measured)
        conn.execute(text(f"UPDATE trials SET state = 'complete', tell_seq = number, score = (number % 997) / 997.0, "
                          f"best_score = 0.999, result = {cast}, started_at = created_at, finished_at = created_at "
                          f"WHERE study_id = {study.id}").bindparams(r=payload))
        conn.execute(text(f"UPDATE studies SET n_told = {n}, n_complete = {n}, best_number = 996 WHERE id = {study.id}"))
        if store.backend == "postgresql":
            conn.execute(text("ANALYZE trials"))
    return store, study.id


def read_seconds(store: StudyStore, study_id: int, n: int, repeats: int) -> dict[str, float]:
    after = n // 2
    timings: dict[str, list[float]] = {"best": [], "trials_after": [], "counts": []}
    for _ in range(repeats):
        for name, fn in (("best", lambda: store.best_trial(study_id)),
                         ("trials_after", lambda: store.trials_after(study_id, after, limit=100)),
                         ("counts", lambda: store.counts(study_id))):
            t0 = time.perf_counter()
            fn()
            timings[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--trials", type=int, default=600, help="trials in the per-trial cost run")
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    print(f"# {platform.node()}: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for backend in args.backends:
            urls = []
            try:
                url = fresh_url(backend, folder)
                urls.append(url)
                StudyStore(url).close()
                bare = bare_commit_seconds(url, args.trials)
                per_trial = store_seconds_per_trial(url, args.trials)
                print(f"{backend:<10} per trial: store {per_trial * 1e3:.3f} ms, bare insert+commit {bare * 1e3:.3f} ms "
                      f"-> {per_trial / bare:.2f}x (goal <= 2x)")
                reads = {}
                for n in (args.small, args.big):
                    u = fresh_url(backend, folder)
                    urls.append(u)
                    store, sid = fill(u, n)
                    reads[n] = read_seconds(store, sid, n, args.repeats)
                    store.close()
                for name in reads[args.small]:
                    small, big = reads[args.small][name], reads[args.big][name]
                    print(f"{backend:<10} {name:<13} {args.small:>7} trials {small * 1e3:.3f} ms, {args.big:>7} trials "
                          f"{big * 1e3:.3f} ms -> {big / small:.2f}x (goal <= 1.5x)")
            finally:
                for u in urls:
                    drop(u)


if __name__ == "__main__":
    main()
