"""Load and save networks by file extension.

========================  ==================================================
extension                 format
========================  ==================================================
``.onnx``                 ONNX graph (:mod:`mipnet.onnx_io`)
``.pt``, ``.pth``         ``torch.save`` of an ``nn.Sequential`` or of a
                          state_dict (:mod:`mipnet.torch_io`)
``.npz``                  numpy arrays ``W0, b0, W1, b1, ...`` (see
                          :func:`load_npz`)
========================  ==================================================

torch and onnx are imported only when a file of that kind is read or written.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import zipfile
from typing import Iterator, Sequence

import numpy as np

from mipnet.core.errors import InvalidNetworkError
from mipnet.core.network import Network

__all__ = ["load_network", "save_network", "load_npz", "save_npz", "atomic_write", "SUPPORTED_EXTENSIONS"]

SUPPORTED_EXTENSIONS = (".onnx", ".pt", ".pth", ".npz")
_LAYOUTS = ("auto", "in_out", "out_in")


# ---------------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[str]:
    """Write ``path`` atomically: yield a temporary path next to it, then ``os.replace``.

    The temporary file lives in the destination's directory (so the final rename never
    crosses file systems) and ends with the destination's extension (writers such as
    ``np.savez`` and ``savefig`` choose their format from it). If the body raises (also on
    Ctrl-C), the temporary file is removed and ``path`` is left as it was: an existing file
    is never half-overwritten. A symbolic link at ``path`` is followed, so the link stays
    and its target gets the new content.

    >>> with atomic_write("net.npz") as tmp:      # doctest: +SKIP
    ...     np.savez(tmp, W0=W0, b0=b0)
    """
    dest = os.path.realpath(os.fspath(path))
    folder, name = os.path.split(dest)
    ext = os.path.splitext(name)[1]
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp{ext}")
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


# ---------------------------------------------------------------------- npz
def _npz_arrays(files: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    idx = sorted(int(m.group(1)) for k in files if (m := re.fullmatch(r"W(\d+)", k)))
    if not idx:
        raise InvalidNetworkError(
            f"no weight arrays named W0, W1, ... (found {sorted(files)}); an .npz network "
            "holds W0, b0, W1, b1, ..."
        )
    if idx != list(range(idx[0], idx[0] + len(idx))) or idx[0] not in (0, 1):
        raise InvalidNetworkError(f"weight arrays must be numbered W0, W1, ... without gaps; found {idx}")
    pairs = []
    for i in idx:
        if f"b{i}" not in files:
            raise InvalidNetworkError(f"W{i} has no bias b{i}")
        W, b = np.asarray(files[f"W{i}"]), np.asarray(files[f"b{i}"]).reshape(-1)
        if W.ndim != 2:
            raise InvalidNetworkError(f"W{i} must be 2-D, got shape {W.shape}")
        pairs.append((W, b))
    return pairs


def _fits(pairs, layout: str) -> bool:
    prev = None
    for W, b in pairs:
        n_in, n_out = W.shape if layout == "in_out" else W.shape[::-1]
        if n_out != b.size or (prev is not None and n_in != prev):
            return False
        prev = n_out
    return True


def load_npz(path: str | os.PathLike, *, layout: str = "auto") -> Network:
    """Load arrays ``W0, b0, W1, b1, ...`` (``W1, b1, ...`` also accepted).

    Parameters
    ----------
    layout : {"auto", "in_out", "out_in"}
        ``"in_out"``: W has shape (in, out) and a layer is ``x @ W + b`` (Keras,
        as in ``shared/models/pruned8x8``); ``"out_in"``: PyTorch's (out, in).
        ``"auto"`` uses a stored ``layout`` entry if there is one (as written
        by :func:`save_npz`), else the only layout under which the bias sizes
        and the layer sizes chain. Square-only networks fit both and raise:
        pass ``layout`` then.
    """
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {_LAYOUTS}, got {layout!r}")
    path = os.fspath(path)
    with open(path, "rb") as fh:  # OSError (missing, unreadable) propagates as it is
        head = fh.read(6)
    if not head:
        raise InvalidNetworkError(f"{path!r} is not a readable .npz file: it is empty (0 bytes)")
    if head.startswith(b"\x93NUMPY"):
        raise InvalidNetworkError(f"{path!r} is not a readable .npz file: it holds a single .npy array, "
                                  "not an archive of W0, b0, W1, b1, ...")
    if not head.startswith(b"PK"):
        raise InvalidNetworkError(f"{path!r} is not a readable .npz file: no zip header (an .npz network "
                                  "holds W0, b0, W1, b1, ... as written by numpy.savez)")
    try:
        with np.load(path, allow_pickle=False) as f:
            files = {k: f[k] for k in f.files}
    except (ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InvalidNetworkError(f"{path!r} is not a readable .npz file ({exc})") from None
    pairs = _npz_arrays(files)
    if layout == "auto" and "layout" in files:
        layout = str(files["layout"])
        if layout not in _LAYOUTS[1:]:
            raise InvalidNetworkError(f"stored layout {layout!r} is not 'in_out' or 'out_in'")
    if layout == "auto":
        fits = [lay for lay in _LAYOUTS[1:] if _fits(pairs, lay)]
        if len(fits) == 2:
            raise InvalidNetworkError(
                "every weight matrix is square, so the orientation cannot be inferred; "
                "call load_npz(path, layout='in_out') (Keras, x @ W + b) or layout='out_in' (PyTorch)"
            )
        layout = fits[0] if fits else "in_out"
    if not _fits(pairs, layout):
        shapes = [(W.shape, b.shape) for W, b in pairs]
        raise InvalidNetworkError(f"weight and bias shapes {shapes} do not chain in layout {layout!r}")
    return Network.from_layers((W.T if layout == "in_out" else W, b) for W, b in pairs)


def _write_npz(net: Network, path: str) -> None:
    arrays = {}
    for i, (W, b) in enumerate(net.layers):
        arrays[f"W{i}"], arrays[f"b{i}"] = W.T, b
    np.savez(path, layout=np.array("in_out"), **arrays)


def save_npz(net: Network, path: str | os.PathLike) -> None:
    """Save ``W0, b0, ...`` in (in, out) layout with a ``layout`` entry (float64, exact).

    The file is written atomically (see :func:`atomic_write`). ``path`` should end in
    ``.npz`` (numpy appends it otherwise).
    """
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    with atomic_write(path) as tmp:
        _write_npz(net, tmp)


# ---------------------------------------------------------------------- dispatch
def _extension(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise InvalidNetworkError(
            f"unknown model file extension {ext or '(none)'!r} in {path!r}; "
            f"supported: {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    return ext


def load_network(path: str | os.PathLike, *, input_shape: Sequence[int] | int | None = None) -> Network:
    """Load a network from ``.onnx``, ``.pt``/``.pth`` or ``.npz``, chosen by extension.

    ``input_shape`` (C, H, W) is needed for torch models that start with a
    convolution. See :func:`mipnet.onnx_io.load_onnx`,
    :func:`mipnet.torch_io.load_torch` and :func:`load_npz` for the formats.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    InvalidNetworkError
        Unknown extension, or a file that does not hold a network.
    UnsupportedLayerError
        A model with layers mipnet cannot convert.
    """
    path = os.fspath(path)
    ext = _extension(path)
    if os.path.isdir(path):
        raise InvalidNetworkError(f"{path!r} is a directory, not a model file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such model file: {path!r}")
    if os.path.getsize(path) == 0:
        raise InvalidNetworkError(f"{path!r} is empty (0 bytes): not a readable {ext} model file")
    if ext == ".onnx":
        from mipnet.io.onnx import load_onnx

        return load_onnx(path)
    if ext in (".pt", ".pth"):
        from mipnet.io.torch import load_torch

        return load_torch(path, input_shape=input_shape)
    return load_npz(path)


def save_network(net: Network, path: str | os.PathLike) -> None:
    """Save ``net`` as ``.onnx`` (float64), ``.pt``/``.pth`` (state_dict) or ``.npz``.

    Every format reads back exactly with :func:`load_network`. The file is written
    atomically (to a temporary file in the same directory, then renamed; see
    :func:`atomic_write`), so an interrupted or failed save never leaves a truncated
    model behind, and an existing file at ``path`` is either replaced whole or untouched.
    """
    path = os.fspath(path)
    ext = _extension(path)
    if not isinstance(net, Network):
        raise TypeError(f"net must be a mipnet Network, got {type(net).__name__}")
    with atomic_write(path) as tmp:
        if ext == ".onnx":
            from mipnet.io.onnx import save_onnx

            save_onnx(net, tmp)
        elif ext in (".pt", ".pth"):
            from mipnet.io.torch import save_torch

            save_torch(net, tmp)
        else:
            _write_npz(net, tmp)
