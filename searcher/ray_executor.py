"""The Ray executor: a study's trial groups on a Ray cluster, run by actor workers that load the task
once and serve many groups.

* Each actor asks Ray for the study's ``num_cpus`` and ``num_gpus`` (fractional allowed: 0.25 packs
  four actors on a GPU). Its device is the GPU Ray assigned to it (``ray.get_gpu_ids()``, mapped
  through ``CUDA_VISIBLE_DEVICES``), or the CPU where CUDA is not available; never ``cuda:0`` by
  assumption. A study asking for more GPUs than the cluster has is refused at once (Ray would wait
  forever).
* Up to ``capacity`` groups are in flight (the coordinator reserves their samples against the
  budget). Actors of the study are created as needed, reused while alive, and killed when the study
  ends: never more than ``capacity`` at a time.
* A worker process or node lost mid-group is reported as a *retryable* outcome: the coordinator
  re-queues the group's trials (attempt + 1, recorded) and runs them on another worker, up to its
  attempt limit. Ray's own task retries are not used (after a SIGKILL only unbounded actor restarts
  brought an actor back, measured with Ray 2.60).

Embedded default: ``connect_ray(None)`` starts a local Ray bound to the loopback interface
(``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) with a 500 MB object store; an address (or
``GUIDETUNE_RAY_ADDRESS``) joins an existing cluster, whose token (Ray 2.60 turns token
authentication on) the joining process reads from ``RAY_AUTH_TOKEN`` or ``~/.ray/auth_token``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from guidetune.evaluators.records import TrialResult
from guidetune.guidance.params import TFGParams

from .errors import ClusterTooSmallError, SearchError
from .executors import GroupOutcome, TrialGroup

OBJECT_STORE_BYTES = 500 * 1024 * 1024
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}   # a local single-node Ray stays on 127.0.0.1


def connect_ray(address: str | None = None, *, num_cpus: int | None = None, num_gpus: float | None = None) -> str:
    """Join ``address`` (or ``GUIDETUNE_RAY_ADDRESS``), else start a local Ray; returns what was used."""
    import ray

    address = address or os.environ.get("GUIDETUNE_RAY_ADDRESS") or None
    if ray.is_initialized():
        return "connected"
    if address:
        try:
            ray.init(address=address, log_to_driver=False, logging_level="warning")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise SearchError(f"--ray-address {address}: could not join the Ray cluster ({exc}); check the address "
                              "(host:6379 of `ray start --head`) and that this machine has the cluster's auth token") from None
        return address
    for key, value in LOOPBACK_ENV.items():
        os.environ.setdefault(key, value)
    try:
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False,
                 log_to_driver=False, logging_level="warning")
    except (ConnectionError, RuntimeError, ValueError, OSError) as exc:
        raise SearchError(f"could not start a local Ray ({_first_line(exc)}); run with --executor local to search "
                          "without Ray, or give --ray-address of a running cluster") from None
    return "local"


def assigned_device(gpu_ids: Sequence[Any], *, cuda_available: bool | None = None,
                    visible: str | None = None) -> str:
    """The torch device of the GPU Ray assigned (``gpu_ids``): its index among the visible devices
    (Ray sets ``CUDA_VISIBLE_DEVICES`` to the assigned ones), or ``cpu`` without a GPU or without CUDA."""
    if not gpu_ids:
        return "cpu"
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    if not cuda_available:
        return "cpu"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    wanted = str(gpu_ids[0])
    if visible:
        listed = [v.strip() for v in visible.split(",") if v.strip()]
        if wanted in listed:
            return f"cuda:{listed.index(wanted)}"
    return f"cuda:{int(wanted)}"


class TrialWorker:
    """A Ray actor's state: one task on its device, serving groups of that task."""

    def __init__(self, task: str, target: str, task_sha256: str | None) -> None:
        import ray

        from guidetune.storage.records import StudySpec

        from .service import TaskEvaluator, load_task

        self.gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        self.device = assigned_device(self.gpu_ids)
        spec = StudySpec(task=task, target=target, searcher="-", space={}, task_sha256=task_sha256)
        self.evaluator = TaskEvaluator(load_task(spec, self.device), target)
        context = ray.get_runtime_context()
        self.name = f"ray:{context.get_node_id()[:8]}:{context.get_actor_id()[:8]}:{self.device}"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "device": self.device, "gpu_ids": self.gpu_ids, "pid": os.getpid()}

    def evaluate(self, configs: list[TFGParams], n_samples: int, seed: int) -> list[TrialResult]:
        return self.evaluator(configs, n_samples, seed)


class RayExecutor:
    """Trial groups on Ray actors; ``capacity`` groups in flight."""

    def __init__(self, task: str, target: str, task_sha256: str | None = None, *,
                 capacity: int = 1,            # groups in flight at once (= actors at most)
                 num_cpus: float = 1.0,        # CPUs each actor asks Ray for
                 num_gpus: float = 0.0,        # GPUs each actor asks Ray for (fractional packs a GPU)
                 worker_class: type = TrialWorker) -> None:   # the actor's class (tests inject faults here)
        import ray

        if capacity < 1:
            raise SearchError(f"--max-concurrent must be at least 1, got {capacity}")
        if num_cpus < 0 or num_gpus < 0:
            raise SearchError(f"--num-cpus and --num-gpus must be >= 0, got {num_cpus} and {num_gpus}")
        if not ray.is_initialized():
            raise SearchError("the Ray executor needs a Ray connection: call connect_ray() first")
        total = ray.cluster_resources()
        if num_gpus > 0 and total.get("GPU", 0.0) < num_gpus:
            raise ClusterTooSmallError(f"the study asks for {num_gpus:g} GPU per trial group but the Ray cluster has "
                              f"{total.get('GPU', 0.0):g} GPUs; use --num-gpus 0, or add GPU workers "
                              "(`ray start --address ... --num-gpus N`)")
        if total.get("CPU", 0.0) < num_cpus:
            raise ClusterTooSmallError(f"the study asks for {num_cpus:g} CPUs per trial group but the Ray cluster has "
                                       f"{total.get('CPU', 0.0):g}; lower --num-cpus, or add workers")
        self.capacity = capacity
        self._args = (task, target, task_sha256)
        self._actor_cls = ray.remote(worker_class).options(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=0,
                                                           max_task_retries=0)
        self._idle: list[Any] = []
        self._names: dict[Any, str] = {}
        self._busy: dict[Any, tuple[Any, TrialGroup]] = {}    # object ref -> (actor, group)
        self._next: Any = None

    # ---- the Executor protocol ------------------------------------------------------------------
    def worker_for(self, group: TrialGroup) -> str:
        """Choose (or start) the actor that will run ``group``; its name is recorded on the trials."""
        actor = self._idle.pop() if self._idle else self._actor_cls.remote(*self._args)
        self._names.setdefault(actor, f"ray-actor:{actor._actor_id.hex()[:12]}")
        self._next = actor
        return self._names[actor]

    def submit(self, group: TrialGroup) -> None:
        actor = self._next if self._next is not None else self._actor_cls.remote(*self._args)
        self._names.setdefault(actor, f"ray-actor:{actor._actor_id.hex()[:12]}")
        self._next = None
        ref = actor.evaluate.remote(list(group.configs), group.n_samples, group.seed)
        self._busy[ref] = (actor, group)

    def in_flight(self) -> int:
        return len(self._busy)

    def wait(self) -> list[GroupOutcome]:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        lost_errors = _lost_worker_errors()
        ready, _ = ray.wait(list(self._busy), num_returns=1)
        more, _ = ray.wait([r for r in self._busy if r not in ready], num_returns=len(self._busy) - len(ready),
                           timeout=0) if len(self._busy) > len(ready) else ([], [])
        outcomes = []
        for ref in ready + more:
            actor, group = self._busy.pop(ref)
            name = self._names[actor]
            try:
                results = ray.get(ref)
            except (RayActorError, *lost_errors) as exc:   # the process or its node is gone: run it elsewhere
                self._retire(actor)
                outcomes.append(GroupOutcome(group, None, f"worker lost ({type(exc).__name__}: {_first_line(exc)})",
                                             name, retry=True))
                continue
            except RayTaskError as exc:      # the evaluation itself raised: the trials fail, the worker lives on
                self._idle.append(actor)
                cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                outcomes.append(GroupOutcome(group, None, f"{type(cause).__name__}: {_first_line(cause)}", name))
                continue
            self._idle.append(actor)
            outcomes.append(GroupOutcome(group, tuple(results), None, name))
        return outcomes

    def close(self) -> None:
        """Retire every actor of the study."""
        import ray

        for actor in set(self._idle) | {a for a, _ in self._busy.values()}:
            ray.kill(actor, no_restart=True)
        self._idle, self._busy = [], {}

    def _retire(self, actor: Any) -> None:
        import ray

        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 - the actor is already gone with its node
            pass


def _lost_worker_errors() -> tuple[type[BaseException], ...]:
    from ray import exceptions as rex

    names = ("ActorDiedError", "ActorUnavailableError", "WorkerCrashedError", "NodeDiedError", "ObjectLostError",
             "OwnerDiedError", "LocalRayletDiedError")
    return tuple(getattr(rex, n) for n in names if hasattr(rex, n))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
