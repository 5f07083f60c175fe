"""Write a study's trials into an Optuna storage (e.g. ``sqlite:///study.db``) for optuna-dashboard."""

from __future__ import annotations

import math
from typing import Sequence

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState as OptunaState

from guidetune.storage.records import Trial, TrialState

from .objective import Objective
from .optuna_searchers import quiet_optuna
from .space import LogFloat, PowerOfTwoInt, SearchSpace


def _display_distribution(p):
    """Real values for people: log floats, power-of-two ints as log-scale ints, categoricals."""
    if isinstance(p, LogFloat):
        return FloatDistribution(p.low, p.high, log=True)
    if isinstance(p, PowerOfTwoInt):
        return IntDistribution(p.low, p.high, log=True)
    return CategoricalDistribution(p.choices)


def _display_distributions(trials: Sequence[Trial], space: SearchSpace | None):
    if space is not None:
        return {p.name: _display_distribution(p) for p in space.params}
    dists = {}
    for t in trials:  # no space given: infer from the values
        for k, v in t.params.items():
            if isinstance(v, bool) or isinstance(v, str):
                choices = sorted({tt.params[k] for tt in trials if k in tt.params}, key=str)
                dists[k] = CategoricalDistribution(choices)
            else:
                vals = [tt.params[k] for tt in trials if k in tt.params]
                lo, hi = min(vals), max(vals)
                dists[k] = (IntDistribution(lo, hi) if all(isinstance(x, int) for x in vals)
                            else FloatDistribution(lo, hi, log=lo > 0))
    return dists


def export_to_optuna(trials: Sequence[Trial], storage_url: str, study_name: str, objective: Objective, *,
                     space: SearchSpace | None = None, include_failed: bool = True) -> optuna.Study:
    """Create (or extend) ``study_name`` in ``storage_url`` with the COMPLETE trials' objective values.

    Each Optuna trial keeps the project's trial number, sample count, seed, tags and raw metrics as
    user attributes; FAILED trials go in as Optuna FAIL (with their reason) unless ``include_failed``
    is false; PRUNED trials as PRUNED. Values are ``objective.values(result)``, so the dashboard shows
    the same normalised numbers the searcher optimised. Returns the loaded study.
    """
    dists = _display_distributions(trials, space)
    with quiet_optuna():
        study = optuna.create_study(storage=storage_url, study_name=study_name,
                                    directions=list(objective.directions), load_if_exists=True)
        study.set_metric_names([f"{objective.kind}_{i}" if len(objective.directions) > 1 else objective.kind
                                for i in range(len(objective.directions))])
        for t in trials:
            if not t.state.is_finished:
                continue
            user_attrs = {"guidetune_number": t.number, "n_samples": t.n_samples, "seed": t.seed,
                          "tags": {k: v for k, v in t.tags.items() if k != "optuna_system_attrs"}}
            if t.result is not None:
                user_attrs["metrics"] = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                                         for k, v in t.result.to_dict().items()
                                         if k in ("validity", "fidelity_fd", "kid", "precision", "recall",
                                                  "forward_passes", "backward_passes", "seconds_per_sample")}
            values = objective.values(t.result) if t.state is TrialState.COMPLETE else None
            params = {k: v for k, v in t.params.items() if k in dists}
            kw = dict(params=params, distributions={k: dists[k] for k in params}, user_attrs=user_attrs)
            if values is not None:
                constraint = objective.constraint(t.result)
                ft = optuna.trial.create_trial(state=OptunaState.COMPLETE, values=list(values),
                                               constraints=None if constraint is None else {"fidelity": constraint},
                                               **kw)
            elif t.state is TrialState.PRUNED:
                ft = optuna.trial.create_trial(state=OptunaState.PRUNED, **kw)
            elif include_failed:
                user_attrs["fail_reason"] = t.fail_reason or "objective could not score the result"
                ft = optuna.trial.create_trial(state=OptunaState.FAIL, **kw)
            else:
                continue
            study.add_trial(ft)
    return optuna.load_study(study_name=study_name, storage=storage_url)
