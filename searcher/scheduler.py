"""The service's study runner: what ``guidetune serve`` runs beside the HTTP API.

It polls the store for runnable studies — QUEUED ones, and RUNNING ones whose coordinator is gone
(a server that was killed) — and runs each with ``StudyService.run`` in a thread of its own, at most
``max_studies`` at a time. Stopping the scheduler pauses its studies after their in-flight trials:
they go back to QUEUED and continue when a scheduler runs again, on this store, anywhere. A study
the Ray cluster is too small for (no worker has joined yet, or none with a GPU) stays QUEUED with the
reason and is tried again every ``wait_seconds``: in a cluster, workers come and go.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from guidetune.storage.errors import LeaseHeldError, StorageError
from guidetune.storage.records import StudyState
from guidetune.storage.store import coordinator_id

from .errors import ClusterTooSmallError
from .service import StudyService

log = logging.getLogger("guidetune.scheduler")


class StudyScheduler:
    """Runs the store's runnable studies in background threads."""

    def __init__(self, service: StudyService, *, executor: str = "ray", ray_address: str | None = None,
                 max_studies: int = 2, poll_seconds: float = 1.0, wait_seconds: float = 5.0,
                 on_error: Callable[[int, BaseException], None] | None = None) -> None:
        self.service, self.executor, self.ray_address = service, executor, ray_address
        self.max_studies, self.poll_seconds, self.wait_seconds = max_studies, poll_seconds, wait_seconds
        self._waiting: dict[int, float] = {}   # study id -> when to try again (the cluster was too small)
        self.on_error = on_error
        self._pause = threading.Event()
        self._active: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="guidetune-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 120.0) -> None:
        """Pause every running study after its in-flight trials (they stay resumable) and stop polling."""
        self._pause.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for thread in list(self._active.values()):
            thread.join(timeout)

    @property
    def running(self) -> list[int]:
        with self._lock:
            return sorted(self._active)

    def _loop(self) -> None:
        while not self._pause.is_set():
            try:
                self.poll()
            except StorageError as exc:   # the store is away: try again at the next poll
                log.warning("scheduler: %s", exc)
            self._pause.wait(self.poll_seconds)

    def poll(self) -> list[int]:
        """Start runnable studies while slots are free; returns the ids started."""
        started = []
        with self._lock:
            free = self.max_studies - len(self._active)
            if free <= 0:
                return started
            for study in self.service.store.runnable_studies():
                if free <= 0:
                    break
                if study.id in self._active or self._waiting.get(study.id, 0.0) > time.monotonic():
                    continue
                thread = threading.Thread(target=self._run, args=(study.id,), name=f"study-{study.id}", daemon=True)
                self._active[study.id] = thread
                thread.start()
                started.append(study.id)
                free -= 1
        return started

    def _run(self, study_id: int) -> None:
        try:
            self.service.run(study_id, executor=self.executor, ray_address=self.ray_address, pause=self._pause)
        except LeaseHeldError:
            pass   # another live coordinator runs it
        except ClusterTooSmallError as exc:
            self._waiting[study_id] = time.monotonic() + self.wait_seconds
            try:
                self.service.store.note_queued(study_id, f"waiting for the cluster: {exc}")
            except StorageError as err:
                log.warning("could not note why study %s waits: %s", study_id, err)
        except BaseException as exc:  # noqa: BLE001 - a study's failure must not end the scheduler
            log.warning("study %s failed: %s", study_id, exc)
            self._fail_if_left(study_id, exc)
            if self.on_error is not None:
                self.on_error(study_id, exc)
        finally:
            with self._lock:
                self._active.pop(study_id, None)

    def _fail_if_left(self, study_id: int, exc: BaseException) -> None:
        """A study that failed before its coordinator took it (its task no longer loads, Ray refused
        its resources) is marked FAILED with the reason, so it is not retried forever."""
        store = self.service.store
        try:
            study = store.get_study(study_id)
            if study.state is StudyState.QUEUED:
                store.claim_study(study_id, coordinator_id())
                store.release_study(study_id, coordinator_id(), StudyState.FAILED, f"{type(exc).__name__}: {exc}")
        except StorageError as err:
            log.warning("could not mark study %s failed: %s", study_id, err)
