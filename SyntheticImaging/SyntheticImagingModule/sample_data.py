"""The bundled sample cases in Slicer's Sample Data module.

The extension installs ``Resources/SampleData`` beside the library (top-level ``CMakeLists.txt``); at start-up
the module registers one BraTS case (FLAIR, T1 and its whole-tumour segmentation) and the head-CT template under
the category "SyntheticImaging". Clicking one loads it like any Slicer sample; from there "Add case" (Data) and
"Train" (Generator) work on it. The files are local, so the sample "downloads" from a ``file://`` URI, offline.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

__all__ = ["CATEGORY", "SampleSource", "sampleDataDirectory", "sampleSources", "registerSampleData"]

CATEGORY = "SyntheticImaging"
_MODULE_DIR = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class SampleSource:
    """One Sample Data entry: the files it loads, their node names and Slicer file types."""

    sampleName: str
    thumbnail: Path
    files: tuple[Path, ...]
    nodeNames: tuple[str, ...]
    loadFileTypes: tuple[str, ...]

    def registerArguments(self) -> dict[str, Any]:
        """Keyword arguments of ``SampleData.SampleDataLogic.registerCustomSampleDataSource``."""
        return {
            "category": CATEGORY, "sampleName": self.sampleName, "thumbnailFileName": str(self.thumbnail),
            "uris": [f.as_uri() for f in self.files],
            # the cache keeps one file per name: prefix the sample so FLAIR of two samples do not collide
            "fileNames": [f"{self.sampleName}-{f.name}" for f in self.files],
            "nodeNames": list(self.nodeNames), "loadFileTypes": list(self.loadFileTypes),
        }


def sampleDataDirectory() -> Path:
    """``Resources/SampleData``: beside the installed module (Slicer), or at the top of a source checkout.

    Raises:
        FileNotFoundError: neither exists (an incomplete install).
    """
    for candidate in (_MODULE_DIR / "Resources" / "SampleData", _MODULE_DIR.parent / "Resources" / "SampleData"):
        if (candidate / "brats2018_2mm").is_dir():
            return candidate
    raise FileNotFoundError(f"the sample data is missing beside {_MODULE_DIR}: reinstall the extension")


def sampleSources(directory: str | os.PathLike[str] | None = None) -> list[SampleSource]:
    """The samples the module registers (files checked to exist)."""
    root = Path(directory) if directory is not None else sampleDataDirectory()
    icons = _MODULE_DIR / "Resources" / "Icons"
    brats = root / "brats2018_2mm" / "case_0"
    ct = root / "ct_head"
    sources = [
        SampleSource("SyntheticImagingBraTS", icons / "SampleBraTS.png",
                     (brats / "FLAIR.nii.gz", brats / "T1.nii.gz", brats / "label.nii.gz"),
                     ("BraTS case_0 FLAIR", "BraTS case_0 T1", "BraTS case_0 tumor"),
                     ("VolumeFile", "VolumeFile", "SegmentationFile")),
        SampleSource("SyntheticImagingHeadCT", icons / "SampleHeadCT.png", (ct / "CT.nii.gz",),
                     ("Head CT template",), ("VolumeFile",)),
    ]
    for source in sources:
        missing = [str(f) for f in (*source.files, source.thumbnail) if not f.exists()]
        if missing:
            raise FileNotFoundError(f"sample {source.sampleName}: missing {missing}")
    return sources


def registerSampleData() -> None:
    """Register the samples with Sample Data (called once Slicer has started)."""
    import SampleData

    for source in sampleSources():
        SampleData.SampleDataLogic.registerCustomSampleDataSource(**source.registerArguments())
