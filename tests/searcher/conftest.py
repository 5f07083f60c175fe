from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The synthetic evaluator is a helper module beside the tests; make it importable in any import mode.
sys.path.insert(0, str(Path(__file__).parent))

from synthetic_evaluator import SyntheticEvaluator  # noqa: E402


@pytest.fixture
def evaluator() -> SyntheticEvaluator:
    return SyntheticEvaluator()
