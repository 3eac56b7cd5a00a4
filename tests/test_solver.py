"""The solver layer: silence, time limits, cutoffs and targets, statuses, interrupts."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import highspy
import numpy as np
import pytest

from mipnet.core.errors import Interrupted, InvalidArgumentError
from mipnet.solver import INF, LinearModel, SolveStatus, check_options


def _run_py(code: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, **kw)


def test_no_output_on_stdout_in_a_fresh_process():
    # highspy 1.16 prints a banner on the first Highs() of a process; nothing may reach stdout
    out = _run_py("""
        import numpy as np
        from mipnet.solver import LinearModel
        m = LinearModel()
        x = m.add_cols(np.zeros(2), np.ones(2), integer=True)
        m.add_rows([-np.inf], [1.5], np.ones((1, 2)), cols=x)
        m.set_objective(x, [1.0, 2.0], maximize=True)
        r = m.solve()
        import json; print(json.dumps({"status": r.status.value, "objective": r.objective}))
    """)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"status": "optimal", "objective": 2.0}


def test_pyomo_solve_keeps_stdout_clean():
    out = _run_py("""
        import numpy as np, json
        import pyomo.environ as pyo
        from mipnet import Network, Box
        from mipnet.milp.pyomo import build_pyomo_model, solve_pyomo
        net = Network([np.array([[1.0], [-1.0]]), np.array([[1.0, 1.0]])], [np.zeros(2), np.zeros(1)])
        m = build_pyomo_model(net, Box(-1, 2, dim=1))
        m.obj = pyo.Objective(expr=m.nn.out[0], sense=pyo.maximize)
        solve_pyomo(m)
        print(json.dumps({"max": round(pyo.value(m.obj), 9)}))
    """)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"max": 2.0}  # max |x| on [-1, 2]


def _knapsack(n: int = 60, seed: int = 0) -> tuple[LinearModel, np.ndarray]:
    """A hard-ish 0/1 knapsack with correlated weights (many nodes for HiGHS)."""
    rng = np.random.default_rng(seed)
    w = rng.integers(1000, 2000, size=n).astype(float)
    v = w + rng.integers(-5, 6, size=n)
    m = LinearModel()
    x = m.add_binaries(n)
    m.add_rows([-INF], [np.floor(w.sum() / 2) + 0.5], w[None, :], cols=x)
    m.set_objective(x, v, maximize=True)
    return m, x


def _market_split(m: int = 4, n: int = 40, seed: int = 0) -> LinearModel:
    """Cornuejols-Dawande market split: sum_j a_ij x_j = floor(sum_j a_ij / 2), x binary.

    Tiny, and famously hard for branch and bound (minutes to hours for m = 4, n = 40).
    """
    rng = np.random.default_rng(seed)
    A = rng.integers(0, 100, size=(m, n)).astype(float)
    rhs = np.floor(A.sum(axis=1) / 2)
    model = LinearModel()
    x = model.add_binaries(n)
    s = model.add_cols(np.zeros(m), np.full(m, INF))  # slacks: min total violation
    model.add_rows(rhs, rhs, np.hstack([A, -np.eye(m)]), cols=np.concatenate([x, s]))
    model.set_objective(s, np.ones(m), maximize=False)
    return model


def test_statuses_and_bounds():
    m = LinearModel()
    x = m.add_cols([0.0, 0.0], [3.0, 3.0], integer=True)
    m.add_rows([-INF], [4.5], np.ones((1, 2)), cols=x)
    m.set_objective(x, [1.0, 1.0], maximize=True)
    r = m.solve()
    assert r.status is SolveStatus.OPTIMAL and r.status == "optimal" and r.proven
    assert r.objective == pytest.approx(4.0) and r.dual_bound == pytest.approx(4.0)
    # cutoff above the optimum: proves max < 4.5 (infeasible, or presolve finds the optimum 4)
    r = m.solve(cutoff=4.5)
    assert r.proven and (r.status is SolveStatus.INFEASIBLE or r.objective == pytest.approx(4.0))
    assert r.dual_bound < 4.5
    r = m.solve(cutoff=3.5)
    assert r.objective == pytest.approx(4.0)
    # options are reset after a cutoff
    assert m.solve().objective == pytest.approx(4.0)
    assert r.to_dict()["status"] == "optimal"


def test_basis_round_trip_starts_a_copy_of_the_lp_warm():
    """A basis taken from one model (as int8 arrays, picklable) starts an identical model at its
    optimum: the same value with no simplex iteration; a basis of another shape is refused."""
    import pickle

    rng = np.random.default_rng(0)
    A, c = rng.normal(size=(30, 20)), rng.normal(size=20)

    def model():
        m = LinearModel(options={"presolve": "off"})
        x = m.add_cols(-np.ones(20), np.ones(20))
        m.add_rows(-INF * np.ones(30), np.ones(30), A, cols=x)
        m.set_objective(x, c, maximize=True)
        return m

    first = model()
    assert first.get_basis() is None  # nothing solved yet
    v = first.solve().objective
    basis = pickle.loads(pickle.dumps(first.get_basis()))
    assert basis[0].dtype == np.int8 and basis[0].size == 20 and basis[1].size == 30
    second = model()
    assert second.set_basis(basis)
    r = second.solve()
    assert r.status is SolveStatus.OPTIMAL and r.objective == pytest.approx(v, abs=1e-9)
    assert second.highs.getInfo().simplex_iteration_count == 0
    with pytest.raises(InvalidArgumentError, match="basis of 20 columns and 29 rows"):
        second.set_basis((basis[0], basis[1][:-1]))


def test_extended_basis_starts_a_larger_model_at_the_same_optimum():
    """A basis of a model's first columns and rows, extended (``extend=True``: added slacks basic,
    added columns at a finite bound), is accepted by a model built on top of it, and the solve from
    there reaches the cold start's optimum; a free added column is nonbasic at zero."""
    rng = np.random.default_rng(1)
    A, A2, c = rng.normal(size=(30, 20)), rng.normal(size=(12, 26)), rng.normal(size=26)

    def model(extra: bool):
        m = LinearModel(options={"presolve": "off"})
        x = m.add_cols(-np.ones(20), np.ones(20))
        m.add_rows(-INF * np.ones(30), np.ones(30), A, cols=x)
        if not extra:
            m.set_objective(x, c[:20], maximize=True)
            return m
        y = m.add_cols(np.r_[np.zeros(5), -INF], np.r_[np.full(5, 2.0), INF])  # the last one free
        m.add_rows(-INF * np.ones(12), np.ones(12), A2, cols=np.r_[x, y])
        m.add_rows(np.array([-3.0]), np.array([3.0]), np.ones((1, 1)), cols=y[-1:])
        m.set_objective(np.r_[x, y], c, maximize=True)
        return m

    small = model(False)
    assert small.solve().status is SolveStatus.OPTIMAL
    basis = small.get_basis()
    cold = model(True).solve()
    big = model(True)
    assert big.set_basis(basis, extend=True)
    b = big.highs.getBasis()
    assert [int(s) for s in b.col_status[20:]] == [int(highspy.HighsBasisStatus.kLower)] * 5 + \
        [int(highspy.HighsBasisStatus.kZero)]
    assert all(int(s) == int(highspy.HighsBasisStatus.kBasic) for s in b.row_status[30:])
    warm = big.solve()
    assert warm.status is SolveStatus.OPTIMAL and warm.objective == pytest.approx(cold.objective, abs=1e-7)
    with pytest.raises(InvalidArgumentError, match="basis of 26 columns"):
        small.set_basis(big.get_basis(), extend=True)  # a larger basis is no prefix


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_process_that_ignores_sigint_solves_through_it():
    """Started with SIGINT ignored (a background job), the process ignores Ctrl-C inside a solve
    too: the MILP runs to its time limit instead of stopping at the signal."""
    code = """
        import json, signal, sys
        sys.path.insert(0, %r)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        from test_solver import _market_split
        print("ready", flush=True)
        r = _market_split().solve(time_limit=2.5)
        print(json.dumps({"status": r.status.value}))
    """ % os.path.dirname(__file__)
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["status"] == "time_limit"


def test_target_stops_at_first_good_solution():
    m, _ = _knapsack(40)
    full = m.solve(time_limit=20)
    r = m.solve(target=0.5 * full.objective)
    assert r.has_solution and r.objective >= 0.5 * full.objective - 1e-6


def test_model_time_limit_is_the_default_of_every_solve():
    m, _ = _knapsack(200, seed=1)
    m.time_limit = 0.05
    t0 = time.perf_counter()
    r = m.solve()
    assert time.perf_counter() - t0 < 5
    assert r.status in (SolveStatus.TIME_LIMIT, SolveStatus.OPTIMAL)
    if r.status is SolveStatus.TIME_LIMIT:
        assert not r.proven
        # a time-limited dual bound still bounds every solution
        assert r.dual_bound is None or r.objective is None or r.dual_bound >= r.objective - 1e-6


def test_time_limit_option_never_outlives_its_solve():
    # a time limit given as a HiGHS option is the model's until a solve sets its own: each solve
    # runs under the limit it was asked for (solve only touches the option when that changes)
    m = LinearModel(options={"time_limit": 5.0})
    x = m.add_cols(np.zeros(2), np.ones(2))
    m.add_rows([-INF], [1.5], np.ones((1, 2)), cols=x)
    m.set_objective(x, [1.0, 2.0], maximize=True)
    m.solve()
    assert m.highs.getOptionValue("time_limit")[1] == INF
    m.solve(time_limit=3.0)
    assert m.highs.getOptionValue("time_limit")[1] == 3.0
    m.set_options({"time_limit": 7.0})
    m.solve(time_limit=3.0)
    assert m.highs.getOptionValue("time_limit")[1] == 3.0


def test_options_checked_by_name():
    assert check_options({"mip_rel_gap": 1e-3})["mip_rel_gap"] == 1e-3
    with pytest.raises(InvalidArgumentError, match="not a HiGHS option"):
        check_options({"no_such_option": 1})
    with pytest.raises(InvalidArgumentError, match="must be a dict"):
        check_options([("mip_rel_gap", 1)])
    with pytest.raises(InvalidArgumentError, match="rejected option"):
        LinearModel(options={"presolve": 12})
    with pytest.raises(InvalidArgumentError, match="'threads' is fixed by mipnet"):
        check_options({"threads": 4})


def test_models_solve_after_and_before_a_foreign_highs_scheduler():
    # HiGHS makes its task scheduler per calling thread at the first solve; mipnet's models ask for
    # one thread. Another HiGHS user of the thread that started the scheduler with HiGHS's default
    # must not break mipnet's solves (nor the reverse): both orders, each in a fresh process.
    code = """
        import json, highspy, numpy as np
        from mipnet.solver import LinearModel, new_highs
        def foreign():
            h = new_highs(); h.setOptionValue("threads", 0)
            h.addVar(0.0, 1.0); h.changeColCost(0, -1.0)
            h.run(); return h.getModelStatus() == highspy.HighsModelStatus.kOptimal
        def ours():
            m = LinearModel()
            x = m.add_cols(np.zeros(2), np.ones(2))
            m.add_rows([-np.inf], [1.5], np.ones((1, 2)), cols=x)
            m.set_objective(x, [1.0, 2.0], maximize=True)
            return m.solve().objective
        first, second = (foreign, ours) if FOREIGN_FIRST else (ours, foreign)
        print(json.dumps([first(), second(), ours()]))
    """
    for foreign_first in (True, False):
        out = _run_py(code.replace("FOREIGN_FIRST", str(foreign_first)))
        assert out.returncode == 0, out.stderr
        res = json.loads(out.stdout)
        ours = [r for r in res if not isinstance(r, bool)]
        assert all(r is True for r in res if isinstance(r, bool)) and ours == [2.5, 2.5], res


def test_large_milp_skips_presolve():
    """HiGHS's MIP presolve can overrun a time limit many times over (8.8 s of a 0.7 s limit on a
    784-input stability MILP) and does not see Ctrl-C: a large MILP, with or without a time limit,
    solves without it, then the option is back; a small one keeps it."""
    from mipnet.solver.highs import PRESOLVE_MAX_NONZEROS

    rng = np.random.default_rng(0)
    m, n = 250, 480
    assert m * n >= PRESOLVE_MAX_NONZEROS
    A = rng.uniform(1.0, 2.0, size=(m, n))
    big = LinearModel()
    x = big.add_binaries(n)
    big.add_rows(np.full(m, -INF), A.sum(axis=1) / 2, A, cols=x)
    big.set_objective(x, rng.uniform(0.5, 1.5, n), maximize=True)
    seen = []  # the presolve option as HiGHS's MIP callbacks see it during each solve

    def watch(model):
        model.highs.cbMipInterrupt.subscribe(lambda e: seen.append(model.highs.getOptionValue("presolve")[1]))

    watch(big)
    t0 = time.perf_counter()
    r = big.solve(time_limit=1.0)
    assert time.perf_counter() - t0 < 10
    assert seen and set(seen) == {"off"}
    assert big.highs.getOptionValue("presolve")[1] == "choose"  # restored for the next solve
    if r.has_solution:  # whatever the status, a found solution is feasible
        assert np.all(A @ np.round(r.values[x]) <= A.sum(axis=1) / 2 + 1e-6)
    seen.clear()  # without a time limit too (stopped at its first solution): a Ctrl-C in that presolve waited 6-12 s
    big.solve(target=0.0)
    assert seen and set(seen) == {"off"}
    assert big.highs.getOptionValue("presolve")[1] == "choose"
    small, _ = _knapsack(30)
    watch(small)
    seen.clear()
    small.solve(time_limit=10.0)
    assert seen and set(seen) == {"choose"}


def test_interrupted_is_a_keyboard_interrupt_not_an_exception():
    assert issubclass(Interrupted, KeyboardInterrupt) and not issubclass(Interrupted, Exception)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_stops_a_long_milp_promptly():
    code = """
        import json, sys, time
        import numpy as np
        sys.path.insert(0, %r)
        from test_solver import _market_split
        from mipnet.core.errors import Interrupted
        m = _market_split()
        print("ready", flush=True)
        t0 = time.perf_counter()
        try:
            m.solve(time_limit=120)
            print(json.dumps({"interrupted": False}))
        except Interrupted as exc:
            r = exc.partial
            print(json.dumps({"interrupted": True, "status": r.status.value,
                              "dual_bound": r.dual_bound, "objective": r.objective}))
    """ % os.path.dirname(__file__)
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    time.sleep(1.5)
    if p.poll() is not None:
        pytest.skip("the MILP finished before the signal")
    t0 = time.perf_counter()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    elapsed = time.perf_counter() - t0
    res = json.loads(out.strip().splitlines()[-1])
    if not res["interrupted"]:
        pytest.skip("the MILP finished before the signal")
    assert elapsed < 2.0, f"took {elapsed:.2f} s to stop"
    assert res["status"] == "interrupted"
    # the partial answer is a bound: for this minimisation the dual bound is below the incumbent
    if res["dual_bound"] is not None and res["objective"] is not None:
        assert res["dual_bound"] <= res["objective"] + 1e-6
