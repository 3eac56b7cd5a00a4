"""Convert between PyTorch modules and :class:`mipnet.network.Network`.

Import (:func:`from_torch`, :func:`load_torch`) walks an ``nn.Sequential``
and composes every run of affine layers between two ReLUs into one exact
affine map ``(W, b)``:

* ``Linear`` is ``x -> W x + b``;
* ``BatchNorm1d`` / ``BatchNorm2d`` (running statistics, as in eval mode) are
  the diagonal map ``x -> s * x + (beta - s * mean)`` with
  ``s = gamma / sqrt(var + eps)``, folded into the neighbouring affine map;
* ``Conv2d``, ``AvgPool2d`` and ``AdaptiveAvgPool2d`` act linearly on the
  C-order flattened ``(C, H, W)`` image; their dense matrix is read off by
  pushing the identity basis through the layer in float64 in one batched call
  (the columns of a linear map are its images of the basis vectors). For a
  convolution every entry of the result is a single weight times one, so the
  matrix is exact;
* ``Flatten``, ``Dropout`` and ``Identity`` do not change the values.

This is the usual way to feed convolutional networks to MILP encodings, e.g.
Tjeng, Xiao and Tedrake, "Evaluating Robustness of Neural Networks with Mixed
Integer Programming", ICLR 2019 (arXiv:1711.07356).

Loading files always uses ``torch.load(..., weights_only=True)``; whole
pickled modules are accepted only for the layer classes listed in
:data:`SUPPORTED_LAYERS`, so a file cannot run code on load.
"""

from __future__ import annotations

import os
import zipfile
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mipnet.core.errors import InvalidNetworkError, UnsupportedLayerError
from mipnet.io.chain import AffineChain
from mipnet.core.network import Network

__all__ = [
    "SUPPORTED_LAYERS",
    "from_torch",
    "to_torch",
    "torch_forward",
    "torch_activation_pattern",
    "load_torch",
    "save_torch",
]

#: Layer classes :func:`from_torch` converts (and :func:`load_torch` unpickles).
SUPPORTED_LAYERS: tuple[type, ...] = (
    nn.Sequential, nn.Linear, nn.ReLU, nn.Flatten, nn.Identity,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.Conv2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
)
_SUPPORTED_NAMES = ", ".join(c.__name__ for c in SUPPORTED_LAYERS)
_PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d)
_F64 = torch.float64


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(device="cpu", dtype=_F64).numpy()


#: the torch classes whose forward() the conversion reproduces
_KNOWN = (nn.Sequential, nn.Linear, nn.ReLU, nn.Flatten, nn.BatchNorm1d, nn.BatchNorm2d, nn.Conv2d, nn.AvgPool2d,
          nn.AdaptiveAvgPool2d) + _PASS_THROUGH


def _check_forward(module: nn.Module, where: str) -> None:
    """A subclass of a known layer that overrides ``forward`` (a residual block built on
    nn.Sequential, a scaled Linear) computes something else than its parameters say: refused."""
    for base in _KNOWN:
        if isinstance(module, base):
            if type(module).forward is not base.forward:
                raise UnsupportedLayerError(
                    f"layer {where or '0'}: {type(module).__name__} subclasses nn.{base.__name__} with a forward() of "
                    f"its own, which mipnet cannot read; write the model with plain layers"
                )
            return


def _flatten(module: nn.Module, prefix: str = ""):
    """Yield ``(name, layer)`` for the leaves of nested Sequentials."""
    _check_forward(module, prefix.rstrip("."))
    if isinstance(module, nn.Sequential):
        for name, child in module.named_children():
            yield from _flatten(child, f"{prefix}{name}.")
    else:
        yield prefix.rstrip(".") or "0", module


class _Builder(AffineChain):
    """The affine chain plus the per-sample shape of the current value.

    ``shape`` is ``(n,)`` or ``(C, H, W)``; ``None`` until a layer fixes it.
    """

    def __init__(self, input_shape):
        super().__init__()
        self.shape = input_shape

    @property
    def dim(self) -> int:
        return int(np.prod(self.shape))

    def affine_to(self, W: np.ndarray, b: np.ndarray, out_shape) -> None:
        self.affine(W, b)
        self.shape = tuple(out_shape)


def _check_shape(b: _Builder, where: str, layer: nn.Module, *, ndim: int) -> None:
    name = type(layer).__name__
    if b.shape is None:
        raise InvalidNetworkError(
            f"layer {where} ({name}) needs the input shape; pass input_shape=(C, H, W)"
        )
    if len(b.shape) != ndim:
        hint = "insert nn.Flatten() before it" if ndim == 1 else "it needs a (C, H, W) input"
        raise InvalidNetworkError(
            f"layer {where} ({name}) receives per-sample shape {b.shape}; {hint}"
        )


def _linear_image_matrix(fn, shape) -> tuple[np.ndarray, tuple]:
    """Dense matrix of the linear map ``fn`` on C-order flattened ``shape`` inputs."""
    n = int(np.prod(shape))
    basis = torch.eye(n, dtype=_F64).reshape(n, *shape)
    with torch.no_grad():
        out = fn(basis)
    return _np(out.reshape(n, -1)).T.copy(), tuple(out.shape[1:])


def _conv2d(b: _Builder, where: str, conv: nn.Conv2d) -> None:
    _check_shape(b, where, conv, ndim=3)
    if b.shape[0] != conv.in_channels:
        raise InvalidNetworkError(
            f"layer {where} (Conv2d) expects {conv.in_channels} input channels, "
            f"receives shape {b.shape}"
        )
    w = conv.weight.detach().to(device="cpu", dtype=_F64)
    pad, zeros = conv.padding, conv.padding_mode == "zeros"
    if not zeros and isinstance(pad, str):
        raise UnsupportedLayerError(
            f"layer {where} (Conv2d): padding={pad!r} with padding_mode={conv.padding_mode!r} "
            "is not supported; give the padding as integers"
        )

    def fn(x):
        if zeros:
            return F.conv2d(x, w, None, conv.stride, pad, conv.dilation, conv.groups)
        x = F.pad(x, (pad[1], pad[1], pad[0], pad[0]), mode=conv.padding_mode)
        return F.conv2d(x, w, None, conv.stride, 0, conv.dilation, conv.groups)

    W, out_shape = _linear_image_matrix(fn, b.shape)
    bias = np.zeros(out_shape[0]) if conv.bias is None else _np(conv.bias)
    b.affine_to(W, np.repeat(bias, out_shape[1] * out_shape[2]), out_shape)


def _batchnorm(b: _Builder, where: str, bn: nn.modules.batchnorm._BatchNorm) -> None:
    ndim = 1 if isinstance(bn, nn.BatchNorm1d) else 3
    _check_shape(b, where, bn, ndim=ndim)
    if bn.running_mean is None or bn.running_var is None:
        raise UnsupportedLayerError(
            f"layer {where} ({type(bn).__name__}) has no running statistics "
            "(track_running_stats=False); it normalises with batch statistics, which is not "
            "a fixed affine map"
        )
    if b.shape[0] != bn.num_features:
        raise InvalidNetworkError(
            f"layer {where} ({type(bn).__name__}) has {bn.num_features} features, "
            f"receives shape {b.shape}"
        )
    mean, var = _np(bn.running_mean), _np(bn.running_var)
    gamma = _np(bn.weight) if bn.weight is not None else np.ones_like(mean)
    beta = _np(bn.bias) if getattr(bn, "bias", None) is not None else np.zeros_like(mean)
    s = gamma / np.sqrt(var + bn.eps)
    t = beta - s * mean
    reps = 1 if ndim == 1 else b.shape[1] * b.shape[2]
    b.diagonal(np.repeat(s, reps), np.repeat(t, reps))


def from_torch(module: nn.Module, *, input_shape: Sequence[int] | int | None = None) -> Network:
    """Convert an ``nn.Sequential`` of supported layers into a :class:`Network`.

    Parameters
    ----------
    module : nn.Module
        An ``nn.Sequential`` (nested ones are flattened) or a single supported
        layer. Supported: see :data:`SUPPORTED_LAYERS`. ``BatchNorm`` uses its
        running statistics (eval-mode behaviour) whatever ``module.training`` is.
    input_shape : int or (n,) or (C, H, W), optional
        Per-sample input shape; required when the first layer is a
        convolution, pooling or ``BatchNorm2d``. The network's input is the
        C-order flattened image.

    Returns
    -------
    Network
        float64 weights; every ReLU closes a hidden layer and consecutive
        affine layers are composed into one.

    Raises
    ------
    UnsupportedLayerError
        For any other layer (the message names its index and type), or a
        trailing ReLU (the output layer must be affine; drop it).
    InvalidNetworkError
        For mismatched shapes, a missing ``input_shape``, or NaN/inf weights.

    Notes
    -----
    A convolution becomes a dense (out_size, in_size) float64 matrix: a
    16-channel same-size convolution of a 3x32x32 image takes
    16384 x 3072 x 8 bytes = 400 MB. Fine for the small inputs MILP analysis
    can handle, not for large images.

    Examples
    --------
    >>> model = nn.Sequential(nn.Linear(1, 2), nn.Dropout(), nn.ReLU(), nn.Linear(2, 1))
    >>> from_torch(model).widths
    (1, 2, 1)
    >>> from_torch(nn.Sequential(nn.Conv2d(1, 2, 2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 1)),
    ...            input_shape=(1, 3, 3)).widths
    (9, 8, 1)
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if input_shape is not None:
        shape = (int(input_shape),) if np.ndim(input_shape) == 0 else tuple(int(s) for s in input_shape)
        if len(shape) not in (1, 3) or min(shape) < 1:
            raise InvalidNetworkError(
                f"input_shape must be (n,) or (C, H, W) of positive sizes, got {input_shape!r}"
            )
        input_shape = shape
    b = _Builder(input_shape)
    leaves = list(_flatten(module))
    if not leaves:
        raise InvalidNetworkError("the module has no layers")
    for where, layer in leaves:
        if isinstance(layer, nn.Linear):
            if b.shape is None:
                b.shape = (layer.in_features,)
            _check_shape(b, where, layer, ndim=1)
            if b.dim != layer.in_features:
                raise InvalidNetworkError(
                    f"layer {where} (Linear) expects {layer.in_features} inputs, receives {b.dim}"
                )
            bias = np.zeros(layer.out_features) if layer.bias is None else _np(layer.bias)
            b.affine_to(_np(layer.weight), bias, (layer.out_features,))
        elif isinstance(layer, nn.ReLU):
            if not b.relu(None if b.shape is None else b.dim):
                raise UnsupportedLayerError(
                    f"layer {where} (ReLU) comes first and the input size is unknown; "
                    "pass input_shape=... or remove the leading ReLU"
                )
        elif isinstance(layer, _PASS_THROUGH):
            continue
        elif isinstance(layer, nn.Flatten):
            if layer.start_dim != 1 or layer.end_dim != -1:
                raise UnsupportedLayerError(
                    f"layer {where} (Flatten) must use start_dim=1, end_dim=-1, "
                    f"got {layer.start_dim}, {layer.end_dim}"
                )
            if b.shape is not None:
                b.shape = (b.dim,)
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if b.shape is None and isinstance(layer, nn.BatchNorm1d):
                b.shape = (layer.num_features,)
            _batchnorm(b, where, layer)
        elif isinstance(layer, nn.Conv2d):
            _conv2d(b, where, layer)
        elif isinstance(layer, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            _check_shape(b, where, layer, ndim=3)
            W, out_shape = _linear_image_matrix(layer, b.shape)
            b.affine_to(W, np.zeros(W.shape[0]), out_shape)
        else:
            raise UnsupportedLayerError(
                f"layer {where} ({type(layer).__name__}) is not supported; "
                f"supported layers: {_SUPPORTED_NAMES}"
            )
    if b.A is None:
        if b.ends_with_relu:
            raise UnsupportedLayerError(
                "the last layer is a ReLU; the output layer must be affine. Drop the trailing "
                "ReLU (a ReLU on the outputs can be added to the property instead)"
            )
        raise InvalidNetworkError("the module has no affine layer (Linear, Conv2d, ...)")
    return b.network()


def to_torch(net: Network, *, dtype: torch.dtype = torch.float32) -> nn.Sequential:
    """An ``nn.Sequential`` of ``Linear`` and ``ReLU`` computing ``net``.

    With ``dtype=torch.float64``, ``from_torch(to_torch(net, dtype=torch.float64))``
    returns exactly ``net``.
    """
    mods: list[nn.Module] = []
    for i, (W, bias) in enumerate(net.layers):
        lin = nn.Linear(W.shape[1], W.shape[0], dtype=dtype)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(W))
            lin.bias.copy_(torch.tensor(bias))
        mods.append(lin)
        if i < net.num_hidden_layers:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods).eval()


def _torch_preactivations(net: Network, x, dtype) -> tuple[list[torch.Tensor], bool]:
    x = torch.as_tensor(x)
    device = x.device
    x = x.to(dtype)
    single = x.ndim == 1
    if single:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != net.input_dim:
        raise InvalidNetworkError(
            f"input has shape {tuple(x.shape)}, expected (N, {net.input_dim}) or ({net.input_dim},)"
        )
    ys, h = [], x
    for W, bias in net.layers:
        y = h @ torch.tensor(W, dtype=dtype, device=device).T + torch.tensor(bias, dtype=dtype, device=device)
        ys.append(y)
        h = torch.relu(y)
    return ys, single


def torch_forward(net: Network, x, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``net(x)`` with torch on the device of ``x`` (batched (N, n0) or one (n0,) input).

    Computes in ``dtype`` (float64 by default, matching :meth:`Network.forward`).
    """
    ys, single = _torch_preactivations(net, x, dtype)
    return ys[-1][0] if single else ys[-1]


def torch_activation_pattern(net: Network, x, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """On/off pattern (pre-activation > 0) of all hidden neurons, as a bool tensor.

    Same layout as :meth:`Network.activation_pattern`.
    """
    ys, single = _torch_preactivations(net, x, dtype)
    hidden = ys[:-1]
    if not hidden:
        pat = torch.zeros((ys[-1].shape[0], 0), dtype=torch.bool, device=ys[-1].device)
    else:
        pat = torch.cat([y > 0 for y in hidden], dim=1)
    return pat[0] if single else pat


# ---------------------------------------------------------------------- files
def _from_state_dict(sd: dict) -> Network:
    """A Linear/ReLU chain from ``{"0.weight", "0.bias", "2.weight", ...}`` in key order."""
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, val in sd.items():
        prefix, _, leaf = str(key).rpartition(".")
        if leaf not in ("weight", "bias", "weight_orig", "weight_mask") or not torch.is_tensor(val):
            raise UnsupportedLayerError(
                f"state_dict entry {key!r} is not a Linear weight or bias; only the state_dict "
                "of a Linear/ReLU nn.Sequential can be read alone. Build the module and call "
                "from_torch(module) instead"
            )
        groups.setdefault(prefix, {})[leaf] = val
    layers = []
    for prefix, g in groups.items():
        if "weight" in g:
            W = g["weight"]
        elif "weight_orig" in g and "weight_mask" in g:  # torch.nn.utils.prune
            W = g["weight_orig"] * g["weight_mask"]
        else:
            raise InvalidNetworkError(f"state_dict layer {prefix!r} has no weight")
        if W.ndim != 2:
            raise UnsupportedLayerError(
                f"state_dict layer {prefix!r} has a {W.ndim}-D weight {tuple(W.shape)}; only Linear "
                "layers can be read from a state_dict. Build the module and call from_torch(module)"
            )
        bias = g.get("bias")
        layers.append((_np(W), np.zeros(W.shape[0]) if bias is None else _np(bias)))
    if not layers:
        raise InvalidNetworkError("the state_dict is empty")
    return Network.from_layers(layers)


def _is_torchscript(path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any("/code/" in n or n.endswith("constants.pkl") for n in z.namelist())


def load_torch(path: str | os.PathLike, *, input_shape: Sequence[int] | int | None = None) -> Network:
    """Load a network saved with ``torch.save``.

    Accepts a whole ``nn.Sequential`` of supported layers or a state_dict of a
    Linear/ReLU ``nn.Sequential`` (keys ``"0.weight", "0.bias", "2.weight", ...``;
    the chain follows the key order, with a ReLU between consecutive layers;
    pruned ``weight_orig``/``weight_mask`` pairs are multiplied out). A dict
    ``{"state_dict": ...}`` or ``{"model_state_dict": ...}`` is unwrapped.

    The file is read with ``torch.load(weights_only=True)``; only tensors,
    plain containers and the classes in :data:`SUPPORTED_LAYERS` are
    unpickled, so a malicious file cannot run code. TorchScript archives are
    refused.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such model file: {path!r}")
    if _is_torchscript(path):
        raise UnsupportedLayerError(
            f"{path!r} is a TorchScript archive, which mipnet does not load (it may contain "
            "code); save the nn.Sequential or its state_dict with torch.save instead"
        )
    try:
        with torch.serialization.safe_globals(list(SUPPORTED_LAYERS)):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, KeyError, ...
        msg = str(exc)
        if "Weights only load failed" in msg or "Unsupported global" in msg:
            raise InvalidNetworkError(
                f"refused to load {path!r}: it contains objects other than tensors and the "
                f"supported layers ({_SUPPORTED_NAMES}); loading it could run code. "
                "Save a state_dict or an nn.Sequential of supported layers"
            ) from None
        raise InvalidNetworkError(
            f"{path!r} is not a file written by torch.save ({type(exc).__name__}: {msg[:200]})"
        ) from None
    if isinstance(obj, nn.Module):
        return from_torch(obj, input_shape=input_shape)
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        return _from_state_dict(obj)
    raise InvalidNetworkError(
        f"{path!r} holds a {type(obj).__name__}, not an nn.Module or a state_dict"
    )


def save_torch(net: Network, path: str | os.PathLike) -> None:
    """Save the float64 state_dict of :func:`to_torch`; :func:`load_torch` reads it back exactly."""
    torch.save(to_torch(net, dtype=_F64).state_dict(), os.fspath(path))
