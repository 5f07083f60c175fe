"""The demo ``make demo`` runs: guided sampling of the analytic mixture toward an exact posterior."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from tqdm.auto import tqdm

from guidetune.guidance import GaussianMixture, MixtureEpsilonModel, linear_beta_alphas_cumprod, measurement_log_prob, sample
from guidetune.guidance.presets import dps, freedom, lgd, mpgd, tfg, ugd, unguided

from .metrics import sliced_wasserstein


def demo_mixture() -> GaussianMixture:
    return GaussianMixture(
        torch.tensor([0.5, 0.5], dtype=torch.float64),
        torch.tensor([[-2.0, 0.0], [2.0, 1.0]], dtype=torch.float64),
        torch.stack([torch.eye(2) * 0.3, torch.tensor([[0.5, 0.2], [0.2, 0.4]])]).double(),
    )


def run_demo(out: Path, *, n: int = 500, progress: bool = True) -> dict:
    """Sample each method, report its sliced Wasserstein distance to the exact posterior, draw a figure."""
    out.mkdir(parents=True, exist_ok=True)
    mixture = demo_mixture()
    model = MixtureEpsilonModel(mixture, linear_beta_alphas_cumprod())
    A, y, noise_std = torch.tensor([[1.0, 0.0]], dtype=torch.float64), torch.tensor([1.5], dtype=torch.float64), 0.3
    log_prob = measurement_log_prob(A, y, noise_std)
    posterior = mixture.posterior(A, y, noise_std).sample(4000, torch.Generator().manual_seed(0)).float()
    methods = {
        "unguided": unguided(), "DPS": dps(0.01), "LGD": lgd(0.2), "FreeDoM": freedom(0.05, n_recur=2),
        "MPGD": mpgd(0.05), "UGD": ugd(0.05), "TFG": tfg(0.02, 0.02, 0.01, n_recur=2),
    }
    report, samples = {}, {}
    for name, params in tqdm(methods.items(), desc="methods", disable=not progress):
        x = sample(model, None if name == "unguided" else log_prob, params, shape=(2,), steps=50, seeds=range(n))
        samples[name] = x
        report[name] = {"sliced_wasserstein_to_posterior": round(sliced_wasserstein(x, posterior), 4)}
    fig, axes = plt.subplots(1, len(methods) + 1, figsize=(3 * (len(methods) + 1), 3), sharex=True, sharey=True)
    for ax, (name, x) in zip(axes, [("exact posterior", posterior[:n])] + list(samples.items())):
        ax.scatter(x[:, 0], x[:, 1], s=3, alpha=0.5)
        ax.set_title(name if name not in report else f"{name}\nSW={report[name]['sliced_wasserstein_to_posterior']}")
    fig.tight_layout()
    fig.savefig(out / "mixture_demo.png", dpi=80)
    plt.close(fig)
    return {"task": "gmm-inverse (y = x[0] + N(0, 0.3²) = 1.5)", "n": n, "methods": report, "figure": str(out / "mixture_demo.png")}
