from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_guidetune_home(tmp_path, monkeypatch):
    """Every test stores its studies under its own GUIDETUNE_HOME (subprocesses inherit it)."""
    monkeypatch.setenv("GUIDETUNE_HOME", str(tmp_path / "guidetune-home"))
    monkeypatch.delenv("GUIDETUNE_DATABASE_URL", raising=False)
