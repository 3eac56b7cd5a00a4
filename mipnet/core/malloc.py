"""glibc's malloc thresholds for numpy's medium-sized temporaries (Linux).

By default glibc serves an allocation above its mmap threshold (128 KB at start, raised
adaptively only after such a block is freed) with a fresh mapping, and gives the top of its heap
back to the system once more than twice that is free. mipnet's bounds create many temporaries of
a few hundred KB (a back-substitution step of 100 rows over 784 inputs makes five of 627 KB):
each was mapped, faulted in page by page and given back, every time. Measured in a fresh
process (``OPENBLAS_NUM_THREADS=1``): symbolic bounds of a random 784-100-100-10 net 9.3 -> 2.0
ms, alpha-CROWN 61-67 -> 33 ms; in a Dask worker's thread the equivalence boxes ran 1.2x slower,
2x with Dask's ``MALLOC_TRIM_THRESHOLD_=65536``.

:func:`tune_malloc` fixes the mmap threshold at 32 MB and the trim threshold at 64 MB with
``mallopt``: the limits glibc's adaptive mode reaches by itself once a 32 MB block has been freed
(as after training a torch model), so a process keeps at most 64 MB of free heap. ``import
mipnet`` calls it once; set the environment variable ``MIPNET_MALLOC=system`` to keep the
system's settings.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Optional

__all__ = ["tune_malloc", "MALLOC_TUNED", "ENV"]

#: the environment variable that keeps the system's malloc settings when set to ``system``
ENV = "MIPNET_MALLOC"
#: what :func:`tune_malloc` did in this process: None (not asked yet), True or False
MALLOC_TUNED: Optional[bool] = None

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


def tune_malloc() -> bool:
    """Fix glibc's mmap threshold at 32 MB and its trim threshold at 64 MB, once per process;
    True if it did (:data:`MALLOC_TUNED`). False off Linux, with another C library, or with
    ``MIPNET_MALLOC=system`` in the environment."""
    global MALLOC_TUNED
    if MALLOC_TUNED is None:
        MALLOC_TUNED = _tune()
    return MALLOC_TUNED


def _tune() -> bool:
    if not sys.platform.startswith("linux") or os.environ.get(ENV, "").strip().lower() == "system":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20))
    except (OSError, AttributeError):  # not glibc
        return False
