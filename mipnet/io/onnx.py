"""Convert between ONNX graphs and :class:`mipnet.network.Network`.

Import walks the graph from its single input along a single chain of nodes,
composing affine operators exactly and closing a hidden layer at every
``Relu``:

* ``Gemm(x, B, C)``: ``y = alpha * x B' + beta * C`` with ``B' = B^T`` if
  ``transB`` (``transA`` must be 0), i.e. ``W = alpha * B'^T``;
* ``MatMul(x, M)``: ``W = M^T``; ``Add(x, t)`` / ``Add(t, x)``: a shift by a
  constant broadcast over the sample;
* ``Flatten`` (axis 1), ``Reshape`` to ``[N, -1]``, ``Identity``, ``Dropout``:
  no change of values; ``Constant`` nodes and initializers give the operands.

Export writes ``MatMul`` + ``Add`` (or ``Gemm``) with ``Relu``, float64 by
default so that ``load_onnx(to_onnx(net))`` returns ``net`` exactly.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mipnet.core.errors import InvalidArgumentError, InvalidNetworkError, UnsupportedLayerError
from mipnet.io.chain import AffineChain
from mipnet.core.network import Network

__all__ = ["SUPPORTED_OPS", "load_onnx", "to_onnx", "save_onnx"]

#: ONNX operators :func:`load_onnx` understands.
SUPPORTED_OPS = ("Gemm", "MatMul", "Add", "Relu", "Flatten", "Reshape", "Identity", "Dropout", "Constant")


def _read(model) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    path = os.fspath(model)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such model file: {path!r}")
    try:
        m = onnx.load(path)
    except Exception as exc:  # protobuf DecodeError, ...
        raise InvalidNetworkError(f"{path!r} is not an ONNX model ({type(exc).__name__}: {exc})") from None
    if not m.graph.node or not m.graph.input:
        raise InvalidNetworkError(f"{path!r} is not an ONNX model (no graph nodes or inputs)")
    return m


def _constant(node) -> np.ndarray:
    attr = {a.name: a for a in node.attribute}
    if "value" in attr:
        return numpy_helper.to_array(attr["value"].t)
    for name in ("value_float", "value_floats", "value_int", "value_ints"):
        if name in attr:
            return np.asarray(helper.get_attribute_value(attr[name]))
    raise UnsupportedLayerError(f"Constant node {node.name!r}: only tensor or numeric values are supported")


def _input_shape(vi) -> tuple[int, ...] | None:
    """Per-sample shape (batch dimension dropped), or None for an unknown vector size."""
    dims = vi.type.tensor_type.shape.dim
    if len(dims) < 2:
        raise InvalidNetworkError(
            f"input {vi.name!r} has rank {len(dims)}; expected a batch dimension first, e.g. [N, n0]"
        )
    sizes = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims[1:]]
    if None in sizes:
        if len(sizes) == 1:
            return None
        raise InvalidNetworkError(f"input {vi.name!r} must have a static per-sample shape, got {sizes}")
    return tuple(sizes)


def load_onnx(model) -> Network:
    """Read a feed-forward ReLU network from an ONNX file path or ``ModelProto``.

    The per-sample input is flattened in C order. Weights are converted to
    float64 (float32 files are read exactly, as float64 numbers).

    Raises
    ------
    UnsupportedLayerError
        A node whose op is not in :data:`SUPPORTED_OPS` (the message names the
        node), or a graph that is not a single chain from input to output.
    InvalidNetworkError
        Not an ONNX file, several inputs or outputs, or mismatched shapes.
    """
    m = _read(model)
    g = m.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1 or len(g.output) != 1:
        raise InvalidNetworkError(
            f"the graph has {len(inputs)} inputs and {len(g.output)} outputs; "
            "mipnet reads single-input, single-output networks"
        )
    shape = _input_shape(inputs[0])
    cur, chain = inputs[0].name, AffineChain()

    def dim():
        return None if shape is None else int(np.prod(shape))

    for i, node in enumerate(g.node):
        op, where = node.op_type, f"node {i} {node.name!r} ({node.op_type})"
        if node.domain not in ("", "ai.onnx") or op not in SUPPORTED_OPS:
            raise UnsupportedLayerError(
                f"{where} is not supported; supported ops: {', '.join(SUPPORTED_OPS)}"
            )
        if op == "Constant":
            consts[node.output[0]] = _constant(node)
            continue
        data = [n for n in node.input if n and n not in consts]
        if data != [cur] or (op != "Add" and node.input[0] != cur):
            raise UnsupportedLayerError(
                f"{where}: the graph is not a single chain from the input; expected the node to "
                f"take {cur!r} as its first input and constants otherwise, got inputs {list(node.input)}"
            )
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if op in ("MatMul", "Gemm"):
            if shape is not None and len(shape) != 1:
                raise InvalidNetworkError(f"{where} receives per-sample shape {shape}; flatten it first")
            B = consts[node.input[1]].astype(np.float64)
            if B.ndim != 2:
                raise UnsupportedLayerError(f"{where}: the weight must be 2-D, got shape {B.shape}")
            if op == "MatMul":
                W, b = B.T, np.zeros(B.shape[1])
            else:
                if attrs.get("transA", 0):
                    raise UnsupportedLayerError(f"{where}: transA=1 (a transposed batch) is not supported")
                W = B if attrs.get("transB", 0) else B.T
                alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
                if alpha != 1.0:
                    W = alpha * W
                b = np.zeros(W.shape[0])
                if len(node.input) > 2 and node.input[2]:
                    C = consts[node.input[2]].astype(np.float64)
                    try:
                        b = beta * np.broadcast_to(C, (1, W.shape[0]))[0]
                    except ValueError:
                        raise UnsupportedLayerError(
                            f"{where}: bias C of shape {C.shape} does not broadcast to (1, {W.shape[0]})"
                        ) from None
            if shape is not None and W.shape[1] != shape[0]:
                raise InvalidNetworkError(f"{where}: weight takes {W.shape[1]} inputs, receives {shape[0]}")
            chain.affine(W, b)
            shape = (W.shape[0],)
        elif op == "Add":
            t = consts[next(n for n in node.input if n != cur)].astype(np.float64)
            if shape is None:
                raise InvalidNetworkError(f"{where}: the input size is unknown before this Add")
            try:
                t = np.broadcast_to(t, (1, *shape)).reshape(-1)
            except ValueError:
                raise UnsupportedLayerError(
                    f"{where}: constant of shape {t.shape} does not broadcast to a sample of shape {shape}"
                ) from None
            chain.shift(np.array(t))
        elif op == "Relu":
            if not chain.relu(dim()):
                raise UnsupportedLayerError(f"{where} comes first and the input size is unknown")
        elif op == "Flatten":
            axis = attrs.get("axis", 1)
            if axis < 0:
                axis += 1 + (1 if shape is None else len(shape))
            if axis != 1:
                raise UnsupportedLayerError(f"{where}: only axis=1 (keep the batch) is supported, got {axis}")
            shape = None if shape is None else (dim(),)
        elif op == "Reshape":
            target = [int(v) for v in consts[node.input[1]].reshape(-1)]
            n = dim()
            keeps_batch = len(target) == 2 and target[0] in (0, -1, 1)
            if keeps_batch and target[1] == -1 and target[0] != -1:
                shape = None if n is None else (n,)
            elif keeps_batch and target[1] > 0 and (n is None or target[1] == n):
                shape = (target[1],)
            else:
                raise UnsupportedLayerError(
                    f"{where}: only a reshape to [N, -1] (flatten, keep the batch) is supported, "
                    f"got target {target} for per-sample shape {shape}"
                )
        # Identity and Dropout (inference) leave the values unchanged
        cur = node.output[0]
    if cur != g.output[0].name:
        raise UnsupportedLayerError(
            f"the graph output {g.output[0].name!r} is not the end of the chain {cur!r}"
        )
    if chain.A is None:
        if chain.ends_with_relu:
            raise UnsupportedLayerError("the graph ends with Relu; the output layer must be affine")
        raise InvalidNetworkError("the graph has no affine operator (Gemm, MatMul, Add)")
    return chain.network()


def to_onnx(net: Network, *, opset: int = 13, dtype: str = "float64", gemm: bool = False,
            input_name: str = "input", output_name: str = "output") -> onnx.ModelProto:
    """An ONNX model computing ``net`` with input ``[N, n0]`` and output ``[N, m]``.

    Parameters
    ----------
    opset : int
        ONNX opset (>= 9).
    dtype : {"float64", "float32"}
        Tensor type; float64 round-trips exactly through :func:`load_onnx`.
    gemm : bool
        Write ``Gemm(x, W, b, transB=1)`` per layer instead of ``MatMul(x, W^T)`` + ``Add(b)``.

    Examples
    --------
    >>> import numpy as np
    >>> net = Network([np.array([[1.0], [-1.0]]), np.array([[1.0, 1.0]])], [np.zeros(2), np.zeros(1)])
    >>> [n.op_type for n in to_onnx(net).graph.node]
    ['MatMul', 'Add', 'Relu', 'MatMul', 'Add']
    >>> load_onnx(to_onnx(net)).allclose(net)
    True
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a mipnet Network, got {type(net).__name__}")
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise InvalidArgumentError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    if not 9 <= int(opset) <= onnx.defs.onnx_opset_version():
        raise InvalidArgumentError(f"opset must be between 9 and {onnx.defs.onnx_opset_version()}, got {opset}")
    elem = TensorProto.DOUBLE if dt == np.float64 else TensorProto.FLOAT
    nodes, inits, h = [], [], input_name
    for i, (W, b) in enumerate(net.layers):
        last = i == net.num_hidden_layers
        z = output_name if last else f"z{i}"
        inits.append(numpy_helper.from_array(np.ascontiguousarray((W if gemm else W.T).astype(dt)), f"W{i}"))
        inits.append(numpy_helper.from_array(b.astype(dt), f"b{i}"))
        if gemm:
            nodes.append(helper.make_node("Gemm", [h, f"W{i}", f"b{i}"], [z], name=f"gemm{i}", transB=1))
        else:
            nodes.append(helper.make_node("MatMul", [h, f"W{i}"], [f"mm{i}"], name=f"matmul{i}"))
            nodes.append(helper.make_node("Add", [f"mm{i}", f"b{i}"], [z], name=f"add{i}"))
        if not last:
            nodes.append(helper.make_node("Relu", [z], [f"h{i}"], name=f"relu{i}"))
            h = f"h{i}"
    graph = helper.make_graph(
        nodes, "mipnet_network",
        [helper.make_tensor_value_info(input_name, elem, ["N", net.input_dim])],
        [helper.make_tensor_value_info(output_name, elem, ["N", net.output_dim])],
        initializer=inits,
    )
    opsets = [helper.make_opsetid("", int(opset))]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="mipnet")
    model.ir_version = helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(model)
    return model


def save_onnx(net: Network, path: str | os.PathLike, **options) -> None:
    """Write :func:`to_onnx` (``options`` are its keywords) to ``path``."""
    onnx.save(to_onnx(net, **options), os.fspath(path))
