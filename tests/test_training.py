"""Training and fine-tuning: accuracy, determinism, the input-scale fold, masks, L1, devices."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune as tprune

from mipnet.nn.data import Dataset, load_dataset
from mipnet.core.errors import InvalidNetworkError, MipnetError
from mipnet.nn.training import (
    DeviceUnavailableError,
    TrainingError,
    _Adam,
    _SGD,
    evaluate,
    finetune,
    make_mlp,
    resolve_device,
    train,
)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _params(model):
    return [p.detach().clone() for p in model.parameters()]


def test_make_mlp():
    m = make_mlp([5, 4, 3, 2], seed=1)
    kinds = [type(x).__name__ for x in m]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert [x.out_features for x in m if isinstance(x, nn.Linear)] == [4, 3, 2]
    assert all(torch.equal(a, b) for a, b in zip(_params(m), _params(make_mlp([5, 4, 3, 2], seed=1))))
    assert not torch.equal(m[0].weight, make_mlp([5, 4, 3, 2], seed=2)[0].weight)
    state = torch.random.get_rng_state()
    make_mlp([5, 4, 2], seed=3)
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched
    with pytest.raises(InvalidNetworkError, match="widths must list the input size"):
        make_mlp([5])
    with pytest.raises(InvalidNetworkError, match="all >= 1"):
        make_mlp([5, 0, 2])


def test_training_learns_digits(digits):
    model = make_mlp([64, 32, 10], seed=0)
    res = train(model, digits, epochs=6, lr=0.05, progress=False)
    assert res.test_accuracy > 0.85, res  # chance is 0.1
    assert len(res.history) == 6 and res.history[-1].loss < res.history[0].loss
    assert res.device == "cpu" and res.input_scale == 1 / 16 and res.seconds_per_epoch > 0
    assert res.model is model and not model.training
    # the reported accuracy is that of the returned model on raw inputs (independent route)
    with torch.no_grad():
        pred = model(torch.tensor(np.array(digits.X_test))).argmax(1).numpy()
    assert res.test_accuracy == pytest.approx(float(np.mean(pred == digits.y_test)))
    assert evaluate(model, digits) == res.test_accuracy
    assert evaluate(model, digits, "train") == res.train_accuracy
    d = json.loads(json.dumps(res.to_dict()))
    assert d["epochs"] == 6 and len(d["history"]) == 6 and "test accuracy" in str(res)


def test_same_seed_same_weights(digits):
    small = load_dataset("digits", limit=300)
    runs = []
    for seed in (4, 4, 5):
        m = make_mlp([64, 16, 10], seed=0)
        train(m, small, epochs=2, seed=seed, progress=False)
        runs.append(_params(m))
    assert all(torch.equal(a, b) for a, b in zip(runs[0], runs[1]))
    assert not all(torch.equal(a, b) for a, b in zip(runs[0], runs[2]))


def test_input_scale_fold_is_exact(digits):
    """Training raw inputs with scale 1/16 equals training on x/16, up to the exact fold."""
    small = load_dataset("digits", limit=200)
    a = make_mlp([64, 12, 10], seed=7)
    b = make_mlp([64, 12, 10], seed=7)
    with torch.no_grad():
        b[0].weight.mul_(16.0)  # route B starts where route A's internal model starts
    scaled = Dataset(small.X_train / np.float32(16), small.y_train, small.X_test / np.float32(16), small.y_test,
                     input_shape=small.input_shape, num_classes=10, name="digits/16", input_range=(0, 1))
    ra = train(a, small, epochs=2, seed=1, progress=False)
    rb = train(b, scaled, epochs=2, seed=1, progress=False, input_scale=1.0)
    assert ra.input_scale == 1 / 16 and rb.input_scale == 1.0
    assert torch.equal(a[0].weight * 16, b[0].weight)
    assert all(torch.equal(p, q) for p, q in zip(_params(a)[1:], _params(b)[1:]))
    assert ra.test_accuracy == rb.test_accuracy
    assert [h.loss for h in ra.history] == [h.loss for h in rb.history]


def test_masks_survive_finetuning(digits):
    small = load_dataset("digits", limit=300)
    model = make_mlp([64, 16, 10], seed=0)
    train(model, small, epochs=2, progress=False)
    rng = np.random.default_rng(0)
    mask = torch.tensor(rng.random((16, 64)) < 0.3, dtype=torch.float32)
    tprune.custom_from_mask(model[0], "weight", mask)
    before = model[0].weight_orig.detach().clone()
    res = finetune(model, small, epochs=3, lr=0.05, l1=1e-4, progress=False)
    W = model[0].weight.detach()
    assert torch.all(W[mask == 0] == 0)  # exactly zero
    assert torch.equal(W, model[0].weight_orig.detach() * mask)  # the cached weight is current
    assert not torch.equal(model[0].weight_orig.detach()[mask == 1], before[mask == 1])  # kept ones trained
    assert res.history[-1].loss < res.history[0].loss
    # the pruned positions of weight_orig never moved either (masked gradient)
    assert torch.equal(model[0].weight_orig.detach()[mask == 0] * 16, before[mask == 0] * 16)


def test_finetune_without_masks_just_trains(digits):
    m = make_mlp([64, 8, 10], seed=0)
    r = finetune(m, load_dataset("digits", limit=100), epochs=1, progress=False)
    assert r.epochs == 1


def test_float64_model(digits):
    m = make_mlp([64, 8, 10], seed=0).double()
    r = train(m, load_dataset("digits", limit=100), epochs=1, progress=False)
    assert m[0].weight.dtype == torch.float64 and 0 <= r.test_accuracy <= 1
    assert evaluate(m, digits) >= 0


def test_l1_shrinks_weights(digits):
    small = load_dataset("digits", limit=400)
    norms = []
    for l1 in (0.0, 0.1):
        m = make_mlp([64, 16, 10], seed=0)
        train(m, small, epochs=4, lr=0.05, l1=l1, progress=False)
        norms.append(sum(float(x.weight.detach().abs().sum()) for x in m if isinstance(x, nn.Linear)))
    assert norms[1] < 0.8 * norms[0]


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_update_rules_match_torch_optim(kind):
    """Our SGD/Adam steps equal torch.optim's on the same gradients (two routes)."""
    torch.manual_seed(0)
    p1 = [torch.randn(4, 3), torch.randn(4)]
    p2 = [p.clone() for p in p1]
    if kind == "sgd":
        ours = _SGD(p1, lr=0.1, momentum=0.9, weight_decay=1e-3)
        ref = torch.optim.SGD([nn.Parameter(p) for p in p2], lr=0.1, momentum=0.9, weight_decay=1e-3)
    else:
        ours = _Adam(p1, lr=0.01, weight_decay=1e-3)
        ref = torch.optim.Adam([nn.Parameter(p) for p in p2], lr=0.01, weight_decay=1e-3)
    refp = ref.param_groups[0]["params"]
    for step in range(5):
        grads = [torch.randn_like(p) for p in p1]
        ours.step(grads)
        for p, g in zip(refp, grads):
            p.grad = g.clone()
        ref.step()
    for a, b in zip(p1, refp):
        torch.testing.assert_close(a, b.detach(), rtol=1e-6, atol=1e-7)


def test_devices(digits):
    assert resolve_device(None).type in ("cpu", "cuda")
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(DeviceUnavailableError, match="sees no CUDA GPU"):
            resolve_device("cuda")
        with pytest.raises(RuntimeError, match="use device='cpu' or 'auto'"):
            train(make_mlp([64, 4, 10]), digits, epochs=1, device="cuda", progress=False)
    with pytest.raises(DeviceUnavailableError, match="device must be 'auto', 'cpu', 'cuda'"):
        resolve_device("gpu0")
    with pytest.raises(DeviceUnavailableError, match="not supported"):
        resolve_device("meta")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_cuda_training_matches_cpu_closely(digits):
    small = load_dataset("digits", limit=300)
    a, b = make_mlp([64, 16, 10], seed=0), make_mlp([64, 16, 10], seed=0)
    ra = train(a, small, epochs=2, device="cpu", progress=False)
    rb = train(b, small, epochs=2, device="cuda", progress=False)
    assert rb.device.startswith("cuda") and next(b.parameters()).device.type == "cpu"
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-4)
    assert abs(ra.test_accuracy - rb.test_accuracy) < 0.02


def test_validation(digits):
    m = make_mlp([64, 4, 10])
    cases = [
        (dict(epochs=-1), "epochs must be a non-negative integer"),
        (dict(epochs=1, lr=0.0), "lr must be a positive number"),
        (dict(epochs=1, batch_size=0), "batch_size must be a positive integer"),
        (dict(epochs=1, optimizer="rmsprop"), "optimizer must be one of"),
        (dict(epochs=1, momentum=1.0), r"momentum must lie in \[0, 1\)"),
        (dict(epochs=1, l1=-1.0), "l1 must be a non-negative number"),
        (dict(epochs=1, input_scale=0), "input_scale must be 'auto' or a positive number"),
        (dict(epochs="3"), "epochs must be a non-negative integer"),
        (dict(epochs=None), "epochs must be a non-negative integer"),
        (dict(epochs=1, lr="fast"), "lr must be a positive number"),
        (dict(epochs=1, lr=float("nan")), "lr must be a positive number"),
        (dict(epochs=1, seed="abc"), "seed must be an integer >= 0"),
        (dict(epochs=1, seed=-1), "seed must be an integer >= 0"),
    ]
    for kw, msg in cases:
        with pytest.raises(TrainingError, match=msg):
            train(m, digits, progress=False, **kw)
    with pytest.raises(InvalidNetworkError, match="the model takes 32 inputs but dataset 'digits' has 64"):
        train(make_mlp([32, 4, 10]), digits, epochs=1)
    with pytest.raises(MipnetError, match="must be a mipnet.nn.data.Dataset"):
        train(m, (digits.X_train, digits.y_train), epochs=1)
    with pytest.raises(TrainingError, match="num_threads must be a positive integer"):
        train(m, digits, epochs=1, num_threads=0)
    with pytest.raises(MipnetError, match="must be a mipnet.nn.data.Dataset"):
        evaluate(m, "digits")
    with pytest.raises(InvalidNetworkError, match="must be a torch.nn.Module"):
        evaluate("model", digits)
    before = torch.get_num_threads()
    r = train(m, digits, epochs=0, progress=True, num_threads=1)  # zero epochs: just evaluates
    assert torch.get_num_threads() == before  # restored
    assert r.history == () and r.seconds_per_epoch == 0.0
