"""The study service: the one entry point to studies (create from a spec, run, resume, cancel, status,
trials after N, best, export). ``guidetune search`` and the HTTP API are its clients; the store is
the record, the coordinator the only writer of a study's trials (Vizier's service / policy /
datastore roles).

Everything a spec names is checked when the study is created (task, target, searcher, objective,
budgets, the task file's hash), so bad input fails before any sampling. A study's unguided fidelity
yardstick is measured once, stored, and counted against its budget.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Sequence

from guidetune.evaluators.config_io import export_record, json_safe
from guidetune.evaluators.errors import EvaluatorError
from guidetune.evaluators.evaluate import evaluate
from guidetune.evaluators.records import TrialResult
from guidetune.evaluators.tasks import Task, make_task
from guidetune.guidance import TFGParams
from guidetune.storage.errors import AlreadyExistsError
from guidetune.storage.records import StudyRecord, StudySpec, StudyState, Trial
from guidetune.storage.store import StudyStore, coordinator_id

from .base import DEFAULT_SEARCHER, SEARCHER_NAMES, Searcher, make_searcher
from .confirm import ConfirmPolicy
from .confirm import describe as describe_confirmation
from .coordinator import Budget, StopRequest, StudyCoordinator, StudyOutcome, outcome_of, tfg_denoiser_passes
from .errors import BudgetTooSmallError, SearchError, UnknownSearcherError
from .executors import Executor, InProcessExecutor
from .objective import ConstrainedValidity, MaximizeValidity, Objective, ParetoValidityFidelity
from .space import LogFloat, SearchSpace, default_tfg_space

OBJECTIVES = ("auto", "validity", "constrained", "pareto")
DEFAULT_MAX_FD_RATIO = 2.0   # the default guard: fidelity FD within 2× the unguided model's (BENCHMARKS §4, §9)
AUTO_YARDSTICK_SHARE = 0.25  # "auto" guards fidelity when the unguided yardstick costs at most this share of the budget
YARDSTICK_MIN_SAMPLES = 8


class TaskEvaluator:
    """The ``Evaluator`` protocol over a loaded task and target (what a worker holds)."""

    def __init__(self, task: Task, target: str, *, batch_size: int | None = None):
        self.task, self.target, self.batch_size = task, task.check_target(target), batch_size
        self.passes_per_sample = functools.partial(tfg_denoiser_passes, n_steps=task.steps)

    def __call__(self, configs: Sequence[TFGParams], n_samples: int, seed: int) -> list[TrialResult]:
        return evaluate(self.task, self.target, configs, n_samples, seed, batch_size=self.batch_size)


def task_space(task: Task, *, schedules: bool = False) -> SearchSpace:
    """The default TFG space with ρ̄ and μ̄ rescaled by the task's ``strength_scale`` (the
    log-likelihood's steepness differs by orders of magnitude between a classifier and a
    measurement with small noise)."""
    space = default_tfg_space(schedules=schedules)
    scale = getattr(task, "strength_scale", 1.0)
    params = tuple(
        LogFloat(p.name, p.low * scale, p.high * scale, start=p.start * scale, factor=p.factor, cap=p.cap * scale)
        if p.name in ("rho", "mu") else p
        for p in space.params
    )
    return dataclasses.replace(space, params=params)


def yardstick_sizes(n_samples: int, *, smallest: int = YARDSTICK_MIN_SAMPLES) -> list[int]:
    """``n_samples, n_samples/2, …`` down to ``smallest``: every count a multi-fidelity rung may use."""
    sizes = [n_samples]
    while sizes[-1] // 2 >= smallest:
        sizes.append(sizes[-1] // 2)
    return sizes


def fidelity_yardsticks(task: Task, target: str, n_samples: int, seed: int, *,
                        max_draw: int | None = None) -> tuple[dict[int, float], int]:
    """The unguided FD at n_samples, n_samples/2, … (FD is biased upward at small n, so each trial is
    held against its own n), all from ONE draw of ``n_samples`` unguided samples of the target (the
    smaller counts use its first rows), and the samples drawn for it."""
    from guidetune.evaluators import metrics

    samples, drawn = task.yardstick_samples(target, n_samples, seed, max_draw=max_draw)
    reference = task.reference_features(target)
    table = {n: metrics.frechet_distance(task.features(samples[:n]), reference) for n in yardstick_sizes(n_samples)}
    return table, drawn


def build_objective(kind: str, task: Task, unguided_fd: dict[int, float] | float | None, max_fd_ratio: float) -> Objective:
    lo, hi = task.validity_range
    if kind == "validity":
        return MaximizeValidity(validity_range=(lo, hi))
    values = list(unguided_fd.values()) if isinstance(unguided_fd, dict) else [unguided_fd]
    if unguided_fd is None or not all(v is not None and math.isfinite(v) and v > 0 for v in values):
        raise SearchError(f"objective {kind!r} needs a finite unguided Fréchet distance as its yardstick; "
                          "the task has no reference data for fidelity")
    if kind == "constrained":
        return ConstrainedValidity(unguided_fd=unguided_fd, max_ratio=max_fd_ratio, validity_range=(lo, hi))
    if kind == "pareto":
        return ParetoValidityFidelity(unguided_fd=unguided_fd, validity_range=(lo, hi))
    raise SearchError(f"unknown objective {kind!r}; choose one of {list(OBJECTIVES)}")


def load_task(spec: StudySpec, device: str = "cpu") -> Task:
    """The spec's task; a task file must still have the content it had when the study was created."""
    if spec.task_sha256 is not None:
        digest = _sha256(Path(spec.task))
        if digest != spec.task_sha256:
            raise EvaluatorError(f"the task file {spec.task} changed since the study was created (sha256 {digest[:12]}… "
                                 f"instead of {spec.task_sha256[:12]}…); restore it or start a new study")
    return make_task(spec.task, device)


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise EvaluatorError(f"cannot read the task file {path}: {exc.strerror}") from None


class StudyService:
    """Studies on one store: create, run (and resume), cancel, read."""

    def __init__(self, store: StudyStore) -> None:
        self.store = store

    # ---- create ---------------------------------------------------------------------------------
    def build_spec(self, task: str, target: str, searcher: str = DEFAULT_SEARCHER, *, objective: str = "auto",
                   max_fd_ratio: float = DEFAULT_MAX_FD_RATIO, n_samples: int = 32, schedules: bool = False,
                   searcher_options: dict[str, Any] | None = None, budget_samples: int | None = None,
                   budget_passes: float | None = None, budget_trials: int | None = None, seed: int = 0,
                   num_cpus: float = 1.0, num_gpus: float = 0.0, max_concurrent: int = 1,
                   confirm_fraction: float = 0.2, confirm_top: int = 3) -> StudySpec:
        """A checked spec: every name resolves, the budget pays for the yardstick and one trial.
        Raises before any sampling; messages name the command-line flags. ``objective="auto"`` is
        ``constrained`` (fidelity within ``max_fd_ratio`` × the unguided FD) where the task has reference
        data and the budget pays for its yardstick (``auto_objective``), else ``validity``; the spec
        stores the one chosen."""
        loaded = make_task(task)
        target = loaded.check_target(target)
        if searcher not in SEARCHER_NAMES:
            raise UnknownSearcherError(f"unknown searcher {searcher!r}; known searchers: {', '.join(SEARCHER_NAMES)}")
        if objective not in OBJECTIVES:
            raise SearchError(f"unknown objective {objective!r} (--objective); choose one of {list(OBJECTIVES)}")
        if not isinstance(n_samples, int) or n_samples < 1:
            raise SearchError(f"--n-samples must be a positive integer, got {n_samples!r}")
        if budget_samples is None and budget_passes is None and budget_trials is None:
            raise SearchError("give a budget: --budget-samples (samples drawn) and/or --budget-passes (denoiser passes)")
        Budget(budget_samples, budget_passes, budget_trials)   # positive or None
        if not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise SearchError(f"--max-concurrent must be a positive integer, got {max_concurrent!r}")
        if not (num_cpus >= 0 and num_gpus >= 0):
            raise SearchError(f"--num-cpus and --num-gpus must be >= 0, got {num_cpus} and {num_gpus}")
        if confirm_fraction != 0:
            ConfirmPolicy(fraction=confirm_fraction, top=confirm_top)    # checked: in (0, 1), top >= 1
        if objective == "auto":
            objective = auto_objective(loaded, target, n_samples, budget_samples)
        if objective != "validity" and not getattr(loaded, "has_reference", True):
            raise SearchError(f"--objective {objective} needs the task's reference data for fidelity; task "
                              f"{loaded.name!r} has none: use --objective validity or add a 'reference' to its spec")
        space = task_space(loaded, schedules=schedules)
        spec = StudySpec(
            task=str(Path(task).resolve()) if task.endswith(".json") else task, target=target, searcher=searcher,
            space=space.to_dict(), objective=objective, max_fd_ratio=float(max_fd_ratio), n_samples=n_samples,
            searcher_options=dict(searcher_options or {}), budget_samples=budget_samples, budget_passes=budget_passes,
            budget_trials=budget_trials, seed=seed,
            task_sha256=_sha256(Path(task)) if task.endswith(".json") else None,
            judge=None if getattr(loaded, "judge_is_guide", False) else "independent",
            num_cpus=float(num_cpus), num_gpus=float(num_gpus), max_concurrent=max_concurrent,
            confirm_fraction=float(confirm_fraction), confirm_top=confirm_top)
        searcher_obj = self._searcher(spec, MaximizeValidity())   # options checked by the constructor
        if budget_samples is not None:
            first = min_first_trial(searcher_obj)
            need = first + (self._yardstick_cost(spec) if objective != "validity" else 0)
            policy = confirm_policy(spec)
            share = budget_samples if policy is None else Budget(budget_samples).search_share(policy, n_samples).samples
            if need > share:
                what = "the unguided yardstick and one trial" if objective != "validity" else "one trial"
                held = "" if share == budget_samples else f" after {budget_samples - share} held back for the confirmation"
                raise BudgetTooSmallError(f"--budget-samples {budget_samples} cannot pay for {what} ({need} samples){held}; "
                                          "raise --budget-samples or lower --n-samples")
        return spec

    @staticmethod
    def _yardstick_cost(spec: StudySpec) -> int:
        return spec.n_samples   # at least: a class-conditional yardstick draws more (counted as drawn)

    @staticmethod
    def default_name(spec: StudySpec) -> str:
        """Same spec (budgets aside), same name: running the same command again continues the study."""
        digest = hashlib.sha256(json.dumps(spec.identity(), sort_keys=True).encode()).hexdigest()[:8]
        task = Path(spec.task).stem if spec.task_sha256 else spec.task
        return f"{task}-{spec.target}-{spec.searcher}-seed{spec.seed}-{digest}"

    def create_or_continue(self, spec: StudySpec, name: str | None = None, *, owner: str = "local") -> StudyRecord:
        """A new study, or the stored one of that name when its spec matches (budgets may change)."""
        name = name or self.default_name(spec)
        try:
            return self.store.create_study(name, spec, owner=owner)
        except AlreadyExistsError:
            study = self.store.get_study(name)
        if study.spec.identity() != spec.identity():
            diff = sorted(k for k, v in spec.identity().items() if study.spec.identity().get(k) != v)
            raise AlreadyExistsError(f"study {name!r} exists with a different spec (differs in {diff}); choose another "
                                     "--study name, or repeat the original command to continue it")
        if study.spec != spec:
            study = self.store.update_budgets(study.id, spec)
        return study

    # ---- run ------------------------------------------------------------------------------------
    def _searcher(self, spec: StudySpec, objective: Objective) -> Searcher:
        try:
            return make_searcher(spec.searcher, SearchSpace.from_dict(spec.space), objective, spec.seed,
                                 n_samples=spec.n_samples, **spec.searcher_options)
        except TypeError as exc:   # an option the searcher's constructor does not take
            raise SearchError(f"searcher {spec.searcher!r} does not take the options {spec.searcher_options}: "
                              f"{exc}") from None

    def executor(self, spec: StudySpec, kind: str = "local", *, ray_address: str | None = None,
                 task: Task | None = None) -> Executor:
        """``local``: groups run in this process, one at a time; ``ray``: on Ray actors (a local Ray is
        started unless ``ray_address`` / ``GUIDETUNE_RAY_ADDRESS`` names a cluster). Resources are
        checked here, before the study runs."""
        if kind == "local":
            return InProcessExecutor(TaskEvaluator(task or load_task(spec), spec.target))
        if kind == "ray":
            from .ray_executor import RayExecutor, connect_ray

            connect_ray(ray_address)
            return RayExecutor(spec.task, spec.target, spec.task_sha256, capacity=spec.max_concurrent,
                               num_cpus=spec.num_cpus, num_gpus=spec.num_gpus)
        raise SearchError(f"unknown executor {kind!r} (--executor); choose 'ray' or 'local'")

    def run(self, key: int | str, *, executor: Executor | str = "local", ray_address: str | None = None,
            progress: bool = False, stop: StopRequest = None, pause: StopRequest = None,
            max_pack: int | None = None) -> StudyOutcome:
        """Run a queued study, or resume one a dead coordinator left; a finished study is returned as is.
        ``executor``: an Executor, or ``local`` / ``ray`` (see ``executor``); it is closed at the end.
        ``stop`` ends the study as cancelled, ``pause`` leaves it QUEUED (both after in-flight trials)."""
        study = self.store.get_study(key)
        spec = study.spec
        space = SearchSpace.from_dict(spec.space)
        if study.state in (StudyState.COMPLETE, StudyState.CANCELLED):
            return outcome_of(self.store, study.id, space)
        task = load_task(spec)   # here for the cost model, objective and yardstick; once
        if isinstance(executor, str):
            executor = self.executor(spec, executor, ray_address=ray_address, task=task)
        try:
            return self._run(study, executor, task, progress=progress, stop=stop, pause=pause, max_pack=max_pack)
        finally:
            executor.close()

    def _run(self, study: StudyRecord, executor: Executor, task: Task, *, progress: bool, stop: StopRequest,
             pause: StopRequest, max_pack: int | None) -> StudyOutcome:
        spec = study.spec
        evaluator = TaskEvaluator(task, spec.target)
        study = self.store.claim_study(study.id, coordinator_id())
        if spec.objective != "validity":
            try:
                study = self._ensure_yardstick(study, task)
            except BaseException as exc:
                self.store.release_study(study.id, coordinator_id(), StudyState.FAILED, f"{type(exc).__name__}: {exc}")
                raise
        objective = self._objective(study, task)
        coordinator = StudyCoordinator(
            self.store, study.id, self._searcher(spec, objective), executor,
            budget=Budget(spec.budget_samples, spec.budget_passes, spec.budget_trials),
            passes_per_sample=evaluator.passes_per_sample, max_pack=max_pack, stop=stop, pause=pause, progress=progress,
            confirm=confirm_policy(spec))
        return coordinator.run()

    def _ensure_yardstick(self, study: StudyRecord, task: Task) -> StudyRecord:
        """Measure the unguided FD table once per study, inside the budget, and store it."""
        if study.yardstick is not None:
            return study
        spec = study.spec
        max_draw = None
        if spec.budget_samples is not None:
            max_draw = spec.budget_samples - study.samples_spent - min_first_trial(self._searcher(spec, MaximizeValidity()))
        seed = spec.seed + 2_000_003   # unguided seeds of their own, apart from the trials'
        try:
            table, drawn = fidelity_yardsticks(task, spec.target, spec.n_samples, seed, max_draw=max_draw)
        except EvaluatorError as exc:
            raise BudgetTooSmallError(f"{exc} (--budget-samples {spec.budget_samples})") from None
        passes = float(drawn * task.steps)
        return self.store.record_yardstick(study.id, coordinator_id(), {"fd": {str(n): fd for n, fd in table.items()},
                                                             "samples": drawn, "passes": passes, "seed": seed},
                                           drawn, passes)

    def _objective(self, study: StudyRecord, task: Task) -> Objective:
        unguided = None if study.yardstick is None else {int(n): fd for n, fd in study.yardstick["fd"].items()}
        return build_objective(study.spec.objective, task, unguided, study.spec.max_fd_ratio)

    def objective(self, key: int | str) -> Objective:
        """The study's objective as its searcher scores trials (needs its yardstick, once measured)."""
        study = self.store.get_study(key)
        return self._objective(study, load_task(study.spec))

    # ---- control and reads ----------------------------------------------------------------------------
    def cancel(self, key: int | str) -> StudyRecord:
        return self.store.request_cancel(self.store.get_study(key).id)

    def status(self, key: int | str | StudyRecord) -> dict[str, Any]:
        """What a poller wants: state, trials by state, budget and spend, the best so far, whether the
        constraint holds, who judged validity, and an estimate of the time left (two reads: the study
        row, when not given, and its best trial)."""
        study = key if isinstance(key, StudyRecord) else self.store.get_study(key)
        best = None if study.best_number is None else self.store.trial(study.id, study.best_number)
        spec = study.spec
        return json_safe({
            "id": study.id, "name": study.name, "state": study.state.value, "stop_reason": study.stop_reason,
            "task": spec.task, "target": spec.target, "searcher": spec.searcher, "objective": spec.objective,
            "trials": study.counts,
            "budget": {"samples": spec.budget_samples, "passes": spec.budget_passes, "trials": spec.budget_trials},
            "spent": {"samples": study.samples_spent, "passes": study.passes_spent},
            "yardstick_samples": (study.yardstick or {}).get("samples", 0),
            "best": None if best is None else {"number": best.number, "score": best.score, "params": best.params,
                                               "n_samples": best.n_samples,
                                               "metrics": best.result.to_dict() if best.result else None,
                                               "confirmed": confirmed(study)},
            "confirmation": confirmation_status(study),
            "created_at": study.created_at.isoformat(), "finished_at": study.finished_at.isoformat()
            if study.finished_at else None,
            "judge": "guide" if spec.judge is None else "independent",
            "notices": study_notices(study, best),
            "feasible": feasible(study, best),
            "eta_seconds": eta_seconds(study),
        })

    def trials_after(self, key: int | str, after: int = -1, limit: int = 100) -> list[Trial]:
        return self.store.trials_after(self.store.get_study(key).id, after, limit=limit)

    def sample_grid(self, key: int | str, number: int, *, n: int = 16, seed: int = 1_000_000) -> bytes:
        """A PNG of ``n`` samples of trial ``number``'s config on fresh seeds (a trial of the study that
        finished; the same picture for the same arguments)."""
        from guidetune.evaluators.plots import samples_png
        from guidetune.guidance import sample

        study = self.store.get_study(key)
        trial = self.store.trial(study.id, number)
        task = load_task(study.spec)
        params = TFGParams.from_dict(trial.config)
        seeds = list(range(seed, seed + n))
        log_prob = task.guide_log_prob(study.spec.target, seeds) if params.needs_log_prob else None
        x = sample(task.model, log_prob, params, shape=task.shape, steps=task.steps, eta=task.eta, seeds=seeds,
                   clip_x0=task.clip_x0, device=task.device)
        return samples_png(x, f"trial {number}: {n} samples, seeds {seed}…")

    def best(self, key: int | str) -> Trial | None:
        return self.store.best_trial(self.store.get_study(key).id)

    def export(self, key: int | str) -> dict[str, Any]:
        """The best configuration as ``guidetune sample --config`` reads it, with where it came from."""
        study = self.store.get_study(key)
        best = self.store.best_trial(study.id)
        if best is None:
            raise SearchError(f"study {study.name!r} has no successful trial yet ({study.state.value}); nothing to export")
        record = export_record(TFGParams.from_dict(best.config), task=study.spec.task, target=study.spec.target,
                               metrics=best.result.to_dict() if best.result else {})
        record["study"] = {"name": study.name, "trial": best.number, "score": best.score,
                           "objective": study.spec.objective, "searcher": study.spec.searcher}
        record["confirmed"] = confirmed(study)
        record["notices"] = study_notices(study, best)
        return record


def auto_objective(task: Task, target: str, n_samples: int, budget_samples: int | None) -> str:
    """``constrained`` where the task has reference data and the budget pays for the unguided yardstick
    with room to spare (at most ``AUTO_YARDSTICK_SHARE`` of it), else ``validity``."""
    if not getattr(task, "has_reference", True):
        return "validity"
    if budget_samples is not None and task.yardstick_cost(target, n_samples) > AUTO_YARDSTICK_SHARE * budget_samples:
        return "validity"
    return "constrained"


def confirm_policy(spec: StudySpec) -> ConfirmPolicy | None:
    """The spec's confirmation on fresh seeds, or None when it is turned off (``confirm_fraction`` 0)."""
    return ConfirmPolicy(fraction=spec.confirm_fraction, top=spec.confirm_top) if spec.confirm_fraction > 0 else None


JUDGE_IS_GUIDE = ("no separate judge: validity was scored by the guide itself (optimistic: guidance climbs the "
                  "guide's gradient and can fool it), and fidelity metrics compare with the model's own samples")


def confirmed(study: StudyRecord) -> dict[str, Any] | None:
    """The winner's fresh-seed numbers (``confirm.summarise``) with the interval's level and what the search
    saw, once the confirmation is done; None before, or without one."""
    c = study.confirmation
    if not c or c.get("state") != "done" or c.get("winner") is None:
        return None
    return {**c["winner"], "level": c["level"], "search_best": c.get("search_best"),
            "search_best_lost": c.get("search_best_lost"), "summary": describe_confirmation(c)}


def confirmation_status(study: StudyRecord) -> dict[str, Any] | None:
    """The confirmation for a poller: its state (running | done | skipped), the plan and, when done,
    each candidate's fresh-seed result (without the full configs)."""
    c = study.confirmation
    if not c:
        return None
    out = {k: v for k, v in c.items() if k not in ("candidates", "results", "winner")}
    out["candidates"] = c.get("results") or [{k: v for k, v in cand.items() if k != "config"}
                                             for cand in c.get("candidates", [])]
    out["summary"] = describe_confirmation(c)
    return out


def feasible(study: StudyRecord, best: Trial | None) -> bool | None:
    """For a constrained study: whether its best keeps fidelity within the stated factor of unguided
    sampling — on the fresh seeds of the confirmation when there is one, else on the search's own
    (None for other objectives, or before a best and a yardstick exist)."""
    if study.spec.objective != "constrained" or best is None or best.result is None or study.yardstick is None:
        return None
    fresh = confirmed(study)
    if fresh is not None and fresh.get("constraint") is not None:
        return fresh["constraint"] <= 0
    table = {int(n): fd for n, fd in study.yardstick["fd"].items()}
    violation = ConstrainedValidity(unguided_fd=table, max_ratio=study.spec.max_fd_ratio).constraint(best.result)
    return violation is not None and violation <= 0


def study_notices(study: StudyRecord, best: Trial | None) -> list[str]:
    """What a user must be told beside the numbers (the API, the CLI and the dashboard show them)."""
    notes = []
    if study.spec.judge is None:
        notes.append(JUDGE_IS_GUIDE)
    if feasible(study, best) is False:
        where = "on fresh seeds" if confirmed(study) is not None else "in the search"
        notes.append(f"infeasible: the best does not keep fidelity within {study.spec.max_fd_ratio:g}× the unguided FD "
                     f"{where}; it is the least-violating candidate. Raise --max-fd-ratio or use --objective "
                     "validity/pareto")
    c = study.confirmation or {}
    if c.get("state") == "skipped":
        notes.append(f"the best was not re-checked on fresh seeds: {c['reason']}; its score is the search's own "
                     "(optimistic)")
    if c.get("search_best_lost"):
        seen, w = c["search_best"], c["winner"]
        notes.append(f"winner's curse: the search's best scored {seen['score']:.4g} on its own seeds, above the "
                     f"{c['level']:.0%} interval of the winner on fresh seeds ({w['score']:.4g} ± "
                     f"{w['score_half_width']:.2g}); expect the fresh number")
    if study.state is StudyState.FAILED:
        notes.append(f"the study failed: {study.stop_reason}")
    return notes


def eta_seconds(study: StudyRecord) -> float | None:
    """Seconds left at the study's rate so far (samples per second since it started), against its
    sample budget; None when it is not running, has no sample budget or has not spent yet."""
    if study.state is not StudyState.RUNNING or study.spec.budget_samples is None or study.started_at is None:
        return None
    from guidetune.storage.store import utcnow

    elapsed = (utcnow() - study.started_at).total_seconds()
    spent = study.samples_spent
    if spent <= 0 or elapsed <= 0:
        return None
    return max(0.0, (study.spec.budget_samples - spent) * elapsed / spent)


def min_first_trial(searcher: Searcher) -> int:
    """Samples of the cheapest trial the searcher's first round can hold (its first level or rung)."""
    levels = getattr(searcher, "levels", None) or getattr(searcher, "rungs", None)
    return int(levels[0]) if levels else int(searcher.n_samples)


def python_snippet(record: dict[str, Any]) -> str:
    """A short, runnable example of using an exported configuration."""
    params = {k: v for k, v in record["params"].items() if v != TFGParams().to_dict().get(k)}
    return (
        "from guidetune.evaluators.tasks import make_task\n"
        "from guidetune.guidance import TFGParams, sample\n\n"
        f"params = TFGParams.from_dict({json.dumps(params)})\n"
        f"task = make_task({record['task']!r})\n"
        "seeds = list(range(16))\n"
        f"log_prob = task.guide_log_prob({record['target']!r}, seeds)\n"
        "x = sample(task.model, log_prob, params, shape=task.shape, steps=task.steps, eta=task.eta,\n"
        "           seeds=seeds, clip_x0=task.clip_x0)\n"
    )


