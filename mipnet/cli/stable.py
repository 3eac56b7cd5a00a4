"""``mipnet stable`` and ``mipnet compress``: stable neurons and lossless compression on a domain.

Python twins: :func:`mipnet.analyses.stability.find_stable_neurons`,
:func:`mipnet.analyses.compression.compress`.
"""

from __future__ import annotations

import argparse

from mipnet.cli.common import (
    add_command,
    add_bounds_arg,
    add_domain_args,
    add_json_arg,
    add_parallel_args,
    add_progress_arg,
    call,
    check_output_path,
    domain_from_args,
    executor_kwargs,
    exit_code,
    info,
    interrupted,
    progress_enabled,
    seconds,
)


def _add_stability_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="model file: .onnx, .pt/.pth or .npz")
    add_domain_args(p)
    p.add_argument("--method", choices=["one-milp", "per-neuron"], default="per-neuron",
                   help="one MILP over all candidates (Serra et al. 2021) or early-stopped MILPs per neuron, "
                        "layer by layer (Serra et al. 2020; usually faster with HiGHS)")
    p.add_argument("--time-limit", type=seconds, metavar="S",
                   help="seconds in all; neurons not settled in time are reported as unknown (default: no limit)")
    p.add_argument("--tol", type=float, default=1e-6, help="numerical tolerance of a stability proof")
    p.add_argument("--samples", type=int, default=1000,
                   help="random inputs tried first as witnesses of instability")
    add_bounds_arg(p, default="auto", what="the search starts from")
    add_progress_arg(p)
    add_parallel_args(p)
    add_json_arg(p)


def register(subparsers) -> None:
    p = add_command(
        subparsers, "stable",
        help="find stably active / inactive ReLUs on an input domain, with certificates",
        description="Prove which ReLUs never change sign on the domain (MILP, HiGHS). Neurons not settled "
                    "within --time-limit are reported as unknown, never as stable.",
        examples=["mipnet stable net.onnx --box 0 16 --json",
                  "mipnet stable net.onnx --center x.npy --radius 1 --clip 0 16 --method one-milp --time-limit 60",
                  "mipnet stable net.onnx --box 0 16 --workers 4   # the per-neuron MILPs on 4 processes"],
    )
    _add_stability_args(p)
    p.add_argument("--arrays", action="store_true", help="with --json: include per-neuron states, bounds, witnesses")
    p.set_defaults(func=handle_stable)

    p = add_command(
        subparsers, "compress",
        help="remove or fold stable ReLUs: a smaller network equal to MODEL on the domain",
        description="Lossless compression (Serra et al., CPAIOR 2020): drop stably inactive neurons, fold "
                    "linearly dependent stably active ones, merge affine layers. Writes the smaller network "
                    "(never over MODEL; atomically) and OUT.neurons.json, the map of kept neurons that "
                    "'mipnet verify MODEL OUT' uses to prove the two equal.",
        examples=["mipnet compress net.onnx --box 0 16 -o small.onnx --verify",
                  "mipnet compress net.npz --center x.npy --radius 1 -o small.npz --json"],
    )
    _add_stability_args(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="where to write the compressed network (.onnx, .pt/.pth or .npz)")
    p.add_argument("--merge", choices=["auto", "always", "never"], default="auto",
                   help="merge layers that are affine on the domain ('auto': when it saves parameters)")
    p.add_argument("--verify", action="store_true",
                   help="afterwards prove the compressed network equal to MODEL on the domain (exact MILP check)")
    p.set_defaults(func=handle_compress)


def _analyse(args):
    from mipnet.analyses.stability import find_stable_neurons
    from mipnet.cli.common import parallel_executor
    from mipnet.io import load_network

    net = load_network(args.model)
    dom = domain_from_args(args, net.input_dim)
    with parallel_executor(args) as executor:
        res = call(find_stable_neurons, net, dom, method=args.method.replace("-", "_"), time_limit=args.time_limit,
                   tol=args.tol, samples=args.samples, bounds=args.bounds, progress=progress_enabled(args),
                   **executor_kwargs(find_stable_neurons, executor, args))
    return net, dom, res


def handle_stable(args: argparse.Namespace) -> int:
    from mipnet.cli.common import emit_json, reject_unused

    if not args.json:
        reject_unused(args, "with --json", "--arrays")
    net, _, res = _analyse(args)
    if args.json:
        emit_json({"model": args.model, "widths": list(net.widths), **res.to_dict(arrays=args.arrays)})
    else:
        print(f"{args.model}: {'-'.join(map(str, net.widths))}")
        print(res)
    return exit_code(res)


def handle_compress(args: argparse.Namespace) -> int:
    from mipnet.analyses.compression import compress, save_neuron_map
    from mipnet.cli.common import emit_json
    from mipnet.io import save_network

    check_output_path(args.output, inputs=[args.model, args.center])
    net, dom, res = _analyse(args)
    if interrupted(res):  # Ctrl-C during the stability MILPs: report them, write nothing
        out = {"model": args.model, "output": None, "status": "interrupted", "stability": res.to_dict()}
        if args.json:
            emit_json(out)
        else:
            print(res)
            info(f"interrupted: nothing written to {args.output}")
        return exit_code(res)
    comp = call(compress, net, dom, stability=res, merge=args.merge)
    save_network(comp.network, args.output)
    nmap = save_neuron_map(comp, args.output)
    out = {"model": args.model, "output": args.output, "neuron_map_file": nmap, **comp.to_dict()}
    eq = None
    if args.verify:
        from mipnet.analyses.equivalence import verify_equivalence

        eq = call(verify_equivalence, net, comp.network, dom, mode="exact", time_limit=args.time_limit,
                  progress=progress_enabled(args), correspondence=list(comp.neuron_map) or None)
        out["verification"] = {k: v for k, v in eq.to_dict().items() if k != "per_output"}
    if args.json:
        emit_json(out)
    else:
        print(comp.report)
        if res.num_unknown:
            print(f"note: {res.num_unknown} neurons were not settled in time and were kept")
        if args.verify:
            print(f"verification: {out['verification']['verdict']}")
        info(f"wrote {args.output} and its neuron map {nmap}")
    return exit_code(comp, eq)
