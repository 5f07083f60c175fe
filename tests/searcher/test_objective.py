

def test_constrained_objective_holds_each_trial_against_the_unguided_fd_at_its_own_sample_count():
    import math as _math

    from guidetune.evaluators.records import TrialResult
    from guidetune.searcher import ConstrainedValidity

    table = {16: 8.0, 32: 5.0, 64: 4.0}   # FD shrinks with n: small-n trials must not look infeasible
    objective = ConstrainedValidity(unguided_fd=table, max_ratio=1.2)

    def trial(n, fd):
        return TrialResult(n_samples=n, seed=0, validity=0.9,
                           validity_metric="acc", fidelity_fd=fd)

    assert objective.score(trial(16, 9.0)) == 0.9          # 9.0 ≤ 1.2 × 8.0 at n = 16
    assert objective.score(trial(64, 9.0)) < 0              # but not at n = 64
    assert _math.isclose(objective.constraint(trial(32, 6.0)), _math.log(6.0 / 5.0) - _math.log(1.2))
    assert objective.score(trial(24, 5.9)) == 0.9          # 24 is nearest to 32 on a log scale
    rebuilt = type(objective)(**{k: v for k, v in objective.to_dict().items() if k != "kind"})
    assert rebuilt.constraint(trial(16, 9.0)) == objective.constraint(trial(16, 9.0))
