"""SyntheticImagingLib: labelled synthetic brain-tumour MRI and head-CT hemorrhage volumes, and the checks that
say whether they are useful and private. Pure Python (no Slicer/Qt import): used by the Slicer module, the CLI
and from Slicer's Python console.

The public API (heavy parts are imported on first use, so ``import SyntheticImagingLib`` is fast)::

    import SyntheticImagingLib as si
    real = si.load_dataset("cases/")                       # folder of case folders or dataset.json
    si.synthesize("lesion-insertion", 4, data=real, out="synth/")
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Case": "cases", "Geometry": "cases", "LabelTable": "cases", "Modality": "cases", "LesionKind": "cases",
    "load_dataset": "io.datasets", "write_dataset": "io.datasets", "Dataset": "io.datasets",
    "read_image": "io.images", "write_image": "io.images",
    "LesionControls": "lesions.controls",
    "create_generator": "generators.base", "load_generator": "generators.base",
    "available_generators": "generators.base", "InferenceSettings": "generators.inference",
    "synthesize": "api", "get_generator": "api", "info": "api", "sample_dataset": "api", "sample_ct_head": "api",
    "run_demo": "demo",
    "train_generator": "training",
    "evaluate": "checks.evaluate",
    "export_dicom_dataset": "export",
    "SyntheticImagingError": "errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
