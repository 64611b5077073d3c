"""Lesion-mask synthesis (the "label edits" of Shin et al. 2018): tumours and the five hemorrhage subtypes.

Everything works on numpy arrays ``[z, y, x]`` with a :class:`~SyntheticImagingLib.cases.Geometry`; all sizes
are physical (mm, ml). Entry point: :func:`make_lesion_label` with :class:`LesionControls`.
"""

from .compose import EDEMA_NAME, hemorrhage_label_table, make_lesion_label
from .controls import HEMORRHAGE_SUBTYPES, LesionControls
from .hemorrhage import synthesize_hemorrhage_mask
from .shapes import blob, dependent_fill, extra_axial, fit_to_count, sulcal, voxel_count
from .structure import check_tumor_nesting
from .templates import template_lesion
from .tumor import split_core_edema, synthesize_tumor_mask
from .tumor_subregions import DEFAULT_SUBREGION_FRACTIONS, measure_subregion_fractions, split_tumor_subregions

__all__ = [
    "LesionControls",
    "HEMORRHAGE_SUBTYPES",
    "EDEMA_NAME",
    "make_lesion_label",
    "hemorrhage_label_table",
    "synthesize_tumor_mask",
    "split_core_edema",
    "split_tumor_subregions",
    "measure_subregion_fractions",
    "DEFAULT_SUBREGION_FRACTIONS",
    "check_tumor_nesting",
    "synthesize_hemorrhage_mask",
    "template_lesion",
    "blob",
    "extra_axial",
    "sulcal",
    "dependent_fill",
    "fit_to_count",
    "voxel_count",
]
