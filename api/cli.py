"""The ``guidetune`` command line (the api layer: parse, call the study service and the layers below, print).

Every search is a stored study (``--storage`` / ``GUIDETUNE_DATABASE_URL``, default an SQLite file
under ``GUIDETUNE_HOME``): running the same command again continues it. Bad input — an unknown flag,
name or file, a malformed URL or config — exits 2 with a message naming the flag as typed, before
any sampling.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

EXIT_USAGE = 2
EXIT_INFEASIBLE = 3   # the search finished, but no trial met the fidelity constraint


def _print_json(obj, **kwargs) -> None:
    """JSON for a person at a terminal (or a program): "±" and "−" as themselves, not as \\u escapes."""
    print(json.dumps(obj, indent=2, ensure_ascii=False, **kwargs))


# ---- library commands ------------------------------------------------------------------------------
def _cmd_demo(args: argparse.Namespace) -> int:
    from guidetune.api.demo import run_demo

    report = run_demo(Path(args.out), task_name=args.task, target=args.target, budget_samples=args.budget_samples,
                      storage=args.storage, executor=args.executor, port=args.port, keep_serving=args.keep_serving,
                      progress=not args.quiet)
    _print_json(report)
    return 0


def _cmd_tasks(args: argparse.Namespace) -> int:
    from guidetune.evaluators.tasks import TASKS, make_task

    rows = []
    for name in TASKS:
        task = make_task(name)
        rows.append({"task": name, "targets": task.targets(), "validity": task.validity_metric,
                     "shape": list(task.shape), "description": task.description})
    if args.json:
        _print_json(rows)
    else:
        for row in rows:
            print(f"{row['task']:<16} targets: {', '.join(row['targets'])}\n{'':<16} {row['description']}")
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from guidetune.evaluators.config_io import read_config
    from guidetune.evaluators.tasks import make_task
    from guidetune.guidance import sample

    task = make_task(args.task)
    target = task.check_target(args.target)
    params = read_config(args.config, task=args.task)
    out = Path(args.out)
    _check_folder(out, "--out")
    seeds = list(range(args.seed, args.seed + args.n))
    samples = sample(task.model, task.guide_log_prob(target, seeds) if params.needs_log_prob else None, params,
                     shape=task.shape, steps=task.steps, eta=task.eta, seeds=seeds, clip_x0=task.clip_x0,
                     progress=not args.quiet)
    np.savez(out, samples=task.export(samples), seeds=np.asarray(seeds), task=task.name, target=target,
             config=json.dumps(params.to_dict()))
    print(f"wrote {args.n} samples of {task.name} target {target} to {out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from guidetune.evaluators.config_io import json_safe, read_config
    from guidetune.evaluators.evaluate import evaluate
    from guidetune.evaluators.tasks import make_task

    task = make_task(args.task)
    params = read_config(args.config, task=args.task)
    (result,) = evaluate(task, args.target, [params], args.n, args.seed, progress=not args.quiet)
    record = json_safe({"task": task.name, "target": args.target, "config": params.to_dict(), **result.to_dict()})
    if args.json:
        _print_json(record)
    else:
        for key in ("validity_metric", "validity", "guide_validity", "fidelity_fd", "kid", "precision", "recall",
                    "forward_passes", "backward_passes", "seconds_per_sample", "failed"):
            print(f"{key:>20}: {record[key]}")
    return 0 if result.ok else 1


# ---- studies -----------------------------------------------------------------------------------------
def _service(args: argparse.Namespace):
    from guidetune.searcher.service import StudyService
    from guidetune.storage.store import StudyStore

    return StudyService(StudyStore(args.storage))


def _cmd_search(args: argparse.Namespace) -> int:
    from guidetune.evaluators.config_io import json_safe
    from guidetune.searcher.errors import SearchError
    from guidetune.storage.engine import check_url

    if args.optuna_storage:
        check_url(args.optuna_storage, flag="--optuna-storage")
    if args.export:
        _check_folder(Path(args.export), "--export")
    service = _service(args)
    spec = service.build_spec(args.task, args.target, args.searcher, objective=args.objective,
                              max_fd_ratio=args.max_fd_ratio, n_samples=args.n_samples, schedules=args.schedules,
                              budget_samples=args.budget_samples, budget_passes=args.budget_passes, seed=args.seed,
                              num_cpus=args.num_cpus, num_gpus=args.num_gpus, max_concurrent=args.max_concurrent,
                              confirm_fraction=args.confirm_fraction, confirm_top=args.confirm_top,
                              searcher_options=dict(args.searcher_option))
    if args.executor == "local" and args.ray_address:
        raise SearchError("--ray-address needs --executor ray (the default); drop one of them")
    executor = service.executor(spec, args.executor, ray_address=args.ray_address)   # resources checked here
    study = service.create_or_continue(spec, args.study)
    if not args.quiet:
        print(f"study {study.name!r} in {service.store.display_url} ({study.state.value}); run the same command "
              "again to resume it", file=sys.stderr)
    outcome = service.run(study.name, executor=executor, progress=not args.quiet)
    status = service.status(study.name)
    record = service.export(study.name) if outcome.best is not None else None
    summary = {
        "study": study.name, "storage": service.store.display_url, "searcher": spec.searcher,
        "objective": spec.objective, "best": record, "best_score": outcome.best_score,
        "samples_spent": outcome.samples_spent, "denoiser_passes_spent": outcome.passes_spent,
        "budget_samples": spec.budget_samples, "trials": status["trials"], "stop_reason": outcome.stop_reason,
        "history": [list(h) for h in outcome.history], "yardstick_samples": status["yardstick_samples"],
        "max_fd_ratio": spec.max_fd_ratio if spec.objective == "constrained" else None,
        "confirmation": status["confirmation"],
    }
    if record is None:
        print("guidetune search: no trial succeeded; every configuration failed (see `guidetune study show "
              f"{study.name} --trials` for the reasons)", file=sys.stderr)
    if args.export and record:
        Path(args.export).write_text(json.dumps(record, indent=2))
    if args.optuna_storage:
        from guidetune.searcher.optuna_export import export_to_optuna

        from guidetune.searcher.confirm import is_confirmation

        export_to_optuna([t for t in outcome.trials if not is_confirmation(t)], args.optuna_storage, args.optuna_study or study.name,
                         service.objective(study.name), space=outcome.space)
    summary["notices"] = status["notices"]
    if args.json:
        _print_json(json_safe(summary))
    elif record:
        m = record["metrics"]
        print(f"objective {_objective_text(spec)}\nbest {record['params']}\n  in the search: validity {m.get('validity')}"
              f"  fidelity_fd {m.get('fidelity_fd')}\n  {_stop_text(status)}; study {study.name!r}")
        if status["confirmation"] is not None:
            print(f"  {status['confirmation']['summary']}")
    for note in status["notices"]:
        print(f"guidetune search: note: {note}", file=sys.stderr)
    if status["feasible"] is False:
        return EXIT_INFEASIBLE
    return 0 if record else 1


DEFAULT_SEARCHER = "tpe"   # guidetune.searcher.base.DEFAULT_SEARCHER, written out: the CLI starts without torch


def _searcher_option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE (e.g. start=center or beam_width=3)")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _objective_text(spec) -> str:
    if spec.objective == "constrained":
        return f"constrained: maximise validity with fidelity FD ≤ {spec.max_fd_ratio:g} × the unguided model's"
    return spec.objective


def _stop_text(status: dict) -> str:
    """Why the study stopped and what it spent: the unguided yardstick, the search and the confirmation apart."""
    spent, budget, c = status["spent"]["samples"], status["budget"]["samples"], status["confirmation"]
    yardstick = status["yardstick_samples"]
    of = f" of {budget}" if budget else ""
    parts = [f"the unguided yardstick {yardstick}"] if yardstick else []
    if not c:
        parts.append(f"the search {spent - yardstick} (stopped: {status['stop_reason']})")
    else:
        searched = c["search_samples"]   # counts the yardstick
        parts += [f"the search {searched - yardstick} (stopped: {c['search_stop']})",
                  f"the fresh-seed confirmation {spent - searched}"]
    return f"spent {spent}{of} samples: " + ", ".join(parts)


def _cmd_studies(args: argparse.Namespace) -> int:
    service = _service(args)
    rows = [service.status(s.id) for s in service.store.list_studies()]
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print(f"no studies in {service.store.display_url}")
    for r in rows:
        best = r["best"]["score"] if r["best"] else None
        print(f"{r['name']:<48} {r['state']:<9} {r['spent']['samples']:>7} samples  best {best}  "
              f"({r['stop_reason'] or '-'})")
    return 0


def _cmd_study_show(args: argparse.Namespace) -> int:
    from guidetune.evaluators.config_io import json_safe

    service = _service(args)
    status = service.status(args.name)
    if args.trials:
        status["trial_list"] = [json_safe(t.to_dict()) for t in service.trials_after(args.name, -1, limit=10**9)]
    if args.json:
        _print_json(status, default=str)
        return 0
    _print_status(status)
    for t in status.get("trial_list", []):
        print(f"  #{t['number']:<5} {t['state']:<9} n={t['n_samples']:<4} score={t['score']} {t['params']}"
              + (f"  ({t['fail_reason']})" if t["fail_reason"] else ""))
    return 0


def _print_status(status: dict) -> None:
    for key in ("name", "state", "stop_reason", "task", "target", "searcher", "objective", "judge", "trials",
                "budget", "spent"):
        print(f"{key:>12}: {status[key]}")
    best = status["best"]
    print(f"{'best':>12}: " + ("none yet" if best is None else
                               f"trial {best['number']} score {best['score']} params {best['params']}"))
    if status["confirmation"] is not None:
        print(f"{'confirmation':>12}: {status['confirmation']['summary']}")
    for note in status["notices"]:
        print(f"{'note':>12}: {note}")


def _cmd_export(args: argparse.Namespace) -> int:
    from guidetune.searcher.service import python_snippet

    if args.server or os.environ.get("GUIDETUNE_SERVER"):
        with _client(args) as client:
            answer = client.export(_study_id(args.name), "json")
        record = answer["config"] | {"python": answer["python"]}
    else:
        record = _service(args).export(args.name)
        record["python"] = python_snippet(record)
    if args.format == "yaml":
        import yaml

        text = yaml.safe_dump(record, sort_keys=False)
    else:
        text = json.dumps(record, indent=2)
    if args.out:
        _check_folder(Path(args.out), "--out")
        Path(args.out).write_text(text)
        print(f"wrote the best configuration of study {args.name!r} to {args.out}", file=sys.stderr)
    else:
        print(text)
    return 0


def _cmd_cancel(args: argparse.Namespace) -> int:
    study = _service(args).cancel(args.name)
    print(f"study {study.name!r}: {study.state.value}" + (" (stops after its running trials)"
                                                          if study.state.value == "running" else ""))
    return 0


# ---- the service: server, tokens and the HTTP client ----------------------------------------------------
def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from guidetune.api.server import Settings, create_app
    from guidetune.storage.engine import check_url, resolve_url

    if args.executor == "local" and args.ray_address:
        raise ValueError("--ray-address needs --executor ray (the default); drop one of them")
    if args.no_runner and (args.ray_address or args.executor != "ray"):
        raise ValueError("--no-runner runs no studies: --executor and --ray-address do not apply; drop them")
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be in 1–65535, got {args.port}")
    if args.max_studies < 1:
        raise ValueError(f"--max-studies must be at least 1, got {args.max_studies}")
    check_url(resolve_url(args.storage))
    app = create_app(Settings(storage=args.storage, executor=args.executor, ray_address=args.ray_address,
                              max_studies=args.max_studies, run_studies=not args.no_runner))
    print(f"guidetune serving on http://{args.host}:{args.port} (dashboard at /, API docs at /docs); "
          "Ctrl-C pauses running studies, which continue when it starts again", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")   # re-raises a SIGTERM it caught
    return 0


def _cmd_token(args: argparse.Namespace) -> int:
    from guidetune.api.server import create_token
    from guidetune.storage.store import StudyStore

    print(create_token(StudyStore(args.storage), args.owner))
    print(f"a new API token for owner {args.owner!r}, shown only now; use it as GUIDETUNE_TOKEN or "
          "'Authorization: Bearer TOKEN'", file=sys.stderr)
    return 0


def _client(args: argparse.Namespace):
    from guidetune.api.client import Client

    return Client(args.server, args.token)


def _study_id(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"a study id on the server is a number (see `guidetune status`), got {text!r}")
    return int(text)


def _cmd_submit(args: argparse.Namespace) -> int:
    metadata = json.loads(args.metadata) if args.metadata else {}
    if not isinstance(metadata, dict):
        raise ValueError("--metadata must be a JSON object, e.g. '{\"num_classes\": 10}'")
    if args.predictor and not args.kind:
        raise ValueError("--predictor needs --kind (classifier | regressor | log-likelihood)")
    if (args.kind or args.judge or args.metadata) and not args.predictor:
        raise ValueError("--kind, --judge and --metadata describe an uploaded --predictor; give --predictor FILE")
    if not args.predictor and not args.task:
        raise ValueError("give --task (a bundled task such as digits-label) or --predictor FILE with --kind")
    if args.predictor and args.task:
        raise ValueError("give either --task (a bundled task) or --predictor FILE (your own), not both")
    for path in (args.predictor, args.judge):
        if path and not Path(path).is_file():
            raise FileNotFoundError(f"no such file: {path}")
    spec = {"target": args.target, "searcher": args.searcher, "objective": args.objective,
            "max_fd_ratio": args.max_fd_ratio, "n_samples": args.n_samples, "seed": args.seed,
            "num_gpus": args.num_gpus, "max_concurrent": args.max_concurrent,
            "confirm_fraction": args.confirm_fraction, "confirm_top": args.confirm_top,
            "searcher_options": dict(args.searcher_option)}
    for key in ("budget_samples", "budget_passes", "name"):
        if getattr(args, key) is not None:
            spec[key] = getattr(args, key)
    with _client(args) as client:
        if args.predictor:
            meta = {"kind": args.kind, "model": args.model} | metadata
            spec |= {"model": args.model, "predictor_id": client.upload_predictor(args.predictor, **meta)["id"]}
            if args.judge:
                spec["judge_id"] = client.upload_predictor(args.judge, **meta)["id"]
        else:
            spec["task"] = args.task
        study = client.create_study(idempotency_key=args.idempotency_key, **spec)
    print(study["id"])
    print(f"study {study['id']} ({study['name']}): {study['state']}; follow it with `guidetune status {study['id']} "
          "--watch`", file=sys.stderr)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.study is None:
            for s in client.studies():
                best = s["best"]["score"] if s["best"] else None
                print(f"{s['id']:>5}  {s['name']:<56} {s['state']:<9} {s['spent']['samples']:>7} samples  best {best}")
            return 0
        study_id = _study_id(args.study)
        if not args.watch:
            status = client.status(study_id)
            _print_json(status) if args.json else _print_status(status)
            return 0
        status = client.watch_progress(study_id, args.interval)
        _print_status(status)
        return 0 if status["state"] == "complete" else 1


def _cmd_db(args: argparse.Namespace) -> int:
    from guidetune.storage.engine import check_url, current_revision, make_engine, resolve_url, safe_url, upgrade
    from guidetune.storage.schema import SCHEMA_REVISION

    url = resolve_url(args.storage)
    check_url(url)
    engine = make_engine(url)
    try:
        if args.db_command == "upgrade":
            before, after = upgrade(engine)
            print(f"{safe_url(url)}: schema {before or 'empty'} -> {after}")
        else:
            current = current_revision(engine)
            note = "up to date" if current == SCHEMA_REVISION else f"this guidetune needs {SCHEMA_REVISION}"
            print(f"{safe_url(url)}: schema {current or 'empty'} ({note})")
    finally:
        engine.dispose()
    return 0


# ---- parser ----------------------------------------------------------------------------------------------
def _check_folder(path: Path, flag: str) -> None:
    if not path.parent.exists():
        raise FileNotFoundError(f"{flag} {path}: the folder {path.parent} does not exist; create it first")


def _add_storage(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", help="study store URL (default: $GUIDETUNE_DATABASE_URL, else an SQLite file under "
                   "$GUIDETUNE_HOME, default ~/.guidetune); e.g. postgresql://user@host:5432/db")


def _add_task(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, help="a task name (see `guidetune tasks`) or a task spec .json")
    p.add_argument("--target", required=True, help="the task's target (see `guidetune tasks`)")
    p.add_argument("--seed", type=int, default=0, help="first sample seed (sample i uses seed + i)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="guidance parameters: a JSON or YAML file (what `search --export` "
                   "and `export` write) or inline JSON, e.g. '{\"rho\": 1, \"mu\": 2, \"gamma\": 0.01}'")
    p.add_argument("--n", type=int, default=64, help="number of samples")


class _Parser(argparse.ArgumentParser):
    """No abbreviated flags (``--n`` must never mean ``--n-samples``); usage errors exit 2 with the message."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def _add_client(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", help="the guidetune server (default $GUIDETUNE_SERVER, else http://127.0.0.1:8321)")
    p.add_argument("--token", help="API token (default $GUIDETUNE_TOKEN; `guidetune token create --owner NAME`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="guidetune", description="Automated hyperparameter search for training-free guidance.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    demo = sub.add_parser("demo", help="the main job on the embedded defaults")
    demo.add_argument("--out", default="out/demo", help="folder for the PNGs and the JSON report")
    demo.add_argument("--task", default="digits-label")
    demo.add_argument("--target", default="3")
    demo.add_argument("--budget-samples", type=int, default=1600, help="samples the demo study may draw, its "
                      "unguided fidelity yardstick included")
    _add_storage(demo)
    demo.add_argument("--executor", choices=("ray", "local"), default="ray", help="where trials run (default: a local Ray)")
    demo.add_argument("--port", type=int, default=8321, help="the demo server's port (the next free one if taken)")
    demo.add_argument("--keep-serving", action="store_true", help="leave the server (and its dashboard) running")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=_cmd_demo)
    tasks = sub.add_parser("tasks", help="list the bundled tasks and their targets")
    tasks.add_argument("--json", action="store_true")
    tasks.set_defaults(func=_cmd_tasks)
    smp = sub.add_parser("sample", help="draw guided samples into an .npz file")
    _add_task(smp)
    _add_config(smp)
    smp.add_argument("--out", required=True, help="output .npz (array `samples`; digits on the 0–16 pixel scale)")
    smp.set_defaults(func=_cmd_sample)
    ev = sub.add_parser("evaluate", help="sample and print the metrics of one configuration")
    _add_task(ev)
    _add_config(ev)
    ev.add_argument("--json", action="store_true", help="print the metrics as JSON")
    ev.set_defaults(func=_cmd_evaluate)
    se = sub.add_parser("search", help="search guidance hyperparameters for a task and target (a stored, resumable study)")
    _add_task(se)
    se.add_argument("--searcher", default=DEFAULT_SEARCHER, help="tpe (default) | random | beam-mf | portfolio | beam | "
                    "tpe-mf | cmaes | grid | gp | nsga2")
    se.add_argument("--budget-samples", type=int, help="total samples the study may draw (its yardstick included)")
    se.add_argument("--budget-passes", type=float, help="total denoiser passes (forward + backward) the study may spend")
    se.add_argument("--n-samples", type=int, default=32, help="samples per trial at full fidelity")
    se.add_argument("--objective", default="auto", choices=("auto", "validity", "constrained", "pareto"),
                    help="auto (default): constrained where the task has reference data, else validity")
    se.add_argument("--max-fd-ratio", type=float, default=2.0, help="constrained: fidelity FD ≤ this × the unguided FD "
                    "(default 2)")
    se.add_argument("--confirm-fraction", type=float, default=0.2, help="budget held back to re-check the top "
                    "configurations on fresh seeds (0: off; default 0.2)")
    se.add_argument("--confirm-top", type=int, default=3, help="configurations re-checked on fresh seeds (default 3)")
    se.add_argument("--searcher-option", action="append", default=[], metavar="KEY=VALUE", type=_searcher_option,
                    help="an option of the searcher, VALUE as JSON or text (e.g. start=center, beam_width=3); repeatable")
    se.add_argument("--schedules", action="store_true", help="also search the ρ and μ schedules")
    _add_storage(se)
    se.add_argument("--study", help="study name: created, or continued when it exists (default: derived from the "
                    "task, target, searcher, seed and settings, so the same command resumes the same study)")
    se.add_argument("--json", action="store_true", help="print the whole outcome as JSON")
    se.add_argument("--export", help="write the best configuration here (the format `--config` reads)")
    se.add_argument("--optuna-storage", help="also write the trials to this Optuna storage URL (e.g. sqlite:///optuna.db)")
    se.add_argument("--optuna-study", help="Optuna study name (default: the guidetune study's name)")
    se.add_argument("--executor", choices=("ray", "local"), default="ray", help="where trials run: ray (default: a "
                    "local Ray, or the cluster of --ray-address) or local (this process, no Ray)")
    se.add_argument("--ray-address", help="join this Ray cluster (host:port of `ray start --head`; default: "
                    "$GUIDETUNE_RAY_ADDRESS, else a local Ray)")
    se.add_argument("--max-concurrent", type=int, default=1, help="trial groups in flight at once (Ray workers)")
    se.add_argument("--num-cpus", type=float, default=1.0, help="CPUs each Ray worker asks for")
    se.add_argument("--num-gpus", type=float, default=0.0, help="GPUs each Ray worker asks for (0.25: four share a GPU)")
    se.set_defaults(func=_cmd_search)
    studies = sub.add_parser("studies", help="list the stored studies")
    _add_storage(studies)
    studies.add_argument("--json", action="store_true")
    studies.set_defaults(func=_cmd_studies)
    study = sub.add_parser("study", help="one stored study")
    study_sub = study.add_subparsers(dest="study_command", required=True, parser_class=_Parser)
    show = study_sub.add_parser("show", help="state, budget, spent, best (and --trials)")
    show.add_argument("name")
    _add_storage(show)
    show.add_argument("--trials", action="store_true", help="also list every trial")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_cmd_study_show)
    exp = sub.add_parser("export", help="write a study's best configuration (what `sample --config` reads)")
    exp.add_argument("name", help="the study's name in the store, or its id on --server")
    _add_storage(exp)
    exp.add_argument("--server", help="export through this guidetune server instead of the store (default "
                     "$GUIDETUNE_SERVER when set)")
    exp.add_argument("--token", help="API token for --server (default $GUIDETUNE_TOKEN)")
    exp.add_argument("--format", choices=("json", "yaml"), default="json")
    exp.add_argument("--out", help="file to write (default: standard output)")
    exp.set_defaults(func=_cmd_export)
    cancel = sub.add_parser("cancel", help="cancel a stored study (a running one stops after its running trials)")
    cancel.add_argument("name")
    _add_storage(cancel)
    cancel.set_defaults(func=_cmd_cancel)
    srv = sub.add_parser("serve", help="run the HTTP API, the dashboard and the study runner")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    srv.add_argument("--port", type=int, default=8321)
    _add_storage(srv)
    srv.add_argument("--executor", choices=("ray", "local"), default="ray", help="where trials run (default: Ray)")
    srv.add_argument("--ray-address", help="join this Ray cluster (default $GUIDETUNE_RAY_ADDRESS, else a local Ray)")
    srv.add_argument("--max-studies", type=int, default=2, help="studies this server runs at once")
    srv.add_argument("--no-runner", action="store_true", help="serve the API only; another `guidetune serve` on the "
                     "same store runs the studies")
    srv.set_defaults(func=_cmd_serve)
    tok = sub.add_parser("token", help="API tokens")
    tok_sub = tok.add_subparsers(dest="token_command", required=True, parser_class=_Parser)
    create = tok_sub.add_parser("create", help="print a new token for an owner (stored hashed)")
    create.add_argument("--owner", required=True, help="who the token acts for: it sees only its own studies")
    _add_storage(create)
    create.set_defaults(func=_cmd_token)
    sb = sub.add_parser("submit", help="submit a study to a guidetune server (uploads --predictor first)")
    _add_client(sb)
    sb.add_argument("--task", help="a bundled task (e.g. digits-label); or give --predictor")
    sb.add_argument("--predictor", help="your TorchScript predictor file (needs --kind)")
    sb.add_argument("--kind", choices=("classifier", "regressor", "log-likelihood"), help="what --predictor outputs")
    sb.add_argument("--model", default="digits", help="the diffusion model it guides: 'digits' or an uploaded model id")
    sb.add_argument("--judge", help="an independent TorchScript judge of the same kind (else validity is the guide's own)")
    sb.add_argument("--metadata", help="more predictor metadata as JSON, e.g. '{\"num_classes\": 10}'")
    sb.add_argument("--target", required=True)
    sb.add_argument("--searcher", default=DEFAULT_SEARCHER, help=f"default {DEFAULT_SEARCHER}")
    sb.add_argument("--objective", choices=("auto", "validity", "constrained", "pareto"), default="auto",
                    help="auto (default): constrained where the task has reference data, else validity")
    sb.add_argument("--max-fd-ratio", type=float, default=2.0, help="constrained: fidelity FD ≤ this × the unguided FD")
    sb.add_argument("--confirm-fraction", type=float, default=0.2, help="budget held back to re-check the top "
                    "configurations on fresh seeds (0: off)")
    sb.add_argument("--confirm-top", type=int, default=3, help="configurations re-checked on fresh seeds")
    sb.add_argument("--searcher-option", action="append", default=[], metavar="KEY=VALUE", type=_searcher_option,
                    help="an option of the searcher, VALUE as JSON or text (e.g. start=center); repeatable")
    sb.add_argument("--n-samples", type=int, default=32)
    sb.add_argument("--budget-samples", type=int)
    sb.add_argument("--budget-passes", type=float)
    sb.add_argument("--num-gpus", type=float, default=0.0)
    sb.add_argument("--max-concurrent", type=int, default=1)
    sb.add_argument("--seed", type=int, default=0)
    sb.add_argument("--name", help="study name (default: derived from the spec)")
    sb.add_argument("--idempotency-key", help="a retried submit with the same key returns the same study")
    sb.set_defaults(func=_cmd_submit)
    st = sub.add_parser("status", help="a study's progress on a guidetune server (no id: list them)")
    _add_client(st)
    st.add_argument("study", nargs="?", help="the study id")
    st.add_argument("--watch", action="store_true", help="follow it with a live progress bar until it finishes")
    st.add_argument("--interval", type=float, default=1.0, help="seconds between polls with --watch")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=_cmd_status)
    db = sub.add_parser("db", help="the study store's schema")
    db_sub = db.add_subparsers(dest="db_command", required=True, parser_class=_Parser)
    for name, text in (("upgrade", "migrate the store to this guidetune's schema (Alembic)"),
                       ("current", "print the store's schema revision")):
        p = db_sub.add_parser(name, help=text)
        _add_storage(p)
        p.set_defaults(func=_cmd_db)
    return parser


def main(argv: list[str] | None = None) -> int:
    from guidetune.evaluators.errors import EvaluatorError
    from guidetune.guidance import GuidanceError
    from guidetune.searcher.errors import SearchError
    from guidetune.storage.errors import StorageError

    from guidetune.api.client import ApiError

    args = build_parser().parse_args(argv)
    command = args.command + (f" {getattr(args, 'study_command', '') or getattr(args, 'db_command', '') or getattr(args, 'token_command', '')}"
                              if args.command in ("study", "db", "token") else "")
    try:
        return args.func(args)
    except ApiError as exc:
        print(f"guidetune {command.strip()}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE if 400 <= exc.status < 500 else 1
    except (EvaluatorError, GuidanceError, SearchError, StorageError, FileNotFoundError, ValueError) as exc:
        print(f"guidetune {command.strip()}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
