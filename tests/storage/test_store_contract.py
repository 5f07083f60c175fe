"""The study store's contract, on SQLite and PostgreSQL alike (the ``store`` fixture runs both)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from guidetune.evaluators.records import TrialResult
from guidetune.storage import (AlreadyExistsError, IllegalTransitionError, ImmutableTrialError, LeaseHeldError,
                               NotFoundError, SchemaVersionError, StudySpec, StudyState, StudyStore, TrialState)

ME, OTHER = "host-a:1", "host-b:2"


def _spec(**kw) -> StudySpec:
    base = dict(task="gmm-inverse", target="1.5", searcher="beam", space={"params": [], "base": {}}, budget_samples=1000)
    base.update(kw)
    return StudySpec(**base)


def _proposal(rho: float, n: int = 16, seed: int = 0) -> dict:
    return dict(params={"rho": rho}, config={"rho": rho}, n_samples=n, seed=seed, tags={"round": 0})


def _result(validity: float, n: int = 16) -> TrialResult:
    return TrialResult(n_samples=n, seed=0, validity=validity, validity_metric="acc", forward_passes=10.0,
                       backward_passes=10.0, extras={"x": math.nan})


def _running_study(store: StudyStore, name: str = "s", **kw):
    study = store.create_study(name, _spec(**kw))
    return store.claim_study(study.id, ME)


def test_studies_are_created_found_listed_and_named_once(store):
    a = store.create_study("alpha", _spec(), owner="ann")
    b = store.create_study("beta", _spec(seed=3))
    assert a.state is StudyState.QUEUED and a.spec == _spec() and a.owner == "ann"
    assert store.get_study("alpha") == a and store.get_study(a.id) == a
    assert [s.name for s in store.list_studies()] == ["alpha", "beta"]
    assert [s.name for s in store.list_studies(owner="ann")] == ["alpha"]
    with pytest.raises(AlreadyExistsError, match="alpha"):
        store.create_study("alpha", _spec())
    with pytest.raises(NotFoundError, match="guidetune studies"):
        store.get_study("gamma")
    assert b.spec.seed == 3


def test_trials_are_numbered_when_proposed_and_follow_the_life_cycle(store):
    study = _running_study(store)
    first = store.add_trials(study.id, ME, [_proposal(1.0), _proposal(2.0)])
    more = store.add_trials(study.id, ME, [_proposal(4.0)])
    assert [t.number for t in first + more] == [0, 1, 2]
    assert all(t.state is TrialState.PENDING and t.attempt == 0 for t in first + more)
    running = store.start_trials(study.id, ME, [0, 1], worker="w1")
    assert [(t.state, t.attempt, t.worker) for t in running] == [(TrialState.RUNNING, 1, "w1")] * 2
    assert running[0].started_at is not None
    with pytest.raises(IllegalTransitionError, match="only PENDING"):
        store.start_trials(study.id, ME, [1, 2], worker="w2")   # 1 is running: all or nothing
    assert store.trial(study.id, 2).state is TrialState.PENDING

    # told out of number order: the order of tells is what is stored
    t1 = store.finish_trial(study.id, ME, running[1].finish(_result(0.7)), score=0.7, passes=320.0,
                            best_number=1, best_score=0.7)
    t0 = store.finish_trial(study.id, ME, running[0].fail("NaN at step 3"), score=None, passes=0.0,
                            best_number=1, best_score=0.7)
    assert (t1.tell_seq, t0.tell_seq) == (0, 1)
    assert [t.number for t in store.told_trials(study.id)] == [1, 0]
    assert t0.state is TrialState.FAILED and t0.fail_reason == "NaN at step 3"
    assert t1.result == _result(0.7) and math.isnan(t1.result.extras["x"])   # NaN survives both backends
    study = store.get_study(study.id)
    assert (study.samples_spent, study.passes_spent, study.n_told, study.best_number) == (32, 320.0, 2, 1)
    assert store.counts(study.id) == {"pending": 1, "running": 0, "complete": 1, "failed": 1, "pruned": 0}
    assert store.best_trial(study.id).number == 1
    assert store.best_curve(study.id) == [(16, 0.7), (32, 0.7)]


def test_a_finished_trial_is_immutable_in_the_store_and_in_the_database(store):
    study = _running_study(store)
    store.add_trials(study.id, ME, [_proposal(1.0)])
    (t,) = store.start_trials(study.id, ME, [0], worker="w")
    store.finish_trial(study.id, ME, t.finish(_result(0.5)), score=0.5, passes=1.0, best_number=0, best_score=0.5)
    with pytest.raises(ImmutableTrialError, match="COMPLETE"):
        store.update_trial(study.id, 0, worker="someone else")
    with pytest.raises(ImmutableTrialError):
        store.finish_trial(study.id, ME, t.finish(_result(0.9)), score=0.9, passes=1.0, best_number=0, best_score=0.9)
    with pytest.raises(DBAPIError, match="finished"):   # the trigger, for any writer that bypasses the store
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE trials SET score = 1.0 WHERE number = 0"))
    assert store.trial(study.id, 0).score == 0.5


def test_requeue_gives_running_trials_back_and_the_next_start_is_a_new_attempt(store):
    study = _running_study(store)
    store.add_trials(study.id, ME, [_proposal(1.0), _proposal(2.0)])
    store.start_trials(study.id, ME, [0, 1], worker="dead-worker")
    assert store.counts(study.id)["running"] == 2
    assert store.requeue_running(study.id, ME) == [0, 1]
    assert [(t.state, t.attempt, t.worker) for t in store.trials(study.id)] == [(TrialState.PENDING, 1, None)] * 2
    again = store.start_trials(study.id, ME, [0], worker="w2")
    assert again[0].attempt == 2 and store.counts(study.id)["running"] == 1


def test_one_coordinator_per_study_and_fencing(store, monkeypatch):
    study = _running_study(store)
    assert study.state is StudyState.RUNNING and study.coordinator == ME
    with pytest.raises(LeaseHeldError, match=ME):
        store.claim_study(study.id, OTHER)
    # the holder went silent past its lease: another coordinator may take over
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE studies SET lease_until = '2000-01-01 00:00:00'"))
    assert store.claim_study(study.id, OTHER).coordinator == OTHER
    with pytest.raises(LeaseHeldError, match="took it over"):     # the old one's writes are refused
        store.add_trials(study.id, ME, [_proposal(1.0)])
    done = store.release_study(study.id, OTHER, StudyState.COMPLETE, "finished")
    assert done.state is StudyState.COMPLETE and done.coordinator is None and done.finished_at is not None


def test_a_dead_local_holder_frees_its_study_at_once(store):
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    holder = f"{socket.gethostname()}:{dead.stdout.strip()}"          # a pid that no longer exists
    study = store.create_study("s", _spec())
    store.claim_study(study.id, holder)
    assert store.claim_study(study.id, ME).coordinator == ME


def test_cancel_a_queued_study_at_once_and_flag_a_running_one(store):
    queued = store.create_study("q", _spec())
    assert store.request_cancel(queued.id).state is StudyState.CANCELLED
    running = _running_study(store, "r")
    assert not store.cancel_requested(running.id)
    assert store.request_cancel(running.id).state is StudyState.RUNNING
    assert store.cancel_requested(running.id)


def test_trials_after_n_are_paged(store):
    study = _running_study(store)
    store.add_trials(study.id, ME, [_proposal(float(i + 1)) for i in range(25)])
    page = store.trials_after(study.id, -1, limit=10)
    assert [t.number for t in page] == list(range(10))
    assert [t.number for t in store.trials_after(study.id, 19, limit=10)] == list(range(20, 25))
    assert store.trials_after(study.id, 24) == []


def test_budgets_change_and_a_budget_stop_reopens(store):
    study = _running_study(store)
    store.release_study(study.id, ME, StudyState.COMPLETE, "budget_samples")
    grown = store.update_budgets(study.id, _spec(budget_samples=5000))
    assert grown.state is StudyState.QUEUED and grown.spec.budget_samples == 5000
    with pytest.raises(AlreadyExistsError, match="only the budgets and resources"):
        store.update_budgets(study.id, _spec(searcher="tpe"))


def test_yardstick_is_stored_once_and_counted(store):
    study = _running_study(store)
    after = store.record_yardstick(study.id, ME, {"fd": {"16": 3.5}, "samples": 160, "passes": 8000.0}, 160, 8000.0)
    assert after.yardstick["fd"] == {"16": 3.5} and after.samples_spent == 160 and after.passes_spent == 8000.0
    assert store.best_curve(study.id) == []


def test_schema_is_created_in_an_empty_database_and_checked_at_start_up(store_url):
    from guidetune.storage.engine import current_revision
    from guidetune.storage.schema import SCHEMA_REVISION

    store = StudyStore(store_url)
    assert current_revision(store.engine) == SCHEMA_REVISION
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    store.close()
    with pytest.raises(SchemaVersionError, match="guidetune db upgrade"):
        StudyStore(store_url)


def test_a_foreign_database_is_refused(store_url):
    from guidetune.storage.engine import make_engine

    engine = make_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE customers (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    with pytest.raises(SchemaVersionError, match="no guidetune schema"):
        StudyStore(store_url)
