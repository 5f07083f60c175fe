"""Run inside a loopback-only network namespace (see test_ray_cluster.py): a Ray cluster of a head and
two worker nodes, a beam study on it over the given store; one worker node is killed mid-study and a
new one added. Prints a JSON summary comparing the study with the same study run without Ray.

    python ray_cluster_scenario.py STORE_URL
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

os.environ.update(RAY_health_check_period_ms="500", RAY_health_check_failure_threshold="3",
                  RAY_health_check_timeout_ms="500", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")

import ray  # noqa: E402
from ray._private import ray_constants  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from busy_nodes import busy_roots, kill_tree  # noqa: E402

from guidetune.searcher.service import StudyService  # noqa: E402
from guidetune.storage import StudyStore, TrialState  # noqa: E402

NODE = dict(num_cpus=1, object_store_memory=150 * 1024 * 1024)


def main(url: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=0, object_store_memory=150 * 1024 * 1024))
    workers = [cluster.add_node(**NODE) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, logging_level="warning")
    store = StudyStore(url)
    service = StudyService(store)
    # the study the scenario was timed with: no fidelity yardstick, no confirmation (both tested elsewhere)
    spec = service.build_spec("gmm-inverse", "1.5", "beam", n_samples=16, budget_samples=256, seed=3,
                              num_cpus=1, max_concurrent=2, objective="validity", confirm_fraction=0.0)
    service.create_or_continue(spec, "without-ray")
    service.run("without-ray", executor="local")
    study = service.create_or_continue(spec, "on-cluster")
    killed: dict = {}
    errors: list[BaseException] = []

    def run() -> None:
        try:
            service.run("on-cluster", executor="ray")
        except BaseException as exc:  # noqa: BLE001 - reported in the summary
            errors.append(exc)
    runner = threading.Thread(target=run)
    runner.start()
    # Ray's Cluster adds nodes from the main thread only: the study runs in the thread above
    deadline = time.monotonic() + 240
    running: list = []
    raylets = [node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid for node in workers]
    victim = workers[0]
    while runner.is_alive() and time.monotonic() < deadline:   # kill a node with a group in flight, after a few told
        running = store.trials(study.id, states=[TrialState.RUNNING])
        busy = busy_roots(raylets) if running and store.get_study(study.id).n_told >= 3 else []
        if busy:
            victim = workers[raylets.index(busy[0])]
            break
        time.sleep(0.05)
    kill_tree(raylets[workers.index(victim)])   # its trial workers with it, as a machine's death would
    cluster.remove_node(victim, allow_graceful=False)
    killed.update(at_told=store.get_study(study.id).n_told, running=[t.number for t in running])
    cluster.add_node(**NODE)
    runner.join(timeout=400)
    if errors:
        raise errors[0]

    def trials(name):
        sid = store.get_study(name).id
        return [(t.number, t.params, t.n_samples, t.seed, t.state.value, round(t.result.validity, 9) if t.result else None)
                for t in store.trials(sid)]
    on, off = store.get_study("on-cluster"), store.get_study("without-ray")
    print(json.dumps({
        "same_trials": trials("on-cluster") == trials("without-ray"),
        "samples_spent": [on.samples_spent, off.samples_spent], "budget": spec.budget_samples,
        "state": on.state.value, "killed": killed, "nodes_alive": len([n for n in ray.nodes() if n["Alive"]]),
        "max_attempt": max(t.attempt for t in store.trials(on.id)),
        "workers": sorted({t.worker for t in store.trials(on.id) if t.worker}),
    }))
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
