"""Both install modes work: the editable checkout (the test run itself) and a built wheel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_every_package_the_weights_and_the_migrations(tmp_path):
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("guidetune-*.whl")
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    code = ("import guidetune.guidance, guidetune.evaluators.bundled as b, guidetune.searcher, guidetune.api.cli; "
            "from guidetune.storage import StudyStore; "
            "b.load_bundled_models(); StudyStore('sqlite:///wheel.db').close(); print(guidetune.guidance.__file__)")
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(target), "PATH": ""}, cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(target))   # imported from the wheel, not the checkout


def test_bare_folder_names_are_not_importable():
    """The folders install only under guidetune.* (a PyPI package called `guidance` exists)."""
    out = subprocess.run([sys.executable, "-c", "import guidance"], cwd="/", capture_output=True, text=True)
    assert out.returncode != 0
