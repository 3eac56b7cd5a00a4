"""``mipnet verify A B``: are two networks equivalent on an input domain?

Exit status: 0 equivalent, 1 not equivalent, 2 unknown (time limit), 3 error.
"""

from __future__ import annotations

import argparse

from mipnet.cli.common import (
    add_command,
    add_deprecated_alias,
    add_domain_args,
    add_json_arg,
    add_progress_arg,
    call,
    domain_from_args,
    exit_code,
    progress_enabled,
)

EXIT = {"equivalent": 0, "not_equivalent": 1, "unknown": 2}


def register(subparsers) -> None:
    p = add_command(
        subparsers, "verify",
        help="prove two networks equivalent on a domain, or find a counterexample",
        description="Equivalence of two ReLU networks on an input domain by MILP (HiGHS). Modes: exact "
                    "(outputs equal within --tol), epsilon (|a - b| <= E in L-inf or L1), top1 (same argmax). "
                    "Exit status 0 equivalent, 1 not equivalent (counterexample re-checked in float64), "
                    "2 unknown (time limit), 3 error, 130 interrupted.",
        examples=["mipnet verify net.onnx pruned.onnx --box 0 16",
                  "mipnet verify net.onnx pruned.onnx --mode epsilon --eps 0.1 --center x.npy --radius 1 "
                  "--clip 0 16 --json",
                  "mipnet verify net.onnx pruned.onnx --mode top1 --box 0 16 --time-limit 60",
                  "mipnet verify net.npz student.npz --mode epsilon --eps 0.05 --box -1 1 --engine bab --jobs 2"],
    )
    p.add_argument("model_a", metavar="A", help="first model (.onnx, .pt/.pth, .npz)")
    p.add_argument("model_b", metavar="B", help="second model, same input and output sizes")
    p.add_argument("--mode", choices=["exact", "epsilon", "top1"], default="exact", help="what equivalent means")
    p.add_argument("--eps", type=float, metavar="E", help="allowed output difference (needed by --mode epsilon)")
    add_deprecated_alias(p, "--epsilon", "--eps", dest="eps", type=float)
    p.add_argument("--norm", choices=["linf", "l1"],
                   help="with --mode epsilon: norm of the output difference (default: linf)")
    add_domain_args(p)
    p.add_argument("--time-limit", type=float, metavar="S",
                   help="seconds in all; past it the verdict is unknown (default: no limit)")
    p.add_argument("--tol", type=float, default=1e-6, help="numerical tolerance")
    p.add_argument("--samples", type=int, default=1000, help="random inputs tried first")
    p.add_argument("--engine", choices=["auto", "bab", "milp"], default="auto",
                   help="bab: branch and bound over the input box with differential bounds (MILPs on small "
                        "boxes); milp: joint MILPs on the whole domain; auto (default): differential bounds "
                        "first, then bab for <= 16 inputs, else milp")
    p.add_argument("--neuron-map", metavar="FILE",
                   help="which neurons of B copy which of A (the B.neurons.json that 'mipnet compress' writes; "
                        "used automatically when it lies next to B); default: match weight rows")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="with the bab engine: evaluate boxes in N worker processes (same verdict)")
    add_progress_arg(p)
    add_json_arg(p)
    p.set_defaults(func=handle)


def _neuron_map(args):
    """The neuron map of ``--neuron-map``, or the sidecar ``B.neurons.json`` of a compressed B, or None."""
    import os

    from mipnet.analyses.compression import load_neuron_map, neuron_map_path
    from mipnet.cli.common import info

    path = args.neuron_map
    if path is None and os.path.exists(neuron_map_path(args.model_b)):
        path = neuron_map_path(args.model_b)
        info(f"using the neuron map {path}")
    return None if path is None else load_neuron_map(path)


def handle(args: argparse.Namespace) -> int:
    from mipnet.analyses.equivalence import verify_equivalence
    from mipnet.cli.common import emit_json
    from mipnet.core.errors import InvalidArgumentError, InvalidNetworkError
    from mipnet.io import load_network

    if args.mode == "epsilon" and args.eps is None:
        raise InvalidArgumentError("--mode epsilon needs --eps E (the allowed output difference)")
    if args.mode != "epsilon" and args.eps is not None:
        raise InvalidArgumentError(f"--eps is only used with --mode epsilon (got --mode {args.mode})")
    if args.mode != "epsilon" and args.norm is not None:
        raise InvalidArgumentError(f"--norm is only used with --mode epsilon (got --mode {args.mode})")
    a = load_network(args.model_a)
    b = load_network(args.model_b)
    if a.input_dim != b.input_dim:
        raise InvalidNetworkError(f"{args.model_a} takes {a.input_dim} inputs but {args.model_b} takes {b.input_dim}")
    dom = domain_from_args(args, a.input_dim)
    if args.jobs < 1:
        raise InvalidArgumentError(f"--jobs must be >= 1, got {args.jobs}")
    nmap = _neuron_map(args)
    executor = None
    if args.jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: a forked child of a process that already ran HiGHS (its thread pool) can hang
        executor = ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"))
    try:
        res = call(verify_equivalence, a, b, dom, mode=args.mode, epsilon=args.eps, norm=args.norm or "linf",
                   time_limit=args.time_limit, tol=args.tol, samples=args.samples, progress=progress_enabled(args),
                   engine=args.engine, correspondence=nmap, executor=executor)
    finally:
        if executor is not None:
            executor.shutdown(cancel_futures=True)
    if args.json:
        emit_json({"model_a": args.model_a, "model_b": args.model_b, **res.to_dict()})
    else:
        print(res)
    return exit_code(res, ok=EXIT.get(res.verdict, 2))
