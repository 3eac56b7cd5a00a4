"""Helpers shared by the region counters and the exact slices (:mod:`mipnet.analyses.slices`).

One implementation each of: the network check, read-only result arrays, pattern keys,
option checks, the comparison of affine maps and the merge of adjacent pieces into
connected components (linear regions).
"""

from __future__ import annotations

import enum
import math
import numbers

import numpy as np

from mipnet.core.errors import InvalidNetworkError
from mipnet.core.network import Network

__all__ = [
    "RegionStatus",
    "check_net",
    "readonly",
    "pattern_key",
    "packed_keys",
    "is_real",
    "is_int",
    "same_affine_map",
    "connected_labels",
]


class RegionStatus(str, enum.Enum):
    """How a region count (or a slice) ended; a ``str`` too, so JSON and ``== "complete"`` work.

    ``COMPLETE``: the search finished and every region is certified (the count is exact).
    ``TIME_LIMIT``, ``MAX_REGIONS``, ``INTERRUPTED`` (Ctrl-C): stopped early; the count is a
    lower bound. ``UNVERIFIED``: the search finished but some candidate region could not be
    certified (its witness failed the check and could not be repaired) or decided; the
    count (certified regions only) is a lower bound. ``INCOMPLETE``: the search finished but
    a check after it found regions the search had missed (the MILP's closure check); they
    are counted, but the count is not proven complete.
    """

    COMPLETE = "complete"
    TIME_LIMIT = "time_limit"
    MAX_REGIONS = "max_regions"
    INTERRUPTED = "interrupted"
    UNVERIFIED = "unverified"
    INCOMPLETE = "incomplete"

    def __str__(self) -> str:
        return self.value


def check_net(net) -> Network:
    if not isinstance(net, Network):
        raise InvalidNetworkError(
            f"net must be a mipnet.Network, got {type(net).__name__}; "
            "convert torch/ONNX models with mipnet.io.load_network or mipnet.torch_io"
        )
    return net


def readonly(a, dtype=None) -> np.ndarray:
    """A read-only copy of ``a`` (result objects hand out arrays that cannot be changed)."""
    a = np.array(a, dtype=dtype, copy=True)
    a.setflags(write=False)
    return a


def pattern_key(pattern) -> bytes:
    """Hashable key of one activation pattern (bool vector): ``np.asarray(p, bool).tobytes()``.

    ``PlanePartition.pattern_set()`` and ``SegmentPartition.pattern_set()`` hold these keys,
    so ``pattern_key(net.activation_pattern(x)) in partition.pattern_set()`` works.
    """
    return np.ascontiguousarray(np.asarray(pattern, dtype=bool).reshape(-1)).tobytes()


def packed_keys(P: np.ndarray) -> list:
    """Compact keys (bit-packed bytes) of the rows of a bool pattern matrix."""
    P = np.atleast_2d(np.asarray(P, dtype=bool))
    packed = np.ascontiguousarray(np.packbits(P, axis=1))
    return [row.tobytes() for row in packed]


def is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_)) and math.isfinite(float(x))


def is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_))


def same_affine_map(M1, m1, M2, m2, tol: float, scale_M: float, scale_m: float) -> np.ndarray:
    """Rows where two batches of affine maps ``M x + m`` agree within ``tol`` of the given scales.

    ``M1, M2`` have shape (k, ...) and ``m1, m2`` shape (k, ...); maps agree when every entry of
    ``M1 - M2`` is at most ``tol * scale_M`` and every entry of ``m1 - m2`` at most ``tol * scale_m``.
    """
    k = len(M1)
    dM = np.abs(np.asarray(M1) - np.asarray(M2)).reshape(k, int(np.prod(np.shape(M1)[1:]))).max(axis=1, initial=0.0)
    dm = np.abs(np.asarray(m1) - np.asarray(m2)).reshape(k, int(np.prod(np.shape(m1)[1:]))).max(axis=1, initial=0.0)
    return (dM <= tol * scale_M) & (dm <= tol * scale_m)


def connected_labels(n: int, pairs) -> np.ndarray:
    """Label per node of the graph with ``n`` nodes and edges ``pairs`` (k, 2): connected components.

    Labels are 0, 1, ... numbered in order of each component's smallest node. This is the one
    merge of adjacent pieces with equal affine maps into linear regions, used by
    :func:`mipnet.analyses.regions.count_regions` and by the exact slices.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if n == 0:
        return np.zeros(0, dtype=np.int64)
    E = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(E)), (E[:, 0], E[:, 1])), shape=(n, n))
    _, lab = connected_components(graph, directed=False)
    # renumber in order of first appearance (deterministic, independent of scipy's numbering)
    _, first, inv = np.unique(lab, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inv.reshape(-1)].astype(np.int64)
