"""A multi-node Ray cluster in a loopback-only network namespace (as root: ``unshare --net``, then
``ip link set lo up``); PostgreSQL is reached there over its Unix socket. Skips, with the reason,
where a namespace cannot be made."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pgdb import create_pg_database, drop_pg_database, pg_available

SCENARIO = Path(__file__).with_name("ray_cluster_scenario.py")


def _namespace_reason() -> str | None:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "needs unshare and ip (util-linux, iproute2)"
    probe = subprocess.run(["unshare", "--net", "sh", "-c", "ip link set lo up"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"cannot make a network namespace here ({probe.stderr.strip()})"


@pytest.mark.slow
def test_a_node_killed_mid_study_loses_nothing_and_doubles_nothing():
    reason = _namespace_reason() or pg_available()
    if reason:
        pytest.skip(reason)
    url = create_pg_database()
    name = url.rsplit("/", 1)[1]
    inside = f"postgresql+psycopg://postgres@/{name}?host=/var/run/postgresql"   # the Unix socket
    try:
        out = subprocess.run(["unshare", "--net", "sh", "-c",
                              f'ip link set lo up && exec "{sys.executable}" "{SCENARIO}" "{inside}"'],
                             capture_output=True, text=True, timeout=600)
    finally:
        drop_pg_database(url)
    assert out.returncode == 0, out.stderr[-3000:]
    # Ray's processes print to the same stdout: the summary is the one JSON line
    summary = json.loads(next(line for line in out.stdout.splitlines() if line.startswith('{"same_trials"')))
    assert summary["killed"]["running"], summary          # a node died with trials in flight
    assert summary["state"] == "complete" and summary["same_trials"], summary
    spent, reference = summary["samples_spent"]
    assert spent == reference <= summary["budget"]
    assert summary["max_attempt"] >= 2 and len(summary["workers"]) >= 2   # the lost group ran again elsewhere
