"""The pruning pipeline (mipnet.workflow) and its pictures, on tiny digits runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from mipnet.nn.data import load_dataset
from mipnet.core.errors import DatasetError, InvalidArgumentError, InvalidNetworkError, PlotError, PruningError
from mipnet.nn.pruning import kept_count
from mipnet.sparsity import allocate_sparsity
from mipnet.nn.workflow import (
    METHOD_ALIASES,
    WORKFLOW_METHODS,
    PruneRun,
    SweepResult,
    allocation_for,
    prune_and_finetune,
    sparsity_sweep,
    sweep_seed,
    train_dense,
)

WIDTHS = (64, 24, 16, 10)
SIZES = [64 * 24, 24 * 16, 16 * 10]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", limit=400)


@pytest.fixture(scope="module")
def dense(digits):
    return train_dense(digits, WIDTHS, epochs=10, seed=0, lr=0.1, num_threads=1)


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_train_dense_is_seeded(digits, dense):
    again = train_dense(digits, WIDTHS, epochs=10, seed=0, lr=0.1, num_threads=1)
    for (k, a), b in zip(dense.model.state_dict().items(), again.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert 0.0 <= dense.test_accuracy <= 1.0
    assert dense.test_accuracy > 0.5  # learned something in 10 epochs


@pytest.mark.parametrize("method", list(WORKFLOW_METHODS))
def test_prune_and_finetune_each_method(digits, dense, method):
    before = _state(dense.model)
    d = 0.2
    run = prune_and_finetune(dense.model, digits, method=method, density=d, finetune_epochs=1, seed=3,
                             num_threads=1)
    # the dense model is untouched (a deep copy was pruned)
    for k, v in dense.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert isinstance(run, PruneRun) and run.method == method and run.seed == 3
    for acc in (run.accuracy_dense, run.accuracy_pruned, run.accuracy_finetuned):
        assert 0.0 <= acc <= 1.0
    assert run.accuracy_dense == pytest.approx(dense.test_accuracy)
    assert list(run.sizes) == SIZES
    assert run.kept[-1] == SIZES[-1]  # output layer dense
    hidden = sum(SIZES[:-1])
    if method in ("uniform", "random", "sipp"):
        assert list(run.kept[:-1]) == [kept_count(d, s) for s in SIZES[:-1]]
        assert list(run.requested_densities) == [d, d, 1.0]
    elif method in ("global", "snip"):
        assert sum(run.kept[:-1]) == kept_count(d, hidden)
    assert run.hidden_density == pytest.approx(sum(run.kept[:-1]) / hidden)
    assert run.achieved_densities == pytest.approx([k / s for k, s in zip(run.kept, run.sizes)])
    # fine-tuning kept the pruned weights at exact zero: the kept model has no more non-zeros
    lins = [m for m in run.model.modules() if isinstance(m, nn.Linear)]
    assert not any(hasattr(m, "weight_mask") for m in lins)  # masks made permanent
    nnz = [int((m.weight != 0).sum()) for m in lins]
    assert all(n <= k for n, k in zip(nnz, run.kept))
    # second route: the converted Network's float64 forward pass agrees with the torch model
    net = run.network()
    X = digits.X_test[:50].astype(np.float64)
    with torch.no_grad():
        ref = run.model.double()(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(net.forward(X), ref, rtol=1e-10, atol=1e-10)
    d_json = json.loads(json.dumps(run.to_dict()))
    assert d_json["method"] == method and "model" not in d_json
    assert method in str(run)


def test_allocated_uses_allocate_sparsity(digits, dense):
    d = 0.05
    run = prune_and_finetune(dense.model, digits, method="allocated", density=d, finetune_epochs=0, num_threads=1)
    alloc = allocate_sparsity(WIDTHS, density=d)
    assert run.requested_densities == pytest.approx(alloc.densities, rel=0, abs=0)
    assert allocation_for(WIDTHS, d) == tuple(alloc.densities)
    assert list(run.kept) == [kept_count(p, s) for p, s in zip(alloc.densities, SIZES)]
    assert run.accuracy_finetuned == run.accuracy_pruned  # no fine-tuning asked
    assert run.finetune_epochs == 0
    # the allocation spends the budget: kept hidden weights ~ d * hidden (rounding per layer)
    assert abs(sum(run.kept[:-1]) - d * sum(SIZES[:-1])) <= 1.0


def test_stages_call_on_stage_with_snapshots(digits, dense):
    seen = []

    def on_stage(epochs, model, acc):
        lins = [m for m in model.modules() if isinstance(m, nn.Linear)]
        assert not any(hasattr(m, "weight_mask") for m in lins)  # masks made permanent
        seen.append((epochs, _state(model), acc, [int((m.weight != 0).sum()) for m in lins]))

    run = prune_and_finetune(dense.model, digits, method="random", density=0.3, finetune_epochs=(0, 1, 3), seed=2,
                             num_threads=1, on_stage=on_stage)
    assert [e for e, *_ in seen] == [0, 1, 3]
    assert seen[0][2] == run.accuracy_pruned and seen[-1][2] == run.accuracy_finetuned
    assert run.finetune_epochs == 3 and len(run.finetuning) == 2
    assert [f["epochs"] for f in run.finetuning] == [1, 2]  # 1 epoch, then 2 more
    assert all(n <= k for n, k in zip(seen[1][3], run.kept))  # pruned weights stay zero at every stage
    assert any(not torch.equal(seen[0][1][k], seen[1][1][k]) for k in seen[0][1])  # the snapshots differ
    for k, v in run.model.state_dict().items():  # the last stage's model is the kept one
        assert torch.equal(v, seen[-1][1][k]), k
    # the same as one call per stage count (each stage seeded the same way)
    one = prune_and_finetune(dense.model, digits, method="random", density=0.3, finetune_epochs=1, seed=2,
                             num_threads=1)
    assert one.accuracy_finetuned == seen[1][2]
    for k, v in one.model.state_dict().items():
        assert torch.equal(v, seen[1][1][k]), k


def test_pruning_options_pass_through(digits, dense):
    assert METHOD_ALIASES == {"magnitude": "uniform"}
    a = prune_and_finetune(dense.model, digits, method="magnitude", density=0.2, finetune_epochs=0, num_threads=1)
    b = prune_and_finetune(dense.model, digits, method="uniform", density=0.2, finetune_epochs=0, num_threads=1)
    assert a.kept == b.kept and a.accuracy_pruned == b.accuracy_pruned and a.method == "magnitude"
    assert a.report.method == "magnitude" and a.finetuning == ()
    out = prune_and_finetune(dense.model, digits, method="uniform", density=0.2, prune_output=True,
                             finetune_epochs=0, num_threads=1)
    assert list(out.kept) == [kept_count(0.2, s) for s in SIZES]
    per = prune_and_finetune(dense.model, digits, method="uniform", density=0.2, densities=[0.5, 0.1],
                             finetune_epochs=0, num_threads=1)
    assert list(per.requested_densities) == [0.5, 0.1, 1.0]
    assert list(per.kept) == [kept_count(0.5, SIZES[0]), kept_count(0.1, SIZES[1]), SIZES[2]]
    sipp = prune_and_finetune(dense.model, digits, method="sipp", density=0.3, finetune_epochs=0, num_threads=1,
                              prune_kw={"batch_size": 17})
    assert sipp.report.details["batch_size"] == 17
    d = json.loads(json.dumps(sipp.to_dict()))
    assert "report" not in d and "finetuning" not in d
    assert tuple(PruneRun(**d).kept) == sipp.kept  # from_dict's route still works
    ft = prune_and_finetune(dense.model, digits, method="global", density=0.3, finetune_epochs=1, num_threads=1,
                            optimizer="adam", lr=1e-3)
    assert ft.finetuning[0]["optimizer"] == "adam" and ft.finetuning[0]["test_accuracy"] == ft.accuracy_finetuned


def test_without_model_and_network_error(digits, dense):
    run = prune_and_finetune(dense.model, digits, method="uniform", density=0.5, finetune_epochs=0,
                             keep_model=False, num_threads=1)
    assert run.model is None
    with pytest.raises(InvalidArgumentError, match="keep_model=True"):
        run.network()


def test_sweep_table_compare_and_purity(digits):
    kw = dict(densities=(0.3, 0.05), methods=("uniform", "allocated", "random"), epochs=2, finetune_epochs=1,
              lr=0.05, num_threads=1)
    seen = []
    res = sparsity_sweep(digits, WIDTHS, seeds=(0, 1), on_run=seen.append, **kw)
    assert isinstance(res, SweepResult)
    assert len(res.runs) == 2 * 3 * 2 == len(seen) and len(res.dense) == 2
    assert [(r.seed, r.method, r.density) for r in res.runs] == [
        (s, m, d) for s in (0, 1) for m in kw["methods"] for d in kw["densities"]]
    for r in res.runs:  # every variant of a seed starts from that seed's dense model
        assert r.accuracy_dense == next(x.test_accuracy for x in res.dense if x.seed == r.seed)
        assert r.model is None
    # the aggregate equals a hand computation
    table = res.table()
    assert len(table) == 6
    for row in table:
        accs = [r.accuracy_finetuned for r in res.runs if r.method == row["method"] and r.density == row["density"]]
        assert row["n"] == 2
        assert row["mean"] == pytest.approx(np.mean(accs))
        assert row["std"] == pytest.approx(np.std(accs, ddof=1))
        assert 0 <= row["mean_pruned"] <= 1
    pruned = res.table("pruned")
    assert pruned[0]["mean"] == pytest.approx(np.mean([r.accuracy_pruned for r in res.runs
                                                       if r.method == "uniform" and r.density == 0.3]))
    for c in res.compare("allocated", "uniform"):
        a = [r.accuracy_finetuned for r in res.runs if r.method == "allocated" and r.density == c["density"]]
        b = [r.accuracy_finetuned for r in res.runs if r.method == "uniform" and r.density == c["density"]]
        assert c["diff_mean"] == pytest.approx(np.mean(a) - np.mean(b))
        assert c["wins"] + c["losses"] + c["ties"] == c["n"] == 2
        assert c["ratio"] == pytest.approx(np.mean(a) / np.mean(b))
    assert set(res.allocations) == {0.3, 0.05}
    assert res.allocations[0.05] == tuple(allocate_sparsity(WIDTHS, density=0.05).densities)
    d = json.loads(json.dumps(res.to_dict()))
    assert len(d["runs"]) == 12 and d["widths"] == list(WIDTHS)
    assert "allocated" in str(res) and "±" in str(res)
    back = SweepResult.from_dict(d)
    assert back.table() == res.table() and back.compare() == res.compare()
    assert back.allocations == res.allocations and back.dense == res.dense
    with pytest.raises(InvalidArgumentError, match="not a SweepResult"):
        SweepResult.from_dict({"runs": []})
    # a work unit is a pure function of its inputs: seed 1 alone gives the same numbers
    drun, runs = sweep_seed(digits, WIDTHS, seed=1, **kw)
    assert drun.test_accuracy == res.dense[1].test_accuracy
    assert [r.accuracy_finetuned for r in runs] == [r.accuracy_finetuned for r in res.runs if r.seed == 1]
    with pytest.raises(InvalidArgumentError, match="was not run"):
        res.compare("sipp", "uniform")
    with pytest.raises(InvalidArgumentError, match="stage"):
        res.table("best")


def test_plots(digits, tmp_path):
    res = sparsity_sweep(digits, WIDTHS, densities=(0.3, 0.1), methods=("uniform", "allocated"), seeds=(0,),
                         epochs=1, finetune_epochs=0, num_threads=1)
    from mipnet.plotting import plot_accuracy_vs_density, plot_log_bound_vs_density

    path = tmp_path / "acc.png"
    fig = plot_accuracy_vs_density(res, path=path)
    assert path.stat().st_size > 1000
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["allocated", "dense", "uniform"]
    fig = plot_accuracy_vs_density(res.table(), methods=["allocated"], dense_accuracy=0.9)
    assert sorted(t.get_text() for t in fig.axes[0].get_legend().get_texts()) == ["allocated", "dense"]
    with pytest.raises(PlotError, match="not in the sweep"):
        plot_accuracy_vs_density(res, methods=["snip"])
    with pytest.raises(PlotError, match="stage"):
        plot_accuracy_vs_density(res, stage="best")
    with pytest.raises(PlotError, match="'method', 'density', 'mean'"):
        plot_accuracy_vs_density([{"method": "uniform"}])
    fig = plot_log_bound_vs_density(WIDTHS, densities=[0.01, 0.1, 1.0], mark=0.1, path=tmp_path / "b.png")
    lines = fig.axes[0].get_lines()
    uni = lines[0].get_ydata()
    alloc = lines[1].get_ydata()
    assert np.all(np.asarray(alloc) >= np.asarray(uni) - 1e-9)  # the allocation never loses to uniform
    with pytest.raises(PlotError, match="densities"):
        plot_log_bound_vs_density(WIDTHS, densities=[0.0])
    from mipnet.plotting import plot_gap_vs_density

    for bad in (None, "abc", 3):
        with pytest.raises(PlotError, match="GapSweep"):
            plot_gap_vs_density(bad)


def test_validation(digits, dense):
    with pytest.raises(PruningError, match="method must be one of"):
        prune_and_finetune(dense.model, digits, method="magic", density=0.1)
    with pytest.raises(InvalidArgumentError, match=r"in \(0, 1\]"):
        prune_and_finetune(dense.model, digits, method="uniform", density=0.0)
    with pytest.raises(InvalidArgumentError, match="finetune_epochs"):
        prune_and_finetune(dense.model, digits, method="uniform", density=0.1, finetune_epochs=-1)
    for fe in ((3, 1), (), "10", (0, -1)):
        with pytest.raises(InvalidArgumentError, match="finetune_epochs"):
            prune_and_finetune(dense.model, digits, method="uniform", density=0.1, finetune_epochs=fe)
    with pytest.raises(InvalidArgumentError, match="seed must be an integer >= 0"):
        prune_and_finetune(dense.model, digits, method="random", density=0.1, seed="abc")
    with pytest.raises(DatasetError, match="dataset must be a mipnet.nn.data.Dataset"):
        prune_and_finetune(dense.model, "digits", method="uniform", density=0.1)
    with pytest.raises(PruningError, match="per-layer densities apply to"):
        prune_and_finetune(dense.model, digits, method="global", density=0.1, densities=[0.1, 0.1])
    with pytest.raises(PruningError, match="densities must be a list of numbers"):
        prune_and_finetune(dense.model, digits, method="uniform", density=0.1, densities=-1)
    with pytest.raises(PruningError, match="densities must be a list of numbers"):
        prune_and_finetune(dense.model, digits, method="uniform", density=0.1, densities="ab", finetune_epochs=0)
    with pytest.raises(InvalidNetworkError, match="widths must be a sequence"):
        allocation_for("ab", 0.1)
    with pytest.raises(InvalidNetworkError, match="64 inputs"):
        train_dense(digits, (30, 10, 10), epochs=1)
    with pytest.raises(InvalidNetworkError, match="10 classes"):
        train_dense(digits, (64, 10, 3), epochs=1)
    with pytest.raises(InvalidArgumentError, match="seeds lists a value twice"):
        sparsity_sweep(digits, WIDTHS, densities=(0.1,), methods=("uniform",), seeds=(0, 0))
    with pytest.raises(InvalidArgumentError, match="densities is empty"):
        sparsity_sweep(digits, WIDTHS, densities=(), methods=("uniform",), seeds=(0,))
    # an infeasible allocation fails before any training
    with pytest.raises(InvalidArgumentError, match="too small"):
        sparsity_sweep(digits, WIDTHS, densities=(1e-5,), methods=("allocated",), seeds=(0,))
    assert not math.isnan(dense.test_accuracy)


def test_demo_validates_its_arguments(tmp_path):
    from mipnet.demo import run_demo

    for kw, match in ((dict(epochs=0), "epochs must be an integer >= 1"), (dict(seed=-1), "seed must be"),
                      (dict(radius=0.0), "radius must be a positive number"),
                      (dict(time_limit="60"), "time_limit must be a positive number")):
        with pytest.raises(InvalidArgumentError, match=match):
            run_demo(tmp_path / "demo", echo=None, **kw)
    assert not (tmp_path / "demo").exists()  # nothing written before the arguments are checked
