"""Pruning: exact counts, the kept sets of each method, masks, permanence, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
import torch.nn.functional as F

from mipnet.nn.data import load_dataset
from mipnet.core.errors import DatasetError, InvalidNetworkError, MipnetError
from mipnet.nn.pruning import (
    PRUNING_METHODS,
    PruningError,
    achieved_densities,
    global_magnitude_prune,
    kept_count,
    layer_densities_uniform,
    magnitude_prune,
    make_permanent,
    masks,
    prune,
    random_prune,
    sipp_prune,
    sipp_sample_size,
    sipp_sensitivities,
    snip_prune,
)
from mipnet.nn.training import finetune, make_mlp, train


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def trained_state(digits):
    m = make_mlp([64, 32, 16, 10], seed=0)
    train(m, digits, epochs=3, lr=0.05, progress=False)
    return m.state_dict()


@pytest.fixture
def trained(trained_state):
    m = make_mlp([64, 32, 16, 10])
    m.load_state_dict(trained_state)
    return m


def _W(m):
    return [x.weight.detach().double().numpy().copy() for x in m if isinstance(x, nn.Linear)]


def test_kept_count_rule():
    assert kept_count(0.5, 5) == 3  # round half up
    assert kept_count(0.3, 10) == 3 and kept_count(0.34, 10) == 3 and kept_count(0.35, 10) == 4
    assert kept_count(1e-6, 100) == 1  # at least one
    assert kept_count(1.0, 7) == 7
    with pytest.raises(PruningError, match=r"must lie in \(0, 1\]"):
        kept_count(0.0, 10)
    with pytest.raises(ValueError, match=r"must lie in \(0, 1\]"):
        kept_count(1.5, 10)


@pytest.mark.parametrize("density", [0.5, 0.1, 0.013, 0.001])
def test_magnitude_layerwise_counts_and_kept_set(trained, density):
    W0 = _W(trained)
    model, rep = prune(trained, "magnitude", density)
    assert rep.requested_densities == (density, density, 1.0)
    for W, mk, kept, size in zip(W0, masks(model) + [None], rep.kept, rep.sizes):
        if mk is None:  # output layer untouched
            assert kept == size
            continue
        assert mk.sum() == kept == kept_count(density, W.size)
        assert np.abs(W[mk]).min() >= np.abs(W[~mk]).max()  # largest magnitudes kept
    Wp = _W(model)
    for W, Wn, mk in zip(W0, Wp, masks(model)):
        if mk is not None:
            np.testing.assert_array_equal(Wn, np.where(mk, W, 0.0))
    assert rep.achieved_densities == tuple(achieved_densities(model))


def test_magnitude_given_densities_and_output(trained):
    _, rep = prune(trained, "magnitude", 0.5, densities=[0.25, 0.5, 0.8])
    assert rep.kept == (512, 256, 128)
    m2 = make_mlp([64, 32, 16, 10], seed=1)
    magnitude_prune(m2, [0.25, 0.5])  # one fewer: output kept
    assert masks(m2)[2] is None and achieved_densities(m2) == [0.25, 0.5, 1.0]
    assert layer_densities_uniform(m2, 0.3, prune_output=True) == [0.3, 0.3, 0.3]


@pytest.mark.parametrize("density", [0.3, 0.02])
def test_global_magnitude(trained, density):
    W0 = _W(trained)
    model, rep = prune(trained, "global", density)
    mk = masks(model)
    total = W0[0].size + W0[1].size
    assert mk[0].sum() + mk[1].sum() == kept_count(density, total) == rep.kept[0] + rep.kept[1]
    assert mk[2] is None and rep.requested_densities is None
    kept_abs = np.concatenate([np.abs(W0[i][mk[i]]) for i in (0, 1)])
    pruned_abs = np.concatenate([np.abs(W0[i][~mk[i]]) for i in (0, 1)])
    assert kept_abs.min() >= pruned_abs.max()  # one global threshold
    m = make_mlp([64, 32, 16, 10], seed=0)
    global_magnitude_prune(m, 0.1, prune_output=True)
    assert sum(mm.sum() for mm in masks(m)) == kept_count(0.1, 2720)


def test_random_same_counts_and_seeded(trained_state):
    def fresh():
        m = make_mlp([64, 32, 16, 10])
        m.load_state_dict(trained_state)
        return m

    _, mag = prune(fresh(), "magnitude", 0.2)
    a, ra = prune(fresh(), "random", 0.2, seed=1)
    b, _ = prune(fresh(), "random", 0.2, seed=1)
    c, _ = prune(fresh(), "random", 0.2, seed=2)
    assert ra.kept == mag.kept
    assert all(np.array_equal(x, y) for x, y in zip(masks(a)[:2], masks(b)[:2]))
    assert not np.array_equal(masks(a)[0], masks(c)[0])
    # uniform over positions: about 20% of every row kept on average
    assert 0.1 < masks(a)[0].mean(axis=1).mean() < 0.3
    m = make_mlp([6, 5, 2], seed=0)
    random_prune(m, [0.5], seed=0)
    assert masks(m)[0].sum() == 15


# ---------------------------------------------------------------------------- SiPP
def brute_sensitivities(W, A):
    """s_ij = max_x z_ij / sum of same-sign z_ik, z = w a (loops, the definition)."""
    n_out, n_in = W.shape
    s = np.zeros_like(W)
    for x in A:
        for i in range(n_out):
            z = W[i] * x
            pos, neg = z[z > 0].sum(), -z[z < 0].sum()
            for j in range(n_in):
                if z[j] > 0:
                    s[i, j] = max(s[i, j], z[j] / pos)
                elif z[j] < 0:
                    s[i, j] = max(s[i, j], -z[j] / neg)
    return s


def test_sipp_sensitivities_match_definition():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(5, 7))
    W[0, 0] = 0.0
    A = np.abs(rng.normal(size=(9, 7)))
    A[:, 3] = 0.0  # an input that is always off
    s = sipp_sensitivities(W, A, chunk_elems=40)  # forces several chunks
    np.testing.assert_allclose(s, brute_sensitivities(W, A), rtol=1e-12)
    assert s[0, 0] == 0 and np.all(s[:, 3] == 0) and np.all((s >= 0) & (s <= 1))
    A2 = rng.normal(size=(4, 7))  # signed inputs: the sign of w a decides the group
    np.testing.assert_allclose(sipp_sensitivities(W, A2), brute_sensitivities(W, A2), rtol=1e-12)


def _layer_inputs_np(model, X):
    """Inputs of every Linear by a float64 numpy forward pass (independent of the hooks)."""
    Ws = _W(model)
    bs = [x.bias.detach().double().numpy() for x in model if isinstance(x, nn.Linear)]
    h, out = np.asarray(X, float), []
    for l, (W, b) in enumerate(zip(Ws, bs)):
        out.append(h)
        h = h @ W.T + b
        if l < len(Ws) - 1:
            h = np.maximum(h, 0)
    return out


def test_sipp_deterministic_keeps_top_sensitivities(trained, digits):
    X = digits.X_train[:36]
    W0 = _W(trained)
    S = [brute_sensitivities(W, A) for W, A in zip(W0[:2], _layer_inputs_np(trained, X)[:2])]
    model, details = sipp_prune(trained, [0.1, 0.2, 1.0], X, variant="deterministic")
    mk = masks(model)
    for W, s, m, d in zip(W0, S, mk, (0.1, 0.2)):
        assert m.sum() == kept_count(d, W.size)
        assert m.flat[np.argmax(s)]  # the most sensitive weight survives
        assert s[m].min() >= s[~m].max() - 1e-6  # float32 forward vs float64 brute force
    np.testing.assert_array_equal(_W(model)[0], np.where(mk[0], W0[0], 0.0))  # no reweighting
    assert details == {"variant": "deterministic", "batch_size": 36, "draws": [0, 0, 0]}


def test_sipp_random_reweights(trained, digits):
    X = digits.X_train[:36]
    W0 = _W(trained)
    A = _layer_inputs_np(trained, X)
    model, details = sipp_prune(trained, [0.3, 0.3, 1.0], X, variant="random", seed=3)
    mk, Wp = masks(model), _W(model)
    for l in (0, 1):
        W, m = W0[l], mk[l]
        assert m.sum() == kept_count(0.3, W.size)
        assert np.all(Wp[l][~m] == 0)
        ratio = Wp[l][m] / W[m]
        assert np.all(ratio > 0) and not np.allclose(ratio, 1.0)  # kept weights rescaled, signs kept
        # importance-sampling identity: in every neuron-sign group that got draws,
        # sum over kept j of (count_j / (m_g q_j)) * q_j = 1, with q_j = s_j / S_g
        s = brute_sensitivities(W, A[l])
        for i in range(W.shape[0]):
            for sign in (W[i] > 0, W[i] < 0):
                kept = m[i] & sign
                if not kept.any():
                    continue
                q = s[i] / s[i][sign].sum()
                r = (Wp[l][i] / np.where(W[i] == 0, 1, W[i]))[kept]
                assert np.sum(r * q[kept]) == pytest.approx(1.0, rel=1e-4)
        assert details["draws"][l] >= m.sum()
    m2 = make_mlp([64, 32, 16, 10], seed=0)
    sipp_prune(m2, [0.3, 0.3, 1.0], X, variant="random", seed=3)
    m3 = make_mlp([64, 32, 16, 10], seed=0)
    sipp_prune(m3, [0.3, 0.3, 1.0], X, variant="random", seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(_W(m2), _W(m3)))  # seeded


def test_sipp_sample_size_and_dispatch(trained, digits):
    assert sipp_sample_size([64, 32, 16, 10]) == int(np.ceil(3 * np.log(8 * 58 * 32 / 0.1)))
    assert sipp_sample_size([784, 100, 100, 10], delta=0.01) == int(np.ceil(3 * np.log(8 * 210 * 100 / 0.01)))
    _, rep = prune(trained, "sipp", 0.25, data=digits, seed=0)
    assert rep.details["batch_size"] == sipp_sample_size([64, 32, 16, 10])
    assert rep.kept[:2] == (512, 128)
    with pytest.raises(DatasetError, match="needs data"):
        prune(make_mlp([64, 8, 10]), "sipp", 0.5)


# ---------------------------------------------------------------------------- SNIP
def test_snip_keeps_top_connection_sensitivity(trained, digits):
    X, y = digits.X_train[:128], digits.y_train[:128]
    W0 = _W(trained)
    ref = make_mlp([64, 32, 16, 10])
    ref.load_state_dict(trained.state_dict())
    loss = F.cross_entropy(ref(torch.tensor(np.array(X))), torch.tensor(np.array(y)))
    loss.backward()
    score = [np.abs(W0[i] * ref[2 * i].weight.grad.double().numpy()) for i in (0, 1)]
    model, got_loss = snip_prune(trained, 0.15, X, y)
    assert got_loss == pytest.approx(float(loss.detach()))
    mk = masks(model)
    k = kept_count(0.15, 2048 + 512)
    assert mk[0].sum() + mk[1].sum() == k and mk[2] is None
    flat = np.concatenate([s.ravel() for s in score])
    kept = np.concatenate([mk[0].ravel(), mk[1].ravel()])
    assert flat[kept].min() >= flat[~kept].max() * (1 - 1e-5)
    with pytest.raises(DatasetError, match="labels must be 5 integers"):
        snip_prune(make_mlp([64, 8, 10]), 0.5, X[:5], y[:4])


# ---------------------------------------------------------------------------- masks and permanence
def test_masks_survive_finetuning_and_make_permanent(trained, digits):
    small = load_dataset("digits", limit=300)
    model, rep = prune(trained, "magnitude", 0.2)
    mk = masks(model)
    finetune(model, small, epochs=2, progress=False)
    for W, m in zip(_W(model), mk):
        if m is not None:
            assert np.all(W[~m] == 0)
    assert achieved_densities(model) == list(rep.achieved_densities)
    x = torch.tensor(np.array(digits.X_test[:50]))
    with torch.no_grad():
        y0 = model(x)
    make_permanent(model)
    for lin in (mm for mm in model if isinstance(mm, nn.Linear)):
        assert not hasattr(lin, "weight_orig") and not hasattr(lin, "weight_mask")
        assert isinstance(lin.weight, nn.Parameter) and len(lin._forward_pre_hooks) == 0
    assert masks(model) == [None, None, None]
    assert achieved_densities(model) == list(rep.achieved_densities)  # the zeros remain
    with torch.no_grad():
        assert torch.equal(model(x), y0)


def test_export_of_pruned_model(trained):
    from mipnet.io.torch import from_torch

    model, rep = prune(trained, "global", 0.1)
    net = from_torch(model)  # masks still applied: reads the effective weights
    assert net.num_nonzero_weights == sum(rep.kept)
    assert tuple(net.layer_densities()) == rep.achieved_densities


def test_repruning_multiplies_masks(trained):
    model, _ = prune(trained, "magnitude", 0.5)
    first = masks(model)
    model, rep = prune(model, "magnitude", 0.25)
    second = masks(model)
    assert rep.kept[:2] == (512, 128)
    assert all(np.all(s <= f) for s, f in zip(second[:2], first[:2]))  # a subset


def test_allocated(trained):
    pytest.importorskip("mipnet.sparsity")
    from mipnet.sparsity import allocate_sparsity

    want = [float(d) for d in allocate_sparsity((64, 32, 16, 10), density=0.2).densities]
    model, rep = prune(trained, "allocated", 0.2)
    assert len(rep.requested_densities) == 3
    for d, k, size in zip(want, rep.kept, rep.sizes):
        assert k == kept_count(min(1.0, max(d, 1e-12)), size)


def test_report_and_errors(trained):
    _, rep = prune(trained, "magnitude", 0.4)
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["method"] == "magnitude" and d["kept"] == list(rep.kept)
    assert "magnitude pruning at density 0.4" in str(rep)
    assert rep.overall_density == pytest.approx(sum(rep.kept) / 2720)
    m = make_mlp([64, 8, 10])
    with pytest.raises(PruningError, match="method must be one of magnitude, global"):
        prune(m, "lottery", 0.5)
    with pytest.raises(MipnetError, match=r"density must lie in \(0, 1\]"):
        prune(m, "magnitude", 0.0)
    with pytest.raises(PruningError, match="densities has 3 entries, the model has 2 Linear layers"):
        prune(m, "magnitude", 0.5, densities=[0.1, 0.2, 0.3])
    with pytest.raises(PruningError, match="per-layer densities apply to magnitude, random and sipp"):
        prune(m, "global", 0.5, densities=[0.1, 0.2])
    with pytest.raises(PruningError, match=r"densities\[0\] must lie in"):
        magnitude_prune(m, [2.0, 1.0])
    with pytest.raises(InvalidNetworkError, match="no nn.Linear"):
        prune(nn.Sequential(nn.ReLU()), "magnitude", 0.5)
    with pytest.raises(DatasetError, match=r"data_batch must be an array of shape \(m, 64\)"):
        sipp_prune(m, [0.5, 1.0], np.zeros((3, 5)))
    assert set(PRUNING_METHODS) == {"magnitude", "global", "random", "sipp", "snip", "allocated"}


@pytest.mark.parametrize("call, match", [
    (lambda m: prune(m, "magnitude", 0.5, densities=["a", 1.0]), "densities must be a list of numbers"),
    (lambda m: magnitude_prune(m, "ab"), "densities must be a list of numbers"),
    (lambda m: prune(m, "random", 0.5, seed=-1), "seed must be an integer >= 0"),
    (lambda m: prune(m, "random", 0.5, seed="abc"), "seed must be an integer >= 0"),
    (lambda m: random_prune(m, [0.5, 1.0], seed=1.5), "seed must be an integer >= 0"),
    (lambda m: prune(m, "snip", 0.5, batch_size=2.5), "batch_size must be a positive integer"),
    (lambda m: sipp_sample_size("ab"), "need widths"),
    (lambda m: sipp_sample_size(None), "need widths"),
])
def test_bad_input_raises_pruning_errors(call, match):
    with pytest.raises(PruningError, match=match):
        call(make_mlp([64, 8, 10]))


# ---------------------------------------------------------------------------- CLI
def test_cli_train_and_prune(tmp_path, capsys):
    from mipnet.cli import main
    from mipnet.io import load_network

    net_path, out_path = tmp_path / "net.onnx", tmp_path / "pruned.npz"
    rc = main(["train", "--dataset", "digits", "--widths", "64,16,10", "--epochs", "3", "--lr", "0.05",
               "-o", str(net_path), "--json", "--no-progress"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["widths"] == [64, 16, 10] and out["training"]["test_accuracy"] > 0.5
    net = load_network(net_path)
    assert net.widths == (64, 16, 10)
    # the saved network is the trained function on raw 0..16 inputs
    d = load_dataset("digits")
    acc = float(np.mean(net.forward(d.X_test).argmax(1) == d.y_test))
    assert acc == pytest.approx(out["training"]["test_accuracy"], abs=1 / 360)

    rc = main(["prune", str(net_path), "--method", "magnitude", "--density", "0.25", "--finetune-epochs", "2",
               "--lr", "0.05", "-o", str(out_path), "--json", "--no-progress"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    pruned = load_network(out_path)
    assert res["pruning"]["kept"] == [256, 160] and pruned.num_nonzero_weights == 416
    assert res["layer_densities"] == [0.25, 1.0]
    assert {"accuracy_before", "accuracy_after_pruning", "accuracy_after_finetuning"} <= set(res)

    rc = main(["prune", str(net_path), "--method", "snip", "--density", "0.3", "-o", str(tmp_path / "s.onnx")])
    text = capsys.readouterr().out
    assert rc == 0 and "snip pruning at density 0.3" in text and "before" in text

    rc = main(["train", "--dataset", "digits", "--widths", "60,10", "--epochs", "1", "-o", str(net_path)])
    err = capsys.readouterr().err
    assert rc == 3 and "must start with the input size 64" in err
    rc = main(["prune", str(net_path), "--method", "magnitude", "--density", "0.5", "--dataset", "nosuchset",
               "-o", str(out_path)])
    assert rc == 3 and "unknown dataset 'nosuchset'" in capsys.readouterr().err
    try:  # a usage error: argparse's exit, or main's usage exit code
        rc = main(["prune", str(net_path), "--method", "magnitude", "--density", "1.5", "-o", str(out_path)])
    except SystemExit as exc:
        rc = exc.code
    assert rc not in (0, None)
    assert "density must lie in (0, 1]" in capsys.readouterr().err
