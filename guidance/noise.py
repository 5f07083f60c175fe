"""Per-sample random streams (NVlabs/edm style): sample i depends on seeds[i] alone, whatever the
batch it shares, so packed and unpacked runs draw the same numbers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .errors import GuidanceConfigError

PURPOSES = ("trajectory", "smoothing")


def derive_seed(seed: int, purpose: str) -> int:
    """An independent 63-bit seed for one purpose of one sample."""
    state = np.random.SeedSequence([int(seed) % 2**64, PURPOSES.index(purpose)]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class SampleNoise:
    """One generator per sample and purpose; ``randn(purpose, shape)`` returns (B, *shape)."""

    def __init__(self, seeds: Sequence[int] | torch.Tensor, device: torch.device | str, dtype: torch.dtype):
        seeds = [int(s) for s in (seeds.tolist() if isinstance(seeds, torch.Tensor) else seeds)]
        if not seeds:
            raise GuidanceConfigError("seeds is empty: give one integer seed per sample")
        if any(s < 0 for s in seeds):
            raise GuidanceConfigError("seeds must be non-negative integers")
        self.seeds = seeds
        self.device = torch.device(device)
        self.dtype = dtype
        self._generators = {
            purpose: [torch.Generator(device=self.device).manual_seed(derive_seed(s, purpose)) for s in seeds]
            for purpose in PURPOSES
        }

    def __len__(self) -> int:
        return len(self.seeds)

    def randn(self, purpose: str, shape: Sequence[int]) -> torch.Tensor:
        return torch.stack(
            [torch.randn(tuple(shape), generator=g, device=self.device, dtype=self.dtype) for g in self._generators[purpose]]
        )
