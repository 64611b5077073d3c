"""Synthetic intracranial hemorrhage masks of the five subtypes, placed by anatomy masks of a head CT.

What each subtype looks like, and the ranges the tests check on the bundled head-CT template (20 random cases
per subtype, 2 mm grid; ``Testing/integration/test_lesions_real.py``):

* intraparenchymal: a compact, solid, round-to-oval clot with mildly lobulated margins (``shape_variety``), in one
  hemisphere, outside the ventricles (:data:`IPH_VENTRICLE_MARGIN_MM`) and never against the inner table: lobar
  (subcortical white matter, its edge at least :data:`IPH_SURFACE_MARGIN_MM` below the brain surface) or deep
  (basal ganglia / thalamus level). Checked: no holes (nor rings in an axial slice), one piece, solidity
  (volume / convex-hull volume) >= 0.8, shortest / longest principal axis >= 0.5, no voxel within 3 mm of the
  brain surface nor within 2 mm of a ventricle, supratentorial.
* intraventricular: blood layering in the dependent (posterior, supine) part of the ventricles with a flat
  fluid level; the lateral ventricles are separate at the atria (see ``anatomy.head_masks``), so the two
  occipital horns fill without a bridge across the midline. Checked: inside the ventricles, centroid >= 10 mm
  posterior of the ventricles' centroid, >= 90% of voxels behind their median, every large piece on one side,
  no piece under 10 voxels.
* subarachnoid: thin and connected. Cisternal (:data:`CISTERNAL_PROBABILITY`, needs the CT): seeded in a basal
  cistern anterior to the brainstem at the midbrain level and grown only through CSF-density voxels (see
  :func:`csf_likeness`; 0-15 HU on a real CT, the darker voxels of the template) into the neighbouring cisterns
  and sylvian fissures. Convexity: thin sheets in a few adjacent sulci plus the surface layer at their mouths,
  over a patch whose size follows the volume. Without a CT (a brain mask alone) both kinds use the sulcal sheets
  (cisternal ones seeded at the base of the brain). Checked, convexity: >= 80% of voxels within 2 mm of the
  lesion surface, <= 5 pieces and none of fewer than 3 voxels, 90% within 20 mm of the brain surface; cisternal:
  one piece, >= 50% within 2 mm and >= 85% within 4 mm of its surface, within 10 mm of the midline, >= 20 mm
  below the brain centroid, over voxels whose median is >= 8 HU darker than the brain median, none in a ventricle.
* subdural: a thin crescent along the inner table of the convexity over one hemisphere (never across the
  midline, not along the skull base). Checked: touches the inner table, thickness <= 0.12 of the extent (typically
  0.06-0.11), even thickness (rim >= 0.3 of the centre), 90% of voxels within 15 mm and all within 24 mm of bone
  (the template's brain ends 4-6 mm from its blurred bone), one piece.
* epidural: a biconvex lens of limited extent against the inner table, smoothed outline. Checked: thickest in the
  middle (>= 1.5x the rim; typically 2-3.5x), thickness >= 0.13 of the extent (median >= 0.2, so >= 2x the
  subdural ratio), extent <= 120 mm, one piece, one side.

Every mask stays inside the brain mask and never touches air or bone, and volumes are met exactly (to the voxel)
whenever they fit.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..anatomy import HeadMasks, distance_mm, head_masks_from_brain, physical_coordinate
from ..cases import Geometry
from ..errors import InputError
from ..triples import int3
from .controls import HEMORRHAGE_SUBTYPES
from .shapes import (
    MAX_LESION_FRACTION,
    check_mask,
    cisternal,
    dependent_fill,
    extra_axial,
    hematoma,
    hemisphere,
    pick_voxel,
    sulcal,
    voxel_count,
)

__all__ = [
    "synthesize_hemorrhage_mask",
    "csf_likeness",
    "LOBAR_PROBABILITY",
    "CISTERNAL_PROBABILITY",
    "IPH_SURFACE_MARGIN_MM",
    "IPH_VENTRICLE_MARGIN_MM",
    "EXTRA_AXIAL_BONE_MM",
]

#: Share of intraparenchymal hemorrhages that are lobar (the rest are deep).
LOBAR_PROBABILITY = 0.5
#: Share of subarachnoid hemorrhages centred on the basal cisterns (the rest are over the convexity).
CISTERNAL_PROBABILITY = 0.3
#: Intraparenchymal blood keeps at least this far (mm) below the brain surface: subcortical, not extra-axial.
IPH_SURFACE_MARGIN_MM = 3.0
#: ... and this far (mm) from the ventricles (blood inside them is intraventricular).
IPH_VENTRICLE_MARGIN_MM = 2.0
#: Subdural and epidural blood lies against the convexity where bone is within this distance (mm) of the brain
#: surface: the template's brain ends 4-6 mm from its 250 HU bone edge over the convexity (2-4 mm on a real CT),
#: 10-40 mm at the skull base, where its thin bone is blurred below the threshold.
EXTRA_AXIAL_BONE_MM = 8.0


def csf_likeness(head: HeadMasks, geometry: Geometry) -> np.ndarray | None:
    """How CSF-like every voxel's density is, 0 (brain tissue or denser) to 1 (CSF), from the CT in ``head.hu``.

    ``(tissue - HU) / (tissue - csf)``, clipped to 0..1: ``tissue`` is the median HU of the brain outside the
    ventricles, ``csf`` the median HU of the ventricles (or the brain's 1st percentile without them). Voxels more
    than 15 HU below ``csf`` (fat or air partial volume) score 0. On a real CT (tissue ~33, CSF ~5 HU) 0.45 is
    ~20 HU; on the smooth template (tissue ~30, ventricles ~5 HU) ~19 HU, which keeps its partial-volumed
    cisterns and sylvian fissures and drops its white matter (20-24 HU). Cached on ``head``.

    Args:
        head: head masks with the CT (``hu``).
        geometry: their geometry.

    Returns:
        float32 array ``[z, y, x]``, or None without a CT or without CSF/tissue contrast.
    """
    if head.hu is None:
        return None
    key = ("csf", geometry)
    if key not in head._cache:
        hu = head.hu
        tissue_mask = head.brain & ~head.ventricles
        tissue = float(np.median(hu[tissue_mask])) if tissue_mask.any() else float(np.median(hu[head.brain]))
        csf = (float(np.median(hu[head.ventricles])) if head.ventricles.any()
               else float(np.percentile(hu[head.brain], 1.0)))
        if tissue - csf < 5.0:
            head._cache[key] = None
        else:
            c = np.clip((tissue - hu) / (tissue - csf), 0.0, 1.0).astype(np.float32)
            c[hu < csf - 15.0] = 0.0
            head._cache[key] = c
    return head._cache[key]


def _outward_normal_z(brain: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Physical z component of the brain surface's outward unit normal (from a 3 mm smoothed mask)."""
    smooth = ndimage.gaussian_filter(brain.astype(np.float32), [3.0 / s for s in geometry.spacing_zyx])
    grads = np.gradient(smooth, *geometry.spacing_zyx)  # d/dz, d/dy, d/dx (index axes, mm)
    # Physical gradient = direction @ (gradient along the x, y, z index axes).
    d = geometry.direction_matrix
    gz = d[2, 0] * grads[2] + d[2, 1] * grads[1] + d[2, 2] * grads[0]
    norm = np.sqrt(grads[0] ** 2 + grads[1] ** 2 + grads[2] ** 2)
    return (-gz / np.maximum(norm, 1e-6)).astype(np.float32)


def _convexity_shell(head: HeadMasks, geometry: Geometry, allowed: np.ndarray) -> np.ndarray:
    """Inner-table voxels over the supratentorial convexity: not facing down (skull base), not the posterior
    fossa, and (with a skull) bone within :data:`EXTRA_AXIAL_BONE_MM`."""
    key = ("convexity", geometry)
    if key not in head._cache:
        z_phys = physical_coordinate(geometry, head.shape, 2)
        y_phys = physical_coordinate(geometry, head.shape, 1)
        brain_z = float(z_phys[head.brain].mean())
        brain_y = float(y_phys[head.brain].mean())
        shell = head.inner_table & head.brain
        shell &= _outward_normal_z(head.brain, geometry) >= -0.5
        shell &= z_phys >= brain_z - 40.0
        shell &= ~((z_phys < brain_z - 22.0) & (y_phys > brain_y))  # cerebellum, under the tentorium
        if head.skull.any():
            shell &= distance_mm(~head.skull, geometry) <= EXTRA_AXIAL_BONE_MM
        head._cache[key] = shell
    return head._cache[key] & allowed


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
    if subtype == "intraparenchymal":
        return _intraparenchymal(head, allowed, geometry, n=n, r_eq=r_eq, brain_depth=brain_depth,
                                 center_xyz=center_xyz, shape_variety=shape_variety, rng=rng, where=where)

    if subtype in ("subdural", "epidural"):
        surface = _convexity_shell(head, geometry, allowed)
        if not surface.any():
            surface = head.inner_table & allowed
        if not surface.any():
            raise InputError("no inner table of the skull is available on this side", where=where,
                             fix="use a head CT with the skull, another side, or fewer lesions")
        # The blood may lie against these outside voxels only (the convexity's inner table).
        anchor = ndimage.binary_dilation(surface, structure=np.ones((3, 3, 3), bool)) & ~head.brain
        seeds = surface
        signed_x = physical_coordinate(geometry, head.shape, 0) - head.midline_x
        if center_xyz is None:
            # Away from the midline and the skull base, where these collections usually are.
            z_phys = physical_coordinate(geometry, head.shape, 2)
            central = surface & (np.abs(signed_x) >= 20.0) & (z_phys >= float(z_phys[head.brain].mean()) - 15.0)
            if subtype == "epidural" and central.any():
                # A lens is thick up to near its edge: centre it far enough from the skull base that it is not cut
                # off there (its radius L follows from volume = 0.7 L^3, see extra_axial).
                radius = (n * voxel_ml * 1000.0 / 0.7) ** (1.0 / 3.0)
                room = _off_convexity_distance(head, geometry)
                central &= room >= min(0.8 * radius, 0.9 * float(room[central].max()))
            seeds = central if central.any() else surface
        seed = pick_voxel(seeds, geometry, rng=rng, center_xyz=center_xyz, where=where,
                          what=f"{subtype} hemorrhage centre")
        # Thinning out over the last 20 mm before the falx: no flat cut where the hemisphere ends.
        stretch = 1.0 + 2.0 * np.clip(1.0 - np.abs(signed_x) / 20.0, 0.0, 1.0)
        return extra_axial(allowed, head.brain, geometry, seed_zyx=seed, n_voxels=n, kind=subtype,
                           shape_variety=float(shape_variety), rng=rng, surface=head.surface_points(geometry),
                           anchor=anchor, stretch=stretch, where=where)

    return _subarachnoid(head, allowed, geometry, n=n, center_xyz=center_xyz, shape_variety=shape_variety,
                         rng=rng, where=where)


def _off_convexity_distance(head: HeadMasks, geometry: Geometry) -> np.ndarray:
    """Distance (mm) of every voxel to the brain's outer shell off the convexity (skull base, posterior fossa)."""
    key = ("off convexity", geometry)
    if key not in head._cache:
        shell = head.brain & (head.brain_depth(geometry) <= max(geometry.spacing) + 1e-3)
        off = shell & ~_convexity_shell(head, geometry, head.brain)
        head._cache[key] = distance_mm(~off, geometry) if off.any() else np.full(head.shape, np.inf, np.float32)
    return head._cache[key]


def _ventricle_distance(head: HeadMasks, geometry: Geometry) -> np.ndarray:
    """Distance (mm) of every voxel to the ventricles (cached on ``head``)."""
    key = ("ventricle distance", geometry)
    if key not in head._cache:
        head._cache[key] = distance_mm(~head.ventricles, geometry)
    return head._cache[key]


def _intraparenchymal(head: HeadMasks, allowed: np.ndarray, geometry: Geometry, *, n: int, r_eq: float,
                      brain_depth: np.ndarray, center_xyz: tuple[float, float, float] | None, shape_variety: float,
                      rng: np.random.Generator, where: str) -> np.ndarray:
    region = allowed & (brain_depth >= IPH_SURFACE_MARGIN_MM)
    if head.ventricles.any():
        region &= _ventricle_distance(head, geometry) > IPH_VENTRICLE_MARGIN_MM
    if region.sum() < n:  # a small or thin brain: the margins give way before the volume does
        region = allowed & ~head.ventricles
    # Room of a clot centred at each voxel: the distance to the nearest voxel it may not use.
    room = distance_mm(region, geometry)
    signed_x = physical_coordinate(geometry, head.shape, 0) - head.midline_x
    y_phys = physical_coordinate(geometry, head.shape, 1)
    z_phys = physical_coordinate(geometry, head.shape, 2)
    brain_y, brain_z = float(y_phys[head.brain].mean()), float(z_phys[head.brain].mean())
    lobar = rng.random() < LOBAR_PROBABILITY
    if center_xyz is not None:
        # The region voxel nearest the point, moved inwards (by up to half the clot's radius) where that gives
        # the clot room to stay round.
        near = pick_voxel(region, geometry, rng=rng, center_xyz=center_xyz, where=where, what="hemorrhage centre")
        grids = np.meshgrid(*[(np.arange(k) - c) * sp for k, c, sp in zip(head.shape, near, geometry.spacing_zyx)],
                            indexing="ij", sparse=True)
        close = sum(g**2 for g in grids) <= (0.5 * r_eq + 2.0) ** 2
        candidates = region & close & (room >= min(0.8 * r_eq, 0.8 * float(room[region & close].max())))
        center = pick_voxel(candidates, geometry, rng=rng, center_xyz=center_xyz, where=where,
                            what="hemorrhage centre") if candidates.any() else near
    else:
        if lobar:
            # Subcortical white matter of the cerebral lobes: the clot's edge comes within ~10 mm of the cortex
            # (large clots flatten against the margin below it); not the posterior fossa.
            zone = region & (z_phys >= brain_z - 15.0) & (brain_depth <= r_eq + IPH_SURFACE_MARGIN_MM + 10.0)
        else:
            # Basal ganglia / thalamus: 12-32 mm from the midline, at and below the level of the brain's centre.
            zone = region & (np.abs(signed_x) >= 12.0) & (np.abs(signed_x) <= 32.0) \
                & (z_phys >= brain_z - 22.0) & (z_phys <= brain_z + 4.0) \
                & (y_phys >= brain_y - 25.0) & (y_phys <= brain_y + 15.0)
        zone = zone if zone.any() else region
        need = min((0.85 if lobar else 1.0) * r_eq, 0.9 * float(room[zone].max()))
        candidates = zone & (room >= need)
        center = pick_voxel(candidates, geometry, rng=rng, where=where, what="hemorrhage centre")
    return hematoma(region, geometry, center_zyx=center, n_voxels=n, shape_variety=float(shape_variety), rng=rng,
                    where=where)


def _subarachnoid(head: HeadMasks, allowed: np.ndarray, geometry: Geometry, *, n: int,
                  center_xyz: tuple[float, float, float] | None, shape_variety: float, rng: np.random.Generator,
                  where: str) -> np.ndarray:
    cistern = rng.random() < CISTERNAL_PROBABILITY
    csf = csf_likeness(head, geometry)
    signed_x = physical_coordinate(geometry, head.shape, 0) - head.midline_x
    y_phys = physical_coordinate(geometry, head.shape, 1)
    z_phys = physical_coordinate(geometry, head.shape, 2)
    brain_y, brain_z = float(y_phys[head.brain].mean()), float(z_phys[head.brain].mean())
    if cistern and csf is not None:
        room = allowed.copy()
        if head.ventricles.any():
            # Blood in the ventricles is intraventricular: keep off their (partial-volumed) walls, and off the
            # midline above the floor of the third ventricle, where CSF-dark voxels are ventricular (septum,
            # velum interpositum) or cut from the ventricles, not basal cisterns.
            room &= _ventricle_distance(head, geometry) > 4.0
            central = head.ventricles & (np.abs(signed_x) <= 10.0) & (y_phys <= brain_y + 10.0)  # not the 4th
            floor = float(z_phys[central].min()) if central.any() else float(z_phys[head.ventricles].min())
            room &= ~((np.abs(signed_x) < 20.0) & (z_phys > floor))
        dark = room & (csf >= 0.5)
        seed: tuple[int, int, int] | None
        if center_xyz is not None:
            seed = pick_voxel(dark if dark.any() else room, geometry, rng=rng, center_xyz=center_xyz, where=where,
                              what="subarachnoid hemorrhage centre")
        else:
            seed = _cistern_seed(dark & (np.abs(signed_x) <= 10.0) & (y_phys >= brain_y - 45.0)
                                 & (y_phys <= brain_y - 5.0) & (z_phys >= brain_z - 45.0)
                                 & (z_phys <= brain_z - 18.0), csf, rng)
        if seed is not None:
            try:
                return cisternal(room, geometry, seed_zyx=seed, n_voxels=n, csf=csf,
                                 shape_variety=float(shape_variety), rng=rng)
            except InputError:
                pass
        cistern = False  # no cistern found, or too little CSF room connected to it: blood over the convexity
    surface = head.inner_table & allowed
    if not surface.any():
        surface = allowed
    if center_xyz is not None:
        seeds = surface
    elif cistern:
        # No CT to find the cisterns: the base of the brain near the midline, in front of its centre.
        seeds = surface & (np.abs(signed_x) <= 15.0) & (y_phys <= brain_y) & (z_phys <= brain_z - 15.0)
    else:
        seeds = _convexity_shell(head, geometry, allowed)
        seeds &= z_phys >= brain_z - 15.0
        # Over the convexity: not down along the skull base.
        allowed = allowed & (z_phys >= brain_z - 30.0)
    seeds = seeds if seeds.any() else surface
    seed = pick_voxel(seeds, geometry, rng=rng, center_xyz=center_xyz, where=where,
                      what="subarachnoid hemorrhage centre")
    return sulcal(allowed, head.brain, geometry, seed_zyx=seed, n_voxels=n, shape_variety=float(shape_variety),
                  rng=rng, surface=head.surface_points(geometry), csf=csf)


def _cistern_seed(zone: np.ndarray, csf: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int] | None:
    """A voxel of the darkest CSF pocket of ``zone`` (the most CSF-like mass), or None when ``zone`` is empty."""
    labels, count = ndimage.label(zone, structure=np.ones((3, 3, 3), bool))
    if count == 0:
        return None
    mass = ndimage.sum_labels(csf, labels, index=np.arange(1, count + 1))
    pocket = labels == int(np.argmax(mass)) + 1
    darkest = pocket & (csf >= np.percentile(csf[pocket], 70))
    flat = np.flatnonzero(darkest)
    return int3(np.unravel_index(int(flat[rng.integers(len(flat))]), zone.shape))


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
