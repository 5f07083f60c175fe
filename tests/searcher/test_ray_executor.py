"""The Ray executor on a real local Ray (loopback only): workers, fractional GPUs on a node that
declares two (no real GPU), lost workers, failing trials, and the same study with 1 and 3 workers."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import ray_workers
from study_runner import make_spec

from guidetune.guidance import TFGParams
from guidetune.searcher.errors import SearchError
from guidetune.searcher.executors import TrialGroup
from guidetune.searcher.ray_executor import RayExecutor, assigned_device, connect_ray
from guidetune.searcher.service import StudyService
from guidetune.storage import StudyState, StudyStore, TrialState

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    pids = tmp_path_factory.mktemp("worker-pids")
    os.environ["GUIDETUNE_TEST_PIDS"] = str(pids)          # inherited by the workers of the Ray started below
    connect_ray(None, num_cpus=2, num_gpus=2)               # two declared GPUs, none real
    ray.cloudpickle.register_pickle_by_value(ray_workers)   # the fault-injecting workers travel by value
    yield pids
    ray.shutdown()


def test_the_device_is_the_assigned_gpu_never_cuda0_by_assumption():
    assert assigned_device([]) == "cpu"
    assert assigned_device(["1"], cuda_available=False) == "cpu"
    assert assigned_device(["3"], cuda_available=True, visible="3") == "cuda:0"       # Ray narrowed the view
    assert assigned_device(["3"], cuda_available=True, visible="1,3") == "cuda:1"
    assert assigned_device(["2"], cuda_available=True, visible="") == "cuda:2"        # every device visible


def _store(tmp_path) -> StudyStore:
    return StudyStore(f"sqlite:///{tmp_path / 'studies.db'}")


def _trials(store: StudyStore, name: str):
    """The trials a study ran (proposals left PENDING when the budget ran out depend on how many slots
    were free when it asked, so they are not compared)."""
    study = store.get_study(name)
    return {t.number: (t.params, t.n_samples, t.seed, t.state, t.result.validity if t.result else None)
            for t in store.trials(study.id) if t.state.is_finished}


@pytest.mark.parametrize("searcher", ["beam", "grid"])
def test_one_and_three_workers_give_the_same_study(local_ray, tmp_path, searcher):
    store = _store(tmp_path)
    service = StudyService(store)
    runs = {}
    for name, kind, workers in (("local", "local", 1), ("ray-1", "ray", 1), ("ray-3", "ray", 3)):
        spec = service.build_spec("gmm-inverse", "1.5", searcher, n_samples=16, budget_samples=256, seed=3,
                                  num_cpus=0.5, max_concurrent=workers)
        service.create_or_continue(spec, name)
        service.run(name, executor=kind)
        runs[name] = _trials(store, name)
    assert runs["ray-1"].keys() == runs["local"].keys() == runs["ray-3"].keys()
    for number, (params, n, seed, state, validity) in runs["local"].items():
        for other in ("ray-1", "ray-3"):
            p2, n2, s2, st2, v2 = runs[other][number]
            assert (p2, n2, s2, st2) == (params, n, seed, state) and v2 == pytest.approx(validity, abs=1e-9)
    studies = [store.get_study(n) for n in runs]
    assert len({(s.samples_spent, s.best_number) for s in studies}) == 1 and studies[0].samples_spent <= 256
    workers = {t.worker for t in store.trials(store.get_study("ray-3").id) if t.state.is_finished}
    assert 1 < len(workers) <= 3 and all(w.startswith("ray-actor:") for w in workers)


def test_quarter_gpus_pack_four_workers_on_each_declared_gpu(local_ray):
    executor = RayExecutor("gmm-inverse", "1.5", capacity=8, num_cpus=0.25, num_gpus=0.25)
    groups = [TrialGroup((i,), (TFGParams(rho=0.001 * (i + 1), mu=0.001),), 8, i) for i in range(8)]
    for g in groups:
        executor.worker_for(g)
        executor.submit(g)
    assert executor.in_flight() == 8                    # all eight fit at once: 2 GPUs / 0.25
    outcomes = []
    while executor.in_flight():
        outcomes += executor.wait()
    assert sorted(o.group.numbers[0] for o in outcomes) == list(range(8))
    assert all(o.error is None and o.results[0].ok for o in outcomes)
    described = ray.get([a.describe.remote() for a in executor._idle])
    assert len(described) == 8 and len({d["pid"] for d in described}) == 8
    by_gpu = {g: sum(d["gpu_ids"] == [g] for d in described) for g in ("0", "1")}
    assert by_gpu == {"0": 4, "1": 4}
    assert {d["device"] for d in described} == {"cpu"}   # declared GPUs, no CUDA: the worker says so and uses the CPU
    executor.close()


def test_more_gpus_than_the_cluster_has_are_refused_at_once(local_ray):
    with pytest.raises(SearchError, match="asks for 4 GPU per trial group but the Ray cluster has 2 GPUs"):
        RayExecutor("gmm-inverse", "1.5", num_gpus=4)


def test_a_worker_killed_mid_trial_is_replaced_and_its_group_rerun(local_ray, tmp_path):
    store = _store(tmp_path)
    service = StudyService(store)
    spec = make_spec(service, "beam")
    service.create_or_continue(spec, "reference")
    service.run("reference", executor="local")
    service.create_or_continue(spec, "killed")
    executor = RayExecutor(spec.task, spec.target, capacity=1, num_cpus=0.5, worker_class=ray_workers.SlowWorker)
    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _run_catching(service, "killed", executor, errors))
    for f in local_ray.glob("*.pid"):
        f.unlink()
    thread.start()
    deadline = time.monotonic() + 120
    while not list(local_ray.glob("*.pid")) and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = int(next(local_ray.glob("*.pid")).read_text())
    os.kill(victim, signal.SIGKILL)                     # the worker process dies mid-trial
    thread.join(timeout=600)
    assert not errors, errors
    killed, reference = _trials(store, "killed"), _trials(store, "reference")
    assert killed.keys() == reference.keys()
    assert all(killed[n][:4] == reference[n][:4] and killed[n][4] == pytest.approx(reference[n][4], abs=1e-9)
               for n in killed)
    study = store.get_study("killed")
    assert study.state is StudyState.COMPLETE and study.samples_spent == store.get_study("reference").samples_spent
    attempts = [t.attempt for t in store.trials(study.id) if t.state is TrialState.COMPLETE]
    assert max(attempts) == 2 and attempts.count(2) >= 1   # the lost group ran again, recorded as attempt 2


def _run_catching(service, name, executor, errors):
    try:
        service.run(name, executor=executor)
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


def test_failing_and_diverging_trials_fail_with_their_reason_and_the_study_goes_on(local_ray, tmp_path):
    executor = RayExecutor("gmm-inverse", "1.5", capacity=1, num_cpus=0.5)
    group = TrialGroup((0, 1), (TFGParams(rho=1e9, mu=1e9), TFGParams(rho=0.001)), 16, 0)
    executor.worker_for(group)
    executor.submit(group)
    (outcome,) = executor.wait()
    diverged, fine = outcome.results
    assert "non-finite" in diverged.failed and fine.ok
    executor.close()

    store = _store(tmp_path)
    service = StudyService(store)
    spec = service.build_spec("gmm-inverse", "1.5", "beam", n_samples=16, budget_samples=160, seed=3, num_cpus=0.5)
    service.create_or_continue(spec, "raising")
    raising = RayExecutor(spec.task, spec.target, capacity=1, num_cpus=0.5, worker_class=ray_workers.RaisingWorker)
    outcome = service.run("raising", executor=raising)
    failed = [t for t in outcome.trials if t.state is TrialState.FAILED]
    complete = [t for t in outcome.trials if t.state is TrialState.COMPLETE]
    assert failed and complete and all("predictor crashed" in t.fail_reason for t in failed)
    assert outcome.stop_reason in ("budget_samples", "finished") and outcome.best in complete
