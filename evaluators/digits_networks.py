"""Architectures of the bundled digits models (inputs (B, 1, 8, 8) in model space [−1, 1]).

No module uses BatchNorm: samples of a batch never interact, so a sample's output does not depend
on which other samples share its batch (guidance batches many trials together).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NUM_TRAIN_STEPS = 1000
BETA_START = 1e-4
BETA_END = 0.02
NUM_CLASSES = 10


def linear_alphas_cumprod(steps: int = NUM_TRAIN_STEPS) -> torch.Tensor:
    """ᾱ_t for DDPM's linear β schedule 1e-4 → 0.02 (Ho et al., 2020), float32, shape (steps,)."""
    betas = torch.linspace(BETA_START, BETA_END, steps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0).float()


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer-style sinusoidal embedding of (B,) time steps, shape (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels // 4), channels)


class ResBlock(nn.Module):
    """GroupNorm–SiLU–conv residual block with an additive time-embedding projection."""

    def __init__(self, in_ch: int, out_ch: int, time_dim: int):
        super().__init__()
        self.norm1 = _group_norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.time_proj = nn.Linear(time_dim, out_ch)
        self.norm2 = _group_norm(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_proj(temb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class DigitUNet(nn.Module):
    """ε-prediction UNet for 8×8 digits: 8×8 (``base`` ch) → 4×4 (2·``base``) → 2×2 (2·``base``)
    and back, with skip connections and a sinusoidal time embedding of integer steps in [0, 1000)."""

    def __init__(self, base: int = 32, time_dim: int = 128):
        super().__init__()
        c1, c2 = base, 2 * base
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.stem = nn.Conv2d(1, c1, 3, padding=1)
        self.down1 = ResBlock(c1, c1, time_dim)                    # 8×8
        self.pool1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)     # → 4×4
        self.down2 = ResBlock(c1, c2, time_dim)                    # 4×4
        self.pool2 = nn.Conv2d(c2, c2, 3, stride=2, padding=1)     # → 2×2
        self.mid1 = ResBlock(c2, c2, time_dim)
        self.mid2 = ResBlock(c2, c2, time_dim)
        self.up2 = ResBlock(2 * c2, c2, time_dim)                  # 4×4, with skip from down2
        self.up1 = ResBlock(c2 + c1, c1, time_dim)                 # 8×8, with skip from down1
        self.out_norm = _group_norm(c1)
        self.out = nn.Conv2d(c1, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.time_mlp(sinusoidal_embedding(t, self.time_dim))
        h0 = self.stem(x)
        h1 = self.down1(h0, temb)
        h2 = self.down2(self.pool1(h1), temb)
        h = self.pool2(h2)
        h = self.mid2(self.mid1(h, temb), temb)
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = self.up2(torch.cat([h, h2], dim=1), temb)
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = self.up1(torch.cat([h, h1], dim=1), temb)
        return self.out(F.silu(self.out_norm(h)))


class DiffusionModel(nn.Module):
    """The engine's model contract: ``model(x, t) -> ε`` plus the ``alphas_cumprod`` buffer.

    ``t`` holds training-step indices in [0, 1000): a LongTensor of shape (B,), or a scalar that is
    broadcast over the batch.
    """

    alphas_cumprod: torch.Tensor

    def __init__(self, unet: DigitUNet | None = None):
        super().__init__()
        self.unet = unet if unet is not None else DigitUNet()
        self.register_buffer("alphas_cumprod", linear_alphas_cumprod())

    def forward(self, x: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        return self.unet(x, t)


class GuideClassifier(nn.Module):
    """Small CNN (conv–GroupNorm–SiLU, 8×8 → 4×4 → 2×2) giving logits over the 10 digits."""

    def __init__(self, width: int = 32):
        super().__init__()
        w1, w2 = width, 2 * width
        self.body = nn.Sequential(
            nn.Conv2d(1, w1, 3, padding=1), _group_norm(w1), nn.SiLU(),
            nn.Conv2d(w1, w1, 3, padding=1), _group_norm(w1), nn.SiLU(),
            nn.Conv2d(w1, w2, 3, stride=2, padding=1), _group_norm(w2), nn.SiLU(),   # 4×4
            nn.Conv2d(w2, w2, 3, padding=1), _group_norm(w2), nn.SiLU(),
            nn.Conv2d(w2, w2, 3, stride=2, padding=1), _group_norm(w2), nn.SiLU(),   # 2×2
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(w2 * 4, 128), nn.SiLU(), nn.Linear(128, NUM_CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class JudgeClassifier(nn.Module):
    """MLP on the 64 flattened pixels (deliberately unlike the guide's CNN) with a 128-d penultimate
    layer that ``features`` exposes for Fréchet distance and precision/recall."""

    feature_dim = 128

    def __init__(self, hidden: int = 256):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64, hidden), nn.LayerNorm(hidden), nn.GELU(),
            nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.GELU(),
            nn.Linear(hidden, self.feature_dim), nn.GELU(),
        )
        self.classifier = nn.Linear(self.feature_dim, NUM_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations, shape (B, 128)."""
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class StrokeMassRegressor(nn.Module):
    """Small CNN predicting ``stroke_mass(x)`` (mean ink in [0, 1]), output shape (B,)."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.SiLU(),   # 4×4
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), nn.SiLU(),   # 2×2
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * width, 64), nn.SiLU(), nn.Linear(64, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).squeeze(1)
