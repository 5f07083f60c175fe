"""``make demo``: the main job on the embedded defaults — search guidance hyperparameters for the
bundled digits model and a target class, export the best configuration, and show its samples."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from guidetune.evaluators.config_io import json_safe
from guidetune.evaluators.evaluate import evaluate
from guidetune.evaluators.tasks import make_task
from guidetune.guidance import TFGParams, sample
from guidetune.searcher.errors import SearchError
from guidetune.searcher.service import StudyService
from guidetune.storage.store import StudyStore


def run_demo(out: Path, *, task_name: str = "digits-label", target: str = "3", budget_samples: int = 2000,
             searcher: str = "beam-mf", objective: str = "constrained", max_fd_ratio: float = 1.5,
             n_samples: int = 64, seed: int = 0, storage: str | None = None, executor: str = "ray",
             progress: bool = True) -> dict:
    """Search as a stored study (the default store: an SQLite file under GUIDETUNE_HOME), export its
    best configuration, re-check it on fresh seeds and draw the pictures."""
    out.mkdir(parents=True, exist_ok=True)
    service = StudyService(StudyStore(storage))
    spec = service.build_spec(task_name, target, searcher, objective=objective, max_fd_ratio=max_fd_ratio,
                              n_samples=n_samples, budget_samples=budget_samples, seed=seed)
    study = service.create_or_continue(spec)
    outcome = service.run(study.name, executor=executor, progress=progress)
    if outcome.best is None:
        raise SearchError("the demo search found no successful configuration")
    best = TFGParams.from_dict(outcome.best.config)
    record = service.export(study.name)
    (out / "best_config.json").write_text(json.dumps(record, indent=2))

    task = make_task(task_name)
    check_seed = seed + 50_000   # fresh seeds: the reported numbers are not the ones the search selected on
    unguided_result, = evaluate(task, target, [TFGParams()], 64, check_seed)
    best_result, = evaluate(task, target, [best], 64, check_seed)
    yardstick = task.fidelity_yardstick(target, 64, check_seed)[0]
    seeds = range(check_seed, check_seed + 32)
    log_prob = task.guide_log_prob(target, list(seeds))
    grids = {"unguided": sample(task.model, None, TFGParams(), shape=task.shape, seeds=seeds, clip_x0=task.clip_x0),
             "best config": sample(task.model, log_prob, best, shape=task.shape, seeds=seeds, clip_x0=task.clip_x0)}
    _save_grids(grids, out / "samples.png", f"{task_name} target {target}: same seeds, unguided vs searched config")
    _save_curve(outcome.history, out / "search_progress.png")
    return json_safe({
        "task": task_name, "target": target, "searcher": searcher, "study": study.name,
        "storage": service.store.display_url, "objective": service.objective(study.name).to_dict(),
        "samples_spent": outcome.samples_spent, "budget_samples": budget_samples,
        "trials": sum(1 for t in outcome.trials if t.state.is_finished), "stop_reason": outcome.stop_reason,
        "best_params": {k: v for k, v in best.to_dict().items() if k in ("rho", "mu", "gamma", "n_recur", "n_iter")},
        "fresh_seed_check (64 samples)": {
            "unguided": {"judge_accuracy": unguided_result.validity, "fidelity_fd": unguided_result.fidelity_fd},
            "best config": {"judge_accuracy": best_result.validity, "guide_accuracy": best_result.guide_validity,
                            "fidelity_fd": best_result.fidelity_fd, "unguided_class_fd_yardstick": yardstick,
                            "fidelity_constraint_holds": bool(best_result.fidelity_fd <= max_fd_ratio * yardstick)},
        },
        "files": [str(out / name) for name in ("best_config.json", "samples.png", "search_progress.png")],
    })


def _save_grids(grids: dict[str, torch.Tensor], path: Path, title: str) -> None:
    fig, axes = plt.subplots(1, len(grids), figsize=(4.2 * len(grids), 2.6))
    for ax, (name, x) in zip(axes, grids.items()):
        padded = torch.nn.functional.pad(x.clamp(-1, 1), (1, 1, 1, 1), value=-1.0)  # white border per digit
        images = padded.reshape(4, 8, 10, 10).permute(0, 2, 1, 3).reshape(40, 80)
        ax.imshow(images.numpy(), cmap="gray_r", vmin=-1, vmax=1)
        ax.set_title(name)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _save_curve(history, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.2))
    if history:
        xs, ys = zip(*history)
        ax.step(xs, ys, where="post")
    ax.set_xlabel("samples spent")
    ax.set_ylabel("best objective so far")
    ax.set_title("search progress")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
