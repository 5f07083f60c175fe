"""The compose topology without containers: the very commands and environments of
docker/compose.yaml as separate processes in a loopback-only network namespace (as root:
``unshare --net``, then ``ip link set lo up``), PostgreSQL over its Unix socket. A study submitted
over HTTP before any worker joined waits, queued, and then survives a worker node killed mid-study and completes with its exact budget, nothing lost
or doubled. Skips, with the reason, where a namespace cannot be made."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pgdb import create_pg_database, drop_pg_database, pg_available

SCENARIO = Path(__file__).with_name("topology_scenario.py")


def _namespace_reason() -> str | None:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "needs unshare and ip (util-linux, iproute2)"
    probe = subprocess.run(["unshare", "--net", "sh", "-c", "ip link set lo up"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"cannot make a network namespace here ({probe.stderr.strip()})"


@pytest.mark.slow
def test_compose_topology_survives_a_worker_node_killed_mid_study(tmp_path):
    reason = _namespace_reason() or pg_available()
    if reason:
        pytest.skip(reason)
    url = create_pg_database()
    name = url.rsplit("/", 1)[1]
    inside = f"postgresql://postgres@/{name}?host=/var/run/postgresql"   # the Unix socket
    try:
        out = subprocess.run(["unshare", "--net", "sh", "-c",
                              f'ip link set lo up && exec "{sys.executable}" "{SCENARIO}" "{inside}" "{tmp_path}"'],
                             capture_output=True, text=True, timeout=900)
    finally:
        drop_pg_database(url)
    logs = "".join(f"\n--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(tmp_path.glob("*.log")))
    assert out.returncode == 0, out.stderr[-3000:] + logs
    summary = json.loads(next(line for line in out.stdout.splitlines() if line.startswith('{"same_trials"')))
    assert summary["waited"]["state"] == "queued" and "Ray cluster has 0" in summary["waited"]["reason"], summary
    assert summary["state"] == "complete" and summary["same_trials"], summary
    spent, reference = summary["samples_spent"]
    assert spent == reference <= summary["budget"]
    assert summary["told_numbers_unique"]
    assert summary["killed"]["running"], summary   # the node died with trials in flight ...
    # ... and they were re-run (attempt 2) and finished by another worker than the one that died with them
    assert summary["max_attempt"] >= 2 and summary["rerun"], summary
    assert all(then != now and now for _, _, then, now in summary["rerun"]), summary
