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
import sys

from mipnet.cli.common import add_domain_args, add_json_arg, info


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "regions",
        help="count, bound, estimate and draw the activation regions of a network",
        description="Activation regions (linear pieces) of a ReLU network on an input domain: exact counts, "
        "closed-form and network-specific upper bounds, sampled and probabilistic lower bounds, 2-D slices.",
    )
    sub = p.add_subparsers(dest="regions_command", metavar="SUBCOMMAND")

    # ---------------------------------------------------------------- count
    c = sub.add_parser(
        "count",
        help="exact number of activation regions on a domain",
        description="Count the activation patterns whose region has non-empty interior in the domain. "
        "'fast' uses the vertex method (inputs <= 7) or LP branching; 'milp' is the Serra et al. 2018 "
        "baseline. With a time limit or region budget the count is a lower bound (exact: false).",
    )
    c.add_argument("model", metavar="MODEL", help="network file (.onnx, .pt/.pth, .npz)")
    add_domain_args(c)
    c.add_argument("--method", choices=["fast", "vertex", "lp", "milp"], default="fast",
                   help="counting method (default: fast)")
    c.add_argument("--time-limit", type=float, metavar="S", help="stop after S seconds (result is a lower bound)")
    c.add_argument("--max-regions", type=int, metavar="N", help="stop after N regions (result is a lower bound)")
    c.add_argument("--merge", action="store_true",
                   help="also count linear regions (adjacent regions with equal affine maps merged)")
    c.add_argument("--tol", type=float, default=1e-9,
                   help="thickness threshold relative to the domain diameter (default 1e-9)")
    c.add_argument("--save-regions", metavar="NPZ",
                   help="save every region (patterns, interior points, affine maps A, c) to this .npz file")
    c.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_json_arg(c)
    c.set_defaults(func=handle_count)

    # ---------------------------------------------------------------- bound
    b = sub.add_parser(
        "bound",
        help="upper bounds on the number of regions (closed form; optionally network-specific)",
        description="Closed-form upper bounds (Montufar 2014/2017, Raghu 2017, Serra 2018, Cai 2023 expected "
        "rank) from a MODEL or from --widths, and with --network-specific the Serra & Ramalingam 2020 bound "
        "computed on a domain (needs MODEL).",
    )
    b.add_argument("model", nargs="?", metavar="MODEL", help="network file; or use --widths")
    b.add_argument("--widths", metavar="N0,N1,...,NOUT",
                   help="layer widths, input first and output last, e.g. 784,100,100,10")
    b.add_argument("--density", type=float, nargs="+", metavar="D",
                   help="density per hidden layer (or one for all) for the expected-rank bound")
    b.add_argument("--rank-model", choices=["binomial", "sampled"], default="binomial",
                   help="rank distribution of a pruned matrix (default: binomial closed form)")
    b.add_argument("--network-specific", action="store_true",
                   help="add the Serra & Ramalingam 2020 bound on the domain (stable neurons, MILP max active)")
    b.add_argument("--time-limit", type=float, metavar="S", help="time limit for the network-specific MILPs")
    add_domain_args(b)
    add_json_arg(b)
    b.set_defaults(func=handle_bound)

    # ---------------------------------------------------------------- sample
    s = sub.add_parser(
        "sample",
        help="lower bound: distinct activation patterns at random inputs",
        description="Draw random inputs from the domain and count distinct activation patterns (a lower bound).",
    )
    s.add_argument("model", metavar="MODEL", help="network file (.onnx, .pt/.pth, .npz)")
    add_domain_args(s)
    s.add_argument("--samples", type=int, default=100_000, metavar="N", help="number of samples (default 100000)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_json_arg(s)
    s.set_defaults(func=handle_sample)

    # ---------------------------------------------------------------- estimate
    e = sub.add_parser(
        "estimate",
        help="probabilistic lower bound by random parity constraints (MIPBound)",
        description="MIPBound (Serra & Ramalingam, AAAI 2020): if all T trials with k random XOR constraints "
        "on the MILP's binaries stay feasible, #regions >= 2^(k - alpha) with probability "
        ">= 1 - 2^(-alpha T).",
    )
    e.add_argument("model", metavar="MODEL", help="network file (.onnx, .pt/.pth, .npz)")
    add_domain_args(e)
    e.add_argument("--parity", default="auto", metavar="K",
                   help="number of XOR constraints, or 'auto' to search k = 0, 1, 2, ... (default)")
    e.add_argument("--trials", type=int, default=5, metavar="T", help="trials per k (default 5)")
    e.add_argument("--alpha", type=float, default=1.0, help="slack alpha > 0 of the bound (default 1)")
    e.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    e.add_argument("--time-limit", type=float, metavar="S", help="overall time limit in seconds")
    e.add_argument("--samples", type=int, default=0, metavar="N",
                   help="also report the sampling lower bound with N samples")
    add_json_arg(e)
    e.set_defaults(func=handle_estimate)

    # ---------------------------------------------------------------- slice
    sl = sub.add_parser(
        "slice",
        help="exact activation regions on a 2-D plane through the input space, drawn to a PNG",
        description="Partition a plane section exactly into activation regions (no solver) and draw it: "
        "the plane through three inputs (--points) or spanned by two input axes (--axes).",
    )
    sl.add_argument("model", metavar="MODEL", help="network file (.onnx, .pt/.pth, .npz)")
    g = sl.add_mutually_exclusive_group(required=True)
    g.add_argument("--points", nargs=3, metavar=("A", "B", "C"),
                   help="three input files (.npy/.txt/.json) the plane passes through")
    g.add_argument("--axes", nargs=2, type=int, metavar=("I", "J"), help="two input indices spanning the plane")
    sl.add_argument("--base", default="center", metavar="FILE|center",
                    help="with --axes: the point the plane passes through (a file, or 'center' of the box)")
    sl.add_argument("--box", nargs=2, type=float, metavar=("LO", "HI"),
                    help="input box: the axes' range with --axes; the plane is clipped to it with --points")
    sl.add_argument("--margin", type=float, default=0.2,
                    help="with --points: margin around the triangle, relative to its size (default 0.2)")
    sl.add_argument("-o", "--output", metavar="PNG", help="save the picture here")
    sl.add_argument("--color-by", choices=["region", "linear", "class"], default="region",
                    help="colour per activation region, per linear region, or by predicted class")
    add_json_arg(sl)
    sl.set_defaults(func=handle_slice)

    p.set_defaults(func=_help(p))


def _help(parser):
    def show(args) -> int:
        parser.print_help(sys.stderr)
        return 2

    return show


def _load(path):
    from mipnet.io import load_network

    return load_network(path)


# ============================================================================ handlers
def handle_count(args: argparse.Namespace) -> int:
    import numpy as np

    from mipnet.cli import emit_json
    from mipnet.analyses.regions import count_regions
    from mipnet.cli.common import domain_from_args

    net = _load(args.model)
    dom = domain_from_args(args, net.input_dim)
    progress = not args.no_progress and sys.stderr.isatty()
    res = count_regions(net, dom, method=args.method, time_limit=args.time_limit, max_regions=args.max_regions,
                        merge_linear=args.merge, return_regions=bool(args.save_regions), progress=progress,
                        tol=args.tol)
    if args.save_regions:
        P = res.patterns()
        X = np.stack([r.interior_point for r in res.region_list]) if res.regions else np.zeros((0, net.input_dim))
        A = np.stack([r.A for r in res.region_list]) if res.regions else np.zeros((0, net.output_dim, net.input_dim))
        c = np.stack([r.c for r in res.region_list]) if res.regions else np.zeros((0, net.output_dim))
        np.savez(args.save_regions, patterns=P, interior_points=X, A=A, c=c)
    if args.json:
        d = res.to_dict(include_regions=False)
        d["model"] = args.model
        d["domain"] = dom.to_dict()
        if args.save_regions:
            d["saved_regions"] = os.fspath(args.save_regions)
        emit_json(d)
    else:
        print(res)
    return 0


def handle_bound(args: argparse.Namespace) -> int:
    from mipnet.cli import emit_json
    from mipnet.core.errors import InvalidArgumentError
    from mipnet.theory import all_bounds, parse_widths

    if (args.model is None) == (args.widths is None):
        raise InvalidArgumentError("give either MODEL or --widths N0,N1,...,NOUT (not both)")
    if args.network_specific and args.model is None:
        raise InvalidArgumentError("--network-specific needs a MODEL (and a domain, e.g. --box 0 1)")
    densities = None
    if args.density is not None:
        densities = args.density[0] if len(args.density) == 1 else list(args.density)
    net = None
    if args.model is not None:
        net = _load(args.model)
        widths = list(net.widths)
        bounds = all_bounds(net, densities=densities, rank_model=args.rank_model)
    else:
        widths = list(parse_widths(args.widths))
        if len(widths) < 2:
            raise InvalidArgumentError(
                f"--widths {args.widths!r} needs the input and the output width at least, e.g. 784,100,10"
            )
        bounds = all_bounds(widths[:-1], densities=densities, rank_model=args.rank_model, output_width=widths[-1])
    nsb = None
    if args.network_specific:
        from mipnet.analyses.regions import network_specific_bound
        from mipnet.cli.common import domain_from_args

        dom = domain_from_args(args, net.input_dim)
        nsb = network_specific_bound(net, dom, time_limit=args.time_limit)
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
    return 0


def handle_sample(args: argparse.Namespace) -> int:
    from mipnet.cli import emit_json
    from mipnet.analyses.regions import sample_regions
    from mipnet.cli.common import domain_from_args

    net = _load(args.model)
    dom = domain_from_args(args, net.input_dim)
    res = sample_regions(net, dom, args.samples, args.seed)
    if args.json:
        emit_json({**res.to_dict(), "model": args.model, "domain": dom.to_dict()})
    else:
        print(res)
    return 0


def handle_estimate(args: argparse.Namespace) -> int:
    from mipnet.cli import emit_json
    from mipnet.core.errors import InvalidArgumentError
    from mipnet.analyses.regions import parity_lower_bound, sample_regions
    from mipnet.cli.common import domain_from_args

    if str(args.parity).lower() == "auto":
        k = None
    else:
        try:
            k = int(args.parity)
        except ValueError:
            raise InvalidArgumentError(f"--parity must be a non-negative integer or 'auto', got {args.parity!r}") from None
    net = _load(args.model)
    dom = domain_from_args(args, net.input_dim)
    res = parity_lower_bound(net, dom, k=k, trials=args.trials, alpha=args.alpha, seed=args.seed,
                             time_limit=args.time_limit)
    samp = sample_regions(net, dom, args.samples, args.seed) if args.samples > 0 else None
    if args.json:
        d = {"parity": res.to_dict(), "model": args.model, "domain": dom.to_dict()}
        if samp is not None:
            d["sampling"] = samp.to_dict()
        emit_json(d)
    else:
        print(res)
        if samp is not None:
            print(samp)
    return 0


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

    from mipnet.cli import emit_json
    from mipnet.core.errors import InvalidArgumentError, InvalidDomainError
    from mipnet.analyses.slices import plane_along_axes, plane_regions, plane_through_points
    from mipnet.cli.common import load_vector

    net = _load(args.model)
    n0 = net.input_dim
    labels = None
    if args.points:
        xs = [load_vector(p) for p in args.points]
        for p, x in zip(args.points, xs):
            if x.size != n0:
                raise InvalidArgumentError(f"{p} holds {x.size} numbers, the network takes {n0} inputs")
        plane = plane_through_points(*xs, margin=args.margin)
        labels = {os.path.splitext(os.path.basename(p))[0]: plane.points_st[i] for i, p in enumerate(args.points)}
        if len(labels) < 3:
            labels = {"A": plane.points_st[0], "B": plane.points_st[1], "C": plane.points_st[2]}
        if args.box is not None:
            poly = _box_polygon(plane, float(args.box[0]), float(args.box[1]))
            if poly is None:
                raise InvalidDomainError("the plane through the three points does not meet the --box")
            part = plane_regions(net, plane.origin, plane.u, plane.v, polygon=poly)
        else:
            part = plane.regions(net)
    else:
        i, j = args.axes
        lo, hi = (args.box if args.box is not None else (-1.0, 1.0))
        if args.base == "center":
            base = np.full(n0, (lo + hi) / 2.0)
        else:
            base = load_vector(args.base)
            if base.size != n0:
                raise InvalidArgumentError(f"--base {args.base} holds {base.size} numbers, the network takes {n0}")
        plane = plane_along_axes(n0, i, j, base_point=base, lo=lo, hi=hi)
        part = plane.regions(net)
        labels = None
    if args.output:
        from mipnet.plotting import plot_plane_partition

        import matplotlib

        matplotlib.use("Agg")
        plot_plane_partition(part, color_by=args.color_by, show_points=labels, path=args.output)
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
    return 0
