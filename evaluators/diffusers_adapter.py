"""Adapter from a diffusers UNet and scheduler to the engine's model contract (optional extra).

``from_diffusers(unet, scheduler)`` returns a module ``model(x, t) -> ε`` with ``alphas_cumprod``
taken from the scheduler, so a diffusers pipeline's denoiser can be guided and searched::

    from diffusers import DDPMPipeline
    pipe = DDPMPipeline.from_pretrained(...)          # any UNet2DModel + DDPM/DDIM-style scheduler
    model = from_diffusers(pipe.unet.eval(), pipe.scheduler)
    x = sample(model, log_prob, params, shape=(3, 32, 32), seeds=range(8))

The scheduler's ``config.prediction_type`` decides the conversion: ``"epsilon"`` is used as is,
``"v_prediction"`` goes through ``EpsilonFromV`` and ``"sample"`` through ``EpsilonFromX0``. A UNet
with a learned variance (``variance_type`` ``"learned"``/``"learned_range"``, 2·C output channels)
contributes its first C channels. Schedulers without discrete ``alphas_cumprod`` (flow matching,
VE/Karras-only) cannot be adapted. The UNet is called as ``unet(x, t)``: conditional UNets that need
more arguments (``encoder_hidden_states``, ``class_labels``) are not supported here. The adapter
neither copies nor changes the UNet (call ``.eval()`` on it yourself).

diffusers is imported lazily: this module imports without it, and ``from_diffusers`` raises an
``ImportError`` naming ``pip install guidetune[diffusers]`` when it is missing.
"""

from __future__ import annotations

import torch
from torch import nn

from guidetune.guidance import EpsilonFromV, EpsilonFromX0, ModelContractError
from guidetune.guidance.models import checked_alphas_cumprod

INSTALL_HINT = "pip install guidetune[diffusers]"
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
_LEARNED_VARIANCE = ("learned", "learned_range")


def require_diffusers():
    """The ``diffusers`` module, or an ImportError that says how to install it."""
    try:
        import diffusers
    except ImportError as exc:
        raise ImportError(
            f"the diffusers adapter needs the optional dependency diffusers: `{INSTALL_HINT}` "
            f"(or `pip install diffusers`) — import failed: {exc}"
        ) from exc
    return diffusers


class DiffusersPrediction(nn.Module):
    """``unet(x, t).sample`` as a plain tensor, with the scheduler's ᾱ as a buffer (the raw
    prediction: ε, v or x0 depending on the scheduler's ``prediction_type``)."""

    def __init__(self, unet: nn.Module, alphas_cumprod: torch.Tensor, learned_variance: bool = False):
        super().__init__()
        self.unet = unet
        self.learned_variance = learned_variance
        self.register_buffer("alphas_cumprod", alphas_cumprod)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        dtype = getattr(self.unet, "dtype", x.dtype)
        out = self.unet(x.to(dtype), t)
        out = getattr(out, "sample", out)
        if isinstance(out, tuple):
            out = out[0]
        if self.learned_variance and out.shape[1] == 2 * x.shape[1]:
            out = out[:, : x.shape[1]]
        return out.to(x.dtype)


def from_diffusers(unet: nn.Module, scheduler, *, prediction_type: str | None = None) -> nn.Module:
    """An engine model (``model(x, t) -> ε`` with ``alphas_cumprod``) from a diffusers ``UNet2DModel``
    and a scheduler with discrete ``alphas_cumprod`` (DDPM, DDIM, PNDM, Euler, DPM-Solver, …).

    ``prediction_type`` overrides ``scheduler.config.prediction_type``. The returned module has the
    attribute ``prediction_type`` and holds the UNet (not a copy). Raises ``ImportError`` without
    diffusers and ``ModelContractError`` for a scheduler without usable ᾱ or an unknown prediction type.
    """
    require_diffusers()
    config = getattr(scheduler, "config", None)
    kind = prediction_type or getattr(config, "prediction_type", None) or "epsilon"
    if kind not in PREDICTION_TYPES:
        raise ModelContractError(
            f"unknown diffusers prediction_type {kind!r}; supported: {list(PREDICTION_TYPES)}"
        )
    abar = getattr(scheduler, "alphas_cumprod", None)
    if not isinstance(abar, torch.Tensor):
        raise ModelContractError(
            f"{type(scheduler).__name__} has no `alphas_cumprod` tensor (flow-matching and VE schedulers have none); "
            "use a DDPM/DDIM-style scheduler, e.g. DDPMScheduler.from_config(scheduler.config)"
        )
    abar = abar.detach().clone().float()
    params = next(iter(unet.parameters()), None)
    if params is not None:
        abar = abar.to(params.device)
    checked_alphas_cumprod(DiffusersPrediction(nn.Identity(), abar))  # 1-D, in (0, 1], non-increasing
    learned = getattr(config, "variance_type", None) in _LEARNED_VARIANCE
    raw = DiffusersPrediction(unet, abar, learned_variance=learned)
    if kind == "v_prediction":
        model: nn.Module = EpsilonFromV(raw, abar)
    elif kind == "sample":
        model = EpsilonFromX0(raw, abar)
    else:
        model = raw
    model.prediction_type = kind
    return model
