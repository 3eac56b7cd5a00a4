"""Datasets for training and pruning: digits (bundled), Fashion-MNIST and MNIST (IDX files).

Nothing is downloaded. ``digits`` comes with scikit-learn; Fashion-MNIST and
MNIST are read from the standard IDX files in a folder (the Debian package
``dataset-fashion-mnist`` installs them under ``/usr/share/datasets/fashion-mnist``).

Input scales are kept natural so that a trained network can be analysed on the
box its data lives in: digits pixels stay in 0..16 (like the shared ONNX
models), IDX images are divided by 255 into [0, 1]. :attr:`Dataset.input_range`
records that box.
"""

from __future__ import annotations

import gzip
import logging
import math
import os
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mipnet.core.errors import DatasetError

__all__ = ["Dataset", "load_dataset", "read_idx", "DATASET_NAMES", "IDX_FILES", "default_search_paths"]

log = logging.getLogger(__name__)

DATASET_NAMES = ("digits", "fashion-mnist", "mnist")

#: The four files of an IDX dataset (each may also end in ``.gz``, and ``-idx`` may be ``.idx``).
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# IDX type codes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"), all big-endian.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A classification dataset split into train and test parts.

    Attributes
    ----------
    X_train, X_test : float32 arrays, shape (N, *input_shape)
    y_train, y_test : int64 arrays, shape (N,), labels in ``0 .. num_classes - 1``
    input_shape : tuple of int
        Shape of one input (``(64,)`` for flattened digits, ``(28, 28)`` unflattened MNIST).
    num_classes : int
    name : str
    input_range : (float, float)
        The natural box of every input coordinate: ``(0, 16)`` for digits,
        ``(0, 1)`` for the IDX datasets after scaling by 1/255.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    input_shape: tuple
    num_classes: int
    name: str
    input_range: tuple = (0.0, 1.0)
    source: str = field(default="")

    def __post_init__(self) -> None:
        for part in ("X_train", "X_test"):
            a = np.ascontiguousarray(getattr(self, part), dtype=np.float32)
            a.setflags(write=False)
            object.__setattr__(self, part, a)
        for part in ("y_train", "y_test"):
            a = np.ascontiguousarray(getattr(self, part), dtype=np.int64)
            a.setflags(write=False)
            object.__setattr__(self, part, a)
        if self.X_train.shape[0] != self.y_train.shape[0] or self.X_test.shape[0] != self.y_test.shape[0]:
            raise DatasetError(
                f"dataset {self.name!r}: {self.X_train.shape[0]} training inputs but {self.y_train.shape[0]} "
                f"labels, {self.X_test.shape[0]} test inputs but {self.y_test.shape[0]} labels"
            )
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        object.__setattr__(self, "input_range", (float(self.input_range[0]), float(self.input_range[1])))

    @property
    def input_dim(self) -> int:
        """Number of input coordinates (product of :attr:`input_shape`)."""
        return int(np.prod(self.input_shape))

    @property
    def n_train(self) -> int:
        return int(self.X_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.X_test.shape[0])

    def split(self, which: str = "test") -> tuple[np.ndarray, np.ndarray]:
        """``(X, y)`` of the ``"train"`` or ``"test"`` part."""
        if which == "train":
            return self.X_train, self.y_train
        if which == "test":
            return self.X_test, self.y_test
        raise DatasetError(f"split must be 'train' or 'test', got {which!r}")

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "input_range": list(self.input_range),
            "source": self.source,
        }

    def __repr__(self) -> str:
        return (f"Dataset({self.name!r}, train={self.n_train}, test={self.n_test}, "
                f"input_shape={self.input_shape}, classes={self.num_classes})")

    __str__ = __repr__


# ---------------------------------------------------------------------------- IDX
def _open_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DatasetError(f"IDX file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise DatasetError(f"{str(path)!r} is a folder, expected an IDX file") from None
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file name says
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"IDX file {str(path)!r} is a truncated or corrupt gzip file ({exc})") from None
    return raw


def read_idx(path) -> np.ndarray:
    """Read one IDX file (plain or gzip-compressed) into a numpy array.

    The format: two zero bytes, a type code (0x08 ubyte, 0x09 byte, 0x0B short,
    0x0C int, 0x0D float, 0x0E double), the number of dimensions, then one
    big-endian uint32 per dimension, then the data in C order, big-endian.

    Parameters
    ----------
    path : str or Path
        The file; gzip compression is detected from its content, not its name.

    Returns
    -------
    numpy.ndarray
        In native byte order, with the type the file declares.

    Raises
    ------
    DatasetError
        Missing file, wrong magic number, unknown type code, or a data size that
        does not match the declared dimensions (truncated or padded file).
    """
    path = Path(path)
    raw = _open_bytes(path)
    if len(raw) < 4:
        raise DatasetError(f"IDX file {str(path)!r} is too short ({len(raw)} bytes) to hold the 4-byte magic number")
    if raw[0] != 0 or raw[1] != 0:
        raise DatasetError(
            f"IDX file {str(path)!r} has a wrong magic number {raw[:4].hex()}: "
            "an IDX file starts with two zero bytes, a type code and the number of dimensions"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise DatasetError(
            f"IDX file {str(path)!r} has unknown type code 0x{code:02x}; "
            f"expected one of {', '.join(f'0x{c:02x}' for c in _IDX_DTYPES)}"
        )
    if ndim == 0:
        raise DatasetError(f"IDX file {str(path)!r} declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"IDX file {str(path)!r} is truncated inside its header ({len(raw)} < {header} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize  # Python integers: no overflow
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "longer than its header says"
        raise DatasetError(
            f"IDX file {str(path)!r} is {what}: dimensions {dims} of {dtype.itemsize}-byte values "
            f"need {expected} data bytes, found {got}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _find_idx_file(folder: Path, stem: str) -> Path | None:
    alt = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", alt, alt + ".gz"):
        p = folder / name
        if p.is_file():
            return p
    return None


def default_search_paths(name: str) -> list[Path]:
    """Folders searched for an IDX dataset when no path is given, in order.

    ``$MIPNET_DATA/<name>``, ``<prefix>/share/datasets/<name>`` for the Python
    prefix, ``/usr/local`` and ``/usr`` (where Debian's ``dataset-fashion-mnist``
    puts Fashion-MNIST), then ``~/.local/share/datasets/<name>``.
    """
    out = []
    env = os.environ.get("MIPNET_DATA")
    if env:
        out.append(Path(env) / name)
    for prefix in (sys.prefix, "/usr/local", "/usr"):
        out.append(Path(prefix) / "share" / "datasets" / name)
    out.append(Path.home() / ".local" / "share" / "datasets" / name)
    seen, uniq = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            uniq.append(p)
    return uniq


def _load_idx_folder(folder: Path) -> dict[str, np.ndarray]:
    if not folder.exists():
        raise DatasetError(f"dataset folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise DatasetError(f"dataset path {str(folder)!r} is not a folder; give the folder holding the IDX files")
    found, missing = {}, []
    for key, stem in IDX_FILES.items():
        p = _find_idx_file(folder, stem)
        if p is None:
            missing.append(stem + "[.gz]")
        else:
            found[key] = p
    if missing:
        raise DatasetError(
            f"dataset folder {str(folder)!r} lacks {', '.join(missing)}; expected the four IDX files "
            f"{', '.join(s + '[.gz]' for s in IDX_FILES.values())}"
        )
    return {key: read_idx(p) for key, p in found.items()}


def _check_idx_arrays(arrays: dict, folder: Path, classes=None) -> None:
    for part in ("train", "test"):
        X, y = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if X.ndim < 2:
            raise DatasetError(f"{folder}: {part} images have shape {X.shape}; expected (N, rows, cols)")
        if y.ndim != 1:
            raise DatasetError(f"{folder}: {part} labels have shape {y.shape}; expected (N,)")
        if X.shape[0] != y.shape[0]:
            raise DatasetError(f"{folder}: {X.shape[0]} {part} images but {y.shape[0]} {part} labels")
        if X.shape[0] == 0:
            raise DatasetError(f"{folder}: the {part} files hold no images")
        if np.issubdtype(X.dtype, np.floating) and not np.all(np.isfinite(X)):
            raise DatasetError(f"{folder}: the {part} images hold NaN or infinite values")
        if y.size and (y.min() < 0 or not np.issubdtype(y.dtype, np.integer)):
            raise DatasetError(f"{folder}: {part} labels must be non-negative integers")
        if classes is not None and y.size and y.max() >= classes:
            raise DatasetError(f"{folder}: {part} label {int(y.max())} is out of range: this dataset has classes "
                               f"0..{classes - 1}")
    if arrays["train_images"].dtype != arrays["test_images"].dtype:
        raise DatasetError(f"{folder}: train images of type {arrays['train_images'].dtype} but test images of type "
                           f"{arrays['test_images'].dtype} (one IDX type code for both)")
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise DatasetError(
            f"{folder}: train images of shape {arrays['train_images'].shape[1:]} but test images of shape "
            f"{arrays['test_images'].shape[1:]}"
        )


def _subsample(X, y, limit, rng):
    if limit is None or limit >= X.shape[0]:
        return X, y
    idx = np.sort(rng.choice(X.shape[0], size=limit, replace=False))
    return X[idx], y[idx]


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _validate(name, path, test_fraction, seed, limit):
    if not isinstance(name, (str, os.PathLike)):
        raise DatasetError(f"name must be a dataset name {DATASET_NAMES} or a folder, got {type(name).__name__}")
    if not (isinstance(test_fraction, (int, float, np.integer, np.floating)) and 0.0 < float(test_fraction) < 1.0):
        raise DatasetError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")
    if limit is not None and (not _is_int(limit) or limit < 1):
        raise DatasetError(f"limit must be a positive integer (samples per split) or None, got {limit!r}")
    if not _is_int(seed) or seed < 0:
        raise DatasetError(f"seed must be an integer >= 0, got {seed!r}")


def load_dataset(
    name: str = "digits",
    *,
    path=None,
    test_fraction: float = 0.2,
    seed: int = 0,
    flatten: bool = True,
    limit: int | None = None,
) -> Dataset:
    """Load a classification dataset; never downloads.

    Parameters
    ----------
    name : {"digits", "fashion-mnist", "mnist"} or path
        ``"digits"``: scikit-learn's 8x8 digits (1797 images, pixels 0..16, kept
        on that scale). ``"fashion-mnist"``/``"mnist"``: the standard IDX files
        (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
        ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``), pixels
        scaled by 1/255 into [0, 1]. Any other string is taken as a folder
        holding those four files.
    path : str or Path, optional
        Folder of the IDX files. Default: the folders of :func:`default_search_paths`.
    test_fraction : float
        Digits only: fraction of the stratified test split (fixed by ``seed``).
    seed : int
        Seeds the digits split and the subsampling by ``limit``.
    flatten : bool
        Flatten images into vectors (what an MLP reads).
    limit : int, optional
        Keep at most ``limit`` random samples in each of the train and test parts.

    Raises
    ------
    DatasetError
        Unknown name, missing folder or files (the message lists what was
        expected and where it looked), malformed IDX files.
    """
    _validate(name, path, test_fraction, seed, limit)
    rng = np.random.default_rng(seed)
    key = str(name).lower()
    if key == "digits":
        if path is not None:
            raise DatasetError("digits is bundled with scikit-learn; do not give path= for it")
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        d = load_digits()
        X = d.images.astype(np.float32) if not flatten else d.data.astype(np.float32)
        y = d.target.astype(np.int64)
        X_tr, X_te, y_tr, y_te = train_test_split(
            X, y, test_size=test_fraction, random_state=int(seed), stratify=y
        )
        X_tr, y_tr = _subsample(X_tr, y_tr, limit, rng)
        X_te, y_te = _subsample(X_te, y_te, limit, rng)
        return Dataset(X_tr, y_tr, X_te, y_te, input_shape=X.shape[1:], num_classes=10,
                       name="digits", input_range=(0.0, 16.0), source="sklearn.datasets.load_digits")

    if key in ("fashion-mnist", "mnist"):
        label = key
        if path is not None:
            folder = Path(path)
        else:
            candidates = default_search_paths(key)
            folder = next((p for p in candidates if p.is_dir()), None)
            if folder is None:
                hint = (" (on Debian: apt install dataset-fashion-mnist)" if key == "fashion-mnist" else "")
                raise DatasetError(
                    f"{key} not found: looked in {', '.join(str(p) for p in candidates)}; give the folder holding "
                    f"{', '.join(s + '[.gz]' for s in IDX_FILES.values())} with path= (CLI: --data-path){hint}; "
                    "mipnet does not download datasets"
                )
    else:
        folder = Path(name)
        if path is not None:
            raise DatasetError(f"name {str(name)!r} is a folder already; do not also give path={path!r}")
        if not folder.exists():
            raise DatasetError(
                f"unknown dataset {str(name)!r}: not one of {', '.join(DATASET_NAMES)} and not an existing folder "
                "of IDX files"
            )
        label = folder.name or str(folder)

    arrays = _load_idx_folder(folder)
    _check_idx_arrays(arrays, folder, classes=10 if name in ("mnist", "fashion-mnist") else None)
    X_tr, y_tr = arrays["train_images"], arrays["train_labels"].astype(np.int64)
    X_te, y_te = arrays["test_images"], arrays["test_labels"].astype(np.int64)
    X_tr, y_tr = _subsample(X_tr, y_tr, limit, rng)
    X_te, y_te = _subsample(X_te, y_te, limit, rng)
    if np.issubdtype(X_tr.dtype, np.unsignedinteger) and X_tr.dtype.itemsize == 1:
        divisor, rng_box = 255.0, (0.0, 1.0)
    else:  # other IDX types are kept as they are; the box is the observed range
        divisor = 1.0
        rng_box = (float(min(X_tr.min(), X_te.min())), float(max(X_tr.max(), X_te.max())))
    shape = X_tr.shape[1:]
    X_tr = X_tr.astype(np.float32) / np.float32(divisor)  # correctly rounded pixel / 255
    X_te = X_te.astype(np.float32) / np.float32(divisor)
    if flatten:
        X_tr = X_tr.reshape(X_tr.shape[0], -1)
        X_te = X_te.reshape(X_te.shape[0], -1)
        shape = (int(np.prod(shape)),)
    num_classes = int(max(arrays["train_labels"].max(initial=0), arrays["test_labels"].max(initial=0))) + 1
    log.info("loaded %s from %s: %d train, %d test", label, folder, X_tr.shape[0], X_te.shape[0])
    return Dataset(X_tr, y_tr, X_te, y_te, input_shape=shape, num_classes=num_classes,
                   name=label, input_range=rng_box, source=str(folder))
