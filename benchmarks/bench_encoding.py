"""Time to build the MILP of a ReLU network: mipnet's array builder vs its Pyomo
builder vs OMLT's Pyomo formulation (when OMLT is installed), in one run.

    python benchmarks/bench_encoding.py

Prints a table and writes the section "Encoding" of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, machine, markdown_table, write_section  # noqa: E402

from mipnet import Box, Network  # noqa: E402
from mipnet.bounds import interval_bounds, lp_bounds  # noqa: E402
from mipnet.milp.encoding import HighsModel  # noqa: E402
from mipnet.milp.pyomo import build_pyomo_model  # noqa: E402


def omlt_build(net: Network, dom, path: Path):
    import pyomo.environ as pyo
    from mipnet.io.onnx import save_onnx
    from omlt import OmltBlock
    from omlt.io import load_onnx_neural_network
    from omlt.neuralnet import ReluBigMFormulation
    import onnx

    save_onnx(net, path, dtype="float32")
    model = onnx.load(str(path))
    bounds = {i: (float(dom.lower[i]), float(dom.upper[i])) for i in range(net.input_dim)}

    def build():
        defn = load_onnx_neural_network(model, input_bounds=bounds)
        m = pyo.ConcreteModel()
        m.nn = OmltBlock()
        m.nn.build_formulation(ReluBigMFormulation(defn))
        return m

    return build


def main() -> None:
    cases = [
        ("784-100-100-10", Network.random([784, 100, 100, 10], seed=0), Box(0, 1, dim=784)),
        ("64-100-80-60-40-20-10", Network.random([64, 100, 80, 60, 40, 20, 10], seed=0), Box(0, 16, dim=64)),
    ]
    try:
        import omlt  # noqa: F401

        have_omlt = True
    except ImportError:
        have_omlt = False
    rows = []
    tmp = Path(tempfile.mkdtemp())
    for name, net, dom in cases:
        ia = interval_bounds(net, dom)
        t_fast, model = best_time(lambda: HighsModel(dom).add_network(net, ia) and None, repeat=5)
        t_lp, lp = best_time(lambda: lp_bounds(net, dom), repeat=1)
        t_fast_lp, _ = best_time(lambda: HighsModel(dom).add_network(net, lp), repeat=3)
        t_pyomo, _ = best_time(lambda: build_pyomo_model(net, dom, bounds=ia), repeat=1)
        t_omlt = None
        if have_omlt:
            t_omlt, _ = best_time(omlt_build(net, dom, tmp / f"{name}.onnx"), repeat=1)
        m = HighsModel(dom)
        m.add_network(net, ia)
        rows.append(
            [
                name,
                f"{m.num_cols} / {m.num_rows} / {ia.num_unstable}",
                t_fast,
                t_pyomo,
                t_pyomo / t_fast,
                t_omlt if t_omlt is not None else "n/a",
                (t_omlt / t_fast) if t_omlt is not None else "n/a",
                t_lp,
                f"{lp.num_unstable} ({lp.lp_solves} LPs)",
                t_fast_lp,
            ]
        )
        print(rows[-1], flush=True)
    header = [
        "network", "cols / rows / binaries (IA)", "fast build s", "Pyomo build s", "Pyomo / fast",
        "OMLT build s", "OMLT / fast", "LP tightening s", "binaries after LP", "fast build with LP bounds s",
    ]
    table = markdown_table(header, rows)
    print(table)
    body = (
        f"`python benchmarks/bench_encoding.py` on {machine()}, {time.strftime('%Y-%m-%d')}. Random He-initialised "
        "nets (seed 0); domain [0,1]^784 and [0,16]^64. *fast* = `HighsModel.add_network` (numpy CSR arrays "
        "into highspy, IA bounds, best of 5); *Pyomo* = `build_pyomo_model` (same formulation, same bounds); "
        "*OMLT* = OMLT's `ReluBigMFormulation` from the ONNX export, including its own bound propagation. "
        "Ratios are slower-builder time / fast-builder time measured in the same run. Target: fast < 0.2 s "
        "on 784-100-100-10 and >= 20x faster than OMLT.\n\n" + table
    )
    write_section("Encoding", body)


if __name__ == "__main__":
    main()
