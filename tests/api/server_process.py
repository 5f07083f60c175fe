"""A real ``guidetune serve`` in a subprocess on a free loopback port, for the API tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

GUIDETUNE = [sys.executable, "-m", "guidetune.api.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``guidetune serve`` with its own GUIDETUNE_HOME (and store URL, when given)."""

    def __init__(self, home: Path, *args: str, storage: str | None = None, env: dict[str, str] | None = None,
                 port: int | None = None) -> None:
        self.home, self.port = Path(home), port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, GUIDETUNE_HOME=str(home), OMP_NUM_THREADS="1", **(env or {}))
        self.env.pop("GUIDETUNE_DATABASE_URL", None)
        self.storage = ["--storage", storage] if storage else []
        self.log = self.home / f"server-{self.port}.log"
        self.home.mkdir(parents=True, exist_ok=True)
        cmd = GUIDETUNE + ["serve", "--port", str(self.port), *self.storage, *args]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"guidetune serve exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"guidetune serve did not answer in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def token(self, owner: str) -> str:
        out = subprocess.run(GUIDETUNE + ["token", "create", "--owner", owner, *self.storage], env=self.env,
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def cli(self, *args: str, token: str | None = None, check: bool = False) -> subprocess.CompletedProcess:
        env = dict(self.env, GUIDETUNE_SERVER=self.url, **({"GUIDETUNE_TOKEN": token} if token else {}))
        return subprocess.run(GUIDETUNE + list(args), env=env, capture_output=True, text=True, check=check)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
