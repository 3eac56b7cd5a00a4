"""CLI conventions checked in-process through ``mipnet.cli.main`` (fast): argument syntax,
conflicting flags, clean errors, output-path safety, atomic writes, Ctrl-C exit codes.

``test_cli_subprocess.py`` runs the installed executable for every sub-command; this file
covers the many error cases without paying a process start for each.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest

import mipnet.cli.info as info_cmd
from mipnet import Network
from mipnet.cli import build_parser, main
from mipnet.cli.common import (
    EXIT_INTERRUPTED,
    atomic_write,
    emit_json,
    exit_code,
    normalise_argv,
)
from mipnet.io import load_network, save_network
from mipnet.io.files import atomic_write as io_atomic_write


def cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def expect_error(capsys, *argv, match: str, rc: int = 3) -> str:
    code, out, err = cli(capsys, *argv)
    assert code == rc, f"{argv}: exit {code}\nstdout:\n{out}\nstderr:\n{err}"
    assert re.search(match, err, re.M), f"{match!r} not in stderr:\n{err}"
    assert out == ""
    return err


@pytest.fixture
def d(tmp_path):
    net = Network.random([3, 6, 6, 2], seed=0)
    save_network(net, tmp_path / "net.npz")
    save_network(Network.random([3, 6, 5, 2], seed=3, bias_scale=1.5), tmp_path / "stable.npz")
    np.save(tmp_path / "c.npy", np.array([0.1, -0.2, 0.3]))
    np.save(tmp_path / "a.npy", np.array([0.1, 0.2, 0.0]))
    np.save(tmp_path / "b.npy", np.array([-0.5, 0.3, 0.1]))
    return tmp_path


# ====================================================================== parser conventions
def _parsers(parser, prefix="mipnet"):
    """Every (sub-)parser of the command tree."""
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{prefix} {name}")


def test_every_command_help_has_an_example_and_states_defaults():
    names = []
    for name, p in _parsers(build_parser()):
        text = p.format_help()
        names.append(name)
        assert "examples:" in text, name
        examples = text.split("examples:", 1)[1]
        assert re.search(r"^\s+mipnet ", examples, re.M), name
        # every example of a leaf command starts with that command
        if name != "mipnet" and not any(isinstance(a, argparse._SubParsersAction) for a in p._actions):
            assert all(line.strip().startswith(name) for line in examples.strip().splitlines()), name
        for a in p._actions:
            if a.option_strings and a.help != argparse.SUPPRESS and a.default not in (None, False, argparse.SUPPRESS) \
                    and not isinstance(a, (argparse._HelpAction, argparse._VersionAction)):
                assert "default" in p._get_formatter()._expand_help(a).lower(), f"{name} {a.option_strings}"
    for expected in ("mipnet info", "mipnet bounds", "mipnet regions count", "mipnet regions bound",
                     "mipnet regions sample", "mipnet regions estimate", "mipnet regions slice", "mipnet stable",
                     "mipnet compress", "mipnet verify", "mipnet gap", "mipnet sparsity allocate", "mipnet train",
                     "mipnet prune", "mipnet demo"):
        assert expected in names


def test_help_and_version_return_0(capsys):
    rc, out, _ = cli(capsys, "verify", "--help")
    assert rc == 0 and "--eps E" in out and "--epsilon" not in out  # the old spelling is hidden
    rc, out, _ = cli(capsys, "--version")
    assert rc == 0 and out.strip() == f"mipnet {__import__('mipnet').__version__}"


def test_one_meaning_per_flag():
    """A flag spelled the same in two commands takes the same kind of value everywhere."""
    seen = {}
    for name, p in _parsers(build_parser()):
        for a in p._actions:
            for opt in a.option_strings:
                if opt in ("-h", "--help") or a.help == argparse.SUPPRESS:
                    continue
                kind = (type(a).__name__, a.nargs if a.nargs is not None else 1, getattr(a, "type", None))
                if opt in ("-o", "--output", "--density", "--method", "--samples", "--seed", "--tol", "--merge"):
                    kind = kind[:2]  # a path / choices differ per command, the kind of value does not
                seen.setdefault(opt, {}).setdefault(kind, []).append(name)
    clashes = {opt: kinds for opt, kinds in seen.items() if len(kinds) > 1}
    assert not clashes


def test_negative_numbers_and_comma_lists_parse():
    parser = build_parser()

    def parse(*argv):
        return parser.parse_args(normalise_argv(list(argv)))

    a = parse("bounds", "m.npz", "--box", "-1e12", "1e12")
    assert a.box == [-1e12, 1e12]
    a = parse("bounds", "m.npz", "--box=-1e-3,-1E-4", "--method", "ia")
    assert a.box == [-1e-3, -1e-4]
    a = parse("gap", "a.npz", "b.npz", "--center", "c.npy", "--radius", ".5", "--clip", "-.5", "-1e-1")
    assert a.clip == [-0.5, -0.1]
    a = parse("regions", "slice", "m.npz", "--axes", "-1", "0", "--box", "-2.5,2.5")
    assert a.axes == [-1, 0] and a.box == [-2.5, 2.5]
    a = parse("sparsity", "allocate", "--widths", "784,100", "10", "--density", "0.1", "--prunable", "-1")
    assert a.widths == ["784", "100", "10"] and a.prunable == ["-1"]
    a = parse("prune", "m.npz", "--method", "magnitude", "--density", "0.5", "--densities", "0.2,0.4", "0.6",
              "-o", "p.npz")
    assert a.densities == [0.2, 0.4, 0.6]
    a = parse("info", "m.pt", "--input-shape", "1,28,28")
    assert a.input_shape == [1, 28, 28]
    # commas elsewhere (file names) are left alone
    assert normalise_argv(["info", "a,b.npz", "--box", "0,1"]) == ["info", "a,b.npz", "--box", "0", "1"]


def test_verbose_before_and_after_the_command(d, capsys):
    for argv in (["-v", "info", d / "net.npz", "--json"], ["info", d / "net.npz", "--json", "--verbose"],
                 ["regions", "-v", "count", d / "net.npz", "--box", "-1", "1", "--json"]):
        rc, out, _ = cli(capsys, *argv)
        assert rc == 0 and json.loads(out)
        assert logging.getLogger().level == logging.INFO
    rc, out, _ = cli(capsys, "info", d / "net.npz", "--json")
    assert rc == 0 and logging.getLogger().level == logging.WARNING


def test_deprecated_merge_alias(d, capsys):
    rc, out, err = cli(capsys, "regions", "count", d / "net.npz", "--box", "-1", "1", "--merge", "--json")
    assert rc == 0 and "--merge is deprecated; use --linear-regions" in err
    assert json.loads(out)["linear_regions"] >= 1


# ====================================================================== conflicts and bad values
@pytest.mark.parametrize("argv, match", [
    (["bounds", "{net}", "--box", "0", "1", "--center", "{c}", "--radius", "1"],
     r"^mipnet bounds: error: --box cannot be combined with --center, --radius"),
    (["verify", "{net}", "{net}", "--box", "0", "1", "--clip", "0", "1"], r"--box cannot be combined with --clip"),
    (["gap", "{net}", "{net}", "--box", "0", "1", "--radius", "1"], r"--box cannot be combined with --radius"),
    (["stable", "{net}", "--radius", "1"], r"^mipnet stable: error: --radius needs --center"),
    (["stable", "{net}", "--clip", "0", "1"], r"--clip needs --center"),
    (["stable", "{net}", "--center", "{c}"], r"--center needs --radius"),
    (["regions", "bound", "--widths", "3", "4", "2", "--box", "0", "1"], r"only used with --network-specific"),
    (["regions", "bound", "--widths", "3", "4", "2", "--time-limit", "5"], r"--time-limit is only used with"),
    (["regions", "bound", "--widths", "3", "4", "2", "--density", "0.5", "--densities", "0.5"],
     r"not allowed with argument --density"),
    (["regions", "slice", "{net}", "--points", "{a}", "{b}", "{c}", "--base", "{c}"], r"--base is only used with --axes"),
    (["regions", "slice", "{net}", "--axes", "0", "1", "--margin", "0.5"], r"--margin is only used with --points"),
    (["regions", "slice", "{net}", "--axes", "0", "1", "--color-by", "class"], r"--color-by is only used with -o"),
    (["verify", "{net}", "{net}", "--box", "0", "1", "--norm", "l1"], r"--norm is only used with --mode epsilon"),
    (["bounds", "{net}", "--box", "0", "1", "--arrays"], r"--arrays is only used with --json"),
    (["stable", "{net}", "--box", "0", "1", "--arrays"], r"--arrays is only used with --json"),
    (["info", "{net}", "--input-shape", "1", "2", "2"], r"--input-shape is only used with torch models"),
    (["verify", "{net}", "{net}", "--box", "0", "1", "--eps", "0.1"], r"--eps is only used with --mode epsilon"),
    (["sparsity", "allocate", "--widths", "8", "4", "2", "--density", "0.5", "--samples", "9"],
     r"--samples is only used with --rank-model sampled"),
    (["prune", "{net}", "--method", "global", "--density", "0.5", "--densities", "0.5", "0.5", "-o", "{out}"],
     r"--densities is only used with --method magnitude/random/sipp"),
    (["prune", "{net}", "--method", "magnitude", "--density", "0.5", "--sipp-variant", "random", "-o", "{out}"],
     r"--sipp-variant is only used with --method sipp"),
    (["prune", "{net}", "--method", "magnitude", "--density", "1.5", "-o", "{out}"],
     r"^mipnet prune: error: argument --density: density must lie in \(0, 1\]"),
    (["info", "{net}", "--no-such-flag"], r"^mipnet info: error: unrecognized arguments: --no-such-flag"),
    (["regions", "count", "{net}", "--box", "-1", "1", "--bogus"], r"^mipnet regions count: error: unrecognized"),
    (["regions"], r"^mipnet regions: error: .*required: SUBCOMMAND"),
    (["sparsity"], r"^mipnet sparsity: error: .*required: SUBCOMMAND"),
    (["bounds", "{net}", "--box", "0"], r"^mipnet bounds: error: argument --box: expected 2"),
    (["bounds", "{net}", "--box", "0", "x"], r"argument --box: 'x' is not a number"),
    (["bounds", "{net}", "--box", "0,1,2"], r"argument --box: expected 2 values, got 3|unrecognized arguments: 2"),
    (["bounds", "{net}", "--box", "1", "-1"], r"^mipnet bounds: error: "),
    (["regions", "bound", "--widths", "784", "1a", "10"], r"'1a' is not an integer"),
    (["regions", "estimate", "{net}", "--box", "0", "1", "--samples", "-5"], r"--samples must be >= 0"),
    (["train", "--dataset", "digits", "--widths", "64", "-o", "{out}", "--epochs", "1"],
     r"needs at least the input and output sizes"),
    (["gap", "{net}", "{net}", "--box", "0", "1", "--limit", "5"], r"--data-path and --limit go with --dataset"),
    ([], r"^mipnet: error: give a command"),
])
def test_argument_errors_are_clean(d, capsys, argv, match):
    subs = {"net": d / "net.npz", "c": d / "c.npy", "a": d / "a.npy", "b": d / "b.npy", "out": d / "out.npz"}
    expect_error(capsys, *[a.format(**subs) for a in argv], match=match)
    assert not (d / "out.npz").exists()


# ====================================================================== load errors
def test_load_errors_are_clean(d, capsys):
    (d / "empty.npz").write_bytes(b"")
    (d / "empty.onnx").write_bytes(b"")
    (d / "words.txt").write_text("zero one two\n")
    (d / "ragged.json").write_text("[[1, 2], [3]]")
    (d / "obj.json").write_text('{"y": [1, 2, 3]}')
    (d / "nan.txt").write_text("1 nan 2\n")
    np.save(d / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    os.mkdir(d / "folder.onnx")
    net = d / "net.npz"
    expect_error(capsys, "info", d / "empty.npz", match=r"^mipnet info: error: .*empty \(0 bytes\)")
    expect_error(capsys, "info", d / "empty.onnx", match=r"^mipnet info: error: .*empty \(0 bytes\)")
    expect_error(capsys, "info", d / "folder.onnx", match=r"is a directory, not a model file")
    expect_error(capsys, "info", d / "missing.npz", match=r"^mipnet info: error: no such model file")
    expect_error(capsys, "gap", net, d / "empty.npz", "--box", "0", "1", match=r"^mipnet gap: error: .*empty")
    for f, why in (("words.txt", "does not hold a list of numbers"), ("ragged.json", "does not hold a list"),
                   ("obj.json", "needs a 'center' or 'x' entry"), ("nan.txt", "NaN or infinite"),
                   ("pickled.npy", "does not hold a list of numbers"), ("missing.npy", "no such file"),
                   ("folder.onnx", "is a directory")):
        expect_error(capsys, "bounds", net, "--center", d / f, "--radius", "1",
                     match=rf"^mipnet bounds: error: --center .*{re.escape(f)}.*{why}")
    expect_error(capsys, "regions", "slice", net, "--points", d / "a.npy", d / "b.npy", d / "words.txt",
                 match=r"--points file .*words\.txt.*does not hold a list of numbers")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_model_is_a_clean_error(d, capsys):
    (d / "net.npz").chmod(0)
    expect_error(capsys, "info", d / "net.npz", match=r"^mipnet info: error: Permission denied")


# ====================================================================== output paths
def test_outputs_never_overwrite_inputs(d, capsys):
    src = d / "net.npz"
    before = src.read_bytes()
    (d / "link.npz").symlink_to(src)
    os.link(src, d / "hard.npz")
    (d / "sub").mkdir()
    cases = [
        (["compress", src, "--box", "-1", "1", "-o", src], r"^mipnet compress: error: -o .* is the input file"),
        (["compress", src, "--box", "-1", "1", "-o", d / "sub" / ".." / "net.npz"], r"is the input file"),
        (["compress", src, "--box", "-1", "1", "-o", d / "link.npz"], r"is the input file"),
        (["compress", d / "link.npz", "--box", "-1", "1", "-o", src], r"is the input file"),
        (["compress", src, "--box", "-1", "1", "-o", d / "hard.npz"], r"is the input file"),
        (["compress", src, "--center", d / "c.npy", "--radius", "1", "-o", d / "c.npy"],
         r"is the input file|unknown model file extension"),
        (["prune", src, "--method", "random", "--density", "0.5", "-o", d / "hard.npz"],
         r"^mipnet prune: error: -o .* is the input file"),
        (["regions", "count", src, "--box", "-1", "1", "--save-regions", d / "link.npz"],
         r"^mipnet regions count: error: --save-regions .* is the input file"),
        (["regions", "slice", src, "--points", d / "a.npy", d / "b.npy", d / "c.npy", "-o", d / "a.npy"],
         r"^mipnet regions slice: error: -o .*a\.npy.* is the input file"),
        (["sparsity", "allocate", src, "--density", "0.5", "--plot", src], r"--plot .* is the input file"),
    ]
    for argv, match in cases:
        expect_error(capsys, *argv, match=match)
    assert src.read_bytes() == before and (d / "hard.npz").read_bytes() == before
    assert (d / "c.npy").read_bytes()[:6] == b"\x93NUMPY"


def test_output_paths_are_checked_before_the_work(d, capsys):
    out = d / "out"
    out.mkdir()
    src = d / "stable.npz"
    cases = [
        (["compress", src, "--box", "-1", "1", "-o", out], r"^mipnet compress: error: -o .* is a directory"),
        (["compress", src, "--box", "-1", "1", "-o", out / "no" / "x.onnx"],
         r"-o .*the directory .*no.* does not exist"),
        (["compress", src, "--box", "-1", "1", "-o", d / "net.npz" / "x.onnx"], r"is not a directory"),
        (["compress", src, "--box", "-1", "1", "-o", out / "x.txt"], r"unknown model file extension '\.txt'"),
        (["regions", "count", src, "--box", "-1", "1", "--save-regions", out / "r.txt"], r"must end in \.npz"),
        (["regions", "slice", src, "--axes", "0", "1", "-o", out / "s.npz"], r"unknown picture format '\.npz'"),
        (["sparsity", "allocate", "--widths", "8", "4", "2", "--density", "0.5", "--plot", out / "p"],
         r"--plot .*unknown picture format '\(none\)'"),
        (["train", "--dataset", "digits", "--widths", "64", "8", "10", "--epochs", "100000", "-o", out / "n" / "x.onnx"],
         r"^mipnet train: error: -o .*does not exist"),
        (["prune", src, "--method", "magnitude", "--density", "0.5", "-o", out / "p.h5"],
         r"unknown model file extension '\.h5'"),
        (["demo", "-o", d / "net.npz"], r"^mipnet demo: error: -o .* exists and is not a directory"),
        (["demo", "-o", out / "a" / "b"], r"^mipnet demo: error: -o .*does not exist"),
    ]
    for argv, match in cases:
        expect_error(capsys, *argv, match=match)
    assert os.listdir(out) == []


def test_read_only_output_directory(d, capsys, read_only_dir):
    ro = read_only_dir
    for argv in (["compress", d / "stable.npz", "--box", "-1", "1", "-o", ro / "small.onnx"],
                 ["regions", "count", d / "net.npz", "--box", "-1", "1", "--save-regions", ro / "r.npz"],
                 ["regions", "slice", d / "net.npz", "--axes", "0", "1", "-o", ro / "s.png"],
                 ["sparsity", "allocate", "--widths", "8", "4", "2", "--density", "0.5", "--plot", ro / "b.png"],
                 ["train", "--dataset", "digits", "--widths", "64", "8", "10", "--epochs", "1", "-o", ro / "n.npz"],
                 ["demo", "-o", ro / "tour"]):
        cmd = " ".join(str(a) for a in argv[:2] if not str(a).startswith(("/", "-")))
        expect_error(capsys, *argv, match=rf"^mipnet {cmd}: error: .*cannot write to the directory")


def test_write_errors_after_the_check_are_clean(d, capsys, monkeypatch):
    """An OSError while writing (disk full, folder removed, ...) is one clean line, exit 3."""
    import mipnet.io.files as files

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device", str(d / "small.npz"))

    monkeypatch.setattr(files, "_write_npz", full_disk)
    expect_error(capsys, "compress", d / "stable.npz", "--box", "-1", "1", "-o", d / "small.npz",
                 match=r"^mipnet compress: error: No space left on device: .*small\.npz")
    assert not (d / "small.npz").exists()
    assert not [f for f in os.listdir(d) if f.startswith(".")]


# ====================================================================== atomic writes
def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "x.npz"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(".npz")
            Path(tmp).write_bytes(b"half")
            raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["x.npz"]
    with pytest.raises(KeyboardInterrupt):
        with io_atomic_write(target) as tmp:
            Path(tmp).write_bytes(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["x.npz"]
    with io_atomic_write(target) as tmp:
        Path(tmp).write_bytes(b"new")
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["x.npz"]
    # a symbolic link stays a link; its target gets the content
    (tmp_path / "link.npz").symlink_to(target)
    with io_atomic_write(tmp_path / "link.npz") as tmp:
        Path(tmp).write_bytes(b"via link")
    assert (tmp_path / "link.npz").is_symlink() and target.read_bytes() == b"via link"


def test_save_network_is_atomic(tmp_path):
    # one code path for every format: save_network wraps the writer in atomic_write
    path = tmp_path / "net.npz"
    net = Network.random([3, 4, 2], seed=1)
    save_network(Network.random([3, 5, 2], seed=2), path)
    save_network(net, path)  # over an existing file
    assert load_network(path).allclose(net) and os.listdir(tmp_path) == [path.name]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # the usual mode, not mkstemp's 0600


# ====================================================================== JSON and Ctrl-C
def test_emit_json_is_strict(capsys):
    emit_json({"a": float("inf"), "b": [np.float64("nan"), np.int64(3)], "c": np.arange(2), "d": np.bool_(True)})
    out = capsys.readouterr().out
    assert json.loads(out, parse_constant=lambda c: pytest.fail(c)) == {"a": None, "b": [None, 3], "c": [0, 1],
                                                                        "d": True}


def test_exit_code_of_interrupted_results():
    class Result:
        def __init__(self, status):
            self.status = status

    assert exit_code(Result("complete")) == 0 and exit_code(None, ok=1) == 1
    assert exit_code(Result("interrupted")) == exit_code({"status": "partial"}) == EXIT_INTERRUPTED
    assert exit_code(Result("time_limit"), ok=2) == 2
    assert exit_code(Result("complete"), Result("interrupted"), ok=1) == EXIT_INTERRUPTED


def test_keyboard_interrupt_escaping_a_command(d, capsys, monkeypatch):
    def interrupted_handler(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(info_cmd, "handle", interrupted_handler)
    rc, out, err = cli(capsys, "info", d / "net.npz", "--json")
    assert rc == 130 and json.loads(out) == {"status": "interrupted", "command": "info"}
    assert err.strip() == "mipnet info: interrupted"
    rc, out, err = cli(capsys, "info", d / "net.npz")  # without --json: nothing on stdout
    assert rc == 130 and out == "" and "mipnet info: interrupted" in err and "Traceback" not in err


def test_partial_result_is_printed_once_and_exits_130(d, capsys, monkeypatch):
    def partial_handler(args):
        res = {"status": "interrupted", "exact": False, "regions": 5}
        emit_json(res)
        return exit_code(res)

    monkeypatch.setattr(info_cmd, "handle", partial_handler)
    rc, out, err = cli(capsys, "info", d / "net.npz", "--json")
    assert rc == 130 and json.loads(out) == {"status": "interrupted", "exact": False, "regions": 5}
    assert "mipnet info: interrupted" in err

    def partial_then_interrupt(args):  # printed its partial result, then Ctrl-C again
        emit_json({"status": "interrupted"})
        raise KeyboardInterrupt

    monkeypatch.setattr(info_cmd, "handle", partial_then_interrupt)
    rc, out, err = cli(capsys, "info", d / "net.npz", "--json")
    assert rc == 130 and json.loads(out) == {"status": "interrupted"}  # still one document


# ====================================================================== README
README = Path(__file__).resolve().parents[1] / "README.md"


def _leaf(parser, words):
    """The sub-parser of ``mipnet WORDS...`` and how many words named it."""
    used = 0
    for w in words:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or w not in subs[0].choices:
            break
        parser, used = subs[0].choices[w], used + 1
    return parser, used


def test_readme_command_table_matches_the_flags():
    text = README.read_text()
    section = text.split("## Command line", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `mipnet")]
    assert len(rows) >= 15
    root = build_parser()
    domain = {"--box", "--center", "--radius", "--clip"}
    for row in rows:
        usage = row.split("`")[1]
        words = usage.split()[1:]
        parser, _ = _leaf(root, words)
        options = {o for a in parser._actions for o in a.option_strings}
        flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-o)\b", usage))
        if "DOMAIN" in usage:
            flags |= domain
        missing = flags - options
        assert not missing, f"{usage}: {sorted(missing)} not options of {parser.prog}"


def test_readme_command_lines_parse():
    parser = build_parser()
    lines = [line.strip() for line in README.read_text().splitlines() if line.strip().startswith("mipnet ")]
    assert len(lines) >= 4
    for line in lines:
        argv = line.split("#")[0].split()[1:]
        ns = parser.parse_args(normalise_argv(argv))
        assert getattr(ns, "func", None) is not None, line
