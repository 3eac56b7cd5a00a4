"""``import mipnet`` keeps numpy's medium-sized temporaries on the heap (mipnet.core.malloc)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

#: in a fresh process: import mipnet, then count the page faults of 50 rounds of three 627 KB
#: temporaries (the shape of a back-substitution step of 100 rows over 784 inputs)
PROBE = """
import resource, numpy as np
import mipnet
from mipnet.core import malloc
x = np.ones((100, 784))
for _ in range(3):
    y = [np.abs(x), np.maximum(x, 0), np.minimum(x, 0)]; del y
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    y = [np.abs(x), np.maximum(x, 0), np.minimum(x, 0)]; del y
print(malloc.MALLOC_TUNED, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


def probe(**env):
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                         env={**os.environ, **env}).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_import_keeps_temporaries_on_the_heap_unless_told_not_to():
    tuned, faults = probe(MIPNET_MALLOC="")
    if not tuned:
        pytest.skip("not glibc: mallopt unavailable")
    assert faults < 500  # the heap's pages are reused
    kept, faults_system = probe(MIPNET_MALLOC="system")
    assert kept is False
    # the system's settings: each temporary is mapped and faulted in again (~150 pages each)
    assert faults_system > 10 * max(faults, 100)
