"""Run work units on an executor: in-process, a ``concurrent.futures.Executor``, or Dask.

A *work unit* is a picklable value ``unit``; the work is a module-level (picklable) function
``fn(unit, deadline)`` returning ``(finished, value)``, where ``deadline`` is a wall-clock
time (:func:`time.time`, comparable across the machines of a cluster) or ``None``. A unit
that stops early (its own budget, e.g. a region budget, or the deadline) returns
``finished=False``; :func:`run_units` then asks ``split(unit)`` for sub-units covering the
same work and runs those instead (work stealing by re-splitting: long units are split while
the others run, not chunked in advance). Values are merged in the order of the units' keys
(the path of splits from the root), so the merged result does not depend on the number of
workers nor on the order in which units finish.

Progress: a running unit may call :func:`report_progress` with its counters so far (regions
found, boxes closed, ...). In-process the counts reach the run's progress bar directly; on a
Dask cluster the worker sends them as events of a topic the client subscribes to (the bar
refreshes at least twice a second while units run); elsewhere (a process pool) the call does
nothing. Counters of finished units come from their values (``describe``), those of running
units from their last report.

Failures: Dask re-runs the tasks of a worker that dies (``distributed.scheduler.allowed-failures``);
a unit whose task is lost anyway (``KilledWorker``, a cancelled future) is resubmitted up to
``retries`` times. An error raised by ``fn`` itself is a bug or bad input: it is raised.
A global ``time_limit``, a ``stop`` predicate (e.g. a region budget) or Ctrl-C end the run
early; the result then holds the units finished so far (``status`` says why).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import gc
import logging
import socket
import sys
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

from mipnet.core.errors import InvalidArgumentError, MipnetError

__all__ = ["as_executor", "is_dask_client", "local_cluster", "connect", "executor_from", "run_units", "workers_of", "UnitRun",
           "RunReport", "InProcess", "report_progress"]

log = logging.getLogger(__name__)


class InProcess(cf.Executor):
    """A ``concurrent.futures.Executor`` that runs each call at ``submit`` (the serial path)."""

    def submit(self, fn, /, *args, **kwargs):
        f: cf.Future = cf.Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 -- KeyboardInterrupt is re-raised below
            if isinstance(e, KeyboardInterrupt):
                raise
            f.set_exception(e)
        return f


def is_dask_client(obj) -> bool:
    """Whether ``obj`` is a ``dask.distributed.Client`` (without importing Dask)."""
    return type(obj).__name__ == "Client" and type(obj).__module__.startswith("distributed")


def as_executor(executor) -> cf.Executor:
    """A ``concurrent.futures.Executor`` for ``executor``.

    ``None`` runs in-process (:class:`InProcess`); an ``Executor`` is returned as is; a
    ``dask.distributed.Client`` becomes ``client.get_executor(pure=False)`` (its futures are
    ``concurrent.futures.Future``; cancelling one cancels the Dask task).
    """
    if executor is None:
        return InProcess()
    if isinstance(executor, cf.Executor):
        return executor
    if is_dask_client(executor):
        return executor.get_executor(pure=False)
    raise InvalidArgumentError(
        f"executor must be None, a concurrent.futures.Executor or a dask.distributed.Client, got {executor!r}")


def workers_of(executor) -> int:
    """How many units can run at once on ``executor`` (1 in-process)."""
    if executor is None or isinstance(executor, InProcess):
        return 1
    client = getattr(executor, "_client", executor)
    if is_dask_client(client):
        try:
            return max(1, sum(client.nthreads().values()))
        except Exception:  # noqa: BLE001 -- a client that cannot answer: assume one
            return 1
    return max(1, int(getattr(executor, "_max_workers", 1) or 1))


def _require_dask():
    try:
        import distributed  # noqa: F401
    except ImportError as e:  # pragma: no cover - a dependency
        raise MipnetError("--workers/--scheduler need dask.distributed: pip install 'dask[distributed]'") from e
    return distributed


#: Dask settings of :func:`local_cluster`: the event-loop tick (20 ms by default: it only measures
#: the loop's latency), the system monitor (500 ms: dashboard data), the memory monitor of the
#: workers and nannies (100 ms) and the scheduler's work-stealing balance (100 ms: the units are
#: queued on the scheduler and handed to a worker when it frees up). On 2 cores, exact LP bounds of
#: 784-100-100-10 on 2 workers took 3.93-3.96 s with these against 4.17-4.58 s without (1.63x
#: against 1.48-1.49x over 1 worker; alternating clusters, best of 3 each)
QUIET_CALLBACKS = {
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.scheduler.work-stealing-interval": "500ms",
}


@contextlib.contextmanager
def local_cluster(n: int, *, threads_per_worker: int = 1, memory_limit="auto", silence: bool = True):
    """A local Dask cluster of ``n`` worker processes and its client (closed on exit, Ctrl-C included)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidArgumentError(f"the number of workers must be an integer >= 1, got {n!r}")
    distributed = _require_dask()
    import dask

    kw = {"silence_logs": logging.ERROR} if silence else {}
    # Two of Dask's defaults slow the work units down, so the workers start without them (the
    # nannies keep the config they started with, also for a worker they restart):
    # - MALLOC_TRIM_THRESHOLD_=65536 (the nanny's pre-spawn environment, to return memory to the OS
    #   early): glibc then gives back and faults in again the pages of every large numpy temporary;
    #   measured, the vectorised equivalence boxes ran 2x slower (3.2-3.6 s -> 7.0-7.3 s);
    # - the statistical profiler (every thread's stack every 10 ms, for the dashboard): +5-10 % CPU
    #   time on an LP work unit.
    # The servers' periodic callbacks run less often (QUIET_CALLBACKS): an idle 2-worker cluster
    # took 14.5 % of a core with Dask's intervals, 2.5 % with these.
    environ = {k: v for k, v in (dask.config.get("distributed.nanny.pre-spawn-environ", None) or {}).items()
               if k != "MALLOC_TRIM_THRESHOLD_"}
    with _cluster_quiet(silence):
        with dask.config.set({"distributed.worker.profile.enabled": False,
                              "distributed.nanny.pre-spawn-environ": environ, **QUIET_CALLBACKS}):
            cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=threads_per_worker, processes=True,
                                               dashboard_address=":0", memory_limit=memory_limit, **kw)
        try:
            client = distributed.Client(cluster)
            try:
                yield client
            finally:
                _stop_busy_workers(client, cluster)
                client.close()
        finally:
            cluster.close()


def _stop_busy_workers(client, cluster) -> None:
    """Kill the worker processes still running a unit (the run ended early: Ctrl-C, a
    counterexample, a time limit), instead of the nannies' 4 s wait for them at close: a unit in
    HiGHS or numpy does not see the cancel. Best effort; close() does the rest."""
    try:
        if not any(client.processing().values()):
            return
        for nanny in list(cluster.workers.values()):
            if hasattr(nanny, "kill"):
                cluster.sync(nanny.kill, timeout=0.5)
    except Exception:  # noqa: BLE001 -- a cluster already going down
        pass


@contextlib.contextmanager
def _quiet(*names: str, level: int = logging.WARNING, on: bool = True):
    """Raise the loggers ``names`` to ``level`` while the block runs (libraries' messages off stderr)."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    if on:
        for lg in loggers:
            lg.setLevel(level)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _cluster_quiet(on: bool = True):
    """Keep the cluster's own messages off stderr while mipnet runs it: its INFO lines (start,
    stop), and the errors of work mipnet stopped on purpose -- units cancelled when a search ends
    early ("Couldn't gather keys ... forgotten", tornado's "Exception in callback ...
    FutureCancelledError") and connections cut while the cluster closes ("Stream is closed").
    The run's answer is decided by then; a unit that fails for real raises in the caller, and a
    lost one is resubmitted with mipnet's own warning."""
    return _quiet("tornado.application", "distributed", "asyncio", level=logging.CRITICAL, on=on)


@contextlib.contextmanager
def connect(address: str, *, timeout: float = 10.0):
    """A client of the Dask scheduler at ``address`` (``tcp://host:8786``); clear error if unreachable."""
    if not isinstance(address, str) or not address.strip():
        raise InvalidArgumentError(f"the scheduler address must be a non-empty string, got {address!r}")
    distributed = _require_dask()
    unreachable = ("cannot reach the Dask scheduler at {!r} within {:g} s ({}); start one with `dask scheduler` "
                   "and workers with `dask worker ADDRESS`")
    try:  # checked before a Client exists: a Client that failed to start and is collected later,
        # while another Client starts, deadlocks distributed's loop runner
        from distributed.comm import parse_address, parse_host_port

        scheme, loc = parse_address(address)
        if scheme == "tcp":
            host, port = parse_host_port(loc)
            with socket.create_connection((host, port), timeout=timeout):
                pass
    except (OSError, TimeoutError) as e:
        raise MipnetError(unreachable.format(address, timeout, e)) from None
    except (ValueError, TypeError) as e:
        raise InvalidArgumentError(f"bad scheduler address {address!r}: {e}") from None
    try:
        with _quiet("distributed"):
            client = distributed.Client(address, timeout=timeout)
    except (OSError, TimeoutError) as e:
        gc.collect()  # the half-started Client goes now, not inside the next Client's start
        raise MipnetError(unreachable.format(address, timeout, e)) from None
    except ValueError as e:
        gc.collect()
        raise InvalidArgumentError(f"bad scheduler address {address!r}: {e}") from None
    with _cluster_quiet():  # the client side's messages on units it cancelled (the scheduler logs its own)
        try:
            yield client
        finally:
            client.close()


@contextlib.contextmanager
def executor_from(workers: Optional[int] = None, scheduler: Optional[str] = None) -> Iterator[Optional[Any]]:
    """The executor of the CLI flags: ``None`` (in-process), a local cluster of ``workers``, or ``scheduler``."""
    if workers is not None and scheduler is not None:
        raise InvalidArgumentError("give --workers or --scheduler, not both")
    if scheduler is not None:
        with connect(scheduler) as client:
            yield client
    elif workers is not None and workers > 1:
        with local_cluster(workers) as client:
            yield client
    else:
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise InvalidArgumentError(f"--workers must be an integer >= 1, got {workers!r}")
        yield None


# ---------------------------------------------------------------------------- the run
@dataclass(frozen=True)
class UnitRun:
    """One finished (or, at the end of an early stop, unfinished) unit: its key, unit, value and run time."""

    key: tuple
    unit: Any
    value: Any
    finished: bool
    seconds: float


@dataclass
class RunReport:
    """What :func:`run_units` did. ``runs`` are sorted by key: the deterministic merge order.

    ``status``: ``complete``, ``time_limit``, ``stopped`` (the ``stop`` predicate),
    ``unfinished`` (a unit stopped on its own budget and could not be split) or
    ``interrupted`` (Ctrl-C). Only ``complete`` means every unit finished; otherwise the
    units not in ``runs`` (or with ``finished=False``) were not done.
    """

    runs: list
    status: str = "complete"
    submitted: int = 0
    splits: int = 0
    retries: int = 0
    seconds: float = 0.0
    workers: int = 1
    #: the run time of every unit that came back (split ones included), measured on its worker
    unit_seconds: list = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def values(self) -> list:
        return [r.value for r in self.runs]


#: the unit running in this thread: (key, send) where send(dict) carries a progress report
_RUNNING = threading.local()
#: at most one progress report per unit and this many seconds (the rest are dropped)
REPORT_EVERY = 0.5


def report_progress(**counts) -> None:
    """Report a running unit's counters so far (e.g. ``regions=1234``) to its run's progress bar.

    Cheap to call often (reports are dropped but one per :data:`REPORT_EVERY` seconds) and a
    no-op outside a unit of :func:`run_units` or where no channel reaches the client.
    """
    ctx = getattr(_RUNNING, "ctx", None)
    if ctx is None:
        return
    now = time.monotonic()
    if now - ctx[2] < REPORT_EVERY:
        return
    ctx[2] = now
    try:
        ctx[1]({"key": ctx[0], "counts": counts})
    except Exception:  # noqa: BLE001 -- progress must never break the work
        _RUNNING.ctx = None


def _sender(channel):
    """How a unit reaches the client: a callable in-process, a Dask topic on a worker, else None."""
    if channel is None or callable(channel):
        return channel
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # not on a Dask worker (a process pool): no channel
        return None
    return lambda msg: worker.log_event(channel, msg)


def _timed(fn, unit, deadline, key=None, channel=None):
    """``fn(unit, deadline)`` with the seconds it ran (measured where it ran, not queue time)."""
    send = _sender(channel)
    _RUNNING.ctx = None if send is None else [key, send, time.monotonic()]
    t0 = time.perf_counter()
    try:
        finished, value = fn(unit, deadline)
    finally:
        _RUNNING.ctx = None
    return finished, value, time.perf_counter() - t0


class _Live:
    """The last counters reported by each running unit (filled by the channel, read by the bar)."""

    def __init__(self) -> None:
        self.counts: dict = {}
        self.lock = threading.Lock()

    def __call__(self, msg) -> None:  # in-process channel, and the body of the Dask topic handler
        with self.lock:
            self.counts[tuple(msg["key"])] = dict(msg["counts"])

    def on_event(self, event) -> None:  # Dask: (timestamp, msg)
        self(event[1])

    def drop(self, key) -> None:
        with self.lock:
            self.counts.pop(key, None)

    def summary(self) -> str:
        with self.lock:
            units = list(self.counts.values())
        if not units:
            return ""
        tot: dict = {}
        for c in units:
            for k, v in c.items():
                if isinstance(v, (int, float)):
                    tot[k] = tot.get(k, 0) + v
        body = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v:.4g}" for k, v in tot.items())
        return f"running {len(units)}: {body}" if body else f"running {len(units)}"


def _lost(exc: BaseException) -> bool:
    """A task lost with its worker (retry), not an error of the unit (raise)."""
    return isinstance(exc, cf.CancelledError) or type(exc).__name__ in ("KilledWorker", "FutureCancelledError",
                                                                       "CommClosedError")


def run_units(
    fn: Callable,
    units: Iterable,
    executor=None,
    *,
    split: Optional[Callable[[Any], Sequence]] = None,
    time_limit: Optional[float] = None,
    stop: Optional[Callable[[list], bool]] = None,
    retries: int = 3,
    progress: bool = False,
    desc: str = "units",
    describe: Optional[Callable[[list], str]] = None,
    follow: Optional[Callable[[Any, Any, int], Sequence]] = None,
) -> RunReport:
    """Run ``fn(unit, deadline)`` for every unit on ``executor``; re-split unfinished units.

    Parameters
    ----------
    fn : callable ``(unit, deadline) -> (finished, value)``
        Module level (picklable), pure.
    units : iterable
        The initial units (keys ``(0,), (1,), ...``; sub-units of key ``k`` get ``k + (j,)``).
    executor : None, concurrent.futures.Executor or dask.distributed.Client
    split : callable ``unit -> sequence of units``, optional
        Sub-units that together do the work of an unfinished unit. Without ``split``, or
        when it returns no sub-unit, the unfinished value is kept (status ``unfinished``).
    time_limit : float, optional
        Seconds for the whole run; units see the deadline and stop there (unfinished).
    stop : callable ``list of UnitRun -> bool``, optional
        Called after each finished unit with the runs so far; True ends the run (``stopped``).
    retries : int
        Resubmissions of a unit whose task was lost (worker died).
    progress : bool
        A tqdm bar of finished units on stderr (the total grows as units are split);
        ``describe(runs)`` sets its postfix (e.g. regions found so far).
    follow : callable ``(unit, value, idle) -> sequence of units``, optional
        Units to run after a unit that returned (finished or not: the value is kept, unlike
        ``split``), e.g. the work it left open; sub-units of key ``k`` get ``k + (j,)``.
        ``idle`` is how many workers have no unit to run (so that the work left is dealt into
        as many units as can start now, and no smaller pieces). Not called once the time limit
        has passed or the run stops.
    """
    t0 = time.perf_counter()
    ex = as_executor(executor)
    deadline = time.time() + time_limit if time_limit is not None else None
    report = RunReport(runs=[], workers=workers_of(ex if executor is not None else None))
    pending: dict = {}  # future -> (key, unit, tries, t_submit)
    done: list = []
    bar = None
    live = _Live()
    channel = topic = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=0, desc=desc, unit="unit", file=sys.stderr)
        if not isinstance(ex, InProcess) and is_dask_client(executor):
            topic = channel = f"mipnet-progress-{uuid.uuid4().hex}"
            executor.subscribe_topic(topic, live.on_event)

    def postfix():
        if bar is not None:
            text = "; ".join(t for t in ((describe(done) if describe is not None else ""), live.summary()) if t)
            bar.set_postfix_str(text, refresh=True)

    def feed_here(msg):  # in-process, the unit runs in this thread: its reports refresh the bar
        live(msg)
        postfix()

    if bar is not None and isinstance(ex, InProcess):
        channel = feed_here

    def submit(key, unit, tries=0):
        report.submitted += 1
        if bar is not None:
            bar.total += 1
            bar.refresh()
        with warnings.catch_warnings():  # a dealt frontier is a large task by design: no advice on stderr
            warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
            fut = ex.submit(_timed, fn, unit, deadline, key, channel)
        pending[fut] = (key, unit, tries, time.perf_counter())

    def cancel_all():
        for f in list(pending):
            f.cancel()

    status = "complete"
    try:
        for i, u in enumerate(units):
            submit((i,), u)
        while pending:
            timeout = None if deadline is None else max(0.0, deadline - time.time()) + 5.0
            if topic is not None:  # wake up to show the running units' reports
                ready, _ = cf.wait(list(pending), timeout=REPORT_EVERY, return_when=cf.FIRST_COMPLETED)
                if not ready:
                    postfix()
                    if deadline is None or time.time() < deadline + 5.0:
                        continue
            else:
                ready, _ = cf.wait(list(pending), timeout=timeout, return_when=cf.FIRST_COMPLETED)
            if not ready:  # units overran the deadline by far: give up on them
                status = "time_limit"
                break
            for f in sorted(ready, key=lambda f: pending[f][0]):
                key, unit, tries, _ = pending.pop(f)
                live.drop(key)
                exc = f.exception()
                if isinstance(exc, KeyboardInterrupt):  # Ctrl-C reached the unit (in-process, or its worker)
                    raise KeyboardInterrupt
                if exc is not None:
                    if _lost(exc) and tries < retries:
                        log.warning("unit %s lost (%s): resubmitted", key, type(exc).__name__)
                        report.retries += 1
                        submit(key, unit, tries + 1)
                        continue
                    raise exc
                finished, value, dt = f.result()
                report.unit_seconds.append(dt)
                expired = deadline is not None and time.time() >= deadline
                if not finished and not expired and split is not None:
                    kids = list(split(unit))
                    if kids:
                        report.splits += 1
                        for j, k in enumerate(kids):
                            submit(key + (j,), k)
                        if bar is not None:
                            bar.update(1)
                        continue
                done.append(UnitRun(key, unit, value, bool(finished), dt))
                if follow is not None and not expired:
                    idle = max(0, report.workers - len(pending))
                    for j, k in enumerate(follow(unit, value, idle)):
                        submit(key + (j,), k)
                if bar is not None:
                    bar.update(1)
                    postfix()
                if not finished and status == "complete":
                    status = "time_limit" if expired else "unfinished"
            if stop is not None and stop(sorted(done, key=lambda r: r.key)):
                status = "stopped"
                break
            if deadline is not None and time.time() >= deadline + 5.0:
                status = "time_limit"
                break
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        cancel_all()
        if topic is not None:
            try:
                executor.unsubscribe_topic(topic)
            except Exception:  # noqa: BLE001 -- a closed client: nothing to unsubscribe
                pass
        if bar is not None:
            bar.close()
    for f, (key, unit, _, _) in pending.items():  # results that came in after the end: keep them
        if f.done() and not f.cancelled() and f.exception() is None:
            finished, value, dt = f.result()
            done.append(UnitRun(key, unit, value, bool(finished), dt))
    report.runs = sorted(done, key=lambda r: r.key)
    report.status = status
    report.seconds = time.perf_counter() - t0
    return report
