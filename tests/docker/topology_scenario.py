"""Run inside a loopback-only network namespace (see test_topology.py): the compose topology as plain
processes. The head and worker commands and their environments are read from docker/compose.yaml
(hosts ``postgres`` and ``head`` become the PostgreSQL socket and 127.0.0.1); then a study is
submitted over HTTP with the Python client, a worker node is killed mid-study, a new one added, and
the study is compared with the same spec run without Ray. Prints one JSON summary line.

    python topology_scenario.py STORE_URL WORKDIR
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from busy_nodes import busy_roots, kill_tree  # noqa: E402

COMPOSE = ROOT / "docker" / "compose.yaml"
BIN = Path(sys.executable).parent


def service_env(service: dict, values: dict[str, str], overrides: dict[str, str]) -> dict[str, str]:
    """The service's environment with ``${VAR:-default}`` / ``${VAR:?msg}`` filled from ``values``."""
    def fill(text: str) -> str:
        def one(m: re.Match) -> str:
            name, op, rest = m.group(1), m.group(2), m.group(3)
            if name in values:
                return values[name]
            if op == ":-":
                return rest
            raise KeyError(f"compose needs {name}: {rest}")
        return re.sub(r"\$\{(\w+)(:-|:\?)?([^}]*)\}", one, text)
    env = {k: fill(str(v)) for k, v in service.get("environment", {}).items()}
    return env | overrides


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # each "container" is a session of its own, so killing it kills every process in it
    return subprocess.Popen(command, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)


def kill_container(proc: subprocess.Popen) -> None:
    kill_tree(proc.pid)   # every process of the "container", the trial workers (own process groups) included
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def keep_up(workers: list[subprocess.Popen], command: list[str], env: dict[str, str], work: Path) -> None:
    """compose's ``restart: unless-stopped``: a worker container that exited by itself (a node that
    timed out joining a busy head) is started again; the one the test killed is not in the list."""
    for i, proc in enumerate(workers):
        if proc is not None and proc.poll() is not None:
            workers[i] = start(command, env, work / f"worker{i}-restarted.log")


def main(url: str, workdir: str) -> None:
    work = Path(workdir)
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    values = {"POSTGRES_PASSWORD": "unused-over-the-socket", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    base = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", HOME=str(work / "home"), OMP_NUM_THREADS="1")
    data = work / "data"        # the shared named volume `guidetune-data`
    data.mkdir(parents=True, exist_ok=True)
    head_env = base | service_env(services["head"], values, {
        "GUIDETUNE_DATABASE_URL": url, "GUIDETUNE_HOME": str(data), "GUIDETUNE_HOST": "127.0.0.1"})
    worker_env = base | service_env(services["worker"], values, {
        "GUIDETUNE_RAY_ADDRESS": "127.0.0.1:" + head_env["RAY_PORT"], "GUIDETUNE_HOME": str(data)})
    head_cmd = [str(ROOT / "docker" / services["head"]["command"][0])]
    worker_cmd = [str(ROOT / "docker" / services["worker"]["command"][0])]
    port = head_env["GUIDETUNE_PORT"]
    server = f"http://127.0.0.1:{port}"

    head = start(head_cmd, head_env, work / "head.log")
    workers = []
    try:
        deadline = time.monotonic() + 180
        while True:   # the compose health check of `head`, then workers start (depends_on: service_healthy)
            if head.poll() is not None:
                raise RuntimeError("head exited:\n" + (work / "head.log").read_text()[-3000:])
            try:
                if httpx.get(server + "/healthz", timeout=2).json()["status"] == "ok":
                    break
            except (httpx.TransportError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("head not healthy:\n" + (work / "head.log").read_text()[-3000:])
            time.sleep(0.5)
        token = subprocess.run(["guidetune", "token", "create", "--owner", "ops"], env=head_env, capture_output=True,
                               text=True, check=True).stdout.strip()

        sys.path.insert(0, str(ROOT))
        from guidetune.api.client import Client
        from guidetune.searcher.service import StudyService
        from guidetune.storage import StudyStore, TrialState

        # validity, no confirmation: the scenario's timing (trials in flight on the node that dies) was set with
        # this study; the objective and the confirmation are tested elsewhere
        spec = dict(task="gmm-inverse", target="1.5", searcher="beam", n_samples=16, budget_samples=256, seed=3,
                    max_concurrent=2, objective="validity", confirm_fraction=0.0)
        store = StudyStore(url)
        with Client(server, token) as client:
            # submitted before any worker joined (the API is healthy first): it waits, queued, saying why
            study = client.create_study(**spec, name="on-cluster")
            for status in client.watch(study["id"], interval=0.2, timeout=120):
                if "waiting for the cluster" in (status["stop_reason"] or ""):
                    break
            waited = {"state": status["state"], "reason": status["stop_reason"]}
            workers = [start(worker_cmd, worker_env, work / f"worker{i}.log") for i in range(2)]
            running: dict[int, str] = {}   # trial number -> the worker (Ray actor) running it when the node died
            victim = 0
            for status in client.watch(study["id"], interval=0.1, timeout=300):
                keep_up(workers, worker_cmd, worker_env, work)
                if status["trials"]["complete"] >= 3:
                    running = {t.number: t.worker for t in store.trials(study["id"], states=[TrialState.RUNNING])}
                    busy = busy_roots([w.pid for w in workers])   # the node the running group is on
                    if running and busy:
                        victim = [w.pid for w in workers].index(busy[0])
                        break
                if status["state"] in ("complete", "failed", "cancelled"):
                    break
            kill_container(workers[victim])                              # a worker node dies mid-study
            killed_proc = workers.pop(victim)
            killed = {"at_complete": status["trials"]["complete"], "running": sorted(running)}
            workers.append(start(worker_cmd, worker_env, work / "worker2.log"))   # and a new one joins
            for final in client.watch(study["id"], interval=0.5, timeout=400):
                keep_up(workers, worker_cmd, worker_env, work)
            workers.append(killed_proc)

        service = StudyService(store)
        ref = service.create_or_continue(service.build_spec("gmm-inverse", "1.5", "beam", n_samples=16,
                                                            budget_samples=256, seed=3, max_concurrent=2,
                                                            objective="validity", confirm_fraction=0.0), "reference")
        service.run(ref.id, executor="local")

        def trials(sid: int):
            return [(t.number, t.params, t.n_samples, t.seed, t.state.value,
                     round(t.result.validity, 9) if t.result else None) for t in store.trials(sid)]
        on = store.get_study(study["id"])
        print(json.dumps({
            "same_trials": trials(on.id) == trials(ref.id), "state": final["state"],
            "samples_spent": [on.samples_spent, store.get_study(ref.id).samples_spent], "budget": spec["budget_samples"],
            "killed": killed, "waited": waited, "max_attempt": max((t.attempt for t in store.trials(on.id)), default=0),
            "workers": sorted({t.worker for t in store.trials(on.id) if t.worker}),
            # the trials re-run after the kill: (number, attempt, worker when the node died, worker that finished it)
            "rerun": [(t.number, t.attempt, running[t.number], t.worker) for t in store.trials(on.id)
                      if t.number in running and t.attempt >= 2],
            "told_numbers_unique": len({t.number for t in store.told_trials(on.id)}) == len(store.told_trials(on.id)),
        }), flush=True)
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            pass
        for proc in workers + [head]:
            kill_container(proc)
        subprocess.run(["ray", "stop", "--force"], env=base, capture_output=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
