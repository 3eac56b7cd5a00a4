"""Activation regions of a ReLU network on an input domain: exact counts, estimates, bounds.

An *activation pattern* says which hidden neurons are on (pre-activation > 0). mipnet
counts the patterns whose *activation region* inside the domain D has non-empty interior
(Serra, Tjandraatmadja and Ramalingam, ICML 2018, arXiv:1711.02114). Such a region is a
convex polytope: the pattern fixes every pre-activation as an affine function of x.

What "exact" promises
---------------------
``count_regions(...).exact`` is True only if the search finished **and every counted
region has a witness** that passes the one check of :mod:`mipnet.core.numerics`
(:func:`~mipnet.core.numerics.check_witnesses`: in D, its float64 forward-pass pattern --
pre-activations within rounding noise of zero snapped to zero -- equals the region's
pattern, and no pre-activation is zero there except for neurons identically zero on the
region). Patterns are distinct. A witness that fails is repaired (the centre of a
certified Chebyshev ball of the pattern's region, checked again); a candidate proven to
have no interior is dropped; a candidate that can be neither certified nor ruled out,
or a cell at the resolution limit, leaves the count as a lower bound of certified regions
(status ``unverified``). Time limits, region budgets and Ctrl-C give lower bounds too.

Numerics
--------
The network and domain are first normalised (:mod:`.problem`): the box becomes about
[-1, 1]^n and every neuron is scaled by a power of two so that its pre-activation lies in
about [-1, 1] -- exact transformations that keep every pattern. Tolerances are relative
to the magnitudes involved (``tol``, default 1e-12), never to the diameter of the domain,
and HiGHS's answers are certified in float64 (:mod:`.chebyshev`). Counts are then the same
for weights of 1e-6 and of 1, and for a box of +-1e12 and one of +-1e4 that already holds
every region.

Exact counting (:func:`count_regions`)
--------------------------------------
``"vertex"`` (:mod:`.vertex`; the fast method for at most 7 free inputs)
    Depth-first construction of the arrangement with cells held by their vertices; no LP.
``"lp"`` (:mod:`.lp`; the fast method in any dimension)
    The same depth-first search with each cell held as rows of one HiGHS LP and a
    certified interior ball per cell.
``"milp"`` (:mod:`.milp`; baseline and cross-check)
    Serra et al. 2018: the MILP with an interior margin and no-good cuts, re-solved until
    infeasible; a closure walk across the found regions' facets certifies their neighbours
    and cuts them at once (the MILP is re-solved about once per group of regions the walk
    does not reach) and reports regions the MILP could not see.

Speed (4-16-16-2 net on [-1, 1]^4, 9,013 regions, a shared 2-core machine): vertex
~6,000 regions/s, LP ~60 regions/s, MILP ~20 regions/s (its closure walk; the plain
one-MILP-per-region loop: ~1-2 regions/s).

Inputs whose box has lower == upper are fixed; regions are counted in the remaining
(free) coordinates. With ``merge_linear`` adjacent regions with one affine map are merged
into linear regions (:mod:`.merge`).

Estimates and bounds (:mod:`.estimates`)
----------------------------------------
:func:`sample_regions` (distinct patterns at random inputs: a lower bound),
:func:`parity_lower_bound` (MIPBound, Serra and Ramalingam, AAAI 2020, arXiv:1810.03370)
and :func:`network_specific_bound` (the upper bound of the same paper).

Work units
----------
The depth-first searches are pure functions of (network, domain, start cell): any
subtree can be explored independently, which is how a distributed engine would split
the count later (``DESIGN.md``).
"""

from __future__ import annotations

from .common import RegionStatus
from .count import METHODS, VERTEX_MAX_DIM, count_regions
from .estimates import (
    NetworkSpecificBound,
    ParityBound,
    SampleCount,
    network_specific_bound,
    parity_lower_bound,
    sample_regions,
)
from .results import Region, RegionCount

__all__ = [
    "Region",
    "RegionCount",
    "RegionStatus",
    "count_regions",
    "SampleCount",
    "sample_regions",
    "ParityBound",
    "parity_lower_bound",
    "NetworkSpecificBound",
    "network_specific_bound",
    "METHODS",
    "VERTEX_MAX_DIM",
]
