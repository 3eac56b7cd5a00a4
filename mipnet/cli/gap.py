"""``mipnet gap ORIGINAL PRUNED``: the worst-case output gap of a pruned network on a domain.

Python twin: :func:`mipnet.gap.pruning_gap`. Exit status 0 (also for bounds under a
time limit: the JSON says ``exact``), 3 on errors.
"""

from __future__ import annotations

import argparse

from mipnet.cli.common import (
    add_bounds_arg,
    add_command,
    add_deprecated_alias,
    add_domain_args,
    add_json_arg,
    add_progress_arg,
    call,
    domain_from_args,
    exit_code,
    progress_enabled,
    seconds,
)


def register(subparsers) -> None:
    p = add_command(
        subparsers, "gap",
        help="exact worst-case |original - pruned| on a domain, next to the gap on data",
        description="The largest output difference max_x ||f(x) - g(x)||_inf between an original network f and "
                    "a pruned (or otherwise changed) network g over an input domain, by MILP (HiGHS), with an input "
                    "that attains it (re-checked in float64). With --dataset, also the gap on its test points "
                    "(mean, quantiles, max), the relative gap ||f - g||_inf / ||f||_inf and the ratio worst case / "
                    "data max. Under --time-limit the answer is a proven upper bound and a found lower bound. "
                    "With --dataset and no domain flags the domain is the dataset's input box.",
        examples=["mipnet gap net.onnx pruned.onnx --box 0 16 --json",
                  "mipnet gap net.onnx pruned.onnx --dataset digits --eps 0.5 --time-limit 120"],
    )
    p.add_argument("original", metavar="ORIGINAL", help="original model (.onnx, .pt/.pth, .npz)")
    p.add_argument("pruned", metavar="PRUNED", help="pruned model, same input and output sizes")
    add_domain_args(p)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", metavar="NAME",
                   help="digits, fashion-mnist, mnist, or a folder of IDX files: gaps on its test split")
    g.add_argument("--data-path", metavar="DIR", help="folder of the IDX files (default: the usual places)")
    g.add_argument("--limit", type=int, metavar="N", help="use at most N test points (default: all)")
    p.add_argument("--eps", type=float, metavar="E", dest="eps",
                   help="report the fraction of data points with gap <= E and whether all of the domain is within E")
    add_deprecated_alias(p, "--epsilon", "--eps", dest="eps", type=float)
    p.add_argument("--time-limit", type=seconds, metavar="S",
                   help="seconds for the MILPs; past it: bounds (default: no limit)")
    p.add_argument("--time-limit-per-output", type=seconds, metavar="S",
                   help="seconds per output (both signs), so that no output eats the whole budget (default: none)")
    p.add_argument("--per-output", action="store_true",
                   help="maximise every output (exact per-output worst cases; 2 m MILPs, slower)")
    p.add_argument("--tol", type=float, default=1e-6, help="numerical tolerance of the cutoffs")
    p.add_argument("--samples", type=int, default=1000, help="random inputs tried first")
    add_bounds_arg(p, default="lp", what="of both nets for the MILPs")
    add_progress_arg(p)
    add_json_arg(p)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from mipnet.analyses.gap import pruning_gap
    from mipnet.cli.common import emit_json
    from mipnet.core.errors import DatasetError, InvalidArgumentError, InvalidNetworkError
    from mipnet.io import load_network

    if args.limit is not None and args.limit < 1:
        raise InvalidArgumentError(f"--limit must be a positive number of points, got {args.limit}")
    if (args.data_path or args.limit) and not args.dataset:
        raise InvalidArgumentError("--data-path and --limit go with --dataset NAME")
    f = load_network(args.original)
    g = load_network(args.pruned)
    if f.input_dim != g.input_dim or f.output_dim != g.output_dim:
        raise InvalidNetworkError(f"{args.original} is {f.input_dim} -> {f.output_dim} but {args.pruned} is "
                                  f"{g.input_dim} -> {g.output_dim}; the gap compares the same inputs and outputs")
    data = None
    default_box = None
    if args.dataset:
        from mipnet.nn.data import load_dataset

        ds = load_dataset(args.dataset, path=args.data_path, limit=args.limit)
        if ds.input_dim != f.input_dim:
            raise DatasetError(f"dataset {ds.name!r} has {ds.input_dim} inputs but the networks take {f.input_dim}")
        data = ds.X_test
        default_box = ds.input_range
    dom = domain_from_args(args, f.input_dim, default_box=default_box)
    res = call(pruning_gap, f, g, dom, data=data, epsilon=args.eps, time_limit=args.time_limit,
               time_limit_per_milp=args.time_limit_per_output, per_output=args.per_output, tol=args.tol,
               samples=args.samples, bounds=args.bounds, progress=progress_enabled(args))
    if args.json:
        emit_json({"original": args.original, "pruned": args.pruned, **res.to_dict()})
    else:
        print(f"{args.original} vs {args.pruned} on {dom}")
        print(res)
    return exit_code(res)
