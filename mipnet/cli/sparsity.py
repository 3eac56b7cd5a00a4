"""``mipnet sparsity allocate``: per-layer densities that maximise the expected-rank bound.

Python twin: :func:`mipnet.sparsity.allocate_sparsity`.
"""

from __future__ import annotations

import argparse

from mipnet.cli.common import (
    add_command,
    add_json_arg,
    add_list_arg,
    add_progress_arg,
    add_subcommands,
    call,
    check_output_path,
    exit_code,
    info,
    progress_enabled,
)


def register(subparsers) -> None:
    p = add_command(
        subparsers, "sparsity",
        help="choose per-layer pruning densities from the expected number of linear regions",
        description="Sparsity tools based on the expected-rank bound of Cai et al. (CPAIOR 2023).",
        examples=["mipnet sparsity allocate --widths 784 100 100 10 --density 0.001 --json"],
    )
    sub = add_subcommands(p, "sparsity_command")
    a = add_command(
        sub, "allocate",
        help="per-layer densities maximising the expected-rank bound at a global density or budget",
        description=(
            "Spread a weight budget over the prunable layers so that the expected-rank bound on the "
            "number of linear regions (Cai et al., CPAIOR 2023) is largest; compare with uniform density. "
            "Give the architecture with --widths (input, hidden..., output) or a MODEL file."
        ),
        examples=["mipnet sparsity allocate --widths 784 100 100 10 --density 0.001 --json",
                  "mipnet sparsity allocate net.onnx --budget 5000 --prunable all --plot bound.png",
                  "mipnet sparsity allocate --widths 64,16,16,10 --density 0.3 --rank-model sampled --samples 128"],
    )
    a.add_argument("model", nargs="?", metavar="MODEL", help="model file (.onnx, .pt/.pth, .npz); or use --widths")
    add_list_arg(a, "--widths", item_type=str, metavar="N",
                 help="layer widths, input first and output last, e.g. 784 100 100 10")
    g = a.add_mutually_exclusive_group(required=True)
    g.add_argument("--density", type=float, metavar="D",
                   help="global density in (0, 1]: fraction of the prunable weights kept")
    g.add_argument("--budget", type=float, metavar="N", help="number of weights kept in the prunable layers")
    a.add_argument("--rank-model", choices=["binomial", "sampled"], default="binomial",
                   help="rank distribution of a pruned matrix: closed form or Monte-Carlo")
    add_list_arg(a, "--prunable", item_type=str, default=["hidden"], metavar="SPEC",
                 help="which weight matrices may be pruned: 'hidden' (the output layer stays dense), 'all', "
                      "or 0-based indices like 0 1")
    a.add_argument("--exclude-output", action="store_true",
                   help="leave the output layer out of the bound (Cai et al. include it as a last factor)")
    a.add_argument("--grid", type=int, default=None, metavar="G",
                   help="grid points per layer (default: about 3000 allocations in all)")
    a.add_argument("--no-refine", action="store_true", help="skip the continuous refinement of the grid optimum")
    a.add_argument("--samples", type=int, metavar="S",
                   help="with --rank-model sampled: Monte-Carlo samples (default: 64)")
    a.add_argument("--seed", type=int, metavar="N", help="with --rank-model sampled: random seed (default: 0)")
    a.add_argument("--plot", metavar="PNG", help="also save a plot of ln B against global density")
    add_progress_arg(a)
    add_json_arg(a)
    a.set_defaults(func=handle_allocate)


def _architecture(args):
    from mipnet.core.errors import InvalidArgumentError
    from mipnet.theory import parse_widths

    if (args.model is None) == (args.widths is None):
        raise InvalidArgumentError("give either a MODEL file or --widths N0 N1 ... NOUT (input first, output last)")
    if args.widths is not None:
        text = ",".join(args.widths)
        w = parse_widths(text)
        if len(w) < 2:
            raise InvalidArgumentError(
                f"--widths {text!r} needs at least an input and an output width, e.g. 784,100,100,10"
            )
        return w, None
    from mipnet.io import load_network

    net = load_network(args.model)
    return tuple(net.widths), net


def handle_allocate(args: argparse.Namespace) -> int:
    from mipnet.cli.common import atomic_write, emit_json, reject_unused
    from mipnet.sparsity import allocate_sparsity, plot_bound_vs_density

    if args.rank_model != "sampled":
        reject_unused(args, "with --rank-model sampled", "--samples", "--seed")
    if args.plot:
        check_output_path(args.plot, inputs=[args.model], flag="--plot", kind="plot")
    widths, net = _architecture(args)
    prunable = ",".join(args.prunable)
    res = call(
        allocate_sparsity,
        widths,
        density=args.density,
        budget=args.budget,
        prunable=prunable,
        rank_model=args.rank_model,
        output_in_bound=not args.exclude_output,
        grid=args.grid,
        refine=not args.no_refine,
        n_samples=64 if args.samples is None else args.samples,
        seed=0 if args.seed is None else args.seed,
        progress=progress_enabled(args),
    )
    out = res.to_dict()
    if net is not None:
        out["model"] = args.model
        out["model_layer_densities"] = net.layer_densities()
    if args.plot:
        if args.rank_model != "binomial":
            info("the plot uses the binomial rank model (the sampled one is too slow for a curve)")
        import matplotlib

        matplotlib.use("Agg")
        with atomic_write(args.plot) as tmp:
            call(plot_bound_vs_density, widths, tmp, mark=res.density, prunable=res.prunable,
                 rank_model="binomial", output_in_bound=res.output_in_bound)
        out["plot"] = args.plot
        info(f"plot written to {args.plot}")
    if args.json:
        emit_json(out)
        return exit_code(res)
    if net is not None:
        print(f"model {args.model}")
    print(res)
    return exit_code(res)
