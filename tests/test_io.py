"""load_network / save_network: dispatch by extension, npz layouts, clear errors."""

from pathlib import Path

import numpy as np
import pytest

from mipnet.core.errors import InvalidNetworkError
from mipnet.io import load_network, load_npz, save_network
from mipnet.core.network import Network

PRUNED = Path(__file__).resolve().parents[2] / "shared" / "models" / "pruned8x8"
PRUNED_NPZ = sorted(PRUNED.glob("*.npz"))


@pytest.mark.parametrize("ext", [".onnx", ".pt", ".pth", ".npz"])
def test_save_load_round_trip_exact(ext, tmp_path):
    net = Network.random((6, 5, 4, 3), seed=7)
    path = tmp_path / f"net{ext}"
    save_network(net, path)
    assert load_network(path).allclose(net)  # exact
    assert load_network(str(path)).allclose(net)


def test_square_network_round_trips_through_npz(tmp_path):
    net = Network.random((4, 4, 4), seed=1)
    save_network(net, tmp_path / "sq.npz")  # stores its layout, so no ambiguity
    assert load_network(tmp_path / "sq.npz").allclose(net)


def test_npz_layouts(tmp_path):
    net = Network.random((5, 3, 2), seed=2)
    (W0, b0), (W1, b1) = net.layers
    np.savez(tmp_path / "keras.npz", W0=W0.T, b0=b0, W1=W1.T, b1=b1)
    np.savez(tmp_path / "torch.npz", W1=W0, b1=b0, W2=W1, b2=b1)  # 1-based, (out, in)
    assert load_npz(tmp_path / "keras.npz").allclose(net)
    assert load_npz(tmp_path / "torch.npz").allclose(net)
    assert load_npz(tmp_path / "torch.npz", layout="out_in").allclose(net)
    with pytest.raises(InvalidNetworkError, match="do not chain in layout 'in_out'"):
        load_npz(tmp_path / "torch.npz", layout="in_out")
    sq = Network.random((3, 3, 3), seed=3)
    np.savez(tmp_path / "square.npz", **{f"{k}{i}": v for i, (W, b) in enumerate(sq.layers)
                                          for k, v in (("W", W), ("b", b))})
    with pytest.raises(InvalidNetworkError, match="orientation cannot be inferred.*layout='in_out'"):
        load_npz(tmp_path / "square.npz")
    assert load_npz(tmp_path / "square.npz", layout="out_in").allclose(sq)
    with pytest.raises(ValueError, match="layout must be one of"):
        load_npz(tmp_path / "square.npz", layout="rows")


@pytest.mark.skipif(not PRUNED_NPZ, reason=f"shared pruned8x8 models not found under {PRUNED}")
@pytest.mark.parametrize("path", PRUNED_NPZ, ids=lambda p: p.stem)
def test_shared_npz_equals_onnx(path):
    a = load_network(path)
    b = load_network(path.with_suffix(".onnx"))
    assert a.widths == (64, 32, 16, 10)
    assert a.allclose(b)  # same float32 numbers, read exactly
    x = np.random.default_rng(0).uniform(0, 16, size=(50, 64))
    assert np.array_equal(a.forward(x), b.forward(x))


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model file"):
        load_network(tmp_path / "missing.onnx")
    with pytest.raises(InvalidNetworkError, match=r"unknown model file extension '\.h5'.*\.onnx, \.pt, \.pth, \.npz"):
        load_network(tmp_path / "model.h5")
    with pytest.raises(InvalidNetworkError, match="unknown model file extension"):
        save_network(Network.random((2, 1)), tmp_path / "model.txt")
    with pytest.raises(TypeError, match="must be a mipnet Network"):
        save_network("net", tmp_path / "model.npz")
    np.savez(tmp_path / "data.npz", x=np.zeros(3))
    with pytest.raises(InvalidNetworkError, match="no weight arrays named W0"):
        load_network(tmp_path / "data.npz")
    np.savez(tmp_path / "gap.npz", W0=np.ones((2, 2)), b0=np.ones(2), W2=np.ones((2, 2)), b2=np.ones(2))
    with pytest.raises(InvalidNetworkError, match="without gaps"):
        load_network(tmp_path / "gap.npz")
    np.savez(tmp_path / "nob.npz", W0=np.ones((2, 3)))
    with pytest.raises(InvalidNetworkError, match="W0 has no bias b0"):
        load_network(tmp_path / "nob.npz")
    np.savez(tmp_path / "nan.npz", W0=np.full((2, 3), np.nan), b0=np.ones(3))
    with pytest.raises(InvalidNetworkError, match="NaN or inf"):
        load_network(tmp_path / "nan.npz")
    for ext, match in [(".npz", "not a readable .npz file"), (".onnx", "not an ONNX model"),
                       (".pt", "not a file written by torch.save")]:
        (tmp_path / f"text{ext}").write_text("just some text")
        with pytest.raises(InvalidNetworkError, match=match):
            load_network(tmp_path / f"text{ext}")
