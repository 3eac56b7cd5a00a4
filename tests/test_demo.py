"""The demo runs end to end and its claims check out."""

import numpy as np

from mipnet.demo import run_demo


def test_demo_runs_and_reports_checked_results(tmp_path):
    s = run_demo(tmp_path, echo=None, time_limit=60)
    assert s["train"]["test_accuracy"] > 0.9
    assert s["regions"]["ball"]["exact"] and s["regions"]["ball"]["regions"] >= s["regions"]["sampled"] >= 1
    assert (tmp_path / "slice_0_1_7.png").stat().st_size > 10_000
    eq = s["equivalence_pruned"]
    if eq["verdict"] == "not_equivalent":
        assert eq["counterexample"] is not None
    tk = s["topk_l1"]  # top-2 on an L1 ball: a verdict, and a counterexample has a positive margin
    assert tk["verdict"] in ("equivalent", "not_equivalent")
    if tk["verdict"] == "not_equivalent":
        assert tk["counterexample"] is not None and tk["gap_lower_bound"] > 0
    gap = s["pruning_gap"]
    assert gap["upper"] >= gap["lower"] - 1e-9
    assert s["compression"]["equivalence"]["verdict"] == "equivalent"
    a = s["ascent"]  # the DC ascent climbs and stays below the proven maximum (an independent bound)
    assert a["start"] <= a["value"] <= a["proven_max"] + 1e-9 and a["lps"] >= 1
    assert np.prod(s["compression"]["widths"][1:-1]) <= 16 * 16
