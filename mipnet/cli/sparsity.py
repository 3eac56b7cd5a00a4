"""``mipnet sparsity allocate``: per-layer densities that maximise the expected-rank bound.

Python twin: :func:`mipnet.sparsity.allocate_sparsity`.
"""

from __future__ import annotations

import argparse

from mipnet.cli.common import add_json_arg, info


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sparsity",
        help="choose per-layer pruning densities from the expected number of linear regions",
        description="Sparsity tools based on the expected-rank bound of Cai et al. (CPAIOR 2023).",
    )
    sub = p.add_subparsers(dest="sparsity_command", metavar="SUBCOMMAND")
    a = sub.add_parser(
        "allocate",
        help="per-layer densities maximising the expected-rank bound at a global density or budget",
        description=(
            "Spread a weight budget over the prunable layers so that the expected-rank bound on the "
            "number of linear regions (Cai et al., CPAIOR 2023) is largest; compare with uniform density. "
            "Give the architecture with --widths (input, hidden..., output) or a MODEL file."
        ),
    )
    a.add_argument("model", nargs="?", metavar="MODEL", help="model file (.onnx, .pt/.pth, .npz); or use --widths")
    a.add_argument("--widths", metavar="N0,N1,...,NOUT",
                   help="layer widths, input first and output last, e.g. 784,100,100,10")
    g = a.add_mutually_exclusive_group(required=True)
    g.add_argument("--density", type=float, metavar="D",
                   help="global density in (0, 1]: fraction of the prunable weights kept")
    g.add_argument("--budget", type=float, metavar="N", help="number of weights kept in the prunable layers")
    a.add_argument("--rank-model", choices=["binomial", "sampled"], default="binomial",
                   help="rank distribution of a pruned matrix: closed form (default) or Monte-Carlo")
    a.add_argument("--prunable", default="hidden", metavar="SPEC",
                   help="which weight matrices may be pruned: 'hidden' (default: output dense), 'all', "
                        "or 0-based indices like 0,1")
    a.add_argument("--exclude-output", action="store_true",
                   help="leave the output layer out of the bound (Cai et al. include it as a last factor)")
    a.add_argument("--grid", type=int, default=None, metavar="G",
                   help="grid points per layer (default: about 3000 allocations in all)")
    a.add_argument("--no-refine", action="store_true", help="skip the continuous refinement of the grid optimum")
    a.add_argument("--samples", type=int, default=64, metavar="S", help="Monte-Carlo samples for --rank-model sampled")
    a.add_argument("--seed", type=int, default=0, help="seed for --rank-model sampled")
    a.add_argument("--plot", metavar="PNG", help="also save a plot of ln B against global density")
    add_json_arg(a)
    a.set_defaults(func=handle_allocate)
    p.set_defaults(func=_help(p))


def _help(parser):
    def show(args) -> int:
        parser.print_help()
        return 2

    return show


def _architecture(args):
    from mipnet.core.errors import InvalidNetworkError
    from mipnet.theory import parse_widths

    if (args.model is None) == (args.widths is None):
        raise InvalidNetworkError("give either a MODEL file or --widths N0,N1,...,NOUT (input first, output last)")
    if args.widths is not None:
        w = parse_widths(args.widths)
        if len(w) < 2:
            raise InvalidNetworkError(
                f"--widths {args.widths!r} needs at least an input and an output width, e.g. 784,100,100,10"
            )
        return w, None
    from mipnet.io import load_network

    net = load_network(args.model)
    return tuple(net.widths), net


def handle_allocate(args: argparse.Namespace) -> int:
    from mipnet.cli import emit_json
    from mipnet.sparsity import allocate_sparsity, plot_bound_vs_density

    widths, net = _architecture(args)
    res = allocate_sparsity(
        widths,
        density=args.density,
        budget=args.budget,
        prunable=args.prunable,
        rank_model=args.rank_model,
        output_in_bound=not args.exclude_output,
        grid=args.grid,
        refine=not args.no_refine,
        n_samples=args.samples,
        seed=args.seed,
    )
    out = res.to_dict()
    if net is not None:
        out["model"] = args.model
        out["model_layer_densities"] = net.layer_densities()
    if args.plot:
        if args.rank_model != "binomial":
            info("the plot uses the binomial rank model (the sampled one is too slow for a curve)")
        plot_bound_vs_density(widths, args.plot, mark=res.density, prunable=res.prunable,
                              rank_model="binomial", output_in_bound=res.output_in_bound)
        out["plot"] = args.plot
        info(f"plot written to {args.plot}")
    if args.json:
        emit_json(out)
        return 0
    if net is not None:
        print(f"model {args.model}")
    print(res)
    return 0
