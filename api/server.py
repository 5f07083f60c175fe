"""The HTTP API (FastAPI): upload predictors and models, create and poll studies, export the best
configuration, and the dashboard at ``/``. OpenAPI at ``/openapi.json``, docs at ``/docs``.

Routers are thin: every route checks the caller's token, then calls the study service or the store.
Every error is a JSON ``{"error": message, "status": code}`` with a 4xx status that says what is
wrong and how to fix it; no exception text from inside the service and no stack trace reaches a
client. An owner sees only its own studies and uploads (another's are 404, not 403).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import sys
import threading
import time
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from guidetune.evaluators.errors import EvaluatorError
from guidetune.evaluators.uploads import (BUNDLED_MODELS, check_model_metadata, check_predictor_metadata,
                                          task_spec)
from guidetune.searcher.base import DEFAULT_SEARCHER
from guidetune.searcher.errors import SearchError
from guidetune.searcher.service import StudyService, python_snippet
from guidetune.storage.engine import guidetune_home
from guidetune.storage.errors import AlreadyExistsError, LeaseHeldError, NotFoundError, StorageUnavailableError
from guidetune.storage.records import StudyRecord, Trial, Upload
from guidetune.storage.schema import SCHEMA_REVISION
from guidetune.storage.store import StudyStore, utcnow

from . import uploads as upload_files

log = logging.getLogger("guidetune.api")
STATIC = Path(__file__).parent / "static"
VERSION = "0.1.0"
SNAPSHOT_SECONDS = 0.5   # how stale a polled status or trial page may be


# ---- tokens ----------------------------------------------------------------------------------------
def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(store: StudyStore, owner: str) -> str:
    """A new API token for ``owner``; only its hash is stored, so it is shown once."""
    owner = owner.strip()
    if not owner or len(owner) > 200 or any(c in owner for c in "/\n\r\t"):
        raise ValueError(f"--owner must be a non-empty name without '/', tabs or newlines (≤ 200 characters), got {owner!r}")
    token = "gt_" + secrets.token_urlsafe(32)
    store.add_token(hash_token(token), owner)
    return token


# ---- bodies ---------------------------------------------------------------------------------------
class ErrorBody(BaseModel):
    error: str = Field(description="what is wrong and how to fix it")
    status: int


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    store: str = Field(description="the study store's URL without its password")
    store_reachable: bool
    schema_revision: str | None
    ray: str = Field(description="the Ray runtime: 'connected', 'not started yet' or why it is unreachable")
    version: str


class UploadOut(BaseModel):
    id: str
    kind: Literal["predictor", "model"]
    sha256: str
    size: int
    metadata: dict[str, Any]
    created_at: str | None


class StudyCreate(BaseModel):
    """A study: a bundled ``task``, or a ``model`` (bundled name or uploaded model id) guided by an
    uploaded ``predictor_id`` and optionally judged by an uploaded ``judge_id``."""

    model_config = ConfigDict(extra="forbid")
    task: str | None = Field(None, description="a bundled task, e.g. 'digits-label'", min_length=1, max_length=200)
    model: str | None = Field(None, description="'digits' or the id of an uploaded model", min_length=1, max_length=200)
    target: str = Field(description="the target, e.g. a class index '3'", min_length=1, max_length=200)
    predictor_id: str | None = Field(None, min_length=1, max_length=40)
    judge_id: str | None = Field(None, min_length=1, max_length=40)
    searcher: str = Field(DEFAULT_SEARCHER, max_length=40)
    searcher_options: dict[str, Any] = Field(default_factory=dict)
    objective: Literal["auto", "validity", "constrained", "pareto"] = Field(
        "auto", description="auto: constrained (fidelity within max_fd_ratio × unguided) where the task has "
        "reference data, else validity")
    max_fd_ratio: float = Field(2.0, gt=0, le=1000)
    confirm_fraction: float = Field(0.2, ge=0, lt=1, description="budget held back to re-check the top "
                                    "configurations on fresh seeds (0: off)")
    confirm_top: int = Field(3, ge=1, le=20, description="configurations re-checked on fresh seeds")
    n_samples: int = Field(32, ge=1, le=4096)
    budget_samples: int | None = Field(None, ge=1, le=10_000_000)
    budget_passes: float | None = Field(None, gt=0, le=1e12)
    budget_trials: int | None = Field(None, ge=1, le=1_000_000)
    num_gpus: float = Field(0.0, ge=0, le=64)
    max_concurrent: int = Field(1, ge=1, le=256)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    name: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")


class TrialOut(BaseModel):
    number: int
    state: str
    params: dict[str, Any]
    n_samples: int
    seed: int
    score: float | None
    attempt: int
    worker: str | None
    fail_reason: str | None
    metrics: dict[str, Any] | None
    tell_seq: int | None
    finished_at: str | None
    tags: dict[str, Any] = Field(description="the searcher's tags (beam round, fidelity level…); "
                                 "phase 'confirm' marks a re-evaluation on fresh seeds")


class TrialPage(BaseModel):
    trials: list[TrialOut]
    next_after: int = Field(description="pass as ?after= to get only newer trials")


class StudyOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int
    name: str
    state: str
    stop_reason: str | None
    task: str
    target: str
    searcher: str
    objective: str
    trials: dict[str, int]
    budget: dict[str, int | float | None]
    spent: dict[str, int | float]
    best: dict[str, Any] | None
    judge: Literal["independent", "guide"]
    notices: list[str]
    feasible: bool | None
    eta_seconds: float | None
    confirmation: dict[str, Any] | None = Field(description="the top configurations re-checked on fresh seeds: "
                                                "state running | done | skipped, per candidate its fresh score "
                                                "with a confidence interval, and a one-line summary; the winner's "
                                                "numbers, with the score to expect of it (corrected for choosing "
                                                "among the candidates), are best.confirmed")
    created_at: str
    finished_at: str | None


class StudyList(BaseModel):
    studies: list[StudyOut]


class ExportOut(BaseModel):
    config: dict[str, Any] = Field(description="what `guidetune sample --config` reads")
    python: str = Field(description="a runnable Python snippet that uses the config")
    notices: list[str]


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 404, 409, 413)}
STUDY_ID = PathParam(ge=1, le=2**31 - 1, description="the study id")
TRIAL_NUMBER = PathParam(ge=0, le=2**31 - 1, description="the trial number")


# ---- the app -------------------------------------------------------------------------------------
@dataclass
class Settings:
    storage: str | None = None              # store URL (default GUIDETUNE_DATABASE_URL, else SQLite in GUIDETUNE_HOME)
    executor: str = "ray"                   # how studies run: ray | local
    ray_address: str | None = None          # a Ray cluster to join (default GUIDETUNE_RAY_ADDRESS, else a local Ray)
    max_studies: int = 2                    # studies run at once by this server
    run_studies: bool = True                # False: an API only (another server runs the studies)
    limits: upload_files.Limits = field(default_factory=upload_files.Limits.from_env)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    state: dict[str, Any] = {"ray": "not started yet"}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store = StudyStore(settings.storage)
        service = StudyService(store)
        state.update(store=store, service=service, grids=OrderedDict(), grid_lock=threading.Lock())
        scheduler = None
        if settings.run_studies:
            from guidetune.searcher.scheduler import StudyScheduler

            if settings.executor == "ray":
                from guidetune.searcher.ray_executor import connect_ray

                try:
                    state["ray"] = f"connected ({connect_ray(settings.ray_address)})"
                except SearchError as exc:
                    state["ray"] = f"unreachable: {exc}"
                    raise
            else:
                state["ray"] = "not used (studies run in the server process: --executor local)"
            scheduler = StudyScheduler(service, executor=settings.executor, ray_address=settings.ray_address,
                                       max_studies=settings.max_studies)
            scheduler.start()
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.stop()
                print("guidetune serve stopped: running studies paused; they continue when it starts again",
                      file=sys.stderr, flush=True)
            store.close()

    app = FastAPI(title="guidetune", version=VERSION, lifespan=lifespan,
                  description="Automated hyperparameter search for training-free guidance of diffusion models. "
                              "Every route but /healthz needs `Authorization: Bearer TOKEN` "
                              "(`guidetune token create --owner NAME`).")
    owners: dict[str, str] = {}   # token hash -> owner
    bearer = HTTPBearer(auto_error=False, description="a token from `guidetune token create --owner NAME`")

    def store() -> StudyStore:
        return state["store"]

    def service() -> StudyService:
        return state["service"]

    def owner(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> str:
        if creds is None:
            raise ApiError(401, "missing bearer token: send the header 'Authorization: Bearer TOKEN' "
                                "(create a token with `guidetune token create --owner NAME`)")
        digest = hash_token(creds.credentials)
        name = owners.get(digest)
        if name is None:   # tokens are only ever added: a known one is cached for the server's life
            name = store().token_owner(digest)
            if name is not None:
                owners[digest] = name
        if name is None:
            raise ApiError(401, "unknown token: check it, or create one with `guidetune token create --owner NAME`")
        return name

    snapshots: dict[tuple, tuple[float, Any]] = {}   # read-through cache of polled reads, SNAPSHOT_SECONDS old at most
    snapshot_lock = threading.Lock()

    def snapshot(key: tuple, read):
        """``read()``, shared by the requests of the same ``key`` within SNAPSHOT_SECONDS: fifty pollers
        of one study cost the store a few reads per second, not fifty."""
        now = time.monotonic()
        with snapshot_lock:
            hit = snapshots.get(key)
        if hit is not None and now - hit[0] < SNAPSHOT_SECONDS:
            return hit[1]
        value = read()
        with snapshot_lock:
            if len(snapshots) > 4096:
                snapshots.clear()
            snapshots[key] = (now, value)
        return value

    def own_study(study_id: int, who: str) -> StudyRecord:
        try:
            study = store().get_study(study_id)
        except NotFoundError:
            study = None
        if study is None or study.owner != who:
            raise ApiError(404, f"no study {study_id} of yours; GET /v1/studies lists them")
        return study

    def own_status(study_id: int, who: str) -> dict[str, Any]:
        """The study's status (a snapshot at most SNAPSHOT_SECONDS old), if the caller owns it."""
        owner_and_status = snapshot(("status", study_id), lambda: _owned_status(study_id))
        if owner_and_status is None or owner_and_status[0] != who:
            raise ApiError(404, f"no study {study_id} of yours; GET /v1/studies lists them")
        return owner_and_status[1]

    def _owned_status(study_id: int) -> tuple[str, dict[str, Any]] | None:
        try:
            study = store().get_study(study_id)
        except NotFoundError:
            return None
        return study.owner, _status(study)

    def own_upload(upload_id: str, who: str, kind: str, field_name: str) -> Upload:
        upload = store().find_upload(upload_id)
        if upload is None or upload.owner != who or upload.kind != kind:
            where = "POST /v1/predictors" if kind == "predictor" else "POST /v1/models"
            raise ApiError(404, f"{field_name} {upload_id!r}: no uploaded {kind} of yours with that id; upload it with {where}")
        return upload

    # ---- errors -----------------------------------------------------------------------------
    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return error(exc.status, exc.message, {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = {404: f"no route {request.url.path}; see /docs", 405: f"{request.method} is not allowed on "
                   f"{request.url.path}; see /docs"}.get(exc.status_code, str(exc.detail))
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:   # every method of the path, not only those of the first route that matched it
            methods = set()
            for route in app.routes:
                match, _ = route.matches(request.scope)
                if match is not Match.NONE and getattr(route, "methods", None):
                    methods |= route.methods
            headers = {"Allow": ", ".join(sorted(methods))}
        return error(exc.status_code, message, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors()[:5]:
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return error(400, "invalid request: " + "; ".join(parts))

    @app.exception_handler(NotFoundError)
    async def _not_found(request: Request, exc: NotFoundError):
        return error(404, str(exc))

    @app.exception_handler(AlreadyExistsError)
    async def _exists(request: Request, exc: AlreadyExistsError):
        return error(409, str(exc))

    @app.exception_handler(LeaseHeldError)
    async def _lease(request: Request, exc: LeaseHeldError):
        return error(409, str(exc))

    @app.exception_handler(StorageUnavailableError)
    async def _unavailable(request: Request, exc: StorageUnavailableError):
        return error(503, "the study store is unreachable; try again shortly")

    @app.exception_handler(EvaluatorError)
    async def _evaluator(request: Request, exc: EvaluatorError):
        return error(400, str(exc))

    @app.exception_handler(SearchError)
    async def _search(request: Request, exc: SearchError):
        return error(400, str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        ref = secrets.token_hex(4)
        log.exception("unexpected error %s on %s %s", ref, request.method, request.url.path)
        return error(500, f"internal error (reference {ref}); the server log has the details")

    # ---- health and dashboard ------------------------------------------------------------------
    @app.get("/healthz", response_model=Health, tags=["service"])
    def healthz() -> Any:
        """No auth: whether the store and the Ray runtime are reachable, and the schema version."""
        try:
            with store().engine.connect() as conn:
                revision, reachable = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar(), True
        except Exception:  # noqa: BLE001 - any failure means unreachable
            revision, reachable = None, False
        ok = reachable and revision == SCHEMA_REVISION and not state["ray"].startswith("unreachable")
        return {"status": "ok" if ok else "degraded", "store": store().display_url, "store_reachable": reachable,
                "schema_revision": revision, "ray": state["ray"], "version": VERSION}

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "dashboard.html", media_type="text/html")

    # ---- uploads -----------------------------------------------------------------------------
    def _model_shape(model: str, who: str) -> list[int] | None:
        if model in BUNDLED_MODELS:
            return list(BUNDLED_MODELS[model][1])
        upload = store().find_upload(model)
        if upload is None or upload.owner != who or upload.kind != "model":
            return None
        return upload.meta["input_shape"]

    def _upload(kind: str, file: UploadFile, metadata: str, who: str) -> tuple[Upload, bool]:
        try:
            meta = json.loads(metadata)
        except json.JSONDecodeError as exc:
            raise ApiError(400, f"field 'metadata' is not valid JSON ({exc.msg} at character {exc.pos})") from None
        if not isinstance(meta, dict):
            raise ApiError(400, "field 'metadata' must be a JSON object, e.g. {\"kind\": \"classifier\", \"model\": "
                                "\"digits\", \"num_classes\": 10}")
        try:
            if kind == "predictor":
                model = meta.get("model")
                meta = check_predictor_metadata(meta, _model_shape(model, who) if isinstance(model, str) else None)
            else:
                meta = check_model_metadata(meta)
        except EvaluatorError as exc:
            raise ApiError(400, str(exc)) from None
        try:
            tmp, sha256, size = upload_files.receive(file.file, settings.limits)
        except upload_files.UploadRejected as exc:
            raise ApiError(exc.status, str(exc)) from None
        upload_id = f"{kind[:4]}-" + hashlib.sha256(f"{who}\n{kind}\n{sha256}\n{json.dumps(meta, sort_keys=True)}"
                                                    .encode()).hexdigest()[:24]
        existing = store().find_upload(upload_id)
        if existing is not None:
            tmp.unlink(missing_ok=True)
            return existing, True
        try:
            found = upload_files.validate(kind, tmp, meta, settings.limits)
        except upload_files.UploadRejected as exc:
            tmp.unlink(missing_ok=True)
            raise ApiError(exc.status, str(exc)) from None
        path = upload_files.store_file(tmp, sha256)
        record = Upload(id=upload_id, owner=who, kind=kind, sha256=sha256, size=size, path=str(path),
                        meta=meta | {"found": found}, created_at=utcnow())
        return store().put_upload(record), False

    upload_doc = ("multipart: `file`, a TorchScript file, and `metadata`, a JSON object. The file is validated in a "
                  "separate process with time and memory limits; the same file and metadata again answer the same id.")

    @app.post("/v1/predictors", response_model=UploadOut, status_code=201, responses=ERRORS, tags=["uploads"],
              description=upload_doc + " Metadata: `kind` (classifier | regressor | log-likelihood), `model` ('digits' "
              "or an uploaded model id), `input_shape`, `num_classes` (classifier), `tolerance` and `targets` (regressor).")
    def upload_predictor(response: Response, file: UploadFile = File(...), metadata: str = Form(...),
                         who: str = Depends(owner)) -> Any:
        record, existing = _upload("predictor", file, metadata, who)
        if existing:
            response.status_code = 200
        return record.to_dict()

    @app.post("/v1/models", response_model=UploadOut, status_code=201, responses=ERRORS, tags=["uploads"],
              description=upload_doc + " A TorchScript ε-network `model(x, t)` with an `alphas_cumprod` buffer. "
              "Metadata: `input_shape`, `prediction` (epsilon | x0 | v), `steps`, `clip_x0`.")
    def upload_model(response: Response, file: UploadFile = File(...), metadata: str = Form(...),
                     who: str = Depends(owner)) -> Any:
        record, existing = _upload("model", file, metadata, who)
        if existing:
            response.status_code = 200
        return record.to_dict()

    @app.get("/v1/predictors", response_model=list[UploadOut], responses=ERRORS, tags=["uploads"])
    def list_predictors(who: str = Depends(owner)) -> Any:
        return [u.to_dict() for u in store().list_uploads(who, "predictor")]

    @app.get("/v1/models", response_model=list[UploadOut], responses=ERRORS, tags=["uploads"])
    def list_models(who: str = Depends(owner)) -> Any:
        return [u.to_dict() for u in store().list_uploads(who, "model")]

    # ---- studies -----------------------------------------------------------------------------------
    def _task_of(body: StudyCreate, who: str) -> str:
        if body.task is not None:
            if body.model is not None or body.predictor_id is not None or body.judge_id is not None:
                raise ApiError(400, "give either 'task' (a bundled task) or 'model' with 'predictor_id' (and "
                                    "optionally 'judge_id'), not both")
            if body.task.endswith(".json"):
                raise ApiError(400, "'task' names a bundled task (GET /docs lists them in `guidetune tasks`); to tune "
                                    "your own predictor, upload it (POST /v1/predictors) and give 'model' and 'predictor_id'")
            return body.task
        if body.model is None or body.predictor_id is None:
            raise ApiError(400, "give 'task' (a bundled task such as 'digits-label'), or 'model' ('digits' or an "
                                "uploaded model id) with 'predictor_id' (an uploaded predictor)")
        predictor = own_upload(body.predictor_id, who, "predictor", "predictor_id")
        judge = None if body.judge_id is None else own_upload(body.judge_id, who, "predictor", "judge_id")
        if predictor.meta["model"] != body.model:
            raise ApiError(400, f"predictor {predictor.id} was uploaded for model {predictor.meta['model']!r}, "
                                f"not {body.model!r}")
        if judge is not None and judge.meta["model"] != body.model:
            raise ApiError(400, f"judge {judge.id} was uploaded for model {judge.meta['model']!r}, not {body.model!r}")
        if body.model in BUNDLED_MODELS:
            model_path, model_meta = body.model, {}
        else:
            model_upload = own_upload(body.model, who, "model", "model")
            model_path, model_meta = model_upload.path, model_upload.meta
        spec = task_spec(model_path, model_meta, (predictor.path, predictor.meta),
                         None if judge is None else (judge.path, judge.meta),
                         name=f"{body.model}-{predictor.id}" + (f"-{judge.id}" if judge else ""))
        text = json.dumps(spec, indent=1, sort_keys=True)
        folder = guidetune_home() / "tasks"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.json"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(path)
        return str(path)

    def _status(study: StudyRecord) -> dict[str, Any]:
        status = service().status(study)
        if status["task"].endswith(".json"):
            status["task"] = Path(status["task"]).stem   # never a server path
        return status

    @app.post("/v1/studies", response_model=StudyOut, status_code=201, responses=ERRORS, tags=["studies"])
    def create_study(body: StudyCreate, response: Response, who: str = Depends(owner),
                     idempotency_key: str | None = Header(None, max_length=200,
                                                          description="a retry with the same key returns the same study")) -> Any:
        """Create a study; it is queued and runs on the service's workers. The same spec again (budgets
        aside) continues the stored study, as the same `guidetune search` command does."""
        request_hash = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
        if idempotency_key is not None:
            known = store().idempotent_study(who, idempotency_key)
            if known is not None:
                if known[0] != request_hash:
                    raise ApiError(409, "this Idempotency-Key was used with a different request; use a new key")
                response.status_code = 200
                return _status(own_study(known[1], who))
        task = _task_of(body, who)
        spec = service().build_spec(task, body.target, body.searcher, objective=body.objective,
                                    max_fd_ratio=body.max_fd_ratio, n_samples=body.n_samples,
                                    searcher_options=body.searcher_options, budget_samples=body.budget_samples,
                                    budget_passes=body.budget_passes, budget_trials=body.budget_trials, seed=body.seed,
                                    num_gpus=body.num_gpus, max_concurrent=body.max_concurrent,
                                    confirm_fraction=body.confirm_fraction, confirm_top=body.confirm_top)
        name = f"{who}/{body.name or service().default_name(spec)}"
        before = {s.id for s in store().list_studies(owner=who)}
        study = service().create_or_continue(spec, name, owner=who)
        if study.id in before:
            response.status_code = 200
        if idempotency_key is not None:
            study = own_study(store().remember_idempotency(who, idempotency_key, request_hash, study.id)[1], who)
        return _status(study)

    @app.get("/v1/studies", response_model=StudyList, responses=ERRORS, tags=["studies"])
    def list_studies(who: str = Depends(owner)) -> Any:
        return {"studies": [_status(s) for s in store().list_studies(owner=who)]}

    @app.get("/v1/studies/{study_id}", response_model=StudyOut, responses=ERRORS, tags=["studies"])
    def get_study(study_id: int = STUDY_ID, who: str = Depends(owner)) -> Any:
        """State, trials by state, budget and spend, the best so far, notices and the time left (as of
        at most a second ago)."""
        return own_status(study_id, who)

    @app.get("/v1/studies/{study_id}/trials", response_model=TrialPage, responses=ERRORS, tags=["studies"])
    def get_trials(study_id: int = STUDY_ID, who: str = Depends(owner),
                   after: int = Query(-1, ge=-1, le=2**31 - 1, description="only trials numbered above this"),
                   limit: int = Query(100, ge=1, le=1000)) -> Any:
        own_status(study_id, who)

        def read() -> dict[str, Any]:
            trials = store().trials_after(study_id, after, limit=limit)
            return {"trials": [_trial(t) for t in trials], "next_after": trials[-1].number if trials else after}
        return snapshot(("trials", study_id, after, limit), read)

    @app.get("/v1/studies/{study_id}/best", response_model=TrialOut, responses=ERRORS, tags=["studies"])
    def get_best(study_id: int = STUDY_ID, who: str = Depends(owner)) -> Any:
        study = own_study(study_id, who)
        best = service().best(study.id)
        if best is None:
            raise ApiError(404, f"study {study_id} has no successful trial yet ({study.state.value}); poll again later")
        return _trial(best)

    @app.get("/v1/studies/{study_id}/export", responses=ERRORS | {200: {
        "description": "the best config (json: with a Python snippet; yaml: the file itself)",
        "content": {"application/json": {"schema": ExportOut.model_json_schema()}, "application/yaml": {}}}},
        tags=["studies"])
    def export(study_id: int = STUDY_ID, who: str = Depends(owner), format: Literal["json", "yaml"] = "json") -> Any:
        """The best configuration as `guidetune sample --config` reads it."""
        study = own_study(study_id, who)
        try:
            record = service().export(study.id)
        except SearchError as exc:
            raise ApiError(404, str(exc)) from None
        if study.spec.task_sha256:
            record["task"] = Path(record["task"]).stem
        if format == "yaml":
            import yaml

            return Response(yaml.safe_dump(record, sort_keys=False), media_type="application/yaml")
        notices = _status(study)["notices"]
        return JSONResponse(ExportOut(config=record, python=python_snippet(record), notices=notices).model_dump())

    @app.post("/v1/studies/{study_id}/cancel", response_model=StudyOut, responses=ERRORS, tags=["studies"])
    def cancel(study_id: int = STUDY_ID, who: str = Depends(owner)) -> Any:
        """A queued study is cancelled at once; a running one after its in-flight trials."""
        study = own_study(study_id, who)
        with snapshot_lock:
            snapshots.pop(("status", study.id), None)
        return _status(service().cancel(study.id))

    @app.get("/v1/studies/{study_id}/trials/{number}/samples.png", responses=ERRORS | {
        200: {"content": {"image/png": {}}, "description": "a grid of 16 samples on fresh seeds"}}, tags=["studies"])
    def samples_png(study_id: int = STUDY_ID, number: int = TRIAL_NUMBER, who: str = Depends(owner)) -> Response:
        """Samples of a finished trial's config on fresh seeds (PNG)."""
        study = own_study(study_id, who)
        try:
            trial = store().trial(study.id, number)
        except NotFoundError:
            raise ApiError(404, f"study {study_id} has no trial {number}") from None
        if trial.result is None:
            raise ApiError(404, f"trial {number} of study {study_id} has no result ({trial.state.value})")
        key = (study.id, number)
        grids, lock = state["grids"], state["grid_lock"]
        with lock:
            png = grids.get(key)
        if png is None:
            png = service().sample_grid(study.id, number)
            with lock:
                grids[key] = png
                while len(grids) > 64:
                    grids.popitem(last=False)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    return app


def _trial(t: Trial) -> dict[str, Any]:
    from guidetune.evaluators.config_io import json_safe

    return json_safe({"number": t.number, "state": t.state.value, "params": t.params, "n_samples": t.n_samples,
                      "seed": t.seed, "score": t.score, "attempt": t.attempt, "worker": t.worker,
                      "fail_reason": t.fail_reason, "metrics": t.result.to_dict() if t.result else None,
                      "tell_seq": t.tell_seq, "finished_at": t.finished_at.isoformat() if t.finished_at else None,
                      "tags": t.tags})
