"""The confirmation phase: a study's top candidates re-evaluated on fresh seeds before it reports a best.

A search ranks configurations on the seeds it happened to draw, and the maximum of many noisy
scores is biased upward (the winner's curse): the number it prints overstates what the exported
config gives on a user's own seeds. So a stored study holds back part of its budget (``fraction``)
from the search, and when the search ends (its share spent, or the searcher out of proposals: the
leftover is added) it re-evaluates its ``top`` distinct best configurations:

* every candidate on the same ``replicates`` blocks of ``n_samples`` fresh seeds (seeds no search
  trial used; common random numbers, so the candidates of a block pack in one batch and their
  comparison is paired);
* each candidate's fresh score is the objective of its replicates' mean metrics, with a Student-t
  interval from the spread of its replicates (two or more: the plan drops candidates before it
  drops below two replicates) — Wilson's interval on the pooled samples instead when validity is an
  accuracy (blocks that all score 1.0 have no spread; two blocks give t a 12.7 quantile);
* the winner is the best fresh score; the study reports it, the samples it rests on, the gap between
  what the guide and the judge saw, and whether the search's printed best lies above its interval;
* choosing the best of several candidates on the same fresh seeds is itself a small winner's curse,
  so the study also reports what to expect of the choice (``expected_score``): each block scored on the
  candidate that the other blocks chose (leave one block out).

Pure functions: the coordinator stores the plan and the summary (``studies.confirmation``).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from scipy import stats

from guidetune.evaluators.records import TrialResult
from guidetune.storage.records import Trial, TrialState

from .errors import SearchError
from .objective import Objective

SEED_OFFSET = 7_000_001    # fresh seeds: apart from the trials' (0…), beam-mf's final (1_000_003) and the yardstick's
PHASE = "confirm"          # the ``phase`` tag of a confirmation trial


@dataclass(frozen=True)
class ConfirmPolicy:
    fraction: float = 0.2      # of the budget held back from the search for the confirmation
    top: int = 3               # distinct configurations re-evaluated
    min_replicates: int = 2    # blocks of fresh seeds per candidate (an interval needs two)
    level: float = 0.95        # confidence of the reported interval

    def __post_init__(self) -> None:
        if not 0 < self.fraction < 1:
            raise SearchError(f"the confirmation fraction must be in (0, 1), got {self.fraction!r} "
                              "(--confirm-fraction; 0 turns the confirmation off)")
        if not isinstance(self.top, int) or self.top < 1:
            raise SearchError(f"--confirm-top must be a positive integer, got {self.top!r}")
        if self.min_replicates < 2 or not 0 < self.level < 1:
            raise SearchError(f"need min_replicates >= 2 and 0 < level < 1, got {self.min_replicates}, {self.level}")

    def reserve(self, total: float, unit: float) -> float:
        """What to hold back of a budget ``total`` whose smallest confirmation costs ``unit`` (one
        candidate, ``min_replicates`` blocks): ``fraction`` of it, raised to ``unit``; 0 when that would
        take more than half the budget (too small a budget to confirm: the search gets all)."""
        held = max(self.fraction * total, unit)
        return held if held <= total / 2 else 0.0


def is_confirmation(trial: Trial) -> bool:
    return trial.tags.get("phase") == PHASE


def candidates(trials: Sequence[Trial], score: Callable[[Trial], float], top: int) -> list[Trial]:
    """The ``top`` best distinct configurations among COMPLETE search trials: each config by its
    trial at the largest sample count it was run at (the latest of those), ranked full-size first,
    then by score (ties: the earlier trial)."""
    complete = [t for t in trials if t.state is TrialState.COMPLETE and not is_confirmation(t)
                and math.isfinite(score(t))]
    if not complete:
        return []
    by_config: dict[str, Trial] = {}
    for t in complete:
        key = repr(sorted(t.params.items()))
        held = by_config.get(key)
        if held is None or t.n_samples >= held.n_samples:
            by_config[key] = t
    n_max = max(t.n_samples for t in complete)
    ranked = sorted(by_config.values(), key=lambda t: (t.n_samples == n_max, score(t), -t.number), reverse=True)
    return ranked[:top]


def plan(n_samples: int, n_candidates: int, policy: ConfirmPolicy, *, samples_left: int | None = None,
         trials_left: int | None = None, passes_left: float | None = None,
         costs: Sequence[float] = ()) -> tuple[int, int, int]:
    """(candidates, replicates, extra) that what is left pays for: every replicate ``n_samples`` fresh
    samples, as many replicates as fit for up to ``policy.top`` candidates, fewer candidates rather than
    fewer than ``min_replicates``, and one more block for each of the first ``extra`` candidates from
    what is left (so less than one block stays unspent); ``(0, 0, 0)`` when not even one candidate fits.

    ``samples_left``, ``trials_left`` and ``passes_left`` are the budgets' remainders (``None``: not
    limited); a passes remainder needs ``costs``, the denoiser passes per sample of each ranked
    candidate, so that a cheap candidate's blocks are charged what they cost, not the dearest one's.
    With no limit at all every candidate gets ``min_replicates`` blocks."""
    if passes_left is not None and (len(costs) < n_candidates or not all(c > 0 for c in costs)):
        raise SearchError(f"a passes remainder needs a positive cost for every candidate: got {list(costs)} "
                          f"for {n_candidates} candidates")

    def fits(blocks: int, passes: float) -> bool:
        return ((samples_left is None or blocks * n_samples <= samples_left)
                and (trials_left is None or blocks <= trials_left)
                and (passes_left is None or passes <= passes_left))

    limited = any(left is not None for left in (samples_left, trials_left, passes_left))
    for k in range(min(policy.top, n_candidates), 0, -1):
        if not limited:
            return k, policy.min_replicates, 0
        round_passes = n_samples * sum(costs[:k])     # one block of each of the k candidates
        r = 0
        while fits(k * (r + 1), (r + 1) * round_passes):
            r += 1
        if r < policy.min_replicates:
            continue
        extra = 0
        while extra < k - 1 and fits(k * r + extra + 1, r * round_passes + n_samples * sum(costs[:extra + 1])):
            extra += 1
        return k, r, extra
    return 0, 0, 0


def replicate_seed(study_seed: int, replicate: int, n_samples: int) -> int:
    return study_seed + SEED_OFFSET + replicate * n_samples


def _mean_interval(values: Sequence[float], level: float) -> tuple[float, float]:
    """Mean and the half-width of its two-sided Student-t interval (NaN with one value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    t = float(stats.t.ppf(0.5 + level / 2, len(values) - 1))
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))


def _wilson_half_width(p: float, n: int, level: float) -> float:
    """The larger side of Wilson's score interval for a proportion ``p`` observed on ``n`` samples."""
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = min(max(p, 0.0), 1.0)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(p - (centre - spread), (centre + spread) - p)


def _finite_mean(values: Sequence[float]) -> float:
    kept = [v for v in values if math.isfinite(v)]
    return statistics.fmean(kept) if kept else math.nan


def mean_result(results: Sequence[TrialResult]) -> TrialResult:
    """One result for a candidate's equal-sized replicate blocks: every metric averaged (NaN where none is
    finite). ``n_samples`` stays one block's: the means are of block estimates, so what depends on the
    sample count (the unguided FD a fidelity is held against) is looked up at a block's size."""
    first = results[0]
    return dataclasses.replace(
        first, seed=min(r.seed for r in results),
        validity=_finite_mean([r.validity for r in results]),
        guide_validity=_finite_mean([r.guide_validity for r in results]),
        fidelity_fd=_finite_mean([r.fidelity_fd for r in results]), kid=_finite_mean([r.kid for r in results]),
        precision=_finite_mean([r.precision for r in results]), recall=_finite_mean([r.recall for r in results]),
        seconds_per_sample=_finite_mean([r.seconds_per_sample for r in results]), extras={})


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _interval(results: Sequence[TrialResult], objective: Objective, level: float,
              validity_range: tuple[float, float]) -> tuple[float, float, float]:
    """(mean validity, its half-width, the score's half-width) of equal-sized blocks of fresh samples."""
    lo, hi = validity_range
    validity, v_half = _mean_interval([r.validity for r in results], level)
    if all(r.validity_metric.endswith("accuracy") for r in results):
        # a proportion of independent samples: Wilson's interval on the pooled samples. Not the blocks'
        # Student-t: blocks that all score 1.0 have no spread, yet 96 of 96 do not make the accuracy
        # certain; and on 2 blocks t's 12.7 quantile made intervals of ±60 points
        v_half = _wilson_half_width(validity, sum(r.n_samples for r in results), level)
    constraint = objective.constraint(mean_result(results))
    if objective.kind in ("validity", "constrained") and (constraint is None or constraint <= 0):
        s_half = v_half / (hi - lo)     # the score is the normalised validity (a block that alone would
    else:                               # break the constraint must not widen it by a penalty's size)
        _, s_half = _mean_interval([objective.score(r) for r in results], level)
    return validity, v_half, s_half


def held_out(blocks: dict[int, dict[int, TrialResult]], objective: Objective, level: float,
             validity_range: tuple[float, float]) -> dict[str, Any] | None:
    """The winner's score corrected for having been chosen: the best of several candidates on the same
    fresh seeds is itself a maximum of noisy scores (with three equal candidates about 0.85 of a standard
    error too high). Leave one block out, pick the best candidate on the other blocks, score that pick on
    the block left out; the estimate is the objective of those held-out blocks' mean metrics, with the
    interval of ``_interval``. It is a little pessimistic (each pick rests on one block fewer than the
    winner's), never optimistic. ``blocks``: per candidate (ranking order), its results by replicate.
    A pick rests on all of a candidate's other blocks, as the winner's choice does (the plan's extra
    blocks, which go to the leaders, included); only the replicates every candidate completed are left
    out in turn, since the pick must have been run on the block it is scored on. None when there is no
    choice to correct (one candidate) or fewer than two common blocks."""
    if len(blocks) < 2:
        return None
    common = sorted(set.intersection(*(set(b) for b in blocks.values())))
    if len(common) < 2:
        return None
    held, picks = [], []
    for left_out in common:
        scores = {i: objective.score(mean_result([res for r, res in b.items() if r != left_out]))
                  for i, b in blocks.items()}
        pick = max(blocks, key=lambda i: (math.isfinite(scores[i]), scores[i] if math.isfinite(scores[i]) else 0.0, -i))
        held.append(blocks[pick][left_out])
        picks.append(pick)
    score = objective.score(mean_result(held))
    _, _, half = _interval(held, objective, level, validity_range)
    return {"expected_score": _finite_or_none(score), "expected_half_width": _finite_or_none(half), "picks": picks}


def summarise(plan_record: dict[str, Any], replicates: Sequence[Trial], objective: Objective) -> dict[str, Any]:
    """The confirmation's result from its plan (``candidates``: [{"number", "params", "score"}], the
    search's reported ``search_best``) and its finished replicate trials: per candidate the fresh
    score and validity with intervals; the winner; whether the search's best lost more than its interval."""
    level = float(plan_record["level"])
    lo, hi = getattr(objective, "validity_range", (0.0, 1.0))
    rows, blocks = [], {}
    for i, planned in enumerate(plan_record["candidates"]):
        cand = {k: v for k, v in planned.items() if k != "config"}
        mine = [t for t in replicates if t.tags.get("candidate") == i]
        done = [t for t in mine if t.state is TrialState.COMPLETE]
        if not done:
            rows.append({**cand, "replicates": 0, "n_samples": 0, "score": None, "failed": len(mine)})
            continue
        blocks[i] = {int(t.tags["replicate"]): t.result for t in done}
        pooled = mean_result([t.result for t in done])
        score, constraint = objective.score(pooled), objective.constraint(pooled)
        validity, v_half, s_half = _interval([t.result for t in done], objective, level, (lo, hi))
        gaps = [t.result.guide_validity - t.result.validity for t in done if math.isfinite(t.result.guide_validity)]
        rows.append({
            **cand, "replicates": len(done), "n_samples": sum(t.result.n_samples for t in done),
            "score": score if math.isfinite(score) else None,
            "score_half_width": _finite_or_none(s_half),
            "validity": validity, "validity_half_width": _finite_or_none(v_half),
            "normalised_validity": (validity - lo) / (hi - lo),
            "guide_validity": _finite_or_none(pooled.guide_validity),
            "guide_judge_gap": statistics.fmean(gaps) if gaps else None,
            "fidelity_fd": _finite_or_none(pooled.fidelity_fd),
            "constraint": constraint,
            "failed": len(mine) - len(done),
        })
    scored = [r for r in rows if r["score"] is not None]
    winner = max(scored, key=lambda r: r["score"]) if scored else None   # max keeps the first of equals
    if winner is not None:
        corrected = held_out({i: b for i, b in blocks.items() if rows[i]["score"] is not None}, objective, level,
                             (lo, hi))
        if corrected is None:     # nothing was chosen among: the winner's own fresh score is unbiased
            corrected = {"expected_score": winner["score"], "expected_half_width": winner["score_half_width"],
                         "picks": None}
        else:                     # which candidate (by trial number) each left-out block was scored on
            corrected["picks"] = [plan_record["candidates"][i]["number"] for i in corrected["picks"]]
        winner.update(corrected)
    search_best = plan_record.get("search_best")
    lost = None
    if winner is not None and search_best is not None and winner["score_half_width"] is not None:
        lost = search_best["score"] > winner["score"] + winner["score_half_width"]
    return {**plan_record, "state": "done", "results": rows,
            "winner": None if winner is None else {k: winner[k] for k in (
                "number", "params", "score", "score_half_width", "validity", "validity_half_width",
                "normalised_validity", "n_samples", "replicates", "guide_validity", "guide_judge_gap",
                "fidelity_fd", "constraint", "expected_score", "expected_half_width", "picks")},
            "search_best_lost": lost}


def describe(confirmation: dict[str, Any] | None) -> str | None:
    """One line for a person: the fresh-seed score of the winner and how it compares with the search."""
    if not confirmation:
        return None
    if confirmation.get("state") == "skipped":
        return f"not confirmed on fresh seeds: {confirmation['reason']}"
    if confirmation.get("state") != "done":
        return (f"confirming {len(confirmation['candidates'])} candidates on {confirmation['replicates']} blocks of "
                f"{confirmation['n_samples']} fresh seeds")
    w = confirmation.get("winner")
    if w is None:
        return "the confirmation on fresh seeds failed for every candidate"
    half = "?" if w["score_half_width"] is None else f"{w['score_half_width']:.2g}"
    text = (f"fresh seeds: score {w['score']:.4g} ± {half} ({confirmation['level']:.0%} CI, {w['n_samples']} samples"
            f" in {w['replicates']} blocks), validity {w['validity']:.4g}")
    if w.get("picks") and w.get("expected_score") is not None:
        e_half = "?" if w["expected_half_width"] is None else f"{w['expected_half_width']:.2g}"
        text += (f"; chosen among {len(confirmation['candidates'])} on those seeds, so expect {w['expected_score']:.4g}"
                 f" ± {e_half} (each block scored on the candidate the other blocks chose)")
    if w["guide_judge_gap"] is not None:
        text += f", guide − judge {w['guide_judge_gap']:+.3g}"
    best = confirmation.get("search_best")
    if best is not None:
        text += f"; the search saw {best['score']:.4g} (trial {best['number']})"
    return text
