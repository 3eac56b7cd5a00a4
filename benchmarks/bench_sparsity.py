"""Accuracy of pruned-and-fine-tuned MLPs against density, per pruning method (Cai et al. 2023).

    python benchmarks/bench_sparsity.py                 # the run recorded in RESULTS.md (~30 min, 2 cores)
    python benchmarks/bench_sparsity.py --quick         # smoke test (~1 min); writes nothing in benchmarks/
    python benchmarks/bench_sparsity.py --datasets digits --seeds 3 --epochs 15 --finetune-epochs 15

Protocol (Cai et al., "Getting away with more network pruning: from sparsity to geometry and
linear regions", CPAIOR 2023, arXiv:2301.07966; MATH.md section 7): per seed, train the dense
MLP (SGD, lr 1e-2, momentum 0.9, batch 128), prune a copy of it once per (method, density) and
fine-tune it with the mask fixed; report the test accuracy, mean and std over seeds.
All variants of a seed start from the same dense model, so method differences are paired by seed.
The pipeline is :func:`mipnet.workflow.sparsity_sweep`.

Methods (density = fraction of the hidden layers' weights kept; output layer dense):
uniform (layer-wise magnitude, same density per layer; the baseline), allocated (layer-wise
magnitude at :func:`mipnet.sparsity.allocate_sparsity`'s densities), global (one magnitude
threshold), random (uniform densities, random weights), sipp (SiPP sensitivities, deterministic).

Writes the section "Sparsity" of benchmarks/RESULTS.md, benchmarks/sparsity_accuracy.png and
benchmarks/sparsity_bound.png (with --quick: prints only, pictures go to a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HERE, machine, markdown_table, write_section  # noqa: E402

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mipnet.nn.data import load_dataset  # noqa: E402
from mipnet.plotting import plot_accuracy_vs_density, plot_log_bound_vs_density  # noqa: E402
from mipnet.sparsity import allocate_sparsity  # noqa: E402
from mipnet.nn.workflow import SweepResult, sparsity_sweep  # noqa: E402

METHODS = ("uniform", "allocated", "global", "random", "sipp")

# Per dataset: the network and the densities around its accuracy cliff, and the run's size.
# digits: 64-100-100-10 rather than 64-32-16-10: the same hidden layers as the Fashion-MNIST
# net (only n0 differs, which flips the allocation: more density to layer 1 here, to layer 2
# there), about 95% dense test accuracy after 15 epochs (64-32-16-10 reaches only ~87% under this
# protocol) and enough weights (16,400 prunable) for densities down to 0.003 to keep >= 19
# weights in every layer. Its cliff (found with 2 seeds) lies between 0.1 and 0.003; digits is
# cheap (~0.01 s/epoch), so it gets 10 seeds and the full 15 + 15 epochs.
# Fashion-MNIST: 784-100-100-10 at Cai et al.'s densities 0.01 .. 0.0001. 5 seeds x 5 methods x
# 5 densities = 125 fine-tunings at ~1.4 s/epoch (one thread, shared CPU): 15 fine-tuning epochs
# would take ~45 min, so fine-tuning is cut to 5 epochs (dense training keeps 15).
CONFIG = {
    "digits": dict(widths=(64, 100, 100, 10), densities=(0.1, 0.05, 0.03, 0.01, 0.003), seeds=10,
                   epochs=15, finetune_epochs=15, limit=None),
    "fashion-mnist": dict(widths=(784, 100, 100, 10), densities=(0.01, 0.003, 0.001, 0.0003, 0.0001), seeds=5,
                          epochs=15, finetune_epochs=5, limit=None),
}
QUICK = {
    "digits": dict(densities=(0.1, 0.01), seeds=2, epochs=3, finetune_epochs=2, limit=None),
    "fashion-mnist": dict(densities=(0.01, 0.001), seeds=1, epochs=2, finetune_epochs=1, limit=5000),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: few seeds and epochs; writes nothing in benchmarks/")
    p.add_argument("--seeds", type=int, help="number of seeds (0..N-1) for every dataset")
    p.add_argument("--epochs", type=int, help="dense training epochs for every dataset")
    p.add_argument("--finetune-epochs", type=int, help="fine-tuning epochs for every dataset")
    p.add_argument("--datasets", default="digits,fashion-mnist", help="comma-separated: digits, fashion-mnist")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy machine)")
    p.add_argument("--json", type=Path, help="also dump every run as JSON here")
    p.add_argument("--from-json", type=Path,
                   help="rebuild the tables, pictures and RESULTS.md section from a --json dump instead of training")
    args = p.parse_args(argv)
    names = [s.strip() for s in args.datasets.split(",") if s.strip()]
    bad = [n for n in names if n not in CONFIG]
    if bad or not names:
        p.error(f"--datasets: unknown {bad}; choose from {', '.join(CONFIG)}")
    for opt in ("seeds", "epochs", "finetune_epochs"):
        v = getattr(args, opt)
        if v is not None and v < (1 if opt == "seeds" else 0):
            p.error(f"--{opt.replace('_', '-')} must be >= {1 if opt == 'seeds' else 0}, got {v}")
    args.names = names
    return args


def config_for(name, args) -> dict:
    cfg = dict(CONFIG[name])
    if args.quick:
        cfg.update(QUICK[name])
    for opt in ("seeds", "epochs", "finetune_epochs"):
        if getattr(args, opt) is not None:
            cfg[opt] = getattr(args, opt)
    return cfg


def fmt_pm(mean, std) -> str:
    return f"{mean:.4f} ± {std:.4f}"


def verdict(c) -> str:
    """'helps' / 'hurts' when the paired mean difference is beyond two standard errors."""
    if c["n"] < 2 or not math.isfinite(c["diff_sem"]):
        return "n/a (1 seed)"
    if c["diff_sem"] == 0:
        return "identical" if c["diff_mean"] == 0 else ("helps" if c["diff_mean"] > 0 else "hurts")
    z = c["diff_mean"] / c["diff_sem"]
    if z > 2:
        return "helps"
    if z < -2:
        return "hurts"
    return "no clear difference"


def report(name, cfg, res) -> tuple[str, list]:
    """Markdown for one dataset and the per-density verdicts."""
    rows = {(r["method"], r["density"]): r for r in res.table()}
    pruned = {(r["method"], r["density"]): r for r in res.table("pruned")}
    header = ["method"] + [f"d = {d:g}" for d in res.densities]
    acc_rows = [[m] + [fmt_pm(rows[m, d]["mean"], rows[m, d]["std"]) for d in res.densities] for m in res.methods]
    acc_pruned = [[m] + [f"{pruned[m, d]['mean']:.4f}" for d in res.densities] for m in res.methods]
    cmp_rows, verdicts = [], []
    for c in res.compare("allocated", "uniform"):
        d = c["density"]
        a = allocate_sparsity(res.widths, density=d)
        v = verdict(c)
        gain = a.log_bound - a.uniform_log_bound
        verdicts.append((d, v, gain, c))
        cmp_rows.append([
            f"{d:g}",
            ", ".join(f"{x:.3g}" for x in a.densities[:-1]),
            f"{gain:.1f}",
            f"{c['diff_mean'] * 100:+.2f} ± {c['diff_sem'] * 100:.2f}" if math.isfinite(c["diff_sem"])
            else f"{c['diff_mean'] * 100:+.2f}",
            f"{c['wins']}/{c['losses']}/{c['ties']}",
            f"{c['ratio']:.3f}",
            v,
        ])
    dm, dsd = res.dense_accuracy
    ft_spe = [r.finetune_seconds_per_epoch for r in res.runs if r.finetune_epochs > 0]
    body = (
        f"### {name}, {'-'.join(map(str, res.widths))}\n\n"
        f"{len(res.seeds)} seeds, {res.epochs} dense epochs + {res.finetune_epochs} fine-tuning epochs"
        + (f", {cfg['limit']} samples per split" if cfg.get("limit") else "")
        + f". Dense test accuracy {fmt_pm(dm, dsd)}. Time per epoch (CPU, 1 thread, shared machine): "
        f"dense training {res.seconds_per_epoch:.3f} s, fine-tuning "
        f"{(sum(ft_spe) / len(ft_spe)) if ft_spe else float('nan'):.3f} s; the whole sweep {res.seconds / 60:.1f} min.\n\n"
        "Test accuracy after fine-tuning, mean ± std over seeds:\n\n"
        + markdown_table(header, acc_rows)
        + "\n\nRight after pruning (before fine-tuning), mean:\n\n"
        + markdown_table(header, acc_pruned)
        + "\n\nAllocated vs uniform (the baseline), paired by seed: per-layer densities of the allocation "
        "(hidden layers), the bound gain ln B(allocated) - ln B(uniform), the accuracy difference in "
        "percentage points (mean ± standard error), wins/losses/ties over seeds, the ratio of mean "
        "accuracies allocated / uniform, and the verdict (|mean| > 2 standard errors):\n\n"
        + markdown_table(["density", "allocated densities", "ln B gain", "acc. diff (pp)", "W/L/T", "ratio",
                          "verdict"], cmp_rows)
    )
    return body, verdicts


def summary(name, verdicts) -> str:
    helps = [f"{d:g}" for d, v, *_ in verdicts if v == "helps"]
    hurts = [f"{d:g}" for d, v, *_ in verdicts if v == "hurts"]
    flat = [f"{d:g}" for d, v, *_ in verdicts if v not in ("helps", "hurts")]
    parts = []
    parts.append(f"helps at density {', '.join(helps)}" if helps else "helps at no density")
    if hurts:
        parts.append(f"hurts at {', '.join(hurts)}")
    if flat:
        parts.append(f"makes no clear difference at {', '.join(flat)}")
    text = f"- **{name}**: the allocation " + "; ".join(parts) + "."
    d, _, g, c = max(verdicts, key=lambda t: abs(t[3]["diff_mean"]))
    text += (f" Largest mean difference: {100 * c['diff_mean']:+.2f} pp at density {d:g} (wins/losses/ties "
             f"{c['wins']}/{c['losses']}/{c['ties']}, bound gain {g:.1f}).")
    saturated = [f"{d:g}" for d, v, g, _ in verdicts if v in ("helps", "hurts") and abs(g) < 0.05]
    if saturated:
        text += (f" At {', '.join(saturated)} the bound gain is 0 (the uniform bound is already on its dense "
                 "plateau, so every split is bound-optimal and the allocation is just another split): the bound "
                 "does not explain that difference.")
    return text


def main(argv=None) -> None:
    args = parse_args(argv)
    t_all = time.perf_counter()
    out_dir = Path(tempfile.mkdtemp(prefix="bench_sparsity_")) if args.quick else HERE
    results, sections, summaries = {}, [], []
    saved = json.loads(args.from_json.read_text()) if args.from_json else None
    for name in args.names:
        cfg = config_for(name, args)
        if saved is not None:
            if name not in saved:
                sys.exit(f"--from-json: {args.from_json} holds no run for {name!r} (it has {list(saved)})")
            res = SweepResult.from_dict(saved[name])
            cfg.update(seeds=len(res.seeds), epochs=res.epochs, finetune_epochs=res.finetune_epochs)
            results[name] = res
            body, verdicts = report(name, cfg, res)
            print(body, flush=True)
            sections.append(body)
            summaries.append(summary(name, verdicts))
            continue
        ds = load_dataset(name, limit=cfg["limit"])
        print(f"== {name} {cfg}", flush=True)

        def on_run(r):
            print(f"  seed {r.seed} {r.method:>9} d={r.density:<7g} pruned {r.accuracy_pruned:.4f} "
                  f"fine-tuned {r.accuracy_finetuned:.4f} ({r.seconds:.1f} s)", flush=True)

        res = sparsity_sweep(ds, cfg["widths"], densities=cfg["densities"], methods=METHODS,
                             seeds=tuple(range(cfg["seeds"])), epochs=cfg["epochs"],
                             finetune_epochs=cfg["finetune_epochs"], num_threads=args.threads, on_run=on_run)
        print(res, flush=True)
        results[name] = res
        if args.json:  # after every dataset, so a later failure loses nothing
            args.json.write_text(json.dumps({k: v.to_dict() for k, v in results.items()}, indent=1))
        body, verdicts = report(name, cfg, res)
        print(body, flush=True)
        sections.append(body)
        summaries.append(summary(name, verdicts))

    n = len(results)
    fig = Figure(figsize=(6.4 * n, 4.6))
    FigureCanvasAgg(fig)
    for k, (name, res) in enumerate(results.items()):
        plot_accuracy_vs_density(res, ax=fig.add_subplot(1, n, k + 1))
    fig.tight_layout()
    acc_png = out_dir / "sparsity_accuracy.png"
    fig.savefig(acc_png, dpi=130)
    fig = Figure(figsize=(6.4 * n, 4.4))
    FigureCanvasAgg(fig)
    for k, (name, res) in enumerate(results.items()):
        plot_log_bound_vs_density(res.widths, ax=fig.add_subplot(1, n, k + 1), mark=res.densities,
                                  title=f"{name}, {'-'.join(map(str, res.widths))}: bound vs density")
    fig.tight_layout()
    bound_png = out_dir / "sparsity_bound.png"
    fig.savefig(bound_png, dpi=130)
    print(f"pictures: {acc_png}, {bound_png}")
    total = (time.perf_counter() - t_all) / 60
    if saved is not None:  # the time of the run that made the JSON
        total = sum(r.seconds for r in results.values()) / 60
    if args.quick:
        print(f"--quick: RESULTS.md not written ({total:.1f} min)")
        return
    cmd = "python benchmarks/bench_sparsity.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    if saved is not None:
        cmd = (f"python benchmarks/bench_sparsity.py --json {args.from_json.name}` (tables and pictures rebuilt "
               f"from that JSON with `--from-json`)")
    else:
        cmd += "`"
    body = (
        f"`{cmd} on {machine()}, {time.strftime('%Y-%m-%d')}, {total:.0f} min in all (CPU only: no GPU in "
        "this session; torch with 1 thread, the machine shared with other jobs). Protocol of Cai et al. "
        "(CPAIOR 2023, arXiv:2301.07966): per seed, train the dense MLP (SGD lr 1e-2, momentum 0.9, batch 128), "
        "prune a copy once per (method, density), fine-tune it with the mask fixed, report test accuracy. "
        "Density = fraction of the hidden layers' weights kept (output layer dense). Methods: *uniform* "
        "(layer-wise magnitude, same density per layer: the baseline), *allocated* (layer-wise magnitude at "
        "`allocate_sparsity`'s per-layer densities, binomial rank model), *global* (one magnitude threshold), "
        "*random* (uniform densities), *sipp* (SiPP, deterministic). Pipeline: `mipnet.workflow.sparsity_sweep`. "
        "Deviation from the protocol: on Fashion-MNIST fine-tuning is cut from 15 to "
        f"{config_for('fashion-mnist', args)['finetune_epochs']} epochs to fit a ~30 min budget on 2 shared "
        "cores (dense training keeps 15). Digits: 64-100-100-10 (same hidden layers as the Fashion-MNIST net, "
        "about 95% dense; 64-32-16-10 reaches only ~87% in 15 epochs), 10 seeds, full 15 + 15 epochs. "
        "Pictures: `sparsity_accuracy.png` (accuracy vs density, error bars = std over seeds), "
        "`sparsity_bound.png` (ln of the expected-rank bound, uniform vs allocated; dotted lines = densities run).\n\n"
        "Where the allocation helps (from the numbers below): the verdict is a rough screen, *helps* when the "
        "mean paired difference (allocated - uniform, same seed, same dense model) exceeds two standard errors; "
        "with 5 seeds that is about an 88% two-sided confidence level (t with 4 degrees of freedom), not a "
        "significance test corrected for the number of densities.\n\n"
        + "\n".join(summaries) + "\n\n" + "\n\n".join(sections)
    )
    write_section("Sparsity", body)
    print(f"RESULTS.md section 'Sparsity' written ({total:.1f} min)")


if __name__ == "__main__":
    main()
