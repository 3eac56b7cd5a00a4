"""``mipnet demo``: train a small digits net and show what mipnet can do.

Python twin: :func:`mipnet.demo.run_demo`.
"""

from __future__ import annotations

import sys

from mipnet.cli.common import (
    add_command,
    add_deprecated_alias,
    add_json_arg,
    add_progress_arg,
    call,
    check_output_dir,
    exit_code,
    progress_enabled,
    seconds,
)


def register(sub) -> None:
    p = add_command(
        sub, "demo",
        help="train a small net on scikit-learn's digits and run every analysis on it",
        description="Train a 64-16-16-10 ReLU net on the embedded digits data, then: bound its neurons, "
        "count its linear regions (exactly on a ball around an image, and on a 2-D slice with a picture), "
        "allocate per-layer sparsity, prune and fine-tune, verify the pruned net against the original, "
        "and compress an L1-trained net losslessly. Takes about a minute on a laptop CPU.",
        examples=["mipnet demo",
                  "mipnet demo -o /tmp/tour --epochs 5 --radius 0.5 --time-limit 10 --json"],
    )
    p.add_argument("-o", "--output", default="mipnet-demo", metavar="DIR",
                   help="folder for pictures and networks (created if missing)")
    add_deprecated_alias(p, "--out", "-o/--output", dest="output")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--epochs", type=int, default=30, help="training epochs")
    p.add_argument("--radius", type=float, default=1.0,
                   help="radius of the L-inf ball around a test image used as the domain")
    p.add_argument("--time-limit", type=seconds, default=60.0, help="seconds per solver-backed step")
    add_progress_arg(p)
    add_json_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from mipnet.cli.common import emit_json
    from mipnet.demo import run_demo

    check_output_dir(args.output)
    echo = (lambda m: print(m, file=sys.stderr)) if args.json else print
    summary = call(run_demo, args.output, seed=args.seed, epochs=args.epochs, radius=args.radius,
                   time_limit=args.time_limit, echo=echo, progress=progress_enabled(args))
    if args.json:
        emit_json(summary)
    return exit_code(summary)
