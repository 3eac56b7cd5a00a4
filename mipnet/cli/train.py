"""``mipnet train`` and ``mipnet prune``: train an MLP on a dataset; prune and fine-tune a model.

Python twins: :func:`mipnet.nn.training.train` and :func:`mipnet.nn.workflow.prune_and_finetune`
(:func:`mipnet.nn.pruning.prune`, then :func:`mipnet.nn.training.finetune`).
"""

from __future__ import annotations

import argparse

from mipnet.cli.common import (
    add_command,
    add_json_arg,
    add_list_arg,
    add_progress_arg,
    call,
    check_output_path,
    exit_code,
    info,
    progress_enabled,
)

_METHODS = ("magnitude", "global", "random", "sipp", "snip", "allocated")
_DENSITIES_METHODS = ("magnitude", "random", "sipp")
_DATA_METHODS = ("sipp", "snip")


def _density(text: str) -> float:
    try:
        d = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"density must be a number in (0, 1], got {text!r}") from None
    if not 0 < d <= 1:
        raise argparse.ArgumentTypeError(f"density must lie in (0, 1] (fraction of weights kept), got {d}")
    return d


def _add_data_args(p, *, required: bool) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default=None if required else "digits", required=required, metavar="NAME",
                   help="digits (bundled), fashion-mnist, mnist, or a folder of IDX files")
    g.add_argument("--data-path", metavar="DIR",
                   help="folder holding the IDX files (default: searched under share/datasets/NAME)")
    g.add_argument("--limit", type=int, metavar="N",
                   help="use at most N training and N test samples (default: all)")


def _add_optim_args(p, *, epochs_name: str, epochs_default, epochs_required: bool) -> None:
    g = p.add_argument_group("optimisation")
    g.add_argument(epochs_name, type=int, default=epochs_default, required=epochs_required, dest="epochs",
                   metavar="N", help="number of epochs")
    g.add_argument("--lr", type=float, default=1e-2, help="learning rate")
    g.add_argument("--batch-size", type=int, default=128, help="mini-batch size")
    g.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd", help="optimiser (sgd: momentum 0.9)")
    g.add_argument("--l1", type=float, default=0.0, metavar="L",
                   help="L1 penalty on the weights, which makes neurons stable")
    g.add_argument("--seed", type=int, default=0, help="seed of the initialisation, batch order and pruning")
    g.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N")
    g.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for torch (default: torch's choice; 1 is often fastest for small MLPs)")
    add_progress_arg(p)


def register(subparsers) -> None:
    p = add_command(
        subparsers, "train",
        help="train a ReLU MLP on a dataset and save it (.onnx, .pt, .npz)",
        description="Train a fully connected ReLU network with cross-entropy. The saved network takes "
                    "raw inputs (digits: pixels 0..16; IDX datasets: pixels/255 in [0, 1]).",
        examples=["mipnet train --dataset digits --widths 64 16 16 10 --epochs 30 --optimizer adam -o net.onnx",
                  "mipnet train --dataset fashion-mnist --data-path ~/data --widths 784,100,100,10 --epochs 10 "
                  "--l1 1e-4 -o fmnist.onnx --json"],
    )
    _add_data_args(p, required=True)
    add_list_arg(p, "--widths", item_type=str, required=True, metavar="N",
                 help="all layer sizes, input and output included, e.g. 64 32 16 10")
    _add_optim_args(p, epochs_name="--epochs", epochs_default=None, epochs_required=True)
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="where to save: .onnx, .pt or .npz")
    add_json_arg(p)
    p.set_defaults(func=handle_train)

    q = add_command(
        subparsers, "prune",
        help="prune a model (magnitude, global, random, SiPP, SNIP, allocated), fine-tune, save",
        description="Prune MODEL once with masks, optionally fine-tune with the masks kept, make the "
                    "masks permanent and save (never over MODEL; atomically). Prints the accuracy before, "
                    "after pruning and after fine-tuning, and the densities achieved per layer.",
        examples=["mipnet prune net.onnx --method magnitude --density 0.3 -o pruned.onnx",
                  "mipnet prune net.onnx --method allocated --density 0.3 --dataset digits --finetune-epochs 10 "
                  "-o pruned.onnx --json",
                  "mipnet prune net.onnx --method magnitude --density 0.5 --densities 0.2 0.6 -o pruned.npz"],
    )
    q.add_argument("model", metavar="MODEL", help="model file: .onnx, .pt/.pth or .npz")
    q.add_argument("--method", choices=_METHODS, required=True, help="pruning method")
    q.add_argument("--density", type=_density, required=True, metavar="D",
                   help="fraction of weights kept, in (0, 1] (layer-wise methods: in every pruned layer)")
    add_list_arg(q, "--densities", metavar="D",
                 help="per-layer densities (magnitude, random, sipp), one per pruned layer; "
                      "overrides --density per layer")
    q.add_argument("--prune-output", action="store_true", help="prune the output layer too")
    q.add_argument("--sipp-variant", choices=("deterministic", "random"),
                   help="with --method sipp: keep the top sensitivities, or sample and reweight "
                        "(default: deterministic)")
    q.add_argument("--data-batch", type=int, metavar="M",
                   help="with --method sipp/snip: inputs used (default: SiPP's |S| formula; 128 for snip)")
    _add_data_args(q, required=False)
    _add_optim_args(q, epochs_name="--finetune-epochs", epochs_default=0, epochs_required=False)
    q.add_argument("-o", "--output", required=True, metavar="FILE", help="where to save: .onnx, .pt or .npz")
    add_json_arg(q)
    q.set_defaults(func=handle_prune)


def _load_data(args):
    from mipnet.nn.data import load_dataset

    return load_dataset(args.dataset, path=args.data_path, limit=args.limit, seed=args.seed)


def _train_kw(args) -> dict:
    return dict(lr=args.lr, batch_size=args.batch_size, optimizer=args.optimizer, l1=args.l1,
                seed=args.seed, device=args.device, progress=progress_enabled(args),
                num_threads=args.threads)


def handle_train(args: argparse.Namespace) -> int:
    from mipnet.cli.common import emit_json
    from mipnet.core.errors import InvalidArgumentError
    from mipnet.theory import parse_widths

    widths = list(parse_widths(",".join(args.widths)))
    if len(widths) < 2:
        raise InvalidArgumentError(f"--widths needs at least the input and output sizes, got {widths}")
    check_output_path(args.output)  # before torch is even imported

    from mipnet.io import save_network
    from mipnet.io.torch import from_torch
    from mipnet.nn.training import make_mlp, train

    data = _load_data(args)
    if widths[0] != data.input_dim or widths[-1] != data.num_classes:
        raise InvalidArgumentError(
            f"--widths {','.join(map(str, widths))} must start with the input size {data.input_dim} and end "
            f"with the number of classes {data.num_classes} of {data.name}; e.g. "
            f"--widths {data.input_dim},{','.join(map(str, widths[1:-1] or [32]))},{data.num_classes}"
        )
    model = call(make_mlp, widths, seed=args.seed)
    result = call(train, model, data, epochs=args.epochs, **_train_kw(args))
    if exit_code(result):
        info("training interrupted: saving the model trained so far")
    net = from_torch(result.model)
    save_network(net, args.output)
    out = {"output": args.output, "widths": list(net.widths), "dataset": data.to_dict(),
           "training": result.to_dict()}
    if args.json:
        emit_json(out)
    else:
        print(f"{result}")
        print(f"saved {'-'.join(map(str, net.widths))} network to {args.output} "
              f"(inputs on the raw scale, box {data.input_range[0]:g}..{data.input_range[1]:g})")
    return exit_code(result)


def handle_prune(args: argparse.Namespace) -> int:
    import time

    from mipnet.cli.common import emit_json, reject_unused
    from mipnet.core.errors import InvalidNetworkError

    if args.method not in _DENSITIES_METHODS:
        reject_unused(args, f"with --method {'/'.join(_DENSITIES_METHODS)}", "--densities")
    if args.method != "sipp":
        reject_unused(args, "with --method sipp", "--sipp-variant")
    if args.method not in _DATA_METHODS:
        reject_unused(args, f"with --method {'/'.join(_DATA_METHODS)}", "--data-batch")
    check_output_path(args.output, inputs=[args.model])  # before torch is even imported

    from mipnet.io import load_network, save_network
    from mipnet.io.torch import to_torch
    from mipnet.nn.workflow import prune_and_finetune

    t0 = time.perf_counter()
    net = load_network(args.model)
    data = _load_data(args)
    if net.input_dim != data.input_dim or net.output_dim != data.num_classes:
        raise InvalidNetworkError(
            f"{args.model} maps {net.input_dim} inputs to {net.output_dim} outputs, but {data.name} has "
            f"{data.input_dim} inputs and {data.num_classes} classes; pick the matching --dataset"
        )
    run = call(prune_and_finetune, to_torch(net), data, method=args.method, density=args.density,
               densities=args.densities, prune_output=args.prune_output,
               prune_kw=dict(batch_size=args.data_batch, variant=args.sipp_variant or "deterministic"),
               finetune_epochs=args.epochs or 0, seed=args.seed, lr=args.lr, batch_size=args.batch_size,
               optimizer=args.optimizer, l1=args.l1, device=args.device, num_threads=args.threads,
               progress=progress_enabled(args))
    report = run.report
    acc_before, acc_pruned, acc_final = run.accuracy_dense, run.accuracy_pruned, run.accuracy_finetuned
    ft = run.finetuning[-1] if run.finetuning else None
    ft_dict = ft
    pruned = run.network()
    save_network(pruned, args.output)
    out = {
        "model": args.model,
        "output": args.output,
        "dataset": data.to_dict(),
        "pruning": report.to_dict(),
        "accuracy_before": acc_before,
        "accuracy_after_pruning": acc_pruned,
        "accuracy_after_finetuning": acc_final if ft_dict else None,
        "finetuning": ft_dict,
        "layer_densities": pruned.layer_densities(),
        "density": pruned.density,
        "seconds": time.perf_counter() - t0,
    }
    if args.json:
        emit_json(out)
        return exit_code(ft)
    print(report)
    print(f"test accuracy on {data.name}: before {acc_before:.4f}, after pruning {acc_pruned:.4f}"
          + (f", after {args.epochs} fine-tuning epoch(s) {acc_final:.4f}" if ft_dict else ""))
    print("saved network densities per layer: "
          + ", ".join(f"{d:.4g}" for d in pruned.layer_densities())
          + f" (overall {pruned.density:.4g}) to {args.output}")
    return exit_code(ft)
