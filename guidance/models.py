"""The model contract and adapters (k-diffusion ``external.py`` style): every denoiser becomes a
callable ``model(x, t) -> ε`` with an attribute ``alphas_cumprod`` (ᾱ over the training steps)."""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import torch
from torch import nn

from .errors import ModelContractError


@runtime_checkable
class EpsilonModel(Protocol):
    """ε-prediction model: ``model(x, t)`` with x (B, ...) and t a LongTensor (B,) of training steps."""

    alphas_cumprod: torch.Tensor

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor: ...


def checked_alphas_cumprod(model: object) -> torch.Tensor:
    """The model's ᾱ, validated: 1-D, in (0, 1], non-increasing."""
    abar = getattr(model, "alphas_cumprod", None)
    if not isinstance(abar, torch.Tensor):
        raise ModelContractError(
            "the model needs an attribute `alphas_cumprod` (1-D tensor of ᾱ over the training steps); "
            f"{type(model).__name__} has none"
        )
    if abar.dim() != 1 or abar.numel() < 2:
        raise ModelContractError(f"alphas_cumprod must be 1-D with >= 2 entries, got shape {tuple(abar.shape)}")
    a = abar.detach().to(torch.float64)
    if not torch.isfinite(a).all() or (a <= 0).any() or (a > 1).any():
        raise ModelContractError("alphas_cumprod must lie in (0, 1]")
    if (a[1:] > a[:-1] + 1e-12).any():
        raise ModelContractError("alphas_cumprod must be non-increasing in t (ᾱ_0 ≈ 1 is the clean end)")
    return abar


def _abar_at(alphas_cumprod: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return alphas_cumprod.to(x.device, x.dtype)[t].view(-1, *([1] * (x.dim() - 1)))


class EpsilonFromX0(nn.Module):
    """Adapter for an x0-predicting model: ε = (x_t − √ᾱ_t·x̂0) / √(1−ᾱ_t)."""

    def __init__(self, x0_model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], alphas_cumprod: torch.Tensor):
        super().__init__()
        self.x0_model = x0_model
        self.register_buffer("alphas_cumprod", alphas_cumprod.detach().clone())

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        abar = _abar_at(self.alphas_cumprod, t, x)
        return (x - abar.sqrt() * self.x0_model(x, t)) / (1 - abar).sqrt()


class EpsilonFromV(nn.Module):
    """Adapter for a v-predicting model (Salimans & Ho, 2022): ε = √ᾱ_t·v + √(1−ᾱ_t)·x_t."""

    def __init__(self, v_model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], alphas_cumprod: torch.Tensor):
        super().__init__()
        self.v_model = v_model
        self.register_buffer("alphas_cumprod", alphas_cumprod.detach().clone())

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        abar = _abar_at(self.alphas_cumprod, t, x)
        return abar.sqrt() * self.v_model(x, t) + (1 - abar).sqrt() * x
