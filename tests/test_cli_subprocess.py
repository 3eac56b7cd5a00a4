"""The installed ``mipnet`` executable, run in a subprocess for every sub-command.

What a user (or a script) sees: stdout must be exactly one strict JSON document with
``--json`` (no solver banner, no progress bar, no NaN), errors are one clean line on stderr
with exit status 3, Ctrl-C exits with 130 and still prints JSON, output paths are checked
before the work and never overwrite an input.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import mipnet
from mipnet import Box, Network
from mipnet.io import load_network, save_network


def _executable() -> str:
    """The ``mipnet`` console script of this interpreter's environment (else the one on PATH)."""
    here = Path(sys.executable).with_name("mipnet")
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which("mipnet")
    if found is None:
        pytest.fail("the `mipnet` executable is not installed; run `pip install -e .`")
    return found


MIPNET = _executable()


def run(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([MIPNET, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def run_all(*commands) -> list:
    """Independent command lines, run concurrently (each is a fresh process: ~0.5 s of imports)."""
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return list(pool.map(lambda argv: run(*argv), commands))


def strict_json(text: str):
    """The whole of ``text`` as one strict JSON document (no banner, no NaN/Infinity)."""

    def bad_constant(c):
        raise ValueError(f"non-standard JSON constant {c}")

    try:
        return json.loads(text, parse_constant=bad_constant)
    except ValueError as exc:
        pytest.fail(f"stdout is not one strict JSON document ({exc}):\n{text[:800]}")


def _json_of(p: subprocess.CompletedProcess, rc: int = 0):
    assert p.returncode == rc, f"{' '.join(p.args[1:])}: exit {p.returncode}, stderr:\n{p.stderr}"
    assert "Traceback" not in p.stderr, p.stderr
    return strict_json(p.stdout)


def run_json(*args, rc: int = 0, timeout: float = 120):
    return _json_of(run(*args, "--json", timeout=timeout), rc)


def json_all(*commands, rc: int = 0) -> list:
    """Run command lines concurrently with --json; their parsed documents."""
    return [_json_of(p, rc) for p in run_all(*[[*c, "--json"] for c in commands])]


def _check_error(p: subprocess.CompletedProcess, match: str, rc: int = 3) -> None:
    what = " ".join(p.args[1:])
    assert p.returncode == rc, f"{what}: exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    assert "Traceback" not in p.stderr, p.stderr
    assert re.search(match, p.stderr, re.M), f"{what}: {match!r} not in stderr:\n{p.stderr}"
    assert p.stdout == ""


def run_error(*args, match: str, rc: int = 3) -> subprocess.CompletedProcess:
    """A clean error: exit status ``rc``, ``match`` in the stderr line, no traceback, nothing on stdout."""
    p = run(*args)
    _check_error(p, match, rc)
    return p


def errors_all(*cases) -> None:
    """``(argv, match)`` pairs, run concurrently; each must be a clean error (exit 3)."""
    for p, (_, match) in zip(run_all(*[argv for argv, _ in cases]), cases):
        _check_error(p, match)


# ====================================================================== fixtures
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    net = Network.random([3, 6, 6, 2], seed=0)
    save_network(net, d / "net.npz")
    save_network(net, d / "net.onnx")
    W = [w.copy() for w in net.weights]
    W[0][np.abs(W[0]) < 0.5] = 0.0
    pruned = Network(W, list(net.biases))
    save_network(pruned, d / "pruned.npz")
    stable = Network.random([3, 6, 5, 2], seed=3, bias_scale=1.5)  # has stable neurons on [-1, 1]^3
    save_network(stable, d / "stable.npz")
    np.save(d / "c.npy", np.array([0.1, -0.2, 0.3]))
    for name, x in (("a", [0.1, 0.2, 0.0]), ("b", [-0.5, 0.3, 0.1]), ("c3", [0.2, -0.7, -0.1])):
        np.save(d / f"{name}.npy", np.array(x))
    (d / "empty.npz").write_bytes(b"")
    (d / "words.txt").write_text("zero one two\n")
    return {"dir": d, "net": net, "pruned": pruned, "stable": stable}


# ====================================================================== every command, --json
def test_info(files):
    d = run_json("info", files["dir"] / "net.npz")
    assert d["widths"] == [3, 6, 6, 2] and d["parameters"] == files["net"].num_parameters
    assert [r["outputs"] for r in d["layers"]] == [6, 6, 2]
    assert [r["activation"] for r in d["layers"]] == ["relu", "relu", "none"]


def test_bounds_lp_ia_and_negative_exponents(files):
    from mipnet.bounds import interval_bounds

    path = files["dir"] / "net.npz"
    lp, huge = json_all(
        ["bounds", path, "--box", "-1", "1", "--method", "lp", "--arrays"],
        ["bounds", path, "--box", "-1e12", "1e12", "--method", "ia"],  # negative numbers with exponents
    )
    assert lp["method"] == "lp" and lp["network"] == [3, 6, 6, 2] and lp["lp_solves"] > 0
    ref = interval_bounds(files["net"], Box(-1, 1, dim=3))
    for l_lp, r in zip(lp["layers"], ref.layers):
        # LP bounds are at least as tight as interval bounds, and ordered
        assert np.all(np.array(l_lp["lower"]) >= r.lower - 1e-9)
        assert np.all(np.array(l_lp["upper"]) <= r.upper + 1e-9)
        assert np.all(np.array(l_lp["lower"]) <= np.array(l_lp["upper"]))
    assert huge["method"] == "ia" and huge["layers"][0]["mean_width"] > 1e11
    assert sum(layer["unstable"] for layer in huge["layers"][:-1]) == 12


def test_regions_count_saves_regions_progress_on_stderr(files, tmp_path):
    from mipnet.analyses.regions import count_regions

    out = tmp_path / "regions.npz"
    p = run("regions", "count", files["dir"] / "net.npz", "--box", "-1", "1", "--linear-regions",
            "--save-regions", out, "--progress", "-v", "--json")
    d = _json_of(p)
    assert re.search(r"regions: .*region", p.stderr), p.stderr  # the progress bar, on stderr only
    expected = count_regions(files["net"], Box(-1, 1, dim=3)).regions
    assert d["regions"] == expected and d["exact"] is True and d["linear_regions"] <= d["regions"]
    assert d["saved_regions"] == str(out) and d["domain"]["lower"] == [-1.0] * 3
    saved = np.load(out)
    assert saved["patterns"].shape == (expected, 12)
    assert np.array_equal(files["net"].activation_pattern(saved["interior_points"]), saved["patterns"])
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]  # no temporary file left


def test_regions_bound_lists_space_or_comma(files):
    a, b = json_all(
        ["regions", "bound", "--widths", "784", "100", "100", "10", "--densities", "0.001", "0.01"],
        ["regions", "bound", "--widths", "784,100,100,10", "--densities", "0.001,0.01"],
    )
    assert a == b and a["widths"] == [784, 100, 100, 10]
    assert a["bounds"]["montufar2014"]["value"] == 2 ** 200
    # per-layer densities 0.001, 0.01 (dense: ln B = 144.92; 0.001 everywhere: 119.80)
    assert a["bounds"]["cai2023_expected_rank"]["log_value"] == pytest.approx(144.685, abs=0.01)


def test_regions_sample_estimate_slice(files, tmp_path):
    from mipnet.analyses.regions import count_regions

    net = files["dir"] / "net.npz"
    png = tmp_path / "slice.png"
    pts = [files["dir"] / f"{n}.npy" for n in ("a", "b", "c3")]
    s, e, sl = json_all(
        ["regions", "sample", net, "--box", "-1", "1", "--samples", "2000"],
        ["regions", "estimate", net, "--box", "-1", "1", "--parity", "0", "--trials", "2", "--samples", "200"],
        ["regions", "slice", net, "--points", *pts, "-o", png, "--color-by", "class"],
    )
    exact = count_regions(files["net"], Box(-1, 1, dim=3)).regions
    assert 0 < s["regions"] <= exact and s["samples"] == 2000 and s["lower_bound"] is True
    assert e["parity"]["k"] == 0 and e["parity"]["lower_bound"] == 0.5 and e["parity"]["status"] == "complete"
    assert 0 < e["sampling"]["regions"] <= exact
    assert sl["regions"] > 0 and sl["linear_regions"] <= sl["regions"] and sl["output"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stable_and_compress(files, tmp_path):
    src = files["dir"] / "stable.npz"
    out = tmp_path / "small.onnx"
    s, c = json_all(["stable", src, "--box", "-1", "1", "--method", "one-milp"],
                    ["compress", src, "--box", "-1", "1", "-o", out, "--verify"])
    assert s["complete"] and s["widths"] == [3, 6, 5, 2]
    assert c["output"] == str(out) and c["verification"]["verdict"] == "equivalent"
    small = load_network(out)
    assert list(small.widths) == c["widths"] and small.num_hidden_neurons < files["stable"].num_hidden_neurons
    X = Box(-1, 1, dim=3).sample(500, seed=1)
    np.testing.assert_allclose(small.forward(X), files["stable"].forward(X), atol=1e-9)
    # written atomically: no temporary file left; the neuron map next to the model
    assert sorted(os.listdir(tmp_path)) == ["small.onnx", "small.onnx.neurons.json"]


def test_verify_not_equivalent_exits_1(files):
    diff = run_json("verify", files["dir"] / "net.onnx", files["dir"] / "pruned.npz", "--box", "-1", "1", rc=1)
    assert diff["verdict"] == "not_equivalent"
    x = np.array(diff["counterexample"])
    assert np.all(np.abs(x) <= 1 + 1e-9)
    assert np.abs(files["net"].forward(x) - files["pruned"].forward(x)).max() > 1e-6


def test_bounds_methods_in_the_pair_analyses(files):
    """verify and gap take --bounds like stable: every method gives the same exact answer (the MILPs
    are exact whatever bounds they start from); the gap's witness is re-checked here in float64."""
    a, b = files["dir"] / "net.npz", files["dir"] / "pruned.npz"
    methods = ("ia", "symbolic", "alpha", "lp", "auto")
    gaps = json_all(*[("gap", a, b, "--box", "-1", "1", "--bounds", m) for m in methods])
    for d in gaps:
        assert d["exact"]
        x = np.array(d["witness"])
        f, g = files["net"].forward(x), files["pruned"].forward(x)
        assert float(np.abs(f - g).max()) == pytest.approx(d["lower"], rel=1e-9)
    assert max(d["upper"] for d in gaps) - min(d["lower"] for d in gaps) <= 1e-5 * (1 + gaps[0]["upper"])
    eps = 0.5 * gaps[0]["lower"]  # below the exact gap: not equivalent, whatever the bounds
    verdicts = json_all(*[("verify", a, b, "--box", "-1", "1", "--mode", "epsilon", "--eps", str(eps),
                           "--engine", "milp", "--bounds", m) for m in methods], rc=1)
    assert {v["verdict"] for v in verdicts} == {"not_equivalent"}
    run_error("gap", a, b, "--box", "-1", "1", "--bounds", "exact", match="invalid choice")


def test_regions_milp_bounds_by_name(files):
    """The MILP count is the same whatever bounds give its binaries, and equals the vertex count."""
    from mipnet.analyses.regions import count_regions
    from mipnet.parallel import InProcess

    path = files["dir"] / "net.npz"
    docs = json_all(*[("regions", "count", path, "--box", "-1", "1", "--method", "milp", "--bounds", m)
                      for m in ("ia", "alpha", "auto")])
    truth = count_regions(files["net"], Box(-1, 1, dim=3), method="vertex").regions
    assert [d["regions"] for d in docs] == [truth] * 3 and all(d["exact"] for d in docs)
    # by name on each work unit's sub-domain, too
    par = count_regions(files["net"], Box(-1, 1, dim=3), method="milp", bounds="symbolic", executor=InProcess())
    assert par.regions == truth and par.exact
    run_error("regions", "count", path, "--box", "-1", "1", "--bounds", "ia", match="--bounds is used by --method milp")


def test_gap_and_deprecated_epsilon(files):
    from mipnet.analyses.gap import pruning_gap

    a, b = files["dir"] / "net.npz", files["dir"] / "pruned.npz"
    # the old spelling --epsilon still works, with a warning on stderr
    p = run("gap", a, b, "--box", "-1", "1", "--epsilon", "100", "--json")
    d = _json_of(p)
    assert "--epsilon is deprecated; use --eps" in p.stderr
    ref = pruning_gap(files["net"], files["pruned"], Box(-1, 1, dim=3))
    assert d["exact"] and d["certified"] is True and d["epsilon"] == 100
    assert d["upper"] == pytest.approx(ref.upper, rel=1e-5) and d["upper"] >= d["lower"] > 0


def test_sparsity_allocate(files, tmp_path):
    d = run_json("sparsity", "allocate", "--widths", "784", "100", "100", "10", "--density", "0.001")
    assert d["log_bound"] >= 137.7 and abs(d["uniform_log_bound"] - 119.8) < 0.05
    assert d["widths"] == [784, 100, 100, 10] and len(d["densities"]) == 3


def test_train_and_prune(tmp_path):
    net_path, out_path = tmp_path / "net.npz", tmp_path / "pruned.npz"
    t = run_json("train", "--dataset", "digits", "--widths", "64", "12", "10", "--epochs", "1", "--limit", "200",
                 "--lr", "0.05", "--threads", "1", "-o", net_path, "--progress")
    assert t["widths"] == [64, 12, 10] and t["output"] == str(net_path) and net_path.is_file()
    p = run_json("prune", net_path, "--method", "magnitude", "--density", "0.25", "--limit", "200",
                 "--finetune-epochs", "1", "--threads", "1", "-o", out_path)
    pruned = load_network(out_path)
    assert p["pruning"]["kept"] == [192, 120] and pruned.num_nonzero_weights == 312
    assert p["layer_densities"] == [0.25, 1.0] and p["accuracy_after_finetuning"] is not None


def test_demo(tmp_path):
    d = run_json("demo", "-o", tmp_path / "tour", "--epochs", "2", "--time-limit", "5", "--radius", "0.2",
                 timeout=300)
    assert d["train"]["widths"] == [64, 16, 16, 10]
    assert (tmp_path / "tour" / "slice_0_1_7.png").is_file()


# ====================================================================== global flags
def test_version_and_verbose_anywhere(files):
    net = files["dir"] / "net.npz"
    version, before, after = run_all(["--version"], ["-v", "info", net, "--json"], ["info", net, "-v", "--json"])
    assert version.returncode == 0 and version.stdout.strip() == f"mipnet {mipnet.__version__}"
    assert _json_of(before) == _json_of(after) and _json_of(before)["widths"] == [3, 6, 6, 2]


# ====================================================================== clean errors
# (the exhaustive cases run in-process in test_cli_safety.py; these go through the executable)
def test_errors_through_the_executable(files, tmp_path):
    d = files["dir"]
    src = tmp_path / "net.npz"
    shutil.copy(d / "net.npz", src)
    before = src.read_bytes()
    errors_all(
        (["info", d / "empty.npz"], r"^mipnet info: error: .*empty \(0 bytes\)"),
        (["bounds", d / "net.npz", "--center", d / "words.txt", "--radius", "1"],
         r"mipnet bounds: error: --center .*words\.txt.*does not hold a list of numbers"),
        (["bounds", d / "net.npz", "--box", "0", "1", "--center", d / "c.npy", "--radius", "1"],
         r"mipnet bounds: error: --box cannot be combined with --center, --radius"),
        (["info", d / "net.npz", "--no-such-flag"], r"mipnet info: error: unrecognized arguments: --no-such-flag"),
        (["compress", src, "--box", "-1", "1", "-o", src], r"mipnet compress: error: -o .* is the input file"),
        (["prune", src, "--method", "random", "--density", "0.5", "-o", src],
         r"mipnet prune: error: -o .* is the input file"),
        (["regions", "count", src, "--box", "-1", "1", "--save-regions", src],
         r"mipnet regions count: error: --save-regions .* is the input file"),
    )
    assert src.read_bytes() == before


def _one_error_line(p: subprocess.CompletedProcess, line: str) -> None:
    """Exit 3, nothing on stdout, and stderr exactly the one line ``line`` (a regex): no warning before it."""
    _check_error(p, line)
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_workers_is_checked_alike_by_every_command(files, tmp_path):
    """Regression: `bounds --workers 0` (or -1) exited 0, while stable, regions count and verify
    reject it; and `--workers 0 --method ia` passed the unused-flag check (0 was taken for "not
    given"). An empty .txt centre file printed a numpy warning before the error line."""
    d = files["dir"]
    net, other = d / "net.npz", d / "pruned.npz"
    (tmp_path / "empty.txt").write_text("")
    cases = [
        (["bounds", net, "--box", "-1", "1", "--workers", "0"], "bounds", "0"),
        (["bounds", net, "--box", "-1", "1", "--workers", "-1"], "bounds", "-1"),
        (["bounds", net, "--box", "-1", "1", "--workers", "0", "--method", "ia"], "bounds", "0"),
        (["bounds", net, "--box", "-1", "1", "--workers", "0", "--json"], "bounds", "0"),
        (["stable", net, "--box", "-1", "1", "--workers", "0"], "stable", "0"),
        (["regions", "count", net, "--box", "-1", "1", "--workers", "-1"], "regions count", "-1"),
        (["verify", net, other, "--box", "-1", "1", "--workers", "0"], "verify", "0"),
    ]
    procs = run_all(*[argv for argv, _, _ in cases],
                    ["bounds", net, "--box", "-1", "1", "--workers", "1", "--method", "ia"],
                    ["regions", "bound", "--widths", "3", "6", "2", "--time-limit", "1"],
                    ["bounds", net, "--center", tmp_path / "empty.txt", "--radius", "0.5"])
    for p, (_, cmd, w) in zip(procs, cases):
        _one_error_line(p, rf"^mipnet {cmd}: error: argument --workers: must be >= 1, got {w}$")
    unused_workers, unused_zero, empty = procs[len(cases):]
    _one_error_line(unused_workers, r"^mipnet bounds: error: --workers is only used with --method lp$")
    # a given flag (an explicit 0 is now refused by --time-limit's own check, see below)
    _one_error_line(unused_zero, r"^mipnet regions bound: error: --time-limit is only used with --network-specific$")
    _one_error_line(empty, r"^mipnet bounds: error: --center .*empty\.txt'?: holds no numbers$")


def test_time_limit_is_checked_alike_by_every_command(files):
    """`--time-limit inf` meant no limit for stable and verify but exit 3 for regions count, regions
    estimate and gap, with two wordings: every --time-limit now takes a positive, finite number."""
    d = files["dir"]
    net, other = d / "net.npz", d / "pruned.npz"
    base = {"regions count": ["regions", "count", net, "--box", "-1", "1"],
            "regions estimate": ["regions", "estimate", net, "--box", "-1", "1"],
            "stable": ["stable", net, "--box", "-1", "1"],
            "verify": ["verify", net, other, "--box", "-1", "1"],
            "gap": ["gap", net, other, "--box", "-1", "1"]}
    cases = [(cmd, v) for cmd in base for v in ("inf", "nan", "0", "-1")]
    procs = run_all(*[base[cmd] + ["--time-limit", v] for cmd, v in cases])
    for p, (cmd, v) in zip(procs, cases):  # (argparse's usage lines come first)
        _check_error(p, rf"^mipnet {cmd}: error: argument --time-limit: must be a positive, finite number of "
                        rf"seconds \(leave the flag out for no limit\), got '{v}'$")


def test_reject_unused_counts_an_explicit_zero_as_given():
    import argparse

    from mipnet.cli.common import reject_unused
    from mipnet.core.errors import InvalidArgumentError

    for v in (0, 0.0, 1, True, "x"):
        with pytest.raises(InvalidArgumentError, match="--workers is only used with --method lp"):
            reject_unused(argparse.Namespace(workers=v), "with --method lp", "--workers")
    for v in (None, False):
        reject_unused(argparse.Namespace(workers=v), "with --method lp", "--workers")


def test_output_in_read_only_directory(files, tmp_path, read_only_dir):
    ro = read_only_dir
    run_error("compress", files["dir"] / "stable.npz", "--box", "-1", "1", "-o", ro / "small.onnx",
              match=r"mipnet compress: error: -o .*cannot write to the directory")


# ====================================================================== Ctrl-C
def test_ctrl_c_exits_130_with_json(tmp_path):
    path = tmp_path / "big.npz"
    save_network(Network.random([8, 40, 40, 2], seed=0), path)  # far too many regions to finish
    proc = subprocess.Popen([MIPNET, "regions", "count", str(path), "--box", "-1", "1", "--progress", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err: list = []
    started = threading.Event()

    def read_stderr():
        for chunk in iter(lambda: proc.stderr.read(1), ""):
            err.append(chunk)
            if "region" in "".join(err[-40:]):
                started.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        assert started.wait(60), "the count never started: " + "".join(err)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out = proc.stdout.read()
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(10)
    stderr = "".join(err)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "mipnet regions count: interrupted" in stderr
    d = strict_json(out)
    assert d["status"] == "interrupted"
    if "regions" in d:  # the analysis returned its partial count: a lower bound
        assert d["exact"] is False and d["regions"] >= 0 and "interrupted" in d.get("message", "interrupted")


def test_values_that_overflow_float64_give_one_error_line(tmp_path):
    """Finite weights of 1e150 overflow float64 on the box: exit 3 with one error line (numpy's
    overflow warnings used to come with it), and `regions count` names the overflow instead of
    'weights or bias contain NaN or inf'."""
    rng = np.random.default_rng(1)
    W = [rng.normal(size=(5, 3)) * 1e150, rng.normal(size=(4, 5)) * 1e150, rng.normal(size=(2, 4)) * 1e150]
    path = tmp_path / "huge.npz"
    save_network(Network(W, [np.zeros(5), np.zeros(4), np.zeros(2)]), path)
    for cmd in (["bounds"], ["regions", "count"], ["stable"]):
        p = subprocess.run(["mipnet", *cmd, str(path), "--box", "-1", "1", "--json"], capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 3 and p.stdout == "", (cmd, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and "overflow" in lines[0], (cmd, p.stderr)


def test_verify_on_workers_that_stop_early_leaves_stderr_clean(tmp_path):
    """A counterexample found while units still ran on the workers: closing the cluster cut their
    result transfers, and tornado logged 'Exception in callback ... Stream is closed' with a
    traceback on stderr in about half of the runs (verdict and exit code were right)."""
    s = Network.random([64, 50, 50, 10], seed=7)
    rng = np.random.default_rng(5)
    q = Network([w * (1 + 1e-4 * rng.normal(size=w.shape)) for w in s.weights], [x.copy() for x in s.biases])
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    save_network(s, a)
    save_network(q, b)
    for _ in range(2):
        p = run("verify", a, b, "--box", "0", "1", "--mode", "top1", "--engine", "bab", "--workers", "2", "--json",
                timeout=300)
        assert p.returncode == 1 and strict_json(p.stdout)["verdict"] == "not_equivalent"
        assert "Traceback" not in p.stderr and "ERROR" not in p.stderr and "Exception" not in p.stderr, p.stderr
