"""ONNX <-> Network: exact round trips, hand-built graphs and the shared models vs onnx.reference."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from mipnet.core.errors import InvalidNetworkError, UnsupportedLayerError
from mipnet.core.network import Network
from mipnet.io.onnx import load_onnx, save_onnx, to_onnx

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
SHARED_ONNX = sorted(MODELS.glob("*/*.onnx"))


def as_float64(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose float tensors (initializers, Constant values, graph I/O) are float64.

    float32 -> float64 is exact, so the copy computes the same function as the
    file in float64 arithmetic: the fair reference for our float64 forward pass.
    """
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for t in g.initializer:
        if t.data_type == TensorProto.FLOAT:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float64), t.name))
    for node in g.node:
        for a in node.attribute:
            if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float64), a.t.name))
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.DOUBLE
    return m


def reference(model, x):
    sess = ReferenceEvaluator(model)
    return sess.run(None, {model.graph.input[0].name: x})[0]


def assert_close_rel(ours, ref, rel):
    """|ours - ref| <= rel * max(1, max|ref|): relative to the output's scale."""
    scale = max(1.0, float(np.abs(ref).max()))
    err = float(np.abs(ours - ref).max())
    assert err <= rel * scale, f"max error {err:.3g} exceeds {rel:g} * {scale:.3g}"


# ---------------------------------------------------------------------- round trips
@pytest.mark.parametrize("gemm", [False, True])
@pytest.mark.parametrize("widths", [(3, 2), (4, 7, 5, 2)])
def test_round_trip_exact_float64(widths, gemm, tmp_path):
    net = Network.random(widths, seed=sum(widths))
    model = to_onnx(net, gemm=gemm)
    assert model.graph.initializer[0].data_type == TensorProto.DOUBLE
    assert load_onnx(model).allclose(net)  # exact
    save_onnx(net, tmp_path / "n.onnx", gemm=gemm)
    assert load_onnx(tmp_path / "n.onnx").allclose(net)
    assert load_onnx(str(tmp_path / "n.onnx")).allclose(net)
    x = np.random.default_rng(0).normal(size=(20, widths[0]))
    assert_close_rel(net.forward(x), reference(model, x), 1e-12)


def test_float32_export():
    net = Network.random((5, 6, 3), seed=2)
    model = to_onnx(net, dtype="float32", opset=11)
    assert model.graph.initializer[0].data_type == TensorProto.FLOAT
    back = load_onnx(model)
    assert back.allclose(net, rtol=1e-6, atol=1e-7) and not back.allclose(net)
    x = np.random.default_rng(1).normal(size=(8, 5)).astype(np.float32)
    assert_close_rel(back.forward(x), reference(model, x), 1e-5)
    with pytest.raises(ValueError, match="dtype must be"):
        to_onnx(net, dtype="int32")
    with pytest.raises(ValueError, match="opset must be between 9"):
        to_onnx(net, opset=5)


# ---------------------------------------------------------------------- hand-built graphs
def _model(nodes, inits, in_shape, out_shape, *, inputs=None, outputs=None, opset=13):
    inits = [numpy_helper.from_array(np.asarray(v, dtype=np.float64 if np.asarray(v).dtype.kind == "f"
                                                else np.int64), k) for k, v in inits.items()]
    graph = helper.make_graph(
        nodes, "g",
        inputs or [helper.make_tensor_value_info("x", TensorProto.DOUBLE, in_shape)],
        outputs or [helper.make_tensor_value_info("y", TensorProto.DOUBLE, out_shape)],
        initializer=inits,
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _check(model, n_in, *, seed=0):
    net = load_onnx(model)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(16, *n_in))
    assert_close_rel(net.forward(x.reshape(16, -1)), reference(model, x).reshape(16, -1), 1e-12)
    return net


@pytest.mark.parametrize("transB", [0, 1])
@pytest.mark.parametrize("alpha, beta, c_shape", [(1.0, 1.0, (3,)), (0.5, -2.0, (1, 3)), (2.0, 0.25, ())])
def test_gemm_attributes(transB, alpha, beta, c_shape):
    rng = np.random.default_rng(3)
    B = rng.normal(size=(3, 4) if transB else (4, 3))
    nodes = [
        helper.make_node("Gemm", ["x", "B", "C"], ["g"], alpha=alpha, beta=beta, transB=transB),
        helper.make_node("Relu", ["g"], ["h"]),
        helper.make_node("Gemm", ["h", "B2"], ["y"]),  # no C
    ]
    net = _check(_model(nodes, {"B": B, "C": rng.normal(size=c_shape), "B2": rng.normal(size=(3, 2))},
                        ["N", 4], ["N", 2]), (4,))
    assert net.widths == (4, 3, 2)


def test_matmul_add_both_orders_constants_and_passthrough_ops():
    rng = np.random.default_rng(4)
    W1 = helper.make_tensor("W1", TensorProto.DOUBLE, [6, 5], rng.normal(size=30))
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], axis=1),
        helper.make_node("Constant", [], ["W1"], value=W1),
        helper.make_node("MatMul", ["f", "W1"], ["m1"]),
        helper.make_node("Add", ["b1", "m1"], ["a1"]),  # constant first
        helper.make_node("Identity", ["a1"], ["i1"]),
        helper.make_node("MatMul", ["i1", "W1b"], ["m1b"]),  # composed with the layer above
        helper.make_node("Add", ["m1b", "b1b"], ["a1b"]),
        helper.make_node("Relu", ["a1b"], ["h1"]),
        helper.make_node("Dropout", ["h1"], ["d1"]),
        helper.make_node("Reshape", ["d1", "shape"], ["r1"]),
        helper.make_node("MatMul", ["r1", "W2"], ["m2"]),
        helper.make_node("Add", ["m2", "b2"], ["y"]),
    ]
    inits = {"b1": rng.normal(size=(1, 5)), "W1b": rng.normal(size=(5, 4)), "b1b": rng.normal(size=4),
             "shape": np.array([0, -1]), "W2": rng.normal(size=(4, 3)), "b2": np.float64(0.5)}
    net = _check(_model(nodes, inits, ["N", 2, 3], ["N", 3]), (2, 3))
    assert net.widths == (6, 4, 3)


def test_image_input_flatten_and_channel_bias():
    rng = np.random.default_rng(5)
    nodes = [
        helper.make_node("Add", ["x", "cb"], ["a"]),  # per-channel shift on (C, H, W)
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["f"]),
        helper.make_node("Gemm", ["f", "B", "C"], ["y"], transB=1),
    ]
    inits = {"cb": rng.normal(size=(2, 1, 1)), "shape": np.array([-1, 18]),
             "B": rng.normal(size=(3, 18)), "C": rng.normal(size=3)}
    net = _check(_model(nodes, inits, ["N", 2, 3, 3], ["N", 3]), (2, 3, 3))
    assert net.widths == (18, 18, 3)


@pytest.mark.parametrize(
    "nodes, inits, in_shape, exc, match",
    [
        ([helper.make_node("Sigmoid", ["x"], ["y"], name="sig")], {}, ["N", 2], UnsupportedLayerError,
         r"node 0 'sig' \(Sigmoid\) is not supported; supported ops: Gemm, MatMul, Add, Relu"),
        ([helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Softmax", ["m"], ["y"])],
         {"W": np.ones((2, 2))}, ["N", 2], UnsupportedLayerError, r"node 1 '' \(Softmax\)"),
        ([helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Add", ["m", "x"], ["y"])],
         {"W": np.ones((2, 2))}, ["N", 2], UnsupportedLayerError, r"not a single chain"),
        ([helper.make_node("MatMul", ["W", "x"], ["y"])], {"W": np.ones((2, 2))}, ["N", 2],
         UnsupportedLayerError, r"not a single chain"),
        ([helper.make_node("Gemm", ["x", "W"], ["y"], transA=1)], {"W": np.ones((2, 2))}, ["N", 2],
         UnsupportedLayerError, r"transA=1"),
        ([helper.make_node("MatMul", ["x", "W"], ["y"])], {"W": np.ones((3, 2))}, ["N", 2],
         InvalidNetworkError, r"weight takes 3 inputs, receives 2"),
        ([helper.make_node("MatMul", ["x", "W"], ["y"])], {"W": np.ones((4, 2))}, ["N", 2, 2],
         InvalidNetworkError, r"per-sample shape \(2, 2\); flatten it first"),
        ([helper.make_node("Reshape", ["x", "s"], ["r"]), helper.make_node("MatMul", ["r", "W"], ["y"])],
         {"s": np.array([-1, 2]), "W": np.ones((2, 2))}, ["N", 4], UnsupportedLayerError,
         r"only a reshape to \[N, -1\]"),
        ([helper.make_node("Flatten", ["x"], ["r"], axis=2), helper.make_node("MatMul", ["r", "W"], ["y"])],
         {"W": np.ones((2, 2))}, ["N", 1, 2], UnsupportedLayerError, r"only axis=1"),
        ([helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Relu", ["m"], ["y"])],
         {"W": np.ones((2, 2))}, ["N", 2], UnsupportedLayerError, r"ends with Relu"),
        ([helper.make_node("Identity", ["x"], ["y"])], {}, ["N", 2], InvalidNetworkError,
         r"no affine operator"),
        ([helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])],
         {"W": np.ones((2, 2)), "b": np.ones((3, 2))}, ["N", 2], UnsupportedLayerError,
         r"does not broadcast"),
        ([helper.make_node("MatMul", ["x", "W"], ["y"])], {"W": np.ones((2, 2))}, ["N"],
         InvalidNetworkError, r"rank 1; expected a batch dimension"),
    ],
)
def test_import_errors(nodes, inits, in_shape, exc, match):
    with pytest.raises(exc, match=match):
        load_onnx(_model(nodes, inits, in_shape, ["N", 2]))


def test_several_inputs_or_outputs_and_dangling_output():
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"])]
    two_in = [helper.make_tensor_value_info(n, TensorProto.DOUBLE, ["N", 2]) for n in ("x", "x2")]
    with pytest.raises(InvalidNetworkError, match="2 inputs and 1 outputs"):
        load_onnx(_model(nodes, {"W": np.ones((2, 2))}, None, ["N", 2], inputs=two_in))
    nodes = [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Identity", ["m"], ["z"])]
    with pytest.raises(UnsupportedLayerError, match="graph output 'y' is not the end of the chain 'z'"):
        load_onnx(_model(nodes, {"W": np.ones((2, 2))}, ["N", 2], ["N", 2]))


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model file"):
        load_onnx(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\xff\xfe this is not protobuf \x00\x01")
    with pytest.raises(InvalidNetworkError, match="is not an ONNX model"):
        load_onnx(junk)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(InvalidNetworkError, match="is not an ONNX model"):
        load_onnx(empty)


# ---------------------------------------------------------------------- shared models
@pytest.mark.skipif(not SHARED_ONNX, reason=f"shared models not found under {MODELS}")
@pytest.mark.parametrize("path", SHARED_ONNX, ids=lambda p: p.name)
def test_shared_models_match_onnx_reference(path):
    model = onnx.load(path)
    net = load_onnx(path)
    rng = np.random.default_rng(0)
    x32 = rng.uniform(0.0, 16.0, size=(200, net.input_dim)).astype(np.float32)
    ours = net.forward(x32.astype(np.float64))
    # fair 1e-9 check: the same float32 weights and inputs, evaluated in float64 by onnx
    assert_close_rel(ours, reference(as_float64(model), x32.astype(np.float64)), 1e-9)
    # the file as written (float32 arithmetic) agrees to float32 accuracy
    assert_close_rel(ours, reference(model, x32), 1e-5)
