"""``mipnet verify A B``: are two networks equivalent on an input domain?

Exit status: 0 equivalent, 1 not equivalent, 2 unknown (time limit), 3 error.
"""

from __future__ import annotations

import argparse

from mipnet.cli.common import (
    add_command,
    add_bounds_arg,
    add_deprecated_alias,
    add_domain_args,
    add_json_arg,
    add_parallel_args,
    add_progress_arg,
    call,
    domain_from_args,
    exit_code,
    progress_enabled,
    seconds,
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
                  "mipnet verify net.onnx pruned.onnx --mode topk --k 2 --center c.json --radius 6.8 --norm-in l1 "
                  "--clip 0 16",
                  "mipnet verify net.onnx pruned.onnx --vnnlib prop.vnnlib --json",
                  "mipnet verify net.npz student.npz --mode epsilon --eps 0.05 --box -1 1 --engine bab --workers 2"],
    )
    p.add_argument("model_a", metavar="A", help="first model (.onnx, .pt/.pth, .npz)")
    p.add_argument("model_b", metavar="B", help="second model, same input and output sizes")
    p.add_argument("--mode", choices=["exact", "epsilon", "top1", "topk", "delta-top1"], default=None,
                   help="what equivalent means (default exact): topk = the top class of A is among the top --k "
                        "classes of B; delta-top1 = where A's logit margin (top logit minus runner-up) is >= "
                        "--delta, B has the same top class")
    p.add_argument("--k", type=int, metavar="K", help="with --mode topk: how many top classes of B (default 2)")
    p.add_argument("--delta", type=float, metavar="D", help="with --mode delta-top1: A's logit margin threshold")
    p.add_argument("--vnnlib", metavar="FILE",
                   help="VNN-LIB property: its input constraints are the domain, its output assertions the unsafe "
                        "set over Y_0..Y_(m-1) (A) and Y_m..Y_(2m-1) (B); see mipnet.io.vnnlib for the "
                        "'; mipnet-outputs:' header"),
    p.add_argument("--eps", type=float, metavar="E", help="allowed output difference (needed by --mode epsilon)")
    add_deprecated_alias(p, "--epsilon", "--eps", dest="eps", type=float)
    p.add_argument("--norm", choices=["linf", "l1"],
                   help="with --mode epsilon: norm of the output difference (default: linf)")
    add_domain_args(p, l1=True)
    p.add_argument("--time-limit", type=seconds, metavar="S",
                   help="seconds in all; past it the verdict is unknown (default: no limit)")
    p.add_argument("--tol", type=float, default=1e-6, help="numerical tolerance")
    p.add_argument("--samples", type=int, default=1000, help="random inputs tried first")
    add_bounds_arg(p, default="lp", what="of both nets for the joint MILP (engine milp)")
    p.add_argument("--engine", choices=["auto", "bab", "milp"], default="auto",
                   help="bab: branch and bound over the input box with differential bounds (MILPs on small "
                        "boxes); milp: joint MILPs on the whole domain; auto (default): differential bounds "
                        "first, then bab for <= 16 inputs, else milp")
    p.add_argument("--neuron-map", metavar="FILE",
                   help="which neurons of B copy which of A (the B.neurons.json that 'mipnet compress' writes; "
                        "used automatically when it lies next to B); default: match weight rows")
    add_parallel_args(p)
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

    from mipnet.cli.common import domain_given

    if args.vnnlib is not None:
        if args.mode is not None or domain_given(args):
            raise InvalidArgumentError("--vnnlib gives both the domain and the property: drop --mode and the "
                                       "domain flags (--box, --center, --radius, --clip, --norm-in)")
        if args.eps is not None or args.norm is not None or args.k is not None or args.delta is not None:
            raise InvalidArgumentError("--eps, --norm, --k and --delta are not used with --vnnlib")
    args.mode = args.mode or "exact"
    if args.mode != "topk" and args.k is not None:
        raise InvalidArgumentError(f"--k is only used with --mode topk (got --mode {args.mode})")
    if args.mode != "delta-top1" and args.delta is not None:
        raise InvalidArgumentError(f"--delta is only used with --mode delta-top1 (got --mode {args.mode})")
    if args.mode == "delta-top1" and args.delta is None:
        raise InvalidArgumentError("--mode delta-top1 needs --delta D (A's logit margin threshold, >= 0)")
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
    mode = args.mode
    if args.vnnlib is not None:
        from mipnet.analyses.properties import OutputDisjunction
        from mipnet.io.vnnlib import load_vnnlib

        spec = load_vnnlib(args.vnnlib, m=a.output_dim, num_inputs=a.input_dim)
        dom, mode = spec.domain, OutputDisjunction.from_vnnlib(spec)
    else:
        dom = domain_from_args(args, a.input_dim)
        if mode in ("topk", "delta-top1"):
            from mipnet.analyses.properties import TopK

            mode = TopK(2 if args.k is None else args.k) if mode == "topk" else TopK(1, args.delta)
    if isinstance(mode, str) or args.engine == "bab":
        extra = {"engine": args.engine, "correspondence": _neuron_map(args)}
    else:  # a property (top-k, delta-top-1, VNN-LIB): the MILP unless --engine bab
        extra = {}
    from mipnet.cli.common import executor_kwargs, parallel_executor

    if (args.workers or 0) > 1 or args.scheduler is not None:
        executor_kwargs(verify_equivalence, True)  # before starting a cluster: can the analysis use one?
    with parallel_executor(args) as executor:
        res = call(verify_equivalence, a, b, dom, mode=mode, epsilon=args.eps, norm=args.norm or "linf",
                   time_limit=args.time_limit, tol=args.tol, samples=args.samples, progress=progress_enabled(args),
                   bounds_a=args.bounds, bounds_b=args.bounds, **extra, **executor_kwargs(verify_equivalence, executor))
    if args.json:
        emit_json({"model_a": args.model_a, "model_b": args.model_b, **res.to_dict()})
    else:
        print(res)
    return exit_code(res, ok=EXIT.get(res.verdict, 2))
