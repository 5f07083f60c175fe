"""TFG's doubling beam search (Ye et al., 2024, arXiv 2409.15761, App. "hyperparameter search"), faithful
to the reference ``searching.py`` (``BeamSearch``) as restated in ALGORITHMS.md:

* round 0: the start config plus, for each searched parameter, one neighbour with that parameter
  multiplied by its factor (capped); a neighbour equal to the start is dropped;
* each later round: the top-``beam_width`` configs of ALL results so far each spawn one child per
  parameter (``min(value · factor, cap)``); children already run, or already among this round's
  children, are dropped (exact equality of the config, as the reference compares argument dicts);
* after every round all results are re-sorted by the objective, descending, with a stable sort
  (ties keep the order in which they were run);
* a fixed number of ``rounds``; parameters never decrease; no convergence test;
* optionally the ``final_top`` configs are re-run at ``final_n_samples`` at the end.

Extension beyond the reference: power-of-two integers (``n_recur``, ``n_iter``) are walked the same way
(×2 up to their ``high``). Categorical parameters are held at their first choice (the reference fixes
schedules per search). With ``ReferenceTFGScore`` as the objective the ranking is the reference's.

Trials tagged PRUNED by a multi-fidelity wrapper rank below every COMPLETE trial, by (rung reached,
score at that rung); FAILED trials rank last. For a plain beam this reduces to the score alone.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from guidetune.storage.records import Trial, TrialState

from .base import Proposal, Searcher
from .errors import SearchError
from .objective import Objective
from .space import Categorical, SearchSpace


class BeamSearcher(Searcher):
    name = "beam"

    def __init__(self, space: SearchSpace, objective: Objective, seed: int = 0, *,
                 n_samples: int = 64,                 # samples per beam candidate (reference: 64)
                 beam_width: int = 2,                 # top-k configs that spawn children (reference: 2)
                 rounds: int = 6,                     # beam rounds including round 0 (reference max_sweep: 6)
                 final_top: int = 0,                  # configs re-run at the end (reference num_large_scale)
                 final_n_samples: int | None = None,  # sample count of the final re-runs
                 trials: Iterable[Trial] = ()) -> None:
        if beam_width < 1 or rounds < 1 or final_top < 0:
            raise SearchError(f"need beam_width >= 1, rounds >= 1, final_top >= 0; got {beam_width}, {rounds}, {final_top}")
        if final_top and final_n_samples is None:
            raise SearchError("final_top > 0 needs final_n_samples (the full sample count of the re-runs)")
        self.beam_width = beam_width
        self.rounds = rounds
        self.final_top = final_top
        self.final_n_samples = final_n_samples
        self._walked = [p for p in space.params if not isinstance(p, Categorical)]
        if not self._walked:
            raise SearchError("the beam needs at least one non-categorical parameter to walk")
        self._space = space
        self._round = 0                              # current round; == rounds means the final phase
        self._candidates: list[dict[str, Any]] = self._round0()
        self._round_results: dict[int, Trial] = {}   # candidate index -> told trial, current round
        self._ranked: list[Trial] = []               # all beam results, best first
        self._phase = "beam"
        super().__init__(space, objective, seed, n_samples=n_samples, trials=trials)

    # ---- candidate generation (reference generate_candidates) ----------------------------
    def _round0(self) -> list[dict[str, Any]]:
        start = self._space.start_point()
        return [start] + self._children([start], exclude=[start])

    def _children(self, parents: list[dict[str, Any]], exclude: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for parent in parents:
            for p in self._walked:
                child = dict(parent)
                child[p.name] = p.step_up(parent[p.name])
                if child not in exclude and child not in out:
                    out.append(child)
        return out

    def rank_key(self, trial: Trial) -> tuple[int, int, float]:
        if trial.state is TrialState.COMPLETE:
            return (2, 0, self.objective.score(trial.result))
        if trial.state is TrialState.PRUNED:
            return (1, int(trial.tags.get("rung", 0)), self.objective.score(trial.result))
        return (0, 0, -math.inf)

    @property
    def ranked(self) -> tuple[Trial, ...]:
        """All beam results so far, best first (the reference's ``exist_results``)."""
        return tuple(self._ranked)

    @property
    def round(self) -> int:
        return self._round

    @property
    def candidates(self) -> tuple[dict[str, Any], ...]:
        return tuple(self._candidates)

    # ---- ask / tell ---------------------------------------------------------------------
    @property
    def phase(self) -> str:
        """``beam`` (rounds running), ``final`` (re-running the top configs) or ``done``."""
        return self._phase

    @property
    def finished(self) -> bool:
        return self._phase == "done"

    def _ask(self, n: int | None) -> list[Proposal]:
        if self._phase == "done":
            return []
        pending = {p.tags.get("beam_index") for p in self._pending if p.tags.get("beam_round") == self._round}
        out = []
        for i, params in enumerate(self._candidates):
            if i in self._round_results or i in pending:
                continue
            if n is not None and len(out) >= n:
                break
            out.append(self._proposal(i, params))
        return out

    def _proposal(self, index: int, params: dict[str, Any]) -> Proposal:
        n_samples = self.final_n_samples if self._phase == "final" else self.n_samples
        return Proposal(params, n_samples, tags={"beam_round": self._round, "beam_index": index, "phase": self._phase})

    def _on_tell(self, trial: Trial) -> None:
        r, i = trial.tags.get("beam_round"), trial.tags.get("beam_index")
        if (self._phase == "done" or r != self._round or i is None or not 0 <= i < len(self._candidates)
                or self._candidates[i] != trial.params):
            raise SearchError(
                f"trial {trial.number} (tags {trial.tags}, params {trial.params}) is not a candidate of the "
                f"beam's current round {self._round}; trials must be told in the order they were run"
            )
        self._round_results[i] = trial
        if len(self._round_results) < len(self._candidates):
            return
        new = [self._round_results[j] for j in range(len(self._candidates))]
        self._round_results = {}
        self._round += 1
        self._end_round(new)

    def _end_round(self, new: list[Trial]) -> None:
        """A round's results are all in: rank them and choose the next round's candidates."""
        if self._phase == "final":
            self._phase, self._candidates = "done", []
            return
        self._ranked = sorted(self._ranked + new, key=self.rank_key, reverse=True)
        self._candidates = self._next_round(new) if self._round < self.rounds else []
        if not self._candidates:  # rounds used up, or nothing new to run: the beam is over
            self._candidates = [dict(t.params) for t in self._ranked
                                if t.state is TrialState.COMPLETE][: self.final_top]
            self._phase = "final" if self._candidates else "done"

    def _next_round(self, new: list[Trial]) -> list[dict[str, Any]]:
        """The next round's candidates (``_ranked`` already holds ``new``): the top configs' children
        not run yet. An empty list ends the beam."""
        parents = [dict(t.params) for t in self._ranked[: self.beam_width]]
        return self._children(parents, exclude=[dict(t.params) for t in self._ranked])
