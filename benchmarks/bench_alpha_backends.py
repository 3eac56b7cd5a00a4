"""alpha-CROWN's slope optimiser: torch autograd (the previous path) vs numpy with the hand-derived
gradient (``mipnet.bounds.alpha._Chain``), against the exact LP bounds, on the nets of part 1 of
bench_bounds.py (same constructions and seeds).

    python benchmarks/bench_alpha_backends.py [--repeat 5] [--old-rev REV] [--no-fashion]

Per net, in one process, interleaved round by round, best of ``--repeat`` runs each:
``alpha_bounds`` of git ``--old-rev`` (its mipnet/bounds/alpha.py loaded into a temporary module:
the torch optimiser), ``alpha_bounds`` of this tree (numpy on the CPU), both with
``stop_on_states=True`` and with the defaults (25 steps), and ``lp_bounds(sign_only=False,
start='symbolic')``. Prints seconds / unstable / mean hidden width per method, the ratios
LP s / alpha s, and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this working tree's mipnet
from _common import module_at  # noqa: E402
from bench_bounds import cases, mean_width  # noqa: E402

from mipnet.bounds import lp_bounds  # noqa: E402
from mipnet.bounds.alpha import alpha_bounds  # noqa: E402
from mipnet.core.domain import Box  # noqa: E402
from mipnet.core.network import Network  # noqa: E402

OLD_REV = "9880697"  #: main before the numpy optimiser


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--old-rev", default=OLD_REV)
    ap.add_argument("--no-fashion", action="store_true", help="skip the Fashion-MNIST nets (no training)")
    args = ap.parse_args()
    old = module_at(args.old_rev, "mipnet/bounds/alpha.py").alpha_bounds
    print(f"load average before: {os.getloadavg()}", flush=True)
    nets, _ = cases(quick=args.no_fashion)
    small = Network.random([4, 8, 8, 2], seed=0)
    for f in (old, alpha_bounds):  # warm-up: torch's import and first autograd call
        f(small, Box(-1, 1, dim=4))
    methods = {
        "alpha old, stop_on_states": lambda n, d: old(n, d, stop_on_states=True),
        "alpha new, stop_on_states": lambda n, d: alpha_bounds(n, d, stop_on_states=True),
        "alpha old, 25 steps": lambda n, d: old(n, d),
        "alpha new, 25 steps": lambda n, d: alpha_bounds(n, d),
        "exact LP": lambda n, d: lp_bounds(n, d, sign_only=False, start="symbolic"),
    }
    rows = []
    for name, net, dname, dom, _note in nets:
        best: dict = {}
        for _ in range(args.repeat if net.input_dim < 100 else max(2, args.repeat // 2)):
            for m, f in methods.items():
                t0 = time.perf_counter()
                b = f(net, dom)
                t = time.perf_counter() - t0
                if m not in best or t < best[m][0]:
                    best[m] = (t, b)
        t_lp = best["exact LP"][0]
        cells = [f"{t:.4g} / {b.num_unstable} / {mean_width(b):.5g}" for t, b in best.values()]
        ratios = [f"{t_lp / best[m][0]:.1f}x" for m in list(methods)[:4]]
        rows.append([name, dname] + cells + ratios)
        print(" | ".join(rows[-1]), flush=True)
    print(f"load average after: {os.getloadavg()}")
    head = ["net", "domain"] + [f"{m}: s / unstable / width" for m in methods] + [
        f"LP s / {m} s" for m in list(methods)[:4]]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
