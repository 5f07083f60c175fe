"""``make demo``: the main job through the real service on the embedded defaults — start the server,
submit a search of guidance hyperparameters for the bundled digits model and a target class, watch
it, export the best configuration, sample with it, and print the dashboard address."""

from __future__ import annotations

import ctypes
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from guidetune.evaluators.config_io import json_safe
from guidetune.evaluators.evaluate import evaluate
from guidetune.evaluators.tasks import make_task
from guidetune.guidance import TFGParams, sample
from guidetune.searcher.base import DEFAULT_SEARCHER
from guidetune.searcher.errors import SearchError
from guidetune.storage.store import StudyStore

from .client import Client
from .server import create_token


def run_demo(out: Path, *, task_name: str = "digits-label", target: str = "3", budget_samples: int = 1600,
             searcher: str = DEFAULT_SEARCHER, objective: str = "constrained", max_fd_ratio: float = 2.0,
             n_samples: int = 64, seed: int = 0, storage: str | None = None, executor: str = "ray",
             max_concurrent: int = 2, port: int = 8321, keep_serving: bool = False, progress: bool = True) -> dict:
    """The main job through the real service: start ``guidetune serve`` (the embedded defaults: the
    SQLite store under GUIDETUNE_HOME and a local Ray), create a token, submit the study, watch it,
    export the best configuration, sample with it on fresh seeds and draw the pictures."""
    out.mkdir(parents=True, exist_ok=True)
    store = StudyStore(storage)
    token = create_token(store, "demo")
    server = _start_server(port, storage, executor, out / "server.log")
    dashboard = f"{server.url}/#token={token}"
    try:
        with Client(server.url, token) as client:
            study = client.create_study(task=task_name, target=target, searcher=searcher, objective=objective,
                                        max_fd_ratio=max_fd_ratio, n_samples=n_samples, budget_samples=budget_samples,
                                        seed=seed, max_concurrent=max_concurrent)
            print(f"study {study['id']} submitted; dashboard: {dashboard}", file=sys.stderr, flush=True)
            status = client.watch_progress(study["id"], show=progress)
            if status["state"] != "complete" or status["best"] is None:
                raise SearchError(f"the demo study ended {status['state']} ({status['stop_reason']}) without a best")
            export = client.export(study["id"])
            trials = client.trials(study["id"], limit=1000)["trials"]
    finally:
        if not keep_serving:
            server.stop()
    record = export["config"]
    (out / "best_config.json").write_text(json.dumps(record, indent=2))
    best = TFGParams.from_dict(record["params"])

    task = make_task(task_name)
    check_seed = seed + 50_000   # fresh seeds: the reported numbers are not the ones the search selected on
    unguided_result, = evaluate(task, target, [TFGParams()], 64, check_seed)
    best_result, = evaluate(task, target, [best], 64, check_seed)
    yardstick = task.fidelity_yardstick(target, 64, check_seed)[0]
    seeds = range(check_seed, check_seed + 32)
    log_prob = task.guide_log_prob(target, list(seeds))
    grids = {"unguided": sample(task.model, None, TFGParams(), shape=task.shape, seeds=seeds, clip_x0=task.clip_x0),
             "best config": sample(task.model, log_prob, best, shape=task.shape, seeds=seeds, clip_x0=task.clip_x0)}
    _save_grids(grids, out / "samples.png", f"{task_name} target {target}: same seeds, unguided vs searched config")
    told = sorted((t for t in trials if t["tell_seq"] is not None), key=lambda t: t["tell_seq"])
    _save_curve(_progress(told), out / "search_progress.png")
    return json_safe({
        "task": task_name, "target": target, "searcher": searcher, "study": status["name"], "study_id": study["id"],
        "server": server.url, "dashboard": dashboard if keep_serving else
        f"stopped with the demo; `guidetune serve` then {server.url}/#token={token} shows it again",
        "storage": store.display_url, "objective": {"kind": status["objective"], "max_fd_ratio": max_fd_ratio},
        "reported_by_the_study": (status["confirmation"] or {}).get("summary"),
        "samples_spent": status["spent"]["samples"], "budget_samples": budget_samples,
        "trials": status["trials"]["complete"], "stop_reason": status["stop_reason"], "notices": status["notices"],
        "best_params": {k: v for k, v in best.to_dict().items() if k in ("rho", "mu", "gamma", "n_recur", "n_iter")},
        "fresh_seed_check (64 samples)": {
            "unguided": {"judge_accuracy": unguided_result.validity, "fidelity_fd": unguided_result.fidelity_fd},
            "best config": {"judge_accuracy": best_result.validity, "guide_accuracy": best_result.guide_validity,
                            "fidelity_fd": best_result.fidelity_fd, "unguided_class_fd_yardstick": yardstick,
                            "fidelity_constraint_holds": bool(best_result.fidelity_fd <= max_fd_ratio * yardstick)},
        },
        "files": [str(out / name) for name in ("best_config.json", "samples.png", "search_progress.png")],
    })


_PR_SET_PDEATHSIG = 1     # <linux/prctl.h>


class _Server:
    def __init__(self, proc: subprocess.Popen, url: str) -> None:
        self.proc, self.url = proc, url

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _stop_with_parent() -> None:
    """In the server's child process, before exec: Linux sends it SIGTERM (a graceful stop: running studies
    pause) when the demo dies, also by SIGKILL, which cannot run the demo's ``finally``. Elsewhere a
    no-op: the demo's ``finally`` is then the only stop."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _start_server(port: int, storage: str | None, executor: str, log: Path) -> _Server:
    """``guidetune serve`` on ``port`` (the next free one when it is taken), healthy, or a clear error."""
    for candidate in range(port, port + 20):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", candidate)) != 0:
                port = candidate
                break
    cmd = [sys.executable, "-m", "guidetune.api.cli", "serve", "--port", str(port), "--executor", executor]
    if storage:
        cmd += ["--storage", storage]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, preexec_fn=_stop_with_parent)
    server = _Server(proc, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SearchError(f"guidetune serve exited ({proc.returncode}); its log {log} says:\n"
                              + log.read_text()[-2000:])
        try:
            if httpx.get(server.url + "/healthz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    server.stop()
    raise SearchError(f"guidetune serve did not become healthy in 180 s; see {log}")


def _progress(told: list[dict]) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(samples spent, score) of every scored trial in the order it was told, and the best so far."""
    points, curve, spent, best = [], [], 0, None
    for t in told:
        spent += t["n_samples"]
        if t["score"] is not None:
            points.append((spent, t["score"]))
            best = t["score"] if best is None else max(best, t["score"])
        if best is not None:
            curve.append((spent, best))
    return points, curve


def _save_grids(grids: dict[str, torch.Tensor], path: Path, title: str) -> None:
    fig, axes = plt.subplots(1, len(grids), figsize=(4.2 * len(grids), 2.6))
    for ax, (name, x) in zip(axes, grids.items()):
        padded = torch.nn.functional.pad(x.clamp(-1, 1), (1, 1, 1, 1), value=-1.0)  # white border per digit
        images = padded.reshape(4, 8, 10, 10).permute(0, 2, 1, 3).reshape(40, 80)
        ax.imshow(images.numpy(), cmap="gray_r", vmin=-1, vmax=1)
        ax.set_title(name)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _save_curve(progress, path: Path) -> None:
    points, curve = progress
    fig, ax = plt.subplots(figsize=(5, 3.2))
    if points:
        ax.scatter(*zip(*points), s=12, color="0.6", label="each trial")
        ax.step(*zip(*curve), where="post", label="best so far")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("samples spent")
    ax.set_ylabel("objective (higher is better;\nbelow 0: fidelity limit broken)")
    ax.set_title("search progress")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
