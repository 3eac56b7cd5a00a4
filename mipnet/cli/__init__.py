"""The ``mipnet`` command: a thin face over the Python API.

JSON results go to stdout, messages and progress to stderr. Exit status: 0 success
(``verify``: 0/1/2 equivalent/not equivalent/unknown), 3 error (bad arguments included),
130 interrupted by Ctrl-C (after printing the partial result). See
:mod:`mipnet.cli.common` for the conventions every sub-command follows.
"""

from __future__ import annotations

import importlib
import logging
import sys
import traceback
import warnings

from mipnet.cli.common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    ArgumentParser,
    UsageError,
    command_name,
    emit_json,
    json_emitted,
    normalise_argv,
    reset_emitted,
)
from mipnet.core.errors import MipnetError

__all__ = ["main", "build_parser", "emit_json", "COMMAND_MODULES"]

#: Sub-command modules of this package; each has ``register(subparsers)``.
COMMAND_MODULES = [
    "info",
    "bounds",
    "regions",
    "stable",
    "verify",
    "sparsity",
    "train",
    "gap",
    "demo",
]


def build_parser() -> ArgumentParser:
    from mipnet import __version__

    parser = ArgumentParser(
        prog="mipnet",
        description="Analyse trained ReLU networks with mixed-integer programming. "
                    "'mipnet COMMAND --help' describes a command. --json prints one JSON document on "
                    "stdout; messages and progress bars go to stderr. Exit status: 0 success "
                    "(verify: 0/1/2 equivalent/not equivalent/unknown), 3 error, 130 interrupted.",
        epilog="examples:\n  mipnet info net.onnx\n  mipnet -v regions count net.onnx --box -1 1 --json\n"
               "  mipnet verify net.onnx pruned.onnx --mode top1 --center x.npy --radius 1 --clip 0 16",
    )
    parser.set_defaults(verbose=False)
    parser.add_argument("--version", action="version", version=f"mipnet {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"mipnet.cli.{name}")
        except ModuleNotFoundError as exc:  # a capability not installed yet
            if exc.name == f"mipnet.cli.{name}":
                continue
            raise
        mod.register(sub)
    return parser


def _os_message(exc: OSError) -> str:
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename!r}"
    return str(exc) or type(exc).__name__


def main(argv=None) -> int:
    """Run one ``mipnet`` command line; return its exit status (never raises for user errors)."""
    reset_emitted()
    argv = list(sys.argv[1:] if argv is None else argv)
    name, want_json = "mipnet", "--json" in argv
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(normalise_argv(argv))
        except UsageError as exc:
            p = exc.parser or parser
            p.print_usage(sys.stderr)
            print(f"{p.prog}: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except SystemExit as exc:  # --help, --version
            return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_ERROR
        level = logging.INFO if args.verbose else logging.WARNING
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        logging.getLogger().setLevel(level)  # also when main() runs again in the same process
        name = command_name(args)
        want_json = bool(getattr(args, "json", False))
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            print("mipnet: error: give a command", file=sys.stderr)
            return EXIT_ERROR
        try:
            with warnings.catch_warnings():
                if not args.verbose:  # numpy's overflow warnings of badly scaled inputs: the error line says it
                    warnings.simplefilter("ignore", RuntimeWarning)
                rc = int(args.func(args) or 0)
        except MipnetError as exc:
            print(f"mipnet {name}: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except BrokenPipeError:  # output piped into e.g. `head`: not an error
            sys.stderr.close()
            return 0
        except OSError as exc:  # unreadable input, full disk, read-only folder, ...
            print(f"mipnet {name}: error: {_os_message(exc)}", file=sys.stderr)
            return EXIT_ERROR
        except Exception as exc:  # a bug: exit 3, never Python's 1 (which `verify` uses for "not equivalent")
            if args.verbose:
                traceback.print_exc(file=sys.stderr)
            print(f"mipnet {name}: error: internal error ({type(exc).__name__}: {exc}); please report it "
                  "(-v prints the traceback)", file=sys.stderr)
            return EXIT_ERROR
        if rc == EXIT_INTERRUPTED:
            print(f"mipnet {name}: interrupted", file=sys.stderr)
        return rc
    except KeyboardInterrupt:
        if want_json and not json_emitted():
            try:
                emit_json({"status": "interrupted", "command": name})
            except (OSError, ValueError):
                pass
        print(f"mipnet {name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
