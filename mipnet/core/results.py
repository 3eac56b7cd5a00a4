"""Shared pieces of result objects: JSON-safe values."""

from __future__ import annotations

import math
from typing import Optional

__all__ = ["json_float"]


def json_float(v) -> Optional[float]:
    """A JSON-safe float: None for None, infinities and NaN."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None
