"""Mass effect: brain tissue pushed away by a space-occupying lesion (a hematoma), as a smooth displacement field.

Model (simple and physical). The skull is rigid and brain tissue nearly incompressible, so a new lesion of volume
``V`` must push the tissue around it outwards by that same volume:

* at the lesion surface the tissue moves ``V / A`` mm along the outward normal (``A``: the part of the lesion's
  surface that faces brain), so the volume swept through the surface equals ``V``;
* away from the lesion the push decays like the far field of a sphere growing in an incompressible medium,
  ``(R / (R + d))^2`` (``R``: radius of a sphere of volume ``V``; ``d``: distance to the lesion, mm): large bleeds
  reach further, which is what shifts the midline;
* the rigid skull stops it: the push tapers to zero at the brain's outer surface, so the displaced volume ends up
  absorbed by compressing the tissue and CSF in between (sulci and ventricles are effaced), and skull, scalp and air
  never move;
* the falx cerebri (when the midline is given) stops tissue from crossing the midline above its free edge, so the
  midline shifts under the falx (subfalcine), as on real scans, and not at the vertex.

The field is Gaussian-regularised and is zero inside the lesion: the lesion is what pushes, it stays where it was
drawn. :func:`apply_mass_effect` warps every image channel (linear), the label map and the brain mask (nearest) with
that one field, so image and labels stay aligned. All lengths are in mm; anisotropic and oblique grids are handled.

Field convention: ``field[c, z, y, x]`` with ``c = 0, 1, 2`` the physical LPS ``x, y, z`` components (mm) of the
tissue's displacement, given at the tissue's *new* position: the warped image at ``p`` shows what the original
showed at ``p - field(p)``. (An ITK displacement-field transform, which samples at ``p + u(p)``, uses ``-field``.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from ..anatomy import brain_mask, estimate_midline_x, physical_coordinate
from ..cases import Case, Geometry
from ..errors import GeometryError, InputError

__all__ = [
    "mass_effect_field",
    "apply_mass_effect",
    "measure_mass_effect",
    "SMOOTHING_MM",
    "SMOOTHING_RADIUS_FRACTION",
    "SKULL_TAPER_MM",
    "FALX_HALF_WIDTH_MM",
    "MAX_CALIBRATION",
    "DEEP_MIDLINE_MM",
]

#: Gaussian regularisation (sigma, mm) of the displacement field: at least this, ...
SMOOTHING_MM = 3.0
#: ... and at least this share of the lesion's equivalent radius: a hematoma's pressure is uniform, so the push
#: follows its overall shape, not every lobule (sharp lobules would otherwise tear and fold the tissue around them).
SMOOTHING_RADIUS_FRACTION = 0.3
#: Over this depth (mm) below the brain's outer surface the push tapers to zero (the rigid skull).
SKULL_TAPER_MM = 6.0
#: Half-width (mm) of the band around the midline in which the falx holds tissue back from crossing it.
FALX_HALF_WIDTH_MM = 6.0
#: The midline shift is measured this deep (mm) below the brain surface (septum pellucidum, third ventricle).
DEEP_MIDLINE_MM = 15.0
#: Largest factor by which the field is scaled up to make the volume swept out of the lesion equal its volume.
MAX_CALIBRATION = 3.0
# Voxel faces overestimate a smooth surface's area by 3/2 on average over orientations (|nx| + |ny| + |nz|).
_FACE_AREA_BIAS = 1.5


def _check_mask(mask: np.ndarray, shape: tuple[int, ...] | None, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise InputError(f"the {name} must be a 3D array [z, y, x], got shape {mask.shape}", where="mass effect")
    if shape is not None and mask.shape != tuple(shape):
        raise GeometryError(f"the {name} has shape {mask.shape}, the grid is {tuple(shape)}", where="mass effect",
                            fix="pass masks drawn on the case's own grid")
    return mask.astype(bool, copy=False)


def _box(mask: np.ndarray, pad: int) -> tuple[slice, ...]:
    """Bounding box of a non-empty mask, padded by ``pad`` voxels and clipped to the array."""
    nz = np.argwhere(mask)
    lo = np.maximum(nz.min(axis=0) - pad, 0)
    hi = np.minimum(nz.max(axis=0) + pad + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def _box_geometry(geometry: Geometry, box: tuple[slice, ...]) -> Geometry:
    origin = geometry.index_to_physical(np.array([s.start for s in box], float))
    return Geometry(geometry.spacing, tuple(origin), geometry.direction)


def _grid_to_physical(vectors_zyx: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Vectors in array-axis mm ``[(z, y, x), ...]`` -> physical LPS ``[(x, y, z), ...]`` (mm)."""
    return np.einsum("ck,k...->c...", geometry.direction_matrix, vectors_zyx[::-1])


def _physical_to_grid_mm(vectors_xyz: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Inverse of :func:`_grid_to_physical`."""
    return np.einsum("ck,k...->c...", np.linalg.inv(geometry.direction_matrix), vectors_xyz)[::-1]


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _brain_facing_area_mm2(lesion: np.ndarray, tissue: np.ndarray, spacing_zyx: tuple[float, float, float]) -> float:
    """Area (mm^2) of the lesion surface that borders ``tissue``, corrected for the voxel staircase."""
    area = 0.0
    for axis in range(3):
        face = float(np.prod([s for a, s in enumerate(spacing_zyx) if a != axis]))
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        a, b = lesion[tuple(lo)], lesion[tuple(hi)]
        ta, tb = tissue[tuple(lo)], tissue[tuple(hi)]
        area += face * float(np.count_nonzero(a & tb) + np.count_nonzero(b & ta))
    return area / _FACE_AREA_BIAS


def _outward_flux_mm3(vectors_zyx: np.ndarray, lesion: np.ndarray, spacing_zyx: tuple[float, float, float]) -> float:
    """Volume (mm^3) swept out through the lesion's voxel faces by a field in array-axis mm, sampled at the voxels
    just outside (the divergence theorem holds on the staircase surface as well as on the smooth one)."""
    flux = 0.0
    for axis in range(3):
        face = float(np.prod([s for a, s in enumerate(spacing_zyx) if a != axis]))
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        a, b = lesion[tuple(lo)], lesion[tuple(hi)]
        comp = vectors_zyx[axis]
        flux += face * float(comp[tuple(hi)][a & ~b].sum() - comp[tuple(lo)][b & ~a].sum())
    return flux


def mass_effect_field(lesion: np.ndarray, brain: np.ndarray, geometry: Geometry, *, strength: float = 1.0,
                      midline_x: float | None = None) -> np.ndarray:
    """Displacement (mm) of the brain around a space-occupying lesion (see the module docstring for the model).

    Args:
        lesion: boolean mask ``[z, y, x]`` of the lesion that pushes (e.g. the hematoma, without edema).
        brain: boolean brain mask ``[z, y, x]`` (the intracranial tissue that can move; everything outside it,
            skull, scalp and air, stays put).
        geometry: grid geometry (spacing and direction make every length physical).
        strength: share of the lesion volume pushed into the surrounding brain: 1 for a hematoma that displaces
            tissue, 0 for blood that takes the place of CSF or tissue without pushing (e.g. thin subarachnoid blood).
        midline_x: physical x (mm, LPS) of the mid-sagittal plane; when given, the falx cerebri keeps tissue
            above its free edge (assumed a tenth of the brain's height above its centroid) from crossing it.

    Returns:
        float32 array ``[3, z, y, x]``: physical LPS ``x, y, z`` components (mm) of the tissue displacement at each
        voxel (the warped image at ``p`` shows the original at ``p - field(p)``). Zero inside the lesion, outside
        the brain and for an empty lesion or ``strength == 0``.

    Raises:
        InputError: masks that are not 3D or do not share one shape, or a negative / non-finite strength.
    """
    brain = _check_mask(brain, None, "brain mask")
    lesion = _check_mask(lesion, brain.shape, "lesion mask")
    if not (math.isfinite(strength) and strength >= 0):
        raise InputError(f"mass effect strength must be a finite number >= 0, got {strength}", where="mass effect")
    field = np.zeros((3,) + brain.shape, np.float32)
    movable = brain & ~lesion
    if strength == 0 or not lesion.any() or not movable.any():
        return field
    spacing = geometry.spacing_zyx
    volume_mm3 = float(np.count_nonzero(lesion)) * float(np.prod(spacing))
    area = _brain_facing_area_mm2(lesion, movable, spacing)
    if area <= 0:  # nothing around the lesion to push
        return field
    push_mm = strength * volume_mm3 / area
    radius = (3.0 * volume_mm3 / (4.0 * math.pi)) ** (1.0 / 3.0)

    # Only the brain (and the lesion) can carry a displacement: work on their bounding box.
    box = _box(brain | lesion, pad=2)
    les, mov = lesion[box], movable[box]
    bgeo = _box_geometry(geometry, box)
    # Outward direction = away from the nearest lesion voxel; magnitude = push at the surface, decaying with distance.
    dist, nearest = ndimage.distance_transform_edt(~les, sampling=spacing, return_indices=True)
    grid = np.indices(les.shape, dtype=np.float32)
    offset = (grid - nearest.astype(np.float32)) * np.asarray(spacing, np.float32)[:, None, None, None]
    del grid, nearest
    norm = np.maximum(dist, 1e-6).astype(np.float32)
    # The surface of a voxel lesion lies half a voxel outside the centres of its outer voxels.
    surface_d = np.maximum(dist - 0.5 * min(spacing), 0.0)
    magnitude = (push_mm * (radius / (radius + surface_d)) ** 2).astype(np.float32)
    vec = offset * (magnitude / norm)[None]
    del offset, norm, magnitude
    # Normalised Gaussian smoothing over the non-lesion voxels: regularises the kinks of the nearest-point
    # direction (behind concavities) without bleeding the zero of the lesion into the push at its surface.
    outside = (~les).astype(np.float32)
    sigma = [max(SMOOTHING_MM, SMOOTHING_RADIUS_FRACTION * radius) / s for s in spacing]
    weight = np.maximum(ndimage.gaussian_filter(outside, sigma, mode="nearest"), 1e-6)
    vec = np.stack([ndimage.gaussian_filter(v * outside, sigma, mode="nearest") / weight for v in vec])
    vec = _grid_to_physical(vec, geometry).astype(np.float32)

    if midline_x is not None and np.isfinite(midline_x):
        # Falx cerebri: a rigid sheet in the midline from the vertex down to its free edge (about the level of the
        # corpus callosum). Tissue may slide along it but not cross it; below the free edge it can (subfalcine).
        z = physical_coordinate(bgeo, les.shape, 2)
        x = physical_coordinate(bgeo, les.shape, 0)
        bz = z[brain[box]]
        free_edge = float(bz.mean()) + 0.1 * float(bz.max() - bz.min())
        stiff = _smoothstep((z - free_edge) / 15.0) * np.exp(-0.5 * ((x - midline_x) / FALX_HALF_WIDTH_MM) ** 2)
        vec[0] *= 1.0 - stiff
        del z, x

    # The rigid skull: the push fades to zero at the brain's outer surface (the lesion counts as inside: blood
    # under a subdural pushes the brain beneath it).
    # (Padded: the edge of the array counts as outside, nothing lies beyond it.)
    inside = ndimage.distance_transform_edt(np.pad(brain[box] | les, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
    vec *= _smoothstep(inside / SKULL_TAPER_MM).astype(np.float32)[None]
    vec[:, ~mov] = 0.0
    # Smoothing, skull and falx take some of the push at the surface away: scale back so that the volume swept out
    # of the lesion is the lesion's (times strength). Capped, for lesions walled in by skull on most sides.
    swept = _outward_flux_mm3(_physical_to_grid_mm(vec, geometry), les, spacing)
    if swept > 0:
        vec *= np.float32(min(strength * volume_mm3 / swept, MAX_CALIBRATION))
    field[(slice(None),) + box] = vec
    return field


def _check_field(field: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    field = np.asarray(field, dtype=np.float32)
    if field.shape != (3,) + tuple(shape):
        raise GeometryError(f"the displacement field has shape {field.shape}, expected {(3,) + tuple(shape)}",
                            where="mass effect", fix="build it with mass_effect_field() on the case's grid")
    if not np.all(np.isfinite(field)):
        raise InputError("the displacement field contains NaN/Inf", where="mass effect")
    return field


def measure_mass_effect(field: np.ndarray, geometry: Geometry, *, lesion: np.ndarray, brain: np.ndarray | None = None,
                        midline_x: float | None = None) -> dict[str, Any]:
    """Measurements of a displacement field from :func:`mass_effect_field`.

    Args:
        field: ``[3, z, y, x]`` physical displacement (mm).
        geometry: grid geometry.
        lesion: the lesion that pushed.
        brain: brain mask: the midline shift is measured at least :data:`DEEP_MIDLINE_MM` below its surface, and
            the midline is found from it when ``midline_x`` is None.
        midline_x: physical x (mm, LPS) of the mid-sagittal plane.

    Returns:
        JSON-serialisable dict: ``lesion_volume_ml``; ``displaced_volume_ml`` (tissue volume pushed out through the
        lesion surface); ``max_displacement_mm``; ``lesion_side`` (``"left"`` = +x, ``"right"``, ``"midline"``);
        ``midline_shift_mm`` (largest displacement of the deep mid-sagittal plane along x, positive away from the
        lesion's side; None without a midline) and ``midline_shift_toward`` (the patient side it moved to).
    """
    lesion = _check_mask(lesion, np.shape(field)[1:], "lesion mask")
    field = _check_field(field, lesion.shape)
    spacing = geometry.spacing_zyx
    magnitude = np.sqrt(np.sum(field.astype(np.float64) ** 2, axis=0))
    flux = _outward_flux_mm3(_physical_to_grid_mm(field, geometry), lesion, spacing)
    out: dict[str, Any] = {
        "lesion_volume_ml": round(float(np.count_nonzero(lesion)) * geometry.voxel_volume_ml, 3),
        "displaced_volume_ml": round(flux / 1000.0, 3),
        "max_displacement_mm": round(float(magnitude.max(initial=0.0)), 3),
        "lesion_side": None, "midline_shift_mm": None, "midline_shift_toward": None,
    }
    if not lesion.any():
        return out
    brain = None if brain is None else _check_mask(brain, lesion.shape, "brain mask")
    if midline_x is None and brain is not None and brain.any():
        midline_x = estimate_midline_x(brain, geometry)
    centroid_x = float(geometry.index_to_physical(np.argwhere(lesion).mean(axis=0))[0])
    if midline_x is None:
        out["lesion_side"] = "left" if centroid_x > 0 else "right"
        return out
    offset = centroid_x - float(midline_x)
    out["lesion_side"] = "midline" if abs(offset) < 2.0 else ("left" if offset > 0 else "right")
    # The mid-sagittal plane: voxels within half a voxel of it (any orientation of the grid); with a brain mask only
    # its deep part, where a reader measures the shift (septum pellucidum, third ventricle), not the cortex.
    x = physical_coordinate(geometry, lesion.shape, 0)
    plane = (np.abs(x - float(midline_x)) <= 0.5 * max(geometry.spacing) + 1e-6) & ~lesion & (magnitude > 0)
    if brain is not None:
        deep = plane & (ndimage.distance_transform_edt(brain, sampling=spacing) >= DEEP_MIDLINE_MM)
        plane = deep if deep.any() else plane
    if not plane.any():
        out.update(midline_shift_mm=0.0, midline_shift_toward="none")
        return out
    ux = field[0][plane].astype(np.float64)
    if out["lesion_side"] == "midline":
        i = int(np.argmax(np.abs(ux)))
        shift, toward = abs(float(ux[i])), ("left" if ux[i] > 0 else "right")
    else:
        away = -1.0 if offset > 0 else 1.0  # a left lesion pushes the midline to the right (-x)
        shift = max(float((away * ux).max()), 0.0)
        toward = ("right" if away < 0 else "left") if shift > 0 else "none"
    out.update(midline_shift_mm=round(shift, 3), midline_shift_toward=toward)
    return out


def apply_mass_effect(case: Case, field: np.ndarray, *, lesion: np.ndarray, lesion_painted: bool = True,
                      midline_x: float | None = None) -> Case:
    """Warp a case with a mass-effect field: channels linearly, label and brain mask by nearest voxel, with one field.

    The lesion's own voxels keep their image values and label (the lesion pushes, it does not move). The tissue
    the lesion displaced comes to lie around it: with ``lesion_painted`` the image under the lesion already shows
    the lesion, so that tissue is taken from the nearest tissue voxels (for image, label and brain mask alike,
    which keeps them aligned); without it (a background warped before the lesion is painted) the image under the
    lesion is that tissue. Only tissue is ever read (never skull, air or painted blood); voxels the field does not
    move are copied unchanged (skull, air, outside the brain).

    Args:
        case: the case (any number of channels; label and brain mask optional).
        field: ``[3, z, y, x]`` physical displacement (mm) from :func:`mass_effect_field`.
        lesion: boolean mask of the lesion that pushes.
        lesion_painted: whether the image already shows the lesion.
        midline_x: physical x (mm, LPS) of the midline for the measurements (else from the case's brain mask, or
            from one derived from the image when the case has none).

    Returns:
        a new :class:`Case` on the same grid, with ``metadata["mass_effect"]`` = :func:`measure_mass_effect`.

    Raises:
        GeometryError: a field or lesion not on the case's grid.
        InputError: a non-finite field.
    """
    lesion = _check_mask(lesion, case.shape, "lesion mask")
    field = _check_field(field, case.shape)
    brain = case.brain_mask
    if midline_x is None:
        brain = brain_mask(case) if brain is None else brain
        midline_x = estimate_midline_x(brain, case.geometry) if brain.any() else None
    metadata = dict(case.metadata)
    metadata["mass_effect"] = measure_mass_effect(field, case.geometry, lesion=lesion, brain=brain,
                                                  midline_x=midline_x)
    moving = np.any(field != 0, axis=0) & ~lesion
    if not moving.any():
        return case.replace(channels={k: v.copy() for k, v in case.channels.items()}, metadata=metadata,
                            label=None if case.label is None else case.label.copy(),
                            brain_mask=None if case.brain_mask is None else case.brain_mask.copy())
    geometry = case.geometry
    # Source position (continuous index) of every moving voxel: p - field(p), converted to index units.
    step = _physical_to_grid_mm(field[:, moving], geometry) / np.asarray(geometry.spacing_zyx)[:, None]
    # Work on the box the sources can reach (linear interpolation reads one voxel further).
    reach = int(np.ceil(np.abs(step).max())) + 2
    box = _box(moving | lesion, pad=reach)
    inner = np.argwhere(moving[box]).T
    coords = inner.astype(np.float64) - step
    # Only tissue may be read: every voxel that is not (skull, air, and the painted lesion) takes the value of the
    # nearest tissue voxel, so that interpolation at the brain's edge never mixes in bone and blood never smears
    # into the displaced tissue. Image, label and brain mask read the same voxels, so they stay aligned.
    tissue = moving[box] if lesion_painted else (moving | lesion)[box]
    _, nearest = ndimage.distance_transform_edt(~tissue, sampling=geometry.spacing_zyx, return_indices=True)
    nearest = tuple(nearest)

    def warp(array: np.ndarray, order: int) -> np.ndarray:
        source = array[box][nearest]
        out = array.copy()
        values = ndimage.map_coordinates(source, coords, order=order, mode="nearest").astype(array.dtype)
        out[box][tuple(inner)] = values
        return out

    channels = {name: warp(image, 1) for name, image in case.channels.items()}
    label = None if case.label is None else warp(case.label, 0)
    new_brain = None if case.brain_mask is None else warp(case.brain_mask.astype(np.uint8), 0).astype(bool)
    return case.replace(channels=channels, label=label, brain_mask=new_brain, metadata=metadata)
