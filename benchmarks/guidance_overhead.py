"""Engine overhead: one guided step of ``guidetune.guidance.sample`` against the passes it cannot avoid.

For each configuration the unavoidable work per inference step is
    N_recur × [denoiser forward (+ backward through it when ρ ≠ 0) + predictor forward/backward passes],
timed here on the same model, batch and device with bare torch calls. The ratio
    engine seconds per step / bare-pass seconds per step
is the engine's overhead (goal: at most 1.15×).

    python benchmarks/guidance_overhead.py [--batch 64] [--steps 20] [--repeats 5] [--device cpu] [--threads 2]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from guidetune.guidance import TFGParams, sample
from guidetune.guidance.presets import dps, freedom, mpgd, tfg, ugd


def load_models(device: str):
    """The bundled digit models when present, else the same architectures freshly initialised
    (timing does not depend on the weights)."""
    try:
        from guidetune.evaluators.bundled import load_bundled_models

        bundled = load_bundled_models(device)
        return bundled.diffusion, bundled.guide, "bundled digits DDPM + guide classifier"
    except Exception:  # noqa: BLE001 - any missing or unverifiable weights: fall back to fresh ones
        from guidetune.evaluators.digits_networks import DiffusionModel, GuideClassifier

        torch.manual_seed(0)
        return DiffusionModel().to(device).eval(), GuideClassifier().to(device).eval(), "digits architectures, random init"


def make_log_prob(classifier, target: int):
    def log_prob(x0: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(classifier(x0), dim=1)[:, target]

    return log_prob


def bare_passes(model, log_prob, params: TFGParams, batch: int, steps: int, device: str) -> float:
    """Seconds per step of only the passes the method needs, with no guidance arithmetic."""
    x = torch.randn(batch, 1, 8, 8, device=device)
    t = torch.full((batch,), 500, dtype=torch.long, device=device)
    n_mc = params.n_mc if params.uses_smoothing else 1
    start = time.perf_counter()
    for _ in range(steps):
        for _ in range(params.n_recur):
            if params.uses_variance_guidance:
                x_in = x.detach().requires_grad_(True)
                eps = model(x_in, t)
                value = sum(log_prob(x_in - eps) for _ in range(n_mc))
                torch.autograd.grad(value.sum(), x_in)
            else:
                with torch.no_grad():
                    eps = model(x, t)
            if params.uses_mean_guidance:
                for _ in range(params.n_iter * n_mc):
                    x0 = eps.detach().requires_grad_(True)
                    torch.autograd.grad(log_prob(x0).sum(), x0)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def engine_step(model, log_prob, params: TFGParams, batch: int, steps: int, device: str) -> float:
    start = time.perf_counter()
    sample(model, log_prob, params, shape=(1, 8, 8), steps=steps, seeds=range(batch), clip_x0=1.0, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


CONFIGS = {
    "unguided": TFGParams(),
    "DPS (rho)": dps(0.5),
    "MPGD (mu, N_iter=1)": mpgd(1.0),
    "FreeDoM N_recur=2": freedom(1.0, n_recur=2),
    "UGD N_recur=2, k=4": ugd(1.0, n_recur=2, k=4),
    "TFG N_iter=4": tfg(1.0, 1.0, 0.01, n_recur=1, n_iter=4),
    "TFG N_recur=4, N_iter=4": tfg(1.0, 1.0, 0.01, n_recur=4, n_iter=4),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, classifier, what = load_models(args.device)
    log_prob = make_log_prob(classifier, target=3)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine()
    print(f"# device: {args.device} ({device_name}), torch {torch.__version__}, threads {args.threads}")
    print(f"# model: {what}; batch {args.batch}; {args.steps} steps; median of {args.repeats} repeats")
    print("| configuration | engine ms/step | bare passes ms/step | overhead |")
    print("|---|---|---|---|")
    for name, params in CONFIGS.items():
        lp = None if name == "unguided" else log_prob
        engine_step(model, lp, params, args.batch, 2, args.device)  # warm-up
        bare_passes(model, log_prob, params, args.batch, 2, args.device)
        engine = statistics.median(engine_step(model, lp, params, args.batch, args.steps, args.device) for _ in range(args.repeats))
        bare = statistics.median(bare_passes(model, log_prob, params, args.batch, args.steps, args.device) for _ in range(args.repeats))
        print(f"| {name} | {engine * 1e3:.2f} | {bare * 1e3:.2f} | {engine / bare:.2f}× |")


if __name__ == "__main__":
    main()
