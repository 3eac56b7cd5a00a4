"""``mipnet regions``: count, bound, estimate and draw the activation regions of a network.

Sub-commands and their Python twins:

- ``count``    -- :func:`mipnet.regions.count_regions`
- ``bound``    -- :func:`mipnet.theory.all_bounds` and :func:`mipnet.regions.network_specific_bound`
- ``sample``   -- :func:`mipnet.regions.sample_regions`
- ``estimate`` -- :func:`mipnet.regions.parity_lower_bound` (MIPBound)
- ``slice``    -- :func:`mipnet.slices.plane_regions` and :func:`mipnet.plotting.plot_plane_partition`
"""

from __future__ import annotations

import argparse
import os

from mipnet.cli.common import (
    add_bounds_arg,
    add_command,
    add_deprecated_alias,
    add_domain_args,
    add_json_arg,
    add_list_arg,
    add_parallel_args,
    add_progress_arg,
    add_subcommands,
    call,
    check_output_path,
    exit_code,
    info,
    progress_enabled,
    reject_unused,
    seconds,
)


def register(subparsers) -> None:
    p = add_command(
        subparsers, "regions",
        help="count, bound, estimate and draw the activation regions of a network",
        description="Activation regions (linear pieces) of a ReLU network on an input domain: exact counts, "
        "closed-form and network-specific upper bounds, sampled and probabilistic lower bounds, 2-D slices.",
        examples=["mipnet regions count net.onnx --box -1 1 --json",
                  "mipnet regions bound --widths 784 100 100 10 --density 0.1"],
    )
    sub = add_subcommands(p, "regions_command")

    # ---------------------------------------------------------------- count
    c = add_command(
        sub, "count",
        help="exact number of activation regions on a domain",
        description="Count the activation patterns whose region has non-empty interior in the domain. "
        "'fast' uses the vertex method (inputs <= 7) or LP branching; 'milp' is the Serra et al. 2018 "
        "baseline. With a time limit or region budget the count is a lower bound (exact: false).",
        examples=["mipnet regions count net.onnx --box -1 1 --json",
                  "mipnet regions count net.onnx --center x.npy --radius 1 --clip 0 16 --time-limit 60 "
                  "--linear-regions --save-regions regions.npz",
                  "mipnet regions count net.onnx --box -1 1 --workers 4",
                  "mipnet regions count net.onnx --box -1 1 --scheduler tcp://10.0.0.1:8786"],
    )
    c.add_argument("model", metavar="MODEL", help="network file (.onnx, .pt/.pth, .npz)")
    add_domain_args(c)
    c.add_argument("--method", choices=["fast", "vertex", "lp", "milp"], default="fast", help="counting method")
    c.add_argument("--time-limit", type=seconds, metavar="S",
                   help="stop after S seconds; the count is then a lower bound (default: no limit)")
    c.add_argument("--max-regions", type=int, metavar="N",
                   help="stop after N regions; the count is then a lower bound (default: no limit)")
    c.add_argument("--linear-regions", action="store_true", dest="linear_regions",
                   help="also count linear regions (adjacent regions with equal affine maps merged)")
    add_deprecated_alias(c, "--merge", "--linear-regions", dest="linear_regions", flag=True)
    c.add_argument("--tol", type=float, default=1e-12,
                   help="geometric resolution, relative to the local magnitudes (vertex coordinates, "
                        "hyperplane offsets) of the normalised domain")
    c.add_argument("--save-regions", metavar="NPZ",
                   help="save every region (patterns, interior points, affine maps A, c) to this .npz file")
    add_bounds_arg(c, default="lp", what="of the MILP's binaries and big-M (--method milp only)")
    add_parallel_args(c)
    add_progress_arg(c)
    add_json_arg(c)
    c.set_defaults(func=handle_count)

    # ---------------------------------------------------------------- bound
    b = add_command(
        sub, "bound",
        help="upper bounds on the number of regions (closed form; optionally network-specific)",
        description="Closed-form upper bounds (Montufar 2014/2017, Raghu 2017, Serra 2018, Cai 2023 expected "
        "rank) from a MODEL or from --widths, and with --network-specific the Serra & Ramalingam 2020 bound "
        "computed on a domain (needs MODEL and a domain).",
        examples=["mipnet regions bound --widths 784 100 100 10 --density 0.1 --json",
                  "mipnet regions bound --widths 784,100,100,10 --densities 0.05 0.2",
                  "mipnet regions bound net.onnx --network-specific --box 0 1"],
    )
    b.add_argument("model", nargs="?", metavar="MODEL", help="network file; or use --widths")
    add_list_arg(b, "--widths", item_type=str, metavar="N",
                 help="layer widths, input first and output last, e.g. 784 100 100 10")
    dg = b.add_mutually_exclusive_group()
    dg.add_argument("--density", type=float, metavar="D",
                    help="one density for every hidden layer, for the expected-rank bound (default: dense)")
    add_list_arg(dg, "--densities", metavar="D", help="one density per hidden layer, for the expected-rank bound")
    b.add_argument("--rank-model", choices=["binomial", "sampled"], default="binomial",
                   help="rank distribution of a pruned matrix")
    b.add_argument("--network-specific", action="store_true",
                   help="add the Serra & Ramalingam 2020 bound on the domain (stable neurons, MILP max active)")
    b.add_argument("--time-limit", type=seconds, metavar="S",
                   help="time limit for the network-specific MILPs (default: no limit)")
    add_domain_args(b)
    add_progress_arg(b)
    add_json_arg(b)
    b.set_defaults(func=handle_bound)

    # ---------------------------------------------------------------- sample
    s = add_command(
        sub, "sample",
        help="lower bound: distinct activation patterns at random inputs",
        description="Draw random inputs from the domain and count distinct activation patterns (a lower bound).",
        examples=["mipnet regions sample net.onnx --box -1 1 --samples 100000 --json"],
    )
    s.add_argument("model", metavar="MODEL", help="network file (.onnx, .pt/.pth, .npz)")
    add_domain_args(s)
    s.add_argument("--samples", type=int, default=100_000, metavar="N", help="number of random inputs")
    s.add_argument("--seed", type=int, default=0, help="random seed")
    add_progress_arg(s)
    add_json_arg(s)
    s.set_defaults(func=handle_sample)

    # ---------------------------------------------------------------- estimate
    e = add_command(
        sub, "estimate",
        help="probabilistic lower bound by random parity constraints (MIPBound)",
        description="MIPBound (Serra & Ramalingam, AAAI 2020): if all T trials with k random XOR constraints "
        "on the MILP's binaries stay feasible, #regions >= 2^(k - alpha) with probability "
        ">= 1 - 2^(-alpha T).",
        examples=["mipnet regions estimate net.onnx --box -1 1 --trials 5 --time-limit 60 --json",
                  "mipnet regions estimate net.onnx --box -1 1 --parity 3 --samples 10000"],
    )
    e.add_argument("model", metavar="MODEL", help="network file (.onnx, .pt/.pth, .npz)")
    add_domain_args(e)
    e.add_argument("--parity", default="auto", metavar="K",
                   help="number of XOR constraints, or 'auto' to search k = 0, 1, 2, ...")
    e.add_argument("--trials", type=int, default=5, metavar="T", help="trials per k")
    e.add_argument("--alpha", type=float, default=1.0, help="slack alpha > 0 of the bound")
    e.add_argument("--seed", type=int, default=0, help="random seed")
    e.add_argument("--time-limit", type=seconds, metavar="S", help="overall time limit in seconds (default: none)")
    e.add_argument("--samples", type=int, default=0, metavar="N",
                   help="also report the sampling lower bound with N random inputs (0: do not)")
    add_progress_arg(e)
    add_json_arg(e)
    e.set_defaults(func=handle_estimate)

    # ---------------------------------------------------------------- slice
    sl = add_command(
        sub, "slice",
        help="exact activation regions on a 2-D plane through the input space, drawn to a picture",
        description="Partition a plane section exactly into activation regions (no solver) and draw it: "
        "the plane through three inputs (--points) or spanned by two input axes (--axes).",
        examples=["mipnet regions slice net.onnx --axes 0 1 --box -1 1 -o slice.png",
                  "mipnet regions slice net.onnx --points a.npy b.npy c.npy --box 0 16 -o slice.png --json"],
    )
    sl.add_argument("model", metavar="MODEL", help="network file (.onnx, .pt/.pth, .npz)")
    g = sl.add_mutually_exclusive_group(required=True)
    g.add_argument("--points", nargs=3, metavar=("A", "B", "C"),
                   help="three input files (.npy/.txt/.json) the plane passes through")
    add_list_arg(g, "--axes", item_type=int, count=2, metavar=("I", "J"),
                 help="two input indices spanning the plane")
    sl.add_argument("--base", metavar="FILE",
                    help="with --axes: a point the plane passes through (default: the centre of the box)")
    add_list_arg(sl, "--box", count=2, metavar=("LO", "HI"),
                 help="input box: the axes' range with --axes (default: -1 1); with --points the plane is "
                      "clipped to it (default: not clipped)")
    sl.add_argument("--margin", type=float, metavar="M",
                    help="with --points: margin around the triangle, relative to its size (default: 0.2)")
    sl.add_argument("-o", "--output", metavar="PNG", help="save the picture here (.png, .pdf, .svg, ...)")
    sl.add_argument("--color-by", choices=["region", "linear", "class"],
                    help="with -o: colour per activation region, per linear region, or by predicted class "
                         "(default: region)")
    add_progress_arg(sl)
    add_json_arg(sl)
    sl.set_defaults(func=handle_slice)


def _load(path):
    from mipnet.io import load_network

    return load_network(path)


# ============================================================================ handlers
def handle_count(args: argparse.Namespace) -> int:
    import numpy as np

    from mipnet.analyses.regions import count_regions
    from mipnet.cli.common import atomic_write, domain_from_args, emit_json
    from mipnet.core.errors import InvalidArgumentError

    if args.save_regions:
        check_output_path(args.save_regions, inputs=[args.model, args.center], flag="--save-regions", kind="npz")
    if args.bounds != "lp" and args.method != "milp":
        raise InvalidArgumentError(f"--bounds is used by --method milp (the {args.method} method needs no neuron bounds)")
    net = _load(args.model)
    dom = domain_from_args(args, net.input_dim)
    from mipnet.cli.common import parallel_executor

    with parallel_executor(args) as executor:
        res = call(count_regions, net, dom, method=args.method, time_limit=args.time_limit,
                   max_regions=args.max_regions, merge_linear=args.linear_regions,
                   return_regions=bool(args.save_regions), progress=progress_enabled(args), tol=args.tol,
                   executor=executor, bounds=None if args.method != "milp" else args.bounds)
    if args.save_regions:
        regs = list(res.region_list or [])
        P = res.patterns()
        X = np.stack([r.interior_point for r in regs]) if regs else np.zeros((0, net.input_dim))
        A = np.stack([r.A for r in regs]) if regs else np.zeros((0, net.output_dim, net.input_dim))
        c = np.stack([r.c for r in regs]) if regs else np.zeros((0, net.output_dim))
        with atomic_write(args.save_regions) as tmp:
            np.savez(tmp, patterns=P, interior_points=X, A=A, c=c)
    if args.json:
        d = res.to_dict(include_regions=False)
        d["model"] = args.model
        d["domain"] = dom.to_dict()
        if args.save_regions:
            d["saved_regions"] = os.fspath(args.save_regions)
        emit_json(d)
    else:
        print(res)
        if args.save_regions:
            info(f"saved the regions to {args.save_regions}")
    return exit_code(res)


def handle_bound(args: argparse.Namespace) -> int:
    from mipnet.cli.common import domain_given, emit_json
    from mipnet.core.errors import InvalidArgumentError
    from mipnet.theory import all_bounds, parse_widths

    if (args.model is None) == (args.widths is None):
        raise InvalidArgumentError("give either MODEL or --widths N0 N1 ... NOUT (not both)")
    if args.network_specific and args.model is None:
        raise InvalidArgumentError("--network-specific needs a MODEL (and a domain, e.g. --box 0 1)")
    if not args.network_specific:
        reject_unused(args, "with --network-specific", "--time-limit")
        if domain_given(args):
            raise InvalidArgumentError("the domain flags (--box, --center, --radius, --clip) are only used "
                                       "with --network-specific; the closed-form bounds hold on all inputs")
    densities = args.density if args.density is not None else args.densities
    net = None
    if args.model is not None:
        net = _load(args.model)
        widths = list(net.widths)
        bounds = call(all_bounds, net, densities=densities, rank_model=args.rank_model)
    else:
        text = ",".join(args.widths)
        widths = list(parse_widths(text))
        if len(widths) < 2:
            raise InvalidArgumentError(
                f"--widths {text!r} needs the input and the output width at least, e.g. 784 100 10"
            )
        bounds = call(all_bounds, widths[:-1], densities=densities, rank_model=args.rank_model,
                      output_width=widths[-1])
    nsb = None
    if args.network_specific:
        from mipnet.analyses.regions import network_specific_bound
        from mipnet.cli.common import domain_from_args

        dom = domain_from_args(args, net.input_dim)
        nsb = call(network_specific_bound, net, dom, time_limit=args.time_limit, progress=progress_enabled(args))
        bounds = list(bounds) + [nsb.bound]
    if args.json:
        d = {"widths": widths, "bounds": {b.name: b.to_dict() for b in bounds}}
        if nsb is not None:
            d["network_specific"] = nsb.to_dict()
        emit_json(d)
    else:
        print(f"upper bounds on the number of activation regions of a {'-'.join(map(str, widths))} network:")
        for b in bounds:
            print(f"  {b}")
        if nsb is not None:
            print(f"  (network-specific inputs: stably inactive {nsb.stable_inactive}, stably active "
                  f"{nsb.stable_active}, max active {nsb.max_active})")
    return exit_code(nsb)


def handle_sample(args: argparse.Namespace) -> int:
    from mipnet.analyses.regions import sample_regions
    from mipnet.cli.common import domain_from_args, emit_json

    net = _load(args.model)
    dom = domain_from_args(args, net.input_dim)
    res = call(sample_regions, net, dom, args.samples, args.seed, progress=progress_enabled(args))
    if args.json:
        emit_json({**res.to_dict(), "model": args.model, "domain": dom.to_dict()})
    else:
        print(res)
    return exit_code(res)


def handle_estimate(args: argparse.Namespace) -> int:
    from mipnet.analyses.regions import parity_lower_bound, sample_regions
    from mipnet.cli.common import domain_from_args, emit_json
    from mipnet.core.errors import InvalidArgumentError

    if str(args.parity).lower() == "auto":
        k = None
    else:
        try:
            k = int(args.parity)
        except ValueError:
            raise InvalidArgumentError(f"--parity must be a non-negative integer or 'auto', got {args.parity!r}") from None
    if args.samples < 0:
        raise InvalidArgumentError(f"--samples must be >= 0, got {args.samples}")
    net = _load(args.model)
    dom = domain_from_args(args, net.input_dim)
    progress = progress_enabled(args)
    res = call(parity_lower_bound, net, dom, k=k, trials=args.trials, alpha=args.alpha, seed=args.seed,
               time_limit=args.time_limit, progress=progress)
    samp = None
    if args.samples > 0 and not exit_code(res):
        samp = call(sample_regions, net, dom, args.samples, args.seed, progress=progress)
    if args.json:
        d = {"parity": res.to_dict(), "model": args.model, "domain": dom.to_dict()}
        if samp is not None:
            d["sampling"] = samp.to_dict()
        emit_json(d)
    else:
        print(res)
        if samp is not None:
            print(samp)
    return exit_code(res, samp)


def _box_polygon(plane, lo, hi):
    """The part of the plane's (s, t) rectangle whose points lie in the box [lo, hi]^n0."""
    import numpy as np

    (s0, s1), (t0, t1) = plane.bounds
    poly = np.array([[s0, t0], [s1, t0], [s1, t1], [s0, t1]], dtype=float)
    # x(s, t) = origin + s u + t v;  lo <= x_i <= hi  ->  half-planes a.(s, t) <= b
    U = np.stack([plane.u, plane.v], axis=1)
    halfplanes = [(U, hi - plane.origin), (-U, plane.origin - lo)]
    for G, h in halfplanes:
        for a, b in zip(G, h):
            if not np.any(a):
                if b < 0:
                    return None
                continue
            val = poly @ a - b
            inside = val <= 0
            if inside.all():
                continue
            if not inside.any():
                return None
            out = []
            for i in range(len(poly)):
                p, q = poly[i], poly[(i + 1) % len(poly)]
                vp, vq = val[i], val[(i + 1) % len(poly)]
                if vp <= 0:
                    out.append(p)
                if (vp <= 0) != (vq <= 0):
                    out.append(p + (q - p) * (vp / (vp - vq)))
            poly = np.array(out)
            if len(poly) < 3:
                return None
    return poly


def handle_slice(args: argparse.Namespace) -> int:
    import numpy as np

    from mipnet.analyses.slices import plane_along_axes, plane_regions, plane_through_points
    from mipnet.cli.common import atomic_write, emit_json, load_vector
    from mipnet.core.errors import InvalidArgumentError, InvalidDomainError

    if args.points:
        reject_unused(args, "with --axes", "--base")
        args.base = None
    else:
        reject_unused(args, "with --points", "--margin")
    if not args.output:
        reject_unused(args, "with -o/--output (the picture)", "--color-by")
    if args.output:
        check_output_path(args.output, inputs=[args.model, *(args.points or []), args.base], kind="plot")
    net = _load(args.model)
    n0 = net.input_dim
    labels = None
    progress = progress_enabled(args)
    if args.points:
        xs = [load_vector(p, "--points file") for p in args.points]
        for p, x in zip(args.points, xs):
            if x.size != n0:
                raise InvalidArgumentError(f"{p} holds {x.size} numbers, the network takes {n0} inputs")
        plane = call(plane_through_points, *xs, margin=0.2 if args.margin is None else args.margin)
        labels = {os.path.splitext(os.path.basename(p))[0]: plane.points_st[i] for i, p in enumerate(args.points)}
        if len(labels) < 3:
            labels = {"A": plane.points_st[0], "B": plane.points_st[1], "C": plane.points_st[2]}
        if args.box is not None:
            poly = _box_polygon(plane, float(args.box[0]), float(args.box[1]))
            if poly is None:
                raise InvalidDomainError("the plane through the three points does not meet the --box")
            part = call(plane_regions, net, plane.origin, plane.u, plane.v, polygon=poly, progress=progress)
        else:
            part = call(plane.regions, net, progress=progress)
    else:
        i, j = args.axes
        lo, hi = (args.box if args.box is not None else (-1.0, 1.0))
        if args.base is None or args.base == "center":
            base = np.full(n0, (lo + hi) / 2.0)
        else:
            base = load_vector(args.base, "--base")
            if base.size != n0:
                raise InvalidArgumentError(f"--base {args.base} holds {base.size} numbers, the network takes {n0}")
        plane = call(plane_along_axes, n0, i, j, base_point=base, lo=lo, hi=hi)
        part = call(plane.regions, net, progress=progress)
        labels = None
    if args.output:
        import matplotlib

        matplotlib.use("Agg")
        from mipnet.plotting import plot_plane_partition

        with atomic_write(args.output) as tmp:
            plot_plane_partition(part, color_by=args.color_by or "region", show_points=labels, path=tmp)
    linear = part.count_linear_regions()
    if args.json:
        d = {**part.to_dict(), "plane": plane.to_dict(), "linear_regions": linear, "model": args.model}
        if args.output:
            d["output"] = os.fspath(args.output)
        emit_json(d)
    else:
        print(part)
        print(f"{linear} linear regions after merging adjacent regions with equal affine maps")
        if args.output:
            info(f"saved {args.output}")
    return exit_code(part)
