"""Shared fixtures: small random networks, the shared models folder, executed notebooks."""

import os
import signal
from pathlib import Path

import pytest

from mipnet import Box, Network

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"

# A suite started as a background job of a non-interactive shell (as some CI runners start it)
# inherits SIGINT ignored, and so do its xdist workers and their children: Python then installs
# no KeyboardInterrupt handler, and mipnet (like any program) rightly ignores Ctrl-C. The interrupt
# tests send SIGINT to this process and to children: handle it by default here (a caught signal
# is reset to the default in a child at exec, so the children handle it too).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def shared_models() -> Path:
    if not SHARED_MODELS.is_dir():
        pytest.skip(f"shared models not found at {SHARED_MODELS}")
    return SHARED_MODELS


@pytest.fixture(scope="module")
def executed(request):
    """The notebook named by the test module's ``NOTEBOOK``, run once per module
    (:func:`notebook_runner.execute_notebook`)."""
    from notebook_runner import execute_notebook

    name = getattr(request.module, "NOTEBOOK", None)
    if name is None:
        raise pytest.UsageError(f"{request.module.__name__} asks for `executed` but sets no NOTEBOOK = '...ipynb'")
    return execute_notebook(name)


@pytest.fixture
def small_net() -> Network:
    return Network.random([3, 8, 6, 2], seed=5)


@pytest.fixture
def unit_box3():
    return Box(-1.0, 1.0, dim=3)


def random_nets():
    """(widths, seed) pairs covering several depths and widths."""
    return [
        ([2, 5, 3], 0),
        ([3, 8, 6, 2], 1),
        ([4, 6, 6, 6, 3], 2),
        ([5, 10, 1], 3),
        ([6, 12, 8, 4], 4),
    ]


@pytest.fixture
def read_only_dir(tmp_path) -> Path:
    """A directory no new file can be written to (root ignores permission bits: /sys or /proc)."""
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        return ro
    import tempfile

    for cand in ("/sys", "/proc"):  # root ignores permission bits; these refuse new files even to root
        try:
            fd, probe = tempfile.mkstemp(dir=cand)
        except OSError:
            return Path(cand)
        os.close(fd)
        os.remove(probe)
    pytest.skip("no read-only directory available to this user")
