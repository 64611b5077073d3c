"""Anatomy masks from thresholds and morphology (no learned model): brain, skull, air, ventricles, midline.

All functions take arrays indexed ``[z, y, x]`` with a :class:`~SyntheticImagingLib.cases.Geometry`; every size is
given in mm and converted with the voxel spacing, so anisotropic grids behave like isotropic ones.

Head CT must be in Hounsfield units. The shipped head template (``scct_cormack.nii.gz``) is in Cormack units:
convert it with :func:`cormack_to_hu` first. That template is an average of many heads, so its bone is blurred
(maximum ~770 HU instead of >1000) and its ventricles are partial-volumed (~3-15 HU instead of 0-10 HU); the
default thresholds below are chosen to work on it as well as on a real CT scan.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from .cases import Case, Geometry, Modality
from .errors import InputError

__all__ = [
    "inner_table_mask",
    "encode_head_masks",
    "decode_head_masks",
    "HeadMasks",
    "cormack_to_hu",
    "brain_mask",
    "head_masks",
    "estimate_midline_x",
    "largest_component",
    "distance_mm",
    "physical_coordinate",
    "surface_points",
    "head_masks_from_brain",
    "BONE_HU",
    "AIR_HU",
    "SOFT_TISSUE_HU",
    "VENTRICLE_HU",
    "BLURRED_BONE_SOFT_MAX_HU",
    "FAT_AIR_HU",
]

#: Bone threshold (HU). Real cortical bone is >1000 HU; the blurred template skull peaks at 300-770 HU and its
#: brain/bone transition crosses 80-250 HU within one 2 mm voxel, so 250 keeps the template skull closed while no
#: soft tissue or blood (<100 HU) reaches it.
BONE_HU = 250.0
#: Air threshold (HU): outside the head, sinuses and mastoid air cells; fat is above -150 HU.
AIR_HU = -200.0
#: Soft-tissue (brain) window in HU.
SOFT_TISSUE_HU = (0.0, 80.0)
#: Upper soft-tissue limit (HU) used instead when the bone is blurred (no voxel reaches 1000 HU).
BLURRED_BONE_SOFT_MAX_HU = 60.0
#: Orbital fat and sinus air (HU): the brain keeps ``face_margin_mm`` away from them (see :func:`head_masks`).
FAT_AIR_HU = -30.0
#: CSF window of the ventricles (HU). The upper threshold actually used is half-way between the darkest deep
#: voxels and the deep tissue median, capped to this window: the template's ventricles read ~3-15 HU and its
#: white matter ~16-20 HU, so a fixed 15 HU would take the partial-volume halo too (80 ml instead of ~55 ml).
VENTRICLE_HU = (0.0, 15.0)


@dataclasses.dataclass(frozen=True, eq=False)
class HeadMasks:
    """Boolean anatomy masks of a head CT (all ``[z, y, x]``, the grid of the CT) and the midline.

    Args:
        brain: intracranial soft tissue, hole-filled, kept ``margin_mm`` away from bone.
        skull: bone (``>= bone_hu``).
        air: air outside the head and in the sinuses (``< air_hu``).
        ventricles: CSF-like connected regions near the centre of the brain (inside ``brain``).
        inner_table: brain voxels next to the skull (the brain-side surface of the skull).
        midline_x: physical x (mm, LPS) of the mid-sagittal plane; patient left is ``x > midline_x``.
        hu: the CT itself in HU (float32, same grid), or None when unknown (a brain mask alone, a label map).
            Blood that fills CSF spaces (subarachnoid) follows its CSF-density voxels when it is given.

    Derived fields used by the lesion synthesis (depth below the brain surface, nearest surface points) are
    computed once per geometry and cached on the instance; ``dataclasses.replace`` starts a fresh cache.
    """

    brain: np.ndarray
    skull: np.ndarray
    air: np.ndarray
    ventricles: np.ndarray
    inner_table: np.ndarray
    midline_x: float
    hu: np.ndarray | None = None
    _cache: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        shapes = {name: np.shape(getattr(self, name)) for name in ("brain", "skull", "air", "ventricles",
                                                                    "inner_table")}
        if len(set(shapes.values())) != 1 or len(shapes["brain"]) != 3:
            raise InputError(f"head masks must be 3D arrays of one shape, got {shapes}",
                             fix="build them with head_masks() from one CT volume")
        for name in shapes:
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=bool))
        object.__setattr__(self, "midline_x", float(self.midline_x))
        if self.hu is not None:
            hu = np.asarray(self.hu, dtype=np.float32)
            if hu.shape != shapes["brain"]:
                raise InputError(f"the CT has shape {hu.shape} but the masks have {shapes['brain']}",
                                 fix="pass the CT the masks were made from (or hu=None)")
            object.__setattr__(self, "hu", hu)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(z, y, x)``."""
        return tuple(self.brain.shape)  # type: ignore[return-value]

    def brain_depth(self, geometry: Geometry) -> np.ndarray:
        """Distance (mm) of every brain voxel below the brain's outer surface (cached; 0 outside the brain)."""
        key = ("depth", geometry)
        if key not in self._cache:
            self._cache[key] = _depth(self.brain, geometry)
        return self._cache[key]

    def surface_points(self, geometry: Geometry) -> tuple[tuple[slice, ...], np.ndarray, np.ndarray]:
        """For the brain's bounding box: the box, the depth (mm) below the surface and the index of the nearest
        voxel outside the brain (``int32 [3, z, y, x]``, box coordinates, may be -1 or the box size). Cached."""
        key = ("surface", geometry)
        if key not in self._cache:
            self._cache[key] = surface_points(self.brain, geometry)
        return self._cache[key]


def surface_points(mask: np.ndarray, geometry: Geometry) -> tuple[tuple[slice, ...], np.ndarray, np.ndarray]:
    """Depth below a mask's surface and the nearest outside voxel, on the mask's bounding box.

    Args:
        mask: non-empty boolean mask ``[z, y, x]``.
        geometry: its geometry.

    Returns:
        ``(box, depth, nearest)``: the bounding box (+1 voxel, clipped) as slices, the depth (mm, float32, 0 outside
        the mask) and the index of the nearest voxel outside the mask (``int32 [3, z, y, x]`` in box coordinates;
        may be -1 or the box size where the nearest outside voxel is beyond the array).
    """
    nz = np.argwhere(mask)
    lo = np.maximum(nz.min(axis=0) - 1, 0)
    hi = np.minimum(nz.max(axis=0) + 2, mask.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    padded = np.pad(np.asarray(mask[box], dtype=bool), 1)
    indices = np.zeros((3,) + padded.shape, dtype=np.int32)
    depth = ndimage.distance_transform_edt(padded, sampling=geometry.spacing_zyx, return_indices=True,
                                           indices=indices)
    nearest = np.ascontiguousarray(indices[:, 1:-1, 1:-1, 1:-1] - 1)
    return box, depth[1:-1, 1:-1, 1:-1].astype(np.float32), nearest


def cormack_to_hu(array: np.ndarray) -> np.ndarray:
    """Convert Cormack units (Rorden's Clinical toolbox, ``scct_cormack.nii.gz``) to Hounsfield units.

    For ``c > 900``: ``e = c - 900``; ``e' = e / 11`` if ``e <= 2200`` else ``200 + (e - 2200)``;
    ``HU = 900 + e' - 1024``. For ``c <= 900``: ``HU = c - 1024``.

    Args:
        array: values in Cormack units (any shape).

    Returns:
        float32 array of the same shape in HU.
    """
    c = np.asarray(array, dtype=np.float64)
    e = c - 900.0
    stretched = np.where(e <= 2200.0, e / 11.0, 200.0 + (e - 2200.0))
    hu = np.where(c > 900.0, 900.0 + stretched - 1024.0, c - 1024.0)
    return hu.astype(np.float32)


def distance_mm(mask: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Distance (mm) of every voxel to the nearest voxel *outside* ``mask`` (0 outside ``mask``).

    Args:
        mask: boolean array ``[z, y, x]``.
        geometry: grid geometry (its spacing makes the distance physical).
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return np.zeros(mask.shape, dtype=np.float32)
    if mask.all():
        # No outside voxel: measure to the (virtual) border of the array instead.
        padded = np.pad(mask, 1, constant_values=False)
        d = ndimage.distance_transform_edt(padded, sampling=geometry.spacing_zyx)
        return d[1:-1, 1:-1, 1:-1].astype(np.float32)
    return ndimage.distance_transform_edt(mask, sampling=geometry.spacing_zyx).astype(np.float32)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a boolean mask (an empty mask stays empty).

    Args:
        mask: boolean array (any dimension).
    """
    mask = np.asarray(mask, dtype=bool)
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return mask.copy()
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def _depth(mask: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Like :func:`distance_mm`, with the array border counted as outside (masks touching the border)."""
    return distance_mm(np.pad(np.asarray(mask, dtype=bool), 1), geometry)[1:-1, 1:-1, 1:-1]


def _ball(radius_mm: float, geometry: Geometry) -> np.ndarray:
    """Ellipsoidal structuring element that is a ball of ``radius_mm`` in physical space."""
    half = [max(0, int(np.floor(radius_mm / s))) for s in geometry.spacing_zyx]
    grids = np.meshgrid(*[np.arange(-h, h + 1) * s for h, s in zip(half, geometry.spacing_zyx)], indexing="ij")
    return sum(g**2 for g in grids) <= radius_mm**2 + 1e-6


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """3D hole filling plus axial-slice filling (catches cavities open at the top or bottom of the grid)."""
    filled = ndimage.binary_fill_holes(mask)
    for z in range(filled.shape[0]):
        if filled[z].any():
            filled[z] = ndimage.binary_fill_holes(filled[z])
    return filled


def _otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of a 1D sample (256 bins)."""
    hist, edges = np.histogram(values, bins=256)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist).astype(float)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres) / np.maximum(w0, 1)
    m1 = (np.sum(hist * centres) - np.cumsum(hist * centres)) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(centres[int(np.argmax(between[:-1]))])


def _check_volume(array: np.ndarray, where: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 3:
        raise InputError(f"a 3D volume is needed, got an array of shape {array.shape}", where=where,
                         fix="pass one 3D channel [z, y, x]")
    if array.dtype == bool:
        array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise InputError("the volume contains NaN/Inf voxels", where=where,
                         fix="replace NaN/Inf (e.g. with the background value) first")
    return array


def _mr_brain_mask(image: np.ndarray, geometry: Geometry) -> np.ndarray:
    lo = float(image.min())
    background = np.abs(image - lo) <= 1e-6 * max(1.0, abs(lo))
    robust_max = float(np.percentile(image[~background], 99.5)) if (~background).any() else lo
    if robust_max <= lo:
        raise InputError("the MR volume is constant: no brain can be found", where="brain_mask",
                         fix="check that the right image was loaded")
    if background.mean() > 0.3:
        # Skull-stripped (BraTS-like): a constant background around the brain; keep everything brighter.
        mask = image > lo + 0.01 * (robust_max - lo)
        mask = largest_component(mask)
        return _fill_holes(mask)
    # Whole-head MR: Otsu foreground, the largest component, holes filled, small gaps closed.
    mask = image > _otsu_threshold(np.clip(image, lo, robust_max).ravel())
    mask = largest_component(ndimage.binary_opening(mask, structure=_ball(2.0, geometry)))
    mask = ndimage.binary_closing(mask, structure=_ball(3.0, geometry))
    return _fill_holes(largest_component(mask))


def _looks_like_raw_ct(hu: np.ndarray) -> bool:
    """True for CT data that is evidently not in HU (Cormack units or unsigned raw values)."""
    return float(hu.min()) >= -50.0 and float(np.percentile(hu, 99)) > 1500.0


def _inside_hull(mask: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Voxels inside the convex hull of ``mask`` (index space; the hull does not depend on the spacing)."""
    pts = np.argwhere(mask)
    if len(pts) < 10:
        return np.zeros(mask.shape, bool)
    try:
        hull = ConvexHull(pts)
    except QhullError:  # flat or degenerate: no volume inside
        return np.zeros(mask.shape, bool)
    # Every column (y, x) meets a convex hull in one z interval: bound it by the facet planes
    # n_z * z + n_y * y + n_x * x + offset <= 0 (fast: columns x facets, not voxels x facets).
    nz, ny, nx, offset = (hull.equations[:, k].astype(np.float32) for k in range(4))
    up, down, flat = nz > 1e-6, nz < -1e-6, np.abs(nz) <= 1e-6
    shape = mask.shape
    grid_y, grid_x = np.meshgrid(np.arange(shape[1], dtype=np.float32), np.arange(shape[2], dtype=np.float32),
                                 indexing="ij")
    yy, xx = grid_y.ravel(), grid_x.ravel()
    lower = np.empty(len(yy), np.float32)
    upper = np.empty(len(yy), np.float32)
    for start in range(0, len(yy), 1024):
        sl = slice(start, start + 1024)
        rhs = -(offset[None, :] + ny[None, :] * yy[sl, None] + nx[None, :] * xx[sl, None])
        upper[sl] = np.min(rhs[:, up] / nz[up], axis=1, initial=np.inf)
        lower[sl] = np.max(rhs[:, down] / nz[down], axis=1, initial=-np.inf)
        # A facet parallel to z that the column lies outside of empties the column.
        outside = np.any(rhs[:, flat] < -1e-3, axis=1)
        upper[sl][outside] = -np.inf
    z = np.arange(shape[0], dtype=np.float32)[:, None]
    inside = (z >= lower[None, :] - 1e-3) & (z <= upper[None, :] + 1e-3)
    return inside.reshape(shape)


def _smooth_mask(mask: np.ndarray, geometry: Geometry, sigma_mm: float) -> np.ndarray:
    """A mask with a smoother surface: Gaussian-blurred (``sigma_mm``) and thresholded at one half."""
    sigma = [sigma_mm / s for s in geometry.spacing_zyx]
    return ndimage.gaussian_filter(np.asarray(mask, dtype=np.float32), sigma, mode="constant") >= 0.5


def _ct_brain(hu: np.ndarray, geometry: Geometry, skull: np.ndarray, *, margin_mm: float,
              soft_range: tuple[float, float], face_margin_mm: float) -> np.ndarray:
    low, high = soft_range
    if skull.any() and float(hu[skull].max()) < 1000.0:
        # Blurred bone (an averaged template, or very smooth data): its edge spreads over 60-250 HU and would
        # bridge brain and temporal muscle, so only clearly brain-like values seed the mask (holes are filled later).
        high = min(high, BLURRED_BONE_SOFT_MAX_HU)
    # Where the brain may not be, whatever its HU.
    keep = np.ones(hu.shape, bool)
    if skull.any():
        # Off the bone (drops the blurred brain/bone boundary and partial-volume voxels) and inside the skull's
        # convex hull: where the skull base is too thin or blurred to threshold (the template's face and orbits),
        # the hull still cuts off most extracranial soft tissue.
        keep &= distance_mm(~skull, geometry) > margin_mm
        keep &= _inside_hull(skull, geometry)
    fat_air = hu < FAT_AIR_HU
    if face_margin_mm > 0 and fat_air.any():
        # Away from orbital fat and sinus air: the bone between them and the brain (orbital roofs, cribriform plate,
        # planum sphenoidale) is often too thin or blurred to threshold, and the soft tissue of the orbits and the
        # ethmoid would otherwise join the frontal lobes.
        keep &= distance_mm(~fat_air, geometry) > face_margin_mm
    soft = (hu >= low) & (hu <= high) & keep
    # Cut thin bridges (foramina, orbits, scalp touching brain through gaps in the bone) before choosing the
    # largest piece, then grow it back inside the soft tissue.
    cut_mm = 6.0
    core = largest_component(distance_mm(soft, geometry) > cut_mm)
    if not core.any():
        core = largest_component(soft)
    grown = soft & (distance_mm(~core, geometry) <= cut_mm + max(geometry.spacing))
    brain = largest_component(grown)
    brain = ndimage.binary_closing(brain, structure=_ball(2.0 * max(geometry.spacing), geometry))
    brain = _fill_holes(brain)
    # A smooth outer surface: the voxel stair-steps of a thresholded edge would show in blood laid along it.
    brain = _smooth_mask(brain, geometry, max(geometry.spacing)) & keep
    return largest_component(brain)


def estimate_midline_x(brain: np.ndarray, geometry: Geometry, *, search_mm: float = 15.0) -> float:
    """Physical x (mm) of the mid-sagittal plane: the mirror plane that best maps the brain mask onto itself.

    Args:
        brain: boolean brain mask ``[z, y, x]``.
        geometry: its geometry; the array axis closest to physical x is mirrored.
        search_mm: how far (mm) from the brain's centroid the plane is searched.

    Returns:
        the x coordinate (mm, LPS) of the plane (of the best plane nearest the centroid when several tie).
    """
    brain = np.asarray(brain, dtype=bool)
    if not brain.any():
        raise InputError("the brain mask is empty", where="estimate_midline_x", fix="pass a non-empty brain mask")
    # Synthesis draws many lesions on the same few anatomy backgrounds: the plane search (~0.1 s at 128^3) is done
    # once per mask content, not per lesion.
    key = (hashlib.blake2b(np.packbits(brain).tobytes(), digest_size=16).digest(), brain.shape, geometry, search_mm)
    with _MIDLINE_LOCK:  # draws may run in several threads
        known = _MIDLINE_CACHE.get(key)
    if known is not None:
        return known
    found = _search_midline_x(brain, geometry, search_mm)
    with _MIDLINE_LOCK:
        while len(_MIDLINE_CACHE) >= 64:
            _MIDLINE_CACHE.pop(next(iter(_MIDLINE_CACHE)))
        _MIDLINE_CACHE[key] = found
    return found


_MIDLINE_CACHE: dict[tuple[object, ...], float] = {}
_MIDLINE_LOCK = threading.Lock()


def _search_midline_x(brain: np.ndarray, geometry: Geometry, search_mm: float) -> float:
    idx = np.argwhere(brain)
    centroid = idx.mean(axis=0)
    # A regular subsample is plenty for the overlap score and keeps large 1 mm masks fast.
    idx = idx[:: max(1, len(idx) // 200_000)]
    # Array axis (in [z, y, x] order) whose direction is closest to physical x.
    dir_cols = geometry.direction_matrix[:, ::-1]  # columns for [z, y, x] array axes
    axis = int(np.argmax(np.abs(dir_cols[0])))
    spacing = geometry.spacing_zyx[axis]
    coords = idx[:, axis]
    n = brain.shape[axis]
    c0 = centroid[axis]
    best_c, best_score = c0, -1.0
    steps = np.arange(-search_mm / spacing, search_mm / spacing + 0.25, 0.5)
    # Nearest-first, so among equally good planes the one closest to the centroid wins.
    for c in c0 + steps[np.argsort(np.abs(steps), kind="stable")]:
        mirrored = np.rint(2 * c - coords).astype(int)
        ok = (mirrored >= 0) & (mirrored < n)
        mirrored_idx = idx[ok].copy()
        mirrored_idx[:, axis] = mirrored[ok]
        score = brain[tuple(mirrored_idx.T)].sum() / len(idx)
        if score > best_score + 1e-9:
            best_c, best_score = c, score
    point = centroid.copy()
    point[axis] = best_c
    return float(geometry.index_to_physical(point)[0])


def head_masks(ct_hu: np.ndarray, geometry: Geometry, *, bone_hu: float = BONE_HU, air_hu: float = AIR_HU,
               soft_range: tuple[float, float] = SOFT_TISSUE_HU, margin_mm: float = 2.0,
               inner_table_mm: float = 2.0, bone_reach_mm: float = 8.0, face_margin_mm: float = 6.0) -> HeadMasks:
    """Brain, skull, air, ventricle and inner-table masks and the midline of a head CT in HU.

    Skull: ``>= bone_hu``, pieces under 1 ml dropped. Air: ``< air_hu``. Brain: soft tissue (``soft_range``; upper
    limit :data:`BLURRED_BONE_SOFT_MAX_HU` when no bone reaches 1000 HU, as on the blurred template) more than
    ``margin_mm`` from bone, more than ``face_margin_mm`` from orbital fat and sinus air (< :data:`FAT_AIR_HU`;
    stands in for the thin, often unthresholdable bone of the anterior skull base) and inside the skull's convex
    hull (cuts off the face), thin bridges cut by a 6 mm erosion, the largest piece grown back, closed,
    hole-filled and its surface smoothed. Ventricles: CSF-like voxels (see :data:`VENTRICLE_HU`) at least 15 mm
    deep and within 35 mm of the midline, with the thin midline bands between the two lateral ventricles (septum
    pellucidum, splenium / velum interpositum, partial-volumed on a smooth CT) cut, pieces of 0.2 ml or more.
    Inner table: the brain's outer shell where bone is near. Midline: mirror symmetry of the brain mask
    (:func:`estimate_midline_x`). The CT itself is kept as ``hu`` (blood in CSF spaces follows its density).

    Args:
        ct_hu: CT volume ``[z, y, x]`` in Hounsfield units, with the skull (convert Cormack units first).
        geometry: its geometry.
        bone_hu: bone threshold (see :data:`BONE_HU` for why 250 and not 300+).
        air_hu: air threshold.
        soft_range: HU window of brain tissue.
        margin_mm: the brain mask keeps this far from bone (drops the blurred brain/bone boundary).
        inner_table_mm: thickness of the brain's outer shell that forms the inner table (at least one voxel).
        bone_reach_mm: shell voxels count as inner table when bone is within ``margin_mm + bone_reach_mm``.
        face_margin_mm: the brain mask keeps this far from orbital fat and sinus air (0 = no such rule).

    Returns:
        the :class:`HeadMasks`.

    Raises:
        InputError: not 3D, NaN, not in HU (e.g. Cormack units), or no skull or brain found.
    """
    hu = _check_volume(ct_hu, "head_masks").astype(np.float32, copy=False)
    if _looks_like_raw_ct(hu):
        raise InputError(
            f"the CT does not look like Hounsfield units (minimum {hu.min():.0f}, 99th percentile "
            f"{np.percentile(hu, 99):.0f}; air should be about -1000)", where="head_masks",
            fix="convert it first: cormack_to_hu() for Cormack units, or subtract 1024 from unsigned raw values")
    skull = hu >= bone_hu
    # Isolated bright specks (calcifications, contrast, noise) are not skull: drop components under 1 ml.
    labels, n = ndimage.label(skull, structure=np.ones((3, 3, 3), bool))
    if n:
        sizes = np.bincount(labels.ravel()) * geometry.voxel_volume_ml
        sizes[0] = 0.0
        skull = (sizes >= 1.0)[labels]
    if skull.sum() * geometry.voxel_volume_ml < 20.0:
        raise InputError(
            f"no skull found (only {skull.sum() * geometry.voxel_volume_ml:.1f} ml above {bone_hu:.0f} HU)",
            where="head_masks", fix="pass a head CT with the skull (not skull-stripped); for a skull-stripped CT "
            "use brain_mask() and give the brain mask alone to the hemorrhage synthesis")
    air = hu < air_hu
    brain = _ct_brain(hu, geometry, skull, margin_mm=margin_mm, soft_range=soft_range,
                      face_margin_mm=face_margin_mm)
    if brain.sum() * geometry.voxel_volume_ml < 50.0:
        raise InputError(f"the brain found is too small ({brain.sum() * geometry.voxel_volume_ml:.1f} ml)",
                         where="head_masks", fix="check that the volume is a head CT in HU with the whole brain")
    midline_x = estimate_midline_x(brain, geometry)
    inner_table = inner_table_mask(brain, skull, geometry, shell_mm=inner_table_mm,
                                   bone_mm=margin_mm + bone_reach_mm)
    ventricles = _ventricles(hu, geometry, brain, midline_x)
    return HeadMasks(brain=brain, skull=skull, air=air, ventricles=ventricles, inner_table=inner_table,
                     midline_x=midline_x, hu=hu)


def encode_head_masks(head: HeadMasks) -> np.ndarray:
    """One uint8 map of the head masks, to store beside a model (0 other, 1 brain, 2 ventricles, 3 skull, 4 air).

    Args:
        head: the masks.
    """
    codes = np.zeros(head.shape, np.uint8)
    codes[head.air] = 4
    codes[head.skull] = 3
    codes[head.brain] = 1
    codes[head.ventricles & head.brain] = 2
    return codes


def decode_head_masks(codes: np.ndarray, geometry: Geometry) -> HeadMasks:
    """Inverse of :func:`encode_head_masks` (inner table and midline derived again; no CT intensities).

    Args:
        codes: the uint8 map.
        geometry: its geometry.
    """
    codes = np.asarray(codes)
    brain = (codes == 1) | (codes == 2)
    skull = codes == 3
    return HeadMasks(brain=brain, skull=skull, air=codes == 4, ventricles=codes == 2,
                     inner_table=inner_table_mask(brain, skull, geometry),
                     midline_x=estimate_midline_x(brain, geometry))


def inner_table_mask(brain: np.ndarray, skull: np.ndarray, geometry: Geometry, *, shell_mm: float = 2.0,
                     bone_mm: float = 10.0) -> np.ndarray:
    """The brain's outer shell where it faces bone (not the foramen magnum or the orbits).

    Bone reach is generous because on the blurred template the brain ends ~4-6 mm from the 250 HU bone edge
    (~2-3 mm on a real CT), and anatomy maps built from it (label-to-image) keep that gap.

    Args:
        brain: brain mask.
        skull: bone mask.
        geometry: grid geometry.
        shell_mm: shell thickness (at least one voxel).
        bone_mm: shell voxels count when bone is within this distance.
    """
    shell = brain & (_depth(brain, geometry) <= max(shell_mm, max(geometry.spacing)) + 1e-3)
    return shell & (distance_mm(~skull, geometry) <= bone_mm)


def _ventricles(hu: np.ndarray, geometry: Geometry, brain: np.ndarray, midline_x: float) -> np.ndarray:
    """CSF-like regions deep in the brain and near the midline (lateral, third and fourth ventricles)."""
    depth = _depth(brain, geometry)
    x_phys = physical_coordinate(geometry, brain.shape, 0)
    # Deep: away from the cortical sulci (CSF on the surface); central: lateral ventricles lie within ~35 mm of
    # the midline.
    central = brain & (depth >= 15.0) & (np.abs(x_phys - midline_x) <= 35.0)
    if not central.any():
        return np.zeros(brain.shape, bool)
    voxel_ml = geometry.voxel_volume_ml
    central_ml = central.sum() * voxel_ml
    # Half-way between CSF (the darkest deep voxels) and the deep white/grey matter (the median), capped to the
    # CSF window: ~15 HU on a real CT, ~12 HU on the partial-volumed template.
    csf, tissue = np.percentile(hu[central], [0.5, 50.0])
    first = float(np.clip((csf + tissue) / 2.0, VENTRICLE_HU[0] + 5.0, VENTRICLE_HU[1]))
    for threshold in (first, first - 2.0, first - 4.0, first - 6.0):
        candidate = central & (hu <= threshold) & (hu >= VENTRICLE_HU[0] - 20.0)
        mask = _drop_small(candidate, voxel_ml, 0.2)
        # Compact: not a large share of the deep brain (a larger one means the threshold leaked into white matter).
        if mask.any() and mask.sum() * voxel_ml <= 0.25 * central_ml:
            return _drop_small(_cut_midline_bridges(mask, geometry, x_phys - midline_x), voxel_ml, 0.2)
    return np.zeros(brain.shape, bool)


def _drop_small(mask: np.ndarray, voxel_ml: float, min_ml: float) -> np.ndarray:
    """``mask`` without its 26-connected pieces smaller than ``min_ml``."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel()) * voxel_ml
    sizes[0] = 0.0
    return (sizes >= min_ml)[labels]


def _cut_midline_bridges(mask: np.ndarray, geometry: Geometry, signed_x: np.ndarray, *, half_gap_mm: float = 5.0,
                         reach_mm: float = 10.0) -> np.ndarray:
    """Cut the midline voxels that join the two lateral ventricles.

    On a smooth or averaged CT the septum pellucidum and the splenium / velum interpositum behind the third
    ventricle are thin and partial-volumed to CSF density, so the two lateral ventricles (and blood layering in
    their atria) would join across the midline. A voxel within ``half_gap_mm`` of the midline is dropped when the
    mask also holds voxels of its row (along x) or a neighbouring row beyond the gap on *both* sides, within
    ``reach_mm``, and the mask runs continuously across the midline there: that is a bridge. The third and
    fourth ventricles are narrow midline cavities flanked by brain, and stay.

    Args:
        mask: ventricle mask ``[z, y, x]``.
        geometry: its geometry.
        signed_x: physical x minus the midline x (mm) of every voxel.
        half_gap_mm: half-width (mm) of the cut midline slab.
        reach_mm: how far beyond the slab (mm) the lateral ventricles are looked for.
    """
    axis = int(np.argmax(np.abs(geometry.direction_matrix[0, ::-1])))  # array axis closest to physical x
    step = geometry.spacing_zyx[axis]
    slab = mask & (np.abs(signed_x) <= half_gap_mm)
    if not slab.any():
        return mask
    beyond = mask & (np.abs(signed_x) > half_gap_mm)
    # Flanks are looked for in the neighbouring rows too: a bridge may touch the ventricles only diagonally.
    rows = np.ones((3, 3, 3), bool)
    rows[tuple(slice(1, 2) if a == axis else slice(None) for a in range(3))] = True
    rows &= np.moveaxis(np.stack([np.zeros((3, 3), bool), np.ones((3, 3), bool), np.zeros((3, 3), bool)]), 0, axis)
    pos = ndimage.binary_dilation(beyond & (signed_x > 0), structure=rows)
    neg = ndimage.binary_dilation(beyond & (signed_x < 0), structure=rows)
    near_pos = np.zeros(mask.shape, bool)
    near_neg = np.zeros(mask.shape, bool)
    for k in range(1, int(np.ceil((2.0 * half_gap_mm + reach_mm) / step)) + 1):
        for shift in (k, -k):
            near_pos |= _shifted(pos, shift, axis)
            near_neg |= _shifted(neg, shift, axis)
    # Only where the mask runs across the midline: two ventricles that merely come close stay untouched.
    step_x = max(geometry.spacing_zyx[axis], 1e-6)
    strip = mask & (np.abs(signed_x) <= half_gap_mm + 1.01 * step_x)
    labels, count = ndimage.label(strip, structure=np.ones((3, 3, 3), bool))
    crossing = np.zeros(count + 1, bool)
    if count:
        outer = np.abs(signed_x) > half_gap_mm
        right = np.unique(labels[strip & outer & (signed_x < 0)])
        left = np.unique(labels[strip & outer & (signed_x > 0)])
        crossing[np.intersect1d(left, right)] = True
        crossing[0] = False
    return mask & ~(slab & near_pos & near_neg & crossing[labels])


def _shifted(mask: np.ndarray, shift: int, axis: int) -> np.ndarray:
    """``mask`` moved by ``shift`` voxels along ``axis`` (no wrap-around; vacated voxels are False)."""
    out = np.zeros_like(mask)
    src = [slice(None)] * mask.ndim
    dst = [slice(None)] * mask.ndim
    if shift > 0:
        src[axis], dst[axis] = slice(0, -shift), slice(shift, None)
    else:
        src[axis], dst[axis] = slice(-shift, None), slice(0, shift)
    out[tuple(dst)] = mask[tuple(src)]
    return out


def physical_coordinate(geometry: Geometry, shape: tuple[int, ...], component: int) -> np.ndarray:
    """Physical coordinate ``component`` (0 = x, 1 = y, 2 = z; mm, LPS) of every voxel of a grid, as float32.

    Args:
        geometry: grid geometry.
        shape: array shape ``(z, y, x)``.
        component: 0, 1 or 2 for x (patient left is +x), y (posterior is +y) or z (superior is +z).
    """
    m = geometry.direction_matrix * np.asarray(geometry.spacing)[None, :]  # physical = m @ ijk + origin
    row = m[component]
    k = np.arange(shape[0], dtype=np.float32)[:, None, None] * row[2]
    j = np.arange(shape[1], dtype=np.float32)[None, :, None] * row[1]
    i = np.arange(shape[2], dtype=np.float32)[None, None, :] * row[0]
    return (k + j + i + geometry.origin[component]).astype(np.float32)


def brain_mask(case_or_array: Case | np.ndarray, geometry: Geometry | None = None, *,
               modality: Modality | str | None = None) -> np.ndarray:
    """Boolean brain mask of an MR or CT volume, by thresholds and morphology.

    MR: skull-stripped data (a constant background around the brain) keeps voxels above 1% of the robust
    maximum; otherwise Otsu foreground, largest component, holes filled, gaps closed. CT (HU): soft tissue
    inside the skull (see :func:`head_masks`); a skull-stripped CT (no bone) keeps the non-background voxels.

    Args:
        case_or_array: a :class:`Case` (its stored ``brain_mask`` is returned when set, else its first channel
            is used) or a 3D array ``[z, y, x]``.
        geometry: the array's geometry (taken from the case for a :class:`Case`).
        modality: ``MR`` or ``CT``; defaults to the case's modality, required for an array.

    Returns:
        boolean array ``[z, y, x]``.

    Raises:
        InputError: missing geometry/modality, not 3D, NaN, constant, or a CT not in HU.
    """
    if isinstance(case_or_array, Case):
        case = case_or_array
        if case.brain_mask is not None:
            return np.asarray(case.brain_mask, dtype=bool).copy()
        geometry = case.geometry
        modality = case.modality if modality is None else modality
        image = next(iter(case.channels.values()))
    else:
        image = case_or_array
        if geometry is None:
            raise InputError("brain_mask needs the geometry of the array", where="brain_mask",
                             fix="pass geometry=... (or a Case)")
        if modality is None:
            raise InputError("brain_mask needs the modality of the array", where="brain_mask",
                             fix="pass modality='MR' or modality='CT'")
    try:
        modality = Modality(modality)
    except ValueError:
        raise InputError(f"unknown modality {modality!r}", where="brain_mask", fix="use 'MR' or 'CT'") from None
    image = _check_volume(image, "brain_mask").astype(np.float32, copy=False)
    if modality is Modality.MR:
        return _mr_brain_mask(image, geometry)
    if _looks_like_raw_ct(image):
        raise InputError("the CT does not look like Hounsfield units", where="brain_mask",
                         fix="convert it first: cormack_to_hu() for Cormack units, or subtract 1024 from raw values")
    if (image >= BONE_HU).sum() * geometry.voxel_volume_ml < 20.0:
        # Skull-stripped CT: everything that differs from the constant background (usually 0 HU).
        values, counts = np.unique(image, return_counts=True)
        background = values[int(np.argmax(counts))]
        mask = largest_component(np.abs(image - background) > 1e-3)
        mask = ndimage.binary_closing(mask, structure=_ball(2.0 * max(geometry.spacing), geometry))
        return _fill_holes(largest_component(mask))
    return head_masks(image, geometry).brain


def head_masks_from_brain(brain: np.ndarray, geometry: Geometry, *, shell_mm: float = 2.0) -> HeadMasks:
    """:class:`HeadMasks` for a brain mask alone (MR, or a skull-stripped CT): no skull, air or ventricles known.

    The inner table is taken as the brain's outer shell (``shell_mm`` thick, at least one voxel), i.e. the brain
    is assumed to fill the skull; the midline comes from the mask's mirror symmetry.

    Args:
        brain: boolean brain mask ``[z, y, x]``.
        geometry: its geometry.
        shell_mm: thickness of the shell that stands in for the inner table.
    """
    brain = np.asarray(brain, dtype=bool)
    if brain.ndim != 3 or not brain.any():
        raise InputError(f"the brain mask must be a non-empty 3D array, got shape {brain.shape} with "
                         f"{int(brain.sum())} voxels set", where="head_masks_from_brain",
                         fix="pass the brain mask of the case (see brain_mask())")
    shell = brain & (_depth(brain, geometry) <= max(shell_mm, max(geometry.spacing)) + 1e-3)
    empty = np.zeros(brain.shape, bool)
    return HeadMasks(brain=brain, skull=empty, air=empty.copy(), ventricles=empty.copy(), inner_table=shell,
                     midline_x=estimate_midline_x(brain, geometry))
