"""The ``mipnet`` command: a thin face over the Python API.

JSON results go to stdout, messages and progress to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys

from mipnet.core.errors import MipnetError


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mipnet",
        description="Analyse trained ReLU networks with mixed-integer programming.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"mipnet.cli.{name}")
        except ModuleNotFoundError as exc:  # a capability not installed yet
            if exc.name == f"mipnet.cli.{name}":
                continue
            raise
        mod.register(sub)
    return parser


def emit_json(obj) -> None:
    """Write one JSON document to stdout."""
    json.dump(obj, sys.stdout, indent=2, default=_json_default)
    sys.stdout.write("\n")


def _json_default(o):
    import numpy as np

    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.bool_,)):
        return bool(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"cannot serialise {type(o).__name__}")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except MipnetError as exc:
        print(f"mipnet {args.command}: error: {exc}", file=sys.stderr)
        return 3
    except FileNotFoundError as exc:
        print(f"mipnet {args.command}: error: {exc}", file=sys.stderr)
        return 3
    except BrokenPipeError:  # output piped into e.g. `head`: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
