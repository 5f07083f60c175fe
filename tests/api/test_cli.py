"""The ``guidetune`` command line, run as a user would (subprocess of the installed entry point)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

CLI = [shutil.which("guidetune") or "guidetune"] if shutil.which("guidetune") else [sys.executable, "-m", "guidetune.api.cli"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600)


def test_tasks_lists_every_bundled_task():
    out = run("tasks", "--json")
    assert out.returncode == 0, out.stderr
    names = {row["task"] for row in json.loads(out.stdout)}
    assert names == {"digits-label", "digits-combined", "digits-inverse", "gmm-inverse"}


def test_search_exports_a_config_that_sample_and_evaluate_read(tmp_path):
    export = tmp_path / "best.json"
    out = run("search", "--task", "gmm-inverse", "--target", "1.5", "--searcher", "beam", "--budget-samples", "256",
              "--n-samples", "32", "--seed", "1", "--json", "--quiet", "--export", str(export))
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["samples_spent"] <= 256 and summary["trials"]["complete"] >= 4
    assert summary["best"]["metrics"]["validity"] > -1.0      # unguided sits near −1.7 on this target
    ev = run("evaluate", "--task", "gmm-inverse", "--target", "1.5", "--config", str(export), "--n", "32", "--seed", "1",
             "--json", "--quiet")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["config"] == summary["best"]["params"]
    npz = tmp_path / "s.npz"
    smp = run("sample", "--task", "gmm-inverse", "--target", "1.5", "--config", str(export), "--n", "10", "--out", str(npz), "--quiet")
    assert smp.returncode == 0, smp.stderr
    assert np.load(npz)["samples"].shape == (10, 2)


@pytest.mark.parametrize("args,message", [
    (("--searcher", "annealing"), "unknown searcher"),
    (("--budget-samples", "8"), "cannot pay for one trial"),
    (("--task", "mnist"), "unknown task"),
    (("--target", "x"), "observed values"),
])
def test_search_rejects_bad_input_before_sampling(args, message):
    base = {"--task": "gmm-inverse", "--target": "1.5", "--searcher": "beam", "--budget-samples": "256"}
    base.update(dict(zip(args[::2], args[1::2])))
    out = run("search", *[x for kv in base.items() for x in kv], "--quiet")
    assert out.returncode == 2 and message in out.stderr, out.stderr


@pytest.mark.slow
def test_demo_runs_the_main_job_end_to_end(tmp_path):
    out = run("demo", "--out", str(tmp_path), "--budget-samples", "1200", "--quiet")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["samples_spent"] <= 1200      # a hard cap: the unguided yardstick is counted too
    check = report["fresh_seed_check (64 samples)"]
    assert check["best config"]["judge_accuracy"] > check["unguided"]["judge_accuracy"] + 0.3
    assert (tmp_path / "samples.png").stat().st_size > 1000
    assert json.loads((tmp_path / "best_config.json").read_text())["format"] == "guidetune.config/1"


def test_search_writes_an_optuna_study_that_optuna_opens(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 'study.db'}"
    out = run("search", "--task", "gmm-inverse", "--target", "0.0", "--searcher", "random", "--budget-samples", "96",
              "--n-samples", "16", "--quiet", "--optuna-storage", url, "--optuna-study", "demo-study")
    assert out.returncode == 0, out.stderr
    study = optuna.load_study(study_name="demo-study", storage=url)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) >= 4 and all(0.0 <= t.value <= 1.0 for t in complete)  # groups that would overrun 96 never start


def test_search_respects_a_denoiser_pass_budget():
    out = run("search", "--task", "gmm-inverse", "--target", "1.5", "--searcher", "beam", "--budget-passes", "40000",
              "--n-samples", "16", "--json", "--quiet")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["stop_reason"] in ("budget_passes", "finished")
    assert 0 < summary["denoiser_passes_spent"] <= 40000
    none = run("search", "--task", "gmm-inverse", "--target", "1.5", "--quiet")
    assert none.returncode == 2 and "give a budget" in none.stderr
