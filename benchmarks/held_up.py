r"""Do search results hold up on fresh seeds? Every searcher on every target of the given tasks, as a
stored study runs it (the confirmation on fresh seeds included), then its exported winner sampled again
on ``--fresh-n`` seeds no study used.

Per search: the score the study reports (the confirmed fresh-seed score; without a confirmation, the
search's best), the score it says to expect (the confirmation's leave-one-block-out estimate, corrected
for choosing among its candidates), the score the search itself saw for its best, the winner's score on the fresh check
(the mean metrics of ``--fresh-n / --n-samples`` blocks of ``--n-samples`` seeds, the confirmation's
own estimator, since some metrics are biased by the sample count), and the budget left unspent. The table gives, per task and searcher, the median fresh score, the
largest loss "reported − fresh" (with and without the confirmation, in points of validity), the same
for the expected score, how often the fresh score lies inside each interval, and the largest unspent
budget.

    python benchmarks/held_up.py --tasks gmm-inverse --searchers beam,beam-mf,random --seeds 3
    python benchmarks/held_up.py --tasks digits-label --searchers beam,beam-mf,random --seeds 1
    python benchmarks/held_up.py --tasks digits-label --space full --searchers beam-mf,random --equal-passes

With ``--equal-passes`` only the first searcher gets ``--budget-samples``; every other one gets, on the
same target and seed, a budget of the denoiser passes the first one spent (equal compute: in the full
space a sample's cost depends on N_recur and N_iter), and the table compares them per search.

Space: the task's strengths ρ̄, μ̄, γ̄ with (N_recur, N_iter) fixed at ``--structure`` (as §4), or with
``--space full`` the default space a study searches (N_recur 1–4, N_iter 1–8 too); objective validity.
Writes ``{out}/held_up_{task}[_full].json`` (one record per search; ``--merge`` adds to it) and prints
a Markdown table (``--report-only`` redraws it from the stored records).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from search_comparison import declared_space, parse_spec

from guidetune.evaluators.evaluate import evaluate
from guidetune.evaluators.tasks import make_task
from guidetune.searcher import MaximizeValidity, make_searcher
from guidetune.searcher.confirm import ConfirmPolicy, mean_result
from guidetune.searcher.coordinator import Budget, StudyCoordinator
from guidetune.searcher.executors import InProcessExecutor
from guidetune.searcher.service import TaskEvaluator
from guidetune.storage.records import StudySpec
from guidetune.storage.store import StudyStore

FRESH_SEED = 5_000_000   # the check's seeds: no study trial, confirmation or oracle uses them


def one_search(task, target, spec, seed, space, budget, n_samples, fresh_n, budget_passes=None):
    """One study on ``budget`` samples (or, with ``budget_passes``, on that many denoiser passes)."""
    name, options = parse_spec(spec)
    options = {**({"rounds": 40} if name.startswith("beam") else {}), **options}
    objective = MaximizeValidity(validity_range=task.validity_range)
    searcher = make_searcher(name, space, objective, seed, **{"n_samples": n_samples, **options})
    evaluator = TaskEvaluator(task, target)
    store = StudyStore("sqlite://", check=False)
    budgets = Budget(None if budget_passes else budget, budget_passes)
    study = store.create_study("s", StudySpec(task=task.name, target=target, searcher=name, space=space.to_dict(),
                                              n_samples=n_samples, seed=10_000 * (seed + 1),
                                              budget_samples=budgets.samples, budget_passes=budgets.passes))
    start = time.perf_counter()
    outcome = StudyCoordinator(store, study.id, searcher, InProcessExecutor(evaluator), budget=budgets,
                               passes_per_sample=evaluator.passes_per_sample, confirm=ConfirmPolicy()).run()
    seconds = time.perf_counter() - start
    c = outcome.confirmation or {}
    search_best = c.get("search_best")
    searched_number = search_best["number"] if search_best else outcome.best.number
    searched = next(t for t in outcome.trials if t.number == searched_number)
    winner = outcome.best
    configs = [winner] if winner.number == searched.number else [winner, searched]
    # the same estimator as the confirmation (metrics such as a Wasserstein distance are biased by the sample
    # count): the mean of blocks of n_samples, here fresh_n // n_samples blocks on seeds no study used; each
    # config sampled on its own (in the full space the two may differ in structure, which does not pack)
    seeds = [FRESH_SEED + b * n_samples for b in range(max(1, fresh_n // n_samples))]
    fresh_score = {t.number: objective.score(mean_result([evaluate(task, target, [space.to_params(t.params)], n_samples,
                                                                   seed)[0] for seed in seeds]))
                   for t in configs}
    confirmed = c.get("winner") if c.get("state") == "done" else None
    store.close()
    return {
        "task": task.name, "target": target, "searcher": spec, "seed": seed,
        "budget": budgets.samples, "budget_passes": budgets.passes,
        "spent": outcome.samples_spent, "passes": outcome.passes_spent,
        "unspent": None if budgets.samples is None else budgets.samples - outcome.samples_spent,
        "search_stop": c.get("search_stop", outcome.stop_reason), "search_samples": c.get("search_samples"),
        "reported": confirmed["score"] if confirmed else (search_best or {}).get("score"),
        "reported_half_width": confirmed["score_half_width"] if confirmed else None,
        "expected": confirmed["expected_score"] if confirmed else None,
        "expected_half_width": confirmed["expected_half_width"] if confirmed else None,
        "reported_n_samples": confirmed["n_samples"] if confirmed else searched.n_samples,
        "search_saw": search_best["score"] if search_best else None,
        "fresh": fresh_score[winner.number], "fresh_of_search_best": fresh_score[searched.number],
        "winner": winner.params, "search_best": searched.params, "seconds": round(seconds, 1),
    }


def table(records: list[dict]) -> str:
    rows = ["| task | searcher | searches | fresh score, median [min, max] | loss reported − fresh, confirmed: median / "
            "largest (points) | … the search's own best instead | fresh within the confirmed interval | loss expected − "
            "fresh: median / largest | fresh within the expected interval | largest unspent |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["task"], r["searcher"]) for r in records})
    for task, searcher in keys:
        rs = [r for r in records if r["task"] == task and r["searcher"] == searcher]
        fresh = [r["fresh"] for r in rs]
        loss = [100 * (r["reported"] - r["fresh"]) for r in rs if r["reported"] is not None]
        naive = [100 * (r["search_saw"] - r["fresh_of_search_best"]) for r in rs if r["search_saw"] is not None]
        held = [abs(r["reported"] - r["fresh"]) <= r["reported_half_width"] for r in rs if r["reported_half_width"] is not None]
        expected = [100 * (r["expected"] - r["fresh"]) for r in rs if r.get("expected") is not None]
        held_e = [abs(r["expected"] - r["fresh"]) <= r["expected_half_width"] for r in rs
                  if r.get("expected") is not None and r.get("expected_half_width") is not None]
        loss_e = f"{statistics.median(expected):+.1f} / {max(expected):+.1f}" if expected else "–"
        rows.append(f"| {task} | {searcher} | {len(rs)} | {statistics.median(fresh):.3f} [{min(fresh):.3f}, "
                    f"{max(fresh):.3f}] | {statistics.median(loss):+.1f} / {max(loss):+.1f} | "
                    f"{statistics.median(naive):+.1f} / {max(naive):+.1f} | {sum(held)}/{len(held)} | {loss_e} | "
                    f"{f'{sum(held_e)}/{len(held_e)}' if held_e else '–'} | "
                    f"{max((r['unspent'] for r in rs if r['unspent'] is not None), default='–')} |")
    return "\n".join(rows)


def expected_summary(records: list[dict]) -> str:
    """Per task and over all, the searches that record an expected score: the mean loss on fresh seeds of
    the reported and of the expected score, how many lose more than 2 points, and how often the fresh
    score lies inside each interval."""
    rows = ["| tasks | searches | mean loss reported → expected (points) | standard error of the change | losses "
            "above 2 points | fresh within the interval | mean half-width (points) |", "|---|---|---|---|---|---|---|"]
    with_expected = [r for r in records if r.get("expected") is not None and r.get("reported") is not None]
    if not with_expected:
        return "(no record has an expected score: recorded before it existed)"
    groups = {task: [r for r in with_expected if r["task"] == task] for task in sorted({r["task"] for r in with_expected})}
    for name, rs in {**groups, "all": with_expected}.items():
        if not rs:
            continue
        loss = [100 * (r["reported"] - r["fresh"]) for r in rs]
        loss_e = [100 * (r["expected"] - r["fresh"]) for r in rs]
        inside = sum(abs(r["reported"] - r["fresh"]) <= (r["reported_half_width"] or 0) for r in rs)
        inside_e = sum(abs(r["expected"] - r["fresh"]) <= (r["expected_half_width"] or 0) for r in rs)
        change = [b - a for a, b in zip(loss, loss_e)]
        se = statistics.stdev(change) / len(change) ** 0.5 if len(change) > 1 else float("nan")
        rows.append(f"| {name} | {len(rs)} | {statistics.fmean(loss):+.2f} → {statistics.fmean(loss_e):+.2f} | {se:.2f} | "
                    f"{sum(v > 2 for v in loss)} → {sum(v > 2 for v in loss_e)} | {inside} → {inside_e} | "
                    f"{100 * statistics.fmean(r['reported_half_width'] or 0 for r in rs):.1f} → "
                    f"{100 * statistics.fmean(r['expected_half_width'] or 0 for r in rs):.1f} |")
    return "\n".join(rows)


def equal_passes_table(records: list[dict]) -> str:
    """Per target and seed: each searcher's samples, passes and fresh score, the first on a samples budget."""
    rows = ["| task | target | seed | searcher | budget | samples | denoiser passes | reported ± 95% | fresh |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        budget = f"{r['budget_passes']:,.0f} passes" if r.get("budget_passes") else f"{r['budget']:,} samples"
        reported = "–" if r["reported"] is None else f"{r['reported']:.3f} ± {r['reported_half_width'] or 0:.3f}"
        rows.append(f"| {r['task']} | {r['target']} | {r['seed']} | {r['searcher']} | {budget} | {r['spent']:,} | "
                    f"{r['passes']:,.0f} | {reported} | {r['fresh']:.3f} |")
    return "\n".join(rows)


def equal_passes_summary(records: list[dict], baseline: str | None = None) -> str:
    """Per task and over all, for each searcher on a passes budget: how often it ends higher, equal or
    lower on fresh seeds than the baseline (the one on the samples budget, or the searcher named
    ``baseline``: then every other searcher, the one on the samples budget included) on the same target
    and seed, the mean fresh scores, the largest loss to it, the samples it drew, and how far its own
    reported score held: the largest "reported − fresh" and how often the fresh score lies outside the
    reported interval (searches with a confirmation)."""
    def is_baseline(r: dict) -> bool:
        return r["searcher"] == baseline if baseline else not r.get("budget_passes")

    pairs: dict[tuple[str, str], list[tuple[dict, dict]]] = {}
    for first in filter(is_baseline, records):
        for second in records:
            if (baseline or second.get("budget_passes")) and not is_baseline(second) and (
                    second["task"], second["target"], second["seed"]) == (first["task"], first["target"], first["seed"]):
                pairs.setdefault((second["searcher"], first["task"]), []).append((first, second))
    for name in sorted({searcher for searcher, _ in pairs}):
        pairs[name, "all"] = [pair for (searcher, _), ps in list(pairs.items()) if searcher == name for pair in ps]
    rows = ["| task | searches | second higher / equal / lower | mean fresh first → second | largest loss of the "
            "second (points) | samples the second drew | largest reported − fresh of the second (points) | fresh "
            "outside its reported interval |", "|---|---|---|---|---|---|---|---|"]
    for (_, task), ps in sorted(pairs.items(), key=lambda kv: (kv[0][0], kv[0][1] == "all", kv[0][1])):
        diffs = [round(b["fresh"] - a["fresh"], 6) for a, b in ps]
        names = f"{ps[0][0]['searcher']} → {ps[0][1]['searcher']}"
        held = [b for _, b in ps if b["reported"] is not None and b["reported_half_width"] is not None]
        over = f"{100 * max(b['reported'] - b['fresh'] for b in held):.1f}" if held else "–"
        outside = sum(abs(b["reported"] - b["fresh"]) > b["reported_half_width"] for b in held)
        rows.append(f"| {task} | {len(ps)} | {sum(d > 0 for d in diffs)} / {sum(d == 0 for d in diffs)} / "
                    f"{sum(d < 0 for d in diffs)} | {names}: {statistics.fmean(a['fresh'] for a, _ in ps):.3f} → "
                    f"{statistics.fmean(b['fresh'] for _, b in ps):.3f} | {max(0.0, -100 * min(diffs)):.1f} | "
                    f"{min(b['spent'] for _, b in ps):,}–{max(b['spent'] for _, b in ps):,} | {over} | "
                    f"{outside} of {len(held)} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="gmm-inverse", help="comma-separated bundled tasks (every target of each)")
    parser.add_argument("--targets", help="only these targets (comma-separated)")
    parser.add_argument("--searchers", default="beam,beam-mf,random")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--budget-samples", type=int, default=1280)
    parser.add_argument("--n-samples", type=int, default=32)
    parser.add_argument("--space", choices=("strengths", "full"), default="strengths",
                        help="strengths: ρ̄, μ̄, γ̄ with --structure fixed; full: the default space a study searches")
    parser.add_argument("--structure", default="1,1", help="the fixed N_recur,N_iter of the strengths space")
    parser.add_argument("--fresh-n", type=int, default=128, help="samples of the fresh check")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--merge", action="store_true", help="add to the stored records (searches already on "
                        "record are not run again; with --equal-passes the first searcher's record sets the passes)")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--baseline", help="with --equal-passes: compare every searcher with this one "
                        "(default: the first, on the samples budget)")
    parser.add_argument("--equal-passes", action="store_true",
                        help="the searchers after the first get the denoiser passes the first spent, not --budget-samples")
    args = parser.parse_args()
    structure = tuple(int(x) for x in args.structure.split(","))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    everything = []
    for task_name in args.tasks.split(","):
        path = Path(args.out) / (f"held_up_{task_name}{'_full' if args.space == 'full' else ''}"
                                 f"{'_equal_passes' if args.equal_passes else ''}.json")
        records = json.loads(path.read_text()) if (args.merge or args.report_only) and path.exists() else []
        if not args.report_only:
            task = make_task(task_name)
            space = declared_space(task, args.space, structure)
            targets = args.targets.split(",") if args.targets else task.targets()
            for target in targets:
                for seed in range(args.seeds):
                    passes = None
                    for spec in args.searchers.split(","):
                        done = next((r for r in records if (r["target"], r["searcher"], r["seed"]) == (target, spec, seed)),
                                    None)
                        r = done or one_search(task, target, spec, seed, space, args.budget_samples, args.n_samples,
                                               args.fresh_n, budget_passes=passes)
                        if args.equal_passes and passes is None:
                            passes = r["passes"]
                        if done is not None:     # --merge: a search already on record is not run again
                            continue
                        records.append(r)
                        path.write_text(json.dumps(records, indent=1))
                        print(f"  {task_name} {target} {spec} seed {seed}: reported {r['reported']:.4f}, fresh "
                              f"{r['fresh']:.4f} (the search saw {r['search_saw']:.4f}, fresh {r['fresh_of_search_best']:.4f})"
                              f", {r['spent']} samples, {r['passes']:,.0f} passes, {r['seconds']} s", flush=True)
        everything += records
    if args.equal_passes:
        print(equal_passes_table(everything) + "\n\n" + equal_passes_summary(everything, args.baseline))
    else:
        print(table(everything) + "\n\n" + expected_summary(everything))


if __name__ == "__main__":
    main()
