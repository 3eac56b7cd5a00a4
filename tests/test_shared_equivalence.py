"""The MNIST 8x8 equivalence benchmarks of nnequiv-experiments: published verdicts and derived counterexamples.

All five published instances are equivalent (Teuber et al., ICTAI 2021; Kleine Büning et al., CP 2020);
the four derived instances in benchmarks.json are not (a stored witness shows a top-1 disagreement).
Instance loading lives here (and in the benchmarks), not in the library.
"""

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from mipnet import Domain
from mipnet.analyses.equivalence import top1_margin, verify_equivalence

FOLDER = Path(__file__).resolve().parents[2] / "shared" / "models" / "equivalence"
pytestmark = pytest.mark.skipif(not (FOLDER / "benchmarks.json").is_file(),
                                reason=f"shared equivalence benchmarks not found at {FOLDER}")


@lru_cache(maxsize=None)
def _benchmarks() -> dict:
    return json.loads((FOLDER / "benchmarks.json").read_text())


@lru_cache(maxsize=None)
def _net(name):
    from mipnet.io import load_network

    return load_network(FOLDER / name)


def load_instance(name):
    """(net_a, net_b, domain, property dict) of a published or derived instance."""
    b = _benchmarks()
    for inst in b["instances"] + b["derived_nonequivalent_instances"]:
        if inst["name"] == name:
            ip = inst["input_property"]
            return _net(inst["net_a"]), _net(inst["net_b"]), Domain(ip["lower"], ip["upper"]), inst
    raise KeyError(name)


def _verify(name, **kw):
    a, b, dom, inst = load_instance(name)
    if inst["property"] == "top1":
        return verify_equivalence(a, b, dom, mode="top1", **kw), (a, b, dom, inst)
    return verify_equivalence(a, b, dom, mode="epsilon", epsilon=inst["epsilon"], **kw), (a, b, dom, inst)


PUBLISHED = [
    "MNIST_small-top",
    "MNIST_medium-top",
    "MNIST_large-epsilon",
    "MNIST_large-top",
    pytest.param("MNIST_larger-top", marks=pytest.mark.slow),  # about 3-4 s on 2 cores
]
DERIVED = [
    "MNIST_small-top@9003",
    "MNIST_medium-top@9003",
    "MNIST_large-epsilon-pair_top1@9000.2",
    "MNIST_large-top-pair@9800.2",
]


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_instances_are_equivalent(name):
    res, (a, b, dom, inst) = _verify(name, time_limit=120)
    assert inst["expected_verdict"] == "equivalent"
    assert res.verdict == "equivalent", res
    assert res.gap_upper_bound <= res.epsilon + res.tol
    # independent falsification attempt: no sample violates the property
    X = dom.sample(3000, seed=11, include_vertices=True)
    fa, fb = a.forward(X), b.forward(X)
    if inst["property"] == "top1":
        assert np.all(top1_margin(fa, fb) <= 0)
    else:
        assert np.abs(fa - fb).max() <= inst["epsilon"]


def test_stored_witnesses_disagree():
    for name in DERIVED:
        a, b, dom, inst = load_instance(name)
        x = np.array(inst["witness"]["x"])
        assert dom.contains(x)
        assert np.argmax(a.forward(x)) == inst["witness"]["top1_a"]
        assert np.argmax(b.forward(x)) == inst["witness"]["top1_b"] != inst["witness"]["top1_a"]


def _check_counterexample(res, a, b, dom):
    assert res.verdict == "not_equivalent", res
    x = res.counterexample
    assert dom.contains(x)
    fa, fb = a.forward(x), b.forward(x)
    assert np.argmax(fa) != np.argmax(fb) and top1_margin(fa, fb)[0] > 0


@pytest.mark.parametrize("name", DERIVED)
def test_derived_instances_have_counterexamples(name):
    res, (a, b, dom, inst) = _verify(name, time_limit=120)
    assert inst["expected_verdict"] == "not_equivalent"
    _check_counterexample(res, a, b, dom)


@pytest.mark.parametrize("name", [
    "MNIST_small-top@9003",
    "MNIST_large-epsilon-pair_top1@9000.2",
    pytest.param("MNIST_medium-top@9003", marks=pytest.mark.slow),  # about 6 s on 2 cores
    pytest.param("MNIST_large-top-pair@9800.2", marks=pytest.mark.slow),  # about 4 s
])
def test_derived_counterexamples_found_by_milp(name):
    # samples=0: only the domain's centre is tried before the MILPs, which must find the disagreement
    res, (a, b, dom, _) = _verify(name, time_limit=120, samples=0)
    _check_counterexample(res, a, b, dom)
    assert res.num_milps >= 1
