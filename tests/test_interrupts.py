"""Ctrl-C: every MILP analysis stops within 2 s and returns its partial answer as a bound.

Subprocess tests send SIGINT to a long run (equivalence of a net and a copy with every hidden
neuron doubled: equal on D, different widths, > 20 s to prove) and check the exit time, the
exit code and the partial JSON; in-process tests inject the interrupt at a chosen solve and
check what the partial result claims.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from mipnet import Box, Network
from mipnet.core.errors import Interrupted
from mipnet.solver.highs import LinearModel, SolveStatus

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

HERE = os.path.dirname(os.path.abspath(__file__))


def doubled(net: Network) -> Network:
    """The same function with every hidden neuron split in two halves (other widths, no differential bounds)."""
    Ws, bs = [], []
    L = len(net.layers)
    for l, (W, b) in enumerate(net.layers):
        if l == 0:
            Ws.append(np.vstack([W, W]))
            bs.append(np.concatenate([b, b]))
        elif l < L - 1:
            H = W / 2
            Ws.append(np.block([[H, H], [H, H]]))
            bs.append(np.concatenate([b, b]))
        else:
            Ws.append(np.hstack([W / 2, W / 2]))
            bs.append(b)
    return Network(Ws, bs)


def test_doubled_network_is_the_same_function():
    f = Network.random([8, 64, 64, 4], seed=0)
    X = Box(-1, 1, dim=8).sample(2000, seed=0)
    assert np.abs(f.forward(X) - doubled(f).forward(X)).max() < 1e-12


# ---------------------------------------------------------------------------- subprocesses
_PRELUDE = """
import json, sys
import numpy as np
sys.path.insert(0, {here!r})
from test_interrupts import doubled
from mipnet import Box, Network
f = Network.random([8, 64, 64, 4], seed=0)
g = doubled(f)
dom = Box(-1.0, 1.0, dim=8)
"""

# os._exit: HiGHS interrupted in its first seconds (presolve) can abort the interpreter's normal
# shutdown ("terminate called without an active exception", a solver-layer issue); the analysis'
# own behaviour, which these tests check, is complete once the JSON is printed
_EXIT = """
import os
print(json.dumps(res.to_dict()), flush=True)
os._exit(130 if str(res.status) == "interrupted" else 0)
"""


def _sigint_after(cmd, *, delay: float = 2.0, limit: float = 2.0, env=None):
    """Start ``cmd``, wait for "ready" on stderr, SIGINT ``delay`` s later; return (rc, stdout, stderr, exit s)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    err = []
    try:
        t_start = time.perf_counter()
        while True:  # the script (or the CLI's progress line) says when the work starts
            line = p.stderr.readline()
            err.append(line)
            if "ready" in line or not line or time.perf_counter() - t_start > 60:
                break
        time.sleep(delay)
        assert p.poll() is None, "finished before the signal: " + "".join(err)
        t0 = time.perf_counter()
        p.send_signal(signal.SIGINT)
        out, rest = p.communicate(timeout=60)
        seconds = time.perf_counter() - t0
    finally:
        if p.poll() is None:
            p.kill()
    return p.returncode, out, "".join(err) + rest, seconds


def _run_script(body: str, **kw):
    code = textwrap.dedent(_PRELUDE.format(here=HERE)) + textwrap.dedent(body) + textwrap.dedent(_EXIT)
    return _sigint_after([sys.executable, "-c", code], **kw)


def test_sigint_verify_equivalence_returns_partial_bounds():
    rc, out, err, seconds = _run_script("""
        from mipnet.analyses.equivalence import verify_equivalence
        print("ready", file=sys.stderr, flush=True)
        res = verify_equivalence(f, g, dom, mode="exact", time_limit=600)
    """)
    assert seconds < 2.0, err
    assert rc == 130, err
    assert "Traceback" not in err
    d = json.loads(out)
    assert d["verdict"] == "unknown" and d["status"] == "interrupted" and "interrupted" in d["message"]
    assert d["counterexample"] is None
    assert d["gap_upper_bound"] is not None and d["gap_upper_bound"] >= 0.0  # a proven bound, never "proven"


def test_sigint_max_output_gap_and_pruning_gap_return_partial_bounds():
    for body in ("""
        from mipnet.analyses.equivalence import max_output_gap
        print("ready", file=sys.stderr, flush=True)
        res = max_output_gap(f, g, dom)
    """, """
        from mipnet.analyses.gap import pruning_gap
        print("ready", file=sys.stderr, flush=True)
        res = pruning_gap(f, g, dom, samples=200)
    """):
        rc, out, err, seconds = _run_script(body)
        assert seconds < 2.0, err
        assert rc == 130, err
        d = json.loads(out)
        assert d["status"] == "interrupted"
        assert d.get("exact", False) is False and d["upper"] is not None
        assert d["lower"] is None or d["upper"] >= d["lower"]  # no input seen yet, or a bound above it


def test_sigint_stability_and_compression_return_proven_part():
    for body in ("""
        from mipnet.analyses.stability import find_stable_neurons
        from mipnet.bounds import interval_bounds
        net = Network.random([8, 64, 64, 64, 2], seed=0)
        b = interval_bounds(net, dom)  # weak bounds: slow MILPs
        print("ready", file=sys.stderr, flush=True)
        res = find_stable_neurons(net, dom, bounds=b, samples=0, search_steps=0)
    """, """
        from mipnet.analyses.compression import compress
        from mipnet.bounds import interval_bounds
        net = Network.random([8, 64, 64, 64, 2], seed=0)
        b = interval_bounds(net, dom)
        print("ready", file=sys.stderr, flush=True)
        res = compress(net, dom, bounds=b, samples=0, search_steps=0)
    """):
        rc, out, err, seconds = _run_script(body)
        assert seconds < 2.0, err
        assert rc == 130, err
        d = json.loads(out)
        st = d["stability"] if "stability" in d else d
        assert d["status"] == "interrupted" and st["status"] == "interrupted"
        assert st["num_unknown"] > 0 and not st["complete"]


def _mipnet_executable():
    exe = shutil.which("mipnet")
    if exe is None:
        cand = os.path.join(os.path.dirname(sys.executable), "mipnet")
        exe = cand if os.path.exists(cand) else None
    return exe


def test_sigint_cli_verify_exits_130_with_partial_json(tmp_path):
    exe = _mipnet_executable()
    if exe is None:
        pytest.skip("the mipnet command is not installed")
    from mipnet.io import save_network

    f = Network.random([8, 40, 40, 4], seed=0)  # > 25 s to prove; LP bounds in < 1 s
    save_network(f, tmp_path / "a.npz")
    save_network(doubled(f), tmp_path / "b.npz")
    cmd = [exe, "verify", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--mode", "exact",
           "--box", "-1", "1", "--json"]
    # no "ready" line from the CLI: wait for its start-up (imports, loading, LP bounds) and a few
    # seconds of MILP (HiGHS stopped in its first second can abort the interpreter's exit: see _EXIT)
    rc, out, err, seconds = _sigint_after(["sh", "-c", 'echo ready >&2; exec "$@"', "sh", *cmd], delay=6.0)
    assert seconds < 2.0, f"{seconds:.2f} s: {err}"
    assert "Traceback" not in err and "mipnet verify: interrupted" in err
    d = json.loads(out)  # the whole partial document came out before the exit
    assert d["status"] == "interrupted"
    if "verdict" in d:  # the analysis returned its partial answer
        assert d["verdict"] == "unknown" and d["gap_upper_bound"] >= 0.0
    if rc == -signal.SIGABRT and "terminate called without an active exception" in err:
        pytest.xfail("solver layer: after HiGHS is interrupted in some phases of a MILP, the interpreter's "
                     "exit aborts (std::terminate) instead of returning 130; the partial result was complete")
    assert rc == 130, f"exit status {rc}: {err}"


def test_sigint_cli_regions_count_on_workers_exits_promptly(tmp_path):
    """Ctrl-C with units running on 2 Dask workers: the nannies waited 4 s for each busy worker
    process (a unit in HiGHS or numpy does not see the cancel) and logged 'still alive after 4.0
    seconds, killing': the exit came 4.2-4.3 s after SIGINT. Busy workers are now killed at once."""
    exe = _mipnet_executable()
    if exe is None:
        pytest.skip("the mipnet command is not installed")
    from mipnet.io import save_network

    save_network(Network.random([20, 60, 60, 10], seed=1), tmp_path / "r.npz")
    cmd = [exe, "regions", "count", str(tmp_path / "r.npz"), "--box", "-1", "1", "--workers", "2", "--json"]
    rc, out, err, seconds = _sigint_after(["sh", "-c", 'echo ready >&2; exec "$@"', "sh", *cmd], delay=8.0)
    assert seconds < 3.5, f"{seconds:.2f} s: {err}"
    assert rc == 130 and "Traceback" not in err and "WARNING" not in err, err
    assert json.loads(out)["status"] == "interrupted"


# ---------------------------------------------------------------------------- in process
def _interrupt_solve(monkeypatch, at: int):
    """Make the ``at``-th MILP/LP solve from now on be stopped by Ctrl-C (after it ran)."""
    real = LinearModel.solve
    calls = []

    def solve(self, **kw):
        calls.append(1)
        res = real(self, **kw)
        if len(calls) == at:
            from dataclasses import replace

            raise Interrupted("test", partial=replace(res, status=SolveStatus.INTERRUPTED))
        return res

    monkeypatch.setattr(LinearModel, "solve", solve)
    return calls


def test_stability_interrupted_keeps_only_proven_claims(monkeypatch):
    from mipnet.analyses.stability import find_stable_neurons
    from mipnet.bounds import lp_bounds

    net = Network.random([4, 10, 10, 2], seed=0, bias_scale=1.0)
    dom = Box(-1.0, 1.0, dim=4)
    bounds = lp_bounds(net, dom)
    full = find_stable_neurons(net, dom, bounds=bounds, samples=0, search_steps=0, branching=False, ascent=False)
    assert full.complete and full.num_milps >= 3
    _interrupt_solve(monkeypatch, 2)
    part = find_stable_neurons(net, dom, bounds=bounds, samples=0, search_steps=0, branching=False, ascent=False)
    assert part.status == "interrupted" and not part.complete and part.num_milps == 2
    assert part.num_unknown > 0 and "interrupted" in part.message
    for a, b in zip(part.states, full.states):
        stable = np.isin(a, (-1, 1))
        np.testing.assert_array_equal(a[stable], b[stable])  # every claim made is a proven one
    X = dom.sample(20_000, seed=3, include_vertices=True)
    part.check(net, X, dom)  # witnesses, claims and bounds hold
    assert json.loads(json.dumps(part.to_dict()))["status"] == "interrupted"


def test_stability_interrupted_during_lp_bounds_uses_the_sound_partial_bounds(monkeypatch):
    from mipnet.analyses.stability import find_stable_neurons

    net = Network.random([4, 10, 10, 2], seed=0, bias_scale=1.0)
    dom = Box(-1.0, 1.0, dim=4)
    _interrupt_solve(monkeypatch, 3)  # the third LP of the bounds
    res = find_stable_neurons(net, dom)
    assert res.status == "interrupted" and res.num_milps == 0
    res.check(net, dom.sample(20_000, seed=3, include_vertices=True), dom)


@pytest.mark.parametrize("mode", ["exact", "top1"])
def test_verify_interrupted_is_unknown_with_sound_bounds(monkeypatch, mode):
    from mipnet.analyses.equivalence import verify_equivalence

    f = Network.random([2, 6, 6, 3], seed=1)
    g = doubled(f)
    dom = Box(-1.0, 1.0, dim=2)
    done = verify_equivalence(f, g, dom, mode=mode)
    assert done.verdict == "equivalent" and done.num_milps >= 2
    from mipnet.bounds import lp_bounds

    ba, bb = lp_bounds(f, dom), lp_bounds(g, dom)  # with the bounds given, the first solve is a MILP
    _interrupt_solve(monkeypatch, 1)
    res = verify_equivalence(f, g, dom, mode=mode, bounds_a=ba, bounds_b=bb, engine="milp")
    assert res.verdict == "unknown" and res.status == "interrupted" and res.counterexample is None
    assert res.num_milps == 1
    if mode == "exact":
        assert res.gap_upper_bound >= done.gap_upper_bound  # a sound bound, weaker than the proof
        assert np.isfinite(res.gap_upper_bound)
    else:
        assert res.gap_upper_bound == np.inf  # pairs not examined have no bound
    d = json.loads(json.dumps(res.to_dict()))
    assert d["verdict"] == "unknown" and d["status"] == "interrupted"


def test_gap_interrupted_is_a_bound(monkeypatch):
    from mipnet.analyses.gap import pruning_gap

    f = Network.random([3, 8, 8, 3], seed=1)
    W = [w.copy() for w in f.weights]
    W[0][np.abs(W[0]) < 0.4] = 0.0
    g = Network(W, list(f.biases))
    dom = Box(-1.0, 1.0, dim=3)
    done = pruning_gap(f, g, dom, samples=100)
    assert done.exact
    real = LinearModel.solve
    count = {"milp": 0}

    def solve(self, **kw):
        res = real(self, **kw)
        if self.is_mip:
            count["milp"] += 1
            if count["milp"] == 1:
                from dataclasses import replace

                raise Interrupted("test", partial=replace(res, status=SolveStatus.INTERRUPTED))
        return res

    monkeypatch.setattr(LinearModel, "solve", solve)
    res = pruning_gap(f, g, dom, samples=100)
    assert count["milp"] == 1
    assert res.status == "interrupted" and res.upper >= done.upper - 1e-9 and res.lower <= done.lower + 1e-12
    assert res.domain.contains(res.witness)
    assert json.loads(json.dumps(res.to_dict()))["status"] == "interrupted"


def test_network_specific_bound_interrupted_returns_its_partial_bound(monkeypatch):
    """Ctrl-C in a max-active MILP: the result was lost (the CLI printed only
    {"status": "interrupted"}); now the bound from what was proven, still an upper bound."""
    from mipnet.analyses.regions import count_regions, network_specific_bound
    from mipnet.bounds import lp_bounds

    net = Network.random([3, 8, 8, 6, 1], seed=2)
    dom = Box(-1.0, 1.0, dim=3)
    bounds = lp_bounds(net, dom)
    full = network_specific_bound(net, dom, bounds=bounds)
    assert full.status == "complete" and all(full.max_active_proven)
    _interrupt_solve(monkeypatch, 2)  # the second layer's MILP
    part = network_specific_bound(net, dom, bounds=bounds)
    assert part.status == "interrupted" and part.to_dict()["status"] == "interrupted"
    assert part.max_active_proven[0] and not any(part.max_active_proven[1:])
    assert part.value >= full.value >= count_regions(net, dom).regions


def test_network_specific_bound_interrupted_in_its_bounds_returns_a_bound(monkeypatch):
    """Ctrl-C before any LP (in alpha-CROWN's numpy steps, say) reached the caller as a bare
    interrupt; the bound now falls back to the symbolic bounds, still an upper bound."""
    import mipnet.bounds as mb
    from mipnet.analyses.regions import count_regions, network_specific_bound

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    net = Network.random([3, 8, 8, 6, 1], seed=2)
    dom = Box(-1.0, 1.0, dim=3)
    monkeypatch.setattr(mb, "lp_bounds", ctrl_c)  # (reduced_bounds imports it at each call)
    part = network_specific_bound(net, dom)
    assert part.status == "interrupted" and not any(part.max_active_proven)
    assert part.value >= count_regions(net, dom).regions
