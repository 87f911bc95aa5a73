"""Where independent tasks run (the files of a folder, the chunks of a video): a process pool on this machine
(``local``, the default) or a Ray cluster (``ray``), with the same retry rule on both.

A task is a picklable module-level function and its arguments. What it *returns* is final, including the errors
it reports as a value (a file that is not a video fails the same way every time). What it *raises*, and a worker
that dies under it (killed, out of memory, a lost node), counts as one failed try: the task runs again, up to
``max_tries`` times, then is reported as a :class:`TaskFailure`.

``local`` starts ``jobs`` processes (``spawn``: no fork of a process that may hold threads and a model), each set up
as the CLI sets up its own (:func:`retime.configure_process`) with ``cores // jobs`` PyTorch threads, so workers x
threads stays about the number of cores. ``ray`` connects to ``ray_address`` (else ``$RAY_ADDRESS``, else Ray
starts a local instance), asks one CPU per task and ``gpus_per_task`` GPUs (default: one where the cluster has
GPUs), and sets each task's PyTorch threads to the CPUs Ray assigned it. Ray is an optional extra
(``pip install 'retime[ray]'``), imported only here and only when asked for.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from retime._process import usable_cores
from retime.errors import UsageError

__all__ = ["EXECUTORS", "ExecutorSettings", "TaskFailure", "import_ray", "run_tasks"]

#: The ``--executor`` names.
EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class ExecutorSettings:
    """Where and how tasks run.

    Attributes:
        kind: ``"local"`` or ``"ray"``.
        jobs: tasks at once (≥ 1): local worker processes (default 1); on Ray, tasks in flight (default: the
            cluster's CPUs).
        ray_address: the Ray cluster (``host:port``, ``ray://...``); ``None``: ``$RAY_ADDRESS``, else a local Ray.
        gpus_per_task: Ray's ``num_gpus`` for each task; ``None``: 1 when the cluster has a GPU, else 0.
        max_tries: runs of a task that raises or whose worker dies before it counts as failed (≥ 1).

    Raises:
        UsageError: an unknown kind, ``jobs`` or ``max_tries`` below 1, a negative ``gpus_per_task``, or a
            ``ray_address`` without ``kind="ray"``.
    """

    kind: str = "local"
    jobs: int | None = None
    ray_address: str | None = None
    gpus_per_task: float | None = None
    max_tries: int = 3

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise UsageError(f"--executor must be one of {', '.join(EXECUTORS)}, got {self.kind!r}")
        if self.jobs is not None and self.jobs < 1:
            raise UsageError(f"--jobs must be at least 1, got {self.jobs}")
        if self.max_tries < 1:
            raise UsageError(f"--max-tries must be at least 1, got {self.max_tries}")
        if self.gpus_per_task is not None and self.gpus_per_task < 0:
            raise UsageError(f"--gpus-per-task must be 0 or more, got {self.gpus_per_task}")
        if self.kind != "ray" and (self.ray_address is not None or self.gpus_per_task is not None):
            raise UsageError("--ray-address and --gpus-per-task need --executor ray")


@dataclass(frozen=True)
class TaskFailure:
    """A task that raised (or lost its worker) on every one of its ``tries``; ``error`` is the last reason."""

    error: str
    tries: int


Emit = Callable[[Hashable, Any], None]


def run_tasks(fn: Callable[..., Any], tasks: dict[Hashable, tuple], settings: ExecutorSettings = ExecutorSettings(),
              *, on_done: Emit) -> None:
    """Run ``fn(*args)`` for every ``key: args`` of ``tasks`` and call ``on_done(key, value)`` in this process as
    each finishes (completion order), ``value`` being what ``fn`` returned or a :class:`TaskFailure`.

    Raises:
        UsageError: ``ray`` asked for without Ray installed, or its cluster cannot be reached.
        KeyboardInterrupt: interrupted; local workers are stopped at once (a task's output must therefore be
            staged, as every retime output is).
    """
    if not tasks:
        return
    if settings.kind == "ray":
        _run_on_ray(fn, dict(tasks), settings, on_done)
    else:
        _run_locally(fn, dict(tasks), settings.jobs or 1, settings.max_tries, on_done)


def _worker_setup(threads: int) -> None:
    from retime._process import configure_process

    configure_process(threads)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, concurrent.futures.process.BrokenProcessPool):
        return "the worker process died (killed, or out of memory?)"
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _run_locally(fn: Callable[..., Any], todo: dict[Hashable, tuple], jobs: int, max_tries: int,
                 on_done: Emit) -> None:
    tries = dict.fromkeys(todo, 0)
    context = multiprocessing.get_context("spawn")
    while todo:  # one pass per pool: a worker that dies breaks its pool, and what is left runs in a fresh one
        threads = max(1, usable_cores() // jobs)
        with concurrent.futures.ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=context,
                                                    initializer=_worker_setup, initargs=(threads,)) as pool:
            running = {pool.submit(fn, *args): key for key, args in todo.items()}
            broken = False
            try:
                while running:
                    finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                    for future in finished:
                        key = running.pop(future)
                        tries[key] += 1
                        try:
                            value = future.result()
                        except Exception as exc:  # noqa: BLE001 - every failure of a task is a failed try
                            broken = broken or isinstance(exc, concurrent.futures.process.BrokenProcessPool)
                            if tries[key] >= max_tries:
                                del todo[key]
                                on_done(key, TaskFailure(_reason(exc), tries[key]))
                            elif not broken:
                                running[pool.submit(fn, *todo[key])] = key
                            continue
                        del todo[key]
                        on_done(key, value)
            except KeyboardInterrupt:
                for process in list((getattr(pool, "_processes", None) or {}).values()):
                    process.terminate()
                pool.shutdown(wait=False, cancel_futures=True)
                raise


def import_ray():
    """The ``ray`` module, or a one-line UsageError naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray: pip install 'retime[ray]'") from None
    return ray


def _ray_task(fn: Callable[..., Any], args: tuple) -> Any:
    """One task on a Ray worker: PyTorch's threads set to the CPUs Ray assigned it, then ``fn``."""
    import ray

    from retime._process import configure_process

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    configure_process(max(1, int(cpus)))
    return fn(*args)


def _run_on_ray(fn: Callable[..., Any], todo: dict[Hashable, tuple], settings: ExecutorSettings,
                on_done: Emit) -> None:
    ray = import_ray()
    try:
        ray.init(address=settings.ray_address, ignore_reinit_error=True, log_to_driver=False,
                 include_dashboard=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = settings.ray_address or "$RAY_ADDRESS or a local Ray"
        raise UsageError(f"--executor ray: cannot connect to the Ray cluster at {where}: "
                         f"{' '.join(str(exc).split())}") from None
    running: dict[Any, Hashable] = {}
    try:
        resources = ray.cluster_resources()
        gpus = settings.gpus_per_task
        if gpus is None:
            gpus = 1 if resources.get("GPU", 0) >= 1 else 0
        remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(_ray_task)
        limit = settings.jobs or max(1, int(resources.get("CPU", 1)))
        tries = dict.fromkeys(todo, 0)
        queue = list(todo)
        while queue or running:
            while queue and len(running) < limit:
                key = queue.pop(0)
                running[remote.remote(fn, todo[key])] = key
            finished, _ = ray.wait(list(running), num_returns=1)
            for ref in finished:
                key = running.pop(ref)
                tries[key] += 1
                try:
                    value = ray.get(ref)
                except (ray.exceptions.RayError, Exception) as exc:  # noqa: BLE001 - a task error or a lost worker
                    cause = getattr(exc, "cause", None) or exc
                    if tries[key] >= settings.max_tries:
                        on_done(key, TaskFailure(_reason(cause), tries[key]))
                    else:
                        queue.append(key)
                    continue
                on_done(key, value)
    except KeyboardInterrupt:
        for ref in running:  # a cancelled task's chunk or file is staged: nothing of it is left
            ray.cancel(ref, force=True)
        raise
    finally:
        ray.shutdown()
