"""``mipnet bounds``: pre-activation bounds of every neuron on a domain."""

from __future__ import annotations

from mipnet.cli.common import add_domain_args, add_json_arg, domain_from_args


def register(sub) -> None:
    p = sub.add_parser(
        "bounds",
        help="pre-activation bounds and stable-neuron counts on an input domain",
        description="Bound every neuron's pre-activation over an input domain with interval "
        "arithmetic (ia) or LP tightening (lp), and count stably active/inactive neurons.",
    )
    p.add_argument("model", metavar="MODEL", help="network file (.onnx, .pt, .npz)")
    add_domain_args(p)
    p.add_argument("--method", choices=["ia", "symbolic", "lp"], default="lp", help="bounding method (default: lp)")
    p.add_argument("--arrays", action="store_true", help="include every neuron's bounds in the JSON")
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from mipnet.bounds import compute_bounds
    from mipnet.cli import emit_json
    from mipnet.io import load_network

    net = load_network(args.model)
    dom = domain_from_args(args, net.input_dim)
    b = compute_bounds(net, dom, method=args.method)
    if args.json:
        d = b.to_dict(arrays=args.arrays)
        d["network"] = net.summary()["widths"]
        emit_json(d)
    else:
        print(f"{net} on {dom}")
        print(b)
    return 0
