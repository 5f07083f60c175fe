"""Run one stored study in a process of its own, optionally killing that process (SIGKILL) at a chosen
point: the fault the resume tests inject. Usage:

    python study_runner.py URL STUDY SEARCHER [KILL|-] [EXECUTOR]

KILL is ``propose:K`` (after the K-th batch of proposals is stored PENDING), ``submit:K`` (at the K-th
group handed to the executor: its trials are RUNNING), ``told:K`` (right after the K-th trial is
recorded, mid-group) or absent / ``-`` (run to the end). EXECUTOR is ``local`` (default) or ``ray`` (a local
Ray, two groups in flight)."""

from __future__ import annotations

import os
import signal
import sys

from guidetune.searcher.service import StudyService
from guidetune.storage.store import StudyStore

SPEC = dict(task="gmm-inverse", target="1.5", n_samples=16, seed=3)
OPTIONS = {"beam": {}, "beam-mf": {"min_samples": 8}, "tpe": {"n_startup_trials": 4}, "random": {}}
BUDGET = {"beam": 256, "beam-mf": 256, "tpe": 128, "random": 128}


def make_spec(service: StudyService, searcher: str, **resources):
    return service.build_spec(SPEC["task"], SPEC["target"], searcher, n_samples=SPEC["n_samples"],
                              budget_samples=BUDGET[searcher], seed=SPEC["seed"],
                              searcher_options=OPTIONS[searcher], **resources)


def inject_kill(store: StudyStore, kill: str) -> None:
    where, count = kill.split(":")
    left = [int(count)]

    def tick() -> None:
        left[0] -= 1
        if left[0] == 0:
            os.kill(os.getpid(), signal.SIGKILL)

    if where == "propose":
        original = store.add_trials

        def add_trials(*a, **kw):
            out = original(*a, **kw)
            tick()
            return out
        store.add_trials = add_trials
    elif where == "told":
        original_finish = store.finish_trial

        def finish_trial(*a, **kw):
            out = original_finish(*a, **kw)
            tick()
            return out
        store.finish_trial = finish_trial
    elif where == "submit":
        from guidetune.searcher.executors import InProcessExecutor

        original_submit = InProcessExecutor.submit

        def submit(self, group):
            tick()
            return original_submit(self, group)
        InProcessExecutor.submit = submit
    else:
        raise SystemExit(f"unknown kill point {kill!r}")


def main(url: str, name: str, searcher: str, kill: str = "-", executor: str = "local") -> None:
    store = StudyStore(url)
    service = StudyService(store)
    resources = dict(max_concurrent=2, num_cpus=0.5) if executor == "ray" else {}
    study = service.create_or_continue(make_spec(service, searcher, **resources), name)
    if kill != "-":
        inject_kill(store, kill)
    service.run(study.name, executor=executor)


if __name__ == "__main__":
    main(*sys.argv[1:])
