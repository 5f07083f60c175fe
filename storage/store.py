"""The study store: the single source of truth for studies and trials, on SQLite or PostgreSQL.

Contract (one test suite runs it against both backends, ``tests/storage``):

* Every method is one short transaction, retried with backoff on transient errors (a server
  restart, SQLite busy) for ``retry_seconds``, then ``StorageUnavailableError``.
* A study is run by one coordinator at a time: ``claim_study`` takes a lease (a conditional UPDATE,
  correct on both backends, no ``SKIP LOCKED``), every coordinator write checks and renews it, and
  a second live coordinator gets ``LeaseHeldError``. A lease is free when it expired, or when its
  holder is a process on this host that no longer exists.
* Trials are numbered by the store when proposed (PENDING), started with a conditional
  ``UPDATE ... WHERE state = 'pending'`` (attempt + 1), finished with ``WHERE state = 'running'``
  in the same transaction that appends them to the order of tells and adds their samples and
  passes to the study. A finished trial is refused any change, by the store and by a trigger.
* Reads stay cheap as studies grow: trials after N (primary key), counts, the reported best
  (``best_number``, one row) and the order of tells (index) never load every trial.
"""

from __future__ import annotations

import math
import os
import socket
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Sequence

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from guidetune.evaluators.records import TrialResult

from .engine import WRITE, check_url, ensure_schema, make_engine, resolve_url, retrying, safe_url
from .errors import (AlreadyExistsError, IllegalTransitionError, ImmutableTrialError, LeaseHeldError,
                     NotFoundError, StorageError)
from .records import FINISHED, StudyRecord, StudySpec, StudyState, Trial, TrialState, Upload
from .schema import IdempotencyRow, StudyRow, TokenRow, TrialRow, UploadRow

STUDIES = StudyRow.__table__
TRIALS = TrialRow.__table__
TOKENS = TokenRow.__table__
UPLOADS = UploadRow.__table__
IDEMPOTENCY = IdempotencyRow.__table__
_FINISHED_VALUES = tuple(s.value for s in FINISHED)


def utcnow() -> datetime:
    """Naive UTC (both backends store ``timestamp without time zone``)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def coordinator_id() -> str:
    """``host:pid``: who runs a study, and how a successor on the same host knows it died."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _holder_is_dead(holder: str | None) -> bool:
    if not holder:
        return True
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class StudyStore:
    """Studies and their trials behind one narrow interface (optuna's storage contract)."""

    def __init__(self, url: str | None = None, *, retry_seconds: float = 60.0, lease_seconds: float = 60.0,
                 check: bool = True) -> None:
        self.url = resolve_url(url)              # the database URL actually used
        self.retry_seconds = retry_seconds       # how long transient errors are retried
        self.lease_seconds = lease_seconds       # how long a silent coordinator keeps its study
        if check:
            check_url(self.url)
        self.engine = make_engine(self.url)
        retrying(lambda: ensure_schema(self.engine, self.url), what="check the schema", retry_seconds=retry_seconds)

    @property
    def display_url(self) -> str:
        """The URL without its password (for messages and listings)."""
        return safe_url(self.url)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def _tx(self, what: str, fn):
        def run():
            with self.engine.connect() as conn:
                with conn.execution_options(**{WRITE: True}).begin():
                    return fn(conn)
        return retrying(run, what=what, retry_seconds=self.retry_seconds)

    def _read(self, what: str, fn):
        def run():
            with self.engine.connect() as conn:
                return fn(conn)
        return retrying(run, what=what, retry_seconds=self.retry_seconds)

    # ---- studies ----------------------------------------------------------------------------
    def create_study(self, name: str, spec: StudySpec, *, owner: str = "local") -> StudyRecord:
        """A new QUEUED study; ``AlreadyExistsError`` when the name is taken."""
        now = utcnow()

        def tx(conn: Connection) -> int:
            if conn.execute(select(STUDIES.c.id).where(STUDIES.c.name == name)).first() is not None:
                raise AlreadyExistsError(f"a study named {name!r} already exists; choose another name or continue it")
            return conn.execute(insert(STUDIES).values(
                name=name, owner=owner, spec=spec.to_dict(), spec_version=spec.spec_version,
                state=StudyState.QUEUED.value, created_at=now, samples_spent=0, passes_spent=0.0, n_trials=0,
                n_told=0, n_running=0, n_complete=0, n_failed=0, n_pruned=0,
                cancel_requested=False)).inserted_primary_key[0]
        try:
            study_id = self._tx("create a study", tx)
        except IntegrityError:
            raise AlreadyExistsError(f"a study named {name!r} already exists; choose another name or continue it") from None
        return self.get_study(study_id)

    def get_study(self, key: int | str) -> StudyRecord:
        """By id or name; ``NotFoundError`` when there is none."""
        column = STUDIES.c.id if isinstance(key, int) else STUDIES.c.name
        row = self._read("read a study", lambda c: c.execute(select(STUDIES).where(column == key)).first())
        if row is None:
            raise NotFoundError(f"no study {key!r} in {self.display_url}; `guidetune studies` lists the stored ones")
        return _study(row)

    def list_studies(self, *, owner: str | None = None) -> list[StudyRecord]:
        q = select(STUDIES).order_by(STUDIES.c.id)
        if owner is not None:
            q = q.where(STUDIES.c.owner == owner)
        return [_study(r) for r in self._read("list studies", lambda c: c.execute(q).all())]

    def runnable_studies(self) -> list[StudyRecord]:
        """Studies a scheduler may run now: QUEUED ones, and RUNNING ones whose coordinator is gone
        (its process on this host died, or its lease ran out), oldest first."""
        q = select(STUDIES).where(STUDIES.c.state.in_([StudyState.QUEUED.value, StudyState.RUNNING.value])
                                  & STUDIES.c.cancel_requested.is_(False)).order_by(STUDIES.c.id)
        now = utcnow()
        rows = self._read("list runnable studies", lambda c: c.execute(q).all())
        return [_study(r) for r in rows
                if r.coordinator is None or _holder_is_dead(r.coordinator) or (r.lease_until is not None and r.lease_until < now)]

    def update_budgets(self, study_id: int, spec: StudySpec) -> StudyRecord:
        """Replace the budgets and resources of a study's spec (everything else must match); reopens a
        COMPLETE study that stopped on a budget so that it can continue."""
        def tx(conn: Connection) -> None:
            row = conn.execute(select(STUDIES).where(STUDIES.c.id == study_id)).first()
            if row is None:
                raise NotFoundError(f"no study with id {study_id}")
            old = StudySpec.from_dict(row.spec)
            if old.identity() != spec.identity():
                raise AlreadyExistsError("only the budgets and resources of a stored study can change")
            values: dict[str, Any] = {"spec": spec.to_dict()}
            if row.state == StudyState.COMPLETE.value and (row.stop_reason or "").startswith("budget"):
                values.update(state=StudyState.QUEUED.value, stop_reason=None, finished_at=None)
            conn.execute(update(STUDIES).where(STUDIES.c.id == study_id).values(**values))
        self._tx("update budgets", tx)
        return self.get_study(study_id)

    def claim_study(self, study_id: int, coordinator: str) -> StudyRecord:
        """Take the study's lease and mark it RUNNING; ``LeaseHeldError`` while another live
        coordinator holds it."""
        now = utcnow()
        row = self._read("read a study", lambda c: c.execute(select(STUDIES).where(STUDIES.c.id == study_id)).first())
        if row is None:
            raise NotFoundError(f"no study with id {study_id}")
        holder = row.coordinator
        stale = holder != coordinator and (_holder_is_dead(holder) or row.lease_until is None or row.lease_until < now)

        def tx(conn: Connection) -> int:
            cond = STUDIES.c.id == study_id
            if holder is None:
                cond = cond & STUDIES.c.coordinator.is_(None)
            elif holder == coordinator or stale:
                cond = cond & (STUDIES.c.coordinator == holder)
            else:
                return 0
            return conn.execute(update(STUDIES).where(cond).values(
                coordinator=coordinator, lease_until=now + timedelta(seconds=self.lease_seconds),
                state=StudyState.RUNNING.value, stop_reason=None, finished_at=None,
                started_at=func.coalesce(STUDIES.c.started_at, now))).rowcount
        if self._tx("claim a study", tx) != 1:
            raise LeaseHeldError(
                f"study {row.name!r} is being run by {holder} (lease until {row.lease_until} UTC); wait for it to "
                "finish, or cancel it, before running it here")
        return self.get_study(study_id)

    def renew_lease(self, study_id: int, coordinator: str) -> None:
        self._tx("renew the lease", lambda conn: self._fence(conn, study_id, coordinator))

    def release_study(self, study_id: int, coordinator: str, state: StudyState, stop_reason: str | None) -> StudyRecord:
        """Give up the lease and record how the study ended."""
        def tx(conn: Connection) -> None:
            self._fence(conn, study_id, coordinator)
            conn.execute(update(STUDIES).where(STUDIES.c.id == study_id).values(
                coordinator=None, lease_until=None, state=state.value, stop_reason=stop_reason,
                finished_at=utcnow() if state.is_finished else None))
        self._tx("release a study", tx)
        return self.get_study(study_id)

    def note_queued(self, study_id: int, reason: str) -> None:
        """Say why a QUEUED study has not started (it stays queued; nothing else changes)."""
        self._tx("note why a study waits", lambda c: c.execute(update(STUDIES).where(
            (STUDIES.c.id == study_id) & (STUDIES.c.state == StudyState.QUEUED.value)).values(stop_reason=reason)))

    def request_cancel(self, study_id: int) -> StudyRecord:
        """A queued study is cancelled at once; a running one stops after its in-flight trials."""
        def tx(conn: Connection) -> None:
            row = conn.execute(select(STUDIES.c.state).where(STUDIES.c.id == study_id)).first()
            if row is None:
                raise NotFoundError(f"no study with id {study_id}")
            values: dict[str, Any] = {"cancel_requested": True}
            if row.state == StudyState.QUEUED.value:
                values.update(state=StudyState.CANCELLED.value, stop_reason="requested", finished_at=utcnow())
            conn.execute(update(STUDIES).where(STUDIES.c.id == study_id).values(**values))
        self._tx("cancel a study", tx)
        return self.get_study(study_id)

    def cancel_requested(self, study_id: int) -> bool:
        q = select(STUDIES.c.cancel_requested).where(STUDIES.c.id == study_id)
        return bool(self._read("read a study", lambda c: c.execute(q).scalar()))

    def record_yardstick(self, study_id: int, coordinator: str, yardstick: dict[str, Any], samples: int,
                         passes: float) -> StudyRecord:
        """Store the study's unguided fidelity yardstick (measured once) and count what it drew."""
        def tx(conn: Connection) -> None:
            self._fence(conn, study_id, coordinator)
            conn.execute(update(STUDIES).where((STUDIES.c.id == study_id) & STUDIES.c.yardstick.is_(None)).values(
                yardstick=yardstick, samples_spent=STUDIES.c.samples_spent + samples,
                passes_spent=STUDIES.c.passes_spent + passes))
        self._tx("record the yardstick", tx)
        return self.get_study(study_id)

    def record_confirmation(self, study_id: int, coordinator: str, confirmation: dict[str, Any], *,
                            best_number: int | None = None) -> StudyRecord:
        """Store the study's confirmation (its plan, or its summary) and, with ``best_number``, make that
        trial the study's reported best."""
        values: dict[str, Any] = {"confirmation": confirmation}
        if best_number is not None:
            values["best_number"] = best_number

        def tx(conn: Connection) -> None:
            self._fence(conn, study_id, coordinator)
            conn.execute(update(STUDIES).where(STUDIES.c.id == study_id).values(**values))
        self._tx("record the confirmation", tx)
        return self.get_study(study_id)

    # ---- the HTTP service's records: tokens, uploads, idempotency keys ------------------------
    def add_token(self, token_sha256: str, owner: str) -> None:
        """Store an API token's hash for ``owner`` (the token itself is never stored)."""
        self._tx("store a token", lambda c: c.execute(insert(TOKENS).values(
            token_sha256=token_sha256, owner=owner, created_at=utcnow())))

    def token_owner(self, token_sha256: str) -> str | None:
        q = select(TOKENS.c.owner).where(TOKENS.c.token_sha256 == token_sha256)
        return self._read("check a token", lambda c: c.execute(q).scalar())

    def put_upload(self, upload: Upload) -> Upload:
        """Store an upload record; the same id again (same owner, kind and file) returns the stored one."""
        def tx(conn: Connection) -> None:
            if conn.execute(select(UPLOADS.c.id).where(UPLOADS.c.id == upload.id)).first() is None:
                conn.execute(insert(UPLOADS).values(
                    id=upload.id, owner=upload.owner, kind=upload.kind, sha256=upload.sha256, size=upload.size,
                    path=upload.path, meta=upload.meta, created_at=upload.created_at))
        self._tx("store an upload", tx)
        return self.get_upload(upload.id)

    def find_upload(self, upload_id: str) -> Upload | None:
        row = self._read("read an upload", lambda c: c.execute(select(UPLOADS).where(UPLOADS.c.id == upload_id)).first())
        return None if row is None else Upload(id=row.id, owner=row.owner, kind=row.kind, sha256=row.sha256,
                                               size=int(row.size), path=row.path, meta=row.meta,
                                               created_at=row.created_at)

    def get_upload(self, upload_id: str) -> Upload:
        upload = self.find_upload(upload_id)
        if upload is None:
            raise NotFoundError(f"no upload {upload_id!r}")
        return upload

    def list_uploads(self, owner: str, kind: str | None = None) -> list[Upload]:
        q = select(UPLOADS.c.id).where(UPLOADS.c.owner == owner).order_by(UPLOADS.c.created_at)
        if kind is not None:
            q = q.where(UPLOADS.c.kind == kind)
        return [self.get_upload(i) for i in self._read("list uploads", lambda c: c.execute(q).scalars().all())]

    def idempotent_study(self, owner: str, key: str) -> tuple[str, int] | None:
        """(request hash, study id) stored under an owner's ``Idempotency-Key``, or None."""
        q = select(IDEMPOTENCY.c.request_sha256, IDEMPOTENCY.c.study_id).where(
            (IDEMPOTENCY.c.owner == owner) & (IDEMPOTENCY.c.key == key))
        row = self._read("read an idempotency key", lambda c: c.execute(q).first())
        return None if row is None else (row.request_sha256, row.study_id)

    def remember_idempotency(self, owner: str, key: str, request_sha256: str, study_id: int) -> tuple[str, int]:
        """Bind the key to the study; when a concurrent request bound it first, that binding wins."""
        try:
            self._tx("store an idempotency key", lambda c: c.execute(insert(IDEMPOTENCY).values(
                owner=owner, key=key, request_sha256=request_sha256, study_id=study_id, created_at=utcnow())))
        except IntegrityError:
            pass
        return self.idempotent_study(owner, key)

    # ---- trials: the coordinator's writes ------------------------------------------------------
    def add_trials(self, study_id: int, coordinator: str, proposals: Sequence[dict[str, Any]], *,
                   first_number: int | None = None) -> list[Trial]:
        """Number proposals (dicts with params, config, n_samples, seed, tags) and store them PENDING.
        ``first_number`` (the number the coordinator expects the first to get) makes a retry after a
        lost commit acknowledgement return the trials already stored instead of storing them twice."""
        now = utcnow()
        k = len(proposals)

        def tx(conn: Connection) -> list[Trial]:
            end = conn.execute(_NUMBER_TRIALS, dict(sid=study_id, me=coordinator, b_k=k, b_lease=self._lease(now))).scalar()
            if end is None:
                self._fence(conn, study_id, coordinator)          # raises LeaseHeldError
            first = end - k
            if first_number is not None and first != first_number:
                stored = [_trial(r) for r in conn.execute(select(TRIALS).where(
                    (TRIALS.c.study_id == study_id) & (TRIALS.c.number >= first_number)).order_by(TRIALS.c.number))]
                if first == first_number + k and [t.params for t in stored] == [p["params"] for p in proposals]:
                    raise _AlreadyRecorded(stored)   # the previous attempt committed: roll this one back
                raise StorageError(f"study {study_id} has {first} trials, the coordinator expected {first_number}")
            rows = [dict(study_id=study_id, number=first + i, params=p["params"], config=p["config"],
                         n_samples=int(p["n_samples"]), seed=int(p["seed"]), state=TrialState.PENDING.value,
                         attempt=0, tags=p.get("tags", {}), passes=0.0, created_at=now)
                    for i, p in enumerate(proposals)]
            if rows:
                conn.execute(insert(TRIALS), rows)
            return [Trial(number=r["number"], params=r["params"], config=r["config"], n_samples=r["n_samples"],
                          seed=r["seed"], tags=r["tags"], created_at=now) for r in rows]
        try:
            return self._tx("store proposals", tx)
        except _AlreadyRecorded as done:
            return done.value

    def start_trials(self, study_id: int, coordinator: str, numbers: Iterable[int], *, worker: str) -> list[Trial]:
        """PENDING → RUNNING (attempt + 1) for every number, or none of them."""
        numbers = list(numbers)
        now = utcnow()

        def tx(conn: Connection) -> list[Trial]:
            if conn.execute(_START_STUDY, dict(sid=study_id, me=coordinator, b_k=len(numbers),
                                               b_lease=self._lease(now))).rowcount != 1:
                self._fence(conn, study_id, coordinator)          # raises LeaseHeldError
            started = conn.execute(_START_TRIALS, dict(sid=study_id, nums=numbers, b_worker=worker, b_now=now)).all()
            if len(started) != len(numbers):
                states = conn.execute(select(TRIALS).where(
                    (TRIALS.c.study_id == study_id) & TRIALS.c.number.in_(numbers)).order_by(TRIALS.c.number)).all()
                if not started and len(states) == len(numbers) and all(
                        r.state == TrialState.RUNNING.value and r.worker == worker for r in states):
                    raise _AlreadyRecorded([_trial(r) for r in states])   # a retry: already started
                raise IllegalTransitionError(f"trials {numbers} of study {study_id}: only PENDING trials can start "
                                             f"({len(started)} of {len(numbers)} were PENDING)")
            return sorted((_trial(r) for r in started), key=lambda t: t.number)
        try:
            return self._tx("start trials", tx)
        except _AlreadyRecorded as done:
            return done.value

    def finish_trial(self, study_id: int, coordinator: str, trial: Trial, *, score: float | None,
                     passes: float, best_number: int | None, best_score: float | None) -> Trial:
        """RUNNING → ``trial.state`` with its result; appended to the order of tells, its samples and
        passes added to the study, the study's reported best updated, all in one transaction of two
        prepared statements (the hot path: once per trial)."""
        if not trial.state.is_finished:
            raise IllegalTransitionError(f"finish_trial takes a finished trial; trial {trial.number} is {trial.state.name}")
        now = utcnow()
        params = dict(sid=study_id, me=coordinator, num=trial.number, b_samples=trial.n_samples, b_passes=float(passes),
                      b_best=best_number, b_lease=self._lease(now), b_state=trial.state.value,
                      b_result=_encode_result(trial.result), b_reason=trial.fail_reason, b_score=_finite(score),
                      b_best_score=_finite(best_score), b_now=now)

        def tx(conn: Connection) -> int:
            if conn.execute(_TELL_STUDY[trial.state], params).rowcount != 1:
                self._fence(conn, study_id, coordinator)          # raises LeaseHeldError
            seq = conn.execute(_TELL_TRIAL, params).scalar()
            if seq is None:
                row = conn.execute(select(TRIALS).where(
                    (TRIALS.c.study_id == study_id) & (TRIALS.c.number == trial.number))).first()
                if (row is not None and row.state == trial.state.value and row.tell_seq is not None
                        and row.attempt == trial.attempt and _decode_result(row.result) == trial.result):
                    raise _AlreadyRecorded(row.tell_seq)   # a retry after a lost commit acknowledgement
                self._refuse(conn, study_id, trial.number, trial.state)
            return seq
        try:
            seq = self._tx("record a result", tx)
        except _AlreadyRecorded as done:
            seq = done.value
        return replace(trial, finished_at=now, score=_finite(score), tell_seq=seq)

    def requeue_running(self, study_id: int, coordinator: str, numbers: Sequence[int] | None = None) -> list[int]:
        """RUNNING → PENDING for ``numbers`` (default: every RUNNING trial, those a dead coordinator left);
        the next start of each is attempt + 1."""
        def tx(conn: Connection) -> list[int]:
            self._fence(conn, study_id, coordinator)
            q = select(TRIALS.c.number).where((TRIALS.c.study_id == study_id)
                                              & (TRIALS.c.state == TrialState.RUNNING.value))
            if numbers is not None:
                q = q.where(TRIALS.c.number.in_(list(numbers)))
            found = list(conn.execute(q).scalars())
            if found:
                n = conn.execute(update(TRIALS).where((TRIALS.c.study_id == study_id) & TRIALS.c.number.in_(found)
                                                      & (TRIALS.c.state == TrialState.RUNNING.value))
                                 .values(state=TrialState.PENDING.value, worker=None)).rowcount
                conn.execute(update(STUDIES).where(STUDIES.c.id == study_id).values(n_running=STUDIES.c.n_running - n))
            return found
        return self._tx("re-queue trials", tx)

    def update_trial(self, study_id: int, number: int, **values: Any) -> None:
        """A raw change of a stored trial (operators' repairs); refused on a finished trial."""
        def tx(conn: Connection) -> None:
            n = conn.execute(update(TRIALS).where(
                (TRIALS.c.study_id == study_id) & (TRIALS.c.number == number)
                & TRIALS.c.state.not_in(_FINISHED_VALUES)).values(**values)).rowcount
            if n != 1:
                self._refuse(conn, study_id, number, None)
        self._tx("update a trial", tx)

    # ---- reads ----------------------------------------------------------------------------------
    def trial(self, study_id: int, number: int) -> Trial:
        row = self._read("read a trial", lambda c: c.execute(select(TRIALS).where(
            (TRIALS.c.study_id == study_id) & (TRIALS.c.number == number))).first())
        if row is None:
            raise NotFoundError(f"study {study_id} has no trial {number}")
        return _trial(row)

    def trials(self, study_id: int, *, numbers: Sequence[int] | None = None,
               states: Iterable[TrialState] | None = None) -> list[Trial]:
        """Trials by number (optionally some numbers or states only)."""
        q = select(TRIALS).where(TRIALS.c.study_id == study_id).order_by(TRIALS.c.number)
        if numbers is not None:
            q = q.where(TRIALS.c.number.in_(list(numbers)))
        if states is not None:
            q = q.where(TRIALS.c.state.in_([s.value for s in states]))
        return [_trial(r) for r in self._read("read trials", lambda c: c.execute(q).all())]

    def told_trials(self, study_id: int) -> list[Trial]:
        """Finished trials in the order they were told (what a searcher is rebuilt from)."""
        q = (select(TRIALS).where((TRIALS.c.study_id == study_id) & TRIALS.c.tell_seq.is_not(None))
             .order_by(TRIALS.c.tell_seq))
        return [_trial(r) for r in self._read("read trials", lambda c: c.execute(q).all())]

    def trials_after(self, study_id: int, after: int = -1, *, limit: int = 100) -> list[Trial]:
        """Trials numbered above ``after``, at most ``limit`` of them (paging)."""
        q = (select(TRIALS).where((TRIALS.c.study_id == study_id) & (TRIALS.c.number > after))
             .order_by(TRIALS.c.number).limit(limit))
        return [_trial(r) for r in self._read("read trials", lambda c: c.execute(q).all())]

    def counts(self, study_id: int) -> dict[str, int]:
        """Trials per state (every state present, zeros included), from the study's counters."""
        q = select(STUDIES.c.n_trials, STUDIES.c.n_running, STUDIES.c.n_complete, STUDIES.c.n_failed,
                   STUDIES.c.n_pruned).where(STUDIES.c.id == study_id)
        row = self._read("count trials", lambda c: c.execute(q).first())
        if row is None:
            raise NotFoundError(f"no study with id {study_id}")
        return _counts(row)

    def counts_total(self, study_id: int) -> int:
        """Trials numbered so far (the next trial's number)."""
        q = select(STUDIES.c.n_trials).where(STUDIES.c.id == study_id)
        return int(self._read("read a study", lambda c: c.execute(q).scalar_one()))

    def best_trial(self, study_id: int) -> Trial | None:
        """The study's reported best (the searcher's choice, recorded with each tell)."""
        study = self.get_study(study_id)
        return None if study.best_number is None else self.trial(study_id, study.best_number)

    def best_curve(self, study_id: int) -> list[tuple[int, float | None]]:
        """(samples spent, reported best score) after each tell; the yardstick's samples come first."""
        study = self.get_study(study_id)
        q = (select(TRIALS.c.n_samples, TRIALS.c.best_score)
             .where((TRIALS.c.study_id == study_id) & TRIALS.c.tell_seq.is_not(None)).order_by(TRIALS.c.tell_seq))
        spent = int((study.yardstick or {}).get("samples", 0))
        curve = []
        for n, best in self._read("read the curve", lambda c: c.execute(q).all()):
            spent += n
            curve.append((spent, best))
        return curve

    # ---- helpers ----------------------------------------------------------------------------
    def _lease(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.lease_seconds)

    def _fence(self, conn: Connection, study_id: int, coordinator: str) -> None:
        """Check that ``coordinator`` still holds the study, and extend its lease."""
        n = conn.execute(update(STUDIES).where((STUDIES.c.id == study_id) & (STUDIES.c.coordinator == coordinator))
                         .values(lease_until=utcnow() + timedelta(seconds=self.lease_seconds))).rowcount
        if n != 1:
            raise LeaseHeldError(f"study {study_id} is not held by {coordinator}; another coordinator took it over "
                                 "(this one was silent longer than its lease) — stop this one")

    def _refuse(self, conn: Connection, study_id: int, number: int, asked: TrialState | None) -> None:
        state = conn.execute(select(TRIALS.c.state).where(
            (TRIALS.c.study_id == study_id) & (TRIALS.c.number == number))).scalar()
        if state is None:
            raise NotFoundError(f"study {study_id} has no trial {number}")
        if state in _FINISHED_VALUES:
            raise ImmutableTrialError(f"trial {number} of study {study_id} is {state.upper()} and can no longer change")
        raise IllegalTransitionError(f"trial {number} of study {study_id} is {state.upper()}; "
                                     f"{'it must be RUNNING to finish' if asked else 'the change was refused'}")



class _AlreadyRecorded(Exception):
    """Rolls back a retried write that the store had already committed; carries what it had stored."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _tell_study_statement(state: TrialState):
    count = STUDIES.c[f"n_{state.value}"]
    return update(STUDIES).where((STUDIES.c.id == bindparam("sid")) & (STUDIES.c.coordinator == bindparam("me"))).values({
        count: count + 1, STUDIES.c.n_running: STUDIES.c.n_running - 1, STUDIES.c.n_told: STUDIES.c.n_told + 1,
        STUDIES.c.samples_spent: STUDIES.c.samples_spent + bindparam("b_samples"),
        STUDIES.c.passes_spent: STUDIES.c.passes_spent + bindparam("b_passes"),
        STUDIES.c.best_number: bindparam("b_best"), STUDIES.c.lease_until: bindparam("b_lease")})


_TELL_STUDY = {state: _tell_study_statement(state) for state in FINISHED}
_HELD = (STUDIES.c.id == bindparam("sid")) & (STUDIES.c.coordinator == bindparam("me"))
_NUMBER_TRIALS = (update(STUDIES).where(_HELD)
                  .values(n_trials=STUDIES.c.n_trials + bindparam("b_k"), lease_until=bindparam("b_lease"))
                  .returning(STUDIES.c.n_trials))
_START_STUDY = update(STUDIES).where(_HELD).values(n_running=STUDIES.c.n_running + bindparam("b_k"),
                                                   lease_until=bindparam("b_lease"))
_START_TRIALS = (update(TRIALS).where((TRIALS.c.study_id == bindparam("sid"))
                                      & TRIALS.c.number.in_(bindparam("nums", expanding=True))
                                      & (TRIALS.c.state == TrialState.PENDING.value))
                 .values(state=TrialState.RUNNING.value, attempt=TRIALS.c.attempt + 1, worker=bindparam("b_worker"),
                         started_at=bindparam("b_now"))
                 .returning(*TRIALS.c))
_TELL_TRIAL = (update(TRIALS).where((TRIALS.c.study_id == bindparam("sid")) & (TRIALS.c.number == bindparam("num"))
                                    & (TRIALS.c.state == TrialState.RUNNING.value))
               .values(state=bindparam("b_state"), result=bindparam("b_result", type_=TRIALS.c.result.type),
                       fail_reason=bindparam("b_reason"), score=bindparam("b_score"), passes=bindparam("b_passes"),
                       best_score=bindparam("b_best_score"), finished_at=bindparam("b_now"),
                       tell_seq=select(STUDIES.c.n_told - 1).where(STUDIES.c.id == bindparam("sid")).scalar_subquery())
               .returning(TRIALS.c.tell_seq))


# ---- row <-> record --------------------------------------------------------------------------------
_FLOAT_FIELDS = {f for f, v in TrialResult.__dataclass_fields__.items() if v.type == "float"}


def _encode_result(result: TrialResult | None) -> dict[str, Any] | None:
    """JSON for both backends (PostgreSQL's JSON has no NaN): non-finite floats become strings."""
    if result is None:
        return None
    data = result.to_dict()
    for k in _FLOAT_FIELDS:
        data[k] = _float_token(data[k])
    data["extras"] = {k: _float_token(v) for k, v in data["extras"].items()}
    return data


def _decode_result(data: dict[str, Any] | None) -> TrialResult | None:
    if data is None:
        return None
    data = dict(data)
    for k in _FLOAT_FIELDS:
        data[k] = float(data[k])
    data["extras"] = {k: float(v) if isinstance(v, str) else v for k, v in data["extras"].items()}
    return TrialResult.from_dict(data)


def _float_token(value: Any) -> Any:
    return str(value) if isinstance(value, float) and not math.isfinite(value) else value


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _trial(row: Row) -> Trial:
    return Trial(number=row.number, params=row.params, config=row.config, n_samples=row.n_samples, seed=row.seed,
                 state=TrialState(row.state), result=_decode_result(row.result), fail_reason=row.fail_reason,
                 tags=row.tags, attempt=row.attempt, worker=row.worker, created_at=row.created_at,
                 started_at=row.started_at, finished_at=row.finished_at, tell_seq=row.tell_seq, score=row.score)


def _counts(row: Row) -> dict[str, int]:
    finished = row.n_running + row.n_complete + row.n_failed + row.n_pruned
    return {"pending": row.n_trials - finished, "running": row.n_running, "complete": row.n_complete,
            "failed": row.n_failed, "pruned": row.n_pruned}


def _study(row: Row) -> StudyRecord:
    return StudyRecord(id=row.id, name=row.name, owner=row.owner, spec=StudySpec.from_dict(row.spec),
                       state=StudyState(row.state), stop_reason=row.stop_reason, created_at=row.created_at,
                       started_at=row.started_at, finished_at=row.finished_at, samples_spent=int(row.samples_spent),
                       passes_spent=float(row.passes_spent), n_told=row.n_told, yardstick=row.yardstick,
                       best_number=row.best_number, coordinator=row.coordinator, counts=_counts(row),
                       confirmation=row.confirmation)


__all__ = ["StudyStore", "StorageError", "coordinator_id", "utcnow"]
