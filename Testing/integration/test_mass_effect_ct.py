"""Mass effect of intraparenchymal bleeds on the bundled head-CT template: midline shift grows with size, bone stays."""

from __future__ import annotations

import numpy as np
import pytest

from SyntheticImagingLib.anatomy import BONE_HU, head_masks, physical_coordinate
from SyntheticImagingLib.api import sample_ct_head
from SyntheticImagingLib.lesions.hemorrhage import synthesize_hemorrhage_mask
from SyntheticImagingLib.lesions.mass_effect import apply_mass_effect, mass_effect_field


@pytest.fixture(scope="module")
def template():
    case = sample_ct_head()
    return case, head_masks(case.channels["CT"], case.geometry)


@pytest.fixture(scope="module")
def bleeds(template):
    """A 5 ml and a 60 ml lobar bleed in the right fronto-parietal white matter, above the ventricles' floor."""
    case, masks = template
    geometry = case.geometry
    z = physical_coordinate(geometry, case.shape, 2)[masks.brain]
    y = physical_coordinate(geometry, case.shape, 1)[masks.brain]
    centre = (masks.midline_x - 42.0, float(y.mean()), float(z.mean()) + 15.0)  # patient right = -x
    out = {}
    for volume in (5.0, 60.0):
        lesion = synthesize_hemorrhage_mask(masks, geometry, subtype="intraparenchymal", volume_ml=volume,
                                            side="right", center_xyz=centre, rng=np.random.default_rng(7))
        ct = case.channels["CT"].copy()
        ct[lesion] = 70.0  # acute blood
        bleed = case.replace(channels={"CT": ct}, label=lesion.astype(np.int16), brain_mask=masks.brain)
        field = mass_effect_field(lesion, masks.brain, geometry, midline_x=masks.midline_x)
        out[volume] = (bleed, lesion, field, apply_mass_effect(bleed, field, lesion=lesion,
                                                               midline_x=masks.midline_x))
    return out


def test_large_bleed_shifts_the_midline_to_the_other_side(bleeds):
    _, lesion, _, warped = bleeds[60.0]
    info = warped.metadata["mass_effect"]
    assert info["lesion_volume_ml"] == pytest.approx(60.0, rel=0.02)
    assert info["lesion_side"] == "right"
    assert info["midline_shift_mm"] > 1.0 and info["midline_shift_toward"] == "left", info
    assert info["displaced_volume_ml"] == pytest.approx(60.0, rel=0.1)
    assert info["max_displacement_mm"] < 20.0


def test_small_bleed_shifts_less(bleeds):
    small, large = bleeds[5.0][3].metadata["mass_effect"], bleeds[60.0][3].metadata["mass_effect"]
    assert small["midline_shift_mm"] < large["midline_shift_mm"]
    assert small["max_displacement_mm"] < large["max_displacement_mm"]


@pytest.mark.parametrize("volume", [5.0, 60.0])
def test_no_bone_moves(template, bleeds, volume):
    _, masks = template
    bleed, lesion, field, warped = bleeds[volume]
    fixed = masks.skull | masks.air
    assert not np.any(field[:, fixed]), "the displacement field reaches bone or air"
    before, after = bleed.channels["CT"], warped.channels["CT"]
    assert np.array_equal(after[fixed], before[fixed])
    assert np.array_equal(after >= BONE_HU, before >= BONE_HU), "bone-density voxels appeared or vanished"
    assert np.array_equal(warped.label > 0, lesion) and np.array_equal(after[lesion], before[lesion])
    # The pushed brain keeps brain densities (no blood or bone dragged into it).
    moved = np.any(field != 0, axis=0)
    assert moved.any() and after[moved].max() < BONE_HU
