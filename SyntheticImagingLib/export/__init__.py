"""Export synthetic cases as DICOM studies (image series + Segmentation), marked synthetic and free of PHI."""

from __future__ import annotations

from .dicom_seg import build_segmentation, read_dicom_seg, segment_type_code
from .dicom_study import (
    IntensityCoding,
    Provenance,
    encode_intensities,
    export_dicom_dataset,
    export_dicom_study,
    safe_extract_zip,
)
from .phi import PhiHit, collect_identifying_values, find_source_values_in_export, scan_for_values
from .segment_codes import ROLE_CODES, SegmentCoding, segment_coding, table_codings
from .uids import is_project_uid, new_uid

__all__ = [
    "export_dicom_study",
    "export_dicom_dataset",
    "safe_extract_zip",
    "encode_intensities",
    "IntensityCoding",
    "Provenance",
    "build_segmentation",
    "read_dicom_seg",
    "segment_type_code",
    "segment_coding",
    "table_codings",
    "SegmentCoding",
    "ROLE_CODES",
    "collect_identifying_values",
    "scan_for_values",
    "find_source_values_in_export",
    "PhiHit",
    "new_uid",
    "is_project_uid",
]
