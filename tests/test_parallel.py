"""The parallel engine (mipnet.parallel) and the analyses run on it, on a real Dask cluster.

One LocalCluster of 2 worker processes (threads_per_worker=1) for the whole session. Every
parallel result is compared with the serial one computed here (same count and patterns,
same bounds, same sweep rows), witnesses are re-checked in float64, a worker is killed
mid-run, and a time limit returns a certified lower bound.
"""

from __future__ import annotations

import concurrent.futures as cf
import inspect
import json
import os
import subprocess
import time

import numpy as np
import pytest

from mipnet.core.domain import Box
from mipnet.core.errors import InvalidArgumentError, MipnetError
from mipnet.core.network import Network
from mipnet.core.numerics import check_witnesses
from mipnet.parallel import InProcess, as_executor, connect, report_progress, run_units, workers_of

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="session")
def client():
    from mipnet.parallel import local_cluster

    with local_cluster(2) as c:
        yield c


def _profiler_enabled():
    import dask

    return dask.config.get("distributed.worker.profile.enabled")


def _quiet_settings():
    import dask

    from mipnet.parallel.executor import QUIET_CALLBACKS

    return {k: dask.config.get(k) for k in QUIET_CALLBACKS}


def test_local_cluster_workers_run_without_the_profiler(client):
    """The statistical profiler (10 ms stack samples) is off on local_cluster's workers, their
    periodic callbacks run at QUIET_CALLBACKS's intervals, and the caller's dask config is left as
    it was."""
    import dask

    from mipnet.parallel.executor import QUIET_CALLBACKS

    assert set(client.run(_profiler_enabled).values()) == {False}
    assert list(client.run(_quiet_settings).values()) == [QUIET_CALLBACKS] * 2
    assert dask.config.get("distributed.worker.profile.enabled") is True
    assert dask.config.get("distributed.admin.tick.interval") != QUIET_CALLBACKS["distributed.admin.tick.interval"]


# ---------------------------------------------------------------------------- units for the engine tests
def sum_unit(task, deadline):
    """Sum of range(a, b); more than 8 numbers is 'too long' (unfinished)."""
    a, b = task
    return (b - a <= 8), sum(range(a, b)) if b - a <= 8 else None


def halve(task):
    a, b = task
    m = (a + b) // 2
    return [(a, m), (m, b)]


def dying_unit(task, deadline):
    """Kills its worker process the first time it runs (a marker file says it did)."""
    marker, value, inner = task
    if inner is not None:
        fn, t = inner
        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        return fn(t, deadline)
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return True, value


def interrupting_unit(task, deadline):
    if task == 2:
        raise KeyboardInterrupt
    return True, task


def slow_unit(task, deadline):
    """Works in steps of 20 ms until the deadline or 50 steps."""
    for i in range(50):
        if deadline is not None and time.time() >= deadline:
            return False, i
        time.sleep(0.02)
    return True, 50


def reporting_unit(task, deadline):
    """Reports its steps while it runs (a unit whose progress is only known from inside)."""
    for i in range(3):
        report_progress(steps=task * 100 + i + 1)
        time.sleep(0.6)
    return True, task


# ---------------------------------------------------------------------------- the engine
def test_as_executor_and_validation(client):
    assert isinstance(as_executor(None), InProcess)
    with cf.ThreadPoolExecutor(2) as ex:
        assert as_executor(ex) is ex and workers_of(ex) == 2
    assert isinstance(as_executor(client), cf.Executor)
    assert workers_of(as_executor(client)) == 2
    with pytest.raises(InvalidArgumentError, match="executor must be"):
        as_executor("four")
    with pytest.raises(InvalidArgumentError, match="bad scheduler address"):
        with connect("nonsense"):
            pass
    with pytest.raises(MipnetError, match="cannot reach the Dask scheduler"):
        with connect("tcp://127.0.0.1:9", timeout=0.5):
            pass


@pytest.mark.parametrize("kind", ["none", "threads", "dask"])
def test_resplitting_merges_in_key_order(kind, client):
    units = [(0, 20), (20, 23), (23, 100)]
    ex = {"none": None, "threads": cf.ThreadPoolExecutor(2), "dask": client}[kind]
    rep = run_units(sum_unit, units, ex, split=halve)
    assert rep.complete and sum(rep.values) == sum(range(100))
    assert rep.splits > 0 and rep.submitted == len(rep.runs) + rep.splits
    starts = [r.unit[0] for r in rep.runs]
    assert starts == sorted(starts)  # key order is the order of the work, whatever finished first
    # without split the long units stay unfinished: a partial result, said so
    rep2 = run_units(sum_unit, units, ex)
    assert rep2.status == "unfinished" and sum(r.finished for r in rep2.runs) == 1


def length_unit(task, deadline):
    return True, int(task.size)


def test_large_units_reach_dask_without_a_warning(client):
    """A unit of tens of MB (a dealt frontier) is sent as it is: Dask's "large graph" advice is
    not printed on the user's stderr."""
    import warnings

    big = np.zeros(3_000_000)  # 24 MB
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rep = run_units(length_unit, [big, big[:10]], client)
    assert rep.complete and rep.values == [big.size, 10]
    assert not [w for w in caught if "large graph" in str(w.message)]


def malloc_unit(task, deadline):
    from mipnet.core import malloc

    return True, (os.environ.get("MALLOC_TRIM_THRESHOLD_"), malloc.MALLOC_TUNED)


def test_units_on_dask_workers_fix_mallocs_thresholds(client):
    """A Dask worker imports mipnet with its first unit, which fixes malloc's mmap and trim
    thresholds (numpy temporaries were mapped and unmapped each time: equivalence boxes ran 1.2x
    slower in a worker's thread, 2x with Dask's MALLOC_TRIM_THRESHOLD_, which local_cluster's
    workers start without; a worker that a default nanny starts keeps that variable, and the
    call overrides it)."""
    import logging

    assert run_units(malloc_unit, [0], client).values == [(None, True)]
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as c:
        rep = run_units(malloc_unit, [0, 1], c)
    assert rep.values == [("65536", True)] * 2


def test_global_time_limit(client):
    t0 = time.perf_counter()
    rep = run_units(slow_unit, [None] * 6, client, time_limit=0.3)
    assert rep.status == "time_limit" and time.perf_counter() - t0 < 5
    assert all(not r.finished for r in rep.runs)


@pytest.mark.parametrize("kind", ["none", "dask"])
def test_running_units_feed_the_progress_bar(kind, client, capsys):
    report_progress(steps=1)  # outside a unit: nothing to reach, no error
    rep = run_units(reporting_unit, [1, 2], None if kind == "none" else client, progress=True, desc="work",
                    describe=lambda runs: f"{len(runs)} done")
    assert rep.complete and rep.values == [1, 2]
    err = capsys.readouterr().err
    # the bar showed a running unit's own report before that unit finished
    assert "running 1: steps 10" in err or "running 2: steps" in err, err[-2000:]
    assert "2 done" in err


def test_ctrl_c_returns_what_finished():
    rep = run_units(interrupting_unit, range(5), None)
    assert rep.status == "interrupted" and rep.values == [0, 1]


def test_ctrl_c_during_a_region_count_gives_a_certified_lower_bound():
    import signal
    import threading

    from mipnet.analyses.regions import count_regions

    net, dom = Network.random((5, 16, 16, 1), seed=0), Box(-1, 1, dim=5)
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        res = count_regions(net, dom, executor=InProcess(), return_regions=True)
    finally:
        timer.cancel()
    assert res.status == "interrupted" and not res.exact
    if res.regions:
        X = np.stack([r.interior_point for r in res.region_list])
        assert check_witnesses(net, dom, X, res.patterns()).all()


# ---------------------------------------------------------------------------- region counts
def _patterns(res) -> set:
    return {bytes(np.packbits(p)) for p in res.patterns()}


@pytest.mark.parametrize("widths, seed", [((4, 8, 6, 1), 2)])
def test_region_count_matches_serial(widths, seed, client):
    from mipnet.analyses.regions import count_regions
    from mipnet.analyses.regions.parallel import count_regions_parallel

    net = Network.random(widths, seed=seed)
    dom = Box(-1, 1, dim=widths[0])
    serial = count_regions(net, dom, return_regions=True)
    par = count_regions(net, dom, return_regions=True, executor=client)
    assert serial.exact and par.exact and par.regions == serial.regions
    assert _patterns(par) == _patterns(serial)
    X = np.stack([r.interior_point for r in par.region_list])
    assert check_witnesses(net, dom, X, par.patterns()).all()  # the one float64 check
    # small units: each hands on the cells it did not reach (its frontier) instead of being re-split
    # and re-run; the result (witnesses included) does not depend on the executor
    rep = []
    a = count_regions_parallel(net, dom, counter=count_regions, executor=client, unit_regions=40,
                               return_regions=True, report=rep)
    b = count_regions_parallel(net, dom, counter=count_regions, executor=None, unit_regions=40,
                               return_regions=True)
    assert a.exact and a.regions == serial.regions and rep[0].splits == 0
    assert sum(len(r.value["frontier"]) > 0 for r in rep[0].runs) >= 2  # several units handed work on
    assert np.array_equal(a.patterns(), b.patterns())
    assert all(np.array_equal(r.interior_point, s.interior_point) for r, s in zip(a.region_list, b.region_list))


def test_region_count_killed_worker_and_time_limit(client, tmp_path):
    from mipnet.analyses.regions import count_regions
    from mipnet.analyses.regions.parallel import region_unit, split_prefix

    net = Network.random((4, 8, 8, 1), seed=0)
    dom = Box(-1, 1, dim=4)
    serial = count_regions(net, dom)
    opts = {"counter": count_regions, "method": "fast", "unit_regions": 10_000, "tol": 1e-12, "milp_margin": 1e-8, "tolerances": None}
    prefixes = split_prefix(net, dom, ())
    marker = tmp_path / "died"
    tasks = [(str(marker) if i == 0 else __file__, None, (region_unit, (net, dom, p, opts)))
             for i, p in enumerate(prefixes)]  # the first unit kills its worker once
    rep = run_units(dying_unit, tasks, client)
    assert rep.complete and marker.exists()
    assert sum(v["P"].shape[0] for v in rep.values) == serial.regions
    # a time limit far below the work: a lower bound of certified regions, within the limit
    big = Network.random((5, 16, 16, 1), seed=0)
    t0 = time.perf_counter()
    part = count_regions(big, Box(-1, 1, dim=5), executor=client, time_limit=1.0, return_regions=True)
    assert time.perf_counter() - t0 < 8
    assert not part.exact and part.status == "time_limit"
    if part.regions:
        X = np.stack([r.interior_point for r in part.region_list])
        assert check_witnesses(big, Box(-1, 1, dim=5), X, part.patterns()).all()


# ---------------------------------------------------------------------------- LP bounds
def test_lp_bounds_groups_match_serial(client):
    from mipnet.bounds.lp import lp_bounds
    from mipnet.bounds.lp_parallel import lp_bounds_parallel

    net = Network.random((12, 20, 16, 3), seed=3)
    dom = Box(-1, 1, dim=12)
    serial = lp_bounds(net, dom)
    par = lp_bounds_parallel(net, dom, executor=client, group_size=6)
    inproc = lp_bounds_parallel(net, dom, group_size=6)
    pre = net.preactivations(dom.sample(5000, seed=0))
    for s, p, q, z in zip(serial.layers, par.layers, inproc.layers, pre):
        assert np.array_equal(p.lower, q.lower) and np.array_equal(p.upper, q.upper)  # executor-independent
        np.testing.assert_allclose(p.lower, s.lower, atol=1e-7, rtol=1e-7)
        np.testing.assert_allclose(p.upper, s.upper, atol=1e-7, rtol=1e-7)
        assert (z >= p.lower).all() and (z <= p.upper).all()  # sound on samples
    assert par.lp_solves == serial.lp_solves == inproc.lp_solves


def test_lp_bounds_parallel_sign_only_uses_witnesses():
    """Sign-only groups get the signs that samples and the gradient search show (run once, in the
    caller): the same stable sets as the serial pass, with far fewer LPs than without witnesses."""
    from mipnet.bounds.lp import lp_bounds
    from mipnet.bounds.lp_parallel import lp_bounds_parallel
    from mipnet.bounds.symbolic import symbolic_bounds
    from mipnet.core.bounds import classify_neurons

    net = Network.random((10, 40, 40, 30, 2), seed=5)
    dom = Box(-1, 1, dim=10)
    start = symbolic_bounds(net, dom)
    serial = lp_bounds(net, dom, initial=start, sign_only=True)
    par = lp_bounds_parallel(net, dom, initial=start, sign_only=True, group_size=8)
    blind = lp_bounds_parallel(net, dom, initial=start, sign_only=True, group_size=8, witnesses=0)
    for s, p, q in zip(serial.layers[:-1], par.layers[:-1], blind.layers[:-1]):
        assert np.array_equal(classify_neurons(s.lower, s.upper), classify_neurons(p.lower, p.upper))
        assert np.array_equal(classify_neurons(q.lower, q.upper), classify_neurons(p.lower, p.upper))
    assert par.lp_solves < blind.lp_solves
    pre = net.preactivations(dom.sample(5000, seed=0))
    assert all((z >= p.lower).all() and (z <= p.upper).all() for z, p in zip(pre, par.layers))
    with pytest.raises(ValueError, match="witnesses"):
        lp_bounds_parallel(net, dom, witnesses=-1)


@pytest.mark.parametrize("start", ["symbolic", "alpha"])
def test_lp_bounds_parallel_start_is_lp_bounds_start(start):
    """``start`` as in lp_bounds: the same starting bounds, so the same LPs and (to the LP tolerance)
    the same bounds, in-process; a wrong name is an error."""
    from mipnet.bounds.lp import lp_bounds
    from mipnet.bounds.lp_parallel import lp_bounds_parallel

    net, dom = Network.random((6, 40, 80, 3), seed=1), Box(-1, 1, dim=6)
    serial = lp_bounds(net, dom, start=start)
    par = lp_bounds_parallel(net, dom, start=start, group_size=12)
    assert par.lp_solves == serial.lp_solves
    for s, p in zip(serial.layers, par.layers):
        np.testing.assert_allclose(p.lower, s.lower, atol=1e-6, rtol=1e-6)
        np.testing.assert_allclose(p.upper, s.upper, atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="start"):
        lp_bounds_parallel(net, dom, start="exact")


# ---------------------------------------------------------------------------- stable neurons
def test_stability_units_match_serial(client, tmp_path):
    from mipnet.analyses.stability import find_stable_neurons
    from mipnet.core.domain import LinfBall
    from mipnet.io import load_network

    shared = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "models", "equivalence")
    net = load_network(os.path.join(shared, "mnist8x8_teacher_64-32-16-10.onnx"))
    dom = LinfBall(np.full(64, 8.0), 1.0, 0, 16)
    # interval bounds, no gradient search or ascent, no branch and bound: the MILPs decide most neurons
    kw = dict(bounds="ia", search_steps=0, samples=50, branching=False, ascent=False)
    serial = find_stable_neurons(net, dom, **kw)
    assert serial.complete and serial.num_milps > 10
    for ex in (client, InProcess()):
        par = find_stable_neurons(net, dom, executor=ex, **kw)
        assert par.complete
        for a, b in zip(serial.states, par.states):
            assert np.array_equal(a, b)  # the same exact decision, whatever the executor
        par.check(net, dom.sample(20000, seed=1), dom)  # stable claims and bounds hold on samples; witnesses
    assert {"milp", "witness"} <= {p for ls in par.layers for p in ls.proof}
    with pytest.raises(InvalidArgumentError, match="executor= runs the per-neuron MILPs"):
        find_stable_neurons(net, dom, method="one_milp", executor=client)
    # the installed command on the session's cluster
    c = tmp_path / "c.npy"
    np.save(c, np.full(64, 8.0))
    out = subprocess.run(["mipnet", "stable", os.path.join(shared, "mnist8x8_teacher_64-32-16-10.onnx"),
                          "--center", str(c), "--radius", "1", "--clip", "0", "16", "--bounds", "ia",
                          "--scheduler", client.scheduler.address, "--json"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["status"] == "complete"
    assert doc["num_stable"] == serial.num_stable and doc["num_unknown"] == 0


# ---------------------------------------------------------------------------- equivalence
def test_equivalence_branch_and_bound_on_dask(client):
    from mipnet.analyses import equivalence

    if "executor" not in inspect.signature(equivalence.verify_equivalence).parameters:
        pytest.skip("verify_equivalence takes no executor yet (the branch and bound with executor= is "
                    "another session's work); this test runs once it is merged")
    net = Network.random((3, 6, 2), seed=0)
    W = [w.copy() for w, _ in net.layers]
    other = Network(W, [b + 1e-3 * (i == len(W) - 1) for i, (_, b) in enumerate(net.layers)])
    dom = Box(-1, 1, dim=3)
    for b_net in (net, other):
        s = equivalence.verify_equivalence(net, b_net, dom)
        p = equivalence.verify_equivalence(net, b_net, dom, executor=client)
        assert p.verdict == s.verdict


def test_distributed_branch_and_bound_matches_serial(client):
    """Units of the input branch and bound on 2 Dask workers (subtrees of 2 s, their open boxes
    dealt out again): the proof closes the same boxes as in-process with the same bound; a too
    small eps is refuted by a float64-checked witness; a time limit leaves a sound bound and
    open boxes."""
    from mipnet.analyses.bab import BabOptions
    from mipnet.analyses.equivalence import verify_equivalence

    f = Network.random([3, 30, 30, 2], seed=0)
    g = Network.random([3, 40, 2], seed=1)
    dom = Box(-1, 1, dim=3)
    X = dom.sample(20000, seed=0, include_vertices=True)
    gap = np.abs(f.forward(X) - g.forward(X)).max()
    opts = BabOptions(milp_unstable=0)
    kw = dict(mode="epsilon", engine="bab", bab_options=opts, samples=0)
    serial = verify_equivalence(f, g, dom, epsilon=1.02 * gap, **kw)
    par = verify_equivalence(f, g, dom, epsilon=1.02 * gap, executor=client, **kw)
    assert serial.verdict == par.verdict == "equivalent"
    assert par.search["boxes_closed"] == serial.search["boxes_closed"] > 50 and par.search["boxes_open"] == 0
    assert par.gap_upper_bound == pytest.approx(serial.gap_upper_bound, rel=1e-9)
    assert gap <= par.gap_upper_bound <= 1.02 * gap + 1e-6
    low = verify_equivalence(f, g, dom, epsilon=0.9 * gap, executor=client, **kw)
    assert low.verdict == "not_equivalent"
    x = low.counterexample
    assert np.abs(f.forward(x) - g.forward(x)).max() > 0.9 * gap and np.all(np.abs(x) <= 1)
    cut = verify_equivalence(f, g, dom, epsilon=1.0001 * gap, executor=client, time_limit=0.5, **kw)
    if cut.verdict == "unknown":
        assert cut.status == "time_limit" and cut.search["boxes_open"] > 0
        assert gap <= cut.gap_upper_bound < np.inf


def test_branch_and_bound_unit_shares_its_boxes_only_when_a_worker_idles(client):
    """On Dask a B&B unit works on its subtree until the caller's event says a worker idles: with
    the event set it returns its open boxes after SLICE_MIN seconds; with it clear it runs to the
    end of its subtree (the proof), so the frontier travels only when someone needs a share."""
    from distributed import Event

    from mipnet.analyses.bab import BabOptions, evaluate_box, subtree_unit
    from mipnet.analyses.differential import DiffPair
    from mipnet.analyses.properties import LinfGap

    f = Network.random([3, 30, 30, 2], seed=0)
    g = Network.random([3, 40, 2], seed=1)
    dom = Box(-1, 1, dim=3)
    X = dom.sample(20000, seed=0, include_vertices=True)
    prop = LinfGap(1.02 * float(np.abs(f.forward(X) - g.forward(X)).max())).with_tol(1e-6)
    pair, opts = DiffPair.build(f, g, dom, spec=prop.spec(2)), BabOptions(milp_unstable=0, vector_batch=8)
    common = dict(domain=None, sensitivity=np.ones(3), aligned=False)
    root = evaluate_box(pair, prop, dom.lower, dom.upper, opts, 0, **common)
    name = "mipnet-test-hunger"
    ev = Event(name, client=client)
    try:
        ev.clear()
        done, whole = client.submit(subtree_unit, (pair, prop, opts, common, [root], 8, 0.0, name), None,
                                    pure=False).result()
        assert done and not whole["open"] and whole["closed"] > 50  # (with an event, the slice is a minimum)
        ev.set()
        done, part = client.submit(subtree_unit, (pair, prop, opts, common, [root], 8, 0.0, name), None,
                                   pure=False).result()
        assert not done and len(part["open"]) > 0 and part["evaluated"] == 2 < whole["evaluated"]  # one round: the root's children
    finally:
        ev.clear()


# ---------------------------------------------------------------------------- sweeps
@pytest.fixture(scope="module")
def tiny_model():
    from mipnet.nn.data import load_dataset
    from mipnet.nn.workflow import train_dense

    ds = load_dataset("digits", limit=200)
    return ds, train_dense(ds, (64, 4, 10), epochs=3, seed=0, num_threads=1, optimizer="adam").model


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_gap_sweep_matches_serial(tiny_model, client):
    from mipnet.nn.sweeps import gap_sweep

    ds, model = tiny_model
    kw = dict(methods=("random", "magnitude"), densities=(0.5,), masks_per_rate=2, finetune_epochs=(0,),
              time_limit_per_milp=20.0)
    serial = gap_sweep(model, ds, **kw)
    seen = []
    par = gap_sweep(model, ds, executor=client, on_row=seen.append, **kw)
    assert len(par.rows) == 3 and _strip(par.rows) == _strip(serial.rows) and len(seen) == 3
    json.dumps(par.to_dict())


def test_sparsity_sweep_matches_serial(client):
    from mipnet.nn.data import load_dataset
    from mipnet.nn.workflow import sparsity_sweep

    ds = load_dataset("digits", limit=200)
    kw = dict(densities=(0.5,), methods=("uniform", "random"), seeds=(0, 1), epochs=1, finetune_epochs=1,
              num_threads=1)
    serial = sparsity_sweep(ds, (64, 8, 10), **kw)
    par = sparsity_sweep(ds, (64, 8, 10), executor=client, **kw)
    key = lambda r: (r.seed, r.method, r.density, r.accuracy_pruned, r.accuracy_finetuned)  # noqa: E731
    assert [key(r) for r in par.runs] == [key(r) for r in serial.runs]
    assert [d.test_accuracy for d in par.dense] == [d.test_accuracy for d in serial.dense]


# ---------------------------------------------------------------------------- CLI
def test_cli_workers_flags(client, tmp_path, capsys):
    from mipnet.cli import main
    from mipnet.io import save_network

    path = tmp_path / "net.npz"
    save_network(Network.random((3, 8, 6, 1), seed=5), path)
    assert main(["regions", "count", str(path), "--box", "-1", "1", "--json"]) == 0
    serial = json.loads(capsys.readouterr().out)
    # --scheduler: the session's cluster (what --workers N starts, without the start-up time)
    address = client.scheduler.address
    assert main(["regions", "count", str(path), "--box", "-1", "1", "--json", "--scheduler", address]) == 0
    par = json.loads(capsys.readouterr().out)
    assert par["regions"] == serial["regions"] and par["exact"] and "on 2 workers" in par["message"]
    assert main(["regions", "count", str(path), "--box", "-1", "1", "--json", "--workers", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["regions"] == serial["regions"]
    assert main(["regions", "count", str(path), "--box", "-1", "1", "--workers", "0"]) == 3
    assert "--workers: must be >= 1" in capsys.readouterr().err
    assert main(["regions", "count", str(path), "--box", "-1", "1", "--scheduler", "nonsense"]) == 3
    assert "bad scheduler address" in capsys.readouterr().err
    assert main(["bounds", str(path), "--box", "-1", "1", "--method", "ia", "--workers", "2"]) == 3
    assert "only used with --method lp" in capsys.readouterr().err
    # --exact-lp holds on workers too: every unstable neuron's LPs to optimality, not the sign-only
    # default (a net where alpha-CROWN pays, so that the default would be sign-only)
    save_network(Network.random((6, 40, 80, 3), seed=1), path)
    runs = {}
    for extra in ([], ["--scheduler", address]):
        for exact in ([], ["--exact-lp"]):
            assert main(["bounds", str(path), "--box", "-1", "1", "--method", "lp", "--json"] + exact + extra) == 0
            runs[bool(extra), bool(exact)] = json.loads(capsys.readouterr().out)
    assert runs[False, True]["lp_solves"] > runs[False, False]["lp_solves"]  # the default is sign-only here
    assert runs[True, True]["lp_solves"] == runs[False, True]["lp_solves"]
    for a, b in zip(runs[True, True]["layers"], runs[False, True]["layers"]):
        assert a.get("unstable") == b.get("unstable") and a["mean_width"] == pytest.approx(b["mean_width"], rel=1e-6)


def test_cli_verify_on_a_scheduler_that_stops_early_leaves_stderr_clean(client, tmp_path):
    """`--scheduler`: a search stopped at a counterexample cancels its units, and the client side
    logged tornado's 'Exception in callback ... ConnectionPool.gather ... Stream is closed'
    traceback in about a third of the runs."""
    from mipnet.io import save_network

    s = Network.random([64, 50, 50, 10], seed=7)
    rng = np.random.default_rng(5)
    q = Network([w * (1 + 1e-4 * rng.normal(size=w.shape)) for w in s.weights], [x.copy() for x in s.biases])
    save_network(s, tmp_path / "a.npz")
    save_network(q, tmp_path / "b.npz")
    for _ in range(3):
        p = subprocess.run(["mipnet", "verify", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--box", "0", "1",
                            "--mode", "top1", "--engine", "bab", "--scheduler", client.scheduler.address, "--json"],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 1 and json.loads(p.stdout)["verdict"] == "not_equivalent"
        assert "Traceback" not in p.stderr and "ERROR" not in p.stderr, p.stderr
