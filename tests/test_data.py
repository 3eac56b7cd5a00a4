"""Datasets: the IDX reader, folder loading, digits, and their error messages."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from mipnet.nn.data import IDX_FILES, Dataset, default_search_paths, load_dataset, read_idx
from mipnet.core.errors import DatasetError, MipnetError

_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
          np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def idx_bytes(a: np.ndarray) -> bytes:
    """An independent IDX writer (struct for the header, big-endian data)."""
    a = np.asarray(a)
    header = struct.pack(">BBBB", 0, 0, _CODES[a.dtype], a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes, *, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def make_idx_folder(folder: Path, *, n_train=30, n_test=12, rows=4, cols=3, gz=True, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": rng.integers(0, 256, size=(n_train, rows, cols), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, size=n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, rows, cols), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }
    arrays["train_labels"][:10] = np.arange(10)  # every class present
    for i, (key, a) in enumerate(arrays.items()):
        g = gz if isinstance(gz, bool) else gz[i]
        write(folder / (IDX_FILES[key] + (".gz" if g else "")), idx_bytes(a), gz=g)
    return arrays


# ---------------------------------------------------------------------------- read_idx
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, dtype, gz):
    rng = np.random.default_rng(1)
    a = (rng.normal(size=(5, 3, 2)) * 50).astype(dtype)
    p = write(tmp_path / ("x.idx" + (".gz" if gz else "")), idx_bytes(a), gz=gz)
    b = read_idx(p)
    assert b.dtype == np.dtype(dtype) and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_read_idx_detects_gzip_by_content(tmp_path):
    a = np.arange(12, dtype=np.uint8)
    p = write(tmp_path / "labels-without-gz-suffix", idx_bytes(a), gz=True)
    np.testing.assert_array_equal(read_idx(p), a)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_truncated(tmp_path, gz):
    data = idx_bytes(np.zeros((4, 5, 5), np.uint8))[:-7]
    p = write(tmp_path / "t.idx", data, gz=gz)
    with pytest.raises(DatasetError, match=r"truncated: dimensions \(4, 5, 5\).*need 100 data bytes, found 93"):
        read_idx(p)


def test_read_idx_extra_bytes(tmp_path):
    p = write(tmp_path / "t.idx", idx_bytes(np.zeros(6, np.uint8)) + b"\0\0")
    with pytest.raises(DatasetError, match="longer than its header says"):
        read_idx(p)


def test_read_idx_bad_magic_type_and_header(tmp_path):
    good = idx_bytes(np.zeros((2, 2), np.uint8))
    with pytest.raises(DatasetError, match="wrong magic number"):
        read_idx(write(tmp_path / "a", b"\x01" + good[1:]))
    with pytest.raises(DatasetError, match="unknown type code 0x07"):
        read_idx(write(tmp_path / "b", good[:2] + b"\x07" + good[3:]))
    with pytest.raises(DatasetError, match="too short"):
        read_idx(write(tmp_path / "c", b"\0\0"))
    with pytest.raises(DatasetError, match="truncated inside its header"):
        read_idx(write(tmp_path / "d", good[:6]))
    with pytest.raises(DatasetError, match="declares 0 dimensions"):
        read_idx(write(tmp_path / "e", b"\0\0\x08\0"))


def test_read_idx_corrupt_gzip_and_missing(tmp_path):
    blob = gzip.compress(idx_bytes(np.zeros(1000, np.uint8)))
    with pytest.raises(DatasetError, match="truncated or corrupt gzip"):
        read_idx(write(tmp_path / "x.gz", blob[: len(blob) // 2]))
    with pytest.raises(DatasetError, match="does not exist"):
        read_idx(tmp_path / "nope")
    with pytest.raises(DatasetError, match="is a folder"):
        read_idx(tmp_path)


# ---------------------------------------------------------------------------- IDX folders
@pytest.mark.parametrize("gz", [True, False, (True, False, False, True)])
def test_load_idx_folder(tmp_path, gz):
    folder = tmp_path / "toy"
    arrays = make_idx_folder(folder, gz=gz)
    d = load_dataset(str(folder))
    assert isinstance(d, Dataset) and d.name == "toy"
    assert d.X_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.X_train.shape == (30, 12) and d.X_test.shape == (12, 12) and d.input_shape == (12,)
    assert d.input_dim == 12 and d.num_classes == 10 and d.input_range == (0.0, 1.0)
    np.testing.assert_array_equal(d.X_train, arrays["train_images"].reshape(30, -1).astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(d.y_test, arrays["test_labels"])
    assert float(d.X_train.max()) <= 1.0 and float(d.X_train.min()) >= 0.0
    # same folder through the named-dataset route with path=
    d2 = load_dataset("mnist", path=folder, flatten=False)
    assert d2.X_train.shape == (30, 4, 3) and d2.input_shape == (4, 3) and d2.name == "mnist"
    assert not d.X_train.flags.writeable


def test_load_idx_dot_names_and_limit(tmp_path):
    folder = tmp_path / "dots"
    arrays = make_idx_folder(folder, gz=False)
    for stem in IDX_FILES.values():  # rename train-images-idx3-ubyte -> train-images.idx3-ubyte
        (folder / stem).rename(folder / stem.replace("-idx", ".idx"))
    d = load_dataset(folder, limit=7, seed=3)
    assert d.n_train == 7 and d.n_test == 7
    rows = {tuple(r) for r in arrays["train_images"].reshape(30, -1).astype(np.float32) / np.float32(255)}
    assert all(tuple(r) in rows for r in d.X_train)  # a subsample of the real rows
    assert load_dataset(folder, limit=7, seed=3).X_train.tobytes() == d.X_train.tobytes()


def test_missing_folder_and_files(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("fashion-mnist", path=tmp_path / "absent")
    folder = tmp_path / "partial"
    make_idx_folder(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match=r"lacks t10k-labels-idx1-ubyte\[\.gz\].*expected the four IDX files"):
        load_dataset("mnist", path=folder)
    with pytest.raises(DatasetError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")
    with pytest.raises(DatasetError, match="not a folder"):
        load_dataset("mnist", path=folder / "train-images-idx3-ubyte.gz")


def test_inconsistent_files(tmp_path):
    folder = tmp_path / "bad"
    make_idx_folder(folder, gz=False)
    write(folder / "train-labels-idx1-ubyte", idx_bytes(np.zeros(29, np.uint8)))
    with pytest.raises(DatasetError, match="30 train images but 29 train labels"):
        load_dataset(folder)
    make_idx_folder(folder, gz=False)
    write(folder / "t10k-images-idx3-ubyte", idx_bytes(np.zeros((12, 5, 3), np.uint8)))
    with pytest.raises(DatasetError, match="train images of shape"):
        load_dataset(folder)
    make_idx_folder(folder, gz=False)
    write(folder / "train-labels-idx1-ubyte", idx_bytes(np.zeros((30, 2), np.uint8)))
    with pytest.raises(DatasetError, match="labels have shape"):
        load_dataset(folder)


def test_not_found_message_lists_search_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("MIPNET_DATA", str(tmp_path))
    candidates = default_search_paths("mnist")
    assert candidates[0] == tmp_path / "mnist"
    if any(p.is_dir() for p in candidates):
        pytest.skip("an MNIST folder is installed here")
    with pytest.raises(DatasetError, match=r"mnist not found: looked in .*path=.*does not download"):
        load_dataset("mnist")


def test_env_var_folder_is_found(tmp_path, monkeypatch):
    make_idx_folder(tmp_path / "mnist", gz=True)
    monkeypatch.setenv("MIPNET_DATA", str(tmp_path))
    d = load_dataset("mnist")
    assert d.n_train == 30 and Path(d.source) == tmp_path / "mnist"


# ---------------------------------------------------------------------------- digits
def test_digits():
    d = load_dataset("digits")
    assert d.X_train.shape == (1437, 64) and d.X_test.shape == (360, 64)
    assert d.input_range == (0.0, 16.0) and d.num_classes == 10 and d.name == "digits"
    assert float(d.X_train.min()) == 0.0 and float(d.X_train.max()) == 16.0
    np.testing.assert_array_equal(d.X_train, np.round(d.X_train))  # raw integer pixels
    # stratified: each class's share of the test set within one sample of 20%
    from sklearn.datasets import load_digits

    total = np.bincount(load_digits().target)
    assert np.all(np.abs(np.bincount(d.y_test, minlength=10) - 0.2 * total) <= 1)
    d2 = load_dataset("digits")
    assert d2.X_test.tobytes() == d.X_test.tobytes()
    img = load_dataset("digits", flatten=False, limit=50)
    assert img.X_train.shape == (50, 8, 8) and img.n_test == 50 and img.input_dim == 64
    assert "digits" in str(d) and d.to_dict()["n_train"] == 1437


def test_validation_errors():
    with pytest.raises(DatasetError, match="test_fraction must lie strictly between 0 and 1"):
        load_dataset("digits", test_fraction=1.0)
    with pytest.raises(DatasetError, match="limit must be a positive integer"):
        load_dataset("digits", limit=0)
    with pytest.raises(DatasetError, match="do not give path"):
        load_dataset("digits", path="/tmp")
    with pytest.raises(MipnetError, match="split must be 'train' or 'test'"):
        load_dataset("digits", limit=5).split("validation")
    with pytest.raises(ValueError):  # DatasetError is also a ValueError
        load_dataset("digits", limit=-3)
    for kw, msg in ((dict(limit="10"), "limit must be a positive integer"),
                    (dict(limit=[]), "limit must be a positive integer"),
                    (dict(seed="abc"), "seed must be an integer >= 0"),
                    (dict(seed=None), "seed must be an integer >= 0"),
                    (dict(test_fraction="half"), "test_fraction must lie strictly between 0 and 1")):
        with pytest.raises(DatasetError, match=msg):
            load_dataset("digits", **kw)


_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not _FASHION.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_installed():
    d = load_dataset("fashion-mnist", limit=200)
    assert d.input_shape == (784,) and d.num_classes == 10 and d.n_train == 200 and d.n_test == 200
    assert d.input_range == (0.0, 1.0) and 0.0 <= float(d.X_train.min()) and float(d.X_train.max()) <= 1.0
    assert Path(d.source) == _FASHION


def test_fuzzed_idx_files_give_dataset_errors(tmp_path):
    """Found by fuzzing: a corrupt deflate stream escaped as zlib.error; empty splits, header
    dimensions whose product overflows int64, NaN pixels, a test split of another type than the
    training split (scaled differently) and MNIST labels above 9 loaded, or failed later."""
    folder = tmp_path / "d"

    def fresh():
        make_idx_folder(folder, gz=False)

    make_idx_folder(folder, gz=True)
    p = folder / (IDX_FILES["train_images"] + ".gz")
    b = bytearray(p.read_bytes())
    for i in range(12, len(b) - 8):
        b[i] ^= 0x55  # the deflate stream, not the gzip header or trailer
    p.write_bytes(bytes(b))
    with pytest.raises(DatasetError, match="corrupt gzip"):
        load_dataset(folder)
    for f in folder.iterdir():
        f.unlink()
    cases = [
        ("test_images", idx_bytes(np.zeros((0, 4, 3), np.uint8)), "test files hold no images"),
        ("train_images", struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">3I", 2**21, 2**21, 2**22), "truncated"),
        ("train_images", idx_bytes(np.full((30, 4, 3), np.nan, np.float32)), "NaN or infinite"),
        ("test_images", idx_bytes(np.full((12, 4, 3), -3, np.int8)), "one IDX type code for both"),
    ]
    for key, data, match in cases:
        fresh()
        if key == "test_images" and "no images" in match:
            write(folder / IDX_FILES["test_labels"], idx_bytes(np.zeros(0, np.uint8)))
        write(folder / IDX_FILES[key], data)
        with pytest.raises(DatasetError, match=match):
            load_dataset(folder)
    fresh()
    labels = np.zeros(30, np.uint8)
    labels[3] = 255
    write(folder / IDX_FILES["train_labels"], idx_bytes(labels))
    assert load_dataset(folder).num_classes == 256  # a folder of one's own: the labels say how many classes
    for name in ("mnist", "fashion-mnist"):
        with pytest.raises(DatasetError, match="label 255 is out of range"):
            load_dataset(name, path=folder)
