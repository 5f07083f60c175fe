"""A small Python client of the guidetune HTTP API (what ``guidetune submit/status/export`` use).

    from guidetune.api.client import Client

    client = Client("http://127.0.0.1:8321", token="gt_…")      # or GUIDETUNE_SERVER / GUIDETUNE_TOKEN
    study = client.create_study(task="digits-label", target="3", budget_samples=600)
    for status in client.watch(study["id"]):
        print(status["state"], status["spent"]["samples"], status["best"])
    config = client.export(study["id"])["config"]

Every error the server answers raises ``ApiError`` with its status and message.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import httpx

DEFAULT_SERVER = "http://127.0.0.1:8321"
FINISHED = ("complete", "failed", "cancelled")


class ApiError(RuntimeError):
    """The server refused a request (``status``: the HTTP status; the message says why)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status, self.message = status, message


class Client:
    def __init__(self, server: str | None = None, token: str | None = None, *, timeout: float = 120.0) -> None:
        self.server = (server or os.environ.get("GUIDETUNE_SERVER") or DEFAULT_SERVER).rstrip("/")
        if not self.server.startswith(("http://", "https://")):
            raise ValueError(f"--server must be an http(s) URL such as {DEFAULT_SERVER}, got {self.server!r}")
        token = token or os.environ.get("GUIDETUNE_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            r = self.http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise ApiError(0, f"cannot reach the guidetune server at {self.server} ({exc}); start it with "
                              "`guidetune serve` or check --server") from None
        if r.status_code >= 400:
            try:
                message = r.json()["error"]
            except (ValueError, KeyError, TypeError):
                message = r.text[:200] or r.reason_phrase
            raise ApiError(r.status_code, message)
        return r

    # ---- service --------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self._request("GET", "/healthz").json()

    def upload_predictor(self, path: str | Path, **metadata: Any) -> dict[str, Any]:
        """Upload a TorchScript predictor; ``metadata``: kind, model, num_classes, tolerance, targets…"""
        return self._upload("/v1/predictors", path, metadata)

    def upload_model(self, path: str | Path, **metadata: Any) -> dict[str, Any]:
        """Upload a TorchScript ε-network; ``metadata``: input_shape, prediction, steps, clip_x0."""
        return self._upload("/v1/models", path, metadata)

    def _upload(self, route: str, path: str | Path, metadata: dict[str, Any]) -> dict[str, Any]:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        with path.open("rb") as f:
            return self._request("POST", route, files={"file": (path.name, f, "application/octet-stream")},
                                 data={"metadata": json.dumps(metadata)}).json()

    # ---- studies ----------------------------------------------------------------------------------
    def create_study(self, *, idempotency_key: str | None = None, **spec: Any) -> dict[str, Any]:
        """Create (or continue) a study: ``task`` or ``model`` + ``predictor_id``, ``target``,
        ``searcher``, ``objective``, ``budget_samples``… (see POST /v1/studies in /docs)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._request("POST", "/v1/studies", json=spec, headers=headers).json()

    def studies(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/studies").json()["studies"]

    def status(self, study_id: int) -> dict[str, Any]:
        return self._request("GET", f"/v1/studies/{int(study_id)}").json()

    def trials(self, study_id: int, after: int = -1, limit: int = 100) -> dict[str, Any]:
        """Trials numbered above ``after`` (at most ``limit``) and ``next_after`` for the next page."""
        return self._request("GET", f"/v1/studies/{int(study_id)}/trials", params={"after": after, "limit": limit}).json()

    def best(self, study_id: int) -> dict[str, Any]:
        return self._request("GET", f"/v1/studies/{int(study_id)}/best").json()

    def export(self, study_id: int, format: str = "json") -> Any:
        """json: ``{"config", "python", "notices"}``; yaml: the config file's text."""
        r = self._request("GET", f"/v1/studies/{int(study_id)}/export", params={"format": format})
        return r.text if format == "yaml" else r.json()

    def cancel(self, study_id: int) -> dict[str, Any]:
        return self._request("POST", f"/v1/studies/{int(study_id)}/cancel").json()

    def samples_png(self, study_id: int, number: int) -> bytes:
        return self._request("GET", f"/v1/studies/{int(study_id)}/trials/{int(number)}/samples.png").content

    def watch(self, study_id: int, interval: float = 1.0, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """The study's status every ``interval`` seconds until it finishes (the last one included)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status(study_id)
            yield status
            if status["state"] in FINISHED:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"study {study_id} still {status['state']} after {timeout:g} s")
            time.sleep(interval)

    def watch_progress(self, study_id: int, interval: float = 1.0, show: bool = True) -> dict[str, Any]:
        """Follow the study to its end with a live progress bar over samples spent (on standard error;
        ``show=False``: silently); its ``best=`` is the status's best score. Returns the final status."""
        from tqdm.auto import tqdm

        bar = None
        for status in self.watch(study_id, interval):
            if not show:
                continue
            if bar is None:
                bar = tqdm(total=status["budget"]["samples"], unit="sample", desc=f"study {study_id}", file=sys.stderr)
            bar.n = status["spent"]["samples"]
            best = status["best"]["score"] if status["best"] else None
            bar.set_postfix_str(f"{status['state']}, best={best}, trials={status['trials']['complete']}", refresh=False)
            bar.refresh()
        if bar is not None:
            bar.close()
        return status

    def wait(self, study_id: int, interval: float = 1.0, timeout: float | None = None) -> dict[str, Any]:
        """The study's final status."""
        for status in self.watch(study_id, interval, timeout):
            pass
        return status
