"""The ``guidetune`` command line (the api layer: parse, call the layers below, print)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_USAGE = 2


def _cmd_demo(args: argparse.Namespace) -> int:
    from guidetune.api.demo import run_demo

    report = run_demo(Path(args.out), task_name=args.task, target=args.target, budget_samples=args.budget_samples,
                      progress=not args.quiet)
    print(json.dumps(report, indent=2))
    return 0


def _cmd_tasks(args: argparse.Namespace) -> int:
    from guidetune.evaluators.tasks import TASKS, get_task

    rows = []
    for name in TASKS:
        task = get_task(name)
        rows.append({"task": name, "targets": task.targets(), "validity": task.validity_metric,
                     "shape": list(task.shape), "description": task.description})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['task']:<16} targets: {', '.join(row['targets'])}\n{'':<16} {row['description']}")
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from guidetune.evaluators.config_io import read_config
    from guidetune.evaluators.tasks import get_task
    from guidetune.guidance import sample

    task = get_task(args.task)
    target = task.check_target(args.target)
    params = read_config(args.config)
    seeds = list(range(args.seed, args.seed + args.n))
    samples = sample(task.model, task.guide_log_prob(target, seeds) if params.needs_log_prob else None, params, shape=task.shape,
                     steps=task.steps, eta=task.eta, seeds=seeds, clip_x0=task.clip_x0, progress=not args.quiet)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, samples=task.export(samples), seeds=np.asarray(seeds), task=task.name, target=target,
             config=json.dumps(params.to_dict()))
    print(f"wrote {args.n} samples of {task.name} target {target} to {out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from guidetune.evaluators.config_io import json_safe, read_config
    from guidetune.evaluators.evaluate import evaluate
    from guidetune.evaluators.tasks import get_task

    task = get_task(args.task)
    (result,) = evaluate(task, args.target, [read_config(args.config)], args.n, args.seed, progress=not args.quiet)
    record = json_safe(result.to_dict())
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        for key in ("validity_metric", "validity", "guide_validity", "fidelity_fd", "kid", "precision", "recall",
                    "forward_passes", "backward_passes", "seconds_per_sample", "failed"):
            print(f"{key:>20}: {record[key]}")
    return 0 if result.ok else 1


def _cmd_search(args: argparse.Namespace) -> int:
    from guidetune.evaluators.config_io import export_record, json_safe
    from guidetune.searcher.local import run_local_search

    search = run_local_search(
        args.task, args.target, args.searcher, budget_samples=args.budget_samples, budget_passes=args.budget_passes,
        seed=args.seed,
        objective=args.objective, max_fd_ratio=args.max_fd_ratio, n_samples=args.n_samples,
        schedules=args.schedules, progress=not args.quiet,
    )
    outcome = search.outcome
    if outcome.best is None:
        print("guidetune search: no trial succeeded; every configuration failed (see --json for reasons)", file=sys.stderr)
    best = outcome.best
    record = export_record(
        outcome.space.to_params(best.params), task=args.task, target=args.target,
        metrics=best.result.to_dict() if best and best.result else {},
    ) if best else None
    summary = {
        "searcher": args.searcher, "objective": search.objective.to_dict(), "best": record,
        "best_score": outcome.best_score, "samples_spent": search.samples_spent,
        "denoiser_passes_spent": outcome.passes_spent, "trials": len(outcome.trials),
        "stop_reason": outcome.stop_reason, "history": [list(h) for h in outcome.history],
        "unguided_fd_yardstick": search.unguided_fd,
    }
    if args.export and record:
        Path(args.export).parent.mkdir(parents=True, exist_ok=True)
        Path(args.export).write_text(json.dumps(record, indent=2))
    if args.optuna_storage:
        from guidetune.searcher.optuna_export import export_to_optuna

        export_to_optuna(outcome.trials, args.optuna_storage, args.study_name or f"{args.task}-{args.target}-{args.searcher}",
                         search.objective, space=outcome.space)
    if args.json:
        print(json.dumps(json_safe(summary), indent=2))
    elif record:
        m = record["metrics"]
        print(f"best {record['params']} \n  validity {m.get('validity')}  fidelity_fd {m.get('fidelity_fd')}  "
              f"after {search.samples_spent} samples ({outcome.stop_reason})")
    return 0 if best else 1


def _add_trial_args(p: argparse.ArgumentParser, *, with_config: bool = True) -> None:
    p.add_argument("--task", required=True, help="a task name (see `guidetune tasks`)")
    p.add_argument("--target", required=True, help="the task's target (see `guidetune tasks`)")
    if with_config:
        p.add_argument("--config", required=True, help="guidance parameters: a JSON file or inline JSON "
                       "(e.g. '{\"rho\": 1, \"mu\": 2, \"gamma\": 0.01}'), or a file written by `guidetune search --export`")
    p.add_argument("--n", type=int, default=64, help="number of samples")
    p.add_argument("--seed", type=int, default=0, help="first sample seed (sample i uses seed + i)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="guidetune", description="Automated hyperparameter search for training-free guidance.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="the main job on the embedded defaults")
    demo.add_argument("--out", default="out/demo", help="folder for the PNGs and the JSON report")
    demo.add_argument("--task", default="digits-label")
    demo.add_argument("--target", default="3")
    demo.add_argument("--budget-samples", type=int, default=1500, help="samples the demo search may draw")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=_cmd_demo)
    tasks = sub.add_parser("tasks", help="list the bundled tasks and their targets")
    tasks.add_argument("--json", action="store_true")
    tasks.set_defaults(func=_cmd_tasks)
    smp = sub.add_parser("sample", help="draw guided samples into an .npz file")
    _add_trial_args(smp)
    smp.add_argument("--out", required=True, help="output .npz (array `samples`; digits on the 0–16 pixel scale)")
    smp.set_defaults(func=_cmd_sample)
    ev = sub.add_parser("evaluate", help="sample and print the metrics of one configuration")
    _add_trial_args(ev)
    ev.add_argument("--json", action="store_true", help="print the TrialResult as JSON")
    ev.set_defaults(func=_cmd_evaluate)
    se = sub.add_parser("search", help="search guidance hyperparameters for a task and target, locally")
    _add_trial_args(se, with_config=False)
    se.add_argument("--searcher", default="beam-mf", help="beam-mf (default) | beam | tpe | tpe-mf | cmaes | random | grid | gp | nsga2")
    se.add_argument("--budget-samples", type=int, help="total samples the search may draw")
    se.add_argument("--budget-passes", type=float, help="total denoiser passes (forward + backward) the search may spend")
    se.add_argument("--n-samples", type=int, default=32, help="samples per trial at full fidelity")
    se.add_argument("--objective", default="validity", help="validity | constrained | pareto")
    se.add_argument("--max-fd-ratio", type=float, default=1.2, help="constrained: fidelity FD ≤ this × the unguided FD")
    se.add_argument("--schedules", action="store_true", help="also search the ρ and μ schedules")
    se.add_argument("--json", action="store_true", help="print the whole outcome as JSON")
    se.add_argument("--export", help="write the best configuration here (the format `--config` reads)")
    se.add_argument("--optuna-storage", help="also write the trials to this Optuna storage URL (e.g. sqlite:///study.db)")
    se.add_argument("--study-name", help="Optuna study name (default TASK-TARGET-SEARCHER)")
    se.set_defaults(func=_cmd_search)
    return parser


def main(argv: list[str] | None = None) -> int:
    from guidetune.evaluators.errors import EvaluatorError
    from guidetune.guidance import GuidanceError
    from guidetune.searcher.errors import SearchError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (EvaluatorError, GuidanceError, SearchError, FileNotFoundError) as exc:
        print(f"guidetune {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
