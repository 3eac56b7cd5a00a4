"""Argument helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from mipnet.core.errors import InvalidDomainError


def add_json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def add_domain_args(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    """``--box LO HI`` or ``--center FILE --radius R`` (clipped by ``--clip LO HI``)."""
    g = p.add_argument_group("input domain")
    g.add_argument("--box", nargs=2, type=float, metavar=("LO", "HI"),
                   help="every input in [LO, HI]")
    g.add_argument("--center", metavar="FILE",
                   help="centre point: a .npy/.txt/.json file of n0 numbers (an L-infinity ball around it)")
    g.add_argument("--radius", type=float, help="radius of the L-infinity ball around --center")
    g.add_argument("--clip", nargs=2, type=float, metavar=("LO", "HI"),
                   help="clip the ball to [LO, HI] (default: no clipping)")


def load_vector(path: str) -> np.ndarray:
    if path.endswith(".npy"):
        v = np.load(path, allow_pickle=False)
    elif path.endswith(".json"):
        with open(path) as f:
            v = json.load(f)
        if isinstance(v, dict):
            v = v.get("centre", v.get("center", v.get("x")))
        v = np.asarray(v, dtype=float)
    else:
        v = np.loadtxt(path, dtype=float)
    return np.asarray(v, dtype=float).reshape(-1)


def domain_from_args(args, dim: int, *, default_box=None):
    from mipnet.core.domain import Box, LinfBall

    if args.center is not None:
        if args.radius is None:
            raise InvalidDomainError("--center needs --radius")
        c = load_vector(args.center)
        lo, hi = (args.clip if args.clip else (None, None))
        dom = LinfBall(c, args.radius, lo, hi)
    elif args.box is not None:
        dom = Box(args.box[0], args.box[1], dim=dim)
    elif default_box is not None:
        dom = Box(default_box[0], default_box[1], dim=dim)
    else:
        raise InvalidDomainError("give an input domain: --box LO HI, or --center FILE --radius R")
    dom.check_dim(dim)
    return dom


def info(msg: str) -> None:
    print(msg, file=sys.stderr)
