"""Every snippet in the README runs: Python blocks are executed (the client's against a real
server), and every `guidetune ...` command line in a bash block parses with the real parser (its
subcommand and flags exist)."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "api"))

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def test_every_guidetune_command_line_in_the_readme_parses():
    from guidetune.api.cli import build_parser

    joined = [b.replace("\\\n", " ") for b in blocks("bash")]   # continuation lines
    lines = [ln for b in joined for ln in b.splitlines() if ln.startswith("guidetune ")]
    assert len(lines) >= 15
    parser = build_parser()
    for line in lines:
        argv = shlex.split(line, comments=True)[1:]
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"README command does not parse: {line}")


@pytest.mark.slow
def test_every_python_snippet_in_the_readme_runs(tmp_path, monkeypatch):
    from server_process import Server

    snippets = blocks("python")
    assert len(snippets) >= 3
    monkeypatch.chdir(tmp_path)
    server = Server(tmp_path / "home", "--executor", "local")
    try:
        monkeypatch.setenv("GUIDETUNE_SERVER", server.url)
        monkeypatch.setenv("GUIDETUNE_TOKEN", server.token("readme"))
        for code in snippets:
            namespace: dict = {}
            exec(compile(code, "README.md", "exec"), namespace)   # noqa: S102 - the README's own code
            if "final" in namespace:
                assert namespace["final"]["state"] == "complete" and namespace["best_config"]["params"]
    finally:
        server.stop()
