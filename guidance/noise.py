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


BLOCK = 32  # draws of one element shape fetched per generator call (fixed, so streams never depend on the batch)


class SampleNoise:
    """One generator per sample and purpose; ``randn(purpose, shape)`` returns (B, *shape).

    Draws are fetched in blocks of ``BLOCK`` elements of the requested shape per generator call
    (one call per sample per block instead of one per step); the block size is fixed, so what
    sample i receives depends on its seed and the sequence of requested shapes alone."""

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
        self._buffers: dict[tuple[str, tuple[int, ...]], tuple[torch.Tensor, int]] = {}

    def __len__(self) -> int:
        return len(self.seeds)

    def randn(self, purpose: str, shape: Sequence[int]) -> torch.Tensor:
        """Standard normal draws of per-sample ``shape``; a leading count in ``shape`` is taken as
        that many draws of the rest (so (n_mc, *s) and n_mc calls of s give the same numbers)."""
        shape = tuple(int(s) for s in shape)
        count, element = (shape[0], shape[1:]) if purpose == "smoothing" else (1, shape)
        key = (purpose, element)
        block, used = self._buffers.get(key, (None, BLOCK))
        pieces = []
        while count:
            if used == BLOCK:
                block = torch.stack([torch.randn((BLOCK, *element), generator=g, device=self.device, dtype=self.dtype)
                                     for g in self._generators[purpose]])
                used = 0
            take = min(count, BLOCK - used)
            pieces.append(block[:, used: used + take])
            used, count = used + take, count - take
        self._buffers[key] = (block, used)
        out = pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=1)
        return out if purpose == "smoothing" else out[:, 0]
