"""``count_regions``: the exact count, with its promise (package docstring)."""

from __future__ import annotations

import dataclasses
from typing import Optional

from mipnet.bounds import check_bounds_arg
from mipnet.core.errors import InvalidArgumentError
from mipnet.core.network import Network
from mipnet.core.numerics import Tolerances

from .common import is_int, is_real
from .engine import METHODS, VERTEX_MAX_DIM, count_arrays, region_objects
from .results import RegionCount

__all__ = ["count_regions", "METHODS", "VERTEX_MAX_DIM"]


def _check_options(method, time_limit, max_regions, tol, milp_margin, tolerances, bounds=None) -> None:
    if method not in METHODS:
        raise InvalidArgumentError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(bounds, str):
        check_bounds_arg("bounds", bounds, None)
    if time_limit is not None and not (is_real(time_limit) and time_limit > 0):
        raise InvalidArgumentError(f"time_limit must be a positive number of seconds or None, got {time_limit!r}")
    if max_regions is not None and not (is_int(max_regions) and max_regions >= 1):
        raise InvalidArgumentError(f"max_regions must be a positive integer or None, got {max_regions!r}")
    if not (is_real(tol) and 0 < tol < 1e-2):
        raise InvalidArgumentError(f"tol must be in (0, 0.01) (a relative resolution), got {tol!r}")
    if not (is_real(milp_margin) and 0 < milp_margin < 1e-2):
        raise InvalidArgumentError(f"milp_margin must be in (0, 0.01) (relative to the normalised network), "
                                   f"got {milp_margin!r}")
    if tolerances is not None and not isinstance(tolerances, Tolerances):
        raise InvalidArgumentError(f"tolerances must be a mipnet.core.numerics.Tolerances, got {tolerances!r}")


def count_regions(
    net: Network,
    domain,
    *,
    method: str = "fast",
    time_limit: Optional[float] = None,
    max_regions: Optional[int] = None,
    return_regions: bool = False,
    merge_linear: bool = False,
    progress: bool = False,
    tol: float = 1e-12,
    milp_margin: float = 1e-8,
    bounds=None,
    tolerances: Optional[Tolerances] = None,
    executor=None,
) -> RegionCount:
    """Count the activation regions of ``net`` with non-empty interior inside ``domain``.

    Parameters
    ----------
    net : Network
    domain : Domain or (lower, upper)
        A box, a clipped L-infinity ball, a polytope, or an L1 ball: its 2^n facets become
        polytope rows, so every method counts on the ball itself, with at most 12 free inputs
        (:data:`~mipnet.analyses.regions.problem.L1_MAX_FREE`; "vertex": at most 7).
    method : {"fast", "vertex", "lp", "milp"}
        ``"fast"`` picks ``"vertex"`` for at most 7 free inputs and ``"lp"`` otherwise
        (see the package docstring); ``"milp"`` is the Serra et al. 2018 baseline.
    time_limit : float, optional
        Seconds; when reached the result is a lower bound (``exact=False``).
    max_regions : int, optional
        Stop after this many regions (then ``exact=False`` unless the search had ended; the
        vertex search then returns the cells it had not reached as ``frontier``).
    return_regions : bool
        Keep every region (pattern, interior point, affine map) in ``region_list``.
    merge_linear : bool
        Also count linear regions: adjacent regions with identical affine maps merged.
    progress : bool
        Show a tqdm progress bar on stderr.
    tol : float
        Resolution of the geometric tests, relative to the magnitudes involved (default
        1e-12): a vertex within ``tol (|v| + |c|)`` (plus the rounding errors of the vertex
        and of the hyperplane) of a hyperplane ``a.v + c = 0`` lies on it; a cell whose
        certified inscribed radius is at most ``tol`` times the (normalised) domain's size
        has no interior. Never relative to the diameter of the domain.
    milp_margin : float
        The MILP accepts a pattern iff its pre-activation margin ``f >= milp_margin``,
        relative: measured on the normalised network, whose pre-activations lie in about
        [-1, 1] on the domain.
    bounds : mipnet.bounds.Bounds or str, optional
        Pre-activation bounds of ``net`` on ``domain`` for the MILP, or the name of a
        :func:`mipnet.bounds.compute_bounds` method (computed on the normalised network; with
        ``executor``, on each unit's sub-domain); default LP bounds.
    tolerances : mipnet.core.numerics.Tolerances, optional
        The witness check's tolerances (default :data:`mipnet.core.numerics.DEFAULT`).
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Split the count into sign-prefix work units run there
        (:func:`mipnet.analyses.regions.parallel.count_regions_parallel`; ``bounds`` by name only).

    Returns
    -------
    RegionCount
        ``exact`` only if the search finished and every region's witness passed the check.
        On Ctrl-C (``KeyboardInterrupt``, also from inside a solve) the regions certified so
        far are returned within about a second, with status ``interrupted``.

    Notes
    -----
    Serra, Tjandraatmadja, Ramalingam, "Bounding and counting linear regions of deep
    neural networks", ICML 2018, arXiv:1711.02114 (the MILP method and the count).

    Examples
    --------
    >>> import numpy as np
    >>> from mipnet import Box, Network
    >>> net = Network([np.eye(2), np.ones((1, 2))], [np.zeros(2), np.zeros(1)])
    >>> count_regions(net, Box(-1, 1, dim=2)).regions
    4
    """
    _check_options(method, time_limit, max_regions, tol, milp_margin, tolerances, bounds)
    if executor is not None:
        from .parallel import count_regions_parallel

        return count_regions_parallel(net, domain, counter=count_regions, executor=executor, method=method,
                                      time_limit=time_limit, max_regions=max_regions,
                                      return_regions=return_regions, merge_linear=merge_linear,
                                      progress=progress, tol=tol, milp_margin=milp_margin, tolerances=tolerances,
                                      bounds=bounds if isinstance(bounds, str) else None)
    r, X, P = count_arrays(net, domain, method=method, time_limit=time_limit, max_regions=max_regions,
                           keep=return_regions, merge_linear=merge_linear, progress=progress, tol=tol,
                           milp_margin=milp_margin, bounds=bounds, tolerances=tolerances)
    if not return_regions:
        return r
    return dataclasses.replace(r, region_list=region_objects(net, P, X))
