"""``evaluate`` on the analytic gmm-inverse task: packing, failures, config I/O."""

from __future__ import annotations

import json
import math

import pytest

from guidetune.evaluators.config_io import export_record, read_config
from guidetune.evaluators.errors import EvaluatorError, UnknownTargetError, UnknownTaskError
from guidetune.evaluators.evaluate import evaluate
from guidetune.evaluators.tasks import make_task
from guidetune.guidance import GuidanceConfigError
from guidetune.guidance.presets import tfg


@pytest.fixture(scope="module")
def gmm():
    return make_task("gmm-inverse")


def test_packed_trials_score_exactly_like_separate_ones(gmm):
    configs = [tfg(0.0, 0.0, 0.0, n_iter=2), tfg(0.02, 0.01, 0.01, n_iter=2), tfg(0.05, 0.02, 0.1, n_iter=2)]
    packed = evaluate(gmm, "1.5", configs, 64, seed=3)
    separate = [evaluate(gmm, "1.5", [c], 64, seed=3)[0] for c in configs]
    for a, b in zip(packed, separate):
        for key in ("validity", "fidelity_fd", "kid", "precision", "recall"):
            assert math.isclose(getattr(a, key), getattr(b, key), rel_tol=1e-4, abs_tol=1e-5), key
    # guidance helps on this task: guided validity (−SW to the exact posterior) beats unguided by far
    assert packed[1].validity > packed[0].validity + 1.0
    assert packed[1].forward_passes == 50 and packed[1].backward_passes == 50


def test_a_diverging_config_fails_with_its_reason_and_spares_the_others(gmm):
    ok, bad = evaluate(gmm, "1.5", [tfg(0.02, 0.0, 0.0), tfg(50.0, 0.0, 0.0)], 32)
    assert ok.ok and math.isfinite(ok.validity)
    assert not bad.ok and "non-finite" in bad.failed and "inference step" in bad.failed
    assert math.isnan(bad.validity)


def test_bad_input_is_rejected_before_sampling(gmm):
    with pytest.raises(UnknownTaskError, match="known tasks"):
        make_task("cifar-label")
    with pytest.raises(UnknownTargetError, match="observed values"):
        evaluate(gmm, "banana", [tfg(0.1, 0, 0)], 8)
    with pytest.raises(EvaluatorError, match="share their structural"):
        evaluate(gmm, "1.5", [tfg(0.1, 0, 0, n_recur=1), tfg(0.1, 0, 0, n_recur=2)], 8)
    with pytest.raises(EvaluatorError, match="at least 1"):
        evaluate(gmm, "1.5", [tfg(0.1, 0, 0)], 0)


def test_exported_config_reads_back(tmp_path):
    params = tfg(1.0, 2.0, 0.01, n_recur=2)
    record = export_record(params, task="gmm-inverse", target="1.5", metrics={"validity": -0.2, "kid": math.nan})
    path = tmp_path / "best.json"
    path.write_text(json.dumps(record))  # strict JSON: NaN became null
    assert json.loads(path.read_text())["metrics"]["kid"] is None
    assert read_config(str(path)) == params
    assert read_config('{"rho": 1.0, "mu": 2.0, "gamma": 0.01, "n_recur": 2, "n_iter": 4}') == params
    with pytest.raises(GuidanceConfigError, match="JSON/YAML file or inline JSON"):
        read_config("{rho: 1}")
