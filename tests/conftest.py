"""Shared fixtures: small random networks and the shared models folder."""

from pathlib import Path

import numpy as np
import pytest

from mipnet import Box, Network

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"


@pytest.fixture(scope="session")
def shared_models() -> Path:
    if not SHARED_MODELS.is_dir():
        pytest.skip(f"shared models not found at {SHARED_MODELS}")
    return SHARED_MODELS


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
