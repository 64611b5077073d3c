"""Coded concepts of a DICOM Segmentation segment, from the role of its label (see :mod:`..label_roles`).

Each label value becomes one segment whose Segment Label is the user's label name; its Segmented Property Category,
Type and Anatomic Region come from the label's role through :data:`ROLE_CODES`. Every code is one the DICOM
standard lists for segmentations (PS3.16), taken from pydicom's dictionary (``pydicom.sr.codedict.codes``):

* category: (49755003, SCT, "Morphologically Abnormal Structure"), CID 7150, for every lesion label;
* tumour sub-regions: the Brain Lesion Segmentation Type context groups CID 7168 / 7169, which DICOM defines for
  BraTS-style labels: (6574001, SCT, "Necrosis"), (79654002, SCT, "Edema"), (C113842, NCIt, "Enhancing Lesion"),
  (C81175, NCIt, "Non-Enhancing Lesion"); the whole tumour and the tumour core are (108369006, SCT, "Neoplasm")
  (CID 7159), the BraTS 2017+ "necrotic and non-enhancing tumour core" is Necrosis (CID 7168 has no merged
  concept; the label name keeps what it is);
* hemorrhage: DICOM's segmentation types have one concept, (50960005, SCT, "Hemorrhage") (CID 7159); the subtype is
  coded by the segment's Anatomic Region (CID 4): Brain (intraparenchymal), Brain ventricle (intraventricular),
  Subarachnoid space (subarachnoid), Intracranial (subdural, epidural: DICOM lists no subdural or epidural space
  concept, so both are coded as intracranial hemorrhage and told apart by their label); perihematomal edema is Edema.

A label whose name matches no role is coded (52988006, SCT, "Lesion") in the brain (CID 7159) and keeps its name as
Segment Label; a table of one label whose name means nothing is the whole lesion of the case's kind, as
:func:`~..label_roles.match_roles` reads it.

Example:
    >>> coding = segment_coding("ET", "tumor")
    >>> coding.role, coding.type.value, coding.type.scheme_designator
    ('enhancing tumor', 'C113842', 'NCIt')
    >>> segment_coding("class 7", "tumor").type.meaning
    'Lesion'
"""

from __future__ import annotations

import dataclasses

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from ..cases import LabelTable, LesionKind
from ..label_roles import (
    EDEMA,
    ENHANCING,
    HEMORRHAGE,
    NECROSIS,
    NECROTIC_CORE,
    NON_ENHANCING,
    PERIHEMATOMAL_EDEMA,
    TUMOR_CORE,
    WHOLE_TUMOR,
    role_for_name,
)

__all__ = ["SegmentCoding", "LESION_CATEGORY", "ROLE_CODES", "FALLBACK_TYPE", "segment_coding", "table_codings"]

#: CID 7150: the category of every lesion segment.
LESION_CATEGORY: Code = codes.SCT.MorphologicallyAbnormalStructure
#: CID 7159: the type of a label whose name matches no role.
FALLBACK_TYPE: Code = codes.SCT.Lesion
_BRAIN: Code = codes.SCT.Brain

#: role -> (category, type, anatomic region).
ROLE_CODES: dict[str, tuple[Code, Code, Code]] = {
    WHOLE_TUMOR: (LESION_CATEGORY, codes.SCT.Neoplasm, _BRAIN),
    TUMOR_CORE: (LESION_CATEGORY, codes.SCT.Neoplasm, _BRAIN),
    NECROSIS: (LESION_CATEGORY, codes.SCT.Necrosis, _BRAIN),
    NON_ENHANCING: (LESION_CATEGORY, codes.NCIt.NonEnhancingLesion, _BRAIN),
    NECROTIC_CORE: (LESION_CATEGORY, codes.SCT.Necrosis, _BRAIN),
    EDEMA: (LESION_CATEGORY, codes.SCT.Edema, _BRAIN),
    ENHANCING: (LESION_CATEGORY, codes.NCIt.EnhancingLesion, _BRAIN),
    "intraparenchymal hemorrhage": (LESION_CATEGORY, codes.SCT.Hemorrhage, _BRAIN),
    "intraventricular hemorrhage": (LESION_CATEGORY, codes.SCT.Hemorrhage, codes.SCT.BrainVentricle),
    "subarachnoid hemorrhage": (LESION_CATEGORY, codes.SCT.Hemorrhage, codes.SCT.SubarachnoidSpace),
    "subdural hemorrhage": (LESION_CATEGORY, codes.SCT.Hemorrhage, codes.SCT.Intracranial),
    "epidural hemorrhage": (LESION_CATEGORY, codes.SCT.Hemorrhage, codes.SCT.Intracranial),
    PERIHEMATOMAL_EDEMA: (LESION_CATEGORY, codes.SCT.Edema, _BRAIN),
    HEMORRHAGE: (LESION_CATEGORY, codes.SCT.Hemorrhage, codes.SCT.Intracranial),
}


@dataclasses.dataclass(frozen=True)
class SegmentCoding:
    """The coded concepts of one segment.

    Args:
        label: the user's label name (the Segment Label, up to 64 characters).
        role: the label's role (None when its name matches none: coded with the fallback).
        category: Segmented Property Category.
        type: Segmented Property Type.
        anatomic_region: Anatomic Region.
    """

    label: str
    role: str | None
    category: Code
    type: Code
    anatomic_region: Code

    @property
    def known(self) -> bool:
        """Whether the label's role gave the codes (False: the fallback ``Lesion``)."""
        return self.role is not None


def _coding(name: str, role: str | None) -> SegmentCoding:
    if role is None:
        return SegmentCoding(name, None, LESION_CATEGORY, FALLBACK_TYPE, _BRAIN)
    category, type_, region = ROLE_CODES[role]
    return SegmentCoding(name, role, category, type_, region)


def segment_coding(name: str, lesion_kind: LesionKind | str) -> SegmentCoding:
    """The codes of one label name (its role for ``lesion_kind``; the fallback ``Lesion`` when it has none).

    Args:
        name: the label name, as the user's label table has it (``"ET"``, ``"Subdural"``, ``"peritumoral edema"``).
        lesion_kind: tumour or hemorrhage (decides what e.g. ``"edema"`` means).
    """
    return _coding(name, role_for_name(name, LesionKind(lesion_kind)))


def table_codings(table: LabelTable, lesion_kind: LesionKind | str) -> dict[int, SegmentCoding]:
    """The codes of every label of a table, by value; a table of one label whose name means nothing is the whole
    lesion of ``lesion_kind`` (as :func:`~..label_roles.match_roles` reads it).

    Args:
        table: the case's label table (values and names kept as they are).
        lesion_kind: tumour or hemorrhage.
    """
    kind = LesionKind(lesion_kind)
    out = {value: segment_coding(name, kind) for value, name in table.names.items()}
    if len(out) == 1:
        (value, coding), = out.items()
        if not coding.known:
            out[value] = _coding(coding.label, WHOLE_TUMOR if kind is LesionKind.TUMOR else HEMORRHAGE)
    return out
