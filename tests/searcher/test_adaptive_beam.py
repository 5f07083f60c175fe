"""beam-mf: the doubling beam at a small sample count and a coarse stride first, the count doubled and the\nstride halved whenever the beam stalls."""

from __future__ import annotations

import math

import numpy as np

from synthetic_evaluator import SyntheticEvaluator, assert_restart_continues_exactly

from guidetune.evaluators.records import TrialResult
from guidetune.searcher import (AdaptiveFidelityBeam, BeamSearcher, MaximizeValidity, default_tfg_space,
                                make_searcher, reference_tfg_space, run_study)
from guidetune.searcher.multifidelity import FINAL_SEED_OFFSET


def _peak_at_rho_half(configs, n_samples, seed):
    """validity = −(log₂ ρ̄ + 1)²: only ρ̄ matters, best at ρ̄ = 0.5; ties everywhere else."""
    return [TrialResult(n_samples=n_samples, seed=seed,
                        validity=-(math.log2(float(c.rho)) + 1.0) ** 2, validity_metric="peak") for c in configs]


def test_round0_steps_two_ladder_rungs_at_a_quarter_of_the_samples():
    space = reference_tfg_space()
    start = space.start_point()
    mf = AdaptiveFidelityBeam(space, MaximizeValidity(), n_samples=64)
    assert mf.levels == [16, 32, 64] and mf.stride == 2
    # ρ̄, μ̄: 0.25 → 1 (two doublings); γ̄: 0.001 → 0.1; the down-steps fall off the ladder's start
    assert [p.params for p in mf.ask()] == [start, {**start, "rho": 1.0}, {**start, "mu": 1.0}, {**start, "gamma": 0.1}]
    assert all(p.n_samples == 16 and p.tags["level"] == 0 for p in mf.pending)
    # with coarse_stride=1 round 0 is the plain beam's
    fine = AdaptiveFidelityBeam(space, MaximizeValidity(), n_samples=64, coarse_stride=1)
    plain = BeamSearcher(space, MaximizeValidity(), n_samples=64)
    assert [p.params for p in fine.ask()] == [p.params for p in plain.ask()]


def test_children_step_both_ways_and_the_stride_halves_with_each_level():
    space = reference_tfg_space()
    mf = AdaptiveFidelityBeam(space, MaximizeValidity(), n_samples=128, min_samples=16, coarse_stride=4)
    assert mf.levels == [16, 32, 64, 128]
    parent = {"rho": 1.0, "mu": 0.25, "gamma": 0.01}
    assert mf._children([parent], exclude=[]) == [
        {**parent, "rho": 8.0}, {**parent, "rho": 0.25}, {**parent, "mu": 4.0}, {**parent, "gamma": 1.0},
        {**parent, "gamma": 0.001}]
    strides = []
    for level in range(4):
        mf._level = level
        strides.append(mf.stride)
    assert strides == [4, 2, 1, 1]
    assert mf._children([parent], exclude=[{**parent, "rho": 2.0}]) == [
        {**parent, "rho": 0.5}, {**parent, "mu": 0.5}, {**parent, "gamma": 0.1}, {**parent, "gamma": 0.001}]
    # session 2's beam-mf: the plain beam's moves
    upward = AdaptiveFidelityBeam(space, MaximizeValidity(), n_samples=64, coarse_stride=1, two_way=False)
    plain = BeamSearcher(space, MaximizeValidity(), n_samples=64)
    assert upward._children([parent], exclude=[]) == plain._children([parent], exclude=[])


def test_a_stall_promotes_the_top_configs_to_twice_the_samples_then_final_reevaluation():
    beam = AdaptiveFidelityBeam(reference_tfg_space(), MaximizeValidity(), n_samples=64, promote=3, final_top=2)
    out = run_study(beam, _peak_at_rho_half, seed=7, progress=False)
    levels = [t.tags["level"] for t in out.trials if t.tags["phase"] == "beam"]
    assert levels == sorted(levels) and set(levels) == {0, 1, 2}          # 16 → 32 → 64, never back
    for t in out.trials:
        assert t.n_samples == (64 if t.tags["phase"] == "final" else beam.levels[t.tags["level"]])
    # the first round at a new level re-runs the previous level's top `promote` configs
    first_at_1 = [t for t in out.trials if t.tags["level"] == 1 and t.tags["beam_round"] == min(
        u.tags["beam_round"] for u in out.trials if u.tags["level"] == 1)]
    # level 0 walks ρ̄ two rungs at a time (0.25, 1, 4, …): 0.25 and 1 tie at −1, found at level 1
    assert len(first_at_1) == 3 and {t.params["rho"] for t in first_at_1[:2]} == {0.25, 1.0}
    assert 0.5 not in {t.params["rho"] for t in out.trials if t.tags["level"] == 0}
    final = [t for t in out.trials if t.tags["phase"] == "final"]
    assert len(final) == 2 and all(t.seed == 7 + FINAL_SEED_OFFSET for t in final)
    assert beam.finished and out.stop_reason == "finished"
    assert out.best in final and out.best.params["rho"] == 0.5
    # no config is run twice at the same level
    keys = [(t.tags["level"], tuple(sorted(t.params.items()))) for t in out.trials if t.tags["phase"] == "beam"]
    assert len(keys) == len(set(keys))


def test_restart_from_stored_trials_continues_exactly():
    space, obj = default_tfg_space(), MaximizeValidity()
    first = make_searcher("beam-mf", space, obj, seed=0, n_samples=64)
    stored = run_study(first, SyntheticEvaluator(noise=0.3), max_trials=17, progress=False).told
    restarted = make_searcher("beam-mf", space, obj, seed=0, n_samples=64, trials=stored)
    assert (restarted.round, restarted.level) == (first.round, first.level)
    assert_restart_continues_exactly(first, restarted, noise=0.3, budget_samples=6000)


def _climb_validity(c) -> float:
    """A digits-like landscape: validity rises with log ρ̄ + log μ̄ and saturates; γ̄ barely matters."""
    return 1.0 / (1.0 + math.exp(-(math.log2(float(c.rho)) + math.log2(float(c.mu)) + 8.0) / 2.0)) \
        - 0.02 * abs(math.log10(float(c.gamma)) + 2.0)


def _climb(configs, n_samples, seed):
    """Sample i is valid when its latent difficulty u_i < p(config) + jitter: u_i depends on the sample
    seed only (common random numbers, as the engine's per-sample seeds give), the jitter (sd 0.1) on
    the config too."""
    u = np.array([np.random.default_rng(seed + i).random() for i in range(n_samples)])
    out = []
    for c in configs:
        key = (round(math.log2(float(c.rho))), round(math.log2(float(c.mu))), round(math.log10(float(c.gamma))))
        jitter = np.random.default_rng([seed, n_samples, *(k + 100 for k in key)]).normal(0.0, 0.1, n_samples)
        valid = u < _climb_validity(c) + jitter
        out.append(TrialResult(n_samples=n_samples, seed=seed,
                               validity=float(valid.mean()), validity_metric="accuracy"))
    return out


def test_reaches_the_plain_beams_result_with_at_most_half_the_samples():
    """From the weak corner of the default strengths (TFG's scripts: N_recur = 1, N_iter = 4), on a
    binomially noisy accuracy that rises with ρ̄·μ̄: the climb is where beam-mf saves."""
    space, obj = reference_tfg_space(), MaximizeValidity()
    space = type(space)(tuple(p for p in default_tfg_space().params if p.name in ("rho", "mu", "gamma")), space.base)

    def curve(name, seed):
        searcher = make_searcher(name, space, obj, seed=seed, n_samples=64, **({"rounds": 12} if name == "beam" else {}))
        outcome = run_study(searcher, _climb, budget_samples=1500, seed=100 * seed, progress=False)
        points, spent = [], 0
        for i, t in enumerate(outcome.trials):
            spent += t.n_samples
            best = searcher.best(outcome.trials[: i + 1])
            if best is not None:
                points.append((spent, _climb_validity(space.to_params(best.params))))
        return points

    for seed in range(3):
        plain, mf = curve("beam", seed), curve("beam-mf", seed)
        target = plain[-1][1]
        plain_reach = next(s for s, v in plain if v >= target)
        mf_reach = next((s for s, v in mf if v >= target), math.inf)
        assert mf_reach <= plain_reach / 2, (seed, mf_reach, plain_reach, target)
