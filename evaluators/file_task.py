"""User tasks from files: a TorchScript diffusion model, a TorchScript predictor (the guide), an
optional independent judge and optional reference data, described by a JSON spec.

``load_file_task(spec)`` takes a ``FileTaskSpec``, a dict in the JSON format below, or the path of a
JSON spec file; relative paths inside a spec file are resolved against the spec file's folder (for a
dict or ``FileTaskSpec``: against ``base_dir``, default the current directory). Loading only reads
the files it names, and validates every model on a small probe batch, raising ``TaskFileError``
with the file, the failed check and how to fix it.

Spec format (JSON)::

    {
      "name": "my-digits",                      # optional; default: the spec file's stem
      "description": "…",                       # optional
      "model": "model.pt",                      # TorchScript file, called model(x, t) with x (B, *shape)
                                                #   float32 and t a LongTensor (B,) of training steps;
                                                #   or "bundled:digits", the bundled digits DDPM (shape
                                                #   [1, 8, 8], model space pixels / 8 − 1, clip_x0 1.0)
      "alphas_cumprod": "alphas.npy",           # optional .pt (a tensor) or .npy file of ᾱ (1-D, in (0, 1],
                                                #   non-increasing); omitted: the model's `alphas_cumprod`
                                                #   attribute (a buffer of the scripted module)
      "prediction": "epsilon",                  # what the model predicts: epsilon | x0 | v (default epsilon)
      "shape": [1, 8, 8],                       # per-sample shape
      "clip_x0": 1.0,                           # optional: clamp x0 to [−c, c] (the data range)
      "steps": 50,                              # optional DDIM steps (default 50)
      "eta": 1.0,                               # optional DDIM η (default 1.0)
      "predictor": {"path": "guide.pt", "kind": "logits"},
      "judge": {"path": "judge.pt", "kind": "logits"},   # optional, see below
      "reference": "reference.npz",             # optional .npz holding an array `x` of shape (N, *shape);
                                                #   or "bundled:digits", the 300 held-out digits
      "targets": ["0", "3", "7"],               # the targets offered
      "validity_range": [0.0, 1.0],             # optional: typical worst and best validity
      "strength_scale": 1.0                     # optional: scales the searched ρ̄, μ̄ range
    }

Predictor (and judge) kinds, with ``log f`` the guide's log-probability of the target:

* ``"logits"``: output (B, C); a target is a class index ``"0"`` … ``"C-1"``;
  ``log f = log_softmax(out)[:, target]``; validity = accuracy of the judge's argmax
  (``judge_accuracy``).
* ``"scalar"``: output (B,) or (B, 1); a target is a number; needs ``"tolerance"`` (in the predictor
  or judge object, or once at the top level); ``log f = −(out − target)² / (2·tolerance²)``;
  validity = fraction of samples the judge puts within the tolerance (``judge_within_tolerance``).
* ``"log_likelihood"``: output (B,) or (B, 1) that already is ``log f`` (the target is then only a
  label and is ignored), or a dict of such outputs keyed by target name (the target picks one);
  validity = the judge's mean log-likelihood (``judge_mean_log_likelihood``).

Every predictor must be differentiable with respect to its input (the sampler follows its gradient).
Without a ``judge`` the predictor judges its own samples, and validity is then optimistic: guidance
climbs the predictor's gradient and can fool it (``FileTask.judge_is_guide`` is True). Fidelity
features are ``judge.features(x)`` when the scripted judge exports a ``features`` method
(``@torch.jit.export``, or ``torch.jit.trace_module`` with a ``features`` entry), else its outputs
(the logits). Without a ``reference`` there is nothing to compare with: ``reference_features``
returns an empty (0, d) tensor and the fidelity metrics are NaN.
"""

from __future__ import annotations

import json
import math
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from guidetune.guidance import EpsilonFromV, EpsilonFromX0, ModelContractError
from guidetune.guidance.models import checked_alphas_cumprod

from . import metrics
from .errors import TaskFileError, UnknownTargetError
from .tasks import LogProb, Task, TaskScore

PREDICTIONS = ("epsilon", "x0", "v")
PREDICTOR_KINDS = ("logits", "scalar", "log_likelihood")
PROBE_BATCH = 4
REFERENCE_CHUNK = 256
BUNDLED = {"bundled:digits": (1, 8, 8)}   # bundled diffusion models a spec can name instead of a file
_SPEC_KEYS = {
    "name", "description", "model", "alphas_cumprod", "prediction", "shape", "clip_x0", "steps", "eta",
    "predictor", "judge", "reference", "targets", "tolerance", "validity_range", "strength_scale",
}
_PREDICTOR_KEYS = {"path", "kind", "tolerance"}
_EXPORT_HINT = "save it with torch.jit.script(module).save(path) or torch.jit.trace(module, example).save(path)"


# ---------------------------------------------------------------------------------------------
# the spec


@dataclass(frozen=True)
class PredictorSpec:
    """A TorchScript predictor file and how to read its output."""

    path: str
    kind: str                       # logits | scalar | log_likelihood
    tolerance: float | None = None  # scalar kind only

    @classmethod
    def from_dict(cls, data: Any, role: str, default_tolerance: float | None = None) -> "PredictorSpec":
        if isinstance(data, str):
            raise TaskFileError(
                f"spec field {role!r} must be an object such as {{\"path\": \"{data}\", \"kind\": \"logits\"}}, "
                "not a bare path: the kind (logits, scalar or log_likelihood) is required"
            )
        if not isinstance(data, Mapping):
            raise TaskFileError(f"spec field {role!r} must be an object with 'path' and 'kind', got {type(data).__name__}")
        unknown = set(data) - _PREDICTOR_KEYS
        if unknown:
            raise TaskFileError(f"spec field {role!r} has unknown keys {sorted(unknown)}; allowed: {sorted(_PREDICTOR_KEYS)}")
        for key in ("path", "kind"):
            if key not in data:
                raise TaskFileError(f"spec field {role!r} needs {key!r} (e.g. {{\"path\": \"guide.pt\", \"kind\": \"logits\"}})")
        tolerance = data.get("tolerance", default_tolerance)
        return cls(path=str(data["path"]), kind=str(data["kind"]),
                   tolerance=None if tolerance is None else _number(tolerance, f"{role}.tolerance"))


@dataclass(frozen=True)
class FileTaskSpec:
    """What ``load_file_task`` loads; see the module docstring for the JSON format."""

    model: str
    shape: tuple[int, ...]
    predictor: PredictorSpec
    targets: tuple[str, ...]
    name: str = "file-task"
    description: str = ""
    alphas_cumprod: str | None = None   # None: the scripted model's `alphas_cumprod` attribute
    prediction: str = "epsilon"
    clip_x0: float | None = None
    steps: int = 50
    eta: float = 1.0
    judge: PredictorSpec | None = None
    reference: str | None = None
    validity_range: tuple[float, float] | None = None  # None: the predictor kind's default
    strength_scale: float = 1.0
    base_dir: str | None = field(default=None, compare=False)  # relative paths resolve against it

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base_dir: str | Path | None = None,
                  default_name: str = "file-task") -> "FileTaskSpec":
        if not isinstance(data, Mapping):
            raise TaskFileError(f"a task spec must be a JSON object, got {type(data).__name__}")
        unknown = set(data) - _SPEC_KEYS
        if unknown:
            raise TaskFileError(f"task spec has unknown keys {sorted(unknown)}; allowed: {sorted(_SPEC_KEYS)}")
        missing = [k for k in ("model", "shape", "predictor", "targets") if k not in data]
        if missing:
            raise TaskFileError(f"task spec is missing {missing}; it needs model, shape, predictor and targets")
        shape = data["shape"]
        if (not isinstance(shape, Sequence) or isinstance(shape, str) or not shape
                or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape)):
            raise TaskFileError(f"spec field 'shape' must be a non-empty list of positive integers (per sample, e.g. [1, 8, 8]); got {shape!r}")
        targets = data["targets"]
        if isinstance(targets, (str, bytes)) or not isinstance(targets, Sequence) or not targets:
            raise TaskFileError(f"spec field 'targets' must be a non-empty list, got {targets!r}")
        tolerance = data.get("tolerance")
        validity_range = data.get("validity_range")
        if validity_range is not None:
            if not isinstance(validity_range, Sequence) or len(validity_range) != 2:
                raise TaskFileError(f"spec field 'validity_range' must be [worst, best], got {validity_range!r}")
            validity_range = (_number(validity_range[0], "validity_range"), _number(validity_range[1], "validity_range"))
        steps = data.get("steps", 50)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise TaskFileError(f"spec field 'steps' must be a positive integer, got {steps!r}")
        clip_x0 = data.get("clip_x0")
        if clip_x0 is not None and not _number(clip_x0, "clip_x0") > 0:
            raise TaskFileError(f"spec field 'clip_x0' must be a positive number (the data range), got {clip_x0!r}")
        strength_scale = _number(data.get("strength_scale", 1.0), "strength_scale")
        if not strength_scale > 0:
            raise TaskFileError(f"spec field 'strength_scale' must be positive, got {strength_scale!r}")
        return cls(
            model=str(data["model"]),
            shape=tuple(int(s) for s in shape),
            predictor=PredictorSpec.from_dict(data["predictor"], "predictor", tolerance),
            targets=tuple(str(t) for t in targets),
            name=str(data.get("name", default_name)),
            description=str(data.get("description", "")),
            alphas_cumprod=None if data.get("alphas_cumprod") is None else str(data["alphas_cumprod"]),
            prediction=str(data.get("prediction", "epsilon")),
            clip_x0=None if clip_x0 is None else float(clip_x0),
            steps=steps,
            eta=_number(data.get("eta", 1.0), "eta"),
            judge=None if data.get("judge") is None else PredictorSpec.from_dict(data["judge"], "judge", tolerance),
            reference=None if data.get("reference") is None else str(data["reference"]),
            validity_range=validity_range,
            strength_scale=strength_scale,
            base_dir=None if base_dir is None else str(base_dir),
        )

    @classmethod
    def from_json(cls, path: str | Path) -> "FileTaskSpec":
        """Read a JSON spec file; its relative paths resolve against its folder."""
        path = Path(path)
        if not path.is_file():
            raise TaskFileError(f"task spec file {path} not found; check the path")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TaskFileError(f"task spec file {path} is not valid JSON ({exc}); see guidetune.evaluators.file_task for the format") from None
        try:
            return cls.from_dict(data, base_dir=path.resolve().parent, default_name=path.stem)
        except TaskFileError as exc:
            raise TaskFileError(f"{path}: {exc}") from None

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        if not p.is_absolute() and self.base_dir is not None:
            p = Path(self.base_dir) / p
        return p


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise TaskFileError(f"spec field {name!r} must be a finite number, got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------------------
# loading and checking files


def _existing(spec: FileTaskSpec, path: str, role: str) -> Path:
    resolved = spec.resolve(path)
    if not resolved.is_file():
        where = f" (relative paths resolve against {spec.base_dir})" if spec.base_dir and not Path(path).is_absolute() else ""
        raise TaskFileError(f"{role} file {resolved} not found{where}; check the path in the task spec")
    return resolved


def _load_script(spec: FileTaskSpec, path: str, role: str) -> torch.jit.ScriptModule:
    resolved = _existing(spec, path, role)
    try:
        with warnings.catch_warnings():  # TorchScript is this format's choice; don't nag the user about it
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated", category=DeprecationWarning)
            module = torch.jit.load(str(resolved), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, ValueError, … for bad files
        raise TaskFileError(
            f"{role} file {resolved} is not a TorchScript file ({_why_not_torchscript(resolved)}; torch.jit.load said: "
            f"{_first_line(exc)}); {_EXPORT_HINT}, and re-upload it if the upload was cut short"
        ) from None
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def _why_not_torchscript(path: Path) -> str:
    if path.stat().st_size == 0:
        return "the file is empty"
    if not zipfile.is_zipfile(path):
        return "it is not a zip archive: corrupt, truncated, or not a torch file at all"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return "its zip archive is damaged (truncated upload?)"
    if not any("/code/" in n or n.startswith("code/") for n in names):
        return "it looks like a torch.save checkpoint or state_dict, not a scripted module"
    return "its archive is damaged or was written by an incompatible torch"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _load_alphas(spec: FileTaskSpec, model: torch.jit.ScriptModule, model_path: Path) -> torch.Tensor:
    if spec.alphas_cumprod is None:
        source = f"the attribute `alphas_cumprod` of model file {model_path}"
        try:
            abar = getattr(model, "alphas_cumprod")
        except (AttributeError, RuntimeError):
            raise TaskFileError(
                f"model file {model_path} has no attribute `alphas_cumprod`; register ᾱ as a buffer of the scripted "
                "module (self.register_buffer('alphas_cumprod', …)) or give 'alphas_cumprod' in the spec as a .pt or .npy file"
            ) from None
    else:
        path = _existing(spec, spec.alphas_cumprod, "alphas_cumprod")
        source = f"alphas_cumprod file {path}"
        try:
            if path.suffix == ".npy":
                abar = torch.from_numpy(np.load(path, allow_pickle=False))
            elif path.suffix == ".pt":
                abar = torch.load(path, map_location="cpu", weights_only=True)
                if isinstance(abar, Mapping) and "alphas_cumprod" in abar:
                    abar = abar["alphas_cumprod"]
            else:
                raise TaskFileError(f"{source} must end in .pt (torch.save of a tensor) or .npy (numpy.save)")
        except TaskFileError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise TaskFileError(
                f"{source} could not be read ({_first_line(exc)}); save a 1-D tensor with torch.save or a 1-D array with numpy.save"
            ) from None
    if not isinstance(abar, torch.Tensor):
        raise TaskFileError(f"{source} must be a 1-D tensor of ᾱ, got {type(abar).__name__}")
    if not abar.is_floating_point():
        raise TaskFileError(f"{source} must be floating point (ᾱ in (0, 1]), got dtype {abar.dtype}")

    holder = SimpleNamespace(alphas_cumprod=abar.detach() if abar.dtype == torch.float64 else abar.detach().float())
    try:
        return checked_alphas_cumprod(holder).clone()
    except ModelContractError as exc:
        raise TaskFileError(
            f"{source} fails the check: {exc}; it must be 1-D, decreasing from ᾱ_0 ≈ 1 at the clean end, within (0, 1]"
        ) from None


def _probe_input(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn((PROBE_BATCH, *shape), generator=torch.Generator().manual_seed(0))


def _check_tensor(out: Any, role: str, path: Path, what: str) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise TaskFileError(f"{role} file {path}: {what} must return a tensor, got {type(out).__name__}")
    if not out.is_floating_point():
        raise TaskFileError(f"{role} file {path}: {what} returned dtype {out.dtype}, not a floating dtype; return float32 values (no argmax/rounding)")
    if not torch.isfinite(out.detach()).all():
        raise TaskFileError(f"{role} file {path}: {what} returned non-finite values (NaN/inf) on a probe batch of randn inputs")
    return out


class _ScriptedEpsilon(nn.Module):
    """A scripted ε-model with its ᾱ as the contract's buffer."""

    def __init__(self, module: nn.Module, alphas_cumprod: torch.Tensor):
        super().__init__()
        self.net = module
        self.register_buffer("alphas_cumprod", alphas_cumprod)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(x, t)


def _bundled_model(spec: FileTaskSpec, device: torch.device | str = "cpu") -> nn.Module:
    """The bundled model a spec names (``bundled:digits``); its shape must be the model's."""
    if spec.model not in BUNDLED:
        raise TaskFileError(f"unknown bundled model {spec.model!r}; bundled models: {sorted(BUNDLED)}")
    if spec.shape != BUNDLED[spec.model]:
        raise TaskFileError(f"{spec.model} draws samples of shape {list(BUNDLED[spec.model])}, but the spec says "
                            f"'shape' {list(spec.shape)}; set 'shape' to {list(BUNDLED[spec.model])}")
    from .bundled import load_bundled_models

    return load_bundled_models(device).diffusion


def _check_model(spec: FileTaskSpec) -> nn.Module:
    if spec.model.startswith("bundled:"):
        return _bundled_model(spec)
    if spec.prediction not in PREDICTIONS:
        raise TaskFileError(f"unknown prediction kind {spec.prediction!r} in the task spec; use one of {list(PREDICTIONS)} "
                            "(what the model outputs: the noise ε, the clean sample x0, or v)")
    path = spec.resolve(spec.model)
    module = _load_script(spec, spec.model, "model")
    abar = _load_alphas(spec, module, path)
    n_steps = abar.numel()
    x = _probe_input(spec.shape)
    t = torch.linspace(0, n_steps - 1, PROBE_BATCH).round().long()
    call = f"model(x, t) with x {tuple(x.shape)} float32 and t LongTensor {tuple(t.shape)} in [0, {n_steps})"
    try:
        with torch.no_grad():
            out = module(x, t)
    except Exception as exc:  # noqa: BLE001
        raise TaskFileError(f"model file {path}: calling {call} failed ({_first_line(exc)}); the model must take "
                            "(x, t) with t the training-step indices") from None
    if isinstance(out, torch.Tensor) and out.shape != x.shape:
        raise TaskFileError(f"model file {path}: output shape {tuple(out.shape)} ≠ input shape {tuple(x.shape)}; "
                            f"model(x, t) must return a prediction with the shape of x (check 'shape' {list(spec.shape)} in the spec)")
    _check_tensor(out, "model", path, call)
    if spec.prediction == "x0":
        model: nn.Module = EpsilonFromX0(module, abar)
    elif spec.prediction == "v":
        model = EpsilonFromV(module, abar)
    else:
        model = _ScriptedEpsilon(module, abar)
    xg = x.clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            eps = model(xg, t)
            (grad,) = torch.autograd.grad(eps.sum(), xg, allow_unused=True)
    except Exception as exc:  # noqa: BLE001
        raise TaskFileError(f"model file {path} is not differentiable w.r.t. x ({_first_line(exc)}); variance guidance "
                            "back-propagates through it: do not trace under torch.no_grad or detach the input") from None
    if not torch.isfinite(eps.detach()).all():
        raise TaskFileError(f"model file {path}: the ε derived from its {spec.prediction} prediction is non-finite; "
                            "for x0/v models ᾱ_0 must be < 1")
    if grad is None or not torch.isfinite(grad).all():
        raise TaskFileError(f"model file {path} is not differentiable w.r.t. x (autograd gave "
                            f"{'no' if grad is None else 'a non-finite'} gradient); variance guidance back-propagates through it")
    return model


class _Predictor:
    """A checked TorchScript predictor of one kind."""

    def __init__(self, spec: FileTaskSpec, pspec: PredictorSpec, role: str):
        if pspec.kind not in PREDICTOR_KINDS:
            raise TaskFileError(f"unknown {role} kind {pspec.kind!r} in the task spec; use one of {list(PREDICTOR_KINDS)}")
        self.kind, self.role = pspec.kind, role
        self.path = spec.resolve(pspec.path)
        self.tolerance = pspec.tolerance
        if self.kind == "scalar" and (self.tolerance is None or not self.tolerance > 0):
            raise TaskFileError(f"{role} of kind 'scalar' needs a positive 'tolerance' (in the {role} object or at the "
                                f"top level of the spec), got {self.tolerance!r}")
        self.module = _load_script(spec, pspec.path, role)
        self.has_features = _has_method(self.module, "features")
        self.keys: list[str] | None = None   # log_likelihood dict outputs
        self.num_classes: int | None = None  # logits
        self._probe(spec)

    # -- checks ------------------------------------------------------------------------------
    def _probe(self, spec: FileTaskSpec) -> None:
        x = _probe_input(spec.shape).requires_grad_(True)
        where = f"{self.role} file {self.path}"
        try:
            with torch.enable_grad():
                out = self.module(x)
        except Exception as exc:  # noqa: BLE001
            raise TaskFileError(f"{where}: calling it on x {tuple(x.shape)} float32 failed ({_first_line(exc)}); "
                                f"a predictor takes a batch of samples of shape {list(spec.shape)} (model space)") from None
        if self.kind == "log_likelihood" and isinstance(out, Mapping):
            if not out:
                raise TaskFileError(f"{where}: returned an empty dict; return a (B,) log-likelihood or a dict of them keyed by target")
            self.keys = sorted(out)
            values = {k: self._vector(v, where, f"output[{k!r}]") for k, v in out.items()}
        else:
            values = {None: self._shaped(out, where)}
        for target in spec.targets:
            self.check_target(target, spec_check=True)
        # differentiable w.r.t. the input: a finite, non-zero gradient on the probe
        lp = self._log_f_from(values, spec.targets[0])
        try:
            (grad,) = torch.autograd.grad(lp.sum(), x, allow_unused=True)
        except RuntimeError as exc:
            raise TaskFileError(f"{where} is not differentiable w.r.t. its input ({_first_line(exc)}); the sampler follows "
                                "its gradient: do not trace it under torch.no_grad, detach, round or call .numpy()") from None
        if grad is None or not torch.isfinite(grad).all() or not (grad != 0).any():
            got = "no gradient" if grad is None else ("a non-finite gradient" if not torch.isfinite(grad).all() else "an all-zero gradient")
            raise TaskFileError(f"{where} is not differentiable w.r.t. its input (autograd gave {got} on a probe batch); the "
                                "sampler follows its gradient: use smooth operations, no argmax/rounding/detach")
        if self.has_features:
            try:
                with torch.no_grad():
                    feats = self.module.features(x.detach())
            except Exception as exc:  # noqa: BLE001
                raise TaskFileError(f"{where}: its features(x) method failed on x {tuple(x.shape)} ({_first_line(exc)})") from None
            feats = _check_tensor(feats, self.role, self.path, "features(x)")
            if feats.dim() < 2 or feats.shape[0] != PROBE_BATCH:
                raise TaskFileError(f"{where}: features(x) must return (B, d) for B = {PROBE_BATCH} inputs, got {tuple(feats.shape)}")

    def _shaped(self, out: Any, where: str) -> torch.Tensor:
        if self.kind == "logits":
            out = _check_tensor(out, self.role, self.path, "its output")
            if out.dim() != 2 or out.shape[0] != PROBE_BATCH or out.shape[1] < 2:
                raise TaskFileError(f"{where}: a 'logits' predictor must return (B, C) with C ≥ 2 classes for B = {PROBE_BATCH} "
                                    f"inputs, got output shape {tuple(out.shape)}")
            self.num_classes = int(out.shape[1])
            return out
        return self._vector(out, where, "its output")

    def _vector(self, out: Any, where: str, what: str) -> torch.Tensor:
        out = _check_tensor(out, self.role, self.path, what)
        if not (out.shape == (PROBE_BATCH,) or out.shape == (PROBE_BATCH, 1)):
            raise TaskFileError(f"{where}: a {self.kind!r} predictor must return (B,) or (B, 1) for B = {PROBE_BATCH} inputs, "
                                f"got {what} of shape {tuple(out.shape)}")
        return out.reshape(-1)

    def check_target(self, target: str, spec_check: bool = False) -> str:
        prefix = f"target {target!r} listed in the spec is invalid for {self.role} file {self.path}: " if spec_check else ""
        if self.kind == "logits":
            try:
                label = int(target)
            except ValueError:
                label = -1
            if not 0 <= label < (self.num_classes or 0):
                raise (TaskFileError if spec_check else UnknownTargetError)(
                    f"{prefix}a 'logits' target is a class index 0–{(self.num_classes or 1) - 1}, got {target!r}")
        elif self.kind == "scalar":
            try:
                ok = math.isfinite(float(target))
            except ValueError:
                ok = False
            if not ok:
                raise (TaskFileError if spec_check else UnknownTargetError)(f"{prefix}a 'scalar' target is a finite number, got {target!r}")
        elif self.keys is not None and target not in self.keys:
            raise (TaskFileError if spec_check else UnknownTargetError)(
                f"{prefix}this 'log_likelihood' predictor returns a dict with keys {self.keys}, so a target must be one of them; got {target!r}")
        return target

    # -- use ---------------------------------------------------------------------------------
    def outputs(self, x: torch.Tensor) -> dict[str | None, torch.Tensor]:
        out = self.module(x)
        if isinstance(out, Mapping):
            return {k: v.reshape(-1) for k, v in out.items()}
        return {None: out if self.kind == "logits" else out.reshape(-1)}

    def _log_f_from(self, values: dict[str | None, torch.Tensor], target: str) -> torch.Tensor:
        if self.kind == "logits":
            return torch.log_softmax(values[None], dim=1)[:, int(target)]
        if self.kind == "scalar":
            return -((values[None] - float(target)) ** 2) / (2 * self.tolerance**2)
        return values[target] if self.keys is not None else values[None]

    def log_f(self, x: torch.Tensor, target: str) -> torch.Tensor:
        return self._log_f_from(self.outputs(x), target)

    def score(self, x: torch.Tensor, target: str) -> tuple[float, dict[str, float]]:
        """Validity of the samples as this predictor sees them, and extras."""
        with torch.no_grad():
            values = self.outputs(x)
        if self.kind == "logits":
            return metrics.accuracy(values[None], int(target)), {}
        if self.kind == "scalar":
            pred = values[None]
            err = (pred - float(target)).abs()
            return float((err <= self.tolerance).float().mean()), {"mae": float(err.mean())}
        lp = values[target] if self.keys is not None else values[None]
        return float(lp.mean()), {}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if self.has_features:
                return self.module.features(x).reshape(x.shape[0], -1)
            values = self.outputs(x)
            if self.kind == "logits":
                return values[None]
            return torch.stack([values[k] for k in sorted(values, key=str)], dim=1)


def _has_method(module: torch.jit.ScriptModule, name: str) -> bool:
    try:
        return callable(getattr(module, name))
    except (AttributeError, RuntimeError):
        return False


def _load_reference(spec: FileTaskSpec) -> torch.Tensor | None:
    if spec.reference is None:
        return None
    if spec.reference == "bundled:digits":
        if spec.shape != BUNDLED["bundled:digits"]:
            raise TaskFileError(f"reference bundled:digits holds (1, 8, 8) digits, but the spec says 'shape' {list(spec.shape)}")
        from .digits_data import load_digit_splits

        return load_digit_splits().heldout.x.float()
    path = _existing(spec, spec.reference, "reference")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise TaskFileError(f"reference file {path} is a single .npy array, not an .npz; save it with numpy.savez(path, x=array)")
            if "x" not in data.files:
                raise TaskFileError(f"reference file {path} has no array 'x' (it holds {data.files}); save it with numpy.savez(path, x=array)")
            x = data["x"]
    except TaskFileError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise TaskFileError(f"reference file {path} is not a readable .npz ({_first_line(exc)}); save it with numpy.savez(path, x=array)") from None
    if x.ndim != len(spec.shape) + 1 or tuple(x.shape[1:]) != spec.shape or x.shape[0] < 2:
        raise TaskFileError(f"reference file {path}: array 'x' must have shape (N, {', '.join(map(str, spec.shape))}) with N ≥ 2, "
                            f"got {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TaskFileError(f"reference file {path}: array 'x' must be numeric, got dtype {x.dtype}")
    x = torch.from_numpy(np.ascontiguousarray(x)).float()
    if not torch.isfinite(x).all():
        raise TaskFileError(f"reference file {path}: array 'x' contains NaN/inf")
    return x


# ---------------------------------------------------------------------------------------------
# the task


_VALIDITY = {
    "logits": ("judge_accuracy", (0.0, 1.0)),
    "scalar": ("judge_within_tolerance", (0.0, 1.0)),
    "log_likelihood": ("judge_mean_log_likelihood", (-10.0, 0.0)),
}


class FileTask(Task):
    """A task built from user files (see the module docstring); build it with ``load_file_task``."""

    def __init__(self, spec: FileTaskSpec):
        self.spec = spec
        self.name = spec.name
        self.shape = spec.shape
        self.steps = spec.steps
        self.eta = spec.eta
        # the bundled digits model lives in [−1, 1]: clamp x0 there unless the spec says otherwise
        self.clip_x0 = 1.0 if spec.clip_x0 is None and spec.model in BUNDLED else spec.clip_x0
        self.strength_scale = spec.strength_scale
        self._model = _check_model(spec)
        self.predictor = _Predictor(spec, spec.predictor, "predictor")
        self.judge = self.predictor if spec.judge is None else _Predictor(spec, spec.judge, "judge")
        self.judge_is_guide = spec.judge is None
        if self.judge is not self.predictor:
            for target in spec.targets:
                self.judge.check_target(target, spec_check=True)
        self.validity_metric, default_range = _VALIDITY[self.judge.kind]
        self.validity_range = spec.validity_range or default_range
        self._reference = _load_reference(spec)
        self._reference_features: torch.Tensor | None = None
        self.description = spec.description or (
            f"user task from files: {spec.prediction} model {Path(spec.model).name}, {self.predictor.kind} predictor "
            f"{Path(spec.predictor.path).name}"
            + (" (no independent judge: validity is optimistic)" if self.judge_is_guide else f", judge {Path(spec.judge.path).name}")
        )

    @property
    def has_reference(self) -> bool:
        return self._reference is not None

    def _move(self, device: torch.device) -> None:
        """The scripted model, predictor and judge go to ``device`` (they were checked on the CPU)."""
        # a bundled model is shared per device (frozen, cached): take that device's copy, never move it
        self._model = _bundled_model(self.spec, device) if self.spec.model in BUNDLED else self._model.to(device)
        self.predictor.module = self.predictor.module.to(device)
        if self.judge is not self.predictor:
            self.judge.module = self.judge.module.to(device)
        if self._reference is not None:
            self._reference = self._reference.to(device)
        self._reference_features = None

    def targets(self) -> list[str]:
        return list(self.spec.targets)

    def check_target(self, target: str) -> str:
        if target in self.spec.targets:
            return target
        if self.predictor.kind == "log_likelihood" and self.predictor.keys is None:
            raise UnknownTargetError(f"task {self.name!r} has no target {target!r}; known targets: {self.targets()}")
        self.predictor.check_target(target)
        if self.judge is not self.predictor:
            self.judge.check_target(target)
        return target

    @property
    def model(self):
        return self._model

    def guide_log_prob(self, target: str, seeds: Sequence[int]) -> LogProb:
        self.check_target(target)
        predictor = self.predictor

        def log_prob(x0: torch.Tensor) -> torch.Tensor:
            return predictor.log_f(x0, target)

        return log_prob

    def score(self, samples: torch.Tensor, target: str, seeds: Sequence[int]) -> TaskScore:
        validity, extras = self.judge.score(samples, target)
        guide_validity, guide_extras = (validity, extras) if self.judge_is_guide else self.predictor.score(samples, target)
        extras = {f"judge_{k}": v for k, v in extras.items()} | {f"guide_{k}": v for k, v in guide_extras.items()}
        return TaskScore(validity=validity, guide_validity=guide_validity, extras=extras or None)

    def features(self, samples: torch.Tensor) -> torch.Tensor:
        return self.judge.features(samples)

    def reference_features(self, target: str) -> torch.Tensor:
        """Judge features of the reference data; an empty (0, d) tensor when the spec has no reference."""
        if self._reference_features is None:
            if self._reference is None:
                d = self.features(_probe_input(self.shape)[:1]).shape[1]
                self._reference_features = torch.empty(0, d)
            else:
                self._reference_features = torch.cat(
                    [self.features(chunk) for chunk in self._reference.split(REFERENCE_CHUNK)]
                )
        return self._reference_features

    def fidelity_yardstick(self, target: str, n_samples: int, seed: int) -> tuple[float, int]:
        """As ``Task.fidelity_yardstick``; (NaN, 0) without reference data (nothing to compare with)."""
        if self._reference is None:
            return math.nan, 0
        return super().fidelity_yardstick(target, n_samples, seed)


def load_file_task(spec: FileTaskSpec | Mapping[str, Any] | str | Path) -> FileTask:
    """Load and validate a user task (a ``FileTaskSpec``, a spec dict, or the path of a JSON spec)."""
    if isinstance(spec, (str, Path)):
        spec = FileTaskSpec.from_json(spec)
    elif isinstance(spec, Mapping):
        spec = FileTaskSpec.from_dict(spec)
    elif not isinstance(spec, FileTaskSpec):
        raise TaskFileError(f"load_file_task takes a FileTaskSpec, a dict or a JSON path, got {type(spec).__name__}")
    return FileTask(spec)
