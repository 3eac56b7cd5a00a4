"""``mipnet stable`` and ``mipnet compress``: stable neurons and lossless compression on a domain."""

from __future__ import annotations

import argparse

from mipnet.cli.common import add_domain_args, add_json_arg, domain_from_args, info


def _add_stability_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="model file: .onnx, .pt/.pth or .npz")
    add_domain_args(p)
    p.add_argument("--method", choices=["one-milp", "per-neuron"], default="per-neuron",
                   help="one MILP over all candidates (Serra et al. 2021) or early-stopped MILPs per neuron, "
                        "layer by layer (Serra et al. 2020; default, usually faster with HiGHS)")
    p.add_argument("--time-limit", type=float, metavar="S",
                   help="seconds in all; neurons not settled in time are reported as unknown")
    p.add_argument("--tol", type=float, default=1e-6,
                   help="numerical tolerance of a stability proof (default 1e-6)")
    p.add_argument("--samples", type=int, default=1000,
                   help="random inputs tried first as witnesses of instability (default 1000)")
    add_json_arg(p)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "stable",
        help="find stably active / inactive ReLUs on an input domain, with certificates",
        description="Prove which ReLUs never change sign on the domain (MILP, HiGHS). Neurons not settled "
                    "within --time-limit are reported as unknown, never as stable.",
    )
    _add_stability_args(p)
    p.add_argument("--arrays", action="store_true", help="with --json: include per-neuron states, bounds, witnesses")
    p.set_defaults(func=handle_stable)

    p = subparsers.add_parser(
        "compress",
        help="remove or fold stable ReLUs: a smaller network equal to MODEL on the domain",
        description="Lossless compression (Serra et al., CPAIOR 2020): drop stably inactive neurons, fold "
                    "linearly dependent stably active ones, merge affine layers. Writes the smaller network.",
    )
    _add_stability_args(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="where to write the compressed network (.onnx, .pt/.pth or .npz)")
    p.add_argument("--merge", choices=["auto", "always", "never"], default="auto",
                   help="merge layers that are affine on the domain (default: when it saves parameters)")
    p.add_argument("--verify", action="store_true",
                   help="afterwards prove the compressed network equal to MODEL on the domain (exact MILP check)")
    p.set_defaults(func=handle_compress)


def _analyse(args):
    from mipnet.io import load_network
    from mipnet.analyses.stability import find_stable_neurons

    from mipnet.core.errors import MipnetError

    net = load_network(args.model)
    dom = domain_from_args(args, net.input_dim)
    try:
        res = find_stable_neurons(net, dom, method=args.method.replace("-", "_"), time_limit=args.time_limit,
                                  tol=args.tol, samples=args.samples)
    except ValueError as exc:  # invalid option values: report them like other user errors
        if isinstance(exc, MipnetError):
            raise
        raise MipnetError(str(exc)) from None
    return net, dom, res


def handle_stable(args: argparse.Namespace) -> int:
    from mipnet.cli import emit_json

    net, _, res = _analyse(args)
    if args.json:
        emit_json({"model": args.model, "widths": list(net.widths), **res.to_dict(arrays=args.arrays)})
    else:
        print(f"{args.model}: {'-'.join(map(str, net.widths))}")
        print(res)
    return 0


def handle_compress(args: argparse.Namespace) -> int:
    from mipnet.cli import emit_json
    from mipnet.analyses.compression import compress
    from mipnet.io import save_network

    net, dom, res = _analyse(args)
    comp = compress(net, dom, stability=res, merge=args.merge)
    save_network(comp.network, args.output)
    out = {"model": args.model, "output": args.output, **comp.to_dict()}
    if args.verify:
        from mipnet.analyses.equivalence import verify_equivalence

        eq = verify_equivalence(net, comp.network, dom, mode="exact", time_limit=args.time_limit)
        out["verification"] = {k: v for k, v in eq.to_dict().items() if k != "per_output"}
    if args.json:
        emit_json(out)
    else:
        print(comp.report)
        if res.num_unknown:
            print(f"note: {res.num_unknown} neurons were not settled in time and were kept")
        if args.verify:
            print(f"verification: {out['verification']['verdict']}")
        info(f"wrote {args.output}")
    return 0
