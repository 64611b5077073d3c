"""Three-axis tuples (voxel indices, spacings, points) with the length checked, so they type as 3-tuples."""

from __future__ import annotations

from collections.abc import Iterable
from typing import SupportsFloat, SupportsIndex, SupportsInt

__all__ = ["int3", "float3"]


def int3(values: Iterable[SupportsInt | SupportsIndex]) -> tuple[int, int, int]:
    """``values`` (three of them: an index or shape per axis) as a tuple of three ints."""
    z, y, x = (int(v) for v in values)
    return z, y, x


def float3(values: Iterable[SupportsFloat | SupportsIndex]) -> tuple[float, float, float]:
    """``values`` (three of them: a spacing, point or angle per axis) as a tuple of three floats."""
    a, b, c = (float(v) for v in values)
    return a, b, c
