"""What the sub-commands share: the parser class, flag helpers, input/output checks, results.

Conventions every command follows (and ``tests/test_cli_*.py`` check):

* ``--json`` prints exactly one JSON document on stdout; messages, warnings and progress
  bars go to stderr. Non-finite numbers are written as ``null`` (strict JSON).
* Exit status: 0 success (``verify``: 0/1/2 equivalent/not/unknown), 3 any error (bad
  arguments included, message ``mipnet CMD: error: ...`` on stderr), 130 interrupted
  (Ctrl-C; a partial result is still printed).
* Lists are space separated (``--box -1 1``, ``--widths 784 100 10``); the comma form
  (``--box -1,1``, ``--widths 784,100,10``) is accepted as well. Negative numbers and
  exponents (``--box -1e12 1e12``) are values, never options.
* ``--eps`` is the user's allowed output difference, ``--tol`` a numerical tolerance,
  ``--time-limit`` seconds, ``--samples`` a number of random inputs, ``--seed`` the random
  seed, ``-o/--output`` where the result is written, ``--progress/--no-progress`` the
  progress bars (default: shown when stderr is a terminal).
* Every output path is checked before the work starts (its folder exists and is writable,
  it is not a folder, it is none of the command's input files) and written atomically.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import re
import sys
import tempfile
import warnings
from typing import Iterable, Optional

import numpy as np

from mipnet.core.errors import InvalidArgumentError, InvalidDomainError

EXIT_OK = 0
EXIT_ERROR = 3
EXIT_INTERRUPTED = 130

#: Result statuses that mean "stopped by Ctrl-C"; the command then exits with 130.
INTERRUPTED_STATUSES = frozenset({"interrupted", "partial"})

# Tokens that start with '-' followed by a digit, '.digit' or 'inf' are values (negative
# numbers, exponents, comma lists), never options: no mipnet option looks like that.
_NEGATIVE_NUMBER = re.compile(r"^-(?:\d|\.\d|inf|nan)[\w.,+-]*$", re.IGNORECASE)


# ====================================================================== parser
class UsageError(InvalidArgumentError):
    """A command line argparse could not accept; carries the parser that rejected it."""

    def __init__(self, message: str, parser: Optional[argparse.ArgumentParser] = None) -> None:
        super().__init__(message)
        self.parser = parser


class HelpFormatter(argparse.HelpFormatter):
    """Wraps paragraphs, keeps indented lines (examples) as they are, states defaults."""

    def _fill_text(self, text, width, indent):
        out = []
        for line in text.splitlines():
            if not line.strip() or line[:1].isspace():
                out.append(indent + line)
            else:
                out.append(super()._fill_text(line, width, indent))
        return "\n".join(out)

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (not action.option_strings or "default" in text.lower() or default is None or default is False
                or default is argparse.SUPPRESS or isinstance(action, argparse._VersionAction)):
            return text
        if isinstance(default, (list, tuple)):
            default = " ".join(map(str, default))
        return f"{text} (default: {str(default).replace('%', '%%')})"


class ArgumentParser(argparse.ArgumentParser):
    """argparse with mipnet's conventions.

    Errors raise :class:`UsageError` (an :class:`~mipnet.core.errors.InvalidArgumentError`)
    instead of exiting, negative numbers are values, and every parser accepts
    ``-v/--verbose`` so that it works before and after the sub-command.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE_NUMBER
        self.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                          help="log details to stderr (also accepted before the command)")

    def error(self, message):  # argparse calls this for every bad command line
        raise UsageError(message, self)

    def parse_known_args(self, args=None, namespace=None):
        ns, extras = super().parse_known_args(args, namespace)
        if not hasattr(ns, "_parser"):
            ns._parser = self  # the innermost (sub-)parser that parsed the line
        return ns, extras

    def parse_args(self, args=None, namespace=None):
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            raise UsageError(f"unrecognized arguments: {' '.join(extras)}", getattr(ns, "_parser", self))
        return ns


def add_command(subparsers, name: str, *, help: str, description: str, examples: Iterable[str],
                **kwargs) -> ArgumentParser:
    """A sub-command parser with an ``examples:`` epilog."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)
    p = subparsers.add_parser(name, help=help, description=description, epilog=epilog, **kwargs)
    p.set_defaults(_parser=p)
    return p


def add_subcommands(parser: argparse.ArgumentParser, dest: str) -> argparse._SubParsersAction:
    """Sub-commands of a group (``regions``, ``sparsity``); one of them is required."""
    return parser.add_subparsers(dest=dest, metavar="SUBCOMMAND", required=True)


def command_name(args: argparse.Namespace) -> str:
    """``"regions count"`` for ``mipnet regions count ...``."""
    parser = getattr(args, "_parser", None)
    if parser is not None and parser.prog.startswith("mipnet "):
        return parser.prog[len("mipnet "):]
    return getattr(args, "command", None) or "mipnet"


# ====================================================================== flags
#: Option strings of list flags, for :func:`normalise_argv` (filled by :func:`add_list_arg`).
LIST_FLAGS: set = set()


class _ListAction(argparse.Action):
    """Store a list of ``type`` values; commas inside a value split it."""

    def __init__(self, option_strings, dest, *, item_type=float, count=None, **kwargs):
        self.item_type = item_type
        self.count = count
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        items = []
        for v in values if isinstance(values, list) else [values]:
            items.extend(t for t in str(v).split(","))
        out = []
        for t in items:
            t = t.strip()
            if not t:
                raise UsageError(f"argument {option_string}: empty entry in {' '.join(map(str, values))!r}", parser)
            try:
                out.append(self.item_type(t))
            except ValueError:
                kind = "an integer" if self.item_type is int else "a number"
                raise UsageError(f"argument {option_string}: {t!r} is not {kind}", parser) from None
        if self.count is not None and len(out) != self.count:
            raise UsageError(f"argument {option_string}: expected {self.count} values, got {len(out)}", parser)
        setattr(namespace, self.dest, out)


def add_list_arg(p, *flags: str, item_type=float, count: Optional[int] = None, **kwargs):
    """A list flag: ``count`` values (or one or more), space or comma separated."""
    LIST_FLAGS.update(flags)
    return p.add_argument(*flags, action=_ListAction, item_type=item_type, count=count,
                          nargs=count if count is not None else "+", **kwargs)


def normalise_argv(argv: list) -> list:
    """Split comma lists after list flags (``--box -1,1`` -> ``--box -1 1``; ``--box=-1,1`` too).

    Only the values of flags registered by :func:`add_list_arg` are touched, so commas in
    file names elsewhere are left alone.
    """
    out, i = [], 0
    while i < len(argv):
        tok = argv[i]
        flag, eq, val = tok.partition("=")
        if eq and flag in LIST_FLAGS:
            out.append(flag)
            out.extend(val.split(","))
            i += 1
            continue
        out.append(tok)
        i += 1
        if tok in LIST_FLAGS:
            while i < len(argv) and "," in argv[i] and not (argv[i].startswith("-")
                                                            and not _NEGATIVE_NUMBER.match(argv[i])):
                out.extend(argv[i].split(","))
                i += 1
    return out


class _DeprecatedAlias(argparse.Action):
    def __init__(self, option_strings, dest, *, new: str, flag: bool = False, **kwargs):
        self.new, self.flag = new, flag
        super().__init__(option_strings, dest, nargs=0 if flag else None, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: warning: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, True if self.flag else values)


def add_deprecated_alias(p, old: str, new: str, *, dest: str, flag: bool = False, type=None) -> None:
    """A hidden old spelling of ``new`` that still works (with a warning on stderr)."""
    kw = {} if flag else {"type": type}
    p.add_argument(old, dest=dest, action=_DeprecatedAlias, new=new, flag=flag, default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS, **kw)


def seconds(text: str) -> float:
    """The argparse type of every ``--time-limit``: a positive, finite number of seconds."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds: {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a positive, finite number of seconds (leave the flag out for "
                                         f"no limit), got {text!r}")
    return v


def add_json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result as one JSON document on stdout")


def add_progress_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars on stderr (default: when stderr is a terminal)")


def progress_enabled(args) -> bool:
    flag = getattr(args, "progress", None)
    if flag is not None:
        return bool(flag)
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def add_bounds_arg(p: argparse.ArgumentParser, *, default: str, what: str) -> None:
    """``--bounds {ia,symbolic,alpha,lp,auto}``: how the neuron bounds that ``what`` starts from are computed."""
    p.add_argument("--bounds", choices=["ia", "symbolic", "alpha", "lp", "auto"], default=default,
                   help=f"neuron bounds {what} (see 'mipnet bounds --help'; auto: symbolic, alpha-CROWN where "
                        f"it pays, sign-only LPs for what they leave open; default {default})")


def add_parallel_args(p: argparse.ArgumentParser) -> None:
    """``--workers N`` (a local Dask cluster) or ``--scheduler ADDRESS`` (an existing one)."""
    g = p.add_argument_group("parallel (dask.distributed)")
    x = g.add_mutually_exclusive_group()
    x.add_argument("--workers", type=int, metavar="N",
                   help="run the work units on a local Dask cluster of N worker processes (default 1: in this process)")
    x.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the work units on an existing Dask cluster, e.g. tcp://10.0.0.1:8786")


def check_workers(args) -> None:
    """Error unless ``--workers`` (when given) is a positive integer."""
    workers = getattr(args, "workers", None)
    if workers is not None and workers < 1:
        raise UsageError(f"argument --workers: must be >= 1, got {workers}")


def parallel_executor(args):
    """Context manager: the executor of ``--workers``/``--scheduler`` (None in-process), closed on exit and Ctrl-C."""
    from mipnet.parallel import executor_from

    check_workers(args)
    return executor_from(getattr(args, "workers", None), getattr(args, "scheduler", None))


def executor_kwargs(fn, executor, args=None) -> dict:
    """``{"executor": executor}`` if ``fn`` takes one; an error if the user asked for workers it cannot use."""
    if executor is None:
        return {}
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    if "executor" in params:
        return {"executor": executor}
    raise UsageError(f"{getattr(fn, '__name__', fn)} runs in one process in this version: drop --workers/--scheduler")


def add_domain_args(p: argparse.ArgumentParser, *, required: bool = False, l1: bool = False) -> None:
    """``--box LO HI`` or ``--center FILE --radius R`` (clipped by ``--clip LO HI``).

    ``l1=True`` adds ``--norm-in {linf,l1}``: the ball's norm (commands whose analyses accept
    an :func:`~mipnet.core.domain.L1Ball`).
    """
    g = p.add_argument_group("input domain (give --box, or --center with --radius)")
    add_list_arg(g, "--box", count=2, metavar=("LO", "HI"), help="every input in [LO, HI]")
    g.add_argument("--center", metavar="FILE",
                   help="centre of a ball: a .npy, .txt or .json file of n0 numbers")
    g.add_argument("--radius", type=float, metavar="R",
                   help="radius of the ball around --center (L-infinity" + (", or L1 with --norm-in l1)" if l1 else ")"))
    add_list_arg(g, "--clip", count=2, metavar=("LO", "HI"),
                 help="clip the ball to [LO, HI] (default: no clipping)")
    if l1:
        g.add_argument("--norm-in", choices=["linf", "l1"], default=None,
                       help="norm of the input ball: linf (|x - c|_inf <= R, default) or l1 (sum |x_i - c_i| <= R)")


def _vector_error(path: str, what: str, why: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"{what} {path!r}: {why}")


def load_vector(path: str, what: str = "--center") -> np.ndarray:
    """A point from a .npy, .json or text file, as a flat float64 array (clean errors)."""
    path = os.fspath(path)
    try:
        if path.endswith(".npy"):
            v = np.load(path, allow_pickle=False)
        elif path.endswith(".json"):
            with open(path) as f:
                v = json.load(f)
            if isinstance(v, dict):
                keys = [k for k in ("centre", "center", "x") if k in v]
                if not keys:
                    raise _vector_error(path, what, f"a JSON object needs a 'center' or 'x' entry, got keys {sorted(v)}")
                v = v[keys[0]]
        else:
            with warnings.catch_warnings():  # an empty file: numpy warns, then "holds no numbers" below
                warnings.simplefilter("ignore", UserWarning)
                v = np.loadtxt(path, dtype=float, ndmin=1)
        v = np.asarray(v, dtype=float).reshape(-1)
    except InvalidArgumentError:
        raise
    except IsADirectoryError:
        raise _vector_error(path, what, "is a directory, not a file of numbers") from None
    except FileNotFoundError:
        raise _vector_error(path, what, "no such file") from None
    except OSError as exc:
        raise _vector_error(path, what, f"cannot read it ({exc.strerror or exc})") from None
    except (ValueError, TypeError, EOFError) as exc:  # not numbers, ragged JSON, pickled .npy, ...
        raise _vector_error(path, what, f"does not hold a list of numbers ({exc})") from None
    if v.size == 0:
        raise _vector_error(path, what, "holds no numbers")
    if not np.all(np.isfinite(v)):
        raise _vector_error(path, what, "holds NaN or infinite values")
    return v


def domain_from_args(args, dim: int, *, default_box=None):
    """The input domain of ``add_domain_args``; conflicting or incomplete flags are errors."""
    from mipnet.core.domain import Box, L1Ball, LinfBall

    box, center = getattr(args, "box", None), getattr(args, "center", None)
    radius, clip = getattr(args, "radius", None), getattr(args, "clip", None)
    if box is not None and (center is not None or radius is not None or clip is not None):
        given = [f for f, v in (("--center", center), ("--radius", radius), ("--clip", clip)) if v is not None]
        raise InvalidArgumentError(f"--box cannot be combined with {', '.join(given)}: give either --box LO HI "
                                   "or --center FILE --radius R [--clip LO HI]")
    if center is None and (radius is not None or clip is not None):
        raise InvalidArgumentError(f"{'--radius' if radius is not None else '--clip'} needs --center FILE "
                                   "(the centre of the L-infinity ball)")
    if center is not None:
        if radius is None:
            raise InvalidDomainError("--center needs --radius")
        c = load_vector(center)
        lo, hi = (clip if clip else (None, None))
        dom = (L1Ball if getattr(args, "norm_in", None) == "l1" else LinfBall)(c, radius, lo, hi)
    elif getattr(args, "norm_in", None) is not None:
        raise InvalidArgumentError("--norm-in needs --center FILE --radius R (it sets the ball's norm)")
    elif box is not None:
        dom = Box(box[0], box[1], dim=dim)
    elif default_box is not None:
        dom = Box(default_box[0], default_box[1], dim=dim)
    else:
        raise InvalidDomainError("give an input domain: --box LO HI, or --center FILE --radius R")
    dom.check_dim(dim)
    return dom


def domain_given(args) -> bool:
    return any(getattr(args, k, None) is not None for k in ("box", "center", "radius", "clip", "norm_in"))


def reject_unused(args, reason: str, *flags: str) -> None:
    """Error if any of ``flags`` (option strings, dest = name without dashes) was given.

    A flag is given unless its value is None (an option's default) or False (a switch's);
    ``is`` tests, so that an explicit 0 (``--workers 0``, ``--seed 0``) counts as given.
    """
    given = [f for f in flags
             if (v := getattr(args, f.lstrip("-").replace("-", "_"), None)) is not None and v is not False]
    if given:
        raise InvalidArgumentError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} only used {reason}")


# ====================================================================== outputs
#: Picture formats matplotlib writes with its default backends (no matplotlib import needed
#: to check a file name before the work starts).
PLOT_EXTENSIONS = frozenset({".png", ".pdf", ".svg", ".svgz", ".eps", ".ps", ".jpg", ".jpeg", ".tif",
                             ".tiff", ".webp", ".gif", ".pgf", ".raw", ".rgba"})


def _plot_extensions() -> frozenset:
    return PLOT_EXTENSIONS


def check_output_path(path, *, inputs: Iterable = (), flag: str = "-o", kind: str = "model") -> str:
    """Check an output path before any work is done; return it as a string.

    ``kind``: ``"model"`` (a network extension), ``"plot"`` (an image format matplotlib
    writes), ``"npz"`` or ``"any"``. Raises :class:`InvalidArgumentError` when the path is
    a folder, its folder is missing or not writable, its extension does not fit, or it is
    (or links to) one of ``inputs`` -- writing there would destroy an input.
    """
    path = os.fspath(path)
    if not path:
        raise InvalidArgumentError(f"{flag}: the output path is empty")
    if os.path.isdir(path):
        raise InvalidArgumentError(f"{flag} {path!r} is a directory; give a file name")
    real = os.path.realpath(path)
    for inp in inputs:
        if inp is None:
            continue
        inp = os.fspath(inp)
        same = os.path.realpath(inp) == real
        if not same and os.path.exists(inp) and os.path.exists(path):
            try:
                same = os.path.samefile(inp, path)
            except OSError:
                pass
        if same:
            raise InvalidArgumentError(f"{flag} {path!r} is the input file {inp!r}; refusing to overwrite "
                                       "an input, choose another output path")
    ext = os.path.splitext(path)[1].lower()
    if kind == "model":
        from mipnet.io import SUPPORTED_EXTENSIONS

        if ext not in SUPPORTED_EXTENSIONS:
            raise InvalidArgumentError(f"{flag} {path!r}: unknown model file extension {ext or '(none)'!r}; "
                                       f"use one of {', '.join(SUPPORTED_EXTENSIONS)}")
    elif kind == "npz":
        if ext != ".npz":
            raise InvalidArgumentError(f"{flag} {path!r}: the file name must end in .npz")
    elif kind == "plot":
        exts = _plot_extensions()
        if ext not in exts:
            raise InvalidArgumentError(f"{flag} {path!r}: unknown picture format {ext or '(none)'!r}; "
                                       f"use one of {', '.join(sorted(exts))}")
    check_writable_dir(os.path.dirname(real) or ".", f"{flag} {path!r}")
    return path


def check_writable_dir(folder: str, what: str) -> None:
    """The folder exists, is a folder, and a file can be created in it."""
    if not os.path.exists(folder):
        raise InvalidArgumentError(f"{what}: the directory {folder!r} does not exist")
    if not os.path.isdir(folder):
        raise InvalidArgumentError(f"{what}: {folder!r} is not a directory")
    try:  # the only reliable test (root ignores mode bits; read-only mounts; ACLs)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".mipnet-write-check-")
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise InvalidArgumentError(f"{what}: cannot write to the directory {folder!r} "
                                   f"({exc.strerror or exc})") from None


def check_output_dir(path, *, flag: str = "-o") -> str:
    """An output folder: created later if missing; its parent (or itself) must be writable."""
    path = os.fspath(path)
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise InvalidArgumentError(f"{flag} {path!r} exists and is not a directory")
        check_writable_dir(path, f"{flag} {path!r}")
    else:
        parent = os.path.dirname(os.path.realpath(path)) or "."
        check_writable_dir(parent, f"{flag} {path!r}")
    return path


def atomic_write(path):
    """See :func:`mipnet.io.files.atomic_write` (temporary file, then ``os.replace``)."""
    from mipnet.io.files import atomic_write as _aw

    return _aw(path)


# ====================================================================== calling the API
def call(fn, *args, progress: Optional[bool] = None, **kwargs):
    """Call an analysis: pass ``progress`` when it takes one; its ValueErrors become clean errors."""
    from mipnet.core.errors import MipnetError

    if progress is not None:
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            params = {}
        if "progress" in params:
            kwargs["progress"] = progress
    try:
        return fn(*args, **kwargs)
    except ValueError as exc:  # invalid option values: report them like other user errors
        if isinstance(exc, MipnetError):
            raise
        raise InvalidArgumentError(str(exc)) from None


def result_status(res) -> Optional[str]:
    st = res.get("status") if isinstance(res, dict) else getattr(res, "status", None)
    st = getattr(st, "value", st)  # enums
    return st if isinstance(st, str) else None


def interrupted(*results) -> bool:
    """Whether any of the results says it was stopped by Ctrl-C."""
    return any(r is not None and result_status(r) in INTERRUPTED_STATUSES for r in results)


def exit_code(*results, ok: int = EXIT_OK) -> int:
    """``ok``, or 130 if any result was interrupted (main then says so on stderr)."""
    return EXIT_INTERRUPTED if interrupted(*results) else ok


# ====================================================================== printing
_emitted = False


def reset_emitted() -> None:
    global _emitted
    _emitted = False


def json_emitted() -> bool:
    return _emitted


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")


def _finite(o):
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_finite(v) for v in o]
    return o


def emit_json(obj) -> None:
    """Write one strict JSON document to stdout (NaN and infinities become null)."""
    global _emitted
    data = _finite(json.loads(json.dumps(obj, default=_json_default)))
    text = json.dumps(data, indent=2, allow_nan=False)
    _emitted = True
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def info(msg: str) -> None:
    print(msg, file=sys.stderr)
