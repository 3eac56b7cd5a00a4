"""``mipnet info`` through mipnet.cli.main."""

import json

import torch
from torch import nn

from mipnet.cli import main
from mipnet.io import save_network
from mipnet.core.network import Network


def _pruned_net():
    net = Network.random((4, 3, 2), seed=0)
    (W0, b0), (W1, b1) = net.layers
    W0 = W0.copy()
    W0[0, :2] = 0.0  # 10 of 12 non-zero
    return Network.from_layers([(W0, b0), (W1, b1)])


def test_info_text(tmp_path, capsys):
    save_network(_pruned_net(), tmp_path / "n.onnx")
    assert main(["info", str(tmp_path / "n.onnx")]) == 0
    out = capsys.readouterr().out
    assert "4-3-2" in out and "1 hidden layers, 3 hidden ReLUs" in out
    assert "83.33%" in out  # layer 1 density 10/12
    assert "total: 23 parameters, 16 non-zero weights" in out


def test_info_json(tmp_path, capsys):
    save_network(_pruned_net(), tmp_path / "n.npz")
    assert main(["info", str(tmp_path / "n.npz"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["widths"] == [4, 3, 2] and d["parameters"] == 23 and d["nonzero_weights"] == 16
    assert [r["nonzero_weights"] for r in d["layers"]] == [10, 6]
    assert [r["activation"] for r in d["layers"]] == ["relu", "none"]
    assert abs(d["layers"][0]["density"] - 10 / 12) < 1e-12


def test_info_conv_model_needs_input_shape(tmp_path, capsys):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
    torch.save(model, tmp_path / "conv.pt")
    assert main(["info", str(tmp_path / "conv.pt")]) == 3
    assert "pass input_shape" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "conv.pt"), "--input-shape", "1", "4", "4", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["widths"] == [16, 8, 2]
    assert d["layers"][0]["nonzero_weights"] == 8 * 9  # each output pixel sees 3x3 inputs


def test_info_missing_file(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope.onnx")]) == 3
    assert "no such model file" in capsys.readouterr().err
