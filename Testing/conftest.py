"""Shared fixtures: where the real data is, and small synthetic cases for fast unit tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE_DATA = REPO / "Resources" / "SampleData"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real data (``../shared/data``); tests that need it skip when it is absent."""
    if not (SHARED_DATA / "brats2018").exists():
        pytest.skip(f"shared real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_data() -> Path:
    """The bundled sample data."""
    return SAMPLE_DATA


@pytest.fixture
def small_case():
    """A 24x28x20 two-channel MR case with a spherical 'tumour' (1.5 mm voxels, oblique-free)."""
    from SyntheticImagingLib.cases import Case, Geometry

    z, y, x = np.mgrid[:24, :28, :20]
    head = ((z - 12) / 10) ** 2 + ((y - 14) / 12) ** 2 + ((x - 10) / 8) ** 2 < 1
    tumour = ((z - 12) ** 2 + (y - 12) ** 2 + (x - 9) ** 2) < 9
    rng = np.random.default_rng(0)
    flair = np.where(head, 300 + rng.normal(0, 10, head.shape), 0) + tumour * 300
    t1 = np.where(head, 400 + rng.normal(0, 10, head.shape), 0) - tumour * 80
    return Case(case_id="small", channels={"FLAIR": flair, "T1": t1},
                geometry=Geometry((1.5, 1.5, 1.5), (-10.0, 20.0, 5.0)), label=tumour.astype(np.int16))
