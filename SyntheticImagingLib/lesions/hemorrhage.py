"""Synthetic intracranial hemorrhage masks of the five subtypes, placed by anatomy masks of a head CT.

* intraparenchymal: an irregular blob, lobar (near the cortex) or deep (basal ganglia / thalamus level), in one
  hemisphere and outside the ventricles;
* intraventricular: blood layering in the dependent (posterior, supine) part of the ventricles;
* subarachnoid: thin sheets in the sulci near the surface, or around the basal cisterns;
* subdural: a thin crescent along the inner table of the skull over one hemisphere (never across the midline);
* epidural: a biconvex lens of limited extent against the inner table.

Every mask stays inside the brain mask and never touches air or bone.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..anatomy import HeadMasks, head_masks_from_brain, physical_coordinate
from ..cases import Geometry
from ..errors import InputError
from .controls import HEMORRHAGE_SUBTYPES
from .shapes import (
    MAX_LESION_FRACTION,
    blob,
    check_mask,
    dependent_fill,
    extra_axial,
    hemisphere,
    pick_voxel,
    sulcal,
    voxel_count,
)

__all__ = ["synthesize_hemorrhage_mask", "LOBAR_PROBABILITY", "CISTERNAL_PROBABILITY"]

#: Share of intraparenchymal hemorrhages that are lobar (the rest are deep).
LOBAR_PROBABILITY = 0.5
#: Share of subarachnoid hemorrhages centred on the basal cisterns (the rest are over the convexity).
CISTERNAL_PROBABILITY = 0.3


def _as_head_masks(masks: HeadMasks | np.ndarray, geometry: Geometry, where: str) -> HeadMasks:
    if isinstance(masks, HeadMasks):
        if not masks.brain.any():
            raise InputError("the brain mask is empty", where=where, fix="check the head masks of the case")
        return masks
    brain = check_mask(masks, name="brain mask", where=where)
    if not brain.any():
        raise InputError("the brain mask is empty", where=where, fix="pass the brain mask of the case")
    return head_masks_from_brain(brain, geometry)


def synthesize_hemorrhage_mask(masks: HeadMasks | np.ndarray, geometry: Geometry, *, subtype: str,
                               volume_ml: float, side: str = "any",
                               center_xyz: tuple[float, float, float] | None = None, shape_variety: float = 0.5,
                               rng: np.random.Generator, exclude: np.ndarray | None = None) -> np.ndarray:
    """A random hemorrhage mask of one subtype and a given volume.

    With a brain mask alone (MR, or a skull-stripped CT) the brain is assumed to fill the skull: its outer shell
    stands for the inner table (for subdural and epidural blood), the midline comes from the mask's symmetry, and
    intraventricular blood is impossible (no ventricles are known).

    Args:
        masks: :class:`~SyntheticImagingLib.anatomy.HeadMasks` of the CT (see ``head_masks``), or a boolean brain
            mask ``[z, y, x]``.
        geometry: grid geometry.
        subtype: one of ``intraparenchymal``, ``intraventricular``, ``subarachnoid``, ``subdural``, ``epidural``.
        volume_ml: volume in ml (met to within half a voxel when it fits).
        side: ``"left"`` (+x in LPS), ``"right"`` or ``"any"``. Lateral subtypes (intraparenchymal, subdural,
            epidural) always stay in one hemisphere, drawn at random for ``"any"``.
        center_xyz: physical point ``(x, y, z)`` mm (LPS) to place the blood near, or None for a random place.
        shape_variety: 0 = smooth, 1 = very irregular.
        rng: random generator (the same seed gives the same mask).
        exclude: voxels the blood must not use (e.g. other lesions), or None.

    Returns:
        boolean mask ``[z, y, x]``.

    Raises:
        InputError: unknown subtype or side, bad masks, no ventricles for intraventricular blood, or a volume
            larger than fits (the message names the requested and the largest possible volume).
    """
    where = f"{subtype} hemorrhage synthesis"
    if subtype not in HEMORRHAGE_SUBTYPES:
        raise InputError(f"unknown hemorrhage subtype {subtype!r}", where="hemorrhage synthesis",
                         fix=f"use one of {', '.join(HEMORRHAGE_SUBTYPES)}")
    if side not in ("left", "right", "any"):
        raise InputError(f"side must be left, right or any, got {side!r}", where=where)
    if not 0.0 <= float(shape_variety) <= 1.0:
        raise InputError(f"shape_variety must lie in [0, 1], got {shape_variety}", where=where)
    head = _as_head_masks(masks, geometry, where)
    n = voxel_count(volume_ml, geometry, where=where)
    voxel_ml = geometry.voxel_volume_ml
    allowed = head.brain & ~head.skull & ~head.air
    taken = 0
    if exclude is not None:
        exclude = check_mask(exclude, name="exclusion mask", where=where, shape=head.shape)
        # Other lesions count against the lesion burden cap.
        taken = int((exclude & head.brain).sum())
        allowed &= ~exclude
    if subtype in ("intraparenchymal", "subdural", "epidural") and side == "any":
        side = "left" if rng.random() < 0.5 else "right"
    if side != "any":
        allowed &= hemisphere(side, head.shape, geometry, head.midline_x)

    if subtype == "intraventricular":
        return _intraventricular(head, allowed, geometry, n=n, side=side, center_xyz=center_xyz,
                                 shape_variety=shape_variety, rng=rng, where=where)

    max_n = max(0, min(int(MAX_LESION_FRACTION * head.brain.sum()) - taken, int(allowed.sum())))
    if n > max_n:
        raise InputError(
            f"requested {subtype} hemorrhage volume {volume_ml:.3g} ml is too large: at most {max_n * voxel_ml:.3g} ml "
            f"is possible here (brain {head.brain.sum() * voxel_ml:.3g} ml, side {side})", where=where,
            fix="ask for a smaller volume, side 'any', or fewer lesions")
    brain_depth = head.brain_depth(geometry)
    r_eq = (3.0 * n * voxel_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
    signed_x = physical_coordinate(geometry, head.shape, 0) - head.midline_x
    z_phys = physical_coordinate(geometry, head.shape, 2)
    brain_z = float(z_phys[head.brain].mean())

    if subtype == "intraparenchymal":
        region = allowed & ~head.ventricles
        if rng.random() < LOBAR_PROBABILITY:
            # Lobar: in the cerebral white matter under the cortex, above the skull base.
            candidates = region & (brain_depth >= 8.0) & (brain_depth <= 25.0 + r_eq) & (z_phys >= brain_z - 20.0)
        else:
            # Deep: basal ganglia / thalamus, 12-35 mm from the midline around the level of the brain's centre.
            candidates = region & (brain_depth >= 20.0) & (np.abs(signed_x) >= 12.0) & (np.abs(signed_x) <= 35.0) \
                & (np.abs(z_phys - brain_z) <= 25.0)
        if center_xyz is None:
            # Room for most of an equal-volume sphere (blob() grows around whatever is in the way).
            roomy = candidates & (brain_depth >= min(0.6 * r_eq, 0.6 * float(brain_depth[region].max(initial=0.0))))
            candidates = roomy if roomy.any() else (candidates if candidates.any() else region)
        else:
            candidates = region
        center = pick_voxel(candidates, geometry, rng=rng, center_xyz=center_xyz, where=where,
                            what="hemorrhage centre")
        return blob(region, geometry, center_zyx=center, n_voxels=n, shape_variety=max(0.3, float(shape_variety)),
                    rng=rng, where=where)

    if subtype in ("subdural", "epidural"):
        surface = head.inner_table & allowed
        if not surface.any():
            raise InputError("no inner table of the skull is available on this side", where=where,
                             fix="use a head CT with the skull, another side, or fewer lesions")
        if center_xyz is None:
            # Over the convexity (where these collections usually are), away from the skull base and midline.
            convexity = surface & (np.abs(signed_x) >= 20.0) & (z_phys >= brain_z - 15.0)
            surface = convexity if convexity.any() else surface
        seed = pick_voxel(surface, geometry, rng=rng, center_xyz=center_xyz, where=where,
                          what=f"{subtype} hemorrhage centre")
        return extra_axial(allowed, head.brain, geometry, seed_zyx=seed, n_voxels=n, kind=subtype,
                           shape_variety=float(shape_variety), rng=rng, surface=head.surface_points(geometry),
                           where=where)

    # Subarachnoid.
    cisternal = rng.random() < CISTERNAL_PROBABILITY
    if center_xyz is not None:
        candidates = allowed
    elif cisternal:
        # Basal cisterns: near the midline, low in the brain, around its antero-posterior centre.
        y_phys = physical_coordinate(geometry, head.shape, 1)
        brain_y = float(y_phys[head.brain].mean())
        z_low = float(np.percentile(z_phys[head.brain], 20))
        candidates = allowed & (np.abs(signed_x) <= 10.0) & (np.abs(y_phys - brain_y) <= 25.0) \
            & (np.abs(z_phys - z_low) <= 10.0)
        candidates = candidates if candidates.any() else allowed & head.inner_table
    else:
        candidates = allowed & head.inner_table
    candidates = candidates if candidates.any() else allowed
    seed = pick_voxel(candidates, geometry, rng=rng, center_xyz=center_xyz, where=where,
                      what="subarachnoid hemorrhage centre")
    patch_mm = max(20.0, math.sqrt(n * voxel_ml * 1000.0 / 7.5))
    return sulcal(allowed, head.brain, geometry, seed_zyx=seed, n_voxels=n, shape_variety=float(shape_variety),
                  rng=rng, patch_mm=patch_mm, depth=brain_depth)


def _intraventricular(head: HeadMasks, allowed: np.ndarray, geometry: Geometry, *, n: int, side: str,
                      center_xyz: tuple[float, float, float] | None, shape_variety: float,
                      rng: np.random.Generator, where: str) -> np.ndarray:
    if not head.ventricles.any():
        raise InputError(
            "intraventricular hemorrhage needs the ventricles, and none are known for this case (a brain mask "
            "alone has none, and none were found in the CT)", where=where,
            fix="pass HeadMasks from head_masks() on a head CT whose ventricles are visible, or drop this subtype")
    ventricles = head.ventricles & head.brain & ~head.skull & ~head.air
    # ``allowed`` already holds the side: without one, blood layers in the lowest parts of all ventricles.
    room = ventricles & allowed
    available = int(room.sum())
    if n > available:
        raise InputError(
            f"requested intraventricular hemorrhage volume {n * geometry.voxel_volume_ml:.3g} ml exceeds the free "
            f"ventricle volume {available * geometry.voxel_volume_ml:.3g} ml (side {side})",
            where=where, fix="ask for a smaller volume, side 'any', or fewer lesions")
    preferred = None
    if center_xyz is not None:
        # The ventricle (connected piece) nearest the point fills first.
        labels, _ = ndimage.label(room, structure=np.ones((3, 3, 3), bool))
        nearest = pick_voxel(room, geometry, rng=rng, center_xyz=center_xyz, where=where,
                             what="intraventricular hemorrhage centre")
        preferred = labels == labels[nearest]
    return dependent_fill(room, geometry, n_voxels=n, shape_variety=float(shape_variety), rng=rng,
                          preferred=preferred)
