"""The bundled digits tasks with the real trained networks: guidance must move the judge's numbers."""

from __future__ import annotations

import math

import pytest
import torch

from guidetune.evaluators.errors import UnknownTargetError
from guidetune.evaluators.evaluate import evaluate
from guidetune.evaluators.tasks import make_task
from guidetune.guidance import TFGParams
from guidetune.guidance.presets import tfg

N = 24


def test_label_guidance_makes_the_independent_judge_agree():
    task = make_task("digits-label")
    unguided, guided = evaluate(task, "7", [tfg(0, 0, 0), tfg(1.0, 1.0, 0.01)], N, seed=11)
    assert unguided.validity < 0.35                      # about one in ten unguided digits is a 7
    assert guided.validity >= 0.9 and guided.guide_validity >= 0.9
    assert guided.fidelity_fd < unguided.fidelity_fd     # class-7 reference: guided samples match it better
    assert 0 <= guided.precision <= 1 and 0 <= guided.recall <= 1
    assert guided.backward_passes == 50 and guided.seconds_per_sample > 0


def test_combined_task_scores_each_target_and_both():
    task = make_task("digits-combined")
    unguided, guided = evaluate(task, "3:0.40", [tfg(0, 0, 0, n_iter=2), tfg(0.5, 0.5, 0.0, n_iter=2)], N, seed=5)
    for r in (unguided, guided):
        assert r.validity <= min(r.extras["label_accuracy"], r.extras["mass_within_tolerance"]) + 1e-9
    assert guided.validity > unguided.validity + 0.3
    assert guided.extras["mass_mae"] < unguided.extras["mass_mae"]
    with pytest.raises(UnknownTargetError, match="LABEL:MASS"):
        task.check_target("3")


@pytest.mark.parametrize("target", ["superres", "inpaint"])
def test_inverse_guidance_fits_the_measurement(target):
    task = make_task("digits-inverse")
    unguided, guided = evaluate(task, target, [tfg(0, 0, 0), tfg(0.002, 0.002, 0.0)], 16, seed=2)
    assert guided.extras["residual_rmse"] < 0.5 * unguided.extras["residual_rmse"]
    assert guided.extras["mse_to_truth"] < unguided.extras["mse_to_truth"]
    # the measurement of a seed is the same in every trial (fixed by the seed), so trials are comparable
    assert torch.equal(task.measurements(target, [3, 4]), task.measurements(target, [3, 4]))


def test_fidelity_yardstick_uses_the_models_own_samples_of_the_class():
    task = make_task("digits-label")
    fd, drawn = task.fidelity_yardstick("1", 16, seed=0)
    (all_classes,) = evaluate(task, "1", [TFGParams()], 16, seed=0)
    assert math.isfinite(fd) and drawn >= 16
    assert fd < 0.5 * all_classes.fidelity_fd   # judge-filtered class-1 samples are far closer to real 1s


@pytest.mark.parametrize("target", ["superres", "inpaint"])
def test_inverse_yardstick_is_the_models_own_samples_of_every_class(target):
    task = make_task("digits-inverse")     # its reference is every held-out digit, so no class filter
    fd, drawn = task.fidelity_yardstick(target, 16, seed=0)
    (unguided,) = evaluate(task, target, [TFGParams()], 16, seed=0)
    assert drawn == 16 == task.yardstick_cost(target, 16)
    assert fd == pytest.approx(unguided.fidelity_fd, rel=1e-4)   # the same 16 unguided samples, the same reference
    assert make_task("digits-label").yardstick_cost("3", 16) == 160    # one class in ten


def test_tasks_are_built_by_value_for_a_device():
    a, b = make_task("digits-label"), make_task("digits-label", "cpu")
    assert a is not b and a.models is not None and a.device == b.device == torch.device("cpu")
    assert next(a.model.parameters()).device == torch.device("cpu")
    gmm = make_task("gmm-inverse").to("cpu")
    assert gmm.mixture.means.device == torch.device("cpu")
    # a task moved to a device samples there: the same seeds give the same samples on the same device
    x1 = a.unguided_samples(4, seed=5)
    x2 = b.unguided_samples(4, seed=5)
    assert x1.device == torch.device("cpu") and torch.equal(x1, x2)
