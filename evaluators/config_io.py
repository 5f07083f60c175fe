"""The one configuration format: what ``guidetune search --export`` and ``guidetune export`` write and
``--config`` reads. An exported record carries its format version, task and target; reading it for
another task is an error (a digits config on ``gmm-inverse`` would run with absurd strengths)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from guidetune.guidance import GuidanceConfigError, TFGParams

FORMAT = "guidetune.config/1"


def read_config(text_or_path: str, *, task: str | None = None) -> TFGParams:
    """A JSON or YAML file path, or inline JSON: bare guidance parameters ({"rho": 1.0, ...}) or an
    exported record ({"format": ..., "task": ..., "params": {...}}). ``task``: the task it will run
    on; a record exported for another task is refused."""
    inline = text_or_path.lstrip().startswith("{")
    path = Path(text_or_path)
    if not inline and not path.is_file():
        raise GuidanceConfigError(f"--config {text_or_path!r}: no such file; give the path of a file written by "
                                  "`guidetune export` / `search --export`, or inline JSON such as '{\"rho\": 1.0}'")
    text = text_or_path if inline else path.read_text()
    data = _parse(text, yaml=not inline and path.suffix in (".yaml", ".yml"), source=text_or_path)
    if not isinstance(data, dict):
        raise GuidanceConfigError("a configuration must be a JSON object of guidance parameters")
    if "params" in data:
        if data.get("format") != FORMAT:
            raise GuidanceConfigError(f"--config: format {data.get('format')!r} is not {FORMAT!r}, the one this guidetune "
                                      "reads; export the configuration again with this version")
        if task is not None and data.get("task") not in (None, task) and not _same_file(data.get("task"), task):
            raise GuidanceConfigError(f"--config was exported for task {data['task']!r} (target {data.get('target')!r}), "
                                      f"not {task!r}: its strengths are tuned to that task's predictor; search "
                                      f"this task first, or pass bare parameters if you mean it")
        data = data["params"]
    return TFGParams.from_dict(data)


def _parse(text: str, *, yaml: bool, source: str) -> Any:
    try:
        if yaml:
            import yaml as pyyaml

            return pyyaml.safe_load(text)
        return json.loads(text)
    except Exception as exc:  # json.JSONDecodeError or yaml.YAMLError
        reason = getattr(exc, "msg", None) or str(exc).splitlines()[0]
        raise GuidanceConfigError(
            f"--config must be a JSON/YAML file or inline JSON such as '{{\"rho\": 1.0, \"mu\": 2.0}}'; "
            f"could not parse {source[:80]!r}: {reason}"
        ) from None


def _same_file(a: str | None, b: str) -> bool:
    """Task files are recorded by absolute path; the user may type a relative one."""
    return bool(a) and a.endswith(".json") and b.endswith(".json") and Path(a).resolve() == Path(b).resolve()


def export_record(params: TFGParams, *, task: str, target: str, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    """The exported best configuration: the params plus where they came from."""
    return {"format": FORMAT, "task": task, "target": target, "params": params.to_dict(), "metrics": json_safe(metrics or {})}


def json_safe(value: Any) -> Any:
    """NaN and inf become None so the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
