"""Multi-fidelity search with the sample count as the fidelity: ``SuccessiveHalving`` (Jamieson &
Talwalkar, 2016; Li et al., Hyperband, 2018) around any searcher (``tpe-mf``), and
``AdaptiveFidelityBeam`` (``beam-mf``), TFG's doubling beam run at a small sample count
and a coarse step, the count doubled and the step halved whenever the beam stops improving.

Successive halving: one *bracket* = one batch of candidates from the inner searcher (a beam round, ``bracket_size``
Optuna proposals). Rung ``r`` runs the bracket's surviving candidates on ``min_samples · ηʳ`` samples
(the last rung on exactly ``max_samples``); after a rung the top ``max(1, ⌊m/η⌋)`` of its ``m``
candidates (ranked by the objective at THAT rung only, ties by proposal order, failed never
promoted) go on to the next rung. The inner searcher is told each candidate once, when its fate is
known: COMPLETE with its full-size result if it reached the last rung, PRUNED with the result of the
rung where it stopped (tag ``rung``) otherwise, or FAILED.

When the inner searcher is finished (or after ``max_brackets``), the ``final_top`` best full-size
configurations are re-evaluated at full size on held-out seeds (``seed_offset``), and ``best`` reports
the best re-evaluation.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

from guidetune.storage.records import Trial, TrialState

from .base import Proposal, Searcher
from .beam import BeamSearcher
from .errors import SearchError
from .objective import Objective
from .space import LogFloat, SearchSpace

FINAL_SEED_OFFSET = 1_000_003  # held-out seeds for the final re-evaluation
MIN_LEVEL_SAMPLES = 16         # a default first level never goes below this (an accuracy in 1/16 steps)


def default_min_samples(n_samples: int) -> int:
    """The first rung/level of ``beam-mf`` and ``tpe-mf``: a quarter of the full count, not below 16."""
    return min(n_samples, max(MIN_LEVEL_SAMPLES, n_samples // 4))


def rung_sizes(min_samples: int, eta: int, max_samples: int) -> list[int]:
    """``[min, min·η, min·η², …, max]``: geometric up to ``max_samples``, the last rung exactly ``max_samples``."""
    if min_samples < 1 or eta < 2 or max_samples < min_samples:
        raise SearchError(f"need 1 <= min_samples <= max_samples and eta >= 2; got {min_samples}, {max_samples}, {eta}")
    sizes = [min_samples]
    while sizes[-1] < max_samples:
        sizes.append(min(sizes[-1] * eta, max_samples))
    return sizes


class SuccessiveHalving(Searcher):
    name = "successive-halving"

    def __init__(self, inner: Searcher, *,
                 min_samples: int = 16,             # samples at rung 0
                 eta: int = 3,                      # keep the top 1/η at each rung, ×η samples next rung
                 max_samples: int | None = None,    # the full sample count (default: inner.n_samples)
                 bracket_size: int | None = None,   # candidates per bracket (None: the inner's natural batch)
                 max_brackets: int | None = None,   # stop drawing candidates after this many brackets
                 final_top: int = 1,                # configs re-evaluated at full size at the end
                 trials: Iterable[Trial] = ()) -> None:
        if inner.told or inner.pending:
            raise SearchError("the inner searcher must be fresh: replay stored trials into the SuccessiveHalving wrapper")
        if final_top < 0 or (max_brackets is not None and max_brackets < 1):
            raise SearchError(f"need final_top >= 0 and max_brackets >= 1; got {final_top}, {max_brackets}")
        self.inner = inner
        self.eta = eta
        self.rungs = rung_sizes(min_samples, eta, max_samples or inner.n_samples)
        self.bracket_size = bracket_size
        self.max_brackets = max_brackets
        self.final_top = final_top
        self._phase = "search"                        # search | final | done
        self._bracket = 0
        self._cands: list[Proposal] | None = None     # the current bracket's inner proposals
        self._rung = 0
        self._active: list[int] = []                  # candidate indices at the current rung
        self._rung_results: dict[int, Trial] = {}
        self._full: list[Trial] = []                  # COMPLETE last-rung trials, all brackets
        self._final: list[dict[str, Any]] = []
        self._final_results: dict[int, Trial] = {}
        self.promotions: list[tuple[int, int, int, int]] = []  # (bracket, rung, n in, n promoted)
        super().__init__(inner.space, inner.objective, inner.seed, n_samples=self.rungs[-1], trials=trials)

    @property
    def phase(self) -> str:
        return self._phase

    @property
    def finished(self) -> bool:
        return self._phase == "done"

    # ---- bracket bookkeeping --------------------------------------------------------------
    def _ensure_bracket(self) -> None:
        while self._phase == "search" and self._cands is None:
            if self.max_brackets is not None and self._bracket >= self.max_brackets:
                self._enter_final()
                return
            cands = self.inner.ask(self.bracket_size)
            if not cands:
                self._enter_final()
                return
            self._cands, self._rung, self._active, self._rung_results = cands, 0, list(range(len(cands))), {}

    def _enter_final(self) -> None:
        ranked = sorted(self._full, key=lambda t: self.objective.score(t.result), reverse=True)
        self._final = []
        for t in ranked:
            if t.params not in self._final and len(self._final) < self.final_top:
                self._final.append(dict(t.params))
        self._phase = "final" if self._final else "done"

    def _tell_inner(self, c: int, trial: Trial, state: TrialState) -> None:
        cand = self._cands[c]
        self.inner.tell(Trial(number=trial.number, params=cand.params, n_samples=trial.n_samples, seed=trial.seed,
                              state=state, result=trial.result,
                              fail_reason=trial.fail_reason if state is TrialState.FAILED else None,
                              tags={**cand.tags, "rung": self._rung, "rung_samples": self.rungs[self._rung]}))

    # ---- ask / tell -----------------------------------------------------------------------
    def restore_pending(self, proposals) -> None:
        self._ensure_bracket()
        super().restore_pending(proposals)

    def _ask(self, n: int | None) -> list[Proposal]:
        self._ensure_bracket()
        out: list[Proposal] = []
        if self._phase == "search":
            pending = {p.tags["sh_candidate"] for p in self._pending
                       if p.tags.get("sh_bracket") == self._bracket and p.tags.get("sh_rung") == self._rung}
            for c in self._active:
                if c in self._rung_results or c in pending:
                    continue
                if n is not None and len(out) >= n:
                    break
                out.append(Proposal(self._cands[c].params, self.rungs[self._rung],
                                    tags={"sh_phase": "search", "sh_bracket": self._bracket, "sh_rung": self._rung,
                                          "sh_candidate": c, "rung": self._rung}))
        elif self._phase == "final":
            pending = {p.tags["sh_candidate"] for p in self._pending if p.tags.get("sh_phase") == "final"}
            for c, params in enumerate(self._final):
                if c in self._final_results or c in pending:
                    continue
                if n is not None and len(out) >= n:
                    break
                out.append(Proposal(params, self.rungs[-1], tags={"sh_phase": "final", "sh_candidate": c},
                                    seed_offset=FINAL_SEED_OFFSET))
        return out

    def _on_tell(self, trial: Trial) -> None:
        self._ensure_bracket()
        tags = trial.tags
        if self._phase == "final":
            c = tags.get("sh_candidate")
            if tags.get("sh_phase") != "final" or c is None or not 0 <= c < len(self._final) or self._final[c] != trial.params:
                raise SearchError(f"trial {trial.number} (tags {tags}) is not a final re-evaluation of this study")
            self._final_results[c] = trial
            if len(self._final_results) == len(self._final):
                self._phase = "done"
            return
        c = tags.get("sh_candidate")
        if (self._phase != "search" or tags.get("sh_bracket") != self._bracket or tags.get("sh_rung") != self._rung
                or c not in self._active or self._cands[c].params != trial.params):
            raise SearchError(
                f"trial {trial.number} (tags {tags}) does not belong to bracket {self._bracket}, rung {self._rung}; "
                "trials must be told in the order they were run"
            )
        self._rung_results[c] = trial
        if len(self._rung_results) < len(self._active):
            return
        # The rung is complete: compare its candidates at this rung only.
        results = self._rung_results
        ok = [c for c in self._active if results[c].state is TrialState.COMPLETE]
        ok.sort(key=lambda c: self.objective.score(results[c].result), reverse=True)  # stable: ties by index
        last = self._rung == len(self.rungs) - 1
        keep = ok if last else ok[: max(1, len(self._active) // self.eta)]
        self.promotions.append((self._bracket, self._rung, len(self._active), len(keep)))
        for c in self._active:
            t = results[c]
            if t.state is not TrialState.COMPLETE:
                self._tell_inner(c, t, TrialState.FAILED)
            elif last:
                self._full.append(t)
                self._tell_inner(c, t, TrialState.COMPLETE)
            elif c not in keep:
                self._tell_inner(c, t, TrialState.PRUNED)
        if last or not keep:
            self._cands, self._bracket = None, self._bracket + 1
            self._ensure_bracket()
        else:
            self._active, self._rung, self._rung_results = sorted(keep), self._rung + 1, {}

    def best(self, trials) -> Trial | None:
        """The best final re-evaluation if there is one; otherwise the best full-size result."""
        final = [t for t in trials if t.state is TrialState.COMPLETE and t.tags.get("sh_phase") == "final"]
        if final:
            return max(final, key=lambda t: self.objective.score(t.result))
        full = [t for t in trials if t.state is TrialState.COMPLETE and t.n_samples == self.rungs[-1]]
        if not full:
            return None
        best = max(full, key=lambda t: self.objective.score(t.result))
        return best if self.objective.score(best.result) > -math.inf else None


class AdaptiveFidelityBeam(BeamSearcher):
    """``beam-mf``: TFG's doubling beam run cheaply and coarsely first; each time it stalls its sample
    count doubles and its step halves.

    The beam (top-``beam_width`` parents, one child per move, de-duplication, stable ranking as in
    ``BeamSearcher``) starts at ``min_samples`` per candidate, moving each walked parameter
    ``stride`` rungs of its ladder (``coarse_stride`` = 2 rungs, ×4 for ρ̄ and μ̄, at the first level)
    *up and down*: the climb from the weak corner takes half the rounds, and a coarse step that
    overshoots can come back. A round that does not raise the best score of the current level is a
    *stall*: the top ``promote`` configs are re-run at twice the sample count (a successive-halving
    promotion), the stride halves (down to one rung) and the beam goes on from them, ranking only
    results of that count. At ``n_samples`` (the full count) it runs until the top configs have no
    new children or ``rounds`` rounds in all are used; the ``final_top`` best configs are then
    re-evaluated at full size on held-out seeds and ``best`` reports the best re-evaluation.

    Children already run at the current level are dropped (the plain beam's rule, per level). The
    climb — most of the plain beam's cost — thus runs at ``min_samples`` (¼ of the samples by
    default) and at twice the plain beam's step, and full-size samples are spent near the top.
    ``coarse_stride=1, two_way=False`` moves as the plain beam does (session 2's ``beam-mf``). Trial tags:
    ``beam_round``, ``beam_index``, ``phase`` (beam/final) and ``level``.
    """

    name = "beam-mf"

    def __init__(self, space: SearchSpace, objective: Objective, seed: int = 0, *,
                 n_samples: int = 64,               # the full sample count (last level, final re-evaluations)
                 min_samples: int | None = None,    # the first level (default n_samples // 4, at least 16)
                 beam_width: int = 2,
                 rounds: int = 40,                  # beam rounds in all, over every level
                 promote: int | None = None,        # configs re-run at the next level (default 2 · beam_width)
                 final_top: int = 2,
                 coarse_stride: int = 2,            # ladder steps per move at the first level
                 two_way: bool = True,              # children step down as well as up
                 start: str | dict = "low",         # "low": TFG's weakest corner; "center": mid-ladder; or a point
                 trials: Iterable[Trial] = ()) -> None:
        if coarse_stride < 1:
            raise SearchError(f"coarse_stride must be >= 1, got {coarse_stride}")
        self.start = space.point_of(start)   # checked now; round 0 is this point and its children
        self.coarse_stride = coarse_stride
        self.two_way = two_way
        self.levels = rung_sizes(min_samples or default_min_samples(n_samples), 2, n_samples)
        self.promote = promote or 2 * beam_width
        if self.promote < 1:
            raise SearchError(f"promote must be >= 1, got {promote}")
        self._level = 0
        super().__init__(space, objective, seed, n_samples=n_samples, beam_width=beam_width, rounds=rounds,
                         final_top=final_top, final_n_samples=n_samples, trials=trials)

    @property
    def level(self) -> int:
        """Index into ``levels`` of the sample count the beam now runs at."""
        return self._level

    @property
    def stride(self) -> int:
        """Ladder steps per move at the current level: ``coarse_stride`` at the first, halved at each next level (at least 1)."""
        return max(1, self.coarse_stride >> self._level)

    def _round0(self) -> list[dict[str, Any]]:
        """The start point and its children; ``start="center"`` puts every strength (ρ̄, μ̄, γ̄) in the
        middle of its ladder (integer counts stay at their start: larger ones cost more passes)."""
        point = dict(self.start)
        return [point] + self._children([point], exclude=[point])

    def _children(self, parents: list[dict[str, Any]], exclude: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Per parent and walked parameter: one child ``stride`` ladder steps up, one ``stride`` down
        (clamped to the ladder's ends; children equal to the parent, already run or already listed dropped)."""
        out: list[dict[str, Any]] = []
        for parent in parents:
            for p in self._walked:
                ladder = p.ladder()
                i = ladder_index(ladder, parent[p.name])
                steps = (min(i + self.stride, len(ladder) - 1), max(i - self.stride, 0))
                for j in steps if self.two_way else steps[:1]:
                    child = {**parent, p.name: ladder[j]}
                    if child != parent and child not in exclude and child not in out:
                        out.append(child)
        return out

    def _proposal(self, index: int, params: dict[str, Any]) -> Proposal:
        final = self._phase == "final"
        return Proposal(params, self.levels[-1] if final else self.levels[self._level],
                        tags={"beam_round": self._round, "beam_index": index, "phase": self._phase,
                              "level": self._level},
                        seed_offset=FINAL_SEED_OFFSET if final else 0)

    def _next_round(self, new: list[Trial]) -> list[dict[str, Any]]:
        # the ranking is stable and older results come first, so a new trial tops it only if strictly better
        improved = any(t is self._ranked[0] for t in new)
        if improved or self._level == len(self.levels) - 1:
            children = super()._next_round(new)
            if children:
                return children
        complete = [dict(t.params) for t in self._ranked if t.state is TrialState.COMPLETE]
        if self._level + 1 < len(self.levels) and complete:
            self._level += 1                          # stalled: promote the top configs to twice the samples
            self._ranked = []
            return complete[: self.promote]
        return []

    def best(self, trials: Sequence[Trial]) -> Trial | None:
        """The best final re-evaluation if there is one; otherwise the best result at the largest count."""
        final = [t for t in trials if t.state is TrialState.COMPLETE and t.tags.get("phase") == "final"]
        if final:
            return max(final, key=lambda t: self.objective.score(t.result))
        return super().best(trials)


class ProbeThenBeam(Searcher):
    """``portfolio``: a few full-size probes spread over the strengths, then ``beam-mf`` from the best.

    Round 0 runs ``probes`` configurations at the full sample count: the middle of every strength
    ladder and ``probes − 1`` distinct points drawn at random (seeded) from the ladders (integer counts
    and categoricals at their start). Where good strengths form a broad plateau (a strong predictor),
    one probe usually lands on it at once; where they form a narrow ridge, the beam that follows,
    started at the best probe, walks along it cheaply (``AdaptiveFidelityBeam``, options passed on).
    The reported best is the best full-size result: a probe, until the beam's own full-size results
    (or its final re-evaluations) beat it. Probe trials are tagged ``phase: probe``.
    """

    name = "portfolio"

    def __init__(self, space: SearchSpace, objective: Objective, seed: int = 0, *,
                 n_samples: int = 64, probes: int = 4, trials: Iterable[Trial] = (), **beam_options: Any) -> None:
        if not isinstance(probes, int) or probes < 1:
            raise SearchError(f"probes must be a positive integer, got {probes!r}")
        self.beam_options = beam_options
        self.points = _probe_points(space, seed, probes)
        self._results: dict[int, Trial] = {}
        self.inner: AdaptiveFidelityBeam | None = None
        AdaptiveFidelityBeam(space, objective, seed, n_samples=n_samples, **beam_options)   # options checked now
        super().__init__(space, objective, seed, n_samples=n_samples, trials=trials)

    def natural_batch_size(self) -> int | None:
        return len(self.points) if self.inner is None else self.inner.natural_batch_size()

    @property
    def finished(self) -> bool:
        return self.inner is not None and self.inner.finished

    def _ask(self, n: int | None) -> list[Proposal]:
        if self.inner is not None:
            return self.inner.ask(n)
        asked = {p.tags.get("probe") for p in self._pending if p.tags.get("phase") == "probe"}
        todo = [i for i in range(len(self.points)) if i not in self._results and i not in asked]
        return [Proposal(self.points[i], self.n_samples, tags={"phase": "probe", "probe": i})
                for i in (todo if n is None else todo[:n])]

    def restore_pending(self, proposals: Iterable[Proposal]) -> None:
        proposals = list(proposals)
        super().restore_pending(proposals)
        if self.inner is not None:
            self.inner.restore_pending([p for p in proposals if p.tags.get("phase") != "probe"])

    def _on_tell(self, trial: Trial) -> None:
        if trial.tags.get("phase") != "probe":
            if self.inner is None:
                raise SearchError(f"trial {trial.number} (tags {trial.tags}) came before the probes were all told")
            self.inner.tell(trial)
            return
        self._results[int(trial.tags["probe"])] = trial
        if len(self._results) == len(self.points):
            ranked = sorted(self._results.values(), key=lambda t: (self.score(t), -t.tags["probe"]), reverse=True)
            start = dict(ranked[0].params) if math.isfinite(self.score(ranked[0])) else "center"
            self.inner = AdaptiveFidelityBeam(self.space, self.objective, self.seed, n_samples=self.n_samples,
                                              start=start, **self.beam_options)

    def best(self, trials: Sequence[Trial]) -> Trial | None:
        """The best full-size result: the probes and the beam's full-size trials (its final
        re-evaluations once it has them)."""
        probes = [t for t in trials if t.tags.get("phase") == "probe" and t.state is TrialState.COMPLETE]
        beam = self.inner.best([t for t in trials if t.tags.get("phase") != "probe"]) if self.inner else None
        pool = probes + ([beam] if beam is not None and beam.n_samples >= self.n_samples else [])
        best = max(pool, key=self.score, default=None)      # max keeps the first of equals: a probe
        return best if best is not None and self.score(best) > -math.inf else None


def _probe_points(space: SearchSpace, seed: int, probes: int) -> list[dict[str, Any]]:
    """The center point and ``probes − 1`` distinct random points on the strength ladders."""
    import numpy as np

    rng = np.random.default_rng([seed, 4177])
    points = [space.center_point()]
    ladders = {p.name: p.ladder() for p in space.params if isinstance(p, LogFloat)}
    size = math.prod(len(v) for v in ladders.values())
    for _ in range(100 * probes):
        if len(points) >= min(probes, size):
            break
        point = {**space.start_point(), **{k: v[int(rng.integers(len(v)))] for k, v in ladders.items()}}
        if point not in points:
            points.append(point)
    return points


def ladder_index(ladder: Sequence[float], value: float) -> int:
    """The index of the ladder value nearest ``value`` on a log scale."""
    return min(range(len(ladder)), key=lambda k: abs(math.log(ladder[k]) - math.log(value)))


def make_multifidelity_tpe(space: SearchSpace, objective: Objective, seed: int = 0, *,
                           n_samples: int = 64, min_samples: int | None = None, eta: int = 2,
                           bracket_size: int = 8, final_top: int = 2,
                           trials: Iterable[Trial] = ()) -> SuccessiveHalving:
    """TPE with successive halving over each bracket of ``bracket_size`` proposals (registry name
    ``tpe-mf``): rungs from ``default_min_samples`` doubling to ``n_samples``; PRUNED trials reach TPE with their
    rung's score as an intermediate value."""
    from .optuna_searchers import TPESearcher

    inner = TPESearcher(space, objective, seed, n_samples=n_samples, batch_size=bracket_size)
    sh = SuccessiveHalving(inner, min_samples=min_samples or default_min_samples(n_samples), eta=eta, max_samples=n_samples,
                           bracket_size=bracket_size, final_top=final_top, trials=trials)
    sh.name = "tpe-mf"
    return sh
