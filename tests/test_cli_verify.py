"""``mipnet verify``, ``mipnet stable`` and ``mipnet compress`` through mipnet.cli.main."""

import json

import numpy as np
import pytest

from mipnet import Box, Network
from mipnet.cli import main
from mipnet.io import load_network, save_network


def _nets(tmp_path):
    f = Network.random([3, 6, 5, 2], seed=3, bias_scale=1.5)
    W = [w.copy() for w in f.weights]
    W[0][np.abs(W[0]) < 0.4] = 0.0
    g = Network(W, list(f.biases))
    save_network(f, tmp_path / "f.onnx")
    save_network(g, tmp_path / "g.npz")
    return f, g


def _run(args, capsys):
    rc = main(args)
    return rc, capsys.readouterr()


def test_verify_exit_codes_and_json(tmp_path, capsys):
    f, g = _nets(tmp_path)
    fa, ga = str(tmp_path / "f.onnx"), str(tmp_path / "g.npz")
    rc, out = _run(["verify", fa, fa, "--box", "-1", "1", "--json"], capsys)
    d = json.loads(out.out)
    assert rc == 0 and d["verdict"] == "equivalent" and d["counterexample"] is None
    assert {"verdict", "max_gap", "counterexample", "seconds"} <= set(d)
    rc, out = _run(["verify", fa, ga, "--box", "-1", "1", "--mode", "exact", "--json"], capsys)
    d = json.loads(out.out)
    assert rc == 1 and d["verdict"] == "not_equivalent"
    x = np.array(d["counterexample"])
    assert np.all(np.abs(x) <= 1) and np.abs(f.forward(x) - g.forward(x)).max() == pytest.approx(d["max_gap"])
    rc, out = _run(["verify", fa, ga, "--box", "-1", "1", "--mode", "epsilon", "--eps", "1000"], capsys)
    assert rc == 0 and "EQUIVALENT" in out.out
    rc, out = _run(["verify", fa, ga, "--box", "-1", "1", "--time-limit", "1e-6", "--samples", "0",
                    "--json"], capsys)
    assert rc == 2 and json.loads(out.out)["verdict"] == "unknown"


def test_verify_center_radius_domain(tmp_path, capsys):
    _nets(tmp_path)
    np.save(tmp_path / "c.npy", np.zeros(3))
    rc, out = _run(["verify", str(tmp_path / "f.onnx"), str(tmp_path / "f.onnx"), "--mode", "top1",
                    "--center", str(tmp_path / "c.npy"), "--radius", "0.5", "--json"], capsys)
    assert rc == 0 and json.loads(out.out)["mode"] == "top1"


def test_verify_errors(tmp_path, capsys):
    _nets(tmp_path)
    fa = str(tmp_path / "f.onnx")
    rc, out = _run(["verify", fa, fa, "--box", "-1", "1", "--mode", "epsilon"], capsys)
    assert rc == 3 and "needs --eps" in out.err
    rc, out = _run(["verify", fa, fa, "--box", "-1", "1", "--eps", "0.1"], capsys)
    assert rc == 3 and "only used with --mode epsilon" in out.err
    rc, out = _run(["verify", fa, fa, "--box", "-1", "1", "--tol", "-1"], capsys)
    assert rc == 3 and "tol must be" in out.err
    rc, out = _run(["verify", fa, fa], capsys)
    assert rc == 3 and "give an input domain" in out.err
    save_network(Network.random([4, 3, 2], seed=0), tmp_path / "h.onnx")
    rc, out = _run(["verify", fa, str(tmp_path / "h.onnx"), "--box", "-1", "1"], capsys)
    assert rc == 3 and "takes 3 inputs" in out.err


def test_stable_command(tmp_path, capsys):
    f, _ = _nets(tmp_path)
    for method in ("per-neuron", "one-milp"):
        rc, out = _run(["stable", str(tmp_path / "f.onnx"), "--box", "-1", "1", "--method", method, "--json",
                        "--arrays"], capsys)
        d = json.loads(out.out)
        assert rc == 0 and d["complete"] and d["method"] == method.replace("-", "_")
        assert [len(layer["states"]) for layer in d["layers"]] == [6, 5]
    rc, out = _run(["stable", str(tmp_path / "f.onnx"), "--box", "-1", "1"], capsys)
    assert rc == 0 and "layer 1" in out.out


def test_compress_command(tmp_path, capsys):
    f, _ = _nets(tmp_path)
    out_path = tmp_path / "small.onnx"
    rc, out = _run(["compress", str(tmp_path / "f.onnx"), "--box", "-1", "1", "-o", str(out_path), "--verify",
                    "--json"], capsys)
    d = json.loads(out.out)
    assert rc == 0 and out_path.is_file()
    assert d["verification"]["verdict"] == "equivalent"
    small = load_network(out_path)
    assert list(small.widths) == d["widths"]
    X = Box(-1, 1, dim=3).sample(2000, seed=0)
    np.testing.assert_allclose(small.forward(X), f.forward(X), atol=1e-9)
    rc, out = _run(["compress", str(tmp_path / "f.onnx"), "--box", "-1", "1", "-o", str(tmp_path / "s.npz")],
                   capsys)
    assert rc == 0 and "Compression" in out.out and "wrote" in out.err


def test_compress_writes_a_neuron_map_that_verify_uses(tmp_path, capsys):
    net = Network.random([6, 20, 16, 4], seed=1, bias_scale=1.5)
    src, out = str(tmp_path / "net.npz"), str(tmp_path / "small.npz")
    save_network(net, src)
    rc, res = _run(["compress", src, "--box", "-1", "1", "-o", out, "--json"], capsys)
    d = json.loads(res.out)
    assert rc == 0 and d["neuron_map_file"] == out + ".neurons.json"
    nmap = json.loads(open(out + ".neurons.json").read())
    assert [len(m["kept"]) for m in nmap["layers"]] == list(load_network(out).hidden_widths)
    rc, res = _run(["verify", src, out, "--box", "-1", "1", "--json"], capsys)
    d = json.loads(res.out)
    assert rc == 0 and d["verdict"] == "equivalent" and d["num_milps"] == 0 and d["search"]["boxes_closed"] == 1
    assert "using the neuron map" in res.err
    rc, res = _run(["verify", src, out, "--box", "-1", "1", "--engine", "milp", "--time-limit", "2", "--json"], capsys)
    d = json.loads(res.out)
    assert rc in (0, 2) and d["search"] is None  # the MILP alone (may not finish on this pair)


def test_verify_bab_engine_with_workers(tmp_path, capsys):
    f, g = _nets(tmp_path)
    fa, ga = str(tmp_path / "f.onnx"), str(tmp_path / "g.npz")
    rc, res = _run(["verify", fa, ga, "--box", "-1", "1", "--mode", "epsilon", "--eps", "1000", "--engine", "bab",
                    "--workers", "2", "--json"], capsys)
    assert rc == 0 and json.loads(res.out)["search"]["engine"] == "bab"
    assert main(["verify", fa, ga, "--box", "-1", "1", "--engine", "nope"]) != 0
    assert main(["verify", fa, ga, "--box", "-1", "1", "--workers", "0"]) == 3
