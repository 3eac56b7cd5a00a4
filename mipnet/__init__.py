"""mipnet: analyse trained ReLU networks with mixed-integer programming.

The top level is a small facade over the layers (``mipnet.core``, ``mipnet.io``,
``mipnet.bounds``, ``mipnet.analyses``, ``mipnet.nn``, ...): the types and the one function
per task of the papers mipnet implements. Names are loaded on first use (PEP 562), so
``import mipnet`` imports neither torch nor highspy::

    import mipnet

    net = mipnet.load_network("net.onnx")
    dom = mipnet.LinfBall(x, 1.0, 0, 16)
    mipnet.count_regions(net, dom)                    # exact count of activation regions
    mipnet.find_stable_neurons(net, dom)              # stably active / inactive neurons
    mipnet.compress(net, dom)                         # lossless compression on the domain
    mipnet.verify_equivalence(net, pruned, dom, mode="top1")
    mipnet.pruning_gap(net, pruned, dom)              # exact worst-case output gap
    mipnet.allocate_sparsity((784, 100, 100, 10), density=0.001)

Each name lives in (and is documented by) the module listed in :data:`API`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from mipnet.core.errors import (
    DatasetError,
    DeviceUnavailableError,
    InvalidArgumentError,
    InvalidDomainError,
    InvalidNetworkError,
    MipnetError,
    PlotError,
    PruningError,
    SolverError,
    TrainingError,
    UnsupportedLayerError,
)

from mipnet.core.malloc import tune_malloc as _tune_malloc

# numpy's medium-sized temporaries come from the heap, not from fresh mappings (2-4x on the bounds
# of 784-input nets; mipnet.core.malloc); MIPNET_MALLOC=system keeps the system's settings
_tune_malloc()

__version__ = "0.1.0"

#: Public name -> the module that defines it (loaded on first access).
API = {
    # the network and its input domains
    "Network": "mipnet.core.network",
    "Domain": "mipnet.core.domain",
    "Box": "mipnet.core.domain",
    "LinfBall": "mipnet.core.domain",
    "L1Ball": "mipnet.core.domain",
    "Polytope": "mipnet.core.domain",
    "as_domain": "mipnet.core.domain",
    "Bounds": "mipnet.core.bounds",
    # files and torch models
    "load_network": "mipnet.io",
    "save_network": "mipnet.io",
    "from_torch": "mipnet.io.torch",
    "to_torch": "mipnet.io.torch",
    # pre-activation bounds
    "compute_bounds": "mipnet.bounds",
    "interval_bounds": "mipnet.bounds",
    "symbolic_bounds": "mipnet.bounds",
    "lp_bounds": "mipnet.bounds",
    # analyses
    "count_regions": "mipnet.analyses.regions",
    "sample_regions": "mipnet.analyses.regions",
    "plane_through_points": "mipnet.analyses.slices",
    "find_stable_neurons": "mipnet.analyses.stability",
    "compress": "mipnet.analyses.compression",
    "verify_equivalence": "mipnet.analyses.equivalence",
    "max_output_gap": "mipnet.analyses.equivalence",
    "pruning_gap": "mipnet.analyses.gap",
    # closed-form bounds and sparsity
    "all_bounds": "mipnet.theory",
    "allocate_sparsity": "mipnet.sparsity",
    # the torch side: data, training, pruning
    "load_dataset": "mipnet.nn.data",
    "make_mlp": "mipnet.nn.training",
    "train": "mipnet.nn.training",
    "prune": "mipnet.nn.pruning",
    "prune_and_finetune": "mipnet.nn.workflow",
}

#: Subpackages and modules reachable as attributes without an import (``mipnet.theory``).
_SUBMODULES = ("core", "io", "solver", "milp", "bounds", "analyses", "nn", "cli", "theory", "sparsity",
               "plotting", "demo")

_ERRORS = [
    "MipnetError",
    "InvalidNetworkError",
    "UnsupportedLayerError",
    "InvalidDomainError",
    "SolverError",
    "DatasetError",
    "InvalidArgumentError",
    "TrainingError",
    "PruningError",
    "DeviceUnavailableError",
    "PlotError",
]

__all__ = [*API, *_ERRORS, "__version__"]


def __getattr__(name: str):
    module = API.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'mipnet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))


if TYPE_CHECKING:  # static analysers and IDEs see the real imports
    from mipnet.analyses.compression import compress
    from mipnet.analyses.equivalence import max_output_gap, verify_equivalence
    from mipnet.analyses.gap import pruning_gap
    from mipnet.analyses.regions import count_regions, sample_regions
    from mipnet.analyses.slices import plane_through_points
    from mipnet.analyses.stability import find_stable_neurons
    from mipnet.bounds import compute_bounds, interval_bounds, lp_bounds, symbolic_bounds
    from mipnet.core.bounds import Bounds
    from mipnet.core.domain import Box, Domain, L1Ball, LinfBall, Polytope, as_domain
    from mipnet.core.network import Network
    from mipnet.io import load_network, save_network
    from mipnet.io.torch import from_torch, to_torch
    from mipnet.nn.data import load_dataset
    from mipnet.nn.pruning import prune
    from mipnet.nn.training import make_mlp, train
    from mipnet.nn.workflow import prune_and_finetune
    from mipnet.sparsity import allocate_sparsity
    from mipnet.theory import all_bounds
