"""Which Ray worker node has a trial group running, read from /proc (Linux): a Ray actor process
titles itself ``ray::TrialWorker.evaluate`` while a group runs in it (``ray::TrialWorker`` when
idle), and it descends from its node's raylet, itself started by the node's ``ray start``.

The multi-node scenarios kill a node only once it is busy, so the study always loses a group in flight."""

from __future__ import annotations

import os


def _processes() -> dict[int, tuple[int, bytes]]:
    """pid -> (parent pid, command line) of every process still there."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                out[int(entry)] = (ppid, f.read())
        except (OSError, ValueError, IndexError):
            continue   # exited while we read
    return out


def busy_roots(roots: list[int]) -> list[int]:
    """The pids among ``roots`` (a node's raylet, or its ``ray start``) with a trial group running in a descendant."""
    procs = _processes()
    busy = []
    for pid, (_, cmdline) in procs.items():
        if not cmdline.startswith(b"ray::TrialWorker.evaluate"):
            continue
        while pid in procs and pid not in roots and pid > 1:
            pid = procs[pid][0]
        if pid in roots and pid not in busy:
            busy.append(pid)
    return busy
