"""The one configuration format: what ``guidetune search --export`` writes and ``--config`` reads."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from guidetune.guidance import GuidanceConfigError, TFGParams

FORMAT = "guidetune.config/1"


def read_config(text_or_path: str) -> TFGParams:
    """A JSON file path or inline JSON: either bare guidance parameters ({"rho": 1.0, ...}) or an
    exported record ({"format": ..., "params": {...}, ...})."""
    candidate = Path(text_or_path)
    text = candidate.read_text() if not text_or_path.lstrip().startswith("{") and candidate.is_file() else text_or_path
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GuidanceConfigError(
            f"--config must be a JSON file or inline JSON such as '{{\"rho\": 1.0, \"mu\": 2.0}}'; "
            f"could not parse {text_or_path[:80]!r}: {exc.msg}"
        ) from None
    if not isinstance(data, dict):
        raise GuidanceConfigError("a configuration must be a JSON object of guidance parameters")
    return TFGParams.from_dict(data["params"] if "params" in data else data)


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
