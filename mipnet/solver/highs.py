"""HiGHS through highspy: silent construction, options, time limits, cutoffs, interrupts.

Everything mipnet asks of HiGHS goes through :class:`LinearModel`:

* **Silence.** highspy 1.16 prints a banner on stdout when the first ``Highs`` object of a
  process is made, before any option can be set. :func:`new_highs` points the process's
  standard output (file descriptor 1) at ``/dev/null`` while it constructs, then sets
  ``output_flag`` off, so a ``--json`` document on stdout stays valid.
* **Time limits.** A model keeps a default ``time_limit``; :meth:`LinearModel.solve` uses
  it unless the call gives its own.
* **Cutoffs and targets.** ``cutoff=c`` searches only solutions at least as good as c, so
  ``infeasible`` proves that the optimum is worse than c; ``target=t`` stops at the first
  solution at least as good as t. How HiGHS reads ``objective_bound`` for a maximisation
  changed between versions; a tiny integer programme tells the two readings apart once per
  process.
* **Interrupts.** A MILP (or a large LP) runs in a worker thread while the calling thread
  waits; Ctrl-C there asks HiGHS to stop through its interrupt callbacks, waits for it,
  and raises :class:`~mipnet.core.errors.Interrupted` carrying the partial
  :class:`SolveResult` (its dual bound still holds). Small LPs run directly: a Ctrl-C
  arrives when they return, a few milliseconds later.
* **Statuses.** :class:`SolveStatus` is one enum for every outcome; ``proven`` means the
  solve finished (optimal or infeasible).
"""

from __future__ import annotations

import enum
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, replace
from typing import Optional

import highspy
import numpy as np
import scipy.sparse as sp

from mipnet.core.errors import Interrupted, InvalidArgumentError

__all__ = [
    "INF",
    "MILP_OPTIONS",
    "LinearModel",
    "SolveResult",
    "SolveStatus",
    "check_options",
    "new_highs",
]

INF = float(highspy.kHighsInf)

#: HiGHS options for the MILPs of the stability, equivalence and gap analyses (measured on
#: the shared MNIST 8x8 equivalence instances and an L1-trained digits net: 30-50 % less
#: time than HiGHS's defaults). Callers pass their own on top with ``solver_options=``.
MILP_OPTIONS = {"mip_allow_restart": False, "mip_allow_cut_separation_at_nodes": False}

#: A MILP with at least this many nonzeros solves without HiGHS's presolve (:meth:`LinearModel.solve`):
#: that presolve can overrun a time limit many times over, and a Ctrl-C waits for it.
PRESOLVE_MAX_NONZEROS = 100_000

#: A model with at least this many rows solves in a worker thread (interruptible) even as an LP.
_THREADED_ROWS = 2000

_CONSTRUCT_LOCK = threading.Lock()


def new_highs() -> highspy.Highs:
    """A ``highspy.Highs`` with all output off, made without writing to stdout."""
    with _CONSTRUCT_LOCK:
        try:
            sys.stdout.flush()
        except (AttributeError, ValueError, OSError):
            pass
        saved = None
        try:
            saved = os.dup(1)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.close(devnull)
        except OSError:  # no file descriptor 1 (embedded interpreters): nothing to guard
            saved = None
        try:
            h = highspy.Highs()
            h.setOptionValue("output_flag", False)
        finally:
            if saved is not None:
                os.dup2(saved, 1)
                os.close(saved)
    h.setOptionValue("log_to_console", False)
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("threads", _THREADS)
    return h


#: HiGHS's thread count. Its task scheduler is made per calling thread at the first solve, with
#: that model's ``threads``, and a later model asking for another count fails ("Not Set"); so every
#: model of mipnet asks for the same. One thread: mipnet's LPs are small and re-solved from warm
#: bases, where the scheduler's overhead shows (a warm re-solve of a 30-row LP, each setting in a
#: fresh process: about 15-30 % less time than with HiGHS's default); parallel work runs as
#: processes (``executor=``, ``--workers``), which HiGHS's own threads would only compete with.
#: Becomes 0 (HiGHS's default) if something else in the process started HiGHS's scheduler first
#: with its default (see :meth:`LinearModel._run_direct`).
_THREADS = 1


def check_options(user: Optional[dict], *, base: Optional[dict] = None) -> dict:
    """``base`` (default :data:`MILP_OPTIONS`) updated with the user's HiGHS options, checked by name."""
    opts = dict(MILP_OPTIONS if base is None else base)
    if user:
        if not isinstance(user, dict):
            raise InvalidArgumentError(
                f"solver_options must be a dict of HiGHS options, got {type(user).__name__}"
            )
        h = _probe_highs()
        for k in user:
            if k == "threads":
                raise InvalidArgumentError(
                    "solver_options: 'threads' is fixed by mipnet (HiGHS runs on one thread per process; "
                    "its thread pool cannot change once started); run work in parallel with executor= "
                    "or --workers instead"
                )
            if h.getOptionValue(k)[0] != highspy.HighsStatus.kOk:
                raise InvalidArgumentError(
                    f"solver_options: {k!r} is not a HiGHS option (see the HiGHS options list)"
                )
        opts.update(user)
    return opts


_PROBE: Optional[highspy.Highs] = None


def _probe_highs() -> highspy.Highs:
    global _PROBE
    if _PROBE is None:
        _PROBE = new_highs()
    return _PROBE


class SolveStatus(str, enum.Enum):
    """How a solve ended (a ``str`` too: ``status == "optimal"`` works)."""

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    UNBOUNDED_OR_INFEASIBLE = "unbounded_or_infeasible"
    TIME_LIMIT = "time_limit"
    INTERRUPTED = "interrupted"
    SOLUTION_LIMIT = "solution_limit"
    ITERATION_LIMIT = "iteration_limit"
    OBJECTIVE_BOUND = "objective_bound"
    OBJECTIVE_TARGET = "objective_target"
    OTHER = "other"

    def __str__(self) -> str:
        return self.value


_STATUS = {
    highspy.HighsModelStatus.kOptimal: SolveStatus.OPTIMAL,
    highspy.HighsModelStatus.kInfeasible: SolveStatus.INFEASIBLE,
    highspy.HighsModelStatus.kTimeLimit: SolveStatus.TIME_LIMIT,
    highspy.HighsModelStatus.kUnbounded: SolveStatus.UNBOUNDED,
    highspy.HighsModelStatus.kUnboundedOrInfeasible: SolveStatus.UNBOUNDED_OR_INFEASIBLE,
    highspy.HighsModelStatus.kInterrupt: SolveStatus.INTERRUPTED,
    highspy.HighsModelStatus.kSolutionLimit: SolveStatus.SOLUTION_LIMIT,
    highspy.HighsModelStatus.kIterationLimit: SolveStatus.ITERATION_LIMIT,
    highspy.HighsModelStatus.kObjectiveBound: SolveStatus.OBJECTIVE_BOUND,
    highspy.HighsModelStatus.kObjectiveTarget: SolveStatus.OBJECTIVE_TARGET,
}


#: HiGHS's text of each model status (asked once per status)
_STATUS_TEXT: dict = {}


@dataclass(frozen=True, eq=False)
class SolveResult:
    """The outcome of one HiGHS solve, free of solver objects.

    ``highs_status`` keeps HiGHS's own text. For a maximisation ``dual_bound`` is a proven
    upper bound on the optimum (a lower bound for a minimisation), whatever the status;
    ``objective`` is the best value found (attained), if any. ``proven`` means the solve
    finished (optimal or infeasible).
    """

    status: SolveStatus
    highs_status: str
    objective: Optional[float]
    dual_bound: Optional[float]
    values: Optional[np.ndarray]
    seconds: float
    maximize: bool
    mip_gap: Optional[float] = None
    nodes: int = 0

    @property
    def proven(self) -> bool:
        return self.status in (SolveStatus.OPTIMAL, SolveStatus.INFEASIBLE)

    @property
    def has_solution(self) -> bool:
        return self.values is not None

    def to_dict(self) -> dict:
        return {
            "status": self.status.value,
            "highs_status": self.highs_status,
            "objective": self.objective,
            "dual_bound": self.dual_bound,
            "proven": self.proven,
            "seconds": self.seconds,
            "mip_gap": self.mip_gap,
            "nodes": self.nodes,
        }


_CUTOFF_SIGN: Optional[int] = None


def _cutoff_sign() -> int:
    """How HiGHS reads ``objective_bound`` for a maximisation (checked once per process).

    highspy 1.15 applies it to the internal minimisation of ``-objective``: for a
    maximisation, ``objective_bound = B`` keeps only solutions with objective ``>= -B``.
    A later version might read it in the user's sense; a tiny integer programme tells.
    """
    global _CUTOFF_SIGN
    if _CUTOFF_SIGN is None:
        m = LinearModel(options={"presolve": "off"}, interruptible=False)
        # max x0 + x1, x integer in [0, 3], x0 + x1 <= 4.5: optimum 4
        x = m.add_cols(np.zeros(2), np.full(2, 3.0), integer=True)
        m.add_rows([-INF], [4.5], np.ones((1, 2)), cols=x)
        m.set_objective(x, [1.0, 1.0], maximize=True)
        m._set("objective_bound", -5.0)
        m._run_direct()
        infeasible = m.highs.getModelStatus() == highspy.HighsModelStatus.kInfeasible
        _CUTOFF_SIGN = -1 if infeasible else 1
    return _CUTOFF_SIGN


class LinearModel:
    """An LP/MILP in HiGHS, built from numpy arrays (one ``addCols``/``addRows`` call each).

    Parameters
    ----------
    options : dict, optional
        HiGHS options (checked by name).
    time_limit : float, optional
        Default time limit of every :meth:`solve` (seconds; None: no limit).
    interruptible : bool
        Run long solves in a worker thread so that Ctrl-C stops them (default True).
    """

    def __init__(self, *, options: Optional[dict] = None, time_limit: Optional[float] = None,
                 interruptible: bool = True) -> None:
        self.highs = new_highs()
        self._presolve_chosen = False  # the caller set "presolve": leave it alone
        self._time_limit_set = INF  # the value HiGHS holds now (solve sets it only when it changes)
        for k, v in (options or {}).items():
            self._set(k, v)
        self.time_limit = time_limit
        self._interruptible = interruptible and hasattr(self.highs, "cbMipInterrupt")
        self._stop = threading.Event()
        self._subscribed = False
        self._num_cols = 0
        self._num_rows = 0
        self._integer_cols = 0
        self._obj_cols = np.zeros(0, dtype=np.int64)
        self._maximize = False

    # ---------------------------------------------------------------- options
    def _set(self, name: str, value) -> None:
        if self.highs.setOptionValue(name, value) != highspy.HighsStatus.kOk:
            raise InvalidArgumentError(f"HiGHS rejected option {name}={value!r}")
        if name == "presolve":
            self._presolve_chosen = True
        elif name == "time_limit":
            self._time_limit_set = float(value)

    def set_options(self, options: dict) -> None:
        """Set HiGHS options on this model (checked by name and value)."""
        for k, v in options.items():
            self._set(k, v)

    # ---------------------------------------------------------------- building
    @property
    def num_cols(self) -> int:
        return self._num_cols

    @property
    def num_rows(self) -> int:
        return self._num_rows

    @property
    def is_mip(self) -> bool:
        return self._integer_cols > 0

    def add_cols(self, lower, upper, *, integer: bool = False) -> np.ndarray:
        """Add columns with the given bounds (zero cost); return their indices."""
        lower = np.ascontiguousarray(lower, dtype=np.float64).reshape(-1)
        upper = np.ascontiguousarray(upper, dtype=np.float64).reshape(-1)
        n = lower.size
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        start = self._num_cols
        self.highs.addCols(
            n, np.zeros(n), lower, upper, 0, np.zeros(n, dtype=np.int32), np.zeros(0, dtype=np.int32), np.zeros(0)
        )
        idx = np.arange(start, start + n, dtype=np.int64)
        self._num_cols += n
        if integer:
            self.highs.changeColsIntegrality(
                n, idx.astype(np.int32), np.full(n, highspy.HighsVarType.kInteger)
            )
            self._integer_cols += n
        return idx

    def add_binaries(self, n: int) -> np.ndarray:
        return self.add_cols(np.zeros(n), np.ones(n), integer=True)

    def add_rows(self, lower, upper, A, *, cols=None) -> np.ndarray:
        """Add rows ``lower <= A v <= upper``; return their indices.

        ``A`` is a scipy sparse matrix (or dense array) whose columns are either all model
        columns, or the columns listed in ``cols``.
        """
        A = sp.csr_matrix(A)
        if cols is not None:
            cols = np.asarray(cols, dtype=np.int64)
            if A.shape[1] != cols.size:
                raise InvalidArgumentError(f"A has {A.shape[1]} columns but {cols.size} column indices were given")
            indices = cols[A.indices]
        else:
            if A.shape[1] > self._num_cols:
                raise InvalidArgumentError(f"A has {A.shape[1]} columns, the model {self._num_cols}")
            indices = A.indices
        m = A.shape[0]
        start = self._num_rows
        if m == 0:
            return np.zeros(0, dtype=np.int64)
        lower = np.broadcast_to(np.asarray(lower, dtype=np.float64), (m,)).copy()
        upper = np.broadcast_to(np.asarray(upper, dtype=np.float64), (m,)).copy()
        self.highs.addRows(
            m,
            lower,
            upper,
            int(A.nnz),
            A.indptr[:-1].astype(np.int32),
            np.asarray(indices, dtype=np.int32),
            A.data.astype(np.float64),
        )
        self._num_rows += m
        return np.arange(start, start + m, dtype=np.int64)

    def add_row(self, lower: float, upper: float, cols, vals) -> int:
        """Add one row ``lower <= vals . v[cols] <= upper``; return its index."""
        cols = np.asarray(cols, dtype=np.int32)
        self.highs.addRow(float(lower), float(upper), cols.size, cols, np.asarray(vals, dtype=np.float64))
        self._num_rows += 1
        return self._num_rows - 1

    def truncate_rows(self, k: int) -> None:
        """Delete every row from index ``k`` on."""
        if self._num_rows > k:
            n = self._num_rows - k
            self.highs.deleteRows(n, np.arange(k, self._num_rows, dtype=np.int32))
            self._num_rows = k

    def change_col_bounds(self, cols, lower, upper) -> None:
        cols = np.asarray(cols, dtype=np.int32).reshape(-1)
        if cols.size == 0:
            return
        lo = np.broadcast_to(np.asarray(lower, dtype=np.float64), cols.shape).copy()
        hi = np.broadcast_to(np.asarray(upper, dtype=np.float64), cols.shape).copy()
        self.highs.changeColsBounds(cols.size, cols, lo, hi)

    def change_row_bounds(self, rows, lower, upper) -> None:
        rows = np.asarray(rows, dtype=np.int32).reshape(-1)
        if rows.size == 0:
            return
        lo = np.broadcast_to(np.asarray(lower, dtype=np.float64), rows.shape).copy()
        hi = np.broadcast_to(np.asarray(upper, dtype=np.float64), rows.shape).copy()
        self.highs.changeRowsBounds(rows.size, rows, lo, hi)

    # ---------------------------------------------------------------- objective
    def set_objective(self, cols, coefs, *, offset: float = 0.0, maximize: bool = True) -> None:
        """Replace the objective by ``sum coefs * v[cols] + offset`` (duplicate columns add up)."""
        cols = np.asarray(cols, dtype=np.int64).reshape(-1)
        coefs = np.broadcast_to(np.asarray(coefs, dtype=np.float64), cols.shape)
        if self._obj_cols.size:
            self.highs.changeColsCost(
                self._obj_cols.size, self._obj_cols.astype(np.int32), np.zeros(self._obj_cols.size)
            )
        uniq, inv = np.unique(cols, return_inverse=True)
        c = np.zeros(uniq.size)
        np.add.at(c, inv, coefs)
        if uniq.size:
            self.highs.changeColsCost(uniq.size, uniq.astype(np.int32), c)
        self._obj_cols = uniq
        self.highs.changeObjectiveOffset(float(offset))
        self.highs.changeObjectiveSense(
            highspy.ObjSense.kMaximize if maximize else highspy.ObjSense.kMinimize
        )
        self._maximize = bool(maximize)

    def optimize_affine(self, cols, w, b: float = 0.0, *, maximize: bool = True,
                        time_limit: Optional[float] = None) -> Optional[float]:
        """Proven optimum of ``w . v[cols] + b``; None unless the solve finished.

        For a MILP the dual bound is returned (sound), not the incumbent.
        """
        w = np.asarray(w, dtype=np.float64)
        nz = np.flatnonzero(w)
        self.set_objective(np.asarray(cols)[nz], w[nz], offset=float(b), maximize=maximize)
        res = self.solve(time_limit=time_limit)
        if res.status != SolveStatus.OPTIMAL:
            return None
        return res.dual_bound

    # ---------------------------------------------------------------- warm starts
    def get_basis(self) -> Optional[tuple]:
        """The simplex basis of the last LP solve as ``(col_status, row_status)`` int8 arrays
        (HiGHS's ``HighsBasisStatus`` codes; picklable), or None if there is no valid basis."""
        b = self.highs.getBasis()
        if not b.valid:
            return None
        return (np.fromiter((int(x) for x in b.col_status), dtype=np.int8, count=len(b.col_status)),
                np.fromiter((int(x) for x in b.row_status), dtype=np.int8, count=len(b.row_status)))

    def set_basis(self, basis: tuple, *, extend: bool = False) -> bool:
        """Start the next LP solve from ``basis`` (from :meth:`get_basis` on a model with the same
        columns and rows). Returns False, leaving the solver as it was, if HiGHS rejects it.

        ``extend=True``: ``basis`` is that of a model whose columns and rows are the first ones of
        this model (this model was built from it by adding columns and rows); the added rows'
        slacks are basic and the added columns nonbasic at a finite bound (zero if free), which
        is again a basis (the added slacks complete the old basis matrix)."""
        cols, rows = (np.asarray(a, dtype=np.int64) for a in basis)
        if extend and cols.size <= self._num_cols and rows.size <= self._num_rows:
            status = highspy.HighsBasisStatus
            lp = self.highs.getLp()
            lo = np.asarray(lp.col_lower_)[cols.size:]
            hi = np.asarray(lp.col_upper_)[cols.size:]
            new = np.where(np.isfinite(lo), int(status.kLower),
                           np.where(np.isfinite(hi), int(status.kUpper), int(status.kZero)))
            cols = np.concatenate([cols, new])
            rows = np.concatenate([rows, np.full(self._num_rows - rows.size, int(status.kBasic))])
        if cols.size != self._num_cols or rows.size != self._num_rows:
            raise InvalidArgumentError(f"basis of {cols.size} columns and {rows.size} rows for a model of "
                                       f"{self._num_cols} columns and {self._num_rows} rows")
        status = highspy.HighsBasisStatus
        b = highspy.HighsBasis()
        b.col_status = [status(int(x)) for x in cols]
        b.row_status = [status(int(x)) for x in rows]
        b.valid = True
        return self.highs.setBasis(b) == highspy.HighsStatus.kOk

    # ---------------------------------------------------------------- solving
    def solve(
        self,
        *,
        time_limit: Optional[float] = None,
        mip_rel_gap: Optional[float] = None,
        cutoff: Optional[float] = None,
        target: Optional[float] = None,
    ) -> SolveResult:
        """Run HiGHS; return a :class:`SolveResult` with the values of all columns.

        Parameters
        ----------
        time_limit : float, optional
            Seconds for this solve (default: the model's ``time_limit``, else none).
        mip_rel_gap : float, optional
            Relative MIP gap at which HiGHS may stop (the dual bound stays sound).
        cutoff : float, optional
            MILP only: search only solutions at least as good as ``cutoff`` (>= for a
            maximisation); ``infeasible`` then proves the optimum is worse.
        target : float, optional
            MILP only: stop at the first solution at least as good as ``target``.

        Raises
        ------
        Interrupted
            Ctrl-C arrived during the solve; ``exc.partial`` holds the result so far.
        """
        tl = self.time_limit if time_limit is None else time_limit
        tl = float(tl) if tl is not None else INF
        if tl != self._time_limit_set:
            self._set("time_limit", tl)
        if mip_rel_gap is not None:
            self._set("mip_rel_gap", float(mip_rel_gap))
        use_cut = self.is_mip and cutoff is not None
        use_target = self.is_mip and target is not None
        # HiGHS's MIP presolve checks neither the time limit everywhere (upstream issues #1501,
        # #2226) nor the interrupt callbacks: on a dense 784-input encoding (470k nonzeros) it
        # took 8.8 s of a 0.7 s limit and removed no row, and a Ctrl-C in it waited 6-12 s on a
        # 784-300-300-10 net. A large MILP runs without it, unless the caller chose.
        no_presolve = (self.is_mip and not self._presolve_chosen
                       and self.highs.getNumNz() >= PRESOLVE_MAX_NONZEROS)
        if no_presolve:
            self.highs.setOptionValue("presolve", "off")
        if use_cut:
            bound = (_cutoff_sign() if self._maximize else 1.0) * float(cutoff)
            self._set("objective_bound", bound)
        if use_target:
            self._set("objective_target", float(target))
        t0 = time.perf_counter()
        try:
            interrupted = self._run()
        finally:
            if no_presolve:
                self.highs.setOptionValue("presolve", "choose")
            if use_cut:
                self._set("objective_bound", INF)
            if use_target:
                self._set("objective_target", -INF if self._maximize else INF)
        res = self._result(time.perf_counter() - t0)
        if interrupted:  # HiGHS's own status then varies by version ("Interrupted by user", "Not Set")
            if res.status is not SolveStatus.INTERRUPTED:  # HiGHS kept no sound partial information
                res = replace(res, status=SolveStatus.INTERRUPTED, dual_bound=None, mip_gap=None)
            self.highs.clearSolver()  # the next solve starts afresh
            raise Interrupted("the solve was interrupted", partial=res)
        return res

    def _run_direct(self) -> None:
        global _THREADS
        h = self.highs
        st = h.run()
        if (st == highspy.HighsStatus.kError and h.getModelStatus() == highspy.HighsModelStatus.kNotset
                and _THREADS == 1):
            # this thread's HiGHS scheduler was started elsewhere with HiGHS's default thread count
            # (e.g. by the user's own HiGHS model): follow it from now on
            _THREADS = 0
            h.setOptionValue("threads", 0)
            h.run()

    def _run(self) -> bool:
        """Run the solve; True if Ctrl-C stopped it.

        The solve runs in the calling (main) thread with a temporary SIGINT handler that
        only sets a flag; HiGHS's interrupt callbacks (Python code, run by the solving
        thread) let that handler run and then ask HiGHS to stop. Running HiGHS in a
        worker thread instead leaves its thread pool joinable at exit when interrupted,
        and the process aborts ("terminate called without an active exception"). A process
        that ignores SIGINT (a background job of a non-interactive shell inherits ``SIG_IGN``)
        gets no handler: it ignored Ctrl-C outside the solves, and now inside them too.
        """
        guarded = (
            self._interruptible
            and (self.is_mip or self._num_rows >= _THREADED_ROWS)
            and threading.current_thread() is threading.main_thread()
        )
        if not guarded:
            self._run_direct()
            return False
        if not self._subscribed:
            for cb in (self.highs.cbSimplexInterrupt, self.highs.cbIpmInterrupt, self.highs.cbMipInterrupt):
                cb.subscribe(self._interrupt_event)
            self._subscribed = True
        self._stop.clear()
        previous = signal.getsignal(signal.SIGINT)
        if previous is signal.SIG_IGN:  # this process ignores Ctrl-C (e.g. a background job): so does the solve
            self._run_direct()
            return False
        try:
            signal.signal(signal.SIGINT, lambda signum, frame: self._stop.set())
        except (ValueError, OSError):  # not allowed here: solve without the guard
            self._run_direct()
            return False
        try:
            self._run_direct()
        finally:
            signal.signal(signal.SIGINT, previous)
        return self._stop.is_set()

    def _interrupt_event(self, e) -> None:
        if self._stop.is_set():
            e.interrupt()

    def _result(self, seconds: float) -> SolveResult:
        h = self.highs
        ms = h.getModelStatus()
        status = _STATUS.get(ms, SolveStatus.OTHER)
        if not self.is_mip:
            return self._lp_result(ms, status, seconds)
        info = h.getInfo()
        maximize = self._maximize
        has_sol = info.primal_solution_status == 2  # kSolutionStatusFeasible
        values = np.array(h.getSolution().col_value, dtype=np.float64) if has_sol else None
        objective = float(info.objective_function_value) if has_sol else None
        db = float(info.mip_dual_bound)
        dual_bound = db if math.isfinite(db) else None
        gap = float(info.mip_gap) if math.isfinite(info.mip_gap) else None
        nodes = int(info.mip_node_count)
        if status == SolveStatus.INFEASIBLE:
            dual_bound = -INF if maximize else INF
        if status == SolveStatus.OPTIMAL and dual_bound is None:
            dual_bound = objective
        if status == SolveStatus.OPTIMAL and objective is None:
            return self._without_solution(ms, values, seconds, nodes)
        return SolveResult(
            status, h.modelStatusToString(ms), objective, dual_bound, values, seconds, maximize, gap, nodes
        )

    def _without_solution(self, ms, values, seconds: float, nodes: int) -> SolveResult:
        """HiGHS can end a badly scaled model "Optimal" in its scaled form while the unscaled
        solution violates the constraints (seen with weights from 1e-6 to 1e6): no solution, no
        bound; the caller keeps what it had (status ``other``)."""
        return SolveResult(SolveStatus.OTHER, f"{self.highs.modelStatusToString(ms)} without a feasible solution",
                           None, None, values, seconds, self._maximize, None, nodes)

    def _lp_result(self, ms, status: SolveStatus, seconds: float) -> SolveResult:
        """The result of an LP: the same fields as a MILP's, read without ``getInfo`` (a small LP
        re-solved from a warm basis takes about as long as that call)."""
        h = self.highs
        maximize = self._maximize
        has_sol = h.getInfoValue("primal_solution_status")[1] == 2  # kSolutionStatusFeasible
        values = np.array(h.getSolution().col_value, dtype=np.float64) if has_sol else None
        objective = float(h.getObjectiveValue()) if has_sol else None
        if status == SolveStatus.OPTIMAL and objective is None:
            return self._without_solution(ms, values, seconds, 0)
        if status == SolveStatus.OPTIMAL:
            dual_bound, gap = objective, 0.0
        elif status == SolveStatus.INFEASIBLE:
            dual_bound, gap = (-INF if maximize else INF), None
        else:
            dual_bound, gap = None, None
        text = _STATUS_TEXT.get(ms)
        if text is None:
            text = _STATUS_TEXT[ms] = h.modelStatusToString(ms)
        return SolveResult(status, text, objective, dual_bound, values, seconds, maximize, gap, 0)
