"""Random lesion shapes with an exact voxel count: smooth blobs, extra-axial crescents and lenses, sulcal sheets and
dependent ventricular fills.

Every shape is the set of the ``n`` best voxels of a score field (so the volume is hit exactly), made connected
and re-grown along the same field where needed. All sizes are in mm and converted with the voxel spacing, so thick
slices give the same physical shapes as isotropic grids.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ..anatomy import distance_mm, physical_coordinate, surface_points
from ..cases import Geometry
from ..errors import InputError

__all__ = [
    "voxel_count",
    "fit_to_count",
    "smooth_noise",
    "random_rotation",
    "blob",
    "extra_axial",
    "sulcal",
    "dependent_fill",
    "pick_voxel",
    "check_mask",
    "hemisphere",
    "approx_depth_mm",
    "MAX_LESION_FRACTION",
]

#: A lesion may take at most this share of the brain (beyond it the "brain" would be mostly lesion).
MAX_LESION_FRACTION = 0.5

_FULL = np.ones((3, 3, 3), bool)


def voxel_count(volume_ml: float, geometry: Geometry, *, where: str = "lesion") -> int:
    """Number of voxels closest to ``volume_ml`` on this grid.

    Args:
        volume_ml: requested volume in ml.
        geometry: grid geometry.
        where: name used in error messages.

    Raises:
        InputError: a non-finite or non-positive volume, or one smaller than a voxel.
    """
    if not (isinstance(volume_ml, (int, float, np.floating, np.integer)) and math.isfinite(volume_ml)
            and volume_ml > 0):
        raise InputError(f"lesion volume must be a positive number of ml, got {volume_ml!r}", where=where,
                         fix="e.g. volume_ml=20")
    n = int(round(float(volume_ml) / geometry.voxel_volume_ml))
    if n < 1:
        raise InputError(f"requested lesion volume {volume_ml} ml is smaller than one voxel "
                         f"({geometry.voxel_volume_ml:.4g} ml)", where=where,
                         fix="ask for a larger volume or use a finer grid")
    return n


def smooth_noise(shape: tuple[int, ...], geometry: Geometry, sigma_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian white noise smoothed with a ``sigma_mm`` (physical) kernel, rescaled to zero mean and unit std.

    Wide kernels are applied on a coarser grid (about two samples per ``sigma``) and linearly upsampled: the same
    kind of field for a fraction of the cost.

    Args:
        shape: array shape ``(z, y, x)``.
        geometry: grid geometry (spacing converts ``sigma_mm`` to voxels per axis).
        sigma_mm: correlation length in mm.
        rng: random generator.
    """
    sigma = [max(sigma_mm / s, 0.0) for s in geometry.spacing_zyx]
    factors = [max(1, int(sg / 2.0)) for sg in sigma]
    coarse_shape = tuple((n - 1) // f + 2 if f > 1 else n for n, f in zip(shape, factors))
    noise = rng.standard_normal(coarse_shape).astype(np.float32)
    noise = ndimage.gaussian_filter(noise, sigma=[sg / f for sg, f in zip(sigma, factors)], mode="reflect")
    for axis, (n, f) in enumerate(zip(shape, factors)):
        if f == 1:
            continue
        position = np.arange(n, dtype=np.float32) / f
        i0 = np.floor(position).astype(int)
        weight_shape = [1] * noise.ndim
        weight_shape[axis] = n
        w = (position - i0).reshape(weight_shape)
        noise = np.take(noise, i0, axis=axis) * (1.0 - w) + np.take(noise, i0 + 1, axis=axis) * w
    std = float(noise.std())
    return ((noise - float(noise.mean())) / (std if std > 0 else 1.0)).astype(np.float32)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation matrix (QR of a Gaussian matrix, sign-fixed).

    Args:
        rng: random generator.
    """
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))[None, :]
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def fit_to_count(field: np.ndarray, allowed: np.ndarray, n: int, *, seed: tuple[int, int, int] | None = None,
                 connected: bool = True, voxel_ml: float | None = None, where: str = "lesion") -> np.ndarray:
    """The ``n`` allowed voxels of highest ``field``, made one connected piece that still has exactly ``n`` voxels.

    The top-``n`` set is taken first; when ``connected``, only its piece holding ``seed`` (or its largest piece)
    is kept and then re-grown one 26-neighbour ring at a time, adding the best ring voxels by ``field``.

    Args:
        field: score per voxel (higher = earlier in the lesion).
        allowed: boolean mask of voxels the lesion may use.
        n: exact voxel count wanted.
        seed: index ``(z, y, x)`` the lesion must contain (must be allowed).
        connected: make the result one 26-connected piece.
        voxel_ml: voxel volume, to word errors in ml.
        where: name used in error messages.

    Raises:
        InputError: fewer than ``n`` allowed voxels (reachable from ``seed`` when ``connected``).
    """
    allowed = np.asarray(allowed, dtype=bool)
    flat = np.flatnonzero(allowed)

    def too_big(available: int) -> InputError:
        if voxel_ml:
            return InputError(
                f"requested lesion volume {n * voxel_ml:.3g} ml does not fit: at most {available * voxel_ml:.3g} ml "
                "of room is available there", where=where,
                fix="ask for a smaller volume, another place, or fewer lesions")
        return InputError(f"requested {n} voxels but only {available} fit", where=where,
                          fix="ask for a smaller lesion")

    if len(flat) < n:
        raise too_big(len(flat))
    values = field.ravel()[flat]
    top = flat[np.argpartition(-values, n - 1)[:n]] if n < len(flat) else flat
    mask = np.zeros(allowed.shape, bool)
    mask.ravel()[top] = True
    if seed is not None:
        if not allowed[seed]:
            raise InputError(f"the lesion seed {seed} lies outside the allowed region", where=where)
        if not mask[seed]:
            mask.ravel()[top[np.argmin(field.ravel()[top])]] = False
            mask[seed] = True
    if not connected:
        return mask
    labels, count = ndimage.label(mask, structure=_FULL)
    if count > 1:
        if seed is not None:
            keep = labels[seed]
        else:
            sizes = np.bincount(labels.ravel())
            sizes[0] = 0
            keep = int(np.argmax(sizes))
        mask = labels == keep
    missing = n - int(mask.sum())
    while missing > 0:
        ring = ndimage.binary_dilation(mask, structure=_FULL) & allowed & ~mask
        ring_idx = np.flatnonzero(ring)
        if len(ring_idx) == 0:
            raise too_big(int(mask.sum()))
        if len(ring_idx) > missing:
            ring_idx = ring_idx[np.argpartition(-field.ravel()[ring_idx], missing - 1)[:missing]]
        mask.ravel()[ring_idx] = True
        missing -= len(ring_idx)
    return mask


def _box(center_zyx: np.ndarray, half_mm: float, shape: tuple[int, ...], geometry: Geometry) -> tuple[slice, ...]:
    """Index box of +-``half_mm`` around a voxel, clipped to the array."""
    out = []
    for c, s, n in zip(center_zyx, geometry.spacing_zyx, shape):
        h = int(math.ceil(half_mm / s)) + 1
        out.append(slice(max(0, int(c) - h), min(n, int(c) + h + 1)))
    return tuple(out)


def _offsets_mm(box: tuple[slice, ...], center_zyx: np.ndarray, geometry: Geometry) -> list[np.ndarray]:
    """Broadcastable offsets (mm, along the array axes) of a box's voxels from a centre voxel."""
    out = []
    for axis, (sl, c, s) in enumerate(zip(box, center_zyx, geometry.spacing_zyx)):
        shape = [1, 1, 1]
        shape[axis] = sl.stop - sl.start
        out.append(((np.arange(sl.start, sl.stop) - c) * s).astype(np.float32).reshape(shape))
    return out


def blob(allowed: np.ndarray, geometry: Geometry, *, center_zyx: tuple[int, int, int], n_voxels: int,
         shape_variety: float, rng: np.random.Generator, where: str = "lesion") -> np.ndarray:
    """A random smooth connected blob of exactly ``n_voxels`` allowed voxels containing ``center_zyx``.

    Score field: an ellipsoid prior (random axes and orientation, elongation growing with ``shape_variety``) plus
    two octaves of smoothed Gaussian noise weighted by ``shape_variety``; the top ``n_voxels`` are kept.

    Args:
        allowed: boolean mask the blob must stay in.
        geometry: grid geometry (all sizes are physical).
        center_zyx: integer voxel index of the centre (must be allowed).
        n_voxels: exact size.
        shape_variety: 0 = smooth ellipsoid, 1 = irregular, lobulated.
        rng: random generator.
        where: name used in error messages.

    Returns:
        boolean array of the shape of ``allowed``.
    """
    variety = float(np.clip(shape_variety, 0.0, 1.0))
    center = np.asarray(center_zyx, dtype=int)
    voxel_mm3 = geometry.voxel_volume_ml * 1000.0
    r_eq = (3.0 * n_voxels * voxel_mm3 / (4.0 * math.pi)) ** (1.0 / 3.0)
    log_axes = rng.normal(0.0, 0.08 + 0.25 * variety, 3)
    axes = r_eq * np.exp(log_axes - log_axes.mean())  # volume-preserving elongation
    rotation = random_rotation(rng)
    half = float(axes.max()) * (1.5 + variety) + 2.0 * max(geometry.spacing)
    noise_seed = int(rng.integers(2**63 - 1))
    while True:
        box = _box(center, half, allowed.shape, geometry)
        sub_allowed = allowed[box]
        dz, dy, dx = _offsets_mm(box, center, geometry)
        # Ellipsoid radius in the rotated frame (1 on the surface of the equal-volume ellipsoid).
        r2 = np.zeros(sub_allowed.shape, np.float32)
        for k in range(3):
            u = rotation[0, k] * dz + rotation[1, k] * dy + rotation[2, k] * dx
            r2 = r2 + (u / axes[k]) ** 2
        field = 1.0 - np.sqrt(r2)
        if variety > 0:
            # The same noise seed on every retry: a larger box only adds room, it does not redraw the shape.
            noise_rng = np.random.default_rng(noise_seed)
            noise = (smooth_noise(sub_allowed.shape, geometry, 0.45 * r_eq, noise_rng)
                     + 0.5 * smooth_noise(sub_allowed.shape, geometry, 0.2 * r_eq, noise_rng))
            field = field + 0.55 * variety * noise / 1.118
        seed = tuple(int(c - sl.start) for c, sl in zip(center, box))
        try:
            sub = fit_to_count(field, sub_allowed, n_voxels, seed=seed, voxel_ml=geometry.voxel_volume_ml,
                               where=where)
        except InputError:
            if _covers(box, allowed.shape):
                raise
            half *= 1.8
            continue
        out = np.zeros(allowed.shape, bool)
        out[box] = sub
        return out


def _covers(box: tuple[slice, ...], shape: tuple[int, ...]) -> bool:
    return all(sl.start == 0 and sl.stop == n for sl, n in zip(box, shape))


def _critical_extent(depth: np.ndarray, s: np.ndarray, ratio: float, power: float) -> np.ndarray:
    """Smallest extent ``L`` with ``depth <= ratio * L * (1 - (s / L) ** power)`` (the thickness profile at ``s``).

    The profile grows with ``L`` (for ``L >= s``), so ``L`` lies in ``[max(s, d / ratio), s + d / ratio]``;
    closed form for ``power`` 2, vectorised bisection otherwise.
    """
    if power == 2.0:
        return (depth + np.sqrt(depth**2 + 4.0 * ratio**2 * s**2)) / (2.0 * ratio)
    lo = np.maximum(s, depth / ratio)
    hi = s + depth / ratio + 1e-3
    for _ in range(24):
        mid = 0.5 * (lo + hi)
        ok = ratio * mid * (1.0 - (s / np.maximum(mid, 1e-6)) ** power) >= depth
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
    return hi


def extra_axial(allowed: np.ndarray, brain: np.ndarray, geometry: Geometry, *, seed_zyx: tuple[int, int, int],
                n_voxels: int, kind: str, shape_variety: float, rng: np.random.Generator,
                surface: tuple[tuple[slice, ...], np.ndarray, np.ndarray] | None = None,
                where: str = "lesion") -> np.ndarray:
    """Extra-axial blood along the brain surface: a subdural crescent or an epidural biconvex lens.

    Each voxel has a depth ``d`` below the brain surface and a distance ``s`` (along the surface, measured between
    nearest surface points) from the seed. The lesion is ``d <= t(s)`` with thickness profile
    ``t(s) = ratio * L * (1 - (s / L) ** p)``, and ``L`` grows until exactly ``n_voxels`` are inside:

    * subdural: ``ratio`` 0.12, ``p`` 4: thin (thickness ~1/8 of the extent), of nearly constant thickness, its inner
      edge parallel to the skull: a crescent;
    * epidural: ``ratio`` 0.45, ``p`` 2: thick in the middle and tapering to the edges: a biconvex lens of limited
      extent.

    The caller restricts ``allowed`` to one hemisphere so the lesion does not cross the midline.

    Args:
        allowed: voxels the lesion may use.
        brain: the (filled) brain mask whose outer surface stands for the inner table of the skull.
        geometry: grid geometry.
        seed_zyx: surface voxel the lesion is centred on (must be allowed).
        n_voxels: exact size.
        kind: ``"subdural"`` or ``"epidural"``.
        shape_variety: 0..1, irregularity of thickness and outline.
        rng: random generator.
        surface: precomputed ``HeadMasks.surface_points(geometry)`` of ``brain``, or None to compute it.
        where: name used in error messages.
    """
    if kind not in ("subdural", "epidural"):
        raise InputError(f"extra-axial kind must be subdural or epidural, got {kind!r}", where=where)
    ratio, power = (0.12, 4.0) if kind == "subdural" else (0.45, 2.0)
    variety = float(np.clip(shape_variety, 0.0, 1.0))
    box, depth, nearest = surface if surface is not None else surface_points(brain, geometry)
    seed_local = tuple(int(c - sl.start) for c, sl in zip(seed_zyx, box))
    sub_allowed = allowed[box] & brain[box]
    if not all(0 <= c < n for c, n in zip(seed_local, sub_allowed.shape)) or not sub_allowed[seed_local]:
        raise InputError("the extra-axial seed lies outside the allowed region", where=where)
    # Only allowed voxels are scored (1D), which keeps the work to one hemisphere at most.
    flat = np.flatnonzero(sub_allowed)
    # Depth measured from the outermost layer (one voxel deep reads ~one spacing) so the lesion starts at the table.
    d = np.maximum(depth.ravel()[flat] - float(depth[seed_local]), 0.0)
    # Along-surface distance: between the nearest surface points, with a random elongation of the outline.
    elong = math.exp(rng.normal(0.0, 0.15 + 0.25 * variety))
    rotation = random_rotation(rng)
    scale = (elong, 1.0 / elong, 1.0)
    offsets = [(nearest[a].ravel()[flat] - int(nearest[a][seed_local])).astype(np.float32) * geometry.spacing_zyx[a]
               for a in range(3)]
    s2 = np.zeros(len(flat), np.float32)
    for k in range(3):
        u = rotation[0, k] * offsets[0] + rotation[1, k] * offsets[1] + rotation[2, k] * offsets[2]
        s2 += (u * scale[k]) ** 2
    s = np.sqrt(s2)
    if variety > 0:
        # Irregular thickness and outline: smooth multiplicative noise (12-20 mm correlation).
        d = d * np.exp(0.35 * variety * smooth_noise(depth.shape, geometry, 12.0, rng).ravel()[flat])
        s = s * np.exp(0.2 * variety * smooth_noise(depth.shape, geometry, 20.0, rng).ravel()[flat])
    field = np.full(depth.shape, -np.inf, np.float32)
    field.ravel()[flat] = -_critical_extent(d, s, ratio, power)
    sub = fit_to_count(field, sub_allowed, n_voxels, seed=seed_local, voxel_ml=geometry.voxel_volume_ml,
                       where=where)
    out = np.zeros(brain.shape, bool)
    out[box] = sub
    return out


def sulcal(allowed: np.ndarray, brain: np.ndarray, geometry: Geometry, *, seed_zyx: tuple[int, int, int],
           n_voxels: int, shape_variety: float, rng: np.random.Generator, patch_mm: float = 35.0,
           max_depth_mm: float = 12.0, depth: np.ndarray | None = None) -> np.ndarray:
    """Thin branching sheets near the brain surface (subarachnoid blood in sulci and cisterns).

    The sheets are the near-zero band of a smooth random field (its zero level set is a sheet-like, folded surface
    with ~``2.5 * sigma`` spacing, like sulci); voxels are ranked by how close they are to that band, to the seed
    (``patch_mm``) and to the brain surface (``max_depth_mm``), and the best ``n_voxels`` are kept. Larger volumes
    spread wider and thicken slowly. The result may have several pieces, as blood in neighbouring sulci does.

    Args:
        allowed: voxels the lesion may use.
        brain: brain mask (its outer surface is the pial surface; the depth of a cistern seed is honoured).
        geometry: grid geometry.
        seed_zyx: voxel the blood is centred on.
        n_voxels: exact size.
        shape_variety: 0..1; more variety = finer, more tortuous sheets.
        rng: random generator.
        patch_mm: spatial spread (mm) around the seed.
        max_depth_mm: typical depth below the surface the sheets reach (measured from the seed's own depth).
        depth: precomputed depth (mm) of every voxel below the brain surface, or None to compute it.
    """
    variety = float(np.clip(shape_variety, 0.0, 1.0))
    seed = np.asarray(seed_zyx, dtype=int)
    full_depth = depth if depth is not None else distance_mm(np.pad(brain, 1), geometry)[1:-1, 1:-1, 1:-1]
    seed_depth = float(full_depth[tuple(seed)])
    sigma = 4.0 - 1.5 * variety
    noise_seed = int(rng.integers(2**63 - 1))
    while True:
        box = _box(seed, patch_mm * 3.0, brain.shape, geometry)
        sub_allowed = allowed[box] & brain[box]
        depth = np.abs(full_depth[box] - seed_depth)
        band = np.abs(smooth_noise(sub_allowed.shape, geometry, sigma, np.random.default_rng(noise_seed)))
        dz, dy, dx = _offsets_mm(box, seed, geometry)
        dist = np.sqrt(dz**2 + dy**2 + dx**2)
        # The band keeps the shape thin, the gently rising spatial cost keeps it local and superficial.
        score = band + 0.15 * (dist / patch_mm) ** 2 + 0.25 * (depth / max_depth_mm) ** 2
        try:
            sub = fit_to_count(-score, sub_allowed, n_voxels, connected=False, voxel_ml=geometry.voxel_volume_ml,
                               where="subarachnoid hemorrhage")
        except InputError:
            if _covers(box, brain.shape):
                raise
            patch_mm *= 2.0
            continue
        out = np.zeros(brain.shape, bool)
        out[box] = sub
        return out


def dependent_fill(ventricles: np.ndarray, geometry: Geometry, *, n_voxels: int, shape_variety: float,
                   rng: np.random.Generator, preferred: np.ndarray | None = None) -> np.ndarray:
    """Blood layering in the dependent part of the ventricles (supine patient: posterior, +y in LPS, is down).

    Voxels are filled from the most posterior upwards, first in ``preferred`` (e.g. one ventricle or one side),
    then in the rest: a fluid level in the occipital horns that rises with the volume.

    Args:
        ventricles: boolean ventricle mask (the blood stays inside it).
        geometry: grid geometry (its direction decides which array axis is posterior).
        n_voxels: exact size.
        shape_variety: 0..1; a slightly uneven, tilted level with more variety.
        rng: random generator.
        preferred: voxels filled first (a subset of ``ventricles``), or None.
    """
    ventricles = np.asarray(ventricles, dtype=bool)
    available = int(ventricles.sum())
    if available < n_voxels:
        raise InputError(
            f"requested intraventricular volume {n_voxels * geometry.voxel_volume_ml:.3g} ml exceeds the ventricle "
            f"volume {available * geometry.voxel_volume_ml:.3g} ml", where="intraventricular hemorrhage",
            fix="ask for a smaller volume")
    variety = float(np.clip(shape_variety, 0.0, 1.0))
    y = physical_coordinate(geometry, ventricles.shape, 1)
    level = y.copy()
    if variety > 0:
        # Tilt of a few degrees and a slightly uneven surface (clot, not a perfect fluid level).
        x = physical_coordinate(geometry, ventricles.shape, 0)
        z = physical_coordinate(geometry, ventricles.shape, 2)
        tilt = rng.normal(0.0, 0.08 * variety, 2)
        level = level + tilt[0] * x + tilt[1] * z + 1.5 * variety * smooth_noise(ventricles.shape, geometry, 4.0,
                                                                                   rng)
    if preferred is not None:
        preferred = np.asarray(preferred, dtype=bool) & ventricles
        # Preferred voxels come first whatever their height.
        level = level + np.where(preferred, 1e4, 0.0).astype(np.float32)
    return fit_to_count(level, ventricles, n_voxels, connected=False, voxel_ml=geometry.voxel_volume_ml,
                        where="intraventricular hemorrhage")


def approx_depth_mm(mask: np.ndarray, geometry: Geometry, *, step_mm: float = 4.0) -> np.ndarray:
    """Depth (mm) of every voxel below the surface of ``mask``, computed on a ~``step_mm`` grid (fast).

    A coarse voxel counts as inside only when all its fine voxels are, so the depth is underestimated by at most
    one coarse voxel: good enough to place lesion centres away from an edge.

    Args:
        mask: boolean mask ``[z, y, x]``.
        geometry: its geometry.
        step_mm: coarse grid step in mm.
    """
    mask = np.asarray(mask, dtype=bool)
    factors = [max(1, int(round(step_mm / s))) for s in geometry.spacing_zyx]
    if factors == [1, 1, 1]:
        return distance_mm(np.pad(mask, 1), geometry)[1:-1, 1:-1, 1:-1]
    padded_shape = [-(-n // f) * f for n, f in zip(mask.shape, factors)]
    padded = np.zeros(padded_shape, bool)
    padded[: mask.shape[0], : mask.shape[1], : mask.shape[2]] = mask
    blocks = padded.reshape(padded_shape[0] // factors[0], factors[0], padded_shape[1] // factors[1], factors[1],
                            padded_shape[2] // factors[2], factors[2])
    coarse = np.pad(blocks.all(axis=(1, 3, 5)), 1)
    spacing = [s * f for s, f in zip(geometry.spacing_zyx, factors)]
    depth = ndimage.distance_transform_edt(coarse, sampling=spacing)[1:-1, 1:-1, 1:-1].astype(np.float32)
    for axis, f in enumerate(factors):
        depth = np.repeat(depth, f, axis=axis)
    return depth[: mask.shape[0], : mask.shape[1], : mask.shape[2]]


def check_mask(mask: np.ndarray, *, name: str, where: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A validated boolean 3D mask: a clear error for a wrong dimension, shape, or an empty mask.

    Args:
        mask: array to check (any dtype; non-zero = inside).
        name: what the mask is (for messages).
        where: the function or case it was passed to.
        shape: the shape it must have, if known.
    """
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise InputError(f"the {name} must be a 3D array [z, y, x], got shape {mask.shape}", where=where,
                         fix=f"pass the 3D {name}")
    if shape is not None and tuple(mask.shape) != tuple(shape):
        raise InputError(f"the {name} has shape {mask.shape} but {tuple(shape)} is needed", where=where,
                         fix="use masks that share one grid (resample them first)")
    if mask.dtype != bool:
        if mask.dtype.kind == "f" and not np.all(np.isfinite(mask)):
            raise InputError(f"the {name} contains NaN/Inf", where=where, fix="pass a 0/1 mask")
        mask = mask != 0
    return mask


def hemisphere(side: str, shape: tuple[int, ...], geometry: Geometry, midline_x: float, *,
               falx_mm: float = 1.0) -> np.ndarray:
    """Voxels of one hemisphere: ``left`` is ``x > midline + falx_mm`` (LPS), ``right`` the mirror; ``any`` all."""
    if side == "any":
        return np.ones(shape, bool)
    signed = physical_coordinate(geometry, shape, 0) - float(midline_x)
    if side == "left":
        return signed > falx_mm
    if side == "right":
        return signed < -falx_mm
    raise InputError(f"side must be left, right or any, got {side!r}", fix="use side='left', 'right' or 'any'")


def pick_voxel(candidates: np.ndarray, geometry: Geometry, *, rng: np.random.Generator,
               center_xyz: tuple[float, float, float] | None = None, where: str = "lesion",
               what: str = "lesion centre") -> tuple[int, int, int]:
    """A random candidate voxel, or the candidate nearest to a physical point.

    Args:
        candidates: boolean mask of acceptable voxels.
        geometry: grid geometry.
        rng: random generator (used when ``center_xyz`` is None).
        center_xyz: physical point ``(x, y, z)`` mm (LPS) to stay near, or None.
        where: name used in error messages.
        what: what is being placed (for messages).

    Raises:
        InputError: no candidate, or a point that is not 3 finite numbers or lies outside the image.
    """
    flat = np.flatnonzero(candidates)
    if len(flat) == 0:
        raise InputError(f"no room for the {what}: no voxel meets the placement rules", where=where,
                         fix="ask for a smaller lesion, another side or place, or fewer lesions")
    if center_xyz is None:
        return tuple(int(v) for v in np.unravel_index(int(flat[rng.integers(len(flat))]), candidates.shape))
    point = np.asarray(center_xyz, dtype=float)
    if point.shape != (3,) or not np.all(np.isfinite(point)):
        raise InputError(f"a lesion location needs 3 finite coordinates (x, y, z) in mm, got {center_xyz!r}",
                         where=where)
    index = geometry.physical_to_index(point)
    shape = np.asarray(candidates.shape)
    if np.any(index < -0.5) or np.any(index > shape - 0.5):
        low = geometry.index_to_physical(np.zeros(3))
        high = geometry.index_to_physical(shape - 1.0)
        raise InputError(
            f"the lesion location {tuple(np.round(point, 1))} mm lies outside the image, which spans "
            f"{tuple(np.round(np.minimum(low, high), 1))} to {tuple(np.round(np.maximum(low, high), 1))} mm (LPS)",
            where=where, fix="give a point inside the image, in LPS mm (Slicer shows RAS: negate x and y)")
    idx = np.argwhere(candidates)
    delta = (idx - index[None, :]) * np.asarray(geometry.spacing_zyx)[None, :]
    best = idx[int(np.argmin(np.einsum("ij,ij->i", delta, delta)))]
    return tuple(int(v) for v in best)
