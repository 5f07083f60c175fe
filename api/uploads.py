"""Uploaded networks on the server: streamed to disk under a size limit, hashed, validated in a
separate process with time and memory limits, stored by SHA-256 under ``GUIDETUNE_HOME/uploads``.

The validation itself is ``guidetune.evaluators.uploads`` (what a file must do); this module only
keeps a bad file away from the service: the subprocess gets a CPU-time and address-space limit and
a wall-clock timeout, and the file is only moved into place once it passed.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from guidetune.storage.engine import guidetune_home

CHUNK = 1 << 20


class UploadRejected(ValueError):
    """A file that failed a check; ``status`` is the HTTP status, the message names the check."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """Per upload: its size, and the validating process's wall-clock/CPU seconds and address space."""

    max_bytes: int = 200 << 20
    seconds: float = 60.0
    memory_bytes: int = 6144 << 20

    @classmethod
    def from_env(cls) -> "Limits":
        """``GUIDETUNE_MAX_UPLOAD_MB``, ``GUIDETUNE_VALIDATE_SECONDS``, ``GUIDETUNE_VALIDATE_MEMORY_MB``."""
        return cls(max_bytes=int(os.environ.get("GUIDETUNE_MAX_UPLOAD_MB", "200")) << 20,
                   seconds=float(os.environ.get("GUIDETUNE_VALIDATE_SECONDS", "60")),
                   memory_bytes=int(os.environ.get("GUIDETUNE_VALIDATE_MEMORY_MB", "6144")) << 20)


def uploads_dir() -> Path:
    path = guidetune_home() / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def receive(source: BinaryIO, limits: Limits) -> tuple[Path, str, int]:
    """Copy an upload to a temporary file in the uploads folder, refusing it past ``max_bytes``;
    returns (temporary path, sha256, size)."""
    digest, size = hashlib.sha256(), 0
    fd, tmp = tempfile.mkstemp(prefix=".incoming-", suffix=".pt", dir=uploads_dir())
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > limits.max_bytes:
                    raise UploadRejected(f"the file is larger than the {limits.max_bytes >> 20} MB upload limit "
                                         "(GUIDETUNE_MAX_UPLOAD_MB on the server)", status=413)
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise UploadRejected("the uploaded file is empty; send the TorchScript file in the multipart field 'file'")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp), digest.hexdigest(), size


def _limit(seconds: float, memory_bytes: int):
    def apply() -> None:   # runs in the child before exec
        cpu = int(seconds) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    return apply


def validate(kind: str, path: Path, meta: dict, limits: Limits) -> dict:
    """Run ``guidetune.evaluators.uploads`` on the file in a child process; what it found, or
    ``UploadRejected`` naming the failed check (a crash, the time or the memory limit included)."""
    cmd = [sys.executable, "-m", "guidetune.evaluators.uploads", kind, str(path), json.dumps(meta)]
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limits.seconds, env=env,
                              preexec_fn=_limit(limits.seconds, limits.memory_bytes))
    except subprocess.TimeoutExpired:
        raise UploadRejected(f"validation timed out: loading and probing the file took more than {limits.seconds:g} s") from None
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        if "MemoryError" in proc.stderr or "std::bad_alloc" in proc.stderr or "out of memory" in proc.stderr.lower():
            why = f"it needed more than the {limits.memory_bytes >> 20} MB memory limit"
        elif proc.returncode in (-9, -24, 152):   # SIGKILL / SIGXCPU
            why = "it was stopped by the time or memory limit"
        else:
            why = f"the validating process crashed ({tail[0][:200]})"
        raise UploadRejected(f"validation failed: {why}; check that the file is a TorchScript module saved with "
                             "torch.jit.save and that it runs on a small batch")
    answer = json.loads(lines[-1])
    if not answer["ok"]:
        raise UploadRejected(f"validation failed: {answer['error']}")
    return answer["found"]


def store_file(tmp: Path, sha256: str) -> Path:
    """Move a validated file to its place, named by its hash (the same bytes share one file)."""
    final = uploads_dir() / f"{sha256}.pt"
    if final.exists():
        tmp.unlink(missing_ok=True)
    else:
        os.replace(tmp, final)
    return final
