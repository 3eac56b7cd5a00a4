"""Speed-up of the parallel engine (mipnet.parallel) on 1 and 2 Dask workers, in one run.

    nice -n 5 python benchmarks/bench_parallel.py            # all cases (about 12 minutes)
    nice -n 5 python benchmarks/bench_parallel.py regions lp # some of them

Cases: a calibration (pure-Python CPU units: the speed-up the machine allows at that
moment; with Linux autogroup scheduling a session's processes share one slice of a busy
machine), an exact region count (5-18-18-1, ~78k regions), LP bound tightening of
784-100-100-10 (exact: every unstable neuron's min and max, 220 LPs; and the default path, where
alpha-CROWN in the caller and witnesses leave about 20 sign LPs), a pruning-gap sweep (15
cells), an equivalence proof that needs splitting (the
5-input student pair of bench_equivalence.py on [-0.3, 0.3]^5), and the per-task overhead. Each
case runs serially (the baseline, in this process), then on a LocalCluster of 1 and of 2
worker processes (threads_per_worker=1; cluster start-up and the workers' first imports are
excluded: a warm-up run comes first), alternating 1 and 2 workers for ``ROUNDS`` rounds (best
time of each, and each round's ratio). The load average (``os.getloadavg``) is recorded with
each row: on a shared machine the ratios are noisy. A 64-worker estimate is derived from the
measured unit sizes: ``T64 ~ max(work / 64 + units * overhead / 64, largest unit)``.
Prints a table and writes the section "Parallel" of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, markdown_table, write_section  # noqa: E402

from mipnet import Box, Network  # noqa: E402
from mipnet.parallel import local_cluster, run_units  # noqa: E402


def noop(task, deadline):
    return True, task


def spin(task, deadline):
    """Pure-Python CPU work (no I/O, no BLAS threads): the speed-up the machine allows right now."""
    x = 0
    for i in range(task):
        x = (x * 31 + i) % 1000003
    return True, x


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


class Case:
    """A case: ``serial()`` and ``parallel(client)`` (each returns a comparable result), plus ``units(res)``."""

    name = ""

    def check(self, a, b) -> bool:
        return True

    def units(self, res):
        return None  # list of unit seconds, when the result knows them


class Calibrate(Case):
    name = "calibration: 8 pure-Python CPU units"

    def serial(self):
        return [spin(3_000_000, None)[1] for _ in range(8)]

    def parallel(self, client):
        self.reports = []
        rep = run_units(spin, [3_000_000] * 8, client)
        self.reports.append(rep)
        return rep.values

    def warm(self, client):
        pass

    def check(self, a, b):
        return a == b

    def describe(self, r):
        return "8 x 3e6 loop steps"

    def units(self, r):
        return [x for rep in self.reports for x in rep.unit_seconds]


class Regions(Case):
    name = "region count 5-18-18-1 on [-1,1]^5"

    def __init__(self):
        # 78,394 regions (the "~10^5"; 5-16-16-1, used before 2026-12-07 10:00, has 36,573)
        self.net, self.dom = Network.random([5, 18, 18, 1], seed=0), Box(-1, 1, dim=5)

    def serial(self):
        from mipnet.analyses.regions import count_regions

        return count_regions(self.net, self.dom)

    def parallel(self, client):
        from mipnet.analyses.regions import count_regions
        from mipnet.analyses.regions.parallel import count_regions_parallel

        self.reports = []
        return count_regions_parallel(self.net, self.dom, counter=count_regions, executor=client,
                                      report=self.reports)

    def units(self, r):
        return [u.seconds for rep in self.reports for u in rep.runs]

    def warm(self, client):
        from mipnet.analyses.regions import count_regions

        count_regions(Network.random([3, 6, 1], seed=0), Box(-1, 1, dim=3), executor=client)

    def check(self, a, b):
        return a.regions == b.regions and a.exact and b.exact

    def describe(self, r):
        return f"{r.regions:,} regions, {r.message.split(':')[0]}"


class LPBounds(Case):
    """Exact LP tightening (every unstable neuron's min and max, every output's): 220 LPs."""

    name = "LP bounds 784-100-100-10 on [0,1]^784, exact"
    kw = {"sign_only": False, "start": "symbolic"}

    def __init__(self):
        self.net, self.dom = Network.random([784, 100, 100, 10], seed=0), Box(0, 1, dim=784)

    def serial(self):
        from mipnet.bounds import lp_bounds

        return lp_bounds(self.net, self.dom, **self.kw)

    def parallel(self, client):
        from mipnet.bounds.lp_parallel import lp_bounds_parallel

        self.reports = []
        return lp_bounds_parallel(self.net, self.dom, executor=client, report=self.reports, **self.kw)

    def units(self, r):
        return [u.seconds for rep in self.reports for u in rep.runs]

    def stages(self):  # layer after layer: each layer's groups are one stage
        return [[u.seconds for u in rep.runs] for rep in self.reports]

    def warm(self, client):
        from mipnet.bounds.lp_parallel import lp_bounds_parallel

        lp_bounds_parallel(Network.random([4, 6, 2], seed=0), Box(0, 1, dim=4), executor=client)

    def check(self, a, b):
        return all(np.allclose(x.lower, y.lower, atol=1e-6) and np.allclose(x.upper, y.upper, atol=1e-6)
                   for x, y in zip(a.layers, b.layers))

    def describe(self, r):
        return f"{r.lp_solves} LPs, {r.num_unstable} unstable"


class LPBoundsDefault(LPBounds):
    """The default path (alpha-CROWN start in the caller, witnesses, sign-only LPs): little LP work left."""

    name = "LP bounds 784-100-100-10 on [0,1]^784, default"
    kw = {}


class GapSweep(Case):
    """The densities of bench_pruning_gap.py's digits sweep (0.7, 0.5, 0.3), two masks per rate, no
    fine-tuning: 15 cells of 1-5 s (10 cells, as before 2026-12-07, left too few to balance)."""

    name = "gap sweep digits 64-8-10, 15 cells"

    def __init__(self):
        from mipnet.nn.data import load_dataset
        from mipnet.nn.workflow import train_dense

        self.ds = load_dataset("digits", limit=500)
        self.model = train_dense(self.ds, (64, 8, 10), epochs=5, seed=0, num_threads=1, optimizer="adam").model
        self.kw = dict(methods=("random", "magnitude", "sipp"), densities=(0.7, 0.5, 0.3), masks_per_rate=2,
                       finetune_epochs=(0,), time_limit_per_milp=60.0)

    def serial(self):
        from mipnet.nn.sweeps import gap_sweep

        return gap_sweep(self.model, self.ds, **self.kw)

    def parallel(self, client):
        from mipnet.nn.sweeps import gap_sweep

        return gap_sweep(self.model, self.ds, executor=client, **self.kw)

    def warm(self, client):
        from mipnet.nn.sweeps import gap_sweep

        gap_sweep(self.model, self.ds, executor=client, methods=("magnitude",), densities=(0.9,),
                  finetune_epochs=(0,))

    def check(self, a, b):
        strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
        return strip(a.rows) == strip(b.rows)

    def describe(self, r):
        return f"{len(r.rows)} cells, {sum(x['num_milps'] for x in r.rows)} MILPs"

    def units(self, r):
        return [x["seconds"] for x in r.rows]  # the certificates' time (pruning and fine-tuning excluded)


def _max_gap_found(a, b, dom):
    from bench_equivalence import _max_gap_found as found

    return found(a, b, dom)


def _warm_equivalence(a, b, dom, eps):
    from mipnet.analyses.equivalence import verify_equivalence

    return str(verify_equivalence(a, b, dom, mode="epsilon", epsilon=eps, engine="bab", time_limit=60).verdict)


class Equivalence(Case):
    name = "equivalence proof (input branch and bound)"

    #: seconds per run (the verdict is then unknown with the bound reached; the rows say so)
    time_limit = 120.0

    def __init__(self):
        from bench_equivalence import _control_target, _regression_net

        from mipnet.analyses.equivalence import verify_equivalence

        self.fn = verify_equivalence
        # the 5-input pair of bench_equivalence.py: a net (300 ReLUs) and its wider student (400) on
        # [-0.3, 0.3]^5, eps = 1.25 x the sampled maximum gap: ~20,000 boxes (since the boxes are
        # vectorised, the retrained pair on [-0.1, 0.1]^5, used before, takes 95 boxes and 2 s)
        rng = np.random.default_rng(0)
        X = rng.uniform(-1, 1, (3000, 5))
        Y = _control_target(X)
        self.a = _regression_net([5, 100, 100, 100, 2], X, Y, 0, 40)
        self.b = _regression_net([5, 200, 200, 2], X, self.a.forward(X), 2, 40)
        self.dom = Box(-0.3, 0.3, dim=5)
        self.eps = float(f"{1.25 * _max_gap_found(self.a, self.b, self.dom):.3g}")

    def run(self, executor):
        return self.fn(self.a, self.b, self.dom, mode="epsilon", epsilon=self.eps, engine="bab",
                       time_limit=self.time_limit, executor=executor)

    def serial(self):
        return self.run(None)

    def parallel(self, client):
        return self.run(client)

    def warm(self, client):
        # every worker imports the B&B and runs a small proof (331 boxes) of the same pair in-process:
        # the timed run then starts warm, as the other cases do
        small = Box(-0.1, 0.1, dim=5)
        eps = float(f"{1.25 * _max_gap_found(self.a, self.b, small):.3g}")
        client.run(_warm_equivalence, self.a, self.b, small, eps)

    def check(self, a, b):
        return a.verdict == b.verdict and (a.search or {}).get("boxes_closed") == (b.search or {}).get("boxes_closed")

    def describe(self, r):
        s = r.search or {}
        return (f"eps {self.eps:g}: {r.verdict.value}, bound {r.gap_upper_bound:.3g}, boxes "
                f"{s.get('boxes_closed', '?')} closed + {s.get('boxes_open', '?')} open")


#: rounds of (1 worker, 2 workers) per case (3 since 2026-12-07 13:30: the CPU a second process gets
#: swings within a run, and a case is short; 2 rounds left one low round deciding the best time)
ROUNDS = 3

CASES = {"calibrate": Calibrate, "regions": Regions, "lp": LPBounds, "lp-default": LPBoundsDefault, "gap": GapSweep,
         "equivalence": Equivalence}


def list_schedule(seconds, workers: int = 2) -> float:
    """Makespan of units of these sizes run in this order on ``workers`` (each unit to the first
    free worker, as the executor does), with no overhead: the best a run of these units can do."""
    free = [0.0] * workers
    for t in seconds:
        i = min(range(workers), key=free.__getitem__)
        free[i] += t
    return max(free, default=0.0)


def overhead(client, n: int = 400) -> float:
    """Seconds per task of run_units on ``client``: n no-op units, minus nothing (all overhead)."""
    run_units(noop, range(20), client)
    t, _ = timed(lambda: run_units(noop, range(n), client))
    return t / n


def main(names) -> None:
    cases, skipped = [], []
    for n in names:
        try:
            cases.append(CASES[n]())
        except NotImplementedError as e:
            skipped.append(f"- {n}: skipped: {e}")
    results = {c.name: {} for c in cases}
    for c in cases:
        l0 = load()
        t, r = timed(c.serial)
        results[c.name]["serial"] = (t, r, l0)
        print(f"{c.name}: serial {t:.2f} s ({c.describe(r)}), load {l0}", flush=True)
    per_task = {}
    # both clusters stay up and each case alternates 1 and 2 workers for ROUNDS rounds (best time of
    # each): on this virtual machine the CPU a second process gets drifts over minutes, and phases
    # minutes apart (all cases on 1 worker, then all on 2) compared different machines
    with contextlib.ExitStack() as stack:
        clients = {}
        for workers in (1, 2):
            t0 = time.perf_counter()
            clients[workers] = stack.enter_context(local_cluster(workers))
            t_start = time.perf_counter() - t0
            per_task[workers] = overhead(clients[workers])
            print(f"{workers} workers: cluster start {t_start:.1f} s, {per_task[workers] * 1e3:.2f} ms per task",
                  flush=True)
        for c in cases:
            for workers in (1, 2):
                c.warm(clients[workers])
            rounds = []
            for _ in range(ROUNDS):
                pair = {}
                for workers in (1, 2):  # 2 last: units() reads the 2-worker run's reports
                    client = clients[workers]
                    l0 = load()
                    t, r = timed(lambda: c.parallel(client))
                    ok = c.check(results[c.name]["serial"][1], r)
                    pair[workers] = t
                    best = results[c.name].get(workers)
                    if best is None or t < best[0]:
                        results[c.name][workers] = (t, r, l0, ok and (best is None or best[3]))
                    elif not ok:
                        results[c.name][workers] = best[:3] + (False,)
                    print(f"{c.name}: {workers} workers {t:.2f} s ({c.describe(r)}), same result: {ok}, load {l0}",
                          flush=True)
                rounds.append(pair[1] / pair[2])
            results[c.name]["rounds"] = rounds
    rows, estimates = [], []
    for c in cases:
        ts, rs, ls = results[c.name]["serial"]
        t1, r1, l1, ok1 = results[c.name][1]
        t2, r2, l2, ok2 = results[c.name][2]
        per_round = ", ".join(f"{x:.2f}" for x in results[c.name]["rounds"])
        rows.append([c.name, c.describe(rs), ts, t1, t2, t1 / t2, per_round, ts / t2, ok1 and ok2,
                     f"{ls}; {l1}; {l2}"])
        us = c.units(r2)
        if us:
            work, big, n = sum(us), max(us), len(us)
            t64 = max(work / 64 + n * per_task[2] / 64, big)
            stages = c.stages() if hasattr(c, "stages") else [us]
            if isinstance(c, LPBounds):  # layer after layer: the largest group of each layer adds up
                t64 = max(t64, sum(max(st, default=0.0) for st in stages))
            best2 = sum(list_schedule(st) for st in stages)
            estimates.append(f"- {c.name}: {n} units, {work:.1f} s of work, largest {big:.2f} s -> "
                             f"T64 ~ {t64:.2f} s (x{ts / t64:.1f} over serial); these units on 2 workers in "
                             f"submission order, without overhead: {best2:.2f} s, at most x{work / best2:.2f} "
                             "over 1 worker")
    header = ["case", "result", "serial s", f"1 worker s (best of {ROUNDS})", f"2 workers s (best of {ROUNDS})",
              "speed-up 1->2 (best times)", "speed-up 1->2 per round", "serial / 2 workers", "same result",
              "load (1/5/15 min): serial; 1; 2"]
    table = markdown_table(header, rows)
    print(table)
    print("\n".join(estimates + skipped))
    body = (
        f"`nice -n 5 python benchmarks/bench_parallel.py {' '.join(names)}` on {machine()}, "
        f"{time.strftime('%Y-%m-%d %H:%M')} UTC; the machine was shared with other jobs (load column, "
        "`os.getloadavg()` at the start of each measurement): ratios are noisy, rerun the script on an idle "
        "machine for clean numbers. Serial = the in-process analysis (the baseline); 1 and 2 workers = a "
        "LocalCluster of worker processes (threads_per_worker=1), warm (start-up and first imports excluded); "
        f"both clusters stay up and each case alternates 1 and 2 workers for {ROUNDS} rounds (best time of each; "
        "the CPU a second process gets on this virtual machine drifts over minutes). "
        "Target: speed-up 1 -> 2 workers >= 1.7x on each case. The calibration row (pure-Python CPU units, "
        "no solver) is the speed-up the machine allowed at that moment: with Linux autogroup scheduling "
        "(`/proc/sys/kernel/sched_autogroup_enabled`) all processes of one session share one slice of a busy "
        "machine, so extra worker processes add no CPU when other sessions keep the cores busy. "
        f"Per-task overhead of run_units (no-op units): {per_task[1] * 1e3:.2f} ms on 1 worker, "
        f"{per_task[2] * 1e3:.2f} ms on 2.\n\n" + table + "\n\n"
        "64-worker estimate, from the measured unit sizes (`T64 ~ max(work / 64 + units x overhead / 64, "
        "largest unit)`), and the best these units allow on 2 workers (each to the first free worker, in "
        "submission order, no overhead: the ceiling that the units' sizes put on the speed-up):\n\n" + ("\n".join(estimates) or "- (no case reported unit sizes)")
        + ("\n" + "\n".join(skipped) if skipped else "")
    )
    write_section("Parallel", body)


if __name__ == "__main__":
    main(sys.argv[1:] or list(CASES))
