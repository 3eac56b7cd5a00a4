"""Result objects of the exact count: one region, and the count."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from mipnet.core.errors import InvalidArgumentError

from .common import RegionStatus

__all__ = ["Region", "RegionCount"]


@dataclass(frozen=True, eq=False)
class Region:
    """One activation region: its pattern, a point inside it, and the network on it.

    Attributes
    ----------
    pattern : bool array (N,)
        ``pre-activation > 0`` of every hidden neuron (as :meth:`Network.activation_pattern`).
    interior_point : array (n0,)
        A witness: a point of the region's interior that passed
        :func:`mipnet.core.numerics.check_witnesses` (in the domain, its float64 forward-pass
        pattern equals ``pattern``, no pre-activation is floating-point zero except for
        neurons identically zero on the region, which are off).
    A, c : arrays (n_out, n0), (n_out,)
        ``f(x) = A x + c`` on the region.
    """

    pattern: np.ndarray
    interior_point: np.ndarray
    A: np.ndarray
    c: np.ndarray

    def to_dict(self) -> dict:
        return {
            "pattern": "".join("1" if b else "0" for b in self.pattern),
            "interior_point": self.interior_point.tolist(),
            "A": self.A.tolist(),
            "c": self.c.tolist(),
        }

    def __str__(self) -> str:
        bits = "".join("1" if b else "0" for b in self.pattern)
        return f"Region(pattern={bits}, x={np.array2string(self.interior_point, precision=4)})"


@dataclass(frozen=True, eq=False)
class RegionCount:
    """The number of activation regions (non-empty interior) of a network on a domain.

    Attributes
    ----------
    regions : int
        Regions found, each with a certified witness (:class:`Region`) and a distinct
        pattern. The exact count when ``exact``; otherwise a lower bound.
    exact : bool
        True iff ``status`` is ``complete``: the search finished, every candidate region
        was certified or proven empty, and no cell was left undecided at the resolution limit.
    method, algorithm : str
        The method asked for and the algorithm that ran (``vertex``, ``lp``, ``milp``).
    seconds : float
    lp_solves, milp_solves : int
        Solver calls made (the vertex method needs none unless a witness needs repair).
    status : RegionStatus
        ``complete``, ``time_limit``, ``max_regions``, ``interrupted`` (Ctrl-C),
        ``unverified`` (a candidate could not be certified or a cell decided) or
        ``incomplete`` (the MILP's closure check found regions the MILP missed).
        A ``str`` enum: JSON shows the value.
    message : str
    linear_regions : int or None
        With ``merge_linear``: the regions after merging adjacent activation regions
        with identical affine maps (linear regions).
    region_list : tuple of Region or None
        With ``return_regions``.
    verified : int
        Regions whose witness passed the check (equals ``regions``).
    unverified : int
        Candidate regions whose witness failed and could not be repaired (not counted).
    rejected : int
        Candidates proven to have no interior by a certified LP (numerical artefacts; not counted).
    repaired : int
        Witnesses replaced by the centre of a certified Chebyshev ball before passing.
    undecided : int
        Cells (or MILP neighbours) that could be neither certified nor ruled out.
    frontier : tuple of bool arrays or None
        When the vertex search stopped at ``max_regions``: the sign prefixes (hidden neurons in
        order) of the cells it had not reached. Their sub-domains
        (:func:`mipnet.analyses.regions.parallel.prefix_domain`) hold exactly the regions not
        found, so counting them continues the search without repeating it. None otherwise.
    """

    regions: int
    exact: bool
    method: str
    algorithm: str
    seconds: float
    lp_solves: int = 0
    milp_solves: int = 0
    status: RegionStatus = RegionStatus.COMPLETE
    message: str = ""
    linear_regions: Optional[int] = None
    region_list: Optional[tuple] = None
    verified: int = 0
    unverified: int = 0
    nodes: int = 0
    tol: float = 1e-12
    widths: tuple = ()
    free_inputs: int = 0
    rejected: int = 0
    repaired: int = 0
    undecided: int = 0
    frontier: Optional[tuple] = None

    @property
    def lower_bound(self) -> int:
        """The count as a lower bound (equal to the count when exact)."""
        return self.regions

    @property
    def regions_per_second(self) -> float:
        return self.regions / self.seconds if self.seconds > 0 else float("inf")

    def patterns(self) -> np.ndarray:
        """Patterns of the returned regions, shape (regions, N); needs ``return_regions``."""
        if self.region_list is None:
            raise InvalidArgumentError("no regions kept: call count_regions(..., return_regions=True)")
        if not self.region_list:
            return np.zeros((0, sum(self.widths[1:-1])), dtype=bool)
        return np.stack([r.pattern for r in self.region_list])

    def to_dict(self, *, include_regions: bool = True) -> dict:
        d = {
            "regions": int(self.regions),
            "exact": bool(self.exact),
            "method": self.method,
            "algorithm": self.algorithm,
            "seconds": float(self.seconds),
            "regions_per_second": float(self.regions_per_second) if self.seconds > 0 else None,
            "lp_solves": int(self.lp_solves),
            "milp_solves": int(self.milp_solves),
            "status": RegionStatus(self.status).value,
            "message": self.message,
            "verified": int(self.verified),
            "unverified": int(self.unverified),
            "rejected": int(self.rejected),
            "repaired": int(self.repaired),
            "undecided": int(self.undecided),
            "nodes": int(self.nodes),
            "tol": float(self.tol),
            "widths": list(self.widths),
            "free_inputs": int(self.free_inputs),
        }
        if self.linear_regions is not None:
            d["linear_regions"] = int(self.linear_regions)
        if include_regions and self.region_list is not None:
            d["region_list"] = [r.to_dict() for r in self.region_list]
        return d

    def __str__(self) -> str:
        net = "-".join(map(str, self.widths))
        head = f"{self.regions:,} activation regions" if self.exact else f"at least {self.regions:,} activation regions"
        s = (f"{head} of Network({net}) ({self.algorithm} method, {self.seconds:.3g} s, "
             f"{self.lp_solves} LP / {self.milp_solves} MILP solves)")
        if self.linear_regions is not None:
            s += f"; {self.linear_regions:,} linear regions after merging"
        if not self.exact:
            s += f"; stopped: {RegionStatus(self.status).value} -- a lower bound"
        if self.unverified or self.undecided:
            s += (f"; {self.unverified} candidate regions failed the witness check, "
                  f"{self.undecided} cells were at the resolution limit")
        return s
