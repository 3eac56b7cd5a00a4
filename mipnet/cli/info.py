"""``mipnet info MODEL``: layers, widths, parameters and sparsity of a model file."""

from __future__ import annotations

import argparse

from mipnet.cli.common import add_command, add_json_arg, add_list_arg


def register(subparsers) -> None:
    p = add_command(
        subparsers, "info",
        help="describe a model: layer widths, parameters, non-zero weights, density",
        description="Load a model (.onnx, .pt/.pth, .npz) and describe its layers.",
        examples=["mipnet info net.onnx",
                  "mipnet info conv.pt --input-shape 1 28 28 --json"],
    )
    p.add_argument("model", metavar="MODEL", help="model file: .onnx, .pt/.pth or .npz")
    add_list_arg(p, "--input-shape", item_type=int, count=3, metavar=("C", "H", "W"),
                 help="per-sample input shape; needed for torch models that start with a convolution")
    add_json_arg(p)
    p.set_defaults(func=handle)


def describe(net) -> dict:
    """``net.summary()`` plus one row per affine layer."""
    rows = []
    for i, (W, b) in enumerate(net.layers):
        nnz = int((W != 0).sum())
        rows.append({
            "layer": i + 1,
            "inputs": int(W.shape[1]),
            "outputs": int(W.shape[0]),
            "activation": "relu" if i < net.num_hidden_layers else "none",
            "parameters": int(W.size + b.size),
            "nonzero_weights": nnz,
            "density": nnz / W.size,
        })
    return {**net.summary(), "layers": rows}


def handle(args: argparse.Namespace) -> int:
    from mipnet.cli.common import emit_json
    import os

    from mipnet.cli.common import reject_unused
    from mipnet.io import load_network

    if os.path.splitext(args.model)[1].lower() not in (".pt", ".pth"):
        reject_unused(args, "with torch models (.pt, .pth)", "--input-shape")
    net = load_network(args.model, input_shape=args.input_shape)
    info = {"model": args.model, **describe(net)}
    if args.json:
        emit_json(info)
        return 0
    print(f"{args.model}: {'-'.join(map(str, net.widths))} "
          f"({net.num_hidden_layers} hidden layers, {net.num_hidden_neurons} hidden ReLUs)")
    print(f"{'layer':>5} {'in':>7} {'out':>7} {'act':>5} {'params':>10} {'nonzero':>10} {'density':>8}")
    for r in info["layers"]:
        print(f"{r['layer']:>5} {r['inputs']:>7} {r['outputs']:>7} {r['activation']:>5} "
              f"{r['parameters']:>10} {r['nonzero_weights']:>10} {r['density']:>8.2%}")
    print(f"total: {net.num_parameters} parameters, {net.num_nonzero_weights} non-zero weights, "
          f"density {net.density:.2%}")
    return 0
