"""torch <-> Network: exact round trips, conversions checked against torch's own forward pass."""

import os
import pickle

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from mipnet.core.errors import InvalidNetworkError, UnsupportedLayerError
from mipnet.core.network import Network
from mipnet.io.torch import (
    from_torch,
    load_torch,
    save_torch,
    to_torch,
    torch_activation_pattern,
    torch_forward,
)


def _randomise_bn(bn, gen):
    with torch.no_grad():
        n = bn.num_features
        bn.running_mean.copy_(torch.randn(n, generator=gen))
        bn.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
        if bn.weight is not None:
            bn.weight.copy_(torch.randn(n, generator=gen))
            bn.bias.copy_(torch.randn(n, generator=gen))


def _check_against_torch(model, net, input_shape, *, seed=0, n=64):
    """Our float64 forward pass equals torch's float64 forward pass on random inputs."""
    model = model.double().eval()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *input_shape, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x).reshape(n, -1).numpy()
    ours = net.forward(x.reshape(n, -1).numpy())
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10 * max(1.0, np.abs(ref).max()))


@pytest.mark.parametrize("widths", [(3, 1), (4, 6, 2), (5, 8, 7, 3)])
def test_round_trip_exact(widths):
    net = Network.random(widths, seed=len(widths))
    back = from_torch(to_torch(net, dtype=torch.float64))
    assert back.allclose(net)  # exact: rtol = atol = 0
    model32 = to_torch(net)
    assert model32[0].weight.dtype == torch.float32
    x = np.random.default_rng(0).normal(size=(10, widths[0]))
    with torch.no_grad():
        y32 = model32(torch.tensor(x, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(y32, net.forward(x), rtol=1e-4, atol=1e-4)


def test_torch_forward_and_pattern_match_numpy():
    net = Network.random((6, 9, 5, 3), seed=3)
    x = np.random.default_rng(1).normal(size=(50, 6))
    y = torch_forward(net, torch.tensor(x))
    assert y.dtype == torch.float64 and y.shape == (50, 3)
    np.testing.assert_allclose(y.numpy(), net.forward(x), rtol=1e-12, atol=1e-12)
    pat = torch_activation_pattern(net, torch.tensor(x))
    assert pat.dtype == torch.bool
    assert np.array_equal(pat.numpy(), net.activation_pattern(x))
    assert np.array_equal(torch_activation_pattern(net, x[0]).numpy(), net.activation_pattern(x[0]))
    np.testing.assert_allclose(torch_forward(net, x[0]).numpy(), net.forward(x[0]), rtol=1e-12)
    with pytest.raises(InvalidNetworkError, match=r"expected \(N, 6\)"):
        torch_forward(net, torch.zeros(2, 5))


def test_nested_sequential_dropout_identity_and_composition():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Sequential(nn.Linear(6, 5), nn.Dropout(0.3), nn.Linear(5, 4)),  # composed into one map
        nn.Identity(),
        nn.ReLU(),
        nn.Sequential(nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(inplace=True))),
        nn.ReLU(),  # idempotent: no extra layer
        nn.Linear(3, 2),
    )
    net = from_torch(model)
    assert net.widths == (6, 4, 3, 2)
    _check_against_torch(model, net, (6,))


def test_batchnorm1d_folded_both_sides():
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    bn_first, bn_mid, bn_noaffine = nn.BatchNorm1d(5), nn.BatchNorm1d(7), nn.BatchNorm1d(7, affine=False)
    for bn in (bn_first, bn_mid, bn_noaffine):
        _randomise_bn(bn, gen)
    model = nn.Sequential(bn_first, nn.Linear(5, 7), bn_mid, nn.ReLU(), bn_noaffine, nn.Linear(7, 2))
    net = from_torch(model)
    assert net.widths == (5, 7, 2)
    _check_against_torch(model, net, (5,))


CONV_CONFIGS = [
    # (C, H, W, out_channels, kernel, stride, padding, dilation, groups, bias)
    (1, 6, 6, 3, 3, 1, 0, 1, 1, True),
    (2, 7, 5, 4, 3, 2, 1, 1, 2, False),
    (4, 8, 8, 4, (3, 2), (2, 1), (1, 2), 1, 4, True),
    (3, 9, 9, 6, 3, 1, 2, 2, 3, True),
    (2, 6, 6, 2, 3, 1, "same", 1, 1, True),
]


@pytest.mark.parametrize("i", range(len(CONV_CONFIGS)))
def test_conv_bn_avgpool_match_torch(i):
    C, H, W, out, k, s, p, d, g, bias = CONV_CONFIGS[i]
    torch.manual_seed(100 + i)
    conv = nn.Conv2d(C, out, k, stride=s, padding=p, dilation=d, groups=g, bias=bias)
    bn = nn.BatchNorm2d(out)
    _randomise_bn(bn, torch.Generator().manual_seed(2))
    with torch.no_grad():
        shape = conv.double()(torch.zeros(1, C, H, W, dtype=torch.float64)).shape[1:]
    conv.float()
    pool = nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=False)
    pooled = (out, shape[1] + 1, shape[2] + 1)
    model = nn.Sequential(conv, bn, nn.ReLU(), pool, nn.Flatten(), nn.Linear(int(np.prod(pooled)), 3))
    net = from_torch(model, input_shape=(C, H, W))
    assert net.widths == (C * H * W, int(np.prod(shape)), 3)
    _check_against_torch(model, net, (C, H, W), seed=i)


def test_conv_matrix_holds_the_weights_exactly():
    torch.manual_seed(5)
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1, groups=1).double()
    net = from_torch(nn.Sequential(conv, nn.Flatten()), input_shape=(2, 5, 5))
    W = net.weights[0]
    # every non-zero entry of the dense matrix is one of the conv weights, bit for bit
    assert set(W[W != 0].tolist()) <= set(conv.weight.detach().reshape(-1).tolist())
    assert np.array_equal(net.biases[0], np.repeat(conv.bias.detach().numpy(), 9))


def test_padding_modes_and_adaptive_pool():
    torch.manual_seed(6)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
        nn.Conv2d(3, 2, 3, padding=(1, 2), padding_mode="circular"), nn.AdaptiveAvgPool2d((2, 3)),
        nn.Flatten(), nn.Linear(12, 2),
    )
    net = from_torch(model, input_shape=(2, 6, 5))
    _check_against_torch(model, net, (2, 6, 5))


def test_pruned_module_reads_masked_weight():
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 2))
    prune.l1_unstructured(model[0], "weight", amount=0.5)
    net = from_torch(model)
    assert np.count_nonzero(net.weights[0]) == 24
    _check_against_torch(model, net, (8,))


@pytest.mark.parametrize(
    "model, kwargs, exc, match",
    [
        (nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 1)), {}, UnsupportedLayerError,
         r"layer 1 \(Sigmoid\) is not supported; supported layers: Sequential, Linear, ReLU"),
        (nn.Sequential(nn.Conv2d(1, 1, 2), nn.MaxPool2d(2)), {"input_shape": (1, 4, 4)},
         UnsupportedLayerError, r"layer 1 \(MaxPool2d\)"),
        (nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.ReLU(), nn.Softmax(dim=1))), {},
         UnsupportedLayerError, r"layer 1\.1 \(Softmax\)"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU()), {}, UnsupportedLayerError,
         r"last layer is a ReLU.*Drop the trailing"),
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()), {}, InvalidNetworkError,
         r"layer 0 \(Conv2d\) needs the input shape; pass input_shape"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(5, 1)), {}, InvalidNetworkError,
         r"layer 2 \(Linear\) expects 5 inputs, receives 4"),
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Linear(8, 1)), {"input_shape": (1, 4, 4)},
         InvalidNetworkError, r"layer 1 \(Linear\) receives per-sample shape \(2, 2, 2\); insert nn.Flatten"),
        (nn.Sequential(nn.Conv2d(2, 2, 3)), {"input_shape": (1, 4, 4)}, InvalidNetworkError,
         r"expects 2 input channels"),
        (nn.Sequential(nn.ReLU(), nn.Linear(2, 1)), {}, UnsupportedLayerError,
         r"layer 0 \(ReLU\) comes first.*pass input_shape"),
        (nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2, track_running_stats=False), nn.Linear(2, 1)), {},
         UnsupportedLayerError, r"no running statistics"),
        (nn.Sequential(nn.Flatten(0), nn.Linear(2, 1)), {}, UnsupportedLayerError, r"start_dim=1"),
        (nn.Sequential(), {}, InvalidNetworkError, r"no layers"),
        (nn.Sequential(nn.Linear(2, 2)), {"input_shape": (2, 2)}, InvalidNetworkError,
         r"input_shape must be \(n,\) or \(C, H, W\)"),
    ],
)
def test_errors(model, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        from_torch(model, **kwargs)


def test_subclasses_of_known_layers_with_their_own_forward_are_refused():
    """A residual block built on nn.Sequential, or a Linear whose forward doubles its output, computes
    something else than its parameters say: from_torch built the plain layers' network (off by up
    to 1.0); now it refuses them. A subclass that keeps the forward is read as its base class."""

    class Residual(nn.Sequential):
        def forward(self, x):
            return x + super().forward(x)

    class Doubled(nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    class Named(nn.Linear):  # no forward of its own
        pass

    with pytest.raises(UnsupportedLayerError, match=r"Residual subclasses nn.Sequential with a forward\(\) of its own"):
        from_torch(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), Residual(nn.Linear(4, 4), nn.ReLU()), nn.Linear(4, 2)))
    with pytest.raises(UnsupportedLayerError, match=r"Doubled subclasses nn.Linear"):
        from_torch(nn.Sequential(Doubled(3, 4), nn.ReLU(), nn.Linear(4, 2)))
    torch.manual_seed(0)
    model = nn.Sequential(Named(3, 4), nn.ReLU(), nn.Linear(4, 2))
    _check_against_torch(model, from_torch(model), (3,))


def test_custom_module_and_nan_weights():
    class Custom(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(UnsupportedLayerError, match=r"layer 1 \(Custom\) is not supported"):
        from_torch(nn.Sequential(nn.Linear(2, 2), Custom()))
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight[0, 0] = float("nan")
    with pytest.raises(InvalidNetworkError, match="NaN or inf"):
        from_torch(nn.Sequential(lin))


def test_leading_relu_with_input_shape():
    model = nn.Sequential(nn.ReLU(), nn.Linear(3, 2))
    net = from_torch(model, input_shape=3)
    assert net.widths == (3, 3, 2)
    _check_against_torch(model, net, (3,))


# ---------------------------------------------------------------------- files
def test_save_load_state_dict_exact(tmp_path):
    net = Network.random((5, 6, 4, 2), seed=11)
    path = tmp_path / "net.pt"
    save_torch(net, path)
    assert load_torch(path).allclose(net)


def test_load_whole_module_and_wrapped_state_dict(tmp_path):
    torch.manual_seed(8)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(),
                          nn.Sequential(nn.Linear(8, 4), nn.Dropout()), nn.ReLU(), nn.Linear(4, 2)).eval()
    torch.save(model, tmp_path / "whole.pt")
    net = load_torch(tmp_path / "whole.pt", input_shape=(1, 5, 5))
    _check_against_torch(model, net, (1, 5, 5))

    mlp = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2))
    torch.save({"epoch": 3, "state_dict": mlp.state_dict()}, tmp_path / "ckpt.pth")
    _check_against_torch(mlp, load_torch(tmp_path / "ckpt.pth"), (4,))


def test_load_pruned_state_dict(tmp_path):
    torch.manual_seed(9)
    mlp = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    prune.random_unstructured(mlp[0], "weight", amount=0.5)
    assert "0.weight_mask" in mlp.state_dict()
    torch.save(mlp.state_dict(), tmp_path / "pruned.pt")
    net = load_torch(tmp_path / "pruned.pt")
    assert np.count_nonzero(net.weights[0]) == 12
    _check_against_torch(mlp, net, (6,))


class _Evil:
    """Pickles to a call of os.system: loading it with pickle would run a command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"0.weight": torch.zeros(2, 2), "payload": _Evil(marker)}, path)
    with pytest.raises(InvalidNetworkError, match="refused to load .*could run code"):
        load_torch(path)
    assert not marker.exists()
    # sanity check that the file really is dangerous with an unrestricted unpickler
    plain = tmp_path / "evil.pkl"
    plain.write_bytes(pickle.dumps(_Evil(marker)))
    pickle.loads(plain.read_bytes())
    assert marker.exists()


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model file"):
        load_torch(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("hello, not a checkpoint")
    with pytest.raises(InvalidNetworkError, match="not a file written by torch.save"):
        load_torch(junk)
    torch.jit.script(nn.Sequential(nn.Linear(2, 1))).save(str(tmp_path / "ts.pt"))
    with pytest.raises(UnsupportedLayerError, match="TorchScript archive"):
        load_torch(tmp_path / "ts.pt")
    conv = nn.Sequential(nn.Conv2d(1, 1, 2), nn.Flatten(), nn.Linear(9, 1))
    torch.save(conv.state_dict(), tmp_path / "conv_sd.pt")
    with pytest.raises(UnsupportedLayerError, match=r"4-D weight.*from_torch\(module\)"):
        load_torch(tmp_path / "conv_sd.pt")
    bn = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Linear(2, 1))
    torch.save(bn.state_dict(), tmp_path / "bn_sd.pt")
    with pytest.raises(UnsupportedLayerError, match=r"'1.running_mean' is not a Linear weight"):
        load_torch(tmp_path / "bn_sd.pt")
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(InvalidNetworkError, match="holds a list"):
        load_torch(tmp_path / "list.pt")
