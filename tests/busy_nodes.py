"""Which Ray worker node has a trial group running, read from /proc (Linux): a Ray actor process
titles itself ``ray::TrialWorker.evaluate`` while a group runs in it (``ray::TrialWorker`` when
idle), and it descends from its node's raylet, itself started by the node's ``ray start``.

The multi-node scenarios kill a node only once it is busy, so the study always loses a group in flight,
and they kill it as a container's end kills it: every process of the node at once. Killing only the
node's process group is not that: a Ray worker runs in a process group of its own, outlives its raylet
by a second or so, and can still hand a nearly finished group's results to the driver (measured: the
study then never re-runs anything).
"""

from __future__ import annotations

import os
import signal


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


def kill_tree(root: int) -> None:
    """SIGKILL ``root`` and every process descending from it, the deepest first (the trial workers
    before their raylet), from one snapshot of the process table."""
    procs = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    order, todo = [], [root]
    while todo:
        pid = todo.pop()
        order.append(pid)
        todo.extend(children.get(pid, []))
    for pid in reversed(order):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
