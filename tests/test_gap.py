"""Pruning gaps: the worst case of mipnet.gap against independent routes.

Routes: the exact 1-D and 2-D partitions of mipnet.slices applied to the *difference
network* (both nets side by side, output f - g: its activation regions are the common
refinement of both partitions, so f - g is affine on each and peaks at a vertex),
dense random sampling, the data points, float64 forward passes of every witness.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from mipnet import Network
from mipnet.cli import main
from mipnet.core.domain import Box, LinfBall
from mipnet.core.errors import InvalidArgumentError, InvalidDomainError, InvalidNetworkError
from mipnet.analyses.gap import data_gap_stats, pruning_gap
from mipnet.io import save_network
from mipnet.analyses.slices import plane_regions, segment_regions


def _magnitude(net: Network, density: float) -> Network:
    """Keep the largest |w| of every hidden weight matrix (output layer dense)."""
    Ws = []
    for i, W in enumerate(net.weights):
        if i == len(net.weights) - 1:
            Ws.append(W)
            continue
        k = max(1, int(round(density * W.size)))
        thr = np.sort(np.abs(W).ravel())[::-1][k - 1]
        Ws.append(np.where(np.abs(W) >= thr, W, 0.0))
    return Network(tuple(Ws), net.biases)


def _difference_network(f: Network, g: Network) -> Network:
    """h(x) = f(x) - g(x) as one ReLU network: hidden layers side by side (block diagonal)."""
    L = len(f.layers)
    Ws, bs = [], []
    for l, ((Wf, bf), (Wg, bg)) in enumerate(zip(f.layers, g.layers)):
        if l == L - 1:
            Ws.append(np.hstack([Wf, -Wg]))
            bs.append(bf - bg)
        elif l == 0:
            Ws.append(np.vstack([Wf, Wg]))
            bs.append(np.concatenate([bf, bg]))
        else:
            Z1, Z2 = np.zeros((Wf.shape[0], Wg.shape[1])), np.zeros((Wg.shape[0], Wf.shape[1]))
            Ws.append(np.block([[Wf, Z1], [Z2, Wg]]))
            bs.append(np.concatenate([bf, bg]))
    return Network(tuple(Ws), tuple(bs))


def _recheck(res, f, g):
    w = res.witness
    assert res.domain.contains(w, tol=1e-9)
    val = float(np.abs(f.forward(w) - g.forward(w)).max())
    assert abs(val - res.lower) <= 1e-9 * (1 + abs(val))
    assert res.lower <= res.upper


# ---------------------------------------------------------------------------- exact against geometry
def test_difference_network_is_f_minus_g():
    f = Network.random((3, 5, 4, 2), seed=0)
    g = _magnitude(f, 0.5)
    X = Box(-1, 1, dim=3).sample(50, seed=0)
    assert np.allclose(_difference_network(f, g).forward(X), f.forward(X) - g.forward(X), atol=1e-12)


def test_1d_exact_maximum_from_segment_breakpoints():
    f = Network.random((1, 8, 8, 2), seed=0)
    g = _magnitude(f, 0.5)
    seg = segment_regions(_difference_network(f, g), [-1.0], [1.0])
    T = seg.breakpoints
    H = f.forward(-1.0 + 2.0 * T[:, None]) - g.forward(-1.0 + 2.0 * T[:, None])
    exact = float(np.abs(H).max())
    per_output = np.abs(H).max(axis=0)
    res = pruning_gap(f, g, Box(-1, 1, dim=1), samples=100, per_output=True)
    _recheck(res, f, g)
    assert res.exact and res.status == "complete"
    assert res.lower == pytest.approx(exact, rel=1e-7, abs=1e-9)
    assert res.upper == pytest.approx(exact, rel=1e-5, abs=2e-6)
    assert np.allclose(res.per_output_lower, per_output, rtol=1e-7, atol=1e-9)
    assert np.all(res.per_output_upper >= per_output - 1e-9)
    assert np.allclose(res.per_output_upper, per_output, rtol=1e-5, atol=2e-6)


def test_2d_exact_maximum_from_plane_vertices():
    f = Network.random((2, 10, 10, 3), seed=0)
    g = _magnitude(f, 0.5)
    part = plane_regions(_difference_network(f, g), [0.0, 0.0], [1.0, 0.0], [0.0, 1.0], bounds=((-1, 1), (-1, 1)))
    V = part.to_input(part.vertices)
    exact = float(np.abs(f.forward(V) - g.forward(V)).max())
    res = pruning_gap(f, g, Box(-1, 1, dim=2), samples=100)
    _recheck(res, f, g)
    assert res.exact
    assert res.lower == pytest.approx(exact, rel=1e-6, abs=1e-8)
    assert res.upper >= exact - 1e-9 and res.upper == pytest.approx(exact, rel=1e-5, abs=2e-6)


# ---------------------------------------------------------------------------- sampling and data
def test_upper_bound_dominates_samples_and_data():
    f = Network.random((8, 12, 3), seed=3)
    g = _magnitude(f, 0.4)
    dom = Box(-1, 1, dim=8)
    data = dom.sample(300, seed=7)
    res = pruning_gap(f, g, dom, data=data, samples=50, seed=1)
    _recheck(res, f, g)
    S = dom.sample(10_000, seed=11)
    sampled = float(np.abs(f.forward(S) - g.forward(S)).max())
    assert res.upper >= sampled - 1e-9
    assert res.upper >= res.data["max"] - 1e-9 and res.lower >= res.data["max"] - 1e-12
    assert res.data["in_domain"] == 300 and res.exact
    assert res.ratio_lower >= 1.0 and res.ratio_upper >= res.ratio_lower
    # per output: proven bounds dominate the sampled maxima
    assert np.all(res.per_output_upper >= np.abs(f.forward(S) - g.forward(S)).max(axis=0) - 1e-9)
    d = res.to_dict()
    json.dumps(d)
    assert d["exact"] and d["data"]["n"] == 300
    text = str(res)
    assert "worst-case gap" in text and "worst case / data max" in text


@pytest.mark.parametrize("widths,seed", [((3, 8, 8, 2), 7), ((3, 8, 8, 2), 4), ((2, 6, 6, 2), 6)])
def test_huge_box_proven_bound_beats_every_sample(widths, seed):
    # on [-1e10, 1e10]^n HiGHS's absolute tolerances are meaningless: once a "proven" upper
    # bound was beaten by 1.8% by a random sample (seed 7), once the LP bounds crashed (seed 4)
    f = Network.random(widths, seed=seed)
    g = _magnitude(f, 0.5)
    dom = Box(-1e10, 1e10, dim=widths[0])
    res = pruning_gap(f, g, dom, samples=200)
    _recheck(res, f, g)
    S = dom.sample(100_000, seed=7, include_vertices=True)
    D = np.abs(f.forward(S) - g.forward(S))
    assert res.upper >= D.max(axis=1).max()
    assert np.all(res.per_output_upper >= D.max(axis=0))
    if res.exact:
        assert res.status == "complete" and res.upper - res.lower <= 1e-5 * res.upper


def test_identical_networks_have_zero_gap():
    f = Network.random((6, 8, 3), seed=2)
    res = pruning_gap(f, f, Box(-1, 1, dim=6), data=Box(-1, 1, dim=6).sample(20, seed=0), epsilon=0.0)
    assert res.exact and res.lower == 0.0 and res.upper <= 1e-6
    assert res.num_milps == 0  # settled by the differential bounds
    assert res.certified and res.data["fraction_within"] == 1.0 and res.data["max"] == 0.0


def test_data_statistics_by_hand():
    F = np.array([[1.0, -2.0], [0.0, 0.0], [3.0, 1.0], [-4.0, 2.0]])
    G = np.array([[1.5, -2.0], [0.2, 0.0], [3.0, 0.0], [-4.0, 2.0]])
    s = data_gap_stats(F, G, epsilon=0.3, quantiles=(50, 100))
    gaps = np.array([0.5, 0.2, 1.0, 0.0])
    assert s["n"] == 4 and s["max"] == 1.0 and s["argmax"] == 2
    assert s["mean"] == pytest.approx(gaps.mean()) and s["p50"] == pytest.approx(np.median(gaps)) and s["p100"] == 1.0
    rel = np.array([0.5 / 2.0, 1.0 / 3.0, 0.0])  # the point with f = 0 is left out
    assert s["relative_mean"] == pytest.approx(rel.mean()) and s["relative_max"] == pytest.approx(1 / 3)
    assert s["fraction_within"] == 0.5
    assert s["max_per_output"] == [0.5, 1.0]


def test_data_outside_the_domain_counts_but_is_no_witness():
    f = Network.random((2, 16, 3), seed=0)
    g = _magnitude(f, 0.5)
    far = np.array([[5.0, 5.0], [-5.0, 4.0]])
    res = pruning_gap(f, g, Box(-1, 1, dim=2), data=far, samples=100)
    assert res.data["in_domain"] == 0 and res.data["n"] == 2
    assert any("outside D" in n for n in res.notes)
    _recheck(res, f, g)


def test_epsilon_certificate():
    f = Network.random((2, 16, 3), seed=0)
    g = _magnitude(f, 0.5)
    dom = Box(-1, 1, dim=2)
    exact = pruning_gap(f, g, dom).upper
    assert pruning_gap(f, g, dom, epsilon=exact * 1.01).certified is True
    assert pruning_gap(f, g, dom, epsilon=exact * 0.5).certified is False


def test_ball_domain_and_torch_style_inputs():
    f = Network.random((2, 16, 3), seed=4)
    g = _magnitude(f, 0.3)
    c = np.array([0.2, -0.1])
    dom = LinfBall(c, 0.1, -1, 1)
    res = pruning_gap(f, g, dom, data=c)
    _recheck(res, f, g)
    assert res.exact and res.lower >= res.data["max"] - 1e-12
    torch = pytest.importorskip("torch")
    from mipnet.io.torch import to_torch

    again = pruning_gap(to_torch(f, dtype=torch.float64), to_torch(g, dtype=torch.float64), dom, data=c)
    assert again.lower == pytest.approx(res.lower, rel=1e-12) and again.upper == pytest.approx(res.upper, rel=1e-9)
    S = dom.sample(5000, seed=0)
    assert res.upper >= np.abs(f.forward(S) - g.forward(S)).max() - 1e-9


# ---------------------------------------------------------------------------- time limits
def test_time_limit_reports_bounds():
    f = Network.random((8, 6, 6, 3), seed=0)
    g = _magnitude(f, 0.5)
    res = pruning_gap(f, g, Box(-1, 1, dim=8), time_limit=0.05, samples=20, ascent_starts=0)
    _recheck(res, f, g)
    assert not res.exact and res.status == "time_limit"
    assert res.lower < res.upper and np.isfinite(res.upper)
    S = Box(-1, 1, dim=8).sample(10_000, seed=3)
    assert res.upper >= np.abs(f.forward(S) - g.forward(S)).max() - 1e-9
    assert "between" in str(res) and "proven" in str(res)


# ---------------------------------------------------------------------------- validation
def test_validation_messages():
    f = Network.random((2, 4, 3), seed=0)
    with pytest.raises(InvalidNetworkError, match="same input and output sizes"):
        pruning_gap(f, Network.random((2, 4, 2), seed=0), Box(0, 1, dim=2))
    with pytest.raises(InvalidNetworkError, match="mipnet.Network or a torch MLP"):
        pruning_gap(f, "net.onnx", Box(0, 1, dim=2))
    with pytest.raises(InvalidDomainError, match="3 inputs"):
        pruning_gap(f, f, Box(0, 1, dim=3))
    with pytest.raises(InvalidArgumentError, match="time_limit must be a positive"):
        pruning_gap(f, f, Box(0, 1, dim=2), time_limit=0)
    with pytest.raises(InvalidArgumentError, match="epsilon must be a finite number >= 0"):
        pruning_gap(f, f, Box(0, 1, dim=2), epsilon=-1)
    with pytest.raises(InvalidArgumentError, match="2 features"):
        pruning_gap(f, f, Box(0, 1, dim=2), data=np.zeros((4, 3)))
    with pytest.raises(InvalidArgumentError, match="percentages"):
        pruning_gap(f, f, Box(0, 1, dim=2), quantiles=(50, 120))
    with pytest.raises(InvalidArgumentError, match="mip_rel_gap"):
        pruning_gap(f, f, Box(0, 1, dim=2), mip_rel_gap=2)


# ---------------------------------------------------------------------------- CLI
def _pair_files(tmp_path):
    f = Network.random((2, 16, 3), seed=0)
    g = _magnitude(f, 0.5)
    save_network(f, tmp_path / "f.onnx")
    save_network(g, tmp_path / "g.onnx")
    return f, g


def test_cli_box_json(tmp_path, capsys):
    f, g = _pair_files(tmp_path)
    rc = main(["gap", str(tmp_path / "f.onnx"), str(tmp_path / "g.onnx"), "--box", "-1", "1", "--epsilon", "100",
               "--json"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    ref = pruning_gap(f, g, Box(-1, 1, dim=2))
    assert d["exact"] and d["certified"] is True
    assert d["upper"] == pytest.approx(ref.upper, rel=1e-5) and d["lower"] == pytest.approx(ref.lower, rel=1e-6)
    w = np.array(d["witness"])
    assert float(np.abs(f.forward(w) - g.forward(w)).max()) == pytest.approx(d["lower"], rel=1e-9)


def test_cli_ball_text_and_errors(tmp_path, capsys):
    _pair_files(tmp_path)
    np.save(tmp_path / "c.npy", np.array([0.1, 0.2]))
    a, b = str(tmp_path / "f.onnx"), str(tmp_path / "g.onnx")
    assert main(["gap", a, b, "--center", str(tmp_path / "c.npy"), "--radius", "0.2", "--clip", "-1", "1"]) == 0
    out = capsys.readouterr().out
    assert "worst-case gap on D (L-inf)" in out and "exact" in out
    assert main(["gap", a, b]) == 3
    assert "give an input domain" in capsys.readouterr().err
    assert main(["gap", a, b, "--box", "0", "1", "--limit", "5"]) == 3
    assert "go with --dataset" in capsys.readouterr().err
    save_network(Network.random((3, 4, 3), seed=0), tmp_path / "h.onnx")
    assert main(["gap", a, str(tmp_path / "h.onnx"), "--box", "0", "1"]) == 3
    assert "the gap compares the same inputs" in capsys.readouterr().err


def test_cli_dataset(tmp_path, capsys):
    f = Network.random((64, 6, 10), seed=0)
    g = _magnitude(f, 0.5)
    save_network(f, tmp_path / "f.npz")
    save_network(g, tmp_path / "g.npz")
    rc = main(["gap", str(tmp_path / "f.npz"), str(tmp_path / "g.npz"), "--dataset", "digits", "--limit", "40",
               "--time-limit", "20", "--json"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d["data"]["n"] == 40 and d["data"]["in_domain"] == 40  # default domain: the data box [0, 16]
    assert d["upper"] >= d["data"]["max"] - 1e-9 and d["lower"] >= d["data"]["max"] - 1e-9
    assert d["domain"]["upper"][0] == 16.0


# ---------------------------------------------------------------------------- sweeps (torch)
@pytest.fixture(scope="module")
def digits_small():
    from mipnet.nn.data import load_dataset
    from mipnet.nn.workflow import train_dense

    ds = load_dataset("digits", limit=300)
    model = train_dense(ds, (64, 4, 10), epochs=5, seed=0, num_threads=1, optimizer="adam").model
    return ds, model


def test_gap_sweep_rows_table_plot(digits_small, tmp_path):
    from mipnet.nn.sweeps import GapSweep, gap_sweep
    from mipnet.io.torch import from_torch

    ds, model = digits_small
    sw = gap_sweep(model, ds, methods=("random", "magnitude"), densities=(0.5, [0.3, 1.0]), masks_per_rate=2,
                   finetune_epochs=(0, 1), time_limit_per_milp=5.0)
    # magnitude does not depend on the seed: one mask; random: two; two stages each
    assert len(sw.rows) == (2 + 1) * 2 * 2
    assert {r["seed"] for r in sw.rows if r["method"] == "magnitude"} == {0}
    assert sw.domain["description"] == "box [0, 16]^64"
    f = from_torch(model)
    X = ds.X_test.astype(np.float64)
    for r in sw.rows:
        assert r["lower"] <= r["upper"] and r["lower"] >= r["data_max"] - 1e-9  # test data lie in the box
        assert r["ratio_lower"] == pytest.approx(r["lower"] / r["data_max"])
        assert 0 <= r["accuracy"] <= 1
    vec = [r for r in sw.rows if r["density_label"] == "0.3/1"]
    assert vec and all(r["achieved_densities"][1] == 1.0 for r in vec)
    assert all(abs(r["achieved_densities"][0] - 0.3) < 0.01 for r in vec)
    tab = sw.table()
    assert len(tab) == 2 * 2 * 2
    rnd = [t for t in tab if t["method"] == "random"]
    assert all(t["masks"] == 2 for t in rnd)
    # the 0-epoch row of a magnitude mask is the plain magnitude-pruned net: recompute its data gap
    from mipnet.nn.pruning import make_permanent, prune
    import copy

    m = copy.deepcopy(model)
    prune(m, "magnitude", 0.5)
    g = from_torch(make_permanent(m))
    row = [r for r in sw.rows if r["method"] == "magnitude" and r["density_label"] == "0.5"
           and r["finetune_epochs"] == 0][0]
    assert row["data_max"] == pytest.approx(float(np.abs(f.forward(X) - g.forward(X)).max()), rel=1e-9)
    d = sw.to_dict()
    json.dumps(d)
    again = GapSweep.from_dict(json.loads(json.dumps(d)))
    assert again.table() == tab
    assert "worst/data max" in str(sw)
    fig = sw.plot(tmp_path / "gap.png")
    assert (tmp_path / "gap.png").stat().st_size > 1000 and fig is not None


def test_layer_sensitivity(digits_small):
    from mipnet.nn.sweeps import layer_sensitivity

    ds, model = digits_small
    sens = layer_sensitivity(model, ds, density=0.3, time_limit_per_milp=5.0)
    assert [r["layer"] for r in sens.rows] == [0, 1]
    assert sens.rows[0]["achieved_densities"][1] == 1.0 and sens.rows[1]["achieved_densities"][0] == 1.0
    assert sens.allocation is not None and len(sens.allocation) == 2 and sens.allocation[-1] == 1.0
    assert sorted(sens.ranking) == [0, 1]
    # one hidden layer: the uniform and the allocated pruning are the same masks
    assert sens.uniform["lower"] == pytest.approx(sens.allocated["lower"])
    assert "most tolerant first" in str(sens)
    json.dumps(sens.to_dict())


def test_sweep_validation(digits_small):
    from mipnet.nn.sweeps import gap_sweep, layer_sensitivity

    ds, model = digits_small
    with pytest.raises(InvalidArgumentError, match="methods must be"):
        gap_sweep(model, ds, methods=("snip",))
    with pytest.raises(InvalidArgumentError, match=r"densities\[0\] = 1.5 must lie in \(0, 1\]"):
        gap_sweep(model, ds, densities=(1.5,))
    with pytest.raises(InvalidArgumentError, match="3 entries, the model has 2 weight matrices"):
        gap_sweep(model, ds, densities=([0.5, 0.5, 0.5],))
    with pytest.raises(InvalidArgumentError, match="increasing epoch counts"):
        gap_sweep(model, ds, finetune_epochs=(5, 0))
    with pytest.raises(InvalidArgumentError, match="masks_per_rate"):
        gap_sweep(model, ds, masks_per_rate=0)
    with pytest.raises(InvalidArgumentError, match="widths="):
        gap_sweep(None, ds)
    with pytest.raises(InvalidArgumentError, match="layers must be indices"):
        layer_sensitivity(model, ds, density=0.5, layers=[2])


def test_solver_options_are_passed_on():
    f = Network.random((2, 16, 3), seed=0)
    g = _magnitude(f, 0.5)
    ref = pruning_gap(f, g, Box(-1, 1, dim=2))
    res = pruning_gap(f, g, Box(-1, 1, dim=2), solver_options={"presolve": "off"})
    assert res.exact and res.upper == pytest.approx(ref.upper, rel=1e-6)
    with pytest.raises(ValueError, match="not a HiGHS option"):
        pruning_gap(f, g, Box(-1, 1, dim=2), solver_options={"no_such_option": 1})


def test_bounds_by_name_same_exact_gap_and_clear_errors():
    """The bounds method changes the MILPs' binaries and big-M, never the exact answer."""
    f = Network.random([4, 10, 10, 2], seed=11)
    W = [w.copy() for w in f.weights]
    W[1][np.abs(W[1]) < 0.2] = 0.0
    g = Network(W, list(f.biases))
    dom = Box(-1, 1, dim=4)
    res = {m: pruning_gap(f, g, dom, bounds=m) for m in ("ia", "alpha", "lp")}
    for r in res.values():
        assert r.exact
        assert float(np.abs(f.forward(r.witness) - g.forward(r.witness)).max()) == pytest.approx(r.lower, rel=1e-9)
    lows = [r.lower for r in res.values()]
    assert max(lows) - min(lows) <= 1e-5 * (1 + max(lows))
    with pytest.raises(InvalidArgumentError, match="unknown bounds method 'exact'"):
        pruning_gap(f, g, dom, bounds="exact")
    with pytest.raises(InvalidArgumentError, match="bounds must be a method name"):
        pruning_gap(f, g, dom, bounds=3)


# ---------------------------------------------------------------------------- badly scaled pairs (fuzzing)
def test_a_dead_neuron_with_a_huge_bias_does_not_make_the_milp_prove_a_false_bound():
    """A neuron dead on the domain (bias -1e6) once set the problem's output scale, so that the real
    gap (3.45e-4) fell below HiGHS's tolerances in the scaled units and the cutoff MILP "proved"
    eps = 0.95 x gap. Its value never reaches the output: the scale now ignores it."""
    from mipnet.analyses.equivalence import verify_equivalence
    from mipnet.analyses.joint import max_output_gap

    bias = np.array([0.0, -1e6])
    A = Network([np.array([[0.0, -0.002], [0.0, 0.0]]), np.array([[0.3, 0.0]])], [bias, np.zeros(1)])
    B = Network([np.array([[0.0008, -0.001], [0.0, 0.0]]), np.array([[0.25, 0.0]])], [bias, np.zeros(1)])
    dom = Box([-0.5, -0.7], [0.8, 0.6])
    gap = float(np.abs(A.forward(np.array([-0.5, -0.7])) - B.forward(np.array([-0.5, -0.7])))[0])  # a corner
    eps = 0.95 * gap
    for engine in ("milp", "bab"):
        r = verify_equivalence(A, B, dom, mode="epsilon", epsilon=eps, engine=engine)
        assert r.verdict == "not_equivalent" and r.gap_upper_bound >= gap - 1e-12
    g = max_output_gap(A, B, dom, threshold=eps)
    assert g.upper >= gap - 1e-12
    assert pruning_gap(A, B, dom).upper >= gap - 1e-12


def test_layers_of_very_different_magnitudes_give_bounds_not_false_proofs():
    """f = 0 against a 2-input chain whose layers grow from 1e3 to 1e11 on an L1 ball: one output
    scale left the first layer at 1e-8 in the MILP's units, where HiGHS's tolerances are 10 % errors,
    and pruning_gap claimed an exact 7.86e11 for a gap of 8e11 at a vertex of the ball. Now the MILPs'
    margins carry the amplified tolerance: bounds that hold, and no false `equivalent`."""
    from mipnet import L1Ball
    from mipnet.analyses.equivalence import verify_equivalence

    Z = np.zeros
    A = Network([Z((2, 2)), Z((2, 2)), Z((2, 2)), Z((1, 2))], [Z(2), Z(2), Z(2), Z(1)])
    B = Network([np.array([[0, -2000.0], [1000.0, -2000.0]]), np.array([[0, 0], [1e5, -2e4]]),
                 np.array([[0, 0], [0, 1e4]]), np.array([[0, 0.5]])], [Z(2), Z(2), Z(2), Z(1)])
    dom = L1Ball(np.zeros(2), 1.0)
    gap = abs(float(B.forward(np.array([0.0, -1.0]))[0]))  # 8e11 at a vertex of the ball
    assert gap == pytest.approx(8e11)
    pg = pruning_gap(A, B, dom)
    assert pg.upper >= gap * (1 - 1e-9)
    for engine in ("milp", "bab"):
        r = verify_equivalence(A, B, dom, mode="epsilon", epsilon=7e11, engine=engine)
        assert r.verdict != "equivalent" and r.gap_upper_bound >= gap * (1 - 1e-9)
        if r.verdict == "not_equivalent":
            x = r.counterexample
            assert dom.contains(x[None])[0] and abs(float(B.forward(x)[0])) > 7e11


def test_a_badly_scaled_pair_gets_a_sound_gap_instead_of_a_solver_error():
    """Weights from 1e-6 to 1e6 (a fuzzed pair): HiGHS ended some LPs of the bound tightening
    "Optimal" without a feasible solution, and the analyses raised SolverError. Such an LP now
    keeps the bound it had; the gap's bound holds on samples and its witness is re-checked."""
    from mipnet.analyses.equivalence import verify_equivalence

    A, B, dom = _stored_pair("badly_scaled_pair.npz", "a", "b")
    X = dom.sample(20000, seed=0, include_vertices=True)
    sampled = float(np.abs(A.forward(X) - B.forward(X)).max())
    pg = pruning_gap(A, B, dom)
    assert pg.upper >= sampled * (1 - 1e-9)
    w = pg.witness
    assert dom.contains(w[None])[0] and float(np.abs(A.forward(w) - B.forward(w)).max()) == pytest.approx(pg.lower)
    r = verify_equivalence(A, B, dom, mode="epsilon", epsilon=1.0, engine="milp")
    assert r.verdict in ("not_equivalent", "unknown")  # the sampled gap is far above 1
    assert sampled > 1.0


def _stored_pair(name, a, b):
    """Two nets and a box saved by a fuzzing run (tests/data): ``(net_a, net_b, box)``."""
    z = np.load(os.path.join(os.path.dirname(__file__), "data", name))
    depth = sum(1 for k in z.files if k.startswith(f"{a}_W"))
    A = Network([z[f"{a}_W{l}"] for l in range(depth)], [z[f"{a}_b{l}"] for l in range(depth)])
    B = Network([z[f"{b}_W{l}"] for l in range(depth)], [z[f"{b}_b{l}"] for l in range(depth)])
    return A, B, Box(z["lower"], z["upper"])


def test_huge_weights_give_a_gap_instead_of_a_failed_witness_check():
    """Weights ~1e8 (outputs ~1e32): the batched and the single forward pass round the gap of the
    chosen witness 1e-6 apart (relative), and pruning_gap raised 'the worst-case witness failed its
    float64 re-check'. The re-check is now relative to the outputs; the bound holds on samples."""
    f, g, dom = _stored_pair("huge_weights_pair.npz", "f", "g")
    X = dom.sample(20000, seed=0, include_vertices=True)
    sampled = float(np.abs(f.forward(X) - g.forward(X)).max())
    r = pruning_gap(f, g, dom, time_limit=30)
    assert r.upper >= sampled * (1 - 1e-6)
    w = r.witness
    assert dom.contains(w[None])[0] and float(np.abs(f.forward(w) - g.forward(w)).max()) == pytest.approx(r.lower, rel=1e-5)
