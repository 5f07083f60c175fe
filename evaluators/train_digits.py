"""Train the bundled digits models reproducibly (one CPU thread, fixed seeds, deterministic ops).

    python -m guidetune.evaluators.train_digits                 # all four models (~12 min, one CPU thread)
    python -m guidetune.evaluators.train_digits --only guide    # one model, the others are kept
    python -m guidetune.evaluators.train_digits --grid docs/digits_unguided.png   # sample picture

Writes ``{diffusion,guide,judge,stroke_mass}.pt`` (float32 state_dicts), ``SHA256SUMS`` and
``TRAINING.json`` (command, seeds, step counts, held-out scores) into ``--out``, by default the
package's ``weights/`` folder that ``guidetune.evaluators.bundled`` loads.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .bundled import REGENERATE_COMMAND, load_bundled_models, sha256_of
from .digits_data import load_digit_splits, stroke_mass
from .digits_networks import (
    NUM_TRAIN_STEPS,
    DiffusionModel,
    GuideClassifier,
    JudgeClassifier,
    StrokeMassRegressor,
)

DEFAULT_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MODEL_NAMES = ("diffusion", "guide", "judge", "stroke_mass")
EPS_MSE_STEPS = (50, 250, 500, 750, 950)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one model."""

    seed: int
    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    warmup: int = 100


CONFIGS = {
    "diffusion": TrainConfig(seed=1, steps=7000, batch_size=128, lr=1e-3, warmup=200),
    "guide": TrainConfig(seed=2, steps=1500, batch_size=64, lr=2e-3, weight_decay=1e-4),
    "judge": TrainConfig(seed=3, steps=1500, batch_size=64, lr=2e-3, weight_decay=1e-4),
    "stroke_mass": TrainConfig(seed=4, steps=1500, batch_size=64, lr=2e-3),
}
EMA_DECAY = 0.999
GRAD_CLIP = 1.0


# ---- augmentation ------------------------------------------------------------------------------
def random_shift(x: torch.Tensor, generator: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Shift each image by up to ``max_shift`` pixels in x and y, filling with background (−1)."""
    size = x.shape[-1]
    padded = F.pad(x, [max_shift] * 4, value=-1.0)
    span = 2 * max_shift + 1
    offsets = torch.randint(0, span, (x.shape[0], 2), generator=generator)
    rows = (offsets[:, 0:1] + torch.arange(size))[:, None, :, None]
    cols = (offsets[:, 1:2] + torch.arange(size))[:, None, None, :]
    batch = torch.arange(x.shape[0])[:, None, None, None]
    return padded[batch, 0, rows, cols]


def add_light_noise(x: torch.Tensor, generator: torch.Generator, max_sigma: float = 0.2) -> torch.Tensor:
    """Add Gaussian noise with σ ~ U(0, ``max_sigma``) to a random half of the batch."""
    sigma = torch.rand(x.shape[0], 1, 1, 1, generator=generator) * max_sigma
    sigma = sigma * (torch.rand(x.shape[0], 1, 1, 1, generator=generator) < 0.5)
    return x + sigma * torch.randn(x.shape, generator=generator)


def random_mixup(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Blend a random half of the batch with another image (λ ~ U(0, 1)) to widen the ink range."""
    partner = x[torch.randperm(x.shape[0], generator=generator)]
    lam = torch.rand(x.shape[0], 1, 1, 1, generator=generator)
    lam = torch.where(torch.rand(x.shape[0], 1, 1, 1, generator=generator) < 0.5, lam, torch.ones_like(lam))
    return lam * x + (1.0 - lam) * partner


# ---- measurements ------------------------------------------------------------------------------
@torch.no_grad()
def classifier_accuracy(classifier: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``classifier`` on (x, y)."""
    return float((classifier(x).argmax(dim=1) == y).float().mean())


@torch.no_grad()
def regressor_mae(regressor: nn.Module, x: torch.Tensor) -> float:
    """Mean absolute error of a stroke-mass regressor against the exact ``stroke_mass(x)``."""
    return float((regressor(x) - stroke_mass(x)).abs().mean())


@torch.no_grad()
def epsilon_mse(model: DiffusionModel, x0: torch.Tensor, t: int, seed: int = 0) -> float:
    """ε-prediction MSE of ``model`` on ``x0`` noised to step ``t`` (fixed noise from ``seed``)."""
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    abar = model.alphas_cumprod[t]
    xt = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    return float((model(xt, torch.full((x0.shape[0],), t, dtype=torch.long)) - noise).pow(2).mean())


# ---- training ----------------------------------------------------------------------------------
def _lr_factor(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < config.warmup:
        return (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _optimise(
    name: str,
    model: nn.Module,
    config: TrainConfig,
    loss_fn: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
    n_train: int,
    ema: nn.Module | None = None,
) -> None:
    """Run ``config.steps`` AdamW steps of ``loss_fn(batch_indices, generator)``."""
    generator = torch.Generator().manual_seed(config.seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: _lr_factor(step, config))
    model.train()
    bar = tqdm(range(config.steps), desc=f"train {name}", mininterval=2.0, file=sys.stderr)
    for step in bar:
        batch = torch.randint(0, n_train, (config.batch_size,), generator=generator)
        loss = loss_fn(batch, generator)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimiser.step()
        scheduler.step()
        if ema is not None:
            decay = min(EMA_DECAY, (1 + step) / (10 + step))
            with torch.no_grad():
                for ema_p, p in zip(ema.parameters(), model.parameters()):
                    ema_p.lerp_(p, 1.0 - decay)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    model.eval()


def train_diffusion(x_train: torch.Tensor, config: TrainConfig) -> DiffusionModel:
    """DDPM ε-MSE training with uniform t; returns the EMA weights. No augmentation."""
    torch.manual_seed(config.seed)
    model = DiffusionModel()
    ema = copy.deepcopy(model).requires_grad_(False)
    alphas_cumprod = model.alphas_cumprod

    def loss_fn(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x0 = x_train[batch]
        t = torch.randint(0, NUM_TRAIN_STEPS, (x0.shape[0],), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        abar = alphas_cumprod[t][:, None, None, None]
        xt = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
        return F.mse_loss(model(xt, t), noise)

    _optimise("diffusion", model, config, loss_fn, len(x_train), ema=ema)
    return ema.eval()


def train_classifier(
    name: str, classifier: nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig, noise: bool
) -> nn.Module:
    """Cross-entropy training with ±1-pixel shifts (and light Gaussian noise when ``noise``)."""

    def loss_fn(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        inputs = random_shift(x[batch], generator)
        if noise:
            inputs = add_light_noise(inputs, generator)
        return F.cross_entropy(classifier(inputs), y[batch], label_smoothing=0.05)

    _optimise(name, classifier, config, loss_fn, len(x))
    return classifier


def train_stroke_mass(x: torch.Tensor, config: TrainConfig) -> StrokeMassRegressor:
    """Regress the exact stroke mass of shifted, blended and lightly noised training digits."""
    torch.manual_seed(config.seed)
    regressor = StrokeMassRegressor()

    def loss_fn(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        inputs = add_light_noise(random_mixup(random_shift(x[batch], generator), generator), generator)
        return F.mse_loss(regressor(inputs), stroke_mass(inputs))

    _optimise("stroke_mass", regressor, config, loss_fn, len(x))
    return regressor


# ---- outputs -----------------------------------------------------------------------------------
def write_checksums(out: Path) -> None:
    """Write ``SHA256SUMS`` (``sha256sum`` format) for every ``*.pt`` file present in ``out``."""
    lines = [f"{sha256_of(path)}  {path.name}\n" for path in sorted(out.glob("*.pt"))]
    (out / "SHA256SUMS").write_text("".join(lines))


def _save(model: nn.Module, path: Path) -> None:
    state = {key: value.detach().to(torch.float32).contiguous() for key, value in model.state_dict().items()}
    torch.save(state, path)


def train_and_save(out: Path, only: str | None = None) -> dict[str, dict]:
    """Train the requested models, save them into ``out`` and return their ``TRAINING.json`` entries."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    splits = load_digit_splits()
    heldout = splits.heldout
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, dict] = {}
    for name in MODEL_NAMES if only is None else (only,):
        config = CONFIGS[name]
        started = time.perf_counter()
        if name == "diffusion":
            model: nn.Module = train_diffusion(splits.train.x, config)
            scores = {f"heldout_eps_mse_t{t}": epsilon_mse(model, heldout.x, t) for t in EPS_MSE_STEPS}
            scores.update({f"train_eps_mse_t{t}": epsilon_mse(model, splits.train.x, t) for t in EPS_MSE_STEPS})
        elif name == "stroke_mass":
            model = train_stroke_mass(splits.train.x, config)
            scores = {"heldout_mae": regressor_mae(model, heldout.x)}
        else:
            torch.manual_seed(config.seed)
            classifier, data = (GuideClassifier(), splits.train) if name == "guide" else (JudgeClassifier(), splits.judge)
            model = train_classifier(name, classifier, data.x, data.y, config, noise=name == "guide")
            scores = {"heldout_accuracy": classifier_accuracy(model, heldout.x, heldout.y)}
        _save(model, out / f"{name}.pt")
        report[name] = {
            "command": f"{REGENERATE_COMMAND} --only {name}",
            "config": asdict(config),
            "parameters": sum(p.numel() for p in model.parameters()),
            "seconds": round(time.perf_counter() - started, 1),
            "scores": scores,
        }
        print(f"{name}: " + ", ".join(f"{key}={value:.4f}" for key, value in scores.items()))
    write_checksums(out)
    training_json = out / "TRAINING.json"
    record = json.loads(training_json.read_text()) if training_json.exists() else {}
    record.update({
        "command": REGENERATE_COMMAND,
        "torch": torch.__version__,
        "splits": "guidetune.evaluators.digits_data: default_rng(0) permutation, class-interleaved, "
                  "train 900 / judge 597 / heldout 300",
        "optimiser": f"AdamW, linear warm-up then cosine decay, grad-norm clip {GRAD_CLIP}; "
                     f"diffusion weights are the EMA (decay {EMA_DECAY})",
    })
    record.setdefault("models", {}).update(report)
    training_json.write_text(json.dumps(record, indent=2) + "\n")
    return report


def save_unguided_grid(weights_dir: Path, path: Path, n_side: int = 8) -> None:
    """Draw ``n_side``² unguided samples (engine, 50 DDIM steps, η = 1, seeds 0..) as a PNG grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from guidetune.guidance import TFGParams, sample

    torch.set_num_threads(1)
    model = load_bundled_models(weights_dir=weights_dir).diffusion
    n = n_side * n_side
    samples = sample(model, log_prob=None, params=TFGParams(), shape=(1, 8, 8), steps=50, eta=1.0,
                     seeds=list(range(n)))
    fig, axes = plt.subplots(n_side, n_side, figsize=(n_side, n_side))
    for image, ax in zip(samples[:, 0].clamp(-1, 1).cpu(), axes.flat):
        ax.imshow(image.numpy(), cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_axis_off()
    fig.suptitle("64 unguided samples (DDIM, 50 steps, η = 1, seeds 0–63)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS_DIR, help="weights folder (default: the package's)")
    parser.add_argument("--only", choices=MODEL_NAMES, help="train just this model, keep the others")
    parser.add_argument("--grid", type=Path, metavar="PNG", help="skip training; save 64 unguided samples from --out")
    args = parser.parse_args(argv)
    if args.grid is not None:
        save_unguided_grid(args.out, args.grid)
        return
    started = time.perf_counter()
    train_and_save(args.out, args.only)
    print(f"done in {time.perf_counter() - started:.0f} s; weights in {args.out}")


if __name__ == "__main__":
    main()
