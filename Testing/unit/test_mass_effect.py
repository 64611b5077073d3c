"""Mass effect on a small synthetic head phantom: size dependence, alignment, rigid skull, identity, anisotropy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from SyntheticImagingLib.cases import Case, Geometry, LesionKind, Modality
from SyntheticImagingLib.errors import GeometryError, InputError
from SyntheticImagingLib.lesions.mass_effect import apply_mass_effect, mass_effect_field, measure_mass_effect

# Anisotropic voxels (2.5 x 2.5 x 4 mm), the y axis flipped like the bundled CT template.
GEOMETRY = Geometry((2.5, 2.5, 4.0), (-90.0, 110.0, -80.0), (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
SHAPE = (40, 88, 72)
MIDLINE_X = 0.0


def _physical() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = GEOMETRY.index_to_physical(np.moveaxis(np.indices(SHAPE, dtype=float), 0, -1))
    return p[..., 0], p[..., 1], p[..., 2]


@pytest.fixture(scope="module")
def phantom() -> dict[str, np.ndarray]:
    """Ellipsoidal brain (1.2 l) in a 5 mm skull in air, centred on x = 0 (the midline)."""
    x, y, z = _physical()
    r = np.sqrt((x / 65.0) ** 2 + (y / 80.0) ** 2 + (z / 55.0) ** 2)
    return {"x": x, "y": y, "z": z, "brain": r < 1.0, "skull": (r >= 1.0) & (r < 1.08), "air": r >= 1.08}


def _sphere(ph: dict[str, np.ndarray], volume_ml: float, center: tuple[float, float, float] = (30.0, 0.0, 5.0)
            ) -> np.ndarray:
    radius = (3.0 * volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
    cx, cy, cz = center
    return (ph["x"] - cx) ** 2 + (ph["y"] - cy) ** 2 + (ph["z"] - cz) ** 2 < radius**2


def _ct_case(ph: dict[str, np.ndarray], lesion: np.ndarray) -> Case:
    rng = np.random.default_rng(0)
    ct = np.where(ph["air"], -1000.0, np.where(ph["skull"], 1200.0, 30.0 + 5.0 * rng.standard_normal(SHAPE)))
    ct[lesion] = 70.0  # painted blood
    return Case(case_id="phantom", channels={"CT": ct}, geometry=GEOMETRY, modality=Modality.CT,
                lesion_kind=LesionKind.HEMORRHAGE, label=lesion.astype(np.int16), brain_mask=ph["brain"])


def test_displacement_grows_with_lesion_volume(phantom):
    results = []
    for volume in (5.0, 20.0, 60.0):
        lesion = _sphere(phantom, volume)
        field = mass_effect_field(lesion, phantom["brain"], GEOMETRY, midline_x=MIDLINE_X)
        m = measure_mass_effect(field, GEOMETRY, lesion=lesion, brain=phantom["brain"], midline_x=MIDLINE_X)
        # The lesion's volume is what is pushed out into the brain (the physical model's calibration).
        assert m["displaced_volume_ml"] == pytest.approx(m["lesion_volume_ml"], rel=0.05)
        assert m["lesion_side"] == "left" and m["midline_shift_toward"] == "right"
        results.append(m)
    maxima = [m["max_displacement_mm"] for m in results]
    shifts = [m["midline_shift_mm"] for m in results]
    assert maxima[0] < maxima[1] < maxima[2], maxima
    assert shifts[0] < shifts[1] < shifts[2], shifts
    assert shifts[2] > 2.0, "a 60 ml bleed 30 mm off the midline must shift it by millimetres"
    assert maxima[2] < 15.0, "the push stays in the range of real mass effect"


def test_field_zero_in_lesion_skull_and_air_and_points_away(phantom):
    lesion = _sphere(phantom, 20.0)
    field = mass_effect_field(lesion, phantom["brain"], GEOMETRY, midline_x=MIDLINE_X)
    assert field.shape == (3,) + SHAPE and field.dtype == np.float32
    outside = phantom["skull"] | phantom["air"] | lesion
    assert not np.any(field[:, outside])
    # Radially outwards from the lesion (physical components: x to the left, y posterior, z up).
    centre = np.array([30.0, 0.0, 5.0])
    offset = np.stack([phantom["x"], phantom["y"], phantom["z"]]) - centre[:, None, None, None]
    near = phantom["brain"] & ~lesion & (np.linalg.norm(offset, axis=0) < 35.0)
    cosine = (field * offset).sum(axis=0)[near] / (np.linalg.norm(field, axis=0) * np.linalg.norm(offset, axis=0)
                                                   )[near].clip(1e-9)
    assert np.median(cosine) > 0.95


def test_field_is_physical_on_anisotropic_grid(phantom):
    """The push at the same physical distance from a sphere is the same along x (2.5 mm voxels) and z (4 mm)."""
    lesion = _sphere(phantom, 10.0, center=(0.0, 0.0, 0.0))
    field = mass_effect_field(lesion, phantom["brain"], GEOMETRY)
    magnitude = np.linalg.norm(field, axis=0)
    zc, yc, xc = np.round(GEOMETRY.physical_to_index(np.zeros(3))).astype(int)
    along_x = magnitude[zc, yc, xc + 8]  # 20 mm from the centre
    along_z = magnitude[zc + 5, yc, xc]  # 20 mm from the centre
    assert along_x > 0.5 and along_z == pytest.approx(along_x, rel=0.15)


def test_pull_map_does_not_fold(phantom):
    lesion = _sphere(phantom, 60.0)
    field = mass_effect_field(lesion, phantom["brain"], GEOMETRY, strength=1.5)
    # Index-space displacement (z, y, x) of the pull map p -> p - field(p).
    step = np.stack([field[2] / 4.0, -field[1] / 2.5, field[0] / 2.5])
    jac = np.stack([np.stack([float(a == b) - np.gradient(step[a], axis=b) for b in range(3)]) for a in range(3)])
    det = np.linalg.det(np.moveaxis(jac, (0, 1), (-2, -1)))
    away = phantom["brain"] & ~ndimage.binary_dilation(lesion, np.ones((3, 3, 3), bool))
    assert det[away].min() > 0.1


def test_zero_lesion_gives_identity(phantom):
    empty = np.zeros(SHAPE, bool)
    field = mass_effect_field(empty, phantom["brain"], GEOMETRY, midline_x=MIDLINE_X)
    assert not field.any()
    assert not mass_effect_field(_sphere(phantom, 20.0), phantom["brain"], GEOMETRY, strength=0.0).any()
    case = _ct_case(phantom, empty)
    out = apply_mass_effect(case, field, lesion=empty)
    assert np.array_equal(out.channels["CT"], case.channels["CT"])
    assert np.array_equal(out.label, case.label) and np.array_equal(out.brain_mask, case.brain_mask)
    assert out.metadata["mass_effect"]["max_displacement_mm"] == 0.0


def test_skull_air_and_lesion_do_not_move(phantom):
    lesion = _sphere(phantom, 60.0)
    case = _ct_case(phantom, lesion)
    field = mass_effect_field(lesion, phantom["brain"], GEOMETRY, midline_x=MIDLINE_X)
    out = apply_mass_effect(case, field, lesion=lesion)
    fixed = phantom["skull"] | phantom["air"]
    assert np.array_equal(out.channels["CT"][fixed], case.channels["CT"][fixed])
    assert np.array_equal(out.channels["CT"][lesion], case.channels["CT"][lesion])
    assert np.array_equal(out.label > 0, lesion), "the lesion label is where it was drawn, and nowhere else"
    assert np.array_equal(out.brain_mask, phantom["brain"])
    # The painted blood does not smear into the pushed tissue: the tissue displaced by the lesion is tissue.
    moved = phantom["brain"] & ~lesion
    assert out.channels["CT"][moved].max() < 60.0
    assert not np.array_equal(out.channels["CT"][moved], case.channels["CT"][moved])
    assert out.metadata["mass_effect"]["midline_shift_mm"] > 2.0


def test_image_and_labels_stay_aligned(phantom):
    """A checkerboard label and an image equal to label * 100, warped with one field, still coincide."""
    z, y, x = np.indices(SHAPE)
    checker = (((z // 3) + (y // 4) + (x // 4)) % 2 == 1) & phantom["brain"]
    lesion = _sphere(phantom, 40.0)
    label = checker.astype(np.int16)
    label[lesion] = 2
    case = Case(case_id="checker", channels={"A": label * 100.0, "B": label * 100.0 + 7.0}, geometry=GEOMETRY,
                label=label, brain_mask=phantom["brain"])
    field = mass_effect_field(lesion, phantom["brain"], GEOMETRY, midline_x=MIDLINE_X)
    out = apply_mass_effect(case, field, lesion=lesion)
    image, warped = out.channels["A"], out.label.astype(np.float32) * 100.0
    assert np.allclose(out.channels["B"] - 7.0, image, atol=1e-3)
    moved = np.any(field != 0, axis=0)
    assert moved.sum() > 0.5 * phantom["brain"].sum()
    # Wherever the linear interpolation sees one label value only, the nearest-voxel label is that value.
    pure = np.isin(image, (0.0, 100.0, 200.0))
    assert pure[moved].mean() > 0.3
    assert np.array_equal(image[pure], warped[pure])
    # Elsewhere (label boundaries) they differ by less than half a step almost everywhere.
    assert (np.abs(image - warped)[moved] < 50.0).mean() > 0.97
    # Only label values that existed, and the lesion unmoved.
    assert set(np.unique(out.label)) <= {0, 1, 2} and np.array_equal(out.label == 2, lesion)


def test_flipped_grid_gives_the_same_physical_result(phantom):
    """Physical field components: the same head stored with the y axis reversed gives the same (flipped) field."""
    lesion = _sphere(phantom, 20.0)
    case = _ct_case(phantom, lesion)
    field = mass_effect_field(lesion, phantom["brain"], GEOMETRY, midline_x=MIDLINE_X)
    out = apply_mass_effect(case, field, lesion=lesion, midline_x=MIDLINE_X)
    last = GEOMETRY.index_to_physical(np.array([0.0, SHAPE[1] - 1.0, 0.0]))
    flipped_geometry = Geometry(GEOMETRY.spacing, tuple(last), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    flip = np.s_[:, ::-1, :]
    field_f = mass_effect_field(lesion[flip], phantom["brain"][flip], flipped_geometry, midline_x=MIDLINE_X)
    assert np.allclose(field_f, field[(slice(None),) + flip], atol=1e-3)
    case_f = case.replace(channels={"CT": case.channels["CT"][flip]}, label=case.label[flip],
                          brain_mask=phantom["brain"][flip], geometry=flipped_geometry)
    out_f = apply_mass_effect(case_f, field_f, lesion=lesion[flip], midline_x=MIDLINE_X)
    # Equal up to ties between equidistant voxels where the lesion is filled with the nearest tissue.
    diff = np.abs(out_f.channels["CT"] - out.channels["CT"][flip])
    assert (diff > 0.5).sum() < 1e-3 * phantom["brain"].sum() and diff.max() < 10.0
    assert out_f.metadata["mass_effect"]["midline_shift_mm"] == pytest.approx(
        out.metadata["mass_effect"]["midline_shift_mm"], abs=0.05)


def test_bad_inputs_are_explained(phantom):
    lesion = _sphere(phantom, 5.0)
    with pytest.raises(GeometryError):
        mass_effect_field(lesion[:-1], phantom["brain"], GEOMETRY)
    with pytest.raises(InputError):
        mass_effect_field(lesion, phantom["brain"], GEOMETRY, strength=-1.0)
    case = _ct_case(phantom, lesion)
    with pytest.raises(GeometryError):
        apply_mass_effect(case, np.zeros((3, 4, 4, 4), np.float32), lesion=lesion)


def test_falx_holds_the_upper_midline(phantom):
    """Above the falx's free edge tissue does not cross the midline; below it (subfalcine) it does."""
    lesion = _sphere(phantom, 20.0, center=(30.0, 0.0, 30.0))
    free = mass_effect_field(lesion, phantom["brain"], GEOMETRY)
    falx = mass_effect_field(lesion, phantom["brain"], GEOMETRY, midline_x=MIDLINE_X)
    plane = phantom["brain"] & (np.abs(phantom["x"]) < 1.3)
    high, low = plane & (phantom["z"] >= 30.0), plane & (phantom["z"] <= 0.0)
    assert np.abs(falx[0][high]).max() < 0.2 * np.abs(free[0][high]).max()
    assert np.abs(falx[0][low]).max() > 0.5 * np.abs(free[0][low]).max() > 0.1
