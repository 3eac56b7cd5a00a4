"""``mipnet demo``: train a small digits net and show what mipnet can do."""

from __future__ import annotations

import sys

from mipnet.cli.common import add_json_arg


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="train a small net on scikit-learn's digits and run every analysis on it",
        description="Train a 64-16-16-10 ReLU net on the embedded digits data, then: bound its neurons, "
        "count its linear regions (exactly on a ball around an image, and on a 2-D slice with a picture), "
        "allocate per-layer sparsity, prune and fine-tune, verify the pruned net against the original, "
        "and compress an L1-trained net losslessly. Takes about a minute on a laptop CPU.",
    )
    p.add_argument("-o", "--out", default="mipnet-demo", help="folder for pictures and networks (default: mipnet-demo)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs (default: 30)")
    p.add_argument("--radius", type=float, default=1.0,
                   help="radius of the L-inf ball around a test image used as the domain (default: 1)")
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds per solver-backed step (default: 60)")
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from mipnet.cli import emit_json
    from mipnet.demo import run_demo

    echo = (lambda m: print(m, file=sys.stderr)) if args.json else print
    summary = run_demo(args.out, seed=args.seed, epochs=args.epochs, radius=args.radius,
                       time_limit=args.time_limit, echo=echo)
    if args.json:
        emit_json(summary)
    return 0
