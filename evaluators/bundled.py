"""The bundled, pre-trained digits models, loaded from the package's ``weights/`` folder.

Every file is checked against ``weights/SHA256SUMS`` before it is loaded. The models are frozen
(eval mode, ``requires_grad=False``) and cached per device and folder, so repeated calls are free;
callers share the same modules and must not modify them.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .digits_networks import DiffusionModel, GuideClassifier, JudgeClassifier, StrokeMassRegressor

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
REGENERATE_COMMAND = "python -m guidetune.evaluators.train_digits"


class BundledWeightsError(RuntimeError):
    """A bundled weights file is missing, or its SHA-256 differs from ``SHA256SUMS``."""


@dataclass(frozen=True)
class BundledModels:
    """The four frozen digits models: the diffusion prior, the guide classifier, the independent
    judge classifier and the stroke-mass regressor (the guide for the property target)."""

    diffusion: DiffusionModel
    guide: GuideClassifier
    judge: JudgeClassifier
    stroke_mass: StrokeMassRegressor


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_checksums(weights_dir: Path) -> dict[str, str]:
    """File name → expected hex SHA-256, from ``weights_dir/SHA256SUMS``."""
    sums_path = weights_dir / "SHA256SUMS"
    if not sums_path.is_file():
        raise BundledWeightsError(
            f"checksum file {sums_path} is missing; regenerate the weights with `{REGENERATE_COMMAND}`"
        )
    expected = {}
    for line in sums_path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            expected[name.lstrip("*")] = digest
    return expected


def verified_path(weights_dir: Path, name: str, expected: dict[str, str]) -> Path:
    """Path of ``weights_dir/name`` after checking it exists and matches its listed SHA-256."""
    path = weights_dir / name
    if not path.is_file():
        raise BundledWeightsError(
            f"bundled weights file {path} is missing; regenerate it with `{REGENERATE_COMMAND} --only {path.stem}`"
        )
    if name not in expected:
        raise BundledWeightsError(
            f"{name} is not listed in {weights_dir / 'SHA256SUMS'}; regenerate the weights with `{REGENERATE_COMMAND}`"
        )
    actual = sha256_of(path)
    if actual != expected[name]:
        raise BundledWeightsError(
            f"bundled weights file {path} is corrupt or was replaced: its SHA-256 is {actual}, "
            f"SHA256SUMS expects {expected[name]}; regenerate it with `{REGENERATE_COMMAND} --only {path.stem}`"
        )
    return path


def _load_frozen(module: nn.Module, path: Path, device: str) -> nn.Module:
    module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return module.to(device).eval().requires_grad_(False)


@functools.lru_cache(maxsize=None)
def _load_cached(device: str, weights_dir: Path) -> BundledModels:
    expected = read_checksums(weights_dir)
    paths = {name: verified_path(weights_dir, f"{name}.pt", expected)
             for name in ("diffusion", "guide", "judge", "stroke_mass")}
    return BundledModels(
        diffusion=_load_frozen(DiffusionModel(), paths["diffusion"], device),
        guide=_load_frozen(GuideClassifier(), paths["guide"], device),
        judge=_load_frozen(JudgeClassifier(), paths["judge"], device),
        stroke_mass=_load_frozen(StrokeMassRegressor(), paths["stroke_mass"], device),
    )


def load_bundled_models(device: str | torch.device = "cpu", weights_dir: str | Path | None = None) -> BundledModels:
    """Load (once per device and folder) the bundled digits models, verifying every SHA-256 first.

    ``weights_dir`` defaults to the package's ``weights/`` folder. Raises ``BundledWeightsError``
    naming the file and the command that regenerates it when a file is missing or altered.
    """
    folder = WEIGHTS_DIR if weights_dir is None else Path(weights_dir).resolve()
    return _load_cached(str(torch.device(device)), folder)
