"""Reading and writing images, segmentations, DICOM series and datasets."""

from .atomic import atomic_dir, atomic_file, write_json
from .datasets import LAYOUTS, CaseEntry, Dataset, DatasetLayout, infer_modality, load_case, load_dataset, write_dataset
from .images import read_image, write_image
from .orientation import CANONICAL_ORIENTATION, from_canonical, to_canonical, to_source_orientation
from .seg_nrrd import read_seg_nrrd, write_seg_nrrd

__all__ = ["atomic_dir", "atomic_file", "write_json", "LAYOUTS", "CaseEntry", "Dataset", "DatasetLayout",
           "infer_modality", "load_case", "load_dataset", "write_dataset", "read_image", "write_image",
           "read_seg_nrrd", "write_seg_nrrd", "CANONICAL_ORIENTATION", "to_canonical", "from_canonical",
           "to_source_orientation"]
