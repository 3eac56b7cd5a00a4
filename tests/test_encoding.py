import numpy as np
import pyomo.environ as pyo
import pytest

from mipnet import Box, LinfBall, Network, Polytope, SolverError
from mipnet.bounds import interval_bounds, lp_bounds
from mipnet.milp.encoding import HighsModel
from mipnet.analyses.maximize import maximize_output
from mipnet.milp.pyomo import build_pyomo_model, solve_pyomo

from conftest import random_nets


@pytest.mark.parametrize("widths,seed", random_nets())
def test_highs_optimum_dominates_samples_and_is_attained(widths, seed):
    net = Network.random(widths, seed=seed)
    dom = Box(-1, 1, dim=widths[0])
    X = dom.sample(5000, seed=seed, include_vertices=True)
    F = net.forward(X)
    b = lp_bounds(net, dom)
    rng = np.random.default_rng(seed)
    for _ in range(2):
        c = rng.normal(size=net.output_dim)
        res, x = maximize_output(net, dom, c, bounds=b)
        assert res.status == "optimal" and res.proven
        assert res.objective >= (F @ c).max() - 1e-7
        assert abs(float(c @ net.forward(x)) - res.objective) <= 1e-6 * (1 + abs(res.objective))
        assert res.dual_bound >= res.objective - 1e-6 * (1 + abs(res.objective))


@pytest.mark.parametrize("widths,seed", random_nets()[:4])
def test_pyomo_and_highs_builders_agree(widths, seed):
    net = Network.random(widths, seed=seed)
    dom = Box(-1, 1, dim=widths[0])
    b = lp_bounds(net, dom)
    c = np.random.default_rng(seed + 1).normal(size=net.output_dim)
    res, _ = maximize_output(net, dom, c, bounds=b)
    m = build_pyomo_model(net, dom, bounds=b)
    m.obj = pyo.Objective(expr=sum(float(c[k]) * m.nn.out[k] for k in range(net.output_dim)), sense=pyo.maximize)
    r = solve_pyomo(m)
    assert str(r.solver.termination_condition) == "optimal"
    x = np.array([pyo.value(m.nn.x[j]) for j in range(net.input_dim)])
    assert float(c @ net.forward(x)) == pytest.approx(res.objective, rel=1e-6, abs=1e-6)


def test_pyomo_block_composes_with_user_constraints():
    net = Network.random([2, 6, 1], seed=3)
    dom = Box(-1, 1, dim=2)
    m = build_pyomo_model(net, dom)
    m.extra = pyo.Constraint(expr=m.nn.x[0] + m.nn.x[1] <= 0)
    m.obj = pyo.Objective(expr=m.nn.out[0], sense=pyo.maximize)
    solve_pyomo(m)
    x = np.array([pyo.value(m.nn.x[0]), pyo.value(m.nn.x[1])])
    assert x.sum() <= 1e-7
    X = Polytope([[1.0, 1.0]], [0.0], -1, 1).sample(20000, seed=0)
    assert pyo.value(m.obj) >= net.forward(X)[:, 0].max() - 1e-7


def test_no_binaries_for_stable_neurons():
    W1 = np.array([[1.0], [1.0], [1.0], [-1.0]])
    b1 = np.array([-5.0, 5.0, 0.0, 0.5])  # inactive, active, unstable, unstable on [-1, 1]
    net = Network([W1, np.ones((1, 4))], [b1, np.zeros(1)])
    dom = Box(-1, 1, dim=1)
    m = HighsModel(dom)
    nv = m.add_network(net, interval_bounds(net, dom))
    assert list(nv.layers[0].z_cols >= 0) == [False, False, True, True]
    assert nv.z_cols.size == 2
    assert nv.layers[0].h_cols[1] == nv.layers[0].y_cols[1]  # active: h is y
    assert nv.layers[0].y_cols[0] == -1  # inactive: no y
    # the relaxation has no binaries at all
    m2 = HighsModel(dom)
    nv2 = m2.add_network(net, interval_bounds(net, dom), relax=True)
    assert nv2.z_cols.size == 0 and not m2.is_mip


def test_two_networks_share_inputs():
    a = Network.random([3, 6, 2], seed=0)
    dom = Box(-1, 1, dim=3)
    m = HighsModel(dom)
    va = m.add_network(a, lp_bounds(a, dom))
    vb = m.add_network(a, lp_bounds(a, dom), input_cols=va.input_cols)
    m.set_objective(np.concatenate([va.output_cols, vb.output_cols]), [1, 0, -1, 0])
    res = m.solve()
    assert res.status == "optimal" and abs(res.dual_bound) <= 1e-6  # f - f = 0


def test_polytope_rows_are_enforced():
    net = Network.random([2, 5, 1], seed=1)
    dom = Polytope([[1.0, 0.0]], [-0.5], -1, 1)  # x0 <= -0.5
    res, x = maximize_output(net, dom, [1.0])
    assert x[0] <= -0.5 + 1e-7
    X = dom.sample(20000, seed=2)
    assert res.objective >= net.forward(X)[:, 0].max() - 1e-7


def test_time_limit_is_reported_as_unproven():
    net = Network.random([20, 40, 40, 40, 1], seed=0)
    dom = Box(-1, 1, dim=20)
    b = interval_bounds(net, dom)
    m = HighsModel(dom)
    nv = m.add_network(net, b)
    m.set_objective(nv.output_cols, [1.0])
    res = m.solve(time_limit=0.05)
    assert res.status in ("time_limit", "optimal")
    if res.status == "time_limit":
        assert not res.proven
        if res.objective is not None:
            assert res.dual_bound >= res.objective - 1e-6


def test_maximize_output_validates_c():
    net = Network.random([2, 3, 2])
    with pytest.raises(Exception, match="c has 3 entries, the network has 2 outputs"):
        maximize_output(net, Box(0, 1, dim=2), [1, 2, 3])


def test_maximize_output_is_not_cut_off_by_the_mip_feasibility_tolerance():
    """A fuzzed 3-1-6-1-2 net: with LP bounds tight to 1e-15 at the corner (1, 1, 1), HiGHS's MIP
    feasibility tolerance (1e-6) cut the optimum off and maximize_output called 3.99503 optimal,
    below c . f(1, 1, 1) = 3.99520. The bound is now checked against points of the domain and the
    MILP solved again with tolerances of 1e-9."""
    Ws = [np.array([[0.8185346743319818, 0.19369575574739892, 0.11622967358156859]]),
          np.array([[0.07752445412062055], [1.7523852104752335], [0.42102587603895986], [0.5283865058568809],
                    [2.9900023606206187], [1.2812105976022616]]),
          np.array([[-0.403993042908749, 0.3290255800760068, 0.8296646013363446, -0.2844177423994916,
                     1.2041839565072243, 0.9602840238522105]]),
          np.array([[0.3843712035272547], [-0.6173840122606347]])]
    bs = [np.array([-0.076212285503114]),
          np.array([-0.0806462061711013, 0.11664547847504848, -0.43797973152545056, -0.017184110598312173,
                    -0.17562324927398326, 0.012568458925747364]),
          np.array([-0.057983579799567614]), np.array([0.2855855321546997, -0.43746837057664334])]
    net = Network(Ws, bs)
    c = np.array([-0.18854179, -1.19120283])
    res, x = maximize_output(net, Box(-1, 1, dim=3), c)
    at_corner = float(c @ net.forward(np.ones(3)))
    assert res.status == "optimal" and res.dual_bound >= at_corner - 1e-9 * (1 + abs(at_corner))
    assert float(c @ net.forward(x)) == pytest.approx(res.objective, rel=1e-9)


def test_pyomo_block_encodes_an_l1_ball():
    """The Pyomo block kept only the box and the A x <= c rows of its domain: over an L1 ball,
    x0 + x1 reached 1.84 at a point outside the ball. Now the ball is encoded as in HighsModel."""
    from mipnet import L1Ball

    net = Network.random([2, 3, 1], seed=0)
    dom = L1Ball(np.zeros(2), 1.0, -1, 1)
    m = build_pyomo_model(net, dom)
    m.obj = pyo.Objective(expr=m.nn.x[0] + m.nn.x[1], sense=pyo.maximize)
    solve_pyomo(m)
    x = np.array([pyo.value(m.nn.x[j]) for j in range(2)])
    assert pyo.value(m.obj) == pytest.approx(1.0, abs=1e-7) and dom.contains(x[None])[0]
    del m.obj  # the network's output over the ball: the block's optimum equals maximize_output's
    m.obj = pyo.Objective(expr=m.nn.out[0], sense=pyo.maximize)
    solve_pyomo(m)
    res, _ = maximize_output(net, dom, np.ones(1))
    assert pyo.value(m.obj) == pytest.approx(res.objective, abs=1e-6)


def _huge(widths, seed, scale=1e8):
    net = Network.random(widths, seed=seed)
    return Network([W * scale for W in net.weights], [b * scale for b in net.biases])


@pytest.mark.parametrize("seed", range(8))
def test_maximize_output_rescales_huge_weights(seed):
    """Weights and biases ~1e8 (values up to 1e16 on a unit box): maximize_output built the MILP in
    the original units, where HiGHS's tolerances are meaningless, and called the problem infeasible
    (no witness, no error) on 29 of 30 such 2-7-2 nets. Each neuron now has its own power-of-two
    units; the optimum must dominate samples and be attained in float64."""
    net = _huge([2, 7, 2], seed)
    dom = Box([-1.6, -0.1], [1.6, 1.8])
    c = np.array([1.0, 0.0])
    res, x = maximize_output(net, dom, c)
    smax = float((net.forward(dom.sample(2000, seed=0, include_vertices=True)) @ c).max())
    assert res.status == "optimal" and dom.contains(x[None])[0]
    assert res.objective == pytest.approx(float(c @ net.forward(x)), rel=1e-12) and res.objective >= smax - 1e-6 * abs(smax)
    assert res.dual_bound >= res.objective


def test_maximize_output_neurons_of_very_different_magnitudes():
    """A fuzzed 3-3-3-3 net whose hidden rows are 1e-6 to 1e5 apart, on the box [-1e6, 1e6]^3:
    with one output scale for every layer, maximize_output called the MILP infeasible; the
    largest value (4020.93, at a vertex) sits 1e-8 below the outputs' range. Each neuron now has
    its own units and c . f is folded into one output with its own scale."""
    Ws = [np.array([[0.00019383481072861574, -0.0012037696398557655, -0.0004265431346117798],
                    [-80284.69583207261, 76659.57582603018, -51186.659478630834],
                    [-7.260818882163225e-07, -2.903793919771866e-07, 1.7954940531721706e-06]]),
          np.array([[1.288848565950007, 0.7553451330833696, 0.40319542571734435],
                    [-1.1546570743474345, 0.49068176682672504, -0.9003412139611292],
                    [1.424152888692807, -0.9702896266793988, -0.5618094568176296]])]
    bs = [np.array([-0.014119565120427247, -0.00045371221858335275, 8.155164132043023e-08]),
          np.array([0.3531358620537675, -0.2666923779577897, -0.7169116843168583])]
    net = Network(Ws, bs)
    dom = Box(-1e6, 1e6, dim=3)
    c = np.array([0.4390906518766011, -0.76724880591175, 0.5283687488069336])
    res, x = maximize_output(net, dom, c)
    smax = float((net.forward(dom.sample(3000, seed=1, include_vertices=True)) @ c).max())
    assert smax == pytest.approx(4020.9337849, rel=1e-9)
    assert res.status == "optimal" and res.objective == pytest.approx(float(c @ net.forward(x)), rel=1e-12)
    assert res.objective >= smax - 1e-9 * smax and res.dual_bound >= res.objective


def test_per_neuron_scaling_is_exact():
    from mipnet.analyses.common import Scaling

    net = _huge([3, 8, 6, 2], seed=3)
    dom = Box(-1e4, 1e4, dim=3)
    sc = Scaling.for_problem((net,), dom, per_layer=True)
    assert len(sc.layer_scales) == 2 and all(np.all(np.log2(s) % 1 == 0) for s in sc.layer_scales)
    X = dom.sample(1000, seed=0)
    ns = sc.net(net)
    np.testing.assert_array_equal(sc.to_output(ns.forward(X / sc.input_scale)), net.forward(X))  # bit for bit
    for l, y in enumerate(ns.preactivations(X / sc.input_scale)[:-1]):
        assert np.abs(y).max() <= 4.0  # every hidden layer near 1 in its own units
    b = sc.bounds(lp_bounds(net, dom))
    for lb, y in zip(b.layers, ns.preactivations(X / sc.input_scale)):
        assert np.all(lb.lower <= y + 1e-9) and np.all(y <= lb.upper + 1e-9)


def test_solve_pyomo_refuses_a_solution_that_is_not_the_networks():
    """A 1-2-3-3 net with weights ~1e8: through Pyomo (no rescaling) HiGHS returned 'optimal' with
    outputs 1.9e8 where the forward pass at its input gives 1.76e7. solve_pyomo now checks every
    network block's solution against a float64 forward pass and raises instead."""
    net = _huge([1, 2, 3, 3], seed=11)
    dom = Box([-0.14], [1.86])
    m = build_pyomo_model(net, dom, bounds=interval_bounds(net, dom))
    m.obj = pyo.Objective(expr=m.nn.out[2], sense=pyo.maximize)
    try:
        solve_pyomo(m)
    except SolverError as exc:
        assert "forward pass" in str(exc) or "could not read" in str(exc)
    else:  # a solution that passed the check is the network's
        x = np.array([pyo.value(m.nn.x[0])])
        assert pyo.value(m.nn.out[2]) == pytest.approx(net.forward(x)[2], rel=1e-5)
