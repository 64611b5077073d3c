"""Anatomy label maps of real cases: brain tissue classes by 1D k-means (plus ventricles, soft tissue and bone on
head CT), the layout label-to-image draws new images from and lesion filling paints with.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .references import Reference

__all__ = ["anatomy_map", "kmeans_1d", "VENTRICLE", "SOFT_TISSUE", "BONE", "LESION_BASE"]

# anatomy map codes: 0 outside; 1..K brain tissue classes; CT extras; lesions are LESION_BASE + label value
VENTRICLE, SOFT_TISSUE, BONE = 20, 21, 22
LESION_BASE = 100


def kmeans_1d(values: np.ndarray, k: int, *, iterations: int = 20) -> np.ndarray:
    """Sorted cluster centres of 1D ``values`` (k-means initialised at quantiles)."""
    values = np.asarray(values, dtype=np.float64)
    centres = np.quantile(values, (np.arange(k) + 0.5) / k)
    for _ in range(iterations):
        assign = np.argmin(np.abs(values[:, None] - centres[None, :]), axis=1)
        new = np.array([values[assign == j].mean() if np.any(assign == j) else centres[j] for j in range(k)])
        if np.allclose(new, centres):
            break
        centres = new
    return np.sort(centres)


def anatomy_map(ref: Reference, *, classes: int, keep_lesions: bool = False) -> np.ndarray:
    """The anatomy label map of a reference (codes above).

    Args:
        ref: the real reference case.
        classes: brain tissue classes.
        keep_lesions: keep the real lesions as lesion codes; otherwise their voxels take the class of the nearest
            tissue, so every synthetic lesion is a new one (no patient's lesion shape is reproduced).
    """
    case = ref.case
    channel = "T1" if "T1" in case.channels else case.channel_names[0]
    image = case.channels[channel]
    out = np.zeros(case.shape, np.uint8)
    lesion = case.label > 0 if case.label is not None else np.zeros(case.shape, bool)
    tissue = ref.brain & ~lesion
    if ref.head is not None:
        tissue &= ~ref.head.ventricles
    centres = kmeans_1d(image[tissue][:: max(1, int(tissue.sum()) // 200000)], classes)
    out[tissue] = 1 + np.argmin(np.abs(image[tissue][:, None] - centres[None, :]), axis=1)
    if ref.head is not None:
        head = ~ref.head.air & ~ref.brain
        out[head & ref.head.skull] = BONE
        out[head & ~ref.head.skull] = SOFT_TISSUE
        out[ref.head.ventricles] = VENTRICLE
    if keep_lesions and case.label is not None:
        out[lesion] = LESION_BASE + case.label[lesion]
    elif lesion.any():
        # fill the lesion with the nearest tissue class (brain tissue only: classes 1..K)
        not_tissue = ~((out >= 1) & (out <= classes))
        _, nearest = ndimage.distance_transform_edt(not_tissue, sampling=case.geometry.spacing_zyx,
                                                    return_indices=True)
        out[lesion] = out[tuple(n[lesion] for n in nearest)]
    return out
