"""Random lesion shapes with an exact voxel count: smooth blobs, extra-axial crescents and lenses, sulcal sheets and
dependent ventricular fills.

Every shape is the set of the ``n`` best voxels of a score field (so the volume is hit exactly), made connected
and re-grown along the same field where needed. All sizes are in mm and converted with the voxel spacing, so thick
slices give the same physical shapes as isotropic grids.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
from scipy import ndimage

from ..anatomy import distance_mm, physical_coordinate, surface_points
from ..cases import Geometry
from ..errors import InputError
from ..triples import float3, int3

__all__ = [
    "voxel_count",
    "fit_to_count",
    "smooth_noise",
    "random_rotation",
    "blob",
    "extra_axial",
    "sulcal",
    "cisternal",
    "hematoma",
    "visible_from",
    "grow_by_priority",
    "adjust_count",
    "drop_small_pieces",
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
_CROSS = ndimage.generate_binary_structure(3, 1)
_CENTRE = np.zeros((3, 3, 3), np.int8)
_CENTRE[1, 1, 1] = 1


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


def smooth_noise(shape: tuple[int, ...], geometry: Geometry, sigma_mm: float | tuple[float, float, float],
                 rng: np.random.Generator) -> np.ndarray:
    """Gaussian white noise smoothed with a ``sigma_mm`` (physical) kernel, rescaled to zero mean and unit std.

    Wide kernels are applied on a coarser grid (about two samples per ``sigma``) and linearly upsampled: the same
    kind of field for a fraction of the cost.

    Args:
        shape: array shape ``(z, y, x)``.
        geometry: grid geometry (spacing converts ``sigma_mm`` to voxels per axis).
        sigma_mm: correlation length in mm, or one per array axis ``(z, y, x)`` (an anisotropic field).
        rng: random generator.
    """
    sigmas = sigma_mm if isinstance(sigma_mm, tuple) else (float(sigma_mm),) * 3
    sigma = [max(float(sg) / s, 0.0) for sg, s in zip(sigmas, geometry.spacing_zyx)]
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
        seed = int3(c - sl.start for c, sl in zip(center, box))
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


def _surface_offsets(nearest: np.ndarray, flat: np.ndarray, origin: tuple[int, int, int],
                     geometry: Geometry) -> list[np.ndarray]:
    """Offsets (mm, along the array axes) of the nearest surface points of voxels ``flat`` from ``origin``."""
    return [(nearest[a].ravel()[flat] - int(origin[a])).astype(np.float32) * geometry.spacing_zyx[a]
            for a in range(3)]


def _anchored(nearest: np.ndarray, flat: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """For voxels ``flat`` of a box: whether their nearest outside voxel lies in ``anchor`` (box coordinates)."""
    idx = [nearest[a].ravel()[flat] for a in range(3)]
    inside = np.ones(len(flat), bool)
    for a in range(3):
        inside &= (idx[a] >= 0) & (idx[a] < anchor.shape[a])
    ok = np.zeros(len(flat), bool)
    ok[inside] = anchor[tuple(i[inside] for i in idx)]
    return ok


def extra_axial(allowed: np.ndarray, brain: np.ndarray, geometry: Geometry, *, seed_zyx: tuple[int, int, int],
                n_voxels: int, kind: str, shape_variety: float, rng: np.random.Generator,
                surface: tuple[tuple[slice, ...], np.ndarray, np.ndarray] | None = None,
                anchor: np.ndarray | None = None, stretch: np.ndarray | None = None,
                where: str = "lesion") -> np.ndarray:
    """Extra-axial blood along the brain surface: a subdural crescent or an epidural biconvex lens.

    Each voxel has a depth ``d`` below the brain surface and a distance ``s`` (along the surface, measured between
    nearest surface points) from the seed. The lesion is ``d <= t(s)`` with thickness profile
    ``t(s) = ratio * L * (1 - (s / L) ** p)``, and ``L`` grows until ``n_voxels`` are inside:

    * subdural: ``ratio`` 0.12, ``p`` 4: thin (thickness ~1/8 of the extent), of nearly constant thickness, its inner
      edge parallel to the skull: a crescent;
    * epidural: ``ratio`` 0.45, ``p`` 2: thick in the middle and tapering to the edges: a biconvex lens of limited
      extent.

    The result is one piece with a clean outline: pieces under 1% of the lesion and specks of one or two pixels
    in an axial slice are dropped, an epidural lens is closed (two voxels: its single-voxel notches fill), and the
    volume is then restored exactly, notches first (see :func:`adjust_count`). The caller restricts
    ``allowed`` to one hemisphere so the lesion does not cross the midline, and ``anchor`` to the inner table of
    the convexity so it does not run along the skull base.

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
        anchor: voxels *outside* the brain (full grid) the blood may lie against: a voxel is used only when its
            nearest outside voxel is one of them. None = the whole surface.
        stretch: factor (>= 1, full grid) on the along-surface distance of each voxel, or None: where it is large
            the collection thins out sooner (e.g. towards the falx, so it tapers instead of ending in a flat cut).
        where: name used in error messages.
    """
    if kind not in ("subdural", "epidural"):
        raise InputError(f"extra-axial kind must be subdural or epidural, got {kind!r}", where=where)
    ratio, power = (0.12, 4.0) if kind == "subdural" else (0.45, 2.0)
    variety = float(np.clip(shape_variety, 0.0, 1.0))
    box, depth, nearest = surface if surface is not None else surface_points(brain, geometry)
    seed_local = int3(c - sl.start for c, sl in zip(seed_zyx, box))
    sub_allowed = allowed[box] & brain[box]
    if not all(0 <= c < n for c, n in zip(seed_local, sub_allowed.shape)) or not sub_allowed[seed_local]:
        raise InputError("the extra-axial seed lies outside the allowed region", where=where)
    if anchor is not None:
        # Outside voxels just beyond the box edge count too (the box is the brain's, +1 voxel).
        anchor_box = np.pad(np.asarray(anchor, dtype=bool), 1)[tuple(slice(sl.start, sl.stop + 2) for sl in box)]
        flat = np.flatnonzero(sub_allowed)
        keep = _anchored(nearest + 1, flat, anchor_box)
        sub_allowed = np.zeros(sub_allowed.shape, bool)
        sub_allowed.ravel()[flat[keep]] = True
        sub_allowed[seed_local] = True
    # Only allowed voxels are scored (1D), which keeps the work to one hemisphere at most.
    flat = np.flatnonzero(sub_allowed)
    # Depth measured from the outermost layer (one voxel deep reads ~one spacing) so the lesion starts at the table.
    d = np.maximum(depth.ravel()[flat] - float(depth[seed_local]), 0.0)
    # Along-surface distance: between the nearest surface points, with a random elongation of the outline.
    elong = math.exp(rng.normal(0.0, 0.15 + 0.25 * variety))
    if kind == "epidural":
        elong = float(np.clip(elong, 1 / 1.3, 1.3))  # sutures bound a lens in every direction: no long strips
    rotation = random_rotation(rng)
    scale = (elong, 1.0 / elong, 1.0)
    offsets = _surface_offsets(nearest, flat, int3(nearest[a][seed_local] for a in range(3)), geometry)
    s2 = np.zeros(len(flat), np.float32)
    for k in range(3):
        u = rotation[0, k] * offsets[0] + rotation[1, k] * offsets[1] + rotation[2, k] * offsets[2]
        s2 += (u * scale[k]) ** 2
    s = np.sqrt(s2)
    if stretch is not None:
        s = s * stretch[box].ravel()[flat]
    if variety > 0:
        # Irregular thickness and outline: smooth multiplicative noise (12-20 mm correlation).
        d = d * np.exp(0.35 * variety * smooth_noise(depth.shape, geometry, 12.0, rng).ravel()[flat])
        s = s * np.exp(0.2 * variety * smooth_noise(depth.shape, geometry, 20.0, rng).ravel()[flat])
    field = np.full(depth.shape, -np.inf, np.float32)
    field.ravel()[flat] = -_critical_extent(d, s, ratio, power)
    sub = fit_to_count(field, sub_allowed, n_voxels, seed=seed_local, voxel_ml=geometry.voxel_volume_ml,
                       where=where)
    sub = _clean_outline(sub, sub_allowed, field, geometry, seed=seed_local, n=n_voxels,
                         smooth_mm=2.0 * max(geometry.spacing) if kind == "epidural" else 0.0, where=where)
    out = np.zeros(brain.shape, bool)
    out[box] = sub
    return out


def _clean_outline(mask: np.ndarray, allowed: np.ndarray, field: np.ndarray, geometry: Geometry, *,
                   seed: tuple[int, int, int], n: int, smooth_mm: float, where: str) -> np.ndarray:
    """One clean piece of exactly ``n`` voxels: small pieces and axial specks dropped, optionally smoothed."""
    if smooth_mm > 0:
        # A closing fills notches; no opening, which would blunt the thin tapering rim.
        ball = _ball_mm(smooth_mm, geometry)
        pad = max(ball.shape)
        mask = ndimage.binary_closing(np.pad(mask, pad), structure=ball)[
            tuple(slice(pad, -pad) for _ in range(3))] & allowed
    mask = drop_small_pieces(mask, min_voxels=max(3, int(0.01 * n)), seed=seed)
    mask = _drop_axial_specks(mask)
    return adjust_count(mask, field, allowed, n, where=where)


def _drop_axial_specks(mask: np.ndarray, max_pixels: int = 2) -> np.ndarray:
    """``mask`` without the pieces of ``max_pixels`` or fewer pixels of each axial slice (what a reader sees as
    specks), unless that would empty the mask."""
    out = mask.copy()
    for z in range(mask.shape[0]):
        if not mask[z].any():
            continue
        labels, count = ndimage.label(mask[z], structure=np.ones((3, 3), bool))
        if count <= 1 and mask[z].sum() > max_pixels:
            continue
        sizes = np.bincount(labels.ravel())
        sizes[0] = max_pixels + 1
        out[z] &= ~(sizes <= max_pixels)[labels]
    return out if out.any() else mask


def drop_small_pieces(mask: np.ndarray, *, min_voxels: int, seed: tuple[int, ...] | None = None) -> np.ndarray:
    """``mask`` without its 26-connected pieces of fewer than ``min_voxels`` voxels (the piece holding ``seed``, or
    the largest one, always stays).

    Args:
        mask: boolean mask.
        min_voxels: smallest piece kept.
        seed: index of a voxel whose piece is kept whatever its size, or None.
    """
    labels, count = ndimage.label(mask, structure=_FULL)
    if count <= 1:
        return mask.copy()
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_voxels
    keep[int(np.argmax(np.where(np.arange(len(sizes)) > 0, sizes, -1)))] = True
    if seed is not None and labels[tuple(seed)] > 0:
        keep[labels[tuple(seed)]] = True
    keep[0] = False
    return keep[labels]


def adjust_count(mask: np.ndarray, field: np.ndarray, allowed: np.ndarray, n: int, *,
                 where: str = "lesion") -> np.ndarray:
    """``mask`` grown or trimmed to exactly ``n`` voxels in a way that smooths its outline.

    Voxels are added next to the mask (never as new pieces): notches (4 or more face neighbours in it) first,
    then by highest ``field``; voxels are removed from its surface: loose ones (at most one face neighbour)
    first, then by lowest ``field``. The field keeps deciding the shape; the outline loses its notches and spurs.

    Args:
        mask: boolean mask (within ``allowed``).
        field: score per voxel (higher = better lesion voxel).
        allowed: voxels the mask may use.
        n: voxel count wanted.
        where: name used in error messages.

    Raises:
        InputError: fewer than ``n`` allowed voxels can be reached.
    """
    mask = np.asarray(mask, dtype=bool).copy()
    while True:
        missing = n - int(mask.sum())
        if missing == 0:
            return mask
        nz = np.argwhere(mask) if mask.any() else np.argwhere(allowed)[:1]
        box = tuple(slice(max(0, int(lo) - 2), int(hi) + 3) for lo, hi in zip(nz.min(axis=0), nz.max(axis=0)))
        sub = mask[box].copy()  # contiguous: its ravel() is a view that can be written
        faces = ndimage.convolve(sub.astype(np.int8), _CROSS.astype(np.int8) - _CENTRE, mode="constant")
        if missing > 0:
            ring = ndimage.binary_dilation(sub, structure=_FULL) & allowed[box] & ~sub
            cand = np.flatnonzero(ring)
            if len(cand) == 0:
                raise InputError(f"requested {n} voxels but only {int(mask.sum())} fit", where=where,
                                 fix="ask for a smaller lesion")
            # Notches (4+ face neighbours in the mask) first, then by field: keeps the shape the field makes.
            order = np.lexsort((-field[box].ravel()[cand], faces.ravel()[cand] < 4))
        else:
            # Loose voxels (at most one face neighbour) first, then the lowest field.
            cand = np.flatnonzero(sub & (faces < 6))
            order = np.lexsort((field[box].ravel()[cand], faces.ravel()[cand] > 1))
        # A few at a time, so the neighbour counts stay current where the outline changes.
        step = min(abs(missing), max(1, len(cand) // 8))
        sub.ravel()[cand[order[:step]]] = missing > 0
        mask[box] = sub


def _ball_mm(radius_mm: float, geometry: Geometry) -> np.ndarray:
    """Structuring element: the voxels within ``radius_mm`` of the centre (at least the 6-neighbourhood)."""
    half = [max(1, int(math.floor(radius_mm / s))) for s in geometry.spacing_zyx]
    grids = np.meshgrid(*[np.arange(-h, h + 1) * s for h, s in zip(half, geometry.spacing_zyx)], indexing="ij")
    ball = sum(g**2 for g in grids) <= radius_mm**2 + 1e-6
    ball[tuple(h for h in half)] = True
    for axis, h in enumerate(half):  # never thinner than the face neighbours
        idx = list(half)
        for step in (-1, 1):
            idx[axis] = h + step
            ball[tuple(idx)] = True
    return ball


def grow_by_priority(key: np.ndarray, allowed: np.ndarray, seed: tuple[int, int, int], n: int, *,
                     where: str = "lesion", voxel_ml: float | None = None) -> np.ndarray:
    """A connected region of exactly ``n`` voxels grown from ``seed``, always taking the reachable allowed voxel of
    lowest ``key`` next (a priority flood): it follows channels of low key, such as CSF spaces.

    Args:
        key: cost per voxel (lower = taken earlier).
        allowed: voxels the region may use (``seed`` must be one).
        seed: start voxel index.
        n: voxel count wanted.
        where: name used in error messages.
        voxel_ml: voxel volume, to word errors in ml.

    Raises:
        InputError: fewer than ``n`` allowed voxels are connected to ``seed``.
    """
    allowed = np.asarray(allowed, dtype=bool)
    if not allowed[tuple(seed)]:
        raise InputError(f"the seed {tuple(seed)} lies outside the allowed region", where=where)
    padded = np.pad(allowed, 1)
    shape = padded.shape
    keys = np.pad(np.asarray(key, dtype=np.float64), 1).ravel()
    free = padded.ravel().copy()
    strides = np.array([shape[1] * shape[2], shape[2], 1])
    steps = [int(np.dot(strides, d)) for d in np.argwhere(_FULL) - 1 if np.any(d)]
    start = int(np.dot(strides, np.asarray(seed) + 1))
    heap = [(keys[start], start)]
    free[start] = False
    taken: list[int] = []
    while heap and len(taken) < n:
        _, i = heapq.heappop(heap)
        taken.append(i)
        for step in steps:
            j = i + step
            if free[j]:
                free[j] = False
                heapq.heappush(heap, (keys[j], j))
    if len(taken) < n:
        got = f"{len(taken) * voxel_ml:.3g} ml" if voxel_ml else f"{len(taken)} voxels"
        raise InputError(f"requested lesion volume does not fit: only {got} of room is connected there",
                         where=where, fix="ask for a smaller volume, another place, or fewer lesions")
    out = np.zeros(shape, bool)
    out.ravel()[taken] = True
    return out[1:-1, 1:-1, 1:-1]


def visible_from(allowed: np.ndarray, center: tuple[int, int, int], geometry: Geometry, *,
                 step_mm: float = 0.5) -> np.ndarray:
    """The allowed voxels seen from ``center``: the straight segment to them stays in ``allowed`` (a star-convex
    region, so a shape grown in it cannot wrap around an obstacle and leave a hole).

    Args:
        allowed: boolean mask (a box of the full grid is enough).
        center: index of the viewpoint.
        geometry: grid geometry (the segment is sampled every ``step_mm``).
        step_mm: sampling step along the segments.
    """
    idx = np.argwhere(allowed)
    if len(idx) == 0:
        return np.zeros(allowed.shape, bool)
    c = np.asarray(center, dtype=np.float32)
    delta = (idx - c).astype(np.float32)
    length = np.sqrt(((delta * np.asarray(geometry.spacing_zyx, np.float32)) ** 2).sum(axis=1))
    n_steps = max(1, int(math.ceil(float(length.max()) / step_mm)))
    ok = np.ones(len(idx), bool)
    upper = np.asarray(allowed.shape) - 1
    for t in np.linspace(0.0, 1.0, n_steps + 1)[1:-1]:
        # Only segments long enough to have a sample here need checking.
        pts = np.clip(np.rint(c + t * delta).astype(np.int64), 0, upper)
        ok &= allowed[pts[:, 0], pts[:, 1], pts[:, 2]]
    out = np.zeros(allowed.shape, bool)
    out[tuple(idx[ok].T)] = True
    return out


def hematoma(allowed: np.ndarray, geometry: Geometry, *, center_zyx: tuple[int, int, int], n_voxels: int,
             shape_variety: float, rng: np.random.Generator, where: str = "lesion") -> np.ndarray:
    """A compact, solid, mildly lobulated hematoma of exactly ``n_voxels`` allowed voxels around ``center_zyx``.

    Score field ``1 - rho / R(u)``: ``rho`` is the radius in a random ellipsoid of the lesion's volume (axis ratios
    within ~1.5), ``R(u)`` a smooth radial modulation made of a few broad random lobes (amplitude grows with
    ``shape_variety``). The field falls along every ray from the centre, so each of its level sets is
    star-shaped: round or oval, lobulated, never angular, with no holes. It is cut to the part of ``allowed`` seen
    from the centre (see :func:`visible_from`), so an obstacle such as a ventricle flattens the clot instead of
    being wrapped around; any remaining cavity is filled and the count restored.

    Args:
        allowed: boolean mask the hematoma must stay in.
        geometry: grid geometry (all sizes are physical).
        center_zyx: integer voxel index of the centre (must be allowed).
        n_voxels: exact size.
        shape_variety: 0 = smooth ellipsoid, 1 = clearly lobulated (still compact).
        rng: random generator.
        where: name used in error messages.
    """
    variety = float(np.clip(shape_variety, 0.0, 1.0))
    center = np.asarray(center_zyx, dtype=int)
    voxel_mm3 = geometry.voxel_volume_ml * 1000.0
    r_eq = (3.0 * n_voxels * voxel_mm3 / (4.0 * math.pi)) ** (1.0 / 3.0)
    log_axes = np.clip(rng.normal(0.0, 0.08 + 0.1 * variety, 3), -0.25, 0.25)
    axes = r_eq * np.exp(log_axes - log_axes.mean())
    rotation = random_rotation(rng)
    n_lobes = 3 + int(rng.integers(0, 3 + int(round(3 * variety))))
    lobes = rng.standard_normal((n_lobes, 3))
    lobes /= np.linalg.norm(lobes, axis=1, keepdims=True)
    weights = rng.uniform(0.5, 1.0, n_lobes)
    kappa = 5.0  # lobe width: exp(kappa * (cos - 1)) halves ~30 degrees off its axis
    amplitude = 0.06 + 0.22 * variety
    half = float(axes.max()) * (1.6 + amplitude) + 2.0 * max(geometry.spacing)
    while True:
        box = _box(center, half, allowed.shape, geometry)
        sub_allowed = allowed[box]
        seed = int3(c - sl.start for c, sl in zip(center, box))
        dz, dy, dx = _offsets_mm(box, center, geometry)
        u = [rotation[0, k] * dz + rotation[1, k] * dy + rotation[2, k] * dx for k in range(3)]
        rho = np.sqrt(sum((u[k] / axes[k]) ** 2 for k in range(3)))
        norm = np.maximum(np.sqrt(sum(v**2 for v in u)), 1e-6)
        bumps = sum(w * np.exp(kappa * ((u[0] * a[0] + u[1] * a[1] + u[2] * a[2]) / norm - 1.0))
                    for w, a in zip(weights, lobes))
        # Mean of one lobe over the sphere is (1 - exp(-2 kappa)) / (2 kappa): centre the modulation on it.
        bumps = bumps - weights.sum() * (1.0 - math.exp(-2.0 * kappa)) / (2.0 * kappa)
        field = (1.0 - rho / (1.0 + amplitude * bumps / weights.max())).astype(np.float32)
        seen = visible_from(sub_allowed, seed, geometry)
        try:
            try:
                sub = fit_to_count(field, seen, n_voxels, seed=seed, voxel_ml=geometry.voxel_volume_ml, where=where)
            except InputError:
                # Too little room in sight of the centre: the whole allowed region (may wrap, then filled).
                sub = fit_to_count(field, sub_allowed, n_voxels, seed=seed, voxel_ml=geometry.voxel_volume_ml,
                                   where=where)
        except InputError:
            if _covers(box, allowed.shape):
                raise
            half *= 1.8
            continue
        filled = ndimage.binary_fill_holes(sub) & sub_allowed
        if filled.sum() != sub.sum():
            sub = adjust_count(filled, field, sub_allowed, n_voxels, where=where)
        out = np.zeros(allowed.shape, bool)
        out[box] = sub
        return out


def sulcal(allowed: np.ndarray, brain: np.ndarray, geometry: Geometry, *, seed_zyx: tuple[int, int, int],
           n_voxels: int, shape_variety: float, rng: np.random.Generator, patch_mm: float = 35.0,
           max_depth_mm: float | None = None, depth: np.ndarray | None = None,
           surface: tuple[tuple[slice, ...], np.ndarray, np.ndarray] | None = None,
           csf: np.ndarray | None = None, max_pieces: int = 5) -> np.ndarray:
    """Convexity subarachnoid blood: thin streaks filling a few adjacent sulci near ``seed_zyx``.

    Sulci are modelled as sheets at right angles to the brain surface: the zero band of a smooth random field
    evaluated where each voxel lands when pushed out to the surface along the normal (so it does not change with
    depth), ~``2.5 * sigma`` apart
    (sigma 5-3.5 mm along the surface with ``shape_variety``, 3x longer vertically so most sulci cross an axial
    slice as a line) and about one voxel thick. Blood fills these sheets from the surface down to a depth that
    tapers from ``max_depth_mm`` at the seed to zero at the rim of a round patch, which grows until ``n_voxels``
    are inside; with a CT, CSF-like voxels (``csf``) widen the band so the streaks follow the dark sulci. The
    ``max_pieces`` largest streaks are kept (each at least 5% of the blood) and grown along their own sulci to
    the exact volume: thin (every voxel on or next to the lesion surface) and in a few pieces, no specks.

    Args:
        allowed: voxels the lesion may use.
        brain: brain mask (its outer surface is the pial surface).
        geometry: grid geometry.
        seed_zyx: voxel the blood is centred on (its nearest surface point is the patch centre).
        n_voxels: exact size.
        shape_variety: 0..1; more variety = closer, more tortuous sulci.
        rng: random generator.
        patch_mm: unused (the patch size follows from the volume); kept for callers.
        max_depth_mm: depth of the sulcal blood at the patch centre, or None for 12-20 mm growing with the volume.
        depth: unused (kept for callers; the depth comes from ``surface``).
        surface: precomputed ``HeadMasks.surface_points(geometry)`` of ``brain``, or None to compute it.
        csf: CSF-likeness 0..1 of every voxel (full grid, from the CT), or None.
        max_pieces: most separate streaks kept.
    """
    del patch_mm, depth
    variety = float(np.clip(shape_variety, 0.0, 1.0))
    where = "subarachnoid hemorrhage"
    box, sdepth, nearest = surface if surface is not None else surface_points(brain, geometry)
    sub_allowed = allowed[box] & brain[box]
    flat = np.flatnonzero(sub_allowed)
    if len(flat) < n_voxels:
        raise InputError(f"requested subarachnoid volume {n_voxels * geometry.voxel_volume_ml:.3g} ml does not fit",
                         where=where, fix="ask for a smaller volume")
    seed_local = int3(np.clip(c - sl.start, 0, n - 1) for c, sl, n in zip(seed_zyx, box, sdepth.shape))
    origin = int3(nearest[a][seed_local] for a in range(3))
    d = sdepth.ravel()[flat]
    s = np.sqrt(sum(o**2 for o in _surface_offsets(nearest, flat, origin, geometry)))
    sigma = 5.0 - 1.5 * variety
    # Longer correlation along physical z: array axis a runs along index axis (2 - a) of the direction matrix.
    vertical = [abs(float(geometry.direction_matrix[2, 2 - a])) for a in range(3)]
    noise = smooth_noise(sdepth.shape, geometry, float3(sigma * (1.0 + 2.0 * v) for v in vertical), rng)
    # Each voxel pushed out along the (smoothed) outward normal by its depth lands on the surface: sampling the
    # field there makes it constant along the normal, a continuous version of "its nearest surface point".
    spacing = np.asarray(geometry.spacing_zyx, np.float32)
    smooth = ndimage.gaussian_filter(brain[box].astype(np.float32), 4.0 / spacing)
    grads = np.stack([g.ravel()[flat] for g in np.gradient(smooth, *spacing)])
    normal = -grads / np.maximum(np.linalg.norm(grads, axis=0), 1e-6)
    points = np.stack(np.unravel_index(flat, sdepth.shape)).astype(np.float32)
    landing = points + normal * d[None, :] / spacing[:, None]
    value = ndimage.map_coordinates(noise, landing, order=1, mode="nearest")
    slope = np.sqrt(sum(ndimage.map_coordinates(g, landing, order=1, mode="nearest") ** 2
                        for g in np.gradient(noise, *spacing)))
    # Distance (mm) to the field's zero surface, to first order: a band of even width, also where the field
    # only grazes zero (|value| alone would swell into blobs there).
    band = np.abs(value) / np.maximum(slope, 1e-6)
    half_width = 0.5 * min(geometry.spacing)
    if csf is not None:
        dark = np.clip(csf[box].ravel()[flat], 0.0, 1.0)
        band = band - half_width * (dark - float(np.median(dark)))
    if max_depth_mm is None:
        max_depth_mm = float(np.clip(12.0 + 0.2 * n_voxels * geometry.voxel_volume_ml, 12.0, 20.0))
    depth_scale = max_depth_mm * math.exp(0.2 * variety * rng.standard_normal())
    taper = np.sqrt(np.clip(1.0 - (d / depth_scale) ** 2, 0.0, None))
    in_sheet = (band <= half_width) & (taper > 0)
    # Patch radius each sheet voxel needs: deeper parts of a sulcus fill only near the centre.
    need = np.full(len(flat), np.inf, np.float32)
    need[in_sheet] = s[in_sheet] / np.maximum(taper[in_sheet], 1e-3) + 2.0 * band[in_sheet] / half_width
    field = np.full(sdepth.shape, -np.inf, np.float32)
    field.ravel()[flat] = -need
    room = np.isfinite(field)
    if room.sum() < 2 * n_voxels:
        # Too few sulci in reach (a small brain or hemisphere): everything near the surface may take blood.
        room = sub_allowed & (sdepth <= depth_scale)
        extra = room & ~np.isfinite(field)
        field[extra] = -1e6 - sdepth[extra]
    if room.sum() < n_voxels:
        raise InputError(f"requested subarachnoid volume {n_voxels * geometry.voxel_volume_ml:.3g} ml does not fit "
                         "near the brain surface here", where=where, fix="ask for a smaller volume or side 'any'")
    top = fit_to_count(field, room, n_voxels, connected=False)
    near_surface = sub_allowed & (sdepth <= depth_scale)
    for pieces, grow_in in ((max_pieces, room), (2 * max_pieces, room), (max_pieces, room | near_surface)):
        # When the kept sulci run out of room, keep more of them, then let the streaks leave the sulcal band.
        extra = grow_in & ~np.isfinite(field)
        field[extra] = -1e6 - sdepth[extra]
        try:
            sub = adjust_count(_largest_pieces(top, pieces, min_voxels=max(3, int(0.05 * n_voxels))), field,
                               grow_in, n_voxels, where=where)
            # Specks of an axial slice (a streak grazing it) read as noise: regrow their voxels along the streaks.
            sub = adjust_count(_drop_axial_specks(sub, 1), field, grow_in, n_voxels, where=where)
            break
        except InputError:
            continue
    else:
        sub = top
    out = np.zeros(brain.shape, bool)
    out[box] = sub
    return out


def _largest_pieces(mask: np.ndarray, count: int, *, min_voxels: int) -> np.ndarray:
    """The ``count`` largest 26-connected pieces of ``mask`` that have at least ``min_voxels`` (the largest piece
    always stays)."""
    labels, n = ndimage.label(mask, structure=_FULL)
    if n <= 1:
        return mask.copy()
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    order = np.argsort(-sizes)[:count]
    keep = np.zeros(len(sizes), bool)
    keep[order[sizes[order] >= min_voxels]] = True
    keep[order[0]] = True
    return keep[labels]


def cisternal(allowed: np.ndarray, geometry: Geometry, *, seed_zyx: tuple[int, int, int], n_voxels: int,
              csf: np.ndarray, shape_variety: float, rng: np.random.Generator,
              min_csf: tuple[float, ...] = (0.5, 0.4, 0.3, 0.2)) -> np.ndarray:
    """Cisternal subarachnoid blood: a connected cast of the CSF spaces around ``seed_zyx`` (a basal cistern).

    A priority flood from the seed through CSF-density voxels only (``csf >= min_csf``; the limit is relaxed step
    by step when the connected CSF room is too small), taking the darkest, nearest voxel next: the blood fills the
    cistern and runs along the CSF channels that leave it (other basal cisterns, sylvian fissures), as blood from
    a ruptured aneurysm does.

    Args:
        allowed: voxels the lesion may use (ventricles excluded by the caller).
        geometry: grid geometry.
        seed_zyx: start voxel (CSF-like, in a cistern).
        n_voxels: exact size.
        csf: CSF-likeness 0..1 of every voxel (0 = tissue density, 1 = CSF density).
        shape_variety: 0..1; more variety = a less even spread.
        rng: random generator.
        min_csf: CSF-likeness limits tried in turn.
    """
    variety = float(np.clip(shape_variety, 0.0, 1.0))
    seed = np.asarray(seed_zyx, dtype=int)
    grids = np.meshgrid(*[(np.arange(n) - c) * sp for n, c, sp in zip(allowed.shape, seed, geometry.spacing_zyx)],
                        indexing="ij", sparse=True)
    distance = np.sqrt(sum(g**2 for g in grids)).astype(np.float32)
    # Darkness first, distance second: the cast follows CSF channels out of the cistern before it takes the
    # partial-volumed rim of the cistern itself.
    # A random reach (30-120 mm per unit of darkness) varies how far along the channels the cast runs.
    reach_mm = 60.0 * math.exp(float(np.clip(rng.normal(0.0, 0.35 + 0.35 * variety), -0.7, 0.7)))
    key = 2.0 * (1.0 - np.clip(csf, 0.0, 1.0)) + distance / reach_mm
    if variety > 0:
        key = key + 0.15 * variety * smooth_noise(allowed.shape, geometry, 6.0, rng)
    error: InputError | None = None
    for limit in min_csf:
        room = allowed & (csf >= limit)
        room[tuple(seed)] = allowed[tuple(seed)]
        try:
            return grow_by_priority(key, room, tuple(seed), n_voxels, where="subarachnoid hemorrhage",
                                    voxel_ml=geometry.voxel_volume_ml)
        except InputError as err:
            error = err
    assert error is not None
    raise error


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
    blood = fit_to_count(level, ventricles, n_voxels, connected=False, voxel_ml=geometry.voxel_volume_ml,
                         where="intraventricular hemorrhage")
    # An uneven level can leave lone voxels above it, a small volume a speck in a small ventricle: regrow them at
    # the level of the larger pools instead.
    return adjust_count(drop_small_pieces(blood, min_voxels=max(10, n_voxels // 50)), level, ventricles, n_voxels,
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
        return int3(np.unravel_index(int(flat[rng.integers(len(flat))]), candidates.shape))
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
    return int3(best)
