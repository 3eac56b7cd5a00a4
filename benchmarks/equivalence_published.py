"""The 390 published top-k equivalence rows of Kleine Büning, Kern and Sinz (CP 2020), re-decided.

    nice -n 5 python benchmarks/equivalence_published.py                  # every row, 20 s per row
    nice -n 5 python benchmarks/equivalence_published.py --limit 20       # the first 20 rows (table order)
    nice -n 5 python benchmarks/equivalence_published.py --rows 5,17,200 --time-limit 120

Rows: ``../shared/models/pruned8x8/published_milp_results_fixed_radius.json`` (networks
mnist8x8_lin and its pruned-and-retrained copies). Property: the top-1 class of net_1 is among
the top-k classes of net_2 (:class:`mipnet.analyses.properties.TopK`), for x in [0,16]^64 with
``|x - centre|_1 <= radius`` (:func:`mipnet.L1Ball` around a cluster centre of
``cluster_centres.json``). Each row runs :func:`~mipnet.analyses.equivalence.verify_equivalence`
(LP and differential bounds on the L1 ball, 1000 samples first, one MILP per class of net_1 /
per class pair for k = 1) under a per-row time limit.

Independent checks (not the verifier's code): a counterexample is re-run by a plain numpy
forward pass of the ``.npz`` weights (in [0,16]^64, inside the L1 ball, the top-k violation
positive); an ``equivalent`` verdict is cross-checked on 4000 points of the ball (its 128
clipped vertices first) with the same numpy forward pass.

Agreement with the published verdict: ``agree`` (proved/equivalent, counterexample/not
equivalent), ``disagree`` (a soundness bug on one side: printed and reported), ``unknown`` (our
time limit), and rows the publication left open or marked spurious, counted apart. Prints a
table, saves ``equivalence_published.json`` next to this script (``--out``), and writes the
section "Equivalence: published CP 2020 rows" of benchmarks/RESULTS.md (unless ``--no-write``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_MODELS, machine, markdown_table, write_section  # noqa: E402

from mipnet import L1Ball  # noqa: E402
from mipnet.analyses.equivalence import verify_equivalence  # noqa: E402
from mipnet.analyses.properties import TopK  # noqa: E402
from mipnet.io import load_network  # noqa: E402

FOLDER = SHARED_MODELS / "pruned8x8"
SECTION = "Equivalence: published CP 2020 rows"
_NETS: dict = {}


def _nets(name):
    """(mipnet Network, npz weights) of one network."""
    if name not in _NETS:
        w = np.load(FOLDER / f"{name}.npz")
        _NETS[name] = (load_network(FOLDER / f"{name}.onnx"),
                       [(w[f"W{i}"].astype(np.float64), w[f"b{i}"].astype(np.float64)) for i in range(3)])
    return _NETS[name]


def _forward(weights, X):
    """Plain numpy forward pass (the independent route): relu(relu(x W0 + b0) W1 + b1) W2 + b2."""
    h = np.atleast_2d(X)
    for i, (W, b) in enumerate(weights):
        h = h @ W + b
        if i < len(weights) - 1:
            h = np.maximum(h, 0.0)
    return h


def _topk_violation(fa, fb, k):
    """Independent top-k margin: > 0 iff the top class of fa has >= k classes of fb strictly above."""
    fa, fb = np.atleast_2d(fa), np.atleast_2d(fb)
    r = np.arange(len(fa))
    c = np.argmax(fa, axis=1)
    sa = np.sort(fa, axis=1)
    ma = sa[:, -1] - sa[:, -2]  # top logit minus runner-up (0 on ties)
    s = fb - fb[r, c][:, None]
    s[r, c] = -np.inf
    kth = np.sort(s, axis=1)[:, ::-1][:, k - 1]
    return np.minimum(ma, kth)


def _published(row) -> str:
    v = row["verdict"]
    if v == "proved":
        return "proved"
    if v.startswith("counterexample"):
        return "counterexample"
    if v.startswith("spurious"):
        return "spurious"
    return "open"


def _agreement(pub: str, ours: str) -> str:
    if ours == "unknown":
        return "unknown"
    if pub in ("proved", "counterexample"):
        ok = (pub == "proved") == (ours == "equivalent")
        return "agree" if ok else "DISAGREE"
    if pub == "spurious":  # their objective was a numerical artefact on a self-comparison
        return "agree (spurious)" if ours == "equivalent" else "DISAGREE"
    return f"open -> {'proved' if ours == 'equivalent' else 'counterexample'}"


def _check(res, row, dom, wa, wb) -> str:
    k = row["top_k"]
    if res.verdict == "not_equivalent":
        x = np.asarray(res.counterexample, dtype=np.float64)
        d = float(np.abs(x - dom.l1_center).sum())
        if np.any(x < 0) or np.any(x > 16):
            return "FAIL: outside [0,16]^64"
        if d > dom.l1_radius * (1 + 1e-9):
            return f"FAIL: L1 distance {d:.6g} > radius {dom.l1_radius:.6g}"
        v = float(_topk_violation(_forward(wa, x), _forward(wb, x), k)[0])
        return f"ok: violation {v:.3g}, |x-c|_1 {d:.4g}" if v > 0 else f"FAIL: violation {v:.3g} <= 0"
    if res.verdict == "equivalent":
        X = dom.sample(4000, seed=1, include_vertices=True)
        v = _topk_violation(_forward(wa, X), _forward(wb, X), k)
        bad = int(np.sum(v > 0))
        return f"ok: 0 of {len(X)} samples violate" if bad == 0 else f"FAIL: {bad} of {len(X)} samples violate"
    return "-"


def run(*, limit=None, rows=None, time_limit: float = 20.0, progress: bool = True):
    """Decide the selected rows; returns a list of result dicts (one per row)."""
    data = json.loads((FOLDER / "published_milp_results_fixed_radius.json").read_text())["rows"]
    centres = json.loads((FOLDER / "cluster_centres.json").read_text())["clusters"]
    idx = list(range(len(data))) if rows is None else [int(i) for i in rows]
    if limit is not None:
        idx = idx[: int(limit)]
    out = []
    for n, i in enumerate(idx):
        row = data[i]
        (a, wa), (b, wb) = _nets(row["net_1"]), _nets(row["net_2"])
        dom = L1Ball(np.asarray(centres[row["cluster"]]["centre"], dtype=np.float64), row["manhattan_radius"], 0, 16)
        t0 = time.perf_counter()
        res = verify_equivalence(a, b, dom, mode=TopK(row["top_k"]), time_limit=time_limit)
        secs = time.perf_counter() - t0
        pub = _published(row)
        rec = dict(row=i, net_1=row["net_1"], net_2=row["net_2"], k=row["top_k"], cluster=row["cluster"],
                   step=row["step"], radius=row["manhattan_radius"], published=pub,
                   published_seconds=row["seconds"], verdict=str(res.verdict), seconds=secs,
                   milps=res.num_milps, agreement=_agreement(pub, str(res.verdict)),
                   check=_check(res, row, dom, wa, wb), gap_found=res.gap_lower_bound,
                   gap_proven=res.gap_upper_bound)
        out.append(rec)
        if progress:
            print(f"[{n + 1}/{len(idx)}] row {i}: {rec['net_1']} vs {rec['net_2']} k={rec['k']} cluster "
                  f"{rec['cluster']} step {rec['step']}: published {pub} ({row['seconds']} s), ours "
                  f"{rec['verdict']} ({secs:.2f} s, {rec['milps']} MILPs) {rec['agreement']}; {rec['check']}",
                  flush=True)
    return out


def summarise(results, time_limit) -> tuple[str, str]:
    """(summary table, per-group table) in markdown."""
    keys = ["agree", "agree (spurious)", "DISAGREE", "unknown", "open -> proved", "open -> counterexample"]
    counts = {k: sum(r["agreement"] == k for r in results) for k in keys}
    fails = sum(r["check"].startswith("FAIL") for r in results)
    decided = [r for r in results if r["agreement"] == "agree" and r["published"] in ("proved", "counterexample")]
    ratio = np.median([r["seconds"] / r["published_seconds"] for r in decided]) if decided else float("nan")
    ours_total = sum(r["seconds"] for r in results)
    pub_total = sum(r["published_seconds"] for r in results)
    summary = markdown_table(
        ["rows", "agree", "agree (spurious)", "disagree", "unknown (our limit)", "open -> proved",
         "open -> counterexample", "independent check FAIL", "median ours/published (agreeing rows)",
         "our total s", "published total s"],
        [[len(results), counts["agree"], counts["agree (spurious)"], counts["DISAGREE"], counts["unknown"],
          counts["open -> proved"], counts["open -> counterexample"], fails, float(ratio), ours_total, pub_total]])
    groups = {}
    for r in results:
        g = groups.setdefault((r["net_1"].replace("mnist8x8_", ""), r["net_2"].replace("mnist8x8_", ""), r["k"]),
                              dict(n=0, proved=0, cex=0, unknown=0, pub_proved=0, pub_cex=0, pub_open=0,
                                   disagree=0, ours=[], pub=[]))
        g["n"] += 1
        g["proved"] += r["verdict"] == "equivalent"
        g["cex"] += r["verdict"] == "not_equivalent"
        g["unknown"] += r["verdict"] == "unknown"
        g["pub_proved"] += r["published"] in ("proved", "spurious")
        g["pub_cex"] += r["published"] == "counterexample"
        g["pub_open"] += r["published"] == "open"
        g["disagree"] += r["agreement"] == "DISAGREE"
        g["ours"].append(r["seconds"])
        g["pub"].append(r["published_seconds"])
    table = markdown_table(
        ["net_1", "net_2", "k", "rows", "ours proved / cex / unknown", "published proved / cex / open",
         "disagree", "our median s", "our max s", "published median s"],
        [[a, b, k, g["n"], f"{g['proved']} / {g['cex']} / {g['unknown']}",
          f"{g['pub_proved']} / {g['pub_cex']} / {g['pub_open']}", g["disagree"], float(np.median(g["ours"])),
          float(np.max(g["ours"])), float(np.median(g["pub"]))]
         for (a, b, k), g in sorted(groups.items())])
    return summary, table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, help="only the first N selected rows")
    ap.add_argument("--rows", help="comma-separated row indices, or START:STOP:STEP (default: all 390)")
    ap.add_argument("--time-limit", type=float, default=20.0, help="seconds per row (default 20)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "equivalence_published.json"))
    ap.add_argument("--no-write", action="store_true", help="do not write the RESULTS.md section")
    ap.add_argument("--summarise", nargs="+", metavar="JSON",
                    help="run nothing: merge the per-row JSON files of earlier runs (later files win) and "
                         "write the summary")
    args = ap.parse_args(argv)
    if args.rows is not None and ":" in args.rows:
        rows = list(range(390))[slice(*[int(v) if v else None for v in args.rows.split(":")])]
    else:
        rows = None if args.rows is None else [int(s) for s in args.rows.split(",") if s.strip()]
    t0 = time.perf_counter()
    if args.summarise:
        merged = {}
        for f in args.summarise:
            merged.update({r["row"]: r for r in json.loads(Path(f).read_text())})
        results = [merged[i] for i in sorted(merged)]
        rows = [r["row"] for r in results]
        args.rows = f"{len(rows)} rows merged from {', '.join(Path(f).name for f in args.summarise)}"
    else:
        results = run(limit=args.limit, rows=rows, time_limit=args.time_limit)
    wall = time.perf_counter() - t0 if not args.summarise else sum(r["seconds"] for r in results)
    summary, table = summarise(results, args.time_limit)
    print(summary)
    print(table)
    for r in results:
        if r["agreement"] == "DISAGREE" or r["check"].startswith("FAIL"):
            print("INVESTIGATE:", r)
    Path(args.out).write_text("[\n" + ",\n".join(json.dumps(r) for r in results) + "\n]\n")  # a row per line
    if not args.no_write:
        sel = ("all 390 rows" if len(results) == 390 else
               f"{len(results)} of the 390 rows ({args.rows if args.summarise else ('--rows ' + args.rows if rows is not None else '')}"
               f"{' --limit ' + str(args.limit) if args.limit is not None else ''})")
        cmd = (f"python benchmarks/equivalence_published.py --summarise {' '.join(args.summarise)}"
               if args.summarise else
               f"nice -n 5 python benchmarks/equivalence_published.py --time-limit {args.time_limit:g}"
               f"{' --rows ' + args.rows if rows is not None else ''}"
               f"{' --limit ' + str(args.limit) if args.limit is not None else ''}")
        body = (f"`{cmd}` on {machine()} "
                f"(shared, busy machine), {time.strftime('%Y-%m-%d')}; {sel}, "
                f"{'sum of row times' if args.summarise else 'whole run'} {wall:.0f} s. "
                "Rows: `shared/models/pruned8x8/published_milp_results_fixed_radius.json` (Kleine Büning, Kern "
                "and Sinz, CP 2020: top-1 of net_1 among the top-k of net_2, k = 1..3, on L1 balls around 5 "
                "cluster centres of [0,16]^64, radius 0.05/0.1/0.2 x the distance to the nearest other "
                "cluster; Gurobi, 1800 s limit, other hardware). Ours: `verify_equivalence(mode=TopK(k))` on "
                f"`L1Ball(centre, radius, 0, 16)`, {args.time_limit:g} s per row. *agree*: same verdict "
                "(proved = equivalent, counterexample = not equivalent); *agree (spurious)*: the 2 rows whose "
                "published objective is a numerical artefact, proved here; *open -> ...*: rows the publication "
                "left open after 1800 s, decided here. *Independent check*: counterexamples re-run by a "
                "plain numpy forward pass of the .npz weights (box, L1 distance, violation > 0); proofs "
                "cross-checked on 4000 ball points (vertices first). The time ratio is ours / published "
                "on the agreeing decided rows (different machines and solvers: indicative only). Per-row "
                "data: `benchmarks/equivalence_published.json`.\n\n" + summary + "\n\n" + table)
        write_section(SECTION, body)
    return 1 if any(r["agreement"] == "DISAGREE" or r["check"].startswith("FAIL") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
