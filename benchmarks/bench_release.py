"""Regression check across a refactor: the same analyses timed on this tree and on a
baseline revision (default: the release before the core layout, cf721c5), in one run.

    python benchmarks/bench_release.py [--baseline REV] [--repeat 3]

Each side runs in its own Python process with ``PYTHONPATH`` pointing at its source tree
(the baseline is exported with ``git archive`` into a temporary folder); the two sides
alternate ``repeat`` times per case (a fresh process each time, two timed runs in each), so
that load on a shared machine hits both alike. Prints a table (best run per side, ratio =
baseline / current: > 1 means the current tree is faster; the CPU-time ratio too, less
sensitive to other processes) and writes the section "Release regression check" of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, markdown_table, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "models" / "equivalence"

# One case = (name, code). The code runs in a fresh process; it defines `run()` (timed) and may
# import from either layout (the first import that works).
PRELUDE = r'''
import importlib, json, sys, time
# an editable install's import hook would shadow PYTHONPATH: drop it so each side imports its own tree
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
import numpy as np
def imp(name, *modules):
    for m in modules:
        try:
            return getattr(importlib.import_module(m), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(name)
Network = imp("Network", "mipnet")
Box = imp("Box", "mipnet")
LinfBall = imp("LinfBall", "mipnet")
'''

CASES = {
    "symbolic bounds 784-100-100-10": r'''
symbolic_bounds = imp("symbolic_bounds", "mipnet.bounds")
net = Network.random([784, 100, 100, 10], seed=0); dom = Box(0, 1, dim=784)
def run(): symbolic_bounds(net, dom)
''',
    "LP bounds 64-32-16-10 teacher, ball r=1": r'''
lp_bounds = imp("lp_bounds", "mipnet.bounds")
load_network = imp("load_network", "mipnet.io")
net = load_network(SHARED + "/mnist8x8_teacher_64-32-16-10.onnx")
dom = LinfBall(np.full(64, 8.0), 1.0, 0, 16)
def run(): lp_bounds(net, dom)
''',
    "MILP build 784-100-100-10": r'''
interval_bounds = imp("interval_bounds", "mipnet.bounds")
HighsModel = imp("HighsModel", "mipnet.milp.encoding", "mipnet.encoding")
net = Network.random([784, 100, 100, 10], seed=0); dom = Box(0, 1, dim=784)
b = interval_bounds(net, dom)
def run(): HighsModel(dom).add_network(net, b)
''',
    "regions vertex 4-16-16-1": r'''
count_regions = imp("count_regions", "mipnet.analyses.regions", "mipnet.regions")
net = Network.random([4, 16, 16, 1], seed=0); dom = Box(-1, 1, dim=4)
def run(): return count_regions(net, dom, method="vertex").regions
''',
    "regions lp 4-8-8-1": r'''
count_regions = imp("count_regions", "mipnet.analyses.regions", "mipnet.regions")
net = Network.random([4, 8, 8, 1], seed=1); dom = Box(-1, 1, dim=4)
def run(): return count_regions(net, dom, method="lp").regions
''',
    "regions milp 3-5-5-1": r'''
count_regions = imp("count_regions", "mipnet.analyses.regions", "mipnet.regions")
net = Network.random([3, 5, 5, 1], seed=2); dom = Box(-1, 1, dim=3)
def run(): return count_regions(net, dom, method="milp").regions
''',
    "stable neurons 64-32-16-10 teacher, ball r=1": r'''
find_stable_neurons = imp("find_stable_neurons", "mipnet.analyses.stability", "mipnet.stability")
load_network = imp("load_network", "mipnet.io")
net = load_network(SHARED + "/mnist8x8_teacher_64-32-16-10.onnx")
dom = LinfBall(np.full(64, 8.0), 1.0, 0, 16)
def run(): return str(find_stable_neurons(net, dom).to_dict().get("counts", ""))[:60]
''',
    "verify top-1 teacher vs small-top student": r'''
verify_equivalence = imp("verify_equivalence", "mipnet.analyses.equivalence", "mipnet.equivalence")
load_network = imp("load_network", "mipnet.io")
a = load_network(SHARED + "/mnist8x8_teacher_64-32-16-10.onnx")
b = load_network(SHARED + "/mnist8x8_small-top_student_64-36-10.onnx")
meta = json.load(open(SHARED + "/benchmarks.json"))
dom = LinfBall(np.full(64, 8.0), 0.5, 0, 16)
def run(): return str(verify_equivalence(a, b, dom, mode="top1").verdict)
''',
    "worst-case gap 16-10-10 vs pruned copy": r'''
max_output_gap = imp("max_output_gap", "mipnet.analyses.equivalence", "mipnet.equivalence")
f = Network.random([16, 10, 10], seed=3)
W = [w.copy() for w in f.weights]; W[0][np.abs(W[0]) < 0.2] = 0.0
g = Network(W, f.biases); dom = Box(0, 1, dim=16)
def run(): return float(max_output_gap(f, g, dom).upper)
''',
}


def export(rev: str, dest: Path) -> Path:
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "mipnet"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=tar.stdout, check=True)
    return dest


def time_case(src: Path, code: str, repeat: int) -> dict:
    script = PRELUDE + f"SHARED = {str(SHARED)!r}\n" + code + r'''
import mipnet
assert mipnet.__file__.startswith(sys.argv[1]), mipnet.__file__
best, cpu, out = float("inf"), float("inf"), None
for _ in range(int(sys.argv[2])):
    c0, t0 = time.process_time(), time.perf_counter(); out = run()
    best, cpu = min(best, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
print(json.dumps({"seconds": best, "cpu": cpu,
                  "value": out if isinstance(out, (int, float, str)) or out is None else str(out)}))
'''
    env = dict(os.environ, PYTHONPATH=str(src), MPLBACKEND="Agg")
    p = subprocess.run([sys.executable, "-c", script, str(src), str(repeat)], capture_output=True, text=True,
                       env=env, timeout=900, cwd=str(src))
    if p.returncode != 0:
        return {"seconds": None, "cpu": None, "value": None,
                "error": p.stderr.strip().splitlines()[-1] if p.stderr else "failed"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def best_of(runs: list) -> dict:
    ok = [r for r in runs if r["seconds"] is not None]
    if not ok:
        return runs[-1]
    return {"seconds": min(r["seconds"] for r in ok), "cpu": min(r["cpu"] for r in ok), "value": ok[-1]["value"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default="cf721c5", help="git revision to compare against (default cf721c5)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="alternating rounds per case (a process per side and round, two runs each); the best "
                         "counts (default 3)")
    ap.add_argument("--cases", default=None, help="comma-separated substrings of case names to run")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    names = [n for n in CASES if args.cases is None or any(s in n for s in args.cases.split(","))]
    rows, records = [], []
    with tempfile.TemporaryDirectory() as tmp:
        base = export(args.baseline, Path(tmp))
        for name in names:
            olds, news = [], []
            for _ in range(args.repeat):
                olds.append(time_case(base, CASES[name], 2))
                news.append(time_case(ROOT, CASES[name], 2))
            old, new = best_of(olds), best_of(news)
            ratio = old["seconds"] / new["seconds"] if old["seconds"] and new["seconds"] else None
            cratio = old["cpu"] / new["cpu"] if old.get("cpu") and new.get("cpu") else None
            rows.append([name, old["seconds"] if old["seconds"] is not None else old.get("error"),
                         new["seconds"] if new["seconds"] is not None else new.get("error"),
                         f"{ratio:.2f}" if ratio else "-", f"{cratio:.2f}" if cratio else "-",
                         old["value"], new["value"]])
            records.append(dict(case=name, baseline=old, current=new, ratio=ratio, cpu_ratio=cratio))
            print(f"{name}: baseline {old} current {new} ratio {ratio} cpu ratio {cratio}", flush=True)
    table = markdown_table(["case", f"baseline {args.baseline} (s)", "current (s)", "ratio", "CPU ratio",
                            "baseline value", "current value"], rows)
    print(table)
    if not args.no_write:
        body = (f"`nice -n 5 python benchmarks/bench_release.py --repeat {args.repeat}` ({machine()}, shared with "
                f"other jobs): {args.repeat} alternating rounds per case, each side in a fresh process per round "
                f"with two timed runs; the best run per side counts. ratio = baseline wall time / current wall "
                f"time, CPU ratio the same for process CPU time (> 1: faster now). The values columns show the "
                f"answer each side gave (counts, verdicts, bounds).\n\n{table}\n")
        write_section("Release regression check", body)


if __name__ == "__main__":
    main()
