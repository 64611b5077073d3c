"""The Python API: the same verbs as the CLI (``synthesize``, ``train``, ``evaluate``, ``export_dicom``, ``info``,
``demo``), for scripts and Slicer's Python console.

Example:
    >>> import SyntheticImagingLib as si                              # doctest: +SKIP
    >>> real = si.load_dataset("Resources/SampleData/brats2018_2mm")  # doctest: +SKIP
    >>> out = si.synthesize("lesion-insertion", 4, data=real, out="synth")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .cases import Case, Modality
from .errors import InputError
from .generators.base import MODEL_CARD, Generator, create_generator, load_generator, read_card
from .generators.inference import InferenceSettings
from .io.datasets import Dataset, load_dataset, write_dataset
from .lesions.controls import LesionControls
from .progress import ProgressCallback, Reporter, as_reporter
from .tasks import TaskPreset, task_for_cases

__all__ = ["synthesize", "get_generator", "info", "SAMPLE_DATA", "sample_dataset", "sample_ct_head"]

#: The bundled sample data (see ``Resources/SampleData/PROVENANCE.md``).
SAMPLE_DATA = Path(os.environ.get("SYNTHETIC_IMAGING_SAMPLE_DATA",
                                  Path(__file__).resolve().parents[1] / "Resources" / "SampleData"))


def sample_dataset() -> Dataset:
    """The bundled BraTS 2018 sample (10 cases, FLAIR + T1 + whole tumour, 2 mm)."""
    from .io.datasets import DatasetLayout

    # Written by Resources/SampleData/make_sample_data.py as FLAIR / T1 / label (whole tumour) per case folder.
    layout = DatasetLayout(channels={"FLAIR": "FLAIR.*", "T1": "T1.*"}, label="label.*", modality=Modality.MR)
    return load_dataset(SAMPLE_DATA / "brats2018_2mm", layout=layout)


def sample_ct_head() -> Case:
    """The bundled head-CT template with skull, in HU (2 mm), as a lesion-free background case."""
    from .cases import HEMORRHAGE_LABELS, LesionKind
    from .io.images import read_image
    from .io.orientation import to_canonical

    ct, geometry = read_image(SAMPLE_DATA / "ct_head" / "CT.nii.gz")
    return to_canonical(Case(case_id="ct_head_template", channels={"CT": ct}, geometry=geometry,
                             modality=Modality.CT, lesion_kind=LesionKind.HEMORRHAGE, label_table=HEMORRHAGE_LABELS))


def _cases(data: Dataset | Sequence[Case] | str | os.PathLike[str] | None) -> list[Case]:
    if data is None:
        return []
    if isinstance(data, (str, os.PathLike)):
        data = load_dataset(data)
    return list(data)


def get_generator(generator: str | os.PathLike[str] | Generator, *, task: str | TaskPreset | None = None,
                  data: Dataset | Sequence[Case] | str | os.PathLike[str] | None = None,
                  progress: Reporter | ProgressCallback | None = None,
                  label_map: str | Mapping[str, int] | None = None, **config: Any) -> Generator:
    """A ready generator: an instance as is, a saved generator folder, or a training-free family fitted on ``data``.

    With ``data`` the task takes its channels and label table from the cases
    (:func:`~SyntheticImagingLib.tasks.task_for_data`): a dataset with any channels and labels works without code.

    Args:
        generator: a :class:`Generator`, a folder with a model card, or a family name.
        task: task preset (for a family name; default: ``brain-tumor-mri``, or by the data's modality).
        data: real reference cases for training-free families.
        label_map: role = value overrides for label names no synonym matches (``"edema=2,enhancing=4"``).
        progress: progress callback or reporter.
        **config: family settings.
    """
    if isinstance(generator, Generator):
        return generator
    path = Path(generator)
    if (path / MODEL_CARD).exists() or path.is_dir():
        read_card(path)  # clear error for a folder that is not a generator
        return load_generator(path)
    from .registry import GENERATORS

    if str(generator) in GENERATORS and GENERATORS.get(str(generator)).trainable:
        raise InputError(f"generator {generator!r} must be trained first",
                         fix=f"run `synthetic-imaging train --generator {generator} ...` and pass its output folder")
    cases = _cases(data)
    resolved = task_for_cases(cases, task=task, label_map=label_map) if cases else (task or "brain-tumor-mri")
    gen = create_generator(str(generator), task=resolved, **config)
    if not cases:
        raise InputError(f"generator {gen.family!r} needs real reference cases", fix="pass data=... (--data)")
    return gen.fit(cases, progress=progress)


def synthesize(generator: str | os.PathLike[str] | Generator, n: int, *, seed: int = 0,
               controls: LesionControls | None = None, task: str | None = None,
               data: Dataset | Sequence[Case] | str | os.PathLike[str] | None = None,
               out: str | os.PathLike[str] | None = None, label_format: str = "nii.gz", overwrite: bool = False,
               progress: Reporter | ProgressCallback | None = None, inference: InferenceSettings | None = None,
               **config: Any) -> list[Case] | Path:
    """Synthesize ``n`` labelled cases.

    Args:
        generator: a generator, a saved generator folder, or a training-free family name.
        n: number of cases.
        seed: random seed (same seed, same cases).
        controls: lesion count/size/location/kind (default: the task's lesion kind).
        task: task preset for a family name.
        data: real reference cases for a training-free family.
        out: write a dataset folder here (with ``dataset.json``) and return its path; None: return the cases.
        label_format: ``nii.gz``, ``nrrd`` or ``seg.nrrd``.
        overwrite: replace an existing output folder.
        progress: progress callback or reporter.
        inference: device, precision, batch size... of the networks (default: CUDA when present, bf16 where the
            hardware computes it natively, see :class:`~SyntheticImagingLib.generators.inference.InferenceSettings`;
            a given generator instance keeps what :meth:`~Generator.to` set when None).
        **config: family settings.
    """
    if n < 1:
        raise InputError(f"number of cases must be >= 1, got {n}")
    reporter = as_reporter(progress)
    gen = get_generator(generator, task=task, data=data, progress=reporter, **config)
    if inference is not None or not isinstance(generator, Generator):  # keep what a given instance was set to
        settings = inference or InferenceSettings()
        gen.to(settings.device, **settings.options())
    if controls is None:
        controls = LesionControls(kind=gen.task.lesion_kind)
    cases = gen.synthesize(n, seed=seed, controls=controls, progress=reporter)
    if out is None:
        return list(cases)
    info = {"synthetic": True, "generator": gen.card(), "seed": seed, "controls": controls.to_dict()}
    return write_dataset(cases, out, label_format=label_format, info=info, overwrite=overwrite)


def info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a dataset or a generator folder holds."""
    path = Path(path)
    if path.is_dir() and (path / MODEL_CARD).exists():
        return {"kind": "generator", **read_card(path)}
    ds = load_dataset(path)
    return {"kind": "dataset", **ds.describe()}

