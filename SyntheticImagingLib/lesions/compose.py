"""One label map with several synthetic lesions, made from the user's :class:`~.controls.LesionControls`."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from ..anatomy import HeadMasks, distance_mm, estimate_midline_x, head_masks_from_brain
from ..cases import TUMOR_LABELS, TUMOR_SUBREGION_LABELS, Geometry, LabelTable, LesionKind
from ..errors import InputError
from ..triples import float3
from .controls import EDEMA_NAME, HEMORRHAGE_SUBTYPE_VALUES, LesionControls
from .hemorrhage import synthesize_hemorrhage_mask
from .shapes import check_mask, fit_to_count, smooth_noise
from .templates import template_lesion
from .tumor import CORE_FRACTION_RANGE, split_core_edema, synthesize_tumor_mask

__all__ = ["make_lesion_label", "hemorrhage_label_table", "EDEMA_NAME", "EDEMA_FRACTION_RANGE"]

#: Perihematomal edema volume as a share of its hematoma's volume (drawn uniformly per hematoma).
EDEMA_FRACTION_RANGE = (0.3, 1.0)


def hemorrhage_label_table(controls: LesionControls) -> LabelTable:
    """Label table of a hemorrhage label map: the subtypes of ``controls``, named ``"<subtype> hemorrhage"``, plus
    ``"perihematomal edema"`` when ``controls.subregions``, each at its fixed value (see
    :data:`~.controls.HEMORRHAGE_SUBTYPE_VALUES`: 1 intraparenchymal ... 5 epidural, 6 edema).

    Args:
        controls: the lesion controls.
    """
    names = [f"{subtype} hemorrhage" for subtype in controls.subtypes] + ([EDEMA_NAME] if controls.subregions else [])
    return LabelTable({HEMORRHAGE_SUBTYPE_VALUES[n]: n for n in names})


def _jittered(point: tuple[float, float, float], jitter_mm: float,
              rng: np.random.Generator) -> tuple[float, float, float]:
    """A point drawn uniformly in the ball of radius ``jitter_mm`` around ``point``."""
    if jitter_mm <= 0:
        return float3(point)
    direction = rng.standard_normal(3)
    direction /= max(float(np.linalg.norm(direction)), 1e-12)
    radius = jitter_mm * float(rng.random()) ** (1.0 / 3.0)
    return float3(np.asarray(point, float) + radius * direction)


def _perihematomal_edema(hematoma: np.ndarray, room: np.ndarray, geometry: Geometry, *, fraction: float,
                         shape_variety: float, rng: np.random.Generator) -> np.ndarray:
    """A rim of edema around a hematoma: the ``fraction * |hematoma|`` free voxels nearest to it (noisy)."""
    n = int(round(fraction * hematoma.sum()))
    ring = room & ~hematoma & (distance_mm(~hematoma, geometry) <= 12.0)
    n = min(n, int(ring.sum()))
    if n == 0:
        return np.zeros(hematoma.shape, bool)
    distance = distance_mm(~hematoma, geometry)
    field = -distance
    if shape_variety > 0:
        field = field + 2.0 * float(shape_variety) * smooth_noise(hematoma.shape, geometry, 4.0, rng)
    return fit_to_count(field, ring, n, connected=False, where=EDEMA_NAME)


def make_lesion_label(brain_or_head_masks: np.ndarray | HeadMasks, geometry: Geometry, controls: LesionControls, *,
                      rng: np.random.Generator, templates: list[tuple[np.ndarray, Geometry]] | None = None,
                      ) -> tuple[np.ndarray, LabelTable, list[dict[str, Any]]]:
    """Synthesize ``controls.count`` separate lesions into one label map.

    Tumours: whole tumour label 1, or core 1 + edema 2 with ``subregions``; shapes come from a random real template
    of ``templates`` when ``controls.use_templates`` and templates are given, else from random smooth blobs.
    Hemorrhage: each lesion's subtype is drawn from ``controls.subtypes`` and labelled with that subtype's value
    (see :func:`hemorrhage_label_table`); with ``subregions`` intraparenchymal blood gets a perihematomal edema rim.
    Lesions never overlap or touch (one free voxel between them). Volumes are drawn per lesion from
    ``controls.volume_range``; a ``controls.location`` point is jittered by ``controls.location_jitter_mm``.

    Args:
        brain_or_head_masks: boolean brain mask ``[z, y, x]``, or :class:`~SyntheticImagingLib.anatomy.HeadMasks`
            of a head CT (needed for intraventricular blood; better extra-axial placement).
        geometry: grid geometry.
        controls: what to make.
        rng: random generator (the same seed gives the same label map).
        templates: real lesion masks with their geometries, for tumours with ``use_templates``.

    Returns:
        the int16 label map, its :class:`LabelTable`, and one info dict per lesion: ``index``, ``kind``,
        ``subtype`` (``"tumor"`` for tumours), ``label_value``, ``volume_ml_requested``, ``volume_ml_achieved``,
        ``center_xyz`` (centroid, mm LPS), ``side`` (``"left"``/``"right"`` of the midline by the centroid),
        ``source`` (``"shape"`` or ``"template <i>"``), and ``edema_ml`` where edema was added.

    Raises:
        InputError: bad masks or templates, or lesions that do not fit (the message says which lesion).
    """
    if not isinstance(controls, LesionControls):
        raise InputError(f"controls must be LesionControls, got {type(controls).__name__}", where="lesion synthesis")
    head: HeadMasks | None
    if isinstance(brain_or_head_masks, HeadMasks):
        head, brain = brain_or_head_masks, brain_or_head_masks.brain
    else:
        head, brain = None, check_mask(brain_or_head_masks, name="brain mask", where="lesion synthesis")
    if not brain.any():
        raise InputError("the brain mask is empty", where="lesion synthesis", fix="pass the brain mask of the case")
    if templates:
        for i, item in enumerate(templates):
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Geometry)):
                raise InputError(f"template {i} must be a (mask array, Geometry) pair", where="lesion synthesis")
    tumor = controls.kind is LesionKind.TUMOR
    if tumor:
        table = TUMOR_SUBREGION_LABELS if controls.subregions else TUMOR_LABELS
    else:
        table = hemorrhage_label_table(controls)
    label = np.zeros(brain.shape, np.int16)
    occupied = np.zeros(brain.shape, bool)
    infos: list[dict[str, Any]] = []
    low, high = controls.volume_range
    if not tumor and head is None:
        # Derived once (inner table = brain shell, midline, cached depth fields) for all lesions of the case.
        head = head_masks_from_brain(brain, geometry)
    midline = head.midline_x if head is not None else None

    for index in range(controls.count):
        volume = float(rng.uniform(low, high)) if high > low else low
        center = None if isinstance(controls.location, str) else _jittered(controls.location,
                                                                          controls.location_jitter_mm, rng)
        # One free voxel around earlier lesions keeps them separate components.
        exclude = ndimage.binary_dilation(occupied, structure=np.ones((3, 3, 3), bool)) if occupied.any() else None
        where = f"lesion {index + 1} of {controls.count}"
        info: dict[str, Any] = {"index": index, "kind": controls.kind.value, "volume_ml_requested": volume}
        try:
            if tumor:
                if controls.use_templates and templates:
                    t = int(rng.integers(len(templates)))
                    whole = template_lesion(templates[t][0], templates[t][1], brain, geometry, volume_ml=volume,
                                            center_xyz=center, rng=rng, side=controls.side, exclude=exclude)
                    lesion = whole.astype(np.int16)
                    if controls.subregions:
                        lesion = split_core_edema(whole, geometry, core_fraction=float(rng.uniform(
                            *CORE_FRACTION_RANGE)), shape_variety=controls.shape_variety, rng=rng)
                    info["source"] = f"template {t}"
                else:
                    lesion = synthesize_tumor_mask(brain, geometry, volume_ml=volume, center_xyz=center,
                                                   subregions=controls.subregions,
                                                   shape_variety=controls.shape_variety, rng=rng,
                                                   side=controls.side, exclude=exclude)
                    info["source"] = "shape"
                info["subtype"] = "tumor"
                info["label_value"] = 1
                whole = lesion > 0
            else:
                subtype = str(controls.subtypes[int(rng.integers(len(controls.subtypes)))])
                assert head is not None  # derived from the brain mask above for hemorrhages
                whole = synthesize_hemorrhage_mask(head, geometry, subtype=subtype,
                                                   volume_ml=volume, side=controls.side, center_xyz=center,
                                                   shape_variety=controls.shape_variety, rng=rng, exclude=exclude)
                value = table.value_of(f"{subtype} hemorrhage")
                lesion = whole.astype(np.int16) * value
                info.update(subtype=subtype, label_value=value, source="shape")
                if controls.subregions and subtype == "intraparenchymal":
                    room = brain & ~whole & ~(exclude if exclude is not None else False)
                    if head is not None:
                        room &= ~head.ventricles & ~head.skull & ~head.air
                    edema = _perihematomal_edema(whole, room, geometry,
                                                 fraction=float(rng.uniform(*EDEMA_FRACTION_RANGE)),
                                                 shape_variety=controls.shape_variety, rng=rng)
                    lesion[edema] = table.value_of(EDEMA_NAME)
                    info["edema_ml"] = float(edema.sum() * geometry.voxel_volume_ml)
        except InputError as err:
            raise InputError(err.problem, where=f"{where}{' (' + err.where + ')' if err.where else ''}",
                             fix=err.fix) from None
        label[lesion > 0] = lesion[lesion > 0]
        occupied |= lesion > 0
        centroid = geometry.index_to_physical(np.argwhere(whole).mean(axis=0))
        info["volume_ml_achieved"] = float(whole.sum() * geometry.voxel_volume_ml)
        info["center_xyz"] = tuple(round(float(v), 2) for v in centroid)
        if midline is None:
            midline = estimate_midline_x(brain, geometry)
        info["side"] = "left" if centroid[0] > midline else "right"
        infos.append(info)
    return label, table, infos
