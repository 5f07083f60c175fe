"""The study service on a real store (SQLite and PostgreSQL): kill-and-resume with real processes, two
processes on one store, a database outage mid-study, budgets as hard caps."""

from __future__ import annotations

import math
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from study_runner import make_spec

from guidetune.searcher.service import StudyService
from guidetune.storage import StudyState, StudyStore, TrialState

RUNNER = Path(__file__).with_name("study_runner.py")


def run_runner(url: str, name: str, searcher: str, kill: str | None = None,
               executor: str = "local") -> subprocess.CompletedProcess:
    args = [sys.executable, str(RUNNER), url, name, searcher, kill or "-", executor]
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


def reference(url: str, searcher: str):
    """The uninterrupted study with the same spec, run in this process."""
    store = StudyStore(url)
    service = StudyService(store)
    study = service.create_or_continue(make_spec(service, searcher), f"reference-{searcher}")
    service.run(study.name)
    return store, study.name


def signature(store: StudyStore, name: str):
    study = store.get_study(name)
    trials = store.trials(study.id)
    return study, [(t.number, t.params, t.n_samples, t.seed, t.state, t.tell_seq) for t in trials], \
        [t.result.validity if t.result else None for t in trials]


def assert_same_study(store: StudyStore, name: str, ref_name: str, *, same_order: bool = True) -> None:
    """Same trials, results, spend and best; ``same_order``: told in the same order too (one group in
    flight at a time; with several, groups finish in any order)."""
    study, trials, validity = signature(store, name)
    ref, ref_trials, ref_validity = signature(store, ref_name)
    assert study.state is StudyState.COMPLETE and study.stop_reason == ref.stop_reason
    if not same_order:
        trials, ref_trials = [t[:-1] for t in trials], [t[:-1] for t in ref_trials]
    assert trials == ref_trials
    assert validity == pytest.approx(ref_validity, abs=1e-9)
    assert (study.samples_spent, study.best_number) == (ref.samples_spent, ref.best_number)
    assert study.samples_spent <= study.spec.budget_samples


KILLS = {"beam": ["submit:3", "told:7"], "beam-mf": ["told:4", "propose:3"], "tpe": ["propose:2", "submit:3"],
         "random": ["told:3", "submit:2"]}


# every searcher's replay on SQLite; the backend's part (leases, re-queueing) on PostgreSQL with the default searcher
@pytest.mark.slow
@pytest.mark.parametrize("store_url,searcher", [("sqlite", s) for s in KILLS] + [("postgresql", "beam-mf")],
                         indirect=["store_url"])
def test_a_study_killed_at_several_points_resumes_to_the_uninterrupted_result(store_url, searcher):
    store, ref_name = reference(store_url, searcher)
    name = f"killed-{searcher}"
    complete_before: dict[int, object] = {}
    for kill in KILLS[searcher]:
        out = run_runner(store_url, name, searcher, kill)
        assert out.returncode == -signal.SIGKILL, out.stderr
        study = store.get_study(name)
        assert study.state is StudyState.RUNNING            # the dead coordinator never released it
        for t in store.trials(study.id, states=[TrialState.COMPLETE]):
            complete_before.setdefault(t.number, t.finished_at)
    running_when_killed = {t.number for t in store.trials(store.get_study(name).id, states=[TrialState.RUNNING])}
    out = run_runner(store_url, name, searcher)          # the same command again
    assert out.returncode == 0, out.stderr
    assert_same_study(store, name, ref_name)
    after = {t.number: t for t in store.trials(store.get_study(name).id)}
    # COMPLETE trials were never re-run; trials left RUNNING were re-queued and run again
    assert complete_before and all(after[n].finished_at == finished for n, finished in complete_before.items())
    assert all(after[n].attempt >= 2 for n in running_when_killed)
    store.close()


@pytest.mark.slow
def test_a_coordinator_killed_with_groups_in_flight_on_ray_resumes_exactly(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    store, ref_name = reference(url, "beam")
    out = run_runner(url, "on-ray", "beam", "told:5", executor="ray")
    assert out.returncode == -signal.SIGKILL, out.stderr[-2000:]
    study = store.get_study("on-ray")
    in_flight = {t.number for t in store.trials(study.id, states=[TrialState.RUNNING])}
    assert in_flight                                    # groups were out on Ray workers when it died
    out = run_runner(url, "on-ray", "beam", executor="ray")
    assert out.returncode == 0, out.stderr[-2000:]
    assert_same_study(store, "on-ray", ref_name, same_order=False)
    after = {t.number: t for t in store.trials(study.id)}
    assert all(after[n].attempt == 2 for n in in_flight)   # re-queued once, never counted twice
    store.close()


@pytest.mark.slow
def test_two_studies_from_two_processes_on_one_store(store_url):
    store, ref_name = reference(store_url, "random")
    procs = [subprocess.Popen([sys.executable, str(RUNNER), store_url, name, "random"], stderr=subprocess.PIPE, text=True)
             for name in ("left", "right")]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    for name in ("left", "right"):
        assert_same_study(store, name, ref_name)
    store.close()


@pytest.mark.slow
def test_a_second_coordinator_is_refused_while_the_first_runs(store_url):
    store = StudyStore(store_url)
    service = StudyService(store)
    study = service.create_or_continue(make_spec(service, "beam"), "busy")
    proc = subprocess.Popen([sys.executable, str(RUNNER), store_url, "busy", "beam"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while store.get_study(study.id).state is not StudyState.RUNNING and time.monotonic() < deadline:
            time.sleep(0.2)
        from guidetune.storage.errors import LeaseHeldError
        with pytest.raises(LeaseHeldError, match="is being run by"):
            service.run("busy")
    finally:
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    store.close()


class FlakyProxy:
    """A TCP proxy in front of PostgreSQL that the test can cut (close every connection and refuse new
    ones) for a while: the outage."""

    def __init__(self, target=("127.0.0.1", 5432)) -> None:
        self.target = target
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port = self.server.getsockname()[1]
        self.down = threading.Event()
        self.closed = False
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.down.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self, seconds: float) -> None:
        self.down.set()
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        time.sleep(seconds)
        self.down.clear()

    def close(self) -> None:
        self.closed = True
        self.server.close()


@pytest.mark.slow
def test_a_postgresql_outage_mid_study_loses_nothing(store_url):
    if not store_url.startswith("postgresql"):
        pytest.skip("the outage is a PostgreSQL server going away (SQLite has no server)")
    store, ref_name = reference(store_url, "beam")
    proxy = FlakyProxy()
    proxied = store_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    service = StudyService(StudyStore(proxied, retry_seconds=60.0))
    study = service.create_or_continue(make_spec(service, "beam"), "outage")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            service.run(study.name)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 120
    while store.get_study(study.id).n_told < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.get_study(study.id).state is StudyState.RUNNING     # cut mid-study
    proxy.cut(3.0)
    worker.join(timeout=300)
    proxy.close()
    assert not errors, errors
    assert_same_study(store, "outage", ref_name)
    store.close()


def test_the_budget_is_a_hard_cap_that_counts_the_yardstick(store_url):
    store = StudyStore(store_url)
    service = StudyService(store)
    spec = service.build_spec("gmm-inverse", "1.5", "random", objective="constrained", n_samples=16,
                              budget_samples=200, seed=1)
    study = service.create_or_continue(spec)
    outcome = service.run(study.name)
    stored = store.get_study(study.id)
    run = [t for t in outcome.trials if t.state.is_finished]
    assert stored.yardstick["samples"] == 16 and set(stored.yardstick["fd"]) == {"16", "8"}
    assert outcome.samples_spent == 16 + sum(t.n_samples for t in run) <= 200
    assert outcome.stop_reason == "budget_samples" and len(run) == (200 - 16) // 16
    # running it again measures nothing twice: the study is complete
    assert service.run(study.name).samples_spent == outcome.samples_spent
    # a larger budget continues the same study with the proposals it had stored
    bigger = service.build_spec("gmm-inverse", "1.5", "random", objective="constrained", n_samples=16,
                                budget_samples=264, seed=1)
    again = service.create_or_continue(bigger)
    assert again.id == study.id and again.state is StudyState.QUEUED
    more = service.run(study.name)
    assert more.samples_spent == 16 + 16 * 15 and store.get_study(study.id).yardstick == stored.yardstick
    assert not math.isnan(more.best_score)
    store.close()


def test_bad_input_fails_before_anything_is_stored(store_url):
    from guidetune.searcher.errors import BudgetTooSmallError, SearchError, UnknownSearcherError
    from guidetune.evaluators.errors import EvaluatorError

    store = StudyStore(store_url)
    service = StudyService(store)
    with pytest.raises(UnknownSearcherError):
        service.build_spec("gmm-inverse", "1.5", "annealing", budget_samples=100)
    with pytest.raises(EvaluatorError, match="unknown task"):
        service.build_spec("mnist", "1", "beam", budget_samples=100)
    with pytest.raises(BudgetTooSmallError, match="--budget-samples 20 cannot pay for one trial"):
        service.build_spec("gmm-inverse", "1.5", "beam", objective="validity", budget_samples=20, n_samples=32)
    with pytest.raises(BudgetTooSmallError, match="the unguided yardstick and one trial"):
        service.build_spec("gmm-inverse", "1.5", "beam", objective="constrained", budget_samples=40, n_samples=32)
    with pytest.raises(SearchError, match="give a budget"):
        service.build_spec("gmm-inverse", "1.5", "beam")
    assert store.list_studies() == []
    store.close()


def test_status_and_export_read_the_store(store_url):
    store = StudyStore(store_url)
    service = StudyService(store)
    study = service.create_or_continue(service.build_spec("gmm-inverse", "1.5", "beam", n_samples=16,
                                                          budget_samples=160, seed=2), "status")
    outcome = service.run("status")
    status = service.status("status")
    assert status["state"] == "complete" and status["spent"]["samples"] == outcome.samples_spent
    assert status["trials"]["complete"] == sum(t.state is TrialState.COMPLETE for t in outcome.trials)
    assert status["best"]["number"] == outcome.best.number
    record = service.export("status")
    assert record["task"] == "gmm-inverse" and record["params"] == outcome.best.config
    assert record["study"]["trial"] == outcome.best.number
    assert [t.number for t in service.trials_after("status", 2, limit=3)] == [3, 4, 5]
    assert study.id == store.get_study("status").id
    store.close()


def test_the_default_objective_guards_fidelity_where_the_budget_pays_for_its_yardstick(store_url):
    service = StudyService(StudyStore(store_url))
    guarded = service.build_spec("digits-label", "3", budget_samples=2000, n_samples=32)
    assert (guarded.objective, guarded.max_fd_ratio) == ("constrained", 2.0)      # a class-3 yardstick: ~320 samples
    small = service.build_spec("digits-label", "3", budget_samples=600, n_samples=32)
    assert small.objective == "validity"                                          # 320 > a quarter of 600
    assert service.build_spec("gmm-inverse", "1.5", budget_samples=200, n_samples=32).objective == "constrained"
    assert service.build_spec("digits-label", "3", objective="validity", budget_samples=5000).objective == "validity"
    assert (guarded.confirm_fraction, guarded.confirm_top) == (0.2, 3)
    service.store.close()
