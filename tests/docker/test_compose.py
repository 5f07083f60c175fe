"""docker/compose.yaml agrees with the project: every service, command, script, environment
variable and port it uses exists, and the docs name them."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())
DOCS = (DOCKER / "README.md").read_text()
SOURCES = "\n".join(p.read_text() for folder in ("api", "searcher", "storage", "evaluators")
                    for p in (ROOT / folder).rglob("*.py"))


def scripts() -> dict[str, str]:
    return {p.name: p.read_text() for p in DOCKER.glob("*.sh")}


def test_services_and_their_wiring():
    services = COMPOSE["services"]
    assert set(services) == {"postgres", "head", "worker"}
    assert services["head"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["head"]["condition"] == "service_healthy"
    for name in ("postgres", "head"):
        assert services[name]["healthcheck"]["test"], name
    assert "pgdata" in COMPOSE["volumes"] and "guidetune-data" in COMPOSE["volumes"]
    assert "ports" not in services["worker"]          # `--scale worker=N` needs no fixed host port
    gpu = yaml.safe_load((DOCKER / "compose.gpu.yaml").read_text())["services"]["worker"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def test_commands_exist_and_the_head_migrates_before_it_serves():
    from guidetune.api.cli import build_parser

    services = COMPOSE["services"]
    for name in ("head", "worker"):
        script = services[name]["command"][0]
        assert script in scripts(), f"{name} runs {script}, which docker/ does not have"
        for dockerfile in ("Dockerfile", "Dockerfile.cuda"):
            text = (DOCKER / dockerfile).read_text()
            if name == "worker" or dockerfile == "Dockerfile":
                assert script in text, f"{dockerfile} does not install {script}"
    head = scripts()["head.sh"]
    assert head.index("guidetune db upgrade") < head.index("ray start --head") < head.index("guidetune serve")
    parser = build_parser()
    for text in scripts().values():   # every guidetune command line the scripts run parses
        for line in re.findall(r"guidetune ([^\n]+)", text.replace("\\\n", " ")):
            argv = re.sub(r'"[^"]*\$[^"]*"', "X", line).split()
            argv = ["8321" if a == "X" and prev == "--port" else ("2" if a == "X" and prev == "--max-studies" else a)
                    for prev, a in zip([""] + argv, argv)]
            parser.parse_args(argv)


def test_environment_variables_exist_in_the_project_and_the_docs():
    used = set()
    for service in COMPOSE["services"].values():
        used |= set(service.get("environment", {}))
    for text in scripts().values():
        used |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", text))
    used -= {"POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD"}   # the postgres image's own
    for var in used:
        if var.startswith("GUIDETUNE_"):
            in_scripts = any(var in t for t in scripts().values())
            assert var in SOURCES or in_scripts, f"{var} is read by nothing in the project"
        assert var in DOCS, f"docker/README.md does not document {var}"
    assert set(re.findall(r"^([A-Z_]+)=", (DOCKER / "example.env").read_text(), re.M)) <= used | {"POSTGRES_PASSWORD"}


def test_ports_agree_with_the_server_and_the_docs():
    from guidetune.api.cli import build_parser

    default_port = build_parser().parse_args(["serve"]).port
    head = COMPOSE["services"]["head"]
    assert head["environment"]["GUIDETUNE_PORT"] == str(default_port)
    assert head["ports"] == [f"127.0.0.1:{default_port}:{default_port}"]
    assert str(default_port) in DOCS and "6379" in DOCS
    assert head["environment"]["RAY_PORT"] == "6379"
    assert COMPOSE["services"]["worker"]["environment"]["GUIDETUNE_RAY_ADDRESS"] == "head:6379"
