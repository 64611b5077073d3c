"""Real lesion masks reused as shape templates: rotated, rescaled, elastically deformed and moved into a brain."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..anatomy import estimate_midline_x
from ..cases import Geometry
from ..errors import InputError
from ..triples import int3
from .shapes import (
    MAX_LESION_FRACTION,
    approx_depth_mm,
    check_mask,
    fit_to_count,
    hemisphere,
    pick_voxel,
    random_rotation,
    smooth_noise,
    voxel_count,
)

__all__ = ["template_lesion"]


def template_lesion(template_mask: np.ndarray, template_geometry: Geometry, brain: np.ndarray, geometry: Geometry,
                    *, volume_ml: float, center_xyz: tuple[float, float, float] | None = None,
                    rng: np.random.Generator, elastic_mm: float = 3.0, side: str = "any",
                    exclude: np.ndarray | None = None) -> np.ndarray:
    """A new lesion mask made from a real one: random rotation, rescaling to ``volume_ml``, a smooth elastic
    deformation, and a move to a new place inside ``brain``; then clipped to the brain and re-grown (or trimmed)
    along the template's own smoothed outline to hit the volume (to within half a voxel when it fits).

    The mapping is done in physical space, so the template and the target may have any spacing, origin and
    direction; every non-zero template voxel counts as lesion (the largest piece is kept in the result).

    Args:
        template_mask: real lesion mask ``[z, y, x]`` (non-zero = lesion).
        template_geometry: its geometry.
        brain: boolean brain mask of the target ``[z, y, x]``.
        geometry: the target's geometry.
        volume_ml: volume of the new lesion in ml.
        center_xyz: physical point ``(x, y, z)`` mm (LPS) the lesion's centroid goes near, or None for a random
            brain voxel away from the brain's edge.
        rng: random generator (the same seed gives the same mask).
        elastic_mm: RMS size (mm) of the smooth random displacement (0 = rigid + scale only).
        side: ``"left"`` (+x in LPS), ``"right"`` or ``"any"`` hemisphere for the (random) centre.
        exclude: target voxels the lesion must not use (e.g. other lesions), or None.

    Returns:
        boolean mask on the target grid.

    Raises:
        InputError: empty template or brain, bad shapes, or a volume larger than fits.
    """
    where = "template lesion"
    template = check_mask(template_mask, name="template lesion mask", where=where)
    if not template.any():
        raise InputError("the template lesion mask is empty", where=where,
                         fix="use a case whose label marks a lesion as template")
    brain = check_mask(brain, name="brain mask", where=where)
    if not brain.any():
        raise InputError("the brain mask is empty", where=where, fix="pass the brain mask of the target case")
    if not (math.isfinite(elastic_mm) and elastic_mm >= 0):
        raise InputError(f"elastic_mm must be >= 0, got {elastic_mm}", where=where)
    n = voxel_count(volume_ml, geometry, where=where)
    allowed = brain.copy()
    if exclude is not None:
        allowed &= ~check_mask(exclude, name="exclusion mask", where=where, shape=brain.shape)
    voxel_ml = geometry.voxel_volume_ml
    max_n = max(0, min(int(MAX_LESION_FRACTION * brain.sum()) - int((brain & ~allowed).sum()), int(allowed.sum())))
    if n > max_n:
        raise InputError(f"requested lesion volume {volume_ml:.3g} ml is too large for this brain: at most "
                         f"{max_n * voxel_ml:.3g} ml is possible", where=where, fix="ask for a smaller volume")

    # Template: cropped to its lesion (+ a margin for interpolation), centroid and volume in physical units.
    idx = np.argwhere(template)
    lo = np.maximum(idx.min(axis=0) - 2, 0)
    hi = np.minimum(idx.max(axis=0) + 3, template.shape)
    crop = template[tuple(slice(a, b) for a, b in zip(lo, hi))].astype(np.float32)
    t_points = template_geometry.index_to_physical(idx)
    t_centroid = t_points.mean(axis=0)
    t_volume_ml = len(idx) * template_geometry.voxel_volume_ml
    t_radius = float(np.sqrt(((t_points - t_centroid) ** 2).sum(axis=1).max())) + max(template_geometry.spacing)
    scale = (n * voxel_ml / t_volume_ml) ** (1.0 / 3.0)
    rotation = random_rotation(rng)

    # New centre: away from the brain's edge (like a tumour centre), or near the requested point.
    depth = approx_depth_mm(allowed, geometry)
    r_eq = (3.0 * n * voxel_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
    candidates = allowed
    if side != "any":
        candidates = allowed & hemisphere(side, brain.shape, geometry, estimate_midline_x(brain, geometry))
    if center_xyz is None:
        deep = candidates & (depth >= min(0.7 * r_eq, 0.6 * float(depth[candidates].max(initial=0.0))))
        candidates = deep if deep.any() else candidates
    center = np.asarray(pick_voxel(candidates, geometry, rng=rng, center_xyz=center_xyz, where=where))
    center_phys = geometry.index_to_physical(center)

    # Target index (z, y, x) -> template index as one affine map (plus the displacement), evaluated by broadcasting
    # 1D index ranges: target physical p = P i + o; template index = Q (c_t + R^T (p + u - c) / s - o_t).
    to_phys = (geometry.direction_matrix * np.asarray(geometry.spacing)[None, :])[:, ::-1]
    to_t_index = np.linalg.inv(template_geometry.direction_matrix
                               * np.asarray(template_geometry.spacing)[None, :])[::-1, :]
    linear = to_t_index @ rotation.T / scale
    matrix = linear @ to_phys
    offset = to_t_index @ (t_centroid - np.asarray(template_geometry.origin)
                           + rotation.T @ (np.asarray(geometry.origin) - center_phys) / scale) - lo

    half_mm = scale * t_radius + 3.0 * elastic_mm + 2.0 * max(geometry.spacing)
    noise_seed = int(rng.integers(2**63 - 1))
    while True:
        box = tuple(slice(max(0, int(c) - int(math.ceil(half_mm / s)) - 1),
                          min(dim, int(c) + int(math.ceil(half_mm / s)) + 2))
                    for c, s, dim in zip(center, geometry.spacing_zyx, brain.shape))
        shape = tuple(sl.stop - sl.start for sl in box)
        ranges = [np.arange(sl.start, sl.stop, dtype=np.float32).reshape([-1 if a == k else 1 for a in range(3)])
                  for k, sl in enumerate(box)]
        coords = [sum(float(matrix[k, a]) * ranges[a] for a in range(3)) + float(offset[k]) for k in range(3)]
        if elastic_mm > 0:
            # Smooth displacement (correlation ~ lesion radius / 2, at least 5 mm), applied in the target space.
            noise_rng = np.random.default_rng(noise_seed)
            sigma = max(5.0, 0.5 * r_eq)
            u = [elastic_mm / math.sqrt(3.0) * smooth_noise(shape, geometry, sigma, noise_rng) for _ in range(3)]
            coords = [coords[k] + sum(float(linear[k, j]) * u[j] for j in range(3)) for k in range(3)]
        coords = [np.broadcast_to(c, shape) for c in coords]
        values = ndimage.map_coordinates(crop, coords, order=1, mode="constant", cval=0.0).astype(np.float32)
        # Ties (inside = 1, outside = 0) are broken by a blurred copy, so trimming removes the thin edges first and
        # growing follows the template's outline outwards; a faint pull to the centre keeps the growth compact.
        blurred = ndimage.gaussian_filter(values, sigma=[3.0 / s for s in geometry.spacing_zyx])
        dist = np.sqrt(sum(((ranges[a] - center[a]) * geometry.spacing_zyx[a]) ** 2 for a in range(3)))
        field = values + 0.2 * blurred - 0.01 * dist / max(r_eq, 1.0)
        sub_allowed = allowed[box]
        seed_local = np.unravel_index(int(np.argmax(np.where(sub_allowed, field, -np.inf))), sub_allowed.shape)
        try:
            sub = fit_to_count(field, sub_allowed, n, seed=int3(seed_local), voxel_ml=voxel_ml,
                               where=where)
        except InputError:
            if all(sl.start == 0 and sl.stop == dim for sl, dim in zip(box, brain.shape)):
                raise
            half_mm *= 1.8
            continue
        out = np.zeros(brain.shape, bool)
        out[box] = sub
        return out
