"""The ``guidetune`` command line, run as a user would (subprocess of the installed entry point); the
many refusals of bad flags run ``main`` in-process (the same code path, without 4 s of start-up each)."""

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


def run_in_process(capsys, *args: str) -> subprocess.CompletedProcess:
    """``guidetune ARGS`` through ``main`` in this process; an uncaught exception fails the test."""
    from guidetune.api.cli import main

    try:
        code = main(list(args))
    except SystemExit as exc:          # argparse's usage errors
        code = exc.code
    out = capsys.readouterr()
    return subprocess.CompletedProcess(["guidetune", *args], code, out.out, out.err)


def test_the_cli_default_searcher_is_the_library_default():
    from guidetune.api import cli
    from guidetune.searcher.base import DEFAULT_SEARCHER, SEARCHER_NAMES

    assert cli.DEFAULT_SEARCHER == DEFAULT_SEARCHER
    search = cli.build_parser().parse_args(["search", "--task", "gmm-inverse", "--target", "1.5"])
    assert search.searcher == DEFAULT_SEARCHER
    help_text = cli.build_parser()._subparsers._group_actions[0].choices["search"].format_help()
    assert all(name in help_text for name in SEARCHER_NAMES)


def test_tasks_lists_every_bundled_task():
    out = run("tasks", "--json")
    assert out.returncode == 0, out.stderr
    names = {row["task"] for row in json.loads(out.stdout)}
    assert names == {"digits-label", "digits-combined", "digits-inverse", "gmm-inverse"}


def test_search_exports_a_config_that_sample_and_evaluate_read(tmp_path):
    export = tmp_path / "best.json"
    out = run("search", "--task", "gmm-inverse", "--target", "1.5", "--searcher", "beam", "--budget-samples", "256",
              "--n-samples", "32", "--seed", "1", "--json", "--quiet", "--export", str(export), "--executor", "local")
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


def test_search_says_its_objective_and_confirms_its_best_on_fresh_seeds(tmp_path):
    storage = ["--storage", f"sqlite:///{tmp_path / 's.db'}"]
    common = ("search", "--task", "gmm-inverse", "--target", "1.5", "--searcher", "beam", "--budget-samples", "480",
              "--n-samples", "32", "--quiet", "--executor", "local", *storage)
    out = run(*common)
    assert out.returncode in (0, 3), out.stderr          # 3: the constraint fails on fresh seeds (said so)
    assert "objective constrained: maximise validity with fidelity FD ≤ 2 × the unguided model's" in out.stdout
    assert "fresh seeds: score" in out.stdout and "the search saw" in out.stdout
    raw = run(*common, "--json").stdout   # the same command: the stored, finished study
    summary = json.loads(raw)
    c = summary["confirmation"]
    assert "±" in c["summary"] and "\\u00b1" not in raw      # printed as a person reads it, not escaped
    assert summary["objective"] == "constrained" and summary["max_fd_ratio"] == 2.0
    assert c["state"] == "done" and c["replicates"] >= 2 and len(c["candidates"]) >= 1
    assert summary["samples_spent"] <= 480 and c["search_samples"] <= 480 - 96     # 20 % held back
    spent_confirming = sum(r["n_samples"] for r in c["candidates"])
    assert summary["samples_spent"] == c["search_samples"] + spent_confirming
    yardstick = summary["yardstick_samples"]
    assert yardstick >= 32        # the constrained objective's unguided yardstick, counted apart from the search
    assert (f"the unguided yardstick {yardstick}, the search {c['search_samples'] - yardstick} (stopped: "
            in out.stdout and f"the fresh-seed confirmation {spent_confirming}" in out.stdout), out.stdout
    assert summary["best"]["confirmed"]["number"] == summary["best"]["study"]["trial"]
    assert (out.returncode == 3) == (summary["best"]["confirmed"]["constraint"] > 0)


@pytest.mark.parametrize("args,message", [
    (("--searcher", "annealing"), "unknown searcher"),
    (("--budget-samples", "8"), "cannot pay for one trial"),
    (("--task", "mnist"), "unknown task"),
    (("--target", "x"), "observed values"),
])
def test_search_rejects_bad_input_before_sampling(capsys, args, message):
    base = {"--task": "gmm-inverse", "--target": "1.5", "--searcher": "beam", "--budget-samples": "256"}
    base.update(dict(zip(args[::2], args[1::2])))
    out = run_in_process(capsys, "search", *[x for kv in base.items() for x in kv], "--quiet")
    assert out.returncode == 2 and message in out.stderr, out.stderr


@pytest.mark.slow
def test_demo_runs_the_main_job_end_to_end(tmp_path):
    out = run("demo", "--out", str(tmp_path), "--budget-samples", "1200", "--quiet")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["server"].startswith("http://127.0.0.1:")   # it went through a real `guidetune serve`
    assert report["samples_spent"] <= 1200      # a hard cap: the unguided yardstick is counted too
    check = report["fresh_seed_check (64 samples)"]
    assert check["best config"]["judge_accuracy"] > check["unguided"]["judge_accuracy"] + 0.3
    assert (tmp_path / "samples.png").stat().st_size > 1000
    assert json.loads((tmp_path / "best_config.json").read_text())["format"] == "guidetune.config/1"


def test_the_demo_server_stops_when_the_demo_is_killed(tmp_path):
    """SIGKILL cannot run the demo's ``finally``: its ``guidetune serve`` child must stop by itself."""
    import os
    import signal
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = ("import sys, time; from pathlib import Path; from guidetune.api.demo import _start_server; "
              f"server = _start_server({port}, None, 'local', Path(sys.argv[1])); "
              "print(server.proc.pid, flush=True); time.sleep(600)")
    demo = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "server.log")], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "GUIDETUNE_HOME": str(tmp_path)})
    try:
        server_pid = int(demo.stdout.readline())      # healthy once printed
    finally:
        demo.kill()
        demo.wait()

    def alive(pid: int) -> bool:                      # a zombie that nobody reaps has stopped too
        try:
            return "\nState:\tZ" not in open(f"/proc/{pid}/status").read()
        except FileNotFoundError:
            return False
    deadline = time.monotonic() + 60
    while alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    stopped = not alive(server_pid)
    if not stopped:
        os.kill(server_pid, signal.SIGKILL)
    assert stopped, "the server outlived the killed demo"
    assert "guidetune serve stopped" in (tmp_path / "server.log").read_text()   # a graceful stop, not a kill


def test_search_writes_an_optuna_study_that_optuna_opens(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 'study.db'}"
    out = run("search", "--task", "gmm-inverse", "--target", "0.0", "--searcher", "random", "--budget-samples", "96",
              "--n-samples", "16", "--objective", "validity", "--quiet", "--optuna-storage", url, "--optuna-study",
              "demo-study", "--executor", "local")
    assert out.returncode == 0, out.stderr
    study = optuna.load_study(study_name="demo-study", storage=url)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    # the search's share (96 − 32 held back for the confirmation) pays for 4 trials; the confirmation's re-runs
    # of the same configs are not Optuna trials
    assert len(complete) == 4 and all(0.0 <= t.value <= 1.0 for t in complete)


def test_search_respects_a_denoiser_pass_budget():
    out = run("search", "--task", "gmm-inverse", "--target", "1.5", "--searcher", "beam", "--budget-passes", "40000",
              "--n-samples", "16", "--json", "--quiet", "--executor", "local")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["stop_reason"] in ("budget_passes", "finished")
    assert 0 < summary["denoiser_passes_spent"] <= 40000
    none = run("search", "--task", "gmm-inverse", "--target", "1.5", "--quiet")
    assert none.returncode == 2 and "give a budget" in none.stderr


def test_every_search_is_a_stored_study_that_studies_show_and_export_read(tmp_path):
    import yaml

    url = f"sqlite:///{tmp_path / 'studies.db'}"
    args = ("search", "--task", "gmm-inverse", "--target", "1.5", "--searcher", "beam", "--budget-samples", "128",
            "--n-samples", "16", "--storage", url, "--study", "first", "--json", "--quiet", "--executor", "local")
    out = run(*args)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    again = run(*args)                                   # the same command: the stored study, nothing re-run
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["best"] == summary["best"]
    assert json.loads(again.stdout)["samples_spent"] == summary["samples_spent"] <= 128
    listing = run("studies", "--storage", url, "--json")
    assert [s["name"] for s in json.loads(listing.stdout)] == ["first"]
    show = run("study", "show", "first", "--storage", url, "--json", "--trials")
    status = json.loads(show.stdout)
    assert status["state"] == "complete" and status["best"]["number"] == summary["best"]["study"]["trial"]
    assert len(status["trial_list"]) == sum(status["trials"].values())
    for fmt in ("json", "yaml"):
        path = tmp_path / f"best.{fmt}"
        exp = run("export", "first", "--storage", url, "--format", fmt, "--out", str(path))
        assert exp.returncode == 0, exp.stderr
        record = yaml.safe_load(path.read_text())
        assert record["params"] == summary["best"]["params"] and "TFGParams.from_dict" in record["python"]
        ev = run("evaluate", "--task", "gmm-inverse", "--target", "1.5", "--config", str(path), "--n", "8", "--json",
                 "--quiet")
        assert ev.returncode == 0 and json.loads(ev.stdout)["config"] == record["params"], ev.stderr
    snippet = yaml.safe_load((tmp_path / "best.yaml").read_text())["python"]
    scope: dict = {}
    exec(snippet, scope)                                # the exported snippet runs as printed
    assert tuple(scope["x"].shape) == (16, 2)


def test_a_config_exported_for_one_task_is_refused_on_another(tmp_path):
    record = {"format": "guidetune.config/1", "task": "digits-label", "target": "3", "params": {"rho": 2.0}}
    path = tmp_path / "digits.json"
    path.write_text(json.dumps(record))
    out = run("evaluate", "--task", "gmm-inverse", "--target", "1.5", "--config", str(path), "--quiet")
    assert out.returncode == 2 and "exported for task 'digits-label'" in out.stderr
    missing = run("sample", "--task", "gmm-inverse", "--target", "1.5", "--config", str(tmp_path / "nope.json"),
                  "--out", str(tmp_path / "s.npz"), "--quiet")
    assert missing.returncode == 2 and "no such file" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.parametrize("args,message", [
    (("--n", "8"), "unrecognized arguments: --n 8"),
    (("--storage", "sqlite:////no/such/dir/x.db"), "--storage"),
    (("--storage", "mysql://localhost/x"), "not supported"),
    (("--optuna-storage", "not-a-url"), "--optuna-storage 'not-a-url' is not a database URL"),
    (("--export", "/no/such/dir/best.json"), "--export"),
    (("--executor", "local", "--ray-address", "127.0.0.1:6379"), "--ray-address needs --executor ray"),
    (("--searcher-option", "oops"), "'oops' is not KEY=VALUE"),
    (("--searcher-option", "colour=3"), "does not take the options {'colour': 3}"),
    (("--searcher", "beam-mf", "--searcher-option", "start=sideways"), "start must be 'low'"),
    (("--confirm-fraction", "1.5"), "confirmation fraction must be in (0, 1)"),
    (("--confirm-top", "0"), "--confirm-top must be a positive integer"),
])
def test_search_flags_are_checked_before_sampling(capsys, args, message):
    out = run_in_process(capsys, "search", "--task", "gmm-inverse", "--target", "1.5", "--budget-samples", "64", *args,
                         "--quiet")
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_db_upgrade_and_current(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    before = run("db", "current", "--storage", url)
    assert before.returncode == 0 and "schema empty" in before.stdout
    up = run("db", "upgrade", "--storage", url)
    assert up.returncode == 0 and "empty -> 0003" in up.stdout
    assert "0003 (up to date)" in run("db", "current", "--storage", url).stdout


def test_db_upgrade_migrates_a_0001_store_and_keeps_its_studies(tmp_path):
    from alembic import command
    from sqlalchemy import text

    from guidetune.storage.engine import _alembic_config, make_engine
    from guidetune.storage.store import StudyStore

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    with engine.connect() as conn, conn.begin():
        command.upgrade(_alembic_config(conn), "0001")     # a store made by the previous release
        conn.execute(text("INSERT INTO studies (name, owner, spec, spec_version, state, created_at, samples_spent, "
                          "passes_spent, n_trials, n_told, n_running, n_complete, n_failed, n_pruned, cancel_requested) "
                          "VALUES ('old', 'local', :spec, 1, 'complete', '2026-01-01 00:00:00', 64, 0, 0, 0, 0, 0, 0, 0, 0)"),
                     {"spec": '{"task": "gmm-inverse", "target": "1.5", "searcher": "beam", "space": {}}'})
    engine.dispose()
    refused = run("studies", "--storage", url)
    assert refused.returncode == 2 and "guidetune db upgrade" in refused.stderr
    up = run("db", "upgrade", "--storage", url)
    assert up.returncode == 0 and "0001 -> 0003" in up.stdout, up.stdout + up.stderr
    old = StudyStore(url).get_study("old")
    assert old.samples_spent == 64 and old.confirmation is None      # kept; 0003's column added empty
    token = run("token", "create", "--owner", "ops", "--storage", url)
    assert token.returncode == 0 and token.stdout.startswith("gt_")
