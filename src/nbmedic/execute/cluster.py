"""A batch on a Dask cluster: each notebook a task running ``run_notebook`` on a worker.

``dask.distributed`` is an optional extra (``pip install 'nbmedic[dask]'``), imported only here and only
when a scheduler is asked for.

Each notebook is one task (key ``nbmedic-run-<name>-<i>-<batch>``, never cached): the worker starts the
kernel as a child of its own process (in its own process group, so a notebook that kills its kernel, or
nbmedic's memory watchdog killing it, leaves the worker alone), runs the notebook with no output file and
sends back the ``RunResult`` with the executed notebook; the client writes it where a local run would.

A worker lost mid-notebook: every task tells the scheduler when it starts (event topic ``nbmedic-run``)
and the scheduler tells which worker left with which tasks (topic ``all``), so the client knows how many
times a notebook started and where it was lost.  The scheduler reschedules a lost task by itself up to its
``distributed.scheduler.allowed-failures`` (a ``local`` cluster: once); when it gives up (``KilledWorker``)
before the notebook had a second start, the client submits it once more.  A notebook that completes after
a lost start carries RN180 (a warning; the result is the retry's); one lost on every start comes back as
status ``died`` with RN180 raised to an error, no cells and no output file.
"""

from __future__ import annotations

import concurrent.futures
import gc
import importlib.util
import logging
import os
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from nbmedic.errors import NbmedicError, UsageError
from nbmedic.execute.jobs import RunJob, run_job
from nbmedic.execute.result import RunResult
from nbmedic.execute.runner import write_output
from nbmedic.findings import make

__all__ = ["CONNECT_TIMEOUT", "EVENT_TOPIC", "execute_on_cluster", "run_on_worker", "task_key"]

CONNECT_TIMEOUT = 10.0  # seconds to reach a scheduler given by address
EVENT_TOPIC = "nbmedic-run"  # a task's start: {"key", "worker", "pid"}
LOCAL_ALLOWED_FAILURES = 1  # a `local` cluster's scheduler reschedules a lost task once
# submissions of one notebook at most: its one retry, and new tries when it was only queued on lost workers
MAX_SUBMISSIONS = 5
_MISSING = "--scheduler needs dask.distributed: pip install 'nbmedic[dask]'"
_UNSAFE = re.compile(r"[^\w.+=,\[\]]+")


def _distributed() -> ModuleType:
    try:
        import distributed
    except ImportError:
        raise UsageError(_MISSING) from None
    return distributed


def task_key(path: str, index: int, batch: str, *, retry: int = 0) -> str:
    """``nbmedic-run-<notebook name>-<i>-<batch>`` (``-retryN`` for a resubmission): readable on the
    dashboard, unique across batches sharing a scheduler."""
    name = Path(path).name
    if name.lower().endswith(".ipynb"):
        name = name[: -len(".ipynb")]
    key = f"nbmedic-run-{_UNSAFE.sub('_', name) or 'notebook'}-{index}-{batch}"
    return f"{key}-retry{retry}" if retry else key


def run_on_worker(job: RunJob, key: str) -> tuple[str, RunResult]:
    """The task: tell the scheduler it started here, run the notebook; (this worker's address, result)."""
    from distributed import get_worker

    worker = get_worker()
    worker.log_event(EVENT_TOPIC, {"key": key, "worker": worker.address, "pid": os.getpid()})
    return worker.address, run_job(job)


# --- the connection ------------------------------------------------------------------------------


@contextmanager
def _local_cluster(dist: ModuleType, workers: int) -> Iterator[Any]:
    """A LocalCluster on 127.0.0.1 (one single-threaded worker process per notebook slot) for the batch."""
    try:
        cluster = dist.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
            scheduler_kwargs={"allowed_failures": LOCAL_ALLOWED_FAILURES},
            silence_logs=logging.CRITICAL)  # lost workers become RN180; Dask's log lines would repeat it
    except Exception as exc:  # noqa: BLE001 - whatever stops Dask starting its processes, in one line
        raise NbmedicError(f"--scheduler local: the Dask LocalCluster did not start: {_first_line(exc)}") \
            from None
    try:
        link = cluster.dashboard_link
        if link:
            hint = "" if importlib.util.find_spec("bokeh") else " (install bokeh to see it)"
            print(f"nbmedic: Dask dashboard at {link}{hint}", file=sys.stderr)
        client = dist.Client(cluster, set_as_default=False)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


@contextmanager
def _remote(dist: ModuleType, address: str) -> Iterator[Any]:
    failure = ""
    try:
        client = dist.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        failure = f"no Dask scheduler answered within {CONNECT_TIMEOUT:g} s ({_first_line(exc)})"
    except Exception as exc:  # noqa: BLE001 - a malformed address, an unusable protocol (ucx:// without ucx)
        failure = (f"not a Dask scheduler address nbmedic can reach ({_first_line(exc)}); "
                   "give tcp://HOST:PORT, or local")
    if failure:
        # the half-made Client (held by the traceback until now) closes while its event loop still runs,
        # not at interpreter exit, where its __del__ waits for a dead loop and prints a traceback
        gc.collect()
        raise UsageError(f"--scheduler {address}: {failure}")
    try:
        yield client
    finally:
        client.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _client(dist: ModuleType, scheduler: str, workers: int) -> Any:
    return _local_cluster(dist, workers) if scheduler == "local" else _remote(dist, scheduler)


# --- what the scheduler tells ----------------------------------------------------------------------


class _Events:
    """Task starts (our topic), workers removed with the tasks they were running, memory restarts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.starts: dict[str, list[str]] = {}  # key -> the workers it started on, in order
        self.lost: dict[str, list[tuple[str, str]]] = {}  # key -> (worker, why) for each removal
        self.memory: dict[str, dict[str, Any]] = {}  # worker -> its nanny's memory restart event

    def on_start(self, event: tuple[float, Any]) -> None:
        msg = event[1]
        if isinstance(msg, dict) and isinstance(msg.get("key"), str):
            with self._lock:
                self.starts.setdefault(msg["key"], []).append(str(msg.get("worker")))

    def on_all(self, event: tuple[float, Any]) -> None:
        msg = event[1]
        if not isinstance(msg, dict) or msg.get("action") != "remove-worker":
            return
        worker = str(msg.get("worker"))
        with self._lock:
            for key in msg.get("processing-tasks") or ():
                if isinstance(key, str):
                    self.lost.setdefault(key, []).append((worker, self._why(worker, msg)))

    def on_memory(self, event: tuple[float, Any]) -> None:
        msg = event[1]
        if isinstance(msg, dict) and msg.get("worker"):
            with self._lock:
                self.memory[str(msg["worker"])] = msg

    def _why(self, worker: str, msg: dict[str, Any]) -> str:
        restart = self.memory.get(worker)
        if restart is not None:
            rss = restart.get("rss")
            size = f" ({int(rss) / 2**30:.1f} GiB)" if isinstance(rss, (int, float)) else ""
            return f"its nanny restarted it for using too much memory{size}"
        if msg.get("expected"):
            return "it was retired from the cluster"
        return "the worker process died or lost its connection to the scheduler"

    def started(self, keys: Sequence[str]) -> list[str]:
        with self._lock:
            return [w for key in keys for w in self.starts.get(key, [])]

    def losses(self, keys: Sequence[str]) -> list[tuple[str, str]]:
        """(worker, why) of every start of these keys that a worker removal ended."""
        with self._lock:
            out = []
            for key in keys:
                begun = list(self.starts.get(key, []))
                for worker, why in self.lost.get(key, []):
                    if worker in begun:  # it had started there (not merely queued)
                        begun.remove(worker)
                        out.append((worker, why))
            return out


# --- the batch -------------------------------------------------------------------------------------


@dataclass
class _Task:
    index: int
    job: RunJob
    keys: list[str] = field(default_factory=list)


def _lost_types(dist: ModuleType) -> tuple[type[BaseException], ...]:
    from distributed.comm.core import CommClosedError

    return (dist.KilledWorker, CommClosedError)


def _remote_job(job: RunJob) -> RunJob:
    """The job a worker runs: no output file (the client writes it), the kernel's folder and the debug log
    made absolute here (a relative path means nothing in the worker's working directory)."""
    opts = job.options
    debug = os.path.abspath(opts.debug_file) if opts.debug_file else None
    cwd = opts.cwd or os.path.dirname(os.path.abspath(job.path))
    return replace(job, output=None, options=opts.merged(cwd=cwd, debug_file=debug))


class _Batch:
    def __init__(self, dist: ModuleType, client: Any, jobs: Sequence[RunJob],
                 on_done: Callable[[int, RunResult], None] | None) -> None:
        self.dist, self.client, self.on_done = dist, client, on_done
        self.address = str(client.scheduler.address)
        self.batch = uuid.uuid4().hex[:8]
        self.tasks = [_Task(i, job) for i, job in enumerate(jobs)]
        self.events = _Events()
        self.results: list[RunResult | None] = [None] * len(jobs)
        self.pending: dict[str, _Task] = {}
        self.lost_types = _lost_types(dist)

    def submit(self, task: _Task) -> Any:
        key = task_key(task.job.path, task.index, self.batch, retry=len(task.keys))
        task.keys.append(key)
        self.pending[key] = task
        return self.client.submit(run_on_worker, _remote_job(task.job), key, key=key, pure=False, retries=0)

    def run(self) -> list[RunResult]:
        topics = {EVENT_TOPIC: self.events.on_start, "all": self.events.on_all,
                  "worker-restart-memory": self.events.on_memory}
        for topic, handler in topics.items():
            self.client.subscribe_topic(topic, handler)
        try:
            done = self.dist.as_completed([self.submit(task) for task in self.tasks], loop=self.client.loop)
            for future in done:
                again = self.collect(future)
                if again is not None:
                    done.add(again)
        finally:
            for topic in topics:
                self.client.unsubscribe_topic(topic)
        return [r for r in self.results if r is not None]

    def collect(self, future: Any) -> Any:
        """The result of one finished task; a new future when the notebook must be submitted again."""
        task = self.pending.pop(str(future.key))
        try:
            worker, result = future.result()
        except self.lost_types as exc:
            future.release()
            if len(self.events.started(task.keys)) < 2 and len(task.keys) < MAX_SUBMISSIONS:
                return self.submit(task)  # not started twice yet (lost once, or only queued on lost workers)
            self.finish(task, self.lost(task, exc))
            return None
        except concurrent.futures.CancelledError:
            raise NbmedicError(f"--scheduler {self.address}: the scheduler cancelled the notebook "
                               f"{task.job.path} (did it restart, or the connection drop?)") from None
        future.release()
        if task.job.output is not None and result.nb is not None:
            write_output(result, task.job.output, result.nb)
        self.flag_retry(task, result, worker)
        self.finish(task, result)
        return None

    def finish(self, task: _Task, result: RunResult) -> None:
        self.results[task.index] = result
        if self.on_done is not None:
            self.on_done(task.index, result)

    def flag_retry(self, task: _Task, result: RunResult, worker: str) -> None:
        """RN180 (a warning) on a result that came from a retry after a lost start."""
        losses = self.events.losses(task.keys)
        started = self.events.started(task.keys)
        if not losses or len(started) < 2:
            return
        where = ", ".join(dict.fromkeys(w for w, _ in losses))
        why = "; ".join(dict.fromkeys(why for _, why in losses))
        result.findings.insert(0, make(
            "RN180", result.path,
            f"the Dask worker running the notebook ({where}) was lost: {why}; the notebook ran again on "
            f"{worker} and the result shown is that run's",
            evidence={"worker": where, "error": why, "attempts": len(started), "scheduler": self.address}))

    def lost(self, task: _Task, exc: BaseException) -> RunResult:
        """A notebook lost on every start: status ``died``, RN180 as an error, nothing written."""
        losses = self.events.losses(task.keys)
        started = self.events.started(task.keys)
        where = ", ".join(dict.fromkeys(w for w, _ in losses)) or "unknown"
        why = "; ".join(dict.fromkeys([w for _, w in losses] + [f"{type(exc).__name__}: {_first_line(exc)}"]))
        attempts = max(len(started), 1)
        return RunResult(path=task.job.path, status="died", findings=[make(
            "RN180", task.job.path,
            f"the notebook was lost with its Dask worker on each of its {attempts} start(s) ({where}), so no "
            f"result came back: {why}",
            severity="error",
            evidence={"worker": where, "error": why, "attempts": attempts, "scheduler": self.address})])


def execute_on_cluster(jobs: Sequence[RunJob], scheduler: str,
                       on_done: Callable[[int, RunResult], None] | None = None,
                       workers: int | None = None) -> list[RunResult]:
    """Run ``jobs`` on the cluster at ``scheduler`` (``local``: a LocalCluster of ``workers`` worker
    processes, default one per core, never more than there are notebooks); results in job order."""
    dist = _distributed()
    if not jobs:
        return []
    slots = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    with _client(dist, scheduler, slots) as client:
        return _Batch(dist, client, jobs, on_done).run()
