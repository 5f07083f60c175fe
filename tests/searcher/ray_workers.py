"""Trial workers that inject faults into real Ray runs (the only fakes in these tests): a slow one whose
process the test kills mid-trial, and one whose predictor raises on strong guidance."""

from __future__ import annotations

import os
import time
from pathlib import Path

from guidetune.searcher.ray_executor import TrialWorker


class SlowWorker(TrialWorker):
    """Announces its pid in ``$GUIDETUNE_TEST_PIDS`` and takes a second before each group."""

    def evaluate(self, configs, n_samples, seed):
        folder = Path(os.environ["GUIDETUNE_TEST_PIDS"])
        (folder / f"{os.getpid()}.pid").write_text(str(os.getpid()))
        time.sleep(1.0)
        return super().evaluate(configs, n_samples, seed)


class RaisingWorker(TrialWorker):
    """The predictor raises whenever a config's ρ̄ is above a threshold."""

    def evaluate(self, configs, n_samples, seed):
        if any(float(c.rho) > 0.0005 for c in configs):
            raise RuntimeError("predictor crashed: CUDA error: an illegal memory access was encountered")
        return super().evaluate(configs, n_samples, seed)
