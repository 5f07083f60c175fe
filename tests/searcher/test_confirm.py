"""The confirmation on fresh seeds: the pure plan and summary, and a stored study that holds back part
of its budget, spends what the search left on its top candidates and reports the fresh winner."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from scipy import stats

from guidetune.evaluators.records import TrialResult
from guidetune.searcher import MaximizeValidity, SearchSpace, make_searcher
from guidetune.searcher.confirm import (SEED_OFFSET, ConfirmPolicy, candidates, describe, is_confirmation,
                                        plan, replicate_seed, summarise)
from guidetune.searcher.coordinator import Budget, StudyCoordinator
from guidetune.searcher.errors import SearchError
from guidetune.searcher.executors import InProcessExecutor
from guidetune.searcher.space import LogFloat, PowerOfTwoInt
from guidetune.storage.records import StudySpec, Trial, TrialState
from guidetune.storage.store import StudyStore

from synthetic_evaluator import SyntheticEvaluator


def _trial(number, params, n, validity, *, tags=None, state=TrialState.COMPLETE, seed=0, guide=math.nan,
           metric="synthetic"):
    result = TrialResult(n_samples=n, seed=seed, validity=validity, validity_metric=metric, guide_validity=guide)
    return Trial(number=number, params=params, n_samples=n, seed=seed, state=state, result=result,
                 tags=tags or {}, config=dict(params))


def test_policy_checks_and_reserve():
    with pytest.raises(SearchError, match="confirm-fraction"):
        ConfirmPolicy(fraction=1.0)
    with pytest.raises(SearchError, match="confirm-top"):
        ConfirmPolicy(top=0)
    policy = ConfirmPolicy(fraction=0.2)
    assert policy.reserve(2000, 64) == 400            # the fraction
    assert policy.reserve(200, 64) == 64              # raised to one candidate's two blocks
    assert policy.reserve(100, 64) == 0               # more than half: no confirmation, the search gets all
    assert Budget(2000, None, 50).search_share(policy, 32) == Budget(1600, None, 40)
    assert Budget(None, 1000.0).search_share(policy, 32) == Budget(None, 800.0)


def test_candidates_are_distinct_configs_full_size_first():
    a, b, c = {"rho": 1.0}, {"rho": 2.0}, {"rho": 4.0}
    trials = [_trial(0, a, 16, 0.99), _trial(1, b, 32, 0.8), _trial(2, c, 32, 0.9), _trial(3, a, 32, 0.7),
              _trial(4, b, 32, 0.85),
              Trial(number=5, params={"rho": 8.0}, n_samples=32, seed=0, state=TrialState.FAILED, fail_reason="x"),
              _trial(6, c, 32, 1.0, tags={"phase": "confirm"})]
    score = MaximizeValidity()
    got = candidates(trials, lambda t: score.score(t.result), top=5)
    # a by its 32-sample trial (0.7), b by its latest 32-sample trial (0.85); confirmations and failures left out
    assert [t.number for t in got] == [2, 4, 3]
    assert [t.number for t in candidates(trials, lambda t: score.score(t.result), top=2)] == [2, 4]


def test_plan_prefers_replicates_over_candidates():
    policy = ConfirmPolicy(top=3)
    assert plan(32, 5, policy, samples_left=400) == (3, 4, 0)     # 400 // 96; 16 left, less than a block
    assert plan(32, 5, policy, samples_left=450) == (3, 4, 2)     # 66 left: one more block for the first two
    assert plan(32, 5, policy, samples_left=150) == (2, 2, 0)     # 3 candidates would get one block each
    assert plan(32, 5, policy, samples_left=70) == (1, 2, 0)
    assert plan(32, 5, policy, samples_left=60) == (0, 0, 0)
    assert plan(32, 1, policy, samples_left=400) == (1, 12, 0)    # only one candidate: all to it
    assert plan(32, 5, policy, samples_left=450, trials_left=13) == (3, 4, 1)
    assert plan(32, 5, policy) == (3, 2, 0)                        # nothing limited: the minimum


def test_plan_charges_each_candidate_its_own_passes():
    policy = ConfirmPolicy(top=3)
    costs = [100.0, 400.0, 100.0]          # passes per sample: the second candidate recurs 4 times
    # one round of 16-sample blocks costs 16 · 600 = 9,600 passes; 30,000 pay for 3 rounds and 1,200 are left:
    # not enough for a block of the first candidate (1,600)
    assert plan(16, 3, policy, passes_left=30_000, costs=costs) == (3, 3, 0)
    # 31,000: 2,200 left after 3 rounds pay for one more block of the first (1,600), not of the second (6,400)
    assert plan(16, 3, policy, passes_left=31_000, costs=costs) == (3, 3, 1)
    # charged at the dearest candidate's 400 per sample (the rule before), 31,000 passes were 4 blocks × 3:
    # one round only, too few for a confirmation of three; by their own costs they are three rounds
    assert 31_000 // (16 * 400) // 3 < policy.min_replicates
    # too few passes for two rounds of three (19,200), enough for two of the first two (16,000)
    assert plan(16, 3, policy, passes_left=17_000, costs=costs) == (2, 2, 0)
    assert plan(16, 3, policy, passes_left=30_000, costs=costs, samples_left=96) == (3, 2, 0)   # samples bind first
    with pytest.raises(SearchError, match="positive cost for every candidate"):
        plan(16, 3, policy, passes_left=30_000, costs=[100.0])


def test_summary_numbers_winner_and_curse():
    plan_record = {"level": 0.95, "n_samples": 32, "replicates": 3, "search_best": {"number": 7, "score": 0.99},
                   "candidates": [{"number": 7, "params": {"rho": 1.0}, "config": {"rho": 1.0}, "search_score": 0.99},
                                  {"number": 9, "params": {"rho": 2.0}, "config": {"rho": 2.0}, "search_score": 0.95}]}
    fresh = {0: [0.80, 0.84, 0.82], 1: [0.90, 0.86, 0.88]}
    reps = [_trial(20 + 2 * r + i, {"rho": [1.0, 2.0][i]}, 32, fresh[i][r], guide=fresh[i][r] + 0.1,
                   tags={"phase": "confirm", "candidate": i, "replicate": r})
            for r in range(3) for i in range(2)]
    out = summarise(plan_record, reps, MaximizeValidity())
    assert out["state"] == "done"
    w = out["winner"]
    assert w["number"] == 9 and w["replicates"] == 3 and w["n_samples"] == 96
    assert w["score"] == pytest.approx(0.88)
    half = stats.t.ppf(0.975, 2) * statistics.stdev(fresh[1]) / math.sqrt(3)
    assert w["score_half_width"] == pytest.approx(half) and w["validity_half_width"] == pytest.approx(half)
    assert w["guide_judge_gap"] == pytest.approx(0.1)
    assert out["search_best_lost"] is True           # 0.99 > 0.88 + 0.0497
    assert "config" not in out["results"][0]
    calm = summarise({**plan_record, "search_best": {"number": 9, "score": 0.9}}, reps, MaximizeValidity())
    assert calm["search_best_lost"] is False


def _confirmation(per_candidate, n=32, metric="synthetic"):
    """A plan record and its replicate trials: candidate i scores ``per_candidate[i][r]`` on block r."""
    plan_record = {"level": 0.95, "n_samples": n, "replicates": len(per_candidate[0]), "search_best": None,
                   "candidates": [{"number": 10 + i, "params": {"rho": float(i)}, "config": {}, "search_score": 0.9}
                                  for i in range(len(per_candidate))]}
    reps = [_trial(100 + len(per_candidate) * r + i, {"rho": float(i)}, n, v, metric=metric,
                   tags={"phase": "confirm", "candidate": i, "replicate": r})
            for i, values in enumerate(per_candidate) for r, v in enumerate(values)]
    return plan_record, reps


def test_the_expected_score_scores_each_block_on_the_choice_of_the_others():
    # A wins on all three blocks (0.833 against 0.823) thanks to its lucky first block; without block 0 the
    # other blocks choose B, which scores 0.80 there; without block 1 or 2 they choose A, 0.80 on each
    w = summarise(*_confirmation([[0.90, 0.80, 0.80], [0.80, 0.85, 0.82]]), MaximizeValidity())["winner"]
    assert w["number"] == 10 and w["score"] == pytest.approx(0.8333333)
    assert w["picks"] == [11, 10, 10]
    assert w["expected_score"] == pytest.approx(0.80) and w["expected_half_width"] == pytest.approx(0.0)
    # one candidate: nothing chosen, nothing to correct
    alone = summarise(*_confirmation([[0.90, 0.80, 0.80]]), MaximizeValidity())
    assert alone["winner"]["picks"] is None and alone["winner"]["expected_score"] == alone["winner"]["score"]
    assert "expect" not in describe(alone) and "expect 0.8 ± 0" in describe(
        summarise(*_confirmation([[0.90, 0.80, 0.80], [0.80, 0.85, 0.82]]), MaximizeValidity()))


def test_the_expected_score_picks_on_the_extra_blocks_too():
    # the plan's extra block goes to the leader A (0.95): without block 0, A's other blocks (0.80, 0.80,
    # 0.95: 0.85) beat B's (0.835), so block 0 is scored on A, as the winner's own choice uses every block;
    # only the blocks both ran are left out in turn
    record, reps = _confirmation([[0.90, 0.80, 0.80, 0.95], [0.80, 0.85, 0.82]])
    w = summarise(record, reps, MaximizeValidity())["winner"]
    assert w["number"] == 10 and w["replicates"] == 4 and w["score"] == pytest.approx(0.8625)
    assert w["picks"] == [10, 10, 10]
    assert w["expected_score"] == pytest.approx((0.90 + 0.80 + 0.80) / 3)


def test_the_expected_score_removes_the_bias_of_the_best_of_three():
    # three equally good candidates, independent noise of 0.05 per block, 3 blocks each: the winner's fresh
    # score is the largest of three means (≈ 0.85 standard errors, 0.05 · 0.85 / √3 ≈ 0.025 too high);
    # each block scored on the others' choice is a fresh draw of a truly 0.80 candidate
    rng = random.Random(3)
    winner_bias, expected_bias = [], []
    for _ in range(400):
        values = [[0.80 + rng.gauss(0, 0.05) for _ in range(3)] for _ in range(3)]
        w = summarise(*_confirmation(values), MaximizeValidity())["winner"]
        winner_bias.append(w["score"] - 0.80)
        expected_bias.append(w["expected_score"] - 0.80)
    assert statistics.fmean(winner_bias) > 0.018                 # measured 0.025
    assert abs(statistics.fmean(expected_bias)) < 0.006          # 4 standard errors of the mean


def test_an_accuracy_gets_wilsons_interval_when_its_blocks_agree():
    plan_record = {"level": 0.95, "n_samples": 32, "replicates": 3, "search_best": {"number": 7, "score": 1.0},
                   "candidates": [{"number": 7, "params": {"rho": 1.0}, "config": {}, "search_score": 1.0}]}
    reps = [_trial(20 + r, {"rho": 1.0}, 32, 1.0, metric="judge_accuracy",
                   tags={"phase": "confirm", "candidate": 0, "replicate": r}) for r in range(3)]
    w = summarise(plan_record, reps, MaximizeValidity())["winner"]
    z = stats.norm.ppf(0.975)
    wilson_lower = 1 / (1 + z * z / 96)              # Wilson's lower bound for 96 successes in 96
    assert w["validity"] == 1.0 and w["validity_half_width"] == pytest.approx(1 - wilson_lower)
    assert w["score_half_width"] == pytest.approx(1 - wilson_lower)   # not 0: the blocks' spread alone says nothing
    two = [_trial(30 + r, {"rho": 1.0}, 16, v, metric="judge_accuracy",
                  tags={"phase": "confirm", "candidate": 0, "replicate": r}) for r, v in enumerate([0.8125, 0.9375])]
    w2 = summarise({**plan_record, "replicates": 2}, two, MaximizeValidity())["winner"]
    p, n = 0.875, 32                                 # 28 of 32: Wilson's, not t on 2 blocks (12.7 × 0.088 / √2 ≈ 0.79)
    centre, spread = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert w2["validity_half_width"] == pytest.approx(p - (centre - spread)) and w2["validity_half_width"] < 0.2


def test_a_constrained_winner_is_held_against_the_yardstick_at_its_block_size():
    from guidetune.searcher import ConstrainedValidity

    objective = ConstrainedValidity(unguided_fd=((16, 4.0), (64, 2.0)), max_ratio=2.0)
    plan_record = {"level": 0.95, "n_samples": 16, "replicates": 4, "search_best": {"number": 7, "score": 1.0},
                   "candidates": [{"number": 7, "params": {"rho": 1.0}, "config": {}, "search_score": 1.0}]}
    fds = [5.0, 5.0, 9.0, 6.0]            # the third block alone breaks the limit (9 > 2 × 4)
    reps = []
    for r, fd in enumerate(fds):
        t = _trial(20 + r, {"rho": 1.0}, 16, [1.0, 0.9375, 1.0, 1.0][r], metric="judge_accuracy",
                   tags={"phase": "confirm", "candidate": 0, "replicate": r})
        reps.append(Trial(**{**t.__dict__, "result": TrialResult(**{**t.result.__dict__, "fidelity_fd": fd})}))
    w = summarise(plan_record, reps, objective)["winner"]
    # the mean FD (6.25) of 16-sample blocks against the unguided FD of 16 samples (4): feasible — not against the
    # 64-sample yardstick (2) that the pooled count would pick
    assert w["n_samples"] == 64 and w["constraint"] == pytest.approx(math.log(6.25 / 4.0) - math.log(2.0))
    assert w["score"] == pytest.approx(w["validity"]) == pytest.approx(0.984375)
    # the score's interval is the validity's: the infeasible block does not widen it by a penalty's size
    assert w["score_half_width"] == pytest.approx(w["validity_half_width"]) and w["score_half_width"] < 0.1


def _study(store, budget, *, searcher="beam", n=16, seed=0):
    space = SearchSpace((LogFloat("rho", 0.25, 8.0), LogFloat("mu", 0.25, 8.0)), {"n_recur": 2, "n_iter": 4})
    spec = StudySpec(task="synthetic", target="-", searcher=searcher, space=space.to_dict(), n_samples=n, seed=seed,
                     budget_samples=budget)
    return store.create_study(f"s{budget}-{searcher}-{seed}", spec), space


def _coordinator(store, study, space, budget, *, searcher="beam", rounds=3, **kw):
    evaluator = SyntheticEvaluator(noise=2.0)
    s = make_searcher(searcher, space, MaximizeValidity(), 0, n_samples=study.spec.n_samples, rounds=rounds)
    return StudyCoordinator(store, study.id, s, InProcessExecutor(evaluator), budget=Budget(budget),
                            passes_per_sample=evaluator.passes_per_sample, confirm=ConfirmPolicy(top=3), **kw), evaluator


def test_a_beam_that_finishes_early_spends_the_rest_on_the_confirmation(tmp_path):
    store = StudyStore(f"sqlite:///{tmp_path}/s.db")
    study, space = _study(store, 2000)
    coordinator, evaluator = _coordinator(store, study, space, 2000, rounds=3)
    outcome = coordinator.run()
    c = outcome.confirmation
    assert c["state"] == "done" and c["search_stop"] == "finished"     # the beam ran out of rounds
    searched = [t for t in outcome.trials if not is_confirmation(t)]
    fresh = [t for t in outcome.trials if is_confirmation(t)]
    assert c["search_samples"] == sum(t.n_samples for t in searched) < 1600   # it stopped before its share
    k, r, extra = len(c["candidates"]), c["replicates"], c["extra"]
    assert (k, r, extra) == plan(16, 3, ConfirmPolicy(), samples_left=2000 - c["search_samples"])
    assert k == 3 and len(fresh) == k * r + extra and 2000 - 16 < outcome.samples_spent <= 2000   # less than a block left
    # fresh seeds: disjoint from every search trial's, the same blocks for every candidate (one packed call each)
    search_seeds = {s for t in searched for s in range(t.seed, t.seed + t.n_samples)}
    assert all(s not in search_seeds for t in fresh for s in range(t.seed, t.seed + t.n_samples))
    blocks = r + (extra > 0)
    assert {t.seed for t in fresh} == {replicate_seed(0, i, 16) for i in range(blocks)}
    assert min(t.seed for t in fresh) == SEED_OFFSET
    assert sum(1 for call in evaluator.calls if call["seed"] >= SEED_OFFSET) == blocks      # one packed call per block
    # the searcher never saw them, and the best is the fresh winner's search trial
    assert all(not is_confirmation(t) for t in coordinator.searcher.told)
    assert outcome.best.number == c["winner"]["number"] and store.get_study(study.id).best_number == outcome.best.number
    by_cand = {i: [t.result.validity for t in fresh if t.tags["candidate"] == i] for i in range(k)}
    best_i = max(range(k), key=lambda i: statistics.fmean(by_cand[i]))
    assert c["winner"]["number"] == c["candidates"][best_i]["number"]
    assert c["winner"]["validity"] == pytest.approx(statistics.fmean(by_cand[best_i]))
    # what to expect: each of the r common blocks scored on the candidate the other blocks chose
    v = {(t.tags["candidate"], t.tags["replicate"]): t.result.validity for t in fresh}
    picks = [max(range(k), key=lambda i: (statistics.fmean(v[i, b] for b in range(r) if b != j), -i)) for j in range(r)]
    assert c["winner"]["picks"] == [c["candidates"][i]["number"] for i in picks]
    assert c["winner"]["expected_score"] == pytest.approx(statistics.fmean(v[i, j] for j, i in enumerate(picks)))
    assert "so expect" in describe(c)
    store.close()


def test_a_search_that_spends_its_share_leaves_the_reserve_to_the_confirmation(tmp_path):
    store = StudyStore(f"sqlite:///{tmp_path}/s.db")
    study, space = _study(store, 600)
    coordinator, _ = _coordinator_random(store, study, space, 600)
    outcome = coordinator.run()
    c = outcome.confirmation
    assert c["search_stop"] == "budget_samples" and c["search_samples"] <= 480     # 600 − 20 %
    assert c["search_samples"] > 480 - 16
    assert outcome.samples_spent == c["search_samples"] + (len(c["candidates"]) * c["replicates"] + c["extra"]) * 16
    assert outcome.samples_spent > 600 - 16
    store.close()


def _coordinator_random(store, study, space, budget, **kw):
    evaluator = SyntheticEvaluator(noise=2.0)
    s = make_searcher("random", space, MaximizeValidity(), 0, n_samples=study.spec.n_samples)
    return StudyCoordinator(store, study.id, s, InProcessExecutor(evaluator), budget=Budget(budget),
                            passes_per_sample=evaluator.passes_per_sample, confirm=ConfirmPolicy(top=3), **kw), evaluator


def test_a_paused_confirmation_resumes_to_the_same_summary(tmp_path):
    store = StudyStore(f"sqlite:///{tmp_path}/s.db")
    whole, space = _study(store, 1200, seed=0)
    reference = _coordinator(store, whole, space, 1200)[0].run().confirmation

    store2 = StudyStore(f"sqlite:///{tmp_path}/t.db")
    study, _ = _study(store2, 1200, seed=0)
    seen = []

    def pause_in_confirmation():
        return sum(is_confirmation(t) for t in seen) >= 2

    first = _coordinator(store2, study, space, 1200, on_trial=seen.append, pause=pause_in_confirmation)[0]
    paused = first.run()
    assert paused.confirmation["state"] == "running" and store2.get_study(study.id).state.value == "queued"
    assert 2 <= sum(is_confirmation(t) and t.state.is_finished for t in paused.trials) < len(
        [t for t in paused.trials if is_confirmation(t)])
    resumed = _coordinator(store2, study, space, 1200)[0].run()
    assert resumed.confirmation == reference
    n_fresh = [t for t in resumed.trials if is_confirmation(t)]
    assert len(n_fresh) == len(reference["candidates"]) * reference["replicates"] + reference["extra"]   # none twice
    assert all(t.state is TrialState.COMPLETE for t in n_fresh)
    store.close()
    store2.close()


def test_a_resumed_confirmation_runs_only_its_own_trials(tmp_path):
    """The search's proposals that no longer fitted stay PENDING: a resumed confirmation must not run them."""
    store = StudyStore(f"sqlite:///{tmp_path}/s.db")
    whole, space = _study(store, 600, searcher="random")
    reference = _coordinator_random(store, whole, space, 600)[0].run()
    leftovers = [t.number for t in reference.trials if t.state is TrialState.PENDING]
    assert leftovers and not any(is_confirmation(t) for t in reference.trials if t.number in leftovers)

    store2 = StudyStore(f"sqlite:///{tmp_path}/t.db")
    study, _ = _study(store2, 600, searcher="random")
    seen = []
    _coordinator_random(store2, study, space, 600, on_trial=seen.append,
                        pause=lambda: sum(is_confirmation(t) for t in seen) >= 1)[0].run()
    resumed = _coordinator_random(store2, study, space, 600)[0].run()
    assert resumed.confirmation == reference.confirmation
    assert [(t.number, t.state) for t in resumed.trials] == [(t.number, t.state) for t in reference.trials]
    store.close()
    store2.close()


def test_too_small_a_budget_skips_the_confirmation_and_says_so(tmp_path):
    store = StudyStore(f"sqlite:///{tmp_path}/s.db")
    study, space = _study(store, 48)
    outcome = _coordinator(store, study, space, 48)[0].run()
    assert outcome.confirmation["state"] == "skipped"
    assert outcome.confirmation["reason"] == ("0 samples left after the search; a confirmation needs 2 blocks of 16 "
                                             "samples of its best candidate")
    assert not any(is_confirmation(t) for t in outcome.trials)
    store.close()


def test_a_passes_budget_charges_each_candidate_its_own_passes(tmp_path):
    """Candidates of different N_recur cost different passes per sample: the confirmation spends the passes
    budget down to less than the next block it could have planned, not to what the dearest candidate costs."""
    space = SearchSpace((LogFloat("rho", 0.25, 8.0), LogFloat("mu", 0.25, 8.0), PowerOfTwoInt("n_recur", 1, 4)),
                        {"n_iter": 4})
    evaluator = SyntheticEvaluator(noise=2.0)
    budget = 40_000.0
    store = StudyStore(f"sqlite:///{tmp_path}/s.db")
    spec = StudySpec(task="synthetic", target="-", searcher="random", space=space.to_dict(), n_samples=16, seed=3,
                     budget_passes=budget)
    study = store.create_study("passes", spec)
    s = make_searcher("random", space, MaximizeValidity(), 3, n_samples=16)
    outcome = StudyCoordinator(store, study.id, s, InProcessExecutor(evaluator), budget=Budget(passes=budget),
                               passes_per_sample=evaluator.passes_per_sample, confirm=ConfirmPolicy(top=3)).run()
    c = outcome.confirmation
    assert c["state"] == "done"
    costs = [evaluator.passes_per_sample(space.to_params(cand["params"])) for cand in c["candidates"]]
    assert len(set(costs)) > 1                                       # the candidates differ in cost
    fresh = [t for t in outcome.trials if is_confirmation(t)]
    search_passes = outcome.passes_spent - sum(t.n_samples * costs[t.tags["candidate"]] for t in fresh)
    k, r, extra = len(c["candidates"]), c["replicates"], c["extra"]
    assert (k, r, extra) == plan(16, k, ConfirmPolicy(top=3), passes_left=budget - search_passes, costs=costs)
    assert len(fresh) == k * r + extra and outcome.passes_spent <= budget
    # what is left pays for no further block of the plan: the next extra block (or, all extras given, a round)
    left = budget - outcome.passes_spent
    next_block = 16 * (costs[extra] if extra < k - 1 else sum(costs))
    assert left < next_block
    # the old rule charged every block at the dearest candidate's cost: it planned fewer blocks
    assert k * r + extra > ((budget - search_passes) // (16 * max(costs)))
    store.close()


def test_small_search_trials_are_confirmed_on_full_size_blocks(tmp_path):
    """``trial_samples``: the search runs 8-sample trials, the confirmation blocks of the study's 32."""
    store = StudyStore(f"sqlite:///{tmp_path}/s.db")
    study, space = _study(store, 1200, searcher="tpe", n=32)
    evaluator = SyntheticEvaluator(noise=2.0)
    s = make_searcher("tpe", space, MaximizeValidity(), 0, n_samples=32, trial_samples=8)
    outcome = StudyCoordinator(store, study.id, s, InProcessExecutor(evaluator), budget=Budget(1200),
                               passes_per_sample=evaluator.passes_per_sample, confirm=ConfirmPolicy(top=3)).run()
    c = outcome.confirmation
    searched = [t for t in outcome.trials if not is_confirmation(t) and t.state is TrialState.COMPLETE]
    fresh = [t for t in outcome.trials if is_confirmation(t)]
    assert {t.n_samples for t in searched} == {8} and len(searched) == c["search_samples"] // 8 == 120
    assert {t.n_samples for t in fresh} == {32} and c["n_samples"] == 32
    assert c["winner"]["n_samples"] == 32 * c["winner"]["replicates"] >= 64
    assert outcome.samples_spent > 1200 - 32
    store.close()
