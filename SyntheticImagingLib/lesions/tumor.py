"""Synthetic brain-tumour masks: a smooth random blob inside the brain, optionally split into core and edema."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..anatomy import distance_mm, estimate_midline_x
from ..cases import Geometry
from ..errors import InputError
from ..triples import int3
from .shapes import (
    MAX_LESION_FRACTION,
    approx_depth_mm,
    blob,
    check_mask,
    fit_to_count,
    hemisphere,
    pick_voxel,
    smooth_noise,
    voxel_count,
)

__all__ = ["synthesize_tumor_mask", "split_core_edema", "CORE_FRACTION_RANGE"]

#: Share of the whole tumour labelled core when subregions are asked for (drawn uniformly per tumour).
CORE_FRACTION_RANGE = (0.25, 0.5)


def split_core_edema(whole: np.ndarray, geometry: Geometry, *, core_fraction: float, shape_variety: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Label a whole-tumour mask as core (1, its deepest part) and edema (2, the rest, around the core).

    Args:
        whole: boolean whole-tumour mask.
        geometry: grid geometry.
        core_fraction: share of the voxels labelled core (0..1).
        shape_variety: 0..1, irregularity of the core outline.
        rng: random generator.

    Returns:
        int16 label array (0 outside ``whole``).
    """
    whole = np.asarray(whole, dtype=bool)
    n_whole = int(whole.sum())
    label = whole.astype(np.int16) * 2
    n_core = int(round(float(np.clip(core_fraction, 0.0, 1.0)) * n_whole))
    if n_core == 0:
        return label
    # Work on the tumour's bounding box (+1 voxel): the depth inside it is all that matters.
    nz = np.argwhere(whole)
    box = tuple(slice(max(0, int(a) - 1), int(b) + 2) for a, b in zip(nz.min(axis=0), nz.max(axis=0)))
    full_label = label
    whole, label = whole[box], label[box].copy()
    depth = distance_mm(np.pad(whole, 1), geometry)[1:-1, 1:-1, 1:-1]
    r_eq = (3.0 * n_whole * geometry.voxel_volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
    field = depth / max(float(depth.max()), 1e-6)
    if shape_variety > 0:
        field = field + 0.3 * float(shape_variety) * smooth_noise(whole.shape, geometry, 0.3 * r_eq, rng)
    seed = int3(np.unravel_index(int(np.argmax(np.where(whole, depth, -1.0))), whole.shape))
    # Keep an edema rim of at least one voxel (up to 3 mm where the tumour is thick enough) around the core.
    room = whole
    for rim_mm in (3.0, 2.0 * max(geometry.spacing), 1.01 * max(geometry.spacing), 1.01 * min(geometry.spacing)):
        inner = whole & (depth > rim_mm)
        labels, _ = ndimage.label(inner, structure=np.ones((3, 3, 3), bool))
        if inner[seed] and (labels == labels[seed]).sum() >= n_core:
            room = inner
            break
    core = fit_to_count(field, room, n_core, seed=seed, voxel_ml=geometry.voxel_volume_ml, where="tumour core")
    label[core] = 1
    full_label[box] = label
    return full_label


def synthesize_tumor_mask(brain: np.ndarray, geometry: Geometry, *, volume_ml: float,
                          center_xyz: tuple[float, float, float] | None = None, subregions: bool = False,
                          shape_variety: float = 0.5, rng: np.random.Generator, side: str = "any",
                          exclude: np.ndarray | None = None) -> np.ndarray:
    """A random tumour mask of a given volume strictly inside the brain.

    The centre is a random brain voxel deep enough for a sphere of the requested volume to mostly fit (or the
    allowed voxel nearest ``center_xyz``); the shape is a :func:`~.shapes.blob` of exactly the requested voxel
    count, so the volume is met to within half a voxel whenever it fits.

    Args:
        brain: boolean brain mask ``[z, y, x]``.
        geometry: its geometry.
        volume_ml: whole-tumour volume in ml (core + edema with ``subregions``).
        center_xyz: physical point ``(x, y, z)`` mm (LPS) to centre on, or None for a random place.
        subregions: label core 1 and edema 2 (edema surrounds the core) instead of one label 1.
        shape_variety: 0 = smooth ellipsoid, 1 = very irregular.
        rng: random generator (the only source of randomness: the same seed gives the same mask).
        side: ``"left"`` (+x in LPS), ``"right"`` or ``"any"`` hemisphere for the (random) centre.
        exclude: voxels the tumour must not use (e.g. other lesions), or None.

    Returns:
        int16 label array ``[z, y, x]``.

    Raises:
        InputError: bad masks or options, or a volume larger than fits (the message names the requested and the
            largest possible volume).
    """
    where = "tumour synthesis"
    brain = check_mask(brain, name="brain mask", where=where)
    if not brain.any():
        raise InputError("the brain mask is empty", where=where, fix="pass the brain mask of the case")
    if not 0.0 <= float(shape_variety) <= 1.0:
        raise InputError(f"shape_variety must lie in [0, 1], got {shape_variety}", where=where)
    n = voxel_count(volume_ml, geometry, where=where)
    allowed = brain.copy()
    if exclude is not None:
        allowed &= ~check_mask(exclude, name="exclusion mask", where=where, shape=brain.shape)
    voxel_ml = geometry.voxel_volume_ml
    max_n = max(0, min(int(MAX_LESION_FRACTION * brain.sum()) - int((brain & ~allowed).sum()), int(allowed.sum())))
    if n > max_n:
        raise InputError(
            f"requested tumour volume {volume_ml:.3g} ml is too large for this brain: at most {max_n * voxel_ml:.3g} "
            f"ml is possible ({MAX_LESION_FRACTION:.0%} of the {brain.sum() * voxel_ml:.3g} ml brain, less other "
            "lesions)", where=where, fix="ask for a smaller volume or fewer lesions")
    depth = approx_depth_mm(allowed, geometry)
    r_eq = (3.0 * n * voxel_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
    candidates = allowed & hemisphere(side, brain.shape, geometry,
                                      estimate_midline_x(brain, geometry) if side != "any" else 0.0)
    if center_xyz is None:
        # Away from the brain's edge: deep enough for most of an equal-volume sphere.
        deep = candidates & (depth >= min(0.7 * r_eq, 0.6 * float(depth[candidates].max(initial=0.0))))
        candidates = deep if deep.any() else candidates
    center = pick_voxel(candidates, geometry, rng=rng, center_xyz=center_xyz, where=where, what="tumour centre")
    whole = blob(allowed, geometry, center_zyx=center, n_voxels=n, shape_variety=float(shape_variety), rng=rng,
                 where=where)
    if not subregions:
        return whole.astype(np.int16)
    core_fraction = float(rng.uniform(*CORE_FRACTION_RANGE))
    return split_core_edema(whole, geometry, core_fraction=core_fraction, shape_variety=float(shape_variety),
                            rng=rng)
