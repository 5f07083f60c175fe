"""Uploaded networks: what their metadata must say, how a file is validated, and the task spec a
study of them runs on.

A **predictor** is a TorchScript module ``f(x)`` on a batch ``x`` of shape ``(B, *input_shape)``:

* ``classifier``: logits ``(B, num_classes)``; a target is a class index;
* ``regressor``: a value ``(B,)`` or ``(B, 1)``; a target is a number, met within ``tolerance``;
* ``log-likelihood``: ``log f(x)`` ``(B,)`` or ``(B, 1)`` itself.

A **model** is a TorchScript ε-network ``model(x, t)`` holding its ``alphas_cumprod`` buffer (or
predicting ``x0`` / ``v``, as ``prediction`` says).

``check_*_metadata`` are pure and cheap (the API calls them before it reads a file);
``validate_*`` load the file and probe it — the API runs them in a separate process with time and
memory limits (``python -m guidetune.evaluators.uploads KIND PATH METADATA_JSON``), so a malicious
or broken file can not take the service down. Every failure is a ``TaskFileError`` naming the check.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Mapping

from .errors import TaskFileError

PREDICTOR_KINDS = {"classifier": "logits", "regressor": "scalar", "log-likelihood": "log_likelihood"}
BUNDLED_MODELS = {"digits": ("bundled:digits", (1, 8, 8))}   # what a study's `model` may name besides an upload
PREDICTIONS = ("epsilon", "x0", "v")
_PREDICTOR_KEYS = {"kind", "model", "input_shape", "num_classes", "tolerance", "targets", "name"}
_MODEL_KEYS = {"input_shape", "prediction", "steps", "clip_x0", "name"}


def _shape(value: Any, field: str) -> list[int]:
    if (not isinstance(value, list) or not value
            or not all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 4096 for s in value)):
        raise TaskFileError(f"metadata {field!r} must be a non-empty list of positive integers (per sample, e.g. "
                            f"[1, 8, 8]), got {value!r}")
    return value


def _positive(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise TaskFileError(f"metadata {field!r} must be a positive number, got {value!r}")
    return float(value)


def _unknown(meta: Mapping[str, Any], allowed: set[str], what: str) -> None:
    if not isinstance(meta, Mapping):
        raise TaskFileError(f"{what} metadata must be a JSON object, got {type(meta).__name__}")
    extra = set(meta) - allowed
    if extra:
        raise TaskFileError(f"{what} metadata has unknown fields {sorted(extra)}; allowed: {sorted(allowed)}")


def check_predictor_metadata(meta: Mapping[str, Any], model_shape: list[int] | None) -> dict[str, Any]:
    """The normalised metadata of a predictor upload; ``model_shape`` is the shape of the diffusion
    model it guides (None: the model is not known, which the caller reports)."""
    _unknown(meta, _PREDICTOR_KEYS, "predictor")
    kind = meta.get("kind")
    if kind not in PREDICTOR_KINDS:
        raise TaskFileError(f"metadata 'kind' must be one of {sorted(PREDICTOR_KINDS)}, got {kind!r}")
    if not isinstance(meta.get("model"), str) or not meta["model"]:
        raise TaskFileError("metadata 'model' must name the diffusion model the predictor guides: a bundled one "
                            f"({', '.join(BUNDLED_MODELS)}) or the id of an uploaded model")
    if model_shape is None:
        raise TaskFileError(f"metadata 'model' {meta['model']!r} is neither a bundled model ({', '.join(BUNDLED_MODELS)}) "
                            "nor one of your uploaded models (POST /v1/models)")
    shape = _shape(meta.get("input_shape", model_shape), "input_shape")
    if shape != list(model_shape):
        raise TaskFileError(f"metadata 'input_shape' {shape} differs from the shape {list(model_shape)} of model "
                            f"{meta['model']!r}; a predictor takes the model's samples")
    out: dict[str, Any] = {"kind": kind, "model": meta["model"], "input_shape": shape}
    if kind == "classifier":
        n = meta.get("num_classes")
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise TaskFileError(f"a classifier's metadata needs 'num_classes', an integer ≥ 2, got {n!r}")
        out["num_classes"] = n
    if kind == "regressor":
        out["tolerance"] = _positive(meta.get("tolerance"), "tolerance")
    targets = meta.get("targets")
    if targets is not None:
        if not isinstance(targets, list) or not targets or not all(isinstance(t, (str, int, float)) for t in targets):
            raise TaskFileError(f"metadata 'targets' must be a non-empty list of targets, got {targets!r}")
        out["targets"] = [str(t) for t in targets]
    elif kind == "classifier":
        out["targets"] = [str(i) for i in range(out["num_classes"])]
    else:
        out["targets"] = ["0"] if kind == "log-likelihood" else None
    if out["targets"] is None:
        raise TaskFileError("a regressor's metadata needs 'targets', the values it may be asked for, e.g. [0.3, 0.5]")
    if "name" in meta:
        out["name"] = str(meta["name"])[:100]
    return out


def check_model_metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The normalised metadata of a diffusion-model upload."""
    _unknown(meta, _MODEL_KEYS, "model")
    out: dict[str, Any] = {"input_shape": _shape(meta.get("input_shape"), "input_shape")}
    prediction = meta.get("prediction", "epsilon")
    if prediction not in PREDICTIONS:
        raise TaskFileError(f"metadata 'prediction' must be one of {list(PREDICTIONS)}, got {prediction!r}")
    out["prediction"] = prediction
    steps = meta.get("steps", 50)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 1000:
        raise TaskFileError(f"metadata 'steps' must be an integer in [1, 1000] (DDIM steps), got {steps!r}")
    out["steps"] = steps
    if meta.get("clip_x0") is not None:
        out["clip_x0"] = _positive(meta["clip_x0"], "clip_x0")
    if "name" in meta:
        out["name"] = str(meta["name"])[:100]
    return out


def task_spec(model: str, model_meta: Mapping[str, Any], predictor: tuple[str, Mapping[str, Any]],
              judge: tuple[str, Mapping[str, Any]] | None = None, name: str = "upload") -> dict[str, Any]:
    """The file-task spec (``evaluators/file_task.py``) of a study: ``model`` a bundled name or a model
    file path with its metadata; ``predictor`` and ``judge`` as (file path, checked metadata)."""
    bundled = BUNDLED_MODELS.get(model)
    spec: dict[str, Any] = {"name": name, "targets": list(predictor[1]["targets"])}
    if bundled is not None:
        spec.update(model=bundled[0], shape=list(bundled[1]), reference=bundled[0])
    else:
        spec.update(model=model, shape=list(model_meta["input_shape"]), prediction=model_meta["prediction"],
                    steps=model_meta["steps"])
        if "clip_x0" in model_meta:
            spec["clip_x0"] = model_meta["clip_x0"]
    for role, entry in (("predictor", predictor), ("judge", judge)):
        if entry is None:
            continue
        path, meta = entry
        spec[role] = {"path": path, "kind": PREDICTOR_KINDS[meta["kind"]]}
        if meta["kind"] == "regressor":
            spec[role]["tolerance"] = meta["tolerance"]
    return spec


def validate_predictor(path: str | Path, meta: Mapping[str, Any], model: str) -> dict[str, Any]:
    """Load and probe a predictor (see ``file_task._Predictor``): it loads, runs on a probe batch,
    gives the declared output shape, finite values and a non-zero gradient with respect to its input.
    Returns what was found."""
    from .file_task import FileTaskSpec, _Predictor

    probe = dict(meta, targets=meta["targets"][:1])   # the declared output shape is checked before the targets
    spec = FileTaskSpec.from_dict(task_spec("digits" if model in BUNDLED_MODELS else "model.pt",
                                            {"input_shape": meta["input_shape"], "prediction": "epsilon", "steps": 50},
                                            (str(path), probe)) | {"shape": meta["input_shape"]})
    predictor = _Predictor(spec, spec.predictor, "predictor")
    if meta["kind"] == "classifier" and predictor.num_classes != meta["num_classes"]:
        raise TaskFileError(f"predictor returns {predictor.num_classes} logits per sample, the metadata declares "
                            f"'num_classes' {meta['num_classes']}; output shape must be (B, {meta['num_classes']})")
    for target in meta["targets"]:
        predictor.check_target(target, spec_check=True)
    return {"output": f"(B, {predictor.num_classes})" if predictor.num_classes else "(B,)",
            "has_features": predictor.has_features}


def validate_model(path: str | Path, meta: Mapping[str, Any]) -> dict[str, Any]:
    """Load and probe a diffusion model (see ``file_task._check_model``): it loads, has a valid ᾱ,
    returns the input's shape, finite values and a gradient with respect to its input."""
    from .file_task import FileTaskSpec, _check_model

    spec = FileTaskSpec.from_dict({"model": str(path), "shape": meta["input_shape"], "prediction": meta["prediction"],
                                   "predictor": {"path": "-", "kind": "logits"}, "targets": ["0"]})
    model = _check_model(spec)
    return {"timesteps": int(model.alphas_cumprod.numel())}


def main(argv: list[str] | None = None) -> int:
    """``KIND PATH METADATA_JSON`` → one JSON line ``{"ok": true, "found": …}`` or ``{"ok": false, "error": …}``."""
    kind, path, meta_json = (argv if argv is not None else sys.argv[1:])[:3]
    meta = json.loads(meta_json)
    try:
        found = validate_predictor(path, meta, meta["model"]) if kind == "predictor" else validate_model(path, meta)
        print(json.dumps({"ok": True, "found": found}))
    except TaskFileError as exc:
        text = str(exc)
        for named in (f"predictor file {path}", f"model file {path}", str(path)):
            text = text.replace(named, "the uploaded file")
        print(json.dumps({"ok": False, "error": text}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
