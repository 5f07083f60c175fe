"""The sampling engine: guided DDIM over TFG's unified design space, DSG, tail guidance, the
Momentum Sampler, and an analytic Gaussian-mixture prior. Imports nothing of the other packages."""

from .errors import GuidanceConfigError, GuidanceError, ModelContractError, NonFiniteError
from .mixture import GaussianMixture, MixtureEpsilonModel, linear_beta_alphas_cumprod, measurement_log_prob
from .models import EpsilonFromV, EpsilonFromX0, EpsilonModel
from .momentum import momentum_sample, momentum_step, ve_denoiser_from_vp
from .params import TFGParams
from .presets import PRESETS
from .sampler import SamplingRun, sample, sample_with_stats

__all__ = [
    "EpsilonFromV", "EpsilonFromX0", "EpsilonModel", "GaussianMixture", "GuidanceConfigError", "GuidanceError",
    "MixtureEpsilonModel", "ModelContractError", "NonFiniteError", "PRESETS", "SamplingRun", "TFGParams",
    "linear_beta_alphas_cumprod", "measurement_log_prob", "momentum_sample", "momentum_step", "sample",
    "sample_with_stats", "ve_denoiser_from_vp",
]
