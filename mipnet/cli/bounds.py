"""``mipnet bounds``: pre-activation bounds of every neuron on a domain.

Python twin: :func:`mipnet.bounds.compute_bounds`.
"""

from __future__ import annotations

from mipnet.cli.common import (
    add_command,
    add_domain_args,
    add_json_arg,
    add_parallel_args,
    add_progress_arg,
    call,
    domain_from_args,
    exit_code,
    progress_enabled,
)


def register(sub) -> None:
    p = add_command(
        sub, "bounds",
        help="pre-activation bounds and stable-neuron counts on an input domain",
        description="Bound every neuron's pre-activation over an input domain with interval arithmetic (ia), "
                    "symbolic back-substitution (symbolic), optimised back-substitution (alpha, alpha-CROWN), "
                    "LP tightening (lp: from the alpha bounds, an LP only for the signs no input settles; "
                    "--exact-lp: every unstable neuron's LP to optimality) or the cheapest route that settles "
                    "the most neurons (auto: symbolic, then alpha, then sign-only LPs), and count stably "
                    "active/inactive neurons.",
        examples=["mipnet bounds net.onnx --box -1 1",
                  "mipnet bounds net.onnx --box 0 1 --method auto",
                  "mipnet bounds net.onnx --center x.npy --radius 0.5 --clip 0 16 --method lp --json --arrays"],
    )
    p.add_argument("model", metavar="MODEL", help="network file (.onnx, .pt/.pth, .npz)")
    add_domain_args(p)
    p.add_argument("--method", choices=["ia", "symbolic", "alpha", "lp", "auto"], default="lp",
                   help="bounding method")
    p.add_argument("--exact-lp", action="store_true",
                   help="with --method lp: solve every unstable neuron's min and max LP to optimality")
    p.add_argument("--arrays", action="store_true", help="with --json: include every neuron's bounds")
    add_parallel_args(p)
    add_progress_arg(p)
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from mipnet.bounds import compute_bounds, lp_bounds
    from mipnet.cli.common import check_workers, emit_json, reject_unused
    from mipnet.io import load_network

    check_workers(args)
    if not args.json:
        reject_unused(args, "with --json", "--arrays")
    if args.method != "lp":
        reject_unused(args, "with --method lp", "--exact-lp")
    net = load_network(args.model)
    dom = domain_from_args(args, net.input_dim)
    if args.method != "lp":
        reject_unused(args, "with --method lp", "--workers", "--scheduler")
    if args.method == "lp" and ((args.workers or 0) > 1 or args.scheduler is not None):
        from mipnet.bounds.lp_parallel import lp_bounds_parallel
        from mipnet.cli.common import parallel_executor

        with parallel_executor(args) as executor:
            b = call(lp_bounds_parallel, net, dom, executor=executor, progress=progress_enabled(args),
                     sign_only=False if args.exact_lp else None)
    elif args.method == "lp":
        b = call(lp_bounds, net, dom, progress=progress_enabled(args), sign_only=False if args.exact_lp else None)
    else:
        b = call(compute_bounds, net, dom, method=args.method)
    if args.json:
        d = b.to_dict(arrays=args.arrays)
        d["network"] = net.summary()["widths"]
        emit_json(d)
    else:
        print(f"{net} on {dom}")
        print(b)
    return exit_code(b)
