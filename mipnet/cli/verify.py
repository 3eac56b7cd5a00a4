"""``mipnet verify A B``: are two networks equivalent on an input domain?

Exit status: 0 equivalent, 1 not equivalent, 2 unknown (time limit), 3 error.
"""

from __future__ import annotations

import argparse

from mipnet.cli.common import add_domain_args, add_json_arg, domain_from_args

EXIT = {"equivalent": 0, "not_equivalent": 1, "unknown": 2}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "verify",
        help="prove two networks equivalent on a domain, or find a counterexample",
        description="Equivalence of two ReLU networks on an input domain by MILP (HiGHS). Modes: exact "
                    "(outputs equal within --tol), epsilon (|a - b| <= E in L-inf or L1), top1 (same argmax). "
                    "Exit status 0 equivalent, 1 not equivalent (counterexample re-checked in float64), "
                    "2 unknown (time limit), 3 error.",
    )
    p.add_argument("model_a", metavar="A", help="first model (.onnx, .pt/.pth, .npz)")
    p.add_argument("model_b", metavar="B", help="second model, same input and output sizes")
    p.add_argument("--mode", choices=["exact", "epsilon", "top1"], default="exact")
    p.add_argument("--eps", type=float, metavar="E", help="allowed output difference (needed by --mode epsilon)")
    p.add_argument("--norm", choices=["linf", "l1"], default="linf", help="norm of the difference for epsilon")
    add_domain_args(p)
    p.add_argument("--time-limit", type=float, metavar="S", help="seconds in all; past it the verdict is unknown")
    p.add_argument("--tol", type=float, default=1e-6, help="numerical tolerance (default 1e-6)")
    p.add_argument("--samples", type=int, default=1000, help="random inputs tried first (default 1000)")
    add_json_arg(p)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from mipnet.cli import emit_json
    from mipnet.analyses.equivalence import verify_equivalence
    from mipnet.core.errors import InvalidNetworkError, MipnetError
    from mipnet.io import load_network

    a = load_network(args.model_a)
    b = load_network(args.model_b)
    if a.input_dim != b.input_dim:
        raise InvalidNetworkError(f"{args.model_a} takes {a.input_dim} inputs but {args.model_b} takes {b.input_dim}")
    dom = domain_from_args(args, a.input_dim)
    if args.mode == "epsilon" and args.eps is None:
        raise MipnetError("--mode epsilon needs --eps E (the allowed output difference)")
    if args.mode != "epsilon" and args.eps is not None:
        raise MipnetError(f"--eps is only used with --mode epsilon (got --mode {args.mode})")
    try:
        res = verify_equivalence(a, b, dom, mode=args.mode, epsilon=args.eps, norm=args.norm,
                                 time_limit=args.time_limit, tol=args.tol, samples=args.samples)
    except ValueError as exc:  # invalid option values: report them like other user errors
        if isinstance(exc, MipnetError):
            raise
        raise MipnetError(str(exc)) from None
    if args.json:
        emit_json({"model_a": args.model_a, "model_b": args.model_b, **res.to_dict()})
    else:
        print(res)
    return EXIT[res.verdict]
