"""VNN-LIB property files (mipnet.io.vnnlib) and ``mipnet verify --vnnlib`` / ``--norm-in l1``."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mipnet import Network
from mipnet.analyses.equivalence import verify_equivalence
from mipnet.analyses.properties import OutputDisjunction
from mipnet.io import save_network
from mipnet.io.vnnlib import VnnlibError, load_vnnlib, parse_vnnlib

ROOT = Path(__file__).resolve().parents[1]


def _decl(n, ny):
    return "\n".join([f"(declare-const X_{i} Real)" for i in range(n)] + [f"(declare-const Y_{j} Real)" for j in range(ny)])


def _top1_disagreement(m=2):
    """The unsafe set of top-1 equivalence for two classes, in the default layout (Y_0, Y_1 = A; Y_2, Y_3 = B)."""
    return "(assert (or (and (>= Y_0 Y_1) (< Y_2 Y_3)) (and (<= Y_0 Y_1) (> Y_2 Y_3))))"


def test_box_polytope_and_output_dnf():
    txt = f"""; a comment (ignored)
{_decl(3, 4)}
(assert (>= X_0 -1)) (assert (<= X_0 1))
(assert (and (>= X_1 0) (<= X_1 2.5e0)))
(assert (<= -0.5 X_2)) (assert (<= X_2 0.5))
(assert (<= (+ X_0 (* 2 X_1) (- X_2)) 1))
{_top1_disagreement()}
(assert (<= Y_0 100))
"""
    s = parse_vnnlib(txt)
    assert (s.num_inputs, s.num_outputs, s.m, s.layout) == (3, 4, 2, "ab")
    d = s.domain
    assert np.allclose(d.lower, [-1, 0, -0.5]) and np.allclose(d.upper, [1, 2.5, 0.5])
    assert np.allclose(d.A, [[1, 2, -1]]) and np.allclose(d.c, [1])
    assert len(s.terms) == 2 and all(C.shape == (3, 4) for C, _ in s.terms)  # (disjunct) and (Y_0 <= 100)
    p = OutputDisjunction.from_vnnlib(s)
    fa, fb = np.array([[1.0, 0.0], [1.0, 0.0], [200.0, 0.0]]), np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert list(p.margin(fa, fb) > 0) == [True, False, False]  # the last violates Y_0 <= 100
    assert "strict" in " ".join(s.notes)


def test_box_only_file_roundtrip(tmp_path):
    lo, hi = np.array([-1.0, 0.25]), np.array([0.5, 2.0])
    lines = [_decl(2, 2)] + [f"(assert (>= X_{i} {float(lo[i])!r}))\n(assert (<= X_{i} {float(hi[i])!r}))" for i in range(2)]
    lines.append("; mipnet-outputs: diff\n(assert (>= Y_0 0.1))")
    path = tmp_path / "p.vnnlib"
    path.write_text("\n".join(lines))
    s = load_vnnlib(path, m=2, num_inputs=2)
    assert s.layout == "diff" and s.domain.is_box
    assert np.array_equal(s.domain.lower, lo) and np.array_equal(s.domain.upper, hi)
    (C, b), = s.terms  # -(f0 - g0) <= -0.1
    assert np.allclose(C, [[-1, 0, 1, 0]]) and np.allclose(b, [-0.1])


@pytest.mark.parametrize("text, match", [
    ("(declare-const X_0 Real) (assert (<= X_0 1)", "unbalanced"),
    ("(declare-const X_0 Real) (declare-const Y_0 Real) (declare-const Y_1 Real) (assert (<= X_1 1))",
     "not declared"),
    (f"{_decl(1, 2)} (assert (<= X_0 1)) (assert (>= X_0 0)) (assert (<= (+ X_0 Y_0) 1))", "mixes inputs and outputs"),
    (f"{_decl(1, 2)} (assert (or (<= X_0 1) (>= X_0 2))) (assert (<= Y_0 Y_1))", "disjunction over inputs"),
    (f"{_decl(1, 2)} (assert (<= X_0 1)) (assert (<= Y_0 Y_1))", "no finite lower and upper bound"),
    (f"{_decl(1, 3)} (assert (<= X_0 1)) (assert (>= X_0 0)) (assert (<= Y_0 Y_1))", "2m outputs"),
    (f"{_decl(1, 2)} (assert (<= X_0 1)) (assert (>= X_0 0)) (assert (<= (* Y_0 Y_1) 1))", "non-linear"),
    (f"{_decl(1, 2)} (assert (<= X_0 1)) (assert (>= X_0 0)) (assert (not (<= Y_0 Y_1)))", "unsupported connective"),
    (f"{_decl(1, 2)} (assert (<= X_0 1)) (assert (>= X_0 2)) (assert (<= Y_0 Y_1))", "empty"),
    (f"{_decl(1, 2)} (assert (<= X_0 1)) (assert (>= X_0 0))", "no output assertion"),
    ("(declare-const X_0 Int)", "only Real"),
    ("(declare-network f)", "VNN-LIB 2.0"),
    ("(declare-const Z_0 Real)", "X_i and Y_j"),
])
def test_errors_are_clear(text, match):
    with pytest.raises(VnnlibError, match=match):
        parse_vnnlib(text)


def test_wrong_sizes_and_missing_file(tmp_path):
    txt = f"{_decl(2, 4)} (assert (<= X_0 1)) (assert (>= X_0 0)) (assert (<= X_1 1)) (assert (>= X_1 0)) " \
          "(assert (<= Y_0 Y_1))"
    with pytest.raises(VnnlibError, match="networks take 3"):
        parse_vnnlib(txt, num_inputs=3)
    with pytest.raises(VnnlibError, match="should declare 6"):
        parse_vnnlib(txt, m=3)
    with pytest.raises(VnnlibError, match="no such file|cannot read"):
        load_vnnlib(tmp_path / "missing.vnnlib")


def _pair(tmp_path):
    f = Network.random([2, 6, 2], seed=7, bias_scale=0.5)
    W = [w.copy() for w in f.weights]
    W[0][np.abs(W[0]) < 0.5] = 0.0
    g = Network(W, list(f.biases))
    save_network(f, tmp_path / "a.npz")
    save_network(g, tmp_path / "b.npz")
    return f, g


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "mipnet", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env)


def test_cli_vnnlib_and_l1_ball(tmp_path):
    f, g = _pair(tmp_path)
    prop = tmp_path / "top1.vnnlib"
    prop.write_text(f"{_decl(2, 4)}\n(assert (>= X_0 -2)) (assert (<= X_0 2)) (assert (>= X_1 -2)) "
                    f"(assert (<= X_1 2))\n{_top1_disagreement()}\n")
    p = _cli("verify", tmp_path / "a.npz", tmp_path / "b.npz", "--vnnlib", prop, "--json")
    d = json.loads(p.stdout)
    spec = load_vnnlib(prop)
    base = verify_equivalence(f, g, spec.domain, mode="top1")
    assert d["mode"] == "vnnlib" and d["verdict"] == str(base.verdict) != "unknown"
    assert p.returncode == {"equivalent": 0, "not_equivalent": 1}[d["verdict"]]
    if d["counterexample"] is not None:
        x = np.array(d["counterexample"])
        assert np.argmax(f.forward(x)) != np.argmax(g.forward(x)) and np.all(np.abs(x) <= 2)
    np.save(tmp_path / "c.npy", np.zeros(2))
    p = _cli("verify", tmp_path / "a.npz", tmp_path / "b.npz", "--mode", "topk", "--k", "1", "--center",
             tmp_path / "c.npy", "--radius", "0.5", "--norm-in", "l1", "--json")
    d = json.loads(p.stdout)
    assert d["mode"] == "top1" and d["verdict"] in ("equivalent", "not_equivalent")
    if d["counterexample"] is not None:
        assert np.abs(np.array(d["counterexample"])).sum() <= 0.5 + 1e-9
    p = _cli("verify", tmp_path / "a.npz", tmp_path / "b.npz", "--vnnlib", prop, "--mode", "top1")
    assert p.returncode == 3 and "--vnnlib gives both" in p.stderr
    bad = tmp_path / "bad.vnnlib"
    bad.write_text(f"{_decl(2, 4)} (assert (<= X_0 1))")
    p = _cli("verify", tmp_path / "a.npz", tmp_path / "b.npz", "--vnnlib", bad)
    assert p.returncode == 3 and "bad.vnnlib" in p.stderr and "bound" in p.stderr
    p = _cli("verify", tmp_path / "a.npz", tmp_path / "b.npz", "--box", "-1", "1", "--norm-in", "l1")
    assert p.returncode == 3 and "--norm-in needs --center" in p.stderr


def test_cli_non_utf8_bytes(tmp_path):
    """A Latin-1 byte in a comment is harmless; elsewhere it is a parse error: exit 3 and one error
    line (it was a UnicodeDecodeError traceback and exit 1, which `verify` uses for "not equivalent")."""
    f, g = _pair(tmp_path)
    body = (f"{_decl(2, 4)}\n(assert (>= X_0 -2)) (assert (<= X_0 2)) (assert (>= X_1 -2)) "
            f"(assert (<= X_1 2))\n{_top1_disagreement()}\n").encode()
    ok = tmp_path / "comment.vnnlib"
    ok.write_bytes(b"; caf\xe9 (Latin-1)\n" + body)
    p = _cli("verify", tmp_path / "a.npz", tmp_path / "b.npz", "--vnnlib", ok, "--json")
    assert p.returncode in (0, 1) and json.loads(p.stdout)["verdict"] in ("equivalent", "not_equivalent")
    bad = tmp_path / "bad.vnnlib"
    bad.write_bytes(body.replace(b"(assert (>= X_0 -2))", b"(assert (>= X_0 -2\xe9))"))
    p = _cli("verify", tmp_path / "a.npz", tmp_path / "b.npz", "--vnnlib", bad, "--json")
    assert p.returncode == 3 and p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("mipnet verify: error:")


def test_cli_internal_error_exits_3_not_1(monkeypatch, capsys, tmp_path):
    """An unexpected exception (a bug) gives exit 3 and one error line, never Python's exit 1
    (`verify`'s "not equivalent"); -v adds the traceback."""
    import mipnet.cli.info as info
    from mipnet.cli import main

    def boom(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(info, "handle", boom)
    path = str(tmp_path / "net.npz")
    save_network(Network.random([2, 3, 1], seed=0), path)
    assert main(["info", path]) == 3
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["mipnet info: error: internal error (RuntimeError: boom); please report it "
                                        "(-v prints the traceback)"]
    assert main(["-v", "info", path]) == 3
    assert "Traceback" in capsys.readouterr().err
