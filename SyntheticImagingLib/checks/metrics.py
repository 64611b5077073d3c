"""Segmentation metrics on binary masks: Dice, HD95 in mm, lesion-wise detection.

All functions take boolean (or 0/1) arrays ``[z, y, x]`` on one grid. Distances use the voxel spacing in
array order (``Geometry.spacing_zyx``), so HD95 is in millimetres whatever the grid.

Conventions for empty masks (they matter when a weak segmenter predicts nothing):

* Dice of two empty masks is 1 (nothing to find, nothing found); of one empty mask 0.
* HD95 of two empty masks is 0; of exactly one empty mask it is ``empty_penalty`` (the utility check passes the
  volume diagonal, so a missed lesion scores the worst possible distance instead of vanishing from the mean).
* Lesion-wise sensitivity is NaN when the reference has no lesion (undefined, left out of means).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ..errors import InputError

__all__ = ["dice", "hd95", "surface_distances", "lesion_detection", "segmentation_metrics", "volume_diagonal_mm"]


def _pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, r = np.asarray(pred).astype(bool), np.asarray(ref).astype(bool)
    if p.shape != r.shape:
        raise InputError(f"prediction shape {p.shape} differs from reference shape {r.shape}",
                         fix="resample the prediction onto the reference grid")
    return p, r


def _spacing(spacing_zyx: Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    if spacing_zyx is None:
        return (1.0,) * ndim
    s = tuple(float(v) for v in spacing_zyx)
    if len(s) != ndim or min(s) <= 0:
        raise InputError(f"spacing must be {ndim} positive numbers in array order, got {s}")
    return s


def volume_diagonal_mm(shape: Sequence[int], spacing_zyx: Sequence[float]) -> float:
    """Length of the grid's diagonal in mm (the largest distance two voxels can have).

    Args:
        shape: grid shape ``(z, y, x)``.
        spacing_zyx: voxel size in array order.
    """
    return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing_zyx))))


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice overlap ``2|P∩R| / (|P|+|R|)``; 1.0 when both masks are empty.

    Args:
        pred: predicted mask.
        ref: reference mask.

    Example:
        >>> a = np.zeros((4, 4, 4), bool); a[:2] = True
        >>> dice(a, a), dice(a, ~a)
        (1.0, 0.0)
    """
    p, r = _pair(pred, ref)
    denom = int(p.sum()) + int(r.sum())
    if denom == 0:
        return 1.0
    return 2.0 * int(np.logical_and(p, r).sum()) / denom


def _surface(mask: np.ndarray) -> np.ndarray:
    # voxels of the mask with a 6-neighbour outside it (outside the grid counts as outside the mask)
    return mask & ~ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(mask.ndim, 1),
                                          border_value=0)


def surface_distances(a: np.ndarray, b: np.ndarray, *,
                      spacing_zyx: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from each surface voxel of ``a`` to the surface of ``b``, and from ``b`` to ``a``.

    Args:
        a: first non-empty mask.
        b: second non-empty mask.
        spacing_zyx: voxel size in array order (default 1 mm).
    """
    a, b = _pair(a, b)
    sampling = _spacing(spacing_zyx, a.ndim)
    sa, sb = _surface(a), _surface(b)
    if not sa.any() or not sb.any():
        raise InputError("surface distances need two non-empty masks")
    # distance transform of the complement of a surface = distance to the nearest surface voxel
    dist_to_b = ndimage.distance_transform_edt(~sb, sampling=sampling)
    dist_to_a = ndimage.distance_transform_edt(~sa, sampling=sampling)
    return dist_to_b[sa], dist_to_a[sb]


def hd95(pred: np.ndarray, ref: np.ndarray, *, spacing_zyx: Sequence[float] | None = None,
         empty_penalty: float | None = None) -> float:
    """95th-percentile symmetric Hausdorff distance in mm (the larger of the two directed 95th percentiles,
    as ``monai.metrics.compute_hausdorff_distance(percentile=95)`` and BraTS compute it).

    Args:
        pred: predicted mask.
        ref: reference mask.
        spacing_zyx: voxel size in array order (default 1 mm).
        empty_penalty: value when exactly one mask is empty (None: NaN).

    Example:
        >>> a = np.zeros((8, 8, 8), bool); a[2:5, 2:5, 2:5] = True
        >>> b = np.roll(a, 2, axis=2)
        >>> hd95(a, b, spacing_zyx=(1.0, 1.0, 3.0))
        6.0
    """
    p, r = _pair(pred, ref)
    if not p.any() and not r.any():
        return 0.0
    if not p.any() or not r.any():
        return float("nan") if empty_penalty is None else float(empty_penalty)
    d_pr, d_rp = surface_distances(p, r, spacing_zyx=spacing_zyx)
    return float(max(np.percentile(d_pr, 95), np.percentile(d_rp, 95)))


def lesion_detection(pred: np.ndarray, ref: np.ndarray, *, min_overlap: float = 0.0,
                     min_size_voxels: int = 1) -> dict[str, float]:
    """Lesion-wise detection via 26-connected components of the reference and the prediction.

    A reference lesion is detected when the prediction covers more than ``min_overlap`` of its voxels (default:
    at least one voxel). A predicted component that touches no reference lesion is a false positive.

    Args:
        pred: predicted mask.
        ref: reference mask.
        min_overlap: fraction of a reference lesion that must be covered (0: any overlap).
        min_size_voxels: components smaller than this (in either mask) are ignored as specks.

    Returns:
        ``sensitivity`` (detected / lesions, NaN without reference lesions), ``lesions``, ``detected``,
        ``false_positives``.

    Example:
        >>> ref = np.zeros((1, 1, 9), bool); ref[0, 0, [1, 4, 7]] = True
        >>> pred = np.zeros_like(ref); pred[0, 0, [1, 4]] = True
        >>> lesion_detection(pred, ref)["sensitivity"]
        0.6666666666666666
    """
    p, r = _pair(pred, ref)
    structure = ndimage.generate_binary_structure(r.ndim, r.ndim)
    ref_cc, n_ref = ndimage.label(r, structure=structure)
    pred_cc, n_pred = ndimage.label(p, structure=structure)
    ref_sizes = np.bincount(ref_cc.ravel(), minlength=n_ref + 1)
    pred_sizes = np.bincount(pred_cc.ravel(), minlength=n_pred + 1)
    covered = np.bincount(ref_cc[p].ravel(), minlength=n_ref + 1)
    lesions = detected = 0
    for i in range(1, n_ref + 1):
        if ref_sizes[i] < min_size_voxels:
            continue
        lesions += 1
        if covered[i] > 0 and covered[i] / ref_sizes[i] > min_overlap:
            detected += 1
    touching = np.bincount(pred_cc[r].ravel(), minlength=n_pred + 1)
    false_positives = sum(1 for j in range(1, n_pred + 1) if pred_sizes[j] >= min_size_voxels and touching[j] == 0)
    return {"sensitivity": detected / lesions if lesions else float("nan"), "lesions": float(lesions),
            "detected": float(detected), "false_positives": float(false_positives)}


def segmentation_metrics(pred: np.ndarray, ref: np.ndarray, *, spacing_zyx: Sequence[float],
                         hd95_empty_penalty: float | None = None, min_lesion_voxels: int = 1) -> dict[str, float]:
    """Dice, HD95 (mm), lesion-wise sensitivity and counts, and volumes (voxels) of one prediction.

    Args:
        pred: predicted mask.
        ref: reference mask.
        spacing_zyx: voxel size in array order (mm).
        hd95_empty_penalty: HD95 when exactly one mask is empty (None: the grid diagonal).
        min_lesion_voxels: smaller connected components are ignored by the lesion-wise counts.
    """
    p, r = _pair(pred, ref)
    penalty = volume_diagonal_mm(p.shape, spacing_zyx) if hd95_empty_penalty is None else hd95_empty_penalty
    det = lesion_detection(p, r, min_size_voxels=min_lesion_voxels)
    return {"dice": dice(p, r), "hd95_mm": hd95(p, r, spacing_zyx=spacing_zyx, empty_penalty=penalty),
            "lesion_sensitivity": det["sensitivity"], "lesions": det["lesions"], "lesions_detected": det["detected"],
            "false_positive_lesions": det["false_positives"], "pred_voxels": float(p.sum()),
            "ref_voxels": float(r.sum())}
