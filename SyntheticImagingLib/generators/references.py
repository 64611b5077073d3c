"""Real reference cases prepared once for the training-free generators: anatomy masks and lesion templates."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

from ..anatomy import HeadMasks, brain_mask, head_masks
from ..cases import Case, Geometry, LabelTable, Modality, merge_label_maps
from ..errors import InputError
from ..label_roles import LabelRoles
from ..lesions.compose import make_lesion_label
from ..lesions.controls import LesionControls

__all__ = ["Reference", "prepare_reference", "lesion_templates", "new_lesion_label"]


@dataclasses.dataclass
class Reference:
    """A real case with its anatomy, ready to receive new lesions.

    Args:
        case: the real case (physical units, its own grid).
        brain: brain mask.
        head: head-CT masks (skull, air, ventricles, inner table) for CT with skull, else None.
    """

    case: Case
    brain: np.ndarray
    head: HeadMasks | None = None

    def free_anatomy(self, margin_voxels: int = 2) -> HeadMasks | np.ndarray:
        """Where new lesions may go: the brain minus existing lesions (with a margin)."""
        brain = self.brain
        if self.case.label is not None and (self.case.label > 0).any():
            brain = brain & ~ndimage.binary_dilation(self.case.label > 0, iterations=margin_voxels)
        if self.head is not None:
            return dataclasses.replace(self.head, brain=self.head.brain & brain)
        return brain


def _has_skull(case: Case) -> bool:
    ct = next(iter(case.channels.values()))
    return bool(case.modality == Modality.CT and (ct > 300).mean() > 0.005 and (ct < -500).mean() > 0.01)


def prepare_reference(case: Case) -> Reference:
    """Anatomy masks of a real case (thresholds and morphology, no learned model)."""
    case.validate()
    if case.modality == Modality.CT and _has_skull(case):
        masks = head_masks(next(iter(case.channels.values())), case.geometry)
        return Reference(case, masks.brain, masks)
    brain = brain_mask(case)
    if brain.sum() < 1000:
        raise InputError(f"the brain mask has only {int(brain.sum())} voxels", where=case.case_id,
                         fix="check the image: it should show a whole brain")
    return Reference(case, brain)


def lesion_templates(cases: Sequence[Case]) -> list[tuple[np.ndarray, Geometry]]:
    """Real lesion masks (any non-zero label) to reuse as shape templates."""
    return [((c.label > 0), c.geometry) for c in cases if c.label is not None and (c.label > 0).any()]


def new_lesion_label(ref: Reference, controls: LesionControls, rng: np.random.Generator,
                     templates: Sequence[tuple[np.ndarray, Geometry]] = (), *, roles: LabelRoles | None = None,
                     fractions: Mapping[str, tuple[float, float]] | None = None,
                     ) -> tuple[np.ndarray, LabelTable, np.ndarray, list[dict]]:
    """New lesions placed in ``ref``'s free brain, merged with its existing label.

    Args:
        ref: the background.
        controls: what to draw.
        rng: random generator.
        templates: real lesion masks usable as shapes.
        roles: the task's label roles: new lesions are written with the user's values and sub-regions (see
            :func:`~SyntheticImagingLib.lesions.make_lesion_label`); None: the library's own values.
        fractions: tumour sub-region share ranges when the controls give none.

    Returns:
        the merged label map, its table, the mask of the new lesions alone, and one info dict per lesion.
    """
    label, table, infos = make_lesion_label(ref.free_anatomy(), ref.case.geometry, controls, rng=rng,
                                            templates=list(templates) if controls.use_templates else None,
                                            roles=roles, fractions=fractions)
    base = ref.case.label if ref.case.label is not None and ref.case.label.any() else None
    merged, merged_table = merge_label_maps(base, ref.case.label_table if base is not None else LabelTable(),
                                            label, table)
    for info in infos:  # values as they are in the merged map
        info["label_value"] = merged_table.value_of(table.names[info["label_value"]])
        if "label_values" in info:
            info["label_values"] = [merged_table.value_of(table.names[v]) for v in info["label_values"]]
    return merged, merged_table, label > 0, infos
