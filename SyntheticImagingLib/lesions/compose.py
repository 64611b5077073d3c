"""One label map with several synthetic lesions, made from the user's :class:`~.controls.LesionControls`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage

from ..anatomy import HeadMasks, distance_mm, estimate_midline_x, head_masks_from_brain
from ..cases import TUMOR_LABELS, TUMOR_SUBREGION_LABELS, Geometry, LabelTable, LesionKind
from ..errors import InputError, LabelError
from ..label_roles import HEMORRHAGE, PERIHEMATOMAL_EDEMA, LabelRoles
from ..triples import float3
from .controls import EDEMA_NAME, HEMORRHAGE_SUBTYPE_VALUES, HEMORRHAGE_SUBTYPES, LesionControls
from .hemorrhage import synthesize_hemorrhage_mask
from .shapes import check_mask, fit_to_count, smooth_noise
from .templates import template_lesion
from .tumor import CORE_FRACTION_RANGE, split_core_edema, synthesize_tumor_mask
from .tumor_subregions import draw_subregion_shares, split_tumor_subregions, structure_roles

__all__ = ["make_lesion_label", "hemorrhage_label_table", "target_subtypes", "EDEMA_NAME", "EDEMA_FRACTION_RANGE"]

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


def target_subtypes(controls: LesionControls, roles: LabelRoles) -> tuple[str, ...]:
    """The hemorrhage subtypes to draw for a target table: ``controls.subtypes`` restricted to the table's subtypes
    (the table's subtypes when the controls leave the default); a table with only a generic hemorrhage label
    takes any subtype of the controls.

    Raises:
        LabelError: none of the asked subtypes is in the table.
    """
    table_subtypes = tuple(s for s in HEMORRHAGE_SUBTYPES if roles.has(f"{s} hemorrhage"))
    if not table_subtypes:
        if roles.has(HEMORRHAGE):
            return tuple(controls.subtypes)
        raise LabelError(f"the label table {roles.table.names} has no hemorrhage label",
                         fix="name the labels (EDH, IPH, IVH, SAH, SDH, hemorrhage) or map them with --label-map")
    if controls.default_subtypes:
        return table_subtypes
    chosen = tuple(s for s in controls.subtypes if s in table_subtypes)
    if not chosen:
        raise LabelError(f"the asked hemorrhage subtypes {list(controls.subtypes)} are not in the label table "
                         f"{roles.table.names}", fix=f"ask for subtypes the table has: {list(table_subtypes)}")
    return chosen


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
                      roles: LabelRoles | None = None,
                      fractions: Mapping[str, tuple[float, float]] | None = None,
                      ) -> tuple[np.ndarray, LabelTable, list[dict[str, Any]]]:
    """Synthesize ``controls.count`` separate lesions into one label map.

    Tumours: whole tumour label 1, or core 1 + edema 2 with ``subregions``; shapes come from a random real template
    of ``templates`` when ``controls.use_templates`` and templates are given, else from random smooth blobs.
    Hemorrhage: each lesion's subtype is drawn from ``controls.subtypes`` and labelled with that subtype's value
    (see :func:`hemorrhage_label_table`); with ``subregions`` intraparenchymal blood gets a perihematomal edema rim.
    Lesions never overlap or touch (one free voxel between them). Volumes are drawn per lesion from
    ``controls.volume_range``; a ``controls.location`` point is jittered by ``controls.location_jitter_mm``.

    With ``roles`` (a target label table, e.g. a task's :attr:`~SyntheticImagingLib.tasks.TaskPreset.roles`) the
    map is written with the user's values and the table is the user's: tumours get the table's sub-regions with
    BraTS nesting (:mod:`.tumor_subregions`; shares from ``controls.subregion_fractions``, else ``fractions``,
    else the defaults), hemorrhages the table's subtypes (:func:`target_subtypes`) and, where the table has
    perihematomal edema, an edema rim around intraparenchymal blood.

    Args:
        brain_or_head_masks: boolean brain mask ``[z, y, x]``, or :class:`~SyntheticImagingLib.anatomy.HeadMasks`
            of a head CT (needed for intraventricular blood; better extra-axial placement).
        geometry: grid geometry.
        controls: what to make.
        rng: random generator (the same seed gives the same label map).
        templates: real lesion masks with their geometries, for tumours with ``use_templates``.
        roles: the target label table's roles (None: the library's own values, as described above).
        fractions: sub-region share ranges for tumours when the controls give none (e.g. measured on the
            generator's training cases).

    Returns:
        the int16 label map, its :class:`LabelTable`, and one info dict per lesion: ``index``, ``kind``,
        ``subtype`` (``"tumor"`` for tumours), ``label_value``, ``volume_ml_requested``, ``volume_ml_achieved``,
        ``center_xyz`` (centroid, mm LPS), ``side`` (``"left"``/``"right"`` of the midline by the centroid),
        ``source`` (``"shape"`` or ``"template <i>"``), ``label_values`` (every value the lesion uses), and
        ``edema_ml`` where edema was added.

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
    if roles is not None and roles.kind is not controls.kind:
        raise InputError(f"the target label table is for {roles.kind.value} lesions, the controls ask for "
                         f"{controls.kind.value}", where="lesion synthesis",
                         fix="set the lesion kind of the controls to the task's")
    subtypes = tuple(controls.subtypes)
    share_ranges = controls.subregion_fractions if controls.subregion_fractions is not None else fractions
    if roles is not None:
        table = roles.table
        if tumor:
            structure_roles(roles)  # a clear error for a table without tumour labels
        else:
            subtypes = target_subtypes(controls, roles)
    elif tumor:
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
                    if roles is not None:
                        lesion = split_tumor_subregions(whole, geometry, roles,
                                                        shares=draw_subregion_shares(roles, share_ranges, rng),
                                                        shape_variety=controls.shape_variety, rng=rng)
                    elif controls.subregions:
                        lesion = split_core_edema(whole, geometry, core_fraction=float(rng.uniform(
                            *CORE_FRACTION_RANGE)), shape_variety=controls.shape_variety, rng=rng)
                    info["source"] = f"template {t}"
                else:
                    lesion = synthesize_tumor_mask(brain, geometry, volume_ml=volume, center_xyz=center,
                                                   subregions=controls.subregions and roles is None,
                                                   shape_variety=controls.shape_variety, rng=rng,
                                                   side=controls.side, exclude=exclude)
                    if roles is not None:
                        lesion = split_tumor_subregions(lesion > 0, geometry, roles,
                                                        shares=draw_subregion_shares(roles, share_ranges, rng),
                                                        shape_variety=controls.shape_variety, rng=rng)
                    info["source"] = "shape"
                info["subtype"] = "tumor"
                info["label_value"] = 1 if roles is None else int(lesion[lesion > 0].max())
                whole = lesion > 0
            else:
                subtype = str(subtypes[int(rng.integers(len(subtypes)))])
                assert head is not None  # derived from the brain mask above for hemorrhages
                whole = synthesize_hemorrhage_mask(head, geometry, subtype=subtype,
                                                   volume_ml=volume, side=controls.side, center_xyz=center,
                                                   shape_variety=controls.shape_variety, rng=rng, exclude=exclude)
                if roles is None:
                    value = table.value_of(f"{subtype} hemorrhage")
                    edema_value = table.value_of(EDEMA_NAME) if controls.subregions else None
                else:
                    role = f"{subtype} hemorrhage"
                    value = roles.value_of(role if roles.has(role) else HEMORRHAGE)
                    edema_value = roles.value_of(PERIHEMATOMAL_EDEMA) if roles.has(PERIHEMATOMAL_EDEMA) else None
                lesion = whole.astype(np.int16) * value
                info.update(subtype=subtype, label_value=value, source="shape")
                if edema_value is not None and subtype == "intraparenchymal":
                    room = brain & ~whole  # (not ~False: that is -1 and would turn the mask into integers)
                    if exclude is not None:
                        room &= ~exclude
                    if head is not None:
                        room &= ~head.ventricles & ~head.skull & ~head.air
                    edema = _perihematomal_edema(whole, room, geometry,
                                                 fraction=float(rng.uniform(*EDEMA_FRACTION_RANGE)),
                                                 shape_variety=controls.shape_variety, rng=rng)
                    lesion[edema] = edema_value
                    info["edema_ml"] = float(edema.sum() * geometry.voxel_volume_ml)
        except InputError as err:
            raise InputError(err.problem, where=f"{where}{' (' + err.where + ')' if err.where else ''}",
                             fix=err.fix) from None
        label[lesion > 0] = lesion[lesion > 0]
        occupied |= lesion > 0
        info["label_values"] = sorted(int(v) for v in np.unique(lesion) if v != 0)
        centroid = geometry.index_to_physical(np.argwhere(whole).mean(axis=0))
        info["volume_ml_achieved"] = float(whole.sum() * geometry.voxel_volume_ml)
        info["center_xyz"] = tuple(round(float(v), 2) for v in centroid)
        if midline is None:
            midline = estimate_midline_x(brain, geometry)
        info["side"] = "left" if centroid[0] > midline else "right"
        infos.append(info)
    return label, table, infos
