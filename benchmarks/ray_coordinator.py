"""The coordinator on Ray, measured against limits taken in the same run (a local Ray, loopback only).

1. Overhead per trial with trivial trials (plan + dispatch + record + tell: the whole coordinator, one trial per group, with
   a searcher whose ask costs nothing, filling every free slot), at 1, 8 and 64 groups in
   flight, against the limit: a bare Ray actor call (same number in flight) plus one store commit.
   Goal: ≤ 1.5× the limit.
2. Parallel efficiency with 1, 4 and 16 workers on trials that sleep 1 s (the coordinator's efficiency,
   not the CPU's): (trials × 1 s) / (workers × wall time). Goal: ≥ 90 % at 16.

    python benchmarks/ray_coordinator.py [--trials 256] [--inflight 1 8 64] [--workers 1 4 16] [--rounds 6]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import ray

sys.path.insert(0, str(Path(__file__).parent))
from store_cost import bare_commit_seconds  # noqa: E402

from guidetune.evaluators.records import TrialResult  # noqa: E402
from guidetune.guidance import TFGParams  # noqa: E402
from guidetune.searcher.executors import TrialGroup  # noqa: E402
from guidetune.searcher.ray_executor import RayExecutor, connect_ray  # noqa: E402
from guidetune.searcher import (Budget, LogFloat, MaximizeValidity, Proposal, SearchSpace,  # noqa: E402
                                Searcher, StudyCoordinator, make_searcher)
from guidetune.storage import StudySpec, StudyStore  # noqa: E402


class InstantWorker:
    """A trial worker that answers at once (or after ``sleep`` seconds): no task, no sampling."""

    sleep = 0.0

    def __init__(self, task: str, target: str, task_sha256: str | None) -> None:
        pass

    def evaluate(self, configs, n_samples: int, seed: int) -> list[TrialResult]:
        if self.sleep:
            time.sleep(self.sleep)
        return [TrialResult(n_samples=n_samples, seed=seed, validity=0.5 + 1e-6 * float(c.rho),
                            validity_metric="acc", forward_passes=1.0) for c in configs]


class SleepyWorker(InstantWorker):
    sleep = 1.0


@ray.remote(num_cpus=0)
class Echo:
    def f(self, x):
        return x


def bare_call_seconds(inflight: int, calls: int) -> float:
    """Per call: ``inflight`` actors, ``inflight`` calls kept in flight, wait for any, resubmit."""
    actors = [Echo.remote() for _ in range(inflight)]
    ray.get([a.f.remote(0) for a in actors])
    pending = {a.f.remote(i): a for i, a in enumerate(actors)}
    done, start = 0, time.perf_counter()
    while done < calls:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            actor = pending.pop(ref)
            ray.get(ref)
            done += 1
            pending[actor.f.remote(done)] = actor
    elapsed = (time.perf_counter() - start) / calls
    ray.get(list(pending))
    for a in actors:
        ray.kill(a)
    return elapsed


class ListSearcher(Searcher):
    """A searcher whose ask costs nothing: the k-th proposal is ρ̄ = k·10⁻⁶ (what is measured is the
    coordinator, not a sampler); sequential, so it fills every free slot."""

    name = "list"

    def natural_batch_size(self) -> int:
        return 1

    def _ask(self, n):
        start = len(self.told) + len(self.pending)
        return [Proposal({"rho": 1e-6 * (start + i + 1)}, self.n_samples) for i in range(n or 1)]


def study_seconds(folder: Path, name: str, worker: type, trials: int, inflight: int, searcher: str = "list") -> float:
    """Wall time of a study of ``trials`` one-config groups with ``inflight`` workers started beforehand."""
    store = StudyStore(f"sqlite:///{folder / f'{name}.db'}")
    space = SearchSpace((LogFloat("rho", 1e-7, 1.0),), {})
    spec = StudySpec(task="gmm-inverse", target="1.5", searcher=searcher, space=space.to_dict(), n_samples=1,
                     budget_trials=trials, max_concurrent=inflight, num_cpus=0.0)
    study = store.create_study(name, spec)
    if searcher == "list":
        chosen = ListSearcher(space, MaximizeValidity(), n_samples=1)
    else:
        chosen = make_searcher(searcher, space, MaximizeValidity(), n_samples=1, batch_size=inflight)
    executor = RayExecutor(spec.task, spec.target, capacity=inflight, num_cpus=0.0, worker_class=worker)
    warm = [TrialGroup((i,), (TFGParams(),), 1, 0) for i in range(inflight)]
    for g in warm:                 # start the actors (and their imports) first: worker start-up is not the coordinator's
        executor.worker_for(g)
        executor.submit(g)
    while executor.in_flight():
        executor.wait()
    coordinator = StudyCoordinator(store, study.id, chosen, executor, budget=Budget(trials=trials), max_pack=1)
    start = time.perf_counter()
    outcome = coordinator.run()
    elapsed = time.perf_counter() - start
    executor.close()
    assert sum(t.state.is_finished for t in outcome.trials) == trials, outcome.stop_reason
    retried = [t for t in outcome.trials if t.attempt != 1 or not t.state.is_finished or t.result is None]
    assert not retried, f"{len(retried)} trials failed or ran twice: {retried[0].fail_reason}"
    store.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=256)
    parser.add_argument("--inflight", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rounds", type=int, default=6, help="sleeping trials per worker in the efficiency run")
    args = parser.parse_args()
    print(f"# {platform.node()}: {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"Ray {ray.__version__}")
    connect_ray(None, num_cpus=2)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        commit = bare_commit_seconds(f"sqlite:///{folder / 'bare.db'}", 200)
        for inflight in args.inflight:
            call = bare_call_seconds(inflight, args.trials)
            per_trial = study_seconds(folder, f"overhead-{inflight}", InstantWorker, args.trials, inflight) / args.trials
            limit = call + commit
            print(f"overhead  {inflight:>3} in flight: {per_trial * 1e3:7.2f} ms per trial; limit {limit * 1e3:6.2f} ms "
                  f"(Ray call {call * 1e3:.2f} + commit {commit * 1e3:.2f}) -> {per_trial / limit:.2f}x (goal <= 1.5x)")
            if inflight == args.inflight[0]:
                optuna_trial = study_seconds(folder, f"optuna-{inflight}", InstantWorker, args.trials, inflight,
                                             searcher="random") / args.trials
                print(f"          the same with Optuna's random sampler (its ask replays every stored trial): "
                      f"{optuna_trial * 1e3:.2f} ms per trial")
        for workers in args.workers:
            n = workers * args.rounds
            wall = study_seconds(folder, f"parallel-{workers}", SleepyWorker, n, workers)
            print(f"parallel  {workers:>3} workers: {n} trials of 1 s in {wall:.2f} s -> efficiency "
                  f"{n / (workers * wall):.1%} (goal >= 90% at 16)")
    ray.shutdown()


if __name__ == "__main__":
    main()
