"""schemathesis against the served OpenAPI schema, with a token: no 5xx, no response outside the
schema, 405 with ``Allow`` for undeclared methods. (``positive_data_acceptance`` is left out: the
schema cannot express that metadata must be a valid predictor description or that a bundled task
must exist; those are 4xx by design and tested in test_server.py.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from server_process import Server  # noqa: E402

pytestmark = pytest.mark.slow


def test_schemathesis_finds_no_server_error_or_schema_violation(tmp_path):
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("schemathesis is not installed: `pip install -e .[dev]` installs it")
    srv = Server(tmp_path / "home", "--no-runner")
    try:
        token = srv.token("fuzz")
        out = subprocess.run(
            [exe, "run", f"{srv.url}/openapi.json", "-H", f"Authorization: Bearer {token}", "--checks", "all",
             "--exclude-checks", "positive_data_acceptance", "--max-examples", "25", "--seed", "1",
             "--request-timeout", "60", "--no-color"],
            capture_output=True, text=True, timeout=900)
    finally:
        srv.stop()
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert "generated" in out.stdout   # it did run test cases
    log = (srv.log).read_text()
    assert "Traceback" not in log and "unexpected error" not in log, log[-3000:]
