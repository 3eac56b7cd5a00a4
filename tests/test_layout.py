"""The architecture of the package, checked on its source with ``ast`` (nothing is imported).

Layers, from the bottom up (a module may import from its own layer and the layers before it,
never from a later one; DESIGN.md, "Data flows down this list and never back")::

    core      mipnet.core                      errors, network, domains, bounds types, numerics, results
    io        mipnet.io                        files, ONNX, torch conversion at the edge
    parallel  mipnet.parallel                  work units run on executors (in-process, Dask)
    solver    mipnet.solver                    every HiGHS call
    milp      mipnet.milp                      the MILP encodings (arrays into HiGHS; a Pyomo block)
    bounds    mipnet.bounds, mipnet.theory     sound pre-activation bounds; closed-form region bounds
    formulations  mipnet.milp.pyomo            the Pyomo block users compose (computes LP bounds when
                                               none are given, so it stands above ``bounds``)
    analyses  mipnet.analyses, mipnet.sparsity, mipnet.plotting
    nn        mipnet.nn                        the torch side: data, training, pruning, workflows
    cli       mipnet.cli, mipnet.demo, mipnet.__main__

Where the top-level modules sit, and why:

- ``mipnet.theory`` (closed-form and expected-rank region bounds) needs only ``core``; it is
  a bound on the network like those of ``mipnet.bounds``, and the analyses read it
  (``analyses.regions`` compares counts with it), so it sits in the ``bounds`` layer.
- ``mipnet.sparsity`` (the allocation that maximises the expected region bound) reads
  ``theory`` and is read by ``nn.pruning`` and ``nn.workflow``: it sits beside the analyses
  (DESIGN.md: "Sparsity and pruning sit beside the analyses").
- ``mipnet.plotting`` draws the results of the analyses and of ``sparsity`` (duck-typed) and
  is used by ``nn.sweeps`` and the CLI: ``analyses`` layer.
- ``mipnet.demo`` chains everything, torch included, like a CLI command: ``cli`` layer.
- The root package ``mipnet`` is the facade (:data:`mipnet.API`, loaded lazily): it stands
  outside the layers, and no module of mipnet imports from it except its ``__version__``.

Every import counts: module level and inside functions (a lazy import is still a
dependency), but not those under ``if TYPE_CHECKING:`` (never executed). An import of
``mipnet.a.b`` is an edge to ``mipnet.a.b`` (a submodule named in ``from mipnet.a import b``
counts as that submodule).

Violations in modules that other sessions are reorganising (``NOT_OURS`` below) mark a
rule's test xfail, with every offending import in the reason; anywhere else they fail.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "mipnet"

LAYERS = [
    ("core", ("mipnet.core",)),
    ("io", ("mipnet.io",)),
    ("parallel", ("mipnet.parallel",)),
    ("solver", ("mipnet.solver",)),
    ("milp", ("mipnet.milp",)),
    ("bounds", ("mipnet.bounds", "mipnet.theory")),
    ("formulations", ("mipnet.milp.pyomo",)),
    ("analyses", ("mipnet.analyses", "mipnet.sparsity", "mipnet.plotting")),
    ("nn", ("mipnet.nn",)),
    ("cli", ("mipnet.cli", "mipnet.demo", "mipnet.__main__")),
]

#: Layers that never touch torch nor the torch side of mipnet (DESIGN.md: "Nothing below the
#: importers knows about torch modules"; "analyses never import nn").
TORCH_FREE = ("mipnet.core", "mipnet.solver", "mipnet.milp", "mipnet.bounds", "mipnet.analyses")

#: Modules of those layers allowed to use torch as a tensor library, and why. They may import
#: torch only inside functions (importing them, or ``mipnet.bounds``, does not load torch) and
#: never the torch side of mipnet (``mipnet.nn``, torch modules).
TORCH_TENSORS = {
    "mipnet.bounds.alpha": "alpha-CROWN's slope optimisation is batched gradient ascent (autograd, CPU or "
                           "CUDA); its result is re-evaluated in numpy, so torch never decides a bound",
}

#: Modules other sessions were reorganising when these tests were written (not the torch side's
#: to fix): a violation of a rule in one of them marks that rule's test xfail, with every
#: offending import in the reason, instead of failing it. Violations anywhere else fail.
#: Empty since the equivalence/properties cycle was broken: every rule holds in every module.
NOT_OURS: dict = {}


# ---------------------------------------------------------------------------- the import graph
@dataclass(frozen=True)
class Import:
    importer: str  # module name
    target: str  # module imported (mipnet.x.y, or a third-party top-level name)
    names: tuple  # names taken from it (from-imports)
    path: str  # file, relative to the repository
    line: int
    lazy: bool  # inside a function or method

    def where(self) -> str:
        what = f"from {self.target} import {', '.join(self.names)}" if self.names else f"import {self.target}"
        return f"{self.path}:{self.line}: {what}" + (" (in a function)" if self.lazy else "")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PKG.rglob("*.py")) if "__pycache__" not in p.parts}


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node, lazy=False):
    """(node, lazy) for every import, skipping ``if TYPE_CHECKING:`` bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for c in child.orelse:
                yield from _walk_one(c, lazy)
            continue
        yield from _walk_one(child, lazy)


def _walk_one(node, lazy):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node, lazy
    yield from _walk(node, lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))


def _resolve_relative(module: str, is_pkg: bool, level: int, name: str | None) -> str:
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([name] if name else []))


def _imports_of(module: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    rel = str(path.relative_to(ROOT))
    out = []
    for node, lazy in _walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                out.append(Import(module, a.name, (), rel, node.lineno, lazy))
            continue
        target = node.module if not node.level else _resolve_relative(
            module, path.name == "__init__.py", node.level, node.module)
        plain, subs = [], []
        for a in node.names:
            sub = f"{target}.{a.name}"
            (subs if sub in MODULES else plain).append(a.name)
        if plain or not subs:
            out.append(Import(module, target, tuple(plain), rel, node.lineno, lazy))
        for name in subs:
            out.append(Import(module, f"{target}.{name}", (), rel, node.lineno, lazy))
    return out


IMPORTS = [imp for m, p in MODULES.items() for imp in _imports_of(m, p)]
INTERNAL = [imp for imp in IMPORTS if imp.target == "mipnet" or imp.target.startswith("mipnet.")]


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _layer(module: str) -> int | None:
    # the most specific prefix decides (mipnet.milp.pyomo is not in the milp layer)
    best = max(((len(p), i) for i, (_, prefixes) in enumerate(LAYERS) for p in prefixes if _under(module, p)),
               default=None)
    return None if best is None else best[1]


def _not_ours(module: str) -> str | None:
    return next((why for prefix, why in NOT_OURS.items() if _under(module, prefix)), None)


def _check(rule: str, bad: list[Import]) -> None:
    """Fail on violations in our modules; xfail (listing them) on those only in NOT_OURS."""
    ours = [i for i in bad if _not_ours(i.importer) is None]
    assert not ours, f"{rule}: imports that break the layout:\n  " + "\n  ".join(dict.fromkeys(i.where() for i in ours))
    if bad:
        listed = dict.fromkeys(f"{i.where()} [{_not_ours(i.importer)}]" for i in bad)
        pytest.xfail(f"{rule}: violations in modules of other sessions: " + "; ".join(listed))


# ---------------------------------------------------------------------------- the rules
def test_the_parser_sees_the_package():
    assert {"mipnet", "mipnet.core.network", "mipnet.analyses.regions", "mipnet.nn.workflow", "mipnet.cli"} <= set(MODULES)
    assert all(_layer(m) is not None for m in MODULES if m != "mipnet"), [m for m in MODULES if _layer(m) is None]
    lazy = [i for i in INTERNAL if i.lazy]
    assert lazy and any(i.importer == "mipnet.demo" for i in lazy)  # function-level imports are read


def test_core_imports_only_core():
    bad = [i for i in INTERNAL if _under(i.importer, "mipnet.core") and not _under(i.target, "mipnet.core")]
    _check("core", bad)


def _torch_side() -> set[str]:
    """mipnet modules that import torch at module level (importing them imports torch)."""
    return {i.importer for i in IMPORTS if not i.lazy and i.target.split(".")[0] == "torch"}


def test_analyses_and_below_never_import_torch_or_nn():
    torch_side = _torch_side()
    assert "mipnet.io.torch" in torch_side
    bad = []
    for i in IMPORTS:
        if not any(_under(i.importer, p) for p in TORCH_FREE):
            continue
        if i.target.split(".")[0] == "torch" and i.importer in TORCH_TENSORS and i.lazy:
            continue  # a tensor library, imported on use (TORCH_TENSORS)
        if i.target.split(".")[0] == "torch" or _under(i.target, "mipnet.nn") or i.target in torch_side:
            bad.append(i)
    _check("torch_free", bad)


def test_torch_tensor_exemptions_are_lazy_and_real():
    """Each TORCH_TENSORS module exists, uses torch, and imports it only inside functions."""
    for mod in TORCH_TENSORS:
        assert mod in MODULES, mod
        uses = [i for i in IMPORTS if i.importer == mod and i.target.split(".")[0] == "torch"]
        assert uses and all(i.lazy for i in uses), [i.where() for i in uses]


def test_no_private_names_across_modules():
    bad = []
    for i in INTERNAL:
        for n in i.names:
            if n.startswith("_") and not (n.startswith("__") and n.endswith("__")) and i.target != i.importer:
                bad.append(i)
        private_part = [p for p in i.target.split(".") if p.startswith("_") and p not in ("__init__", "__main__")]
        if private_part:
            bad.append(i)
    _check("private", bad)


def test_only_the_solver_layer_imports_highspy():
    bad = [i for i in IMPORTS if i.target.split(".")[0] == "highspy" and not _under(i.importer, "mipnet.solver")]
    assert not bad, "highspy outside mipnet/solver:\n  " + "\n  ".join(i.where() for i in bad)
    assert any(i.target == "highspy" for i in IMPORTS)  # the solver layer does


def test_nothing_imports_the_facade():
    bad = [i for i in INTERNAL if i.target == "mipnet" and set(i.names) - {"__version__"}]
    assert not bad, ("import from the module that defines the name, not from the facade `mipnet`:\n  "
                     + "\n  ".join(i.where() for i in bad))


def _graph() -> dict[str, set[str]]:
    g: dict[str, set[str]] = {m: set() for m in MODULES}
    for i in INTERNAL:
        t = i.target
        while t not in MODULES and "." in t:  # `from mipnet.x import name`: the module mipnet.x
            t = t.rsplit(".", 1)[0]
        if t in MODULES and t != i.importer:
            g[i.importer].add(t)
    return g


def _cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index, low, on, stack, comps = {}, {}, set(), [], []
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return comps


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    comps = _cycles(_graph())
    bad = [i for comp in comps for i in INTERNAL
           if i.importer in comp and any(_under(i.target, c) and i.target != i.importer for c in comp)]
    mixed = [c for c in comps if any(_not_ours(m) is None for m in c)]  # a cycle through one of our modules
    assert not mixed, ("import cycles:\n  " + "\n  ".join(" <-> ".join(c) for c in mixed) + "\nthrough:\n  "
                       + "\n  ".join(i.where() for i in bad))
    _check("cycles", bad)


def test_layers_import_only_downwards():
    bad = []
    for i in INTERNAL:
        if i.importer == "mipnet" or i.target == "mipnet":
            continue  # the facade (see test_nothing_imports_the_facade)
        a, b = _layer(i.importer), _layer(i.target)
        if a is not None and b is not None and b > a:
            bad.append(i)
    _check("layers", bad)


# ---------------------------------------------------------------------------- the facade
def test_import_mipnet_is_light():
    code = ("import sys, mipnet\n"
            "heavy = [m for m in ('torch', 'highspy', 'pyomo', 'onnx', 'scipy', 'matplotlib') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "import mipnet.analyses.regions, mipnet.bounds, mipnet.sparsity, mipnet.theory\n"
            "assert 'torch' not in sys.modules, 'the analyses pulled in torch'\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_facade_names_resolve_to_their_modules():
    import importlib

    import mipnet

    for name, module in mipnet.API.items():
        obj = getattr(mipnet, name)
        assert obj is getattr(importlib.import_module(module), name), name
        assert name in mipnet.__all__ and name in dir(mipnet)
    assert mipnet.theory is importlib.import_module("mipnet.theory")
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        mipnet.nonexistent  # noqa: B018
    for name in ("Network", "LinfBall", "load_network", "count_regions", "find_stable_neurons", "compress",
                 "verify_equivalence", "allocate_sparsity", "compute_bounds", "pruning_gap"):
        assert name in mipnet.API


# ---------------------------------------------------------------------------- benchmarks
def test_benchmark_scripts_import():
    """Every benchmark script imports (its module level only: nothing is run or written)."""
    scripts = sorted((ROOT / "benchmarks").glob("bench_*.py"))
    assert scripts
    code = ("import runpy, sys\n"
            f"sys.path.insert(0, {str(ROOT / 'benchmarks')!r})\n"
            f"for f in {[str(s) for s in scripts]!r}:\n"
            "    runpy.run_path(f, run_name='benchmark_import_check')\n")
    env = {**os.environ, "MPLBACKEND": "Agg",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
