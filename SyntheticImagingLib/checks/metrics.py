"""Segmentation metrics on binary masks: Dice, HD95 in mm, lesion-wise detection; and the same per label and
per BraTS region of multi-label maps (:func:`evaluation_structures`, :func:`structure_metrics`).

All functions take boolean (or 0/1) arrays ``[z, y, x]`` on one grid. Distances use the voxel spacing in
array order (``Geometry.spacing_zyx``), so HD95 is in millimetres whatever the grid.

Conventions for empty masks (they matter when a weak segmenter predicts nothing):

* Dice of two empty masks is 1 (nothing to find, nothing found); of one empty mask 0.
* HD95 of two empty masks is 0; of exactly one empty mask it is ``empty_penalty`` (the utility check passes the
  volume diagonal, so a missed lesion scores the worst possible distance instead of vanishing from the mean).
* Lesion-wise sensitivity is NaN when the reference has no lesion (undefined, left out of means).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from ..cases import LabelTable, LesionKind
from ..errors import InputError, LabelError
from ..label_roles import brats_regions, match_roles

__all__ = ["dice", "hd95", "surface_distances", "lesion_detection", "segmentation_metrics", "volume_diagonal_mm",
           "Structure", "evaluation_structures", "structure_metrics", "LABEL", "REGION"]

#: Kinds of :class:`Structure`: one label of the table, or a BraTS region (a union of labels).
LABEL = "label"
REGION = "region"


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


@dataclasses.dataclass(frozen=True)
class Structure:
    """What a per-label or per-region score is computed on: the voxels whose label is one of ``values``.

    Args:
        name: the user's label name, or the region name (``whole tumor``, ``tumor core``, ``enhancing tumor``).
        kind: :data:`LABEL` or :data:`REGION`.
        values: the label values it unites.
    """

    name: str
    kind: str
    values: tuple[int, ...]

    def mask(self, label: np.ndarray) -> np.ndarray:
        """Its voxels in a label map."""
        return np.isin(np.asarray(label), self.values)


def evaluation_structures(table: LabelTable, kind: LesionKind | str = LesionKind.TUMOR) -> list[Structure]:
    """Every label of a multi-label table (named as the table names it), then for tumours the BraTS regions it
    can form (:func:`~SyntheticImagingLib.label_roles.brats_regions`); empty for a table of one label (the
    whole-lesion score says it all). Labels whose names give no role get no regions.

    Args:
        table: the prepared cases' label table.
        kind: the lesion kind.

    Example:
        >>> [s.name for s in evaluation_structures(LabelTable({1: "NCR", 2: "ED", 4: "ET"}))]
        ['NCR', 'ED', 'ET', 'whole tumor', 'tumor core', 'enhancing tumor']
    """
    if len(table.values) < 2:
        return []
    out = [Structure(name, LABEL, (value,)) for value, name in table.names.items()]
    try:
        regions = brats_regions(match_roles(table, LesionKind(kind)))
    except LabelError:
        regions = {}
    out += [Structure(name, REGION, tuple(values)) for name, values in regions.items()]
    return out


def structure_metrics(pred: np.ndarray, ref: np.ndarray, structures: Sequence[Structure], *,
                      spacing_zyx: Sequence[float], hd95_empty_penalty: float | None = None,
                      with_hd95: bool = True) -> list[dict[str, Any]]:
    """Dice (and HD95 in mm) of each structure of two label maps, with the empty-mask conventions of this module
    (both empty: Dice 1, HD95 0, the BraTS convention for a label absent from a case).

    Args:
        pred: predicted label map (the table's values).
        ref: reference label map.
        structures: from :func:`evaluation_structures`.
        spacing_zyx: voxel size in array order (mm).
        hd95_empty_penalty: HD95 when exactly one mask is empty (None: the grid diagonal).
        with_hd95: also compute HD95 (the slow part).

    Returns:
        One row per structure: ``structure``, ``structure_kind``, ``values`` (``"1,4"``), ``dice``, ``hd95_mm``
        (when asked), ``pred_voxels``, ``ref_voxels``.

    Example:
        >>> ref = np.zeros((1, 1, 6), int); ref[0, 0, :2] = 1; ref[0, 0, 2:4] = 2
        >>> pred = np.zeros_like(ref); pred[0, 0, :4] = 1
        >>> parts = [Structure("a", LABEL, (1,)), Structure("b", LABEL, (2,)), Structure("ab", REGION, (1, 2))]
        >>> rows = structure_metrics(pred, ref, parts, spacing_zyx=(1, 1, 1), with_hd95=False)
        >>> [(r["structure"], round(r["dice"], 3)) for r in rows]
        [('a', 0.667), ('b', 0.0), ('ab', 1.0)]
    """
    p_all, r_all = np.asarray(pred), np.asarray(ref)
    if p_all.shape != r_all.shape:
        raise InputError(f"prediction shape {p_all.shape} differs from reference shape {r_all.shape}",
                         fix="resample the prediction onto the reference grid")
    penalty = volume_diagonal_mm(p_all.shape, spacing_zyx) if hd95_empty_penalty is None else hd95_empty_penalty
    rows = []
    for st in structures:
        p, r = st.mask(p_all), st.mask(r_all)
        row: dict[str, Any] = {"structure": st.name, "structure_kind": st.kind,
                               "values": ",".join(str(v) for v in st.values), "dice": dice(p, r)}
        if with_hd95:
            row["hd95_mm"] = hd95(p, r, spacing_zyx=spacing_zyx, empty_penalty=penalty)
        row.update(pred_voxels=float(p.sum()), ref_voxels=float(r.sum()))
        rows.append(row)
    return rows
