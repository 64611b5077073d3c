"""Paint a background's own lesions over with the tissue around them (``background_lesions="fill"``).

Lesion insertion and copy-paste put new lesions into real cases. With ``keep`` a real tumour case keeps its own
tumour, so each synthetic case carries two: on BraTS the synthetic tumour burden is about twice the real one
(218 ml against 26-211 ml on the 10 BraTS 2018 cases), which teaches a segmenter that tumours are large. With
``fill`` (the default of both families, since it transfers better to unseen real cases) every lesion of a
synthetic case is new, as in label-to-image (``keep_real_lesions=False``): the lesion and a margin around it take
the tissue class of the nearest brain outside (k-means classes, the same anatomy map label-to-image draws from),
rendered with that class's mean and spread in this case, a smooth texture at the scale of label-to-image's tissue
texture and the case's voxel noise, blended into the surrounding brain.

What stays: the patient's anatomy, including the displacement the removed tumour caused. The background is still
a real patient's scan, so a privacy check still finds it (``checks/privacy_aligned.py`` lists such a case as an
anatomy match with a new lesion).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ..cases import LabelTable
from .anatomy_map import anatomy_map
from .intensity import TISSUE_TEXTURE_MM, estimate_noise_sigma, smooth_texture
from .references import Reference

__all__ = ["fill_lesions", "background", "FILL_MARGIN_MM"]

#: Margin around a real lesion that is painted over as well (its partial-volume rim and edema tail).
FILL_MARGIN_MM = 3.0


def fill_lesions(ref: Reference, *, rng: np.random.Generator, classes: int = 3,
                 margin_mm: float = FILL_MARGIN_MM) -> Reference:
    """``ref`` with its labelled lesions painted over by the surrounding tissue and its label emptied.

    Args:
        ref: a real background (its ``case.label`` marks the lesions; a case without one is returned as it is).
        rng: random generator (texture and noise).
        classes: brain tissue classes (k-means on the first channel, or T1 when present).
        margin_mm: margin around the lesion painted over as well.

    Example:
        >>> import numpy as np
        >>> from SyntheticImagingLib.cases import Case, Geometry, LabelTable
        >>> z, y, x = np.mgrid[:24, :24, :24]
        >>> brain = (z - 12) ** 2 + (y - 12) ** 2 + (x - 12) ** 2 < 100
        >>> tumour = (z - 12) ** 2 + (y - 12) ** 2 + (x - 9) ** 2 < 9
        >>> image = np.where(brain, 1.0 + 0.05 * (x > 12), 0.0) + 2.0 * tumour
        >>> case = Case(case_id="a", channels={"FLAIR": image.astype(np.float32)}, geometry=Geometry(),
        ...             label=tumour.astype(np.int16), label_table=LabelTable({1: "tumor"}), brain_mask=brain)
        >>> filled = fill_lesions(Reference(case, brain), rng=np.random.default_rng(0), classes=2)
        >>> filled.case.label is None, bool(filled.case.channels["FLAIR"][tumour].mean() < 1.2)
        (True, True)
    """
    case = ref.case
    if case.label is None or not (case.label > 0).any():
        return ref
    spacing = case.geometry.spacing_zyx
    lesion = case.label > 0
    region = ndimage.distance_transform_edt(~lesion, sampling=spacing) <= margin_mm
    region &= ref.brain | lesion
    amap = anatomy_map(dataclasses.replace(ref, case=case.replace(label=region.astype(np.int16))), classes=classes)
    tissue = ref.brain & ~region & (amap >= 1) & (amap <= classes)
    alpha = np.clip(ndimage.gaussian_filter(region.astype(np.float32), [1.0 / s for s in spacing]) * 2.0, 0.0, 1.0)
    alpha[region] = np.maximum(alpha[region], 0.5)
    alpha[lesion] = 1.0
    field = smooth_texture(case.shape, spacing, rng, scale_mm=TISSUE_TEXTURE_MM)
    channels = {}
    for name, image in case.channels.items():
        fill = np.zeros(case.shape, np.float32)
        noise = estimate_noise_sigma(image, tissue)
        for code in range(1, classes + 1):
            values = image[tissue & (amap == code)]
            if values.size == 0:
                continue
            sel = region & (amap == code)
            mean = float(np.median(values))
            spread = float(np.subtract(*np.percentile(values, [75, 25]))) / 1.349  # robust SD
            # the class spread as smooth texture, beside the voxel noise the case already has
            texture = np.sqrt(max(spread ** 2 - noise ** 2, 0.0))
            fill[sel] = mean + texture * field[sel]
        fill = ndimage.gaussian_filter(fill, [0.6 * min(spacing) / s for s in spacing])  # soften class borders
        fill[region] += rng.normal(0.0, noise, int(region.sum())).astype(np.float32)
        out = image.astype(np.float32).copy()
        out[region] = (1.0 - alpha[region]) * image[region] + alpha[region] * fill[region]
        channels[name] = out
    filled = case.replace(channels=channels, label=None, label_table=LabelTable(),
                          metadata={**case.metadata, "filled_lesions_ml": float(
                              lesion.sum() * case.geometry.voxel_volume_ml)})
    return dataclasses.replace(ref, case=filled)


def background(references: Sequence[Reference], index: int, mode: str, filled: dict[int, Reference]) -> Reference:
    """Reference ``index`` as a background: as it is (``mode="keep"``) or with its lesions filled (``"fill"``),
    filled once (seeded by its index, so the same case gets the same fill) and kept in ``filled``.

    Args:
        references: the generator's real references.
        index: which one.
        mode: ``"keep"`` or ``"fill"`` (the family's ``background_lesions`` setting).
        filled: the generator's cache of filled references, by index.
    """
    if mode == "keep":
        return references[index]
    if index not in filled:
        filled[index] = fill_lesions(references[index], rng=np.random.default_rng([index, 4242]))
    return filled[index]
