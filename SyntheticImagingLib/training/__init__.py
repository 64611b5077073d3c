"""Training the trainable generator families, in a way users can trust.

* :func:`train_generator`: the one call behind ``synthetic-imaging train`` (and the Python API).
* :mod:`.loop`: devices, mixed precision, seeds, progress/ETA, cancel, atomic checkpoints, bit-exact resume on CPU.
* :mod:`.data`: preprocessing to the model grid once, cached; deterministic batches with light augmentation.
* :mod:`.checkpoints`: ``torch.load(weights_only=True)`` only; weights bound to their model card.
* :mod:`.distributed`: torchrun + DistributedDataParallel (NCCL on GPU, gloo on CPU), rank-0-only writes.

Example:
    >>> gen = train_generator("../shared/data/brats2018", task="brain-tumor-mri", family="gan3d",
    ...                       out_dir="model", steps=300, spacing=[4, 4, 4], shape=[40, 48, 40])  # doctest: +SKIP
    >>> cases = list(gen.synthesize(4, seed=1))  # doctest: +SKIP
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cases import Case
from ..errors import InputError, ResourceError
from ..progress import ProgressCallback, Reporter, as_reporter
from . import checkpoints, distributed
from .data import GridSettings, PreparedCase, TrainingData, default_cache_dir, prepare_cases
from .loop import CHECKPOINT_NAME, Trainer, TrainResult, TrainSettings, resolve_device

if TYPE_CHECKING:
    from ..generators.base import Generator

__all__ = ["train_generator", "prepare_training_data", "training_card", "TrainSettings", "Trainer", "TrainResult",
           "TrainingData", "GridSettings", "PreparedCase"]


def prepare_training_data(cases: Sequence[Case], validation: Sequence[Case] | None, grid: GridSettings,
                          settings: TrainSettings, progress: Reporter | ProgressCallback | None = None,
                          ) -> tuple[list[PreparedCase], list[PreparedCase]]:
    """Preprocess training and validation cases to ``grid`` through the cache.

    Under torchrun, rank 0 fills the cache first and the other ranks then read it.

    Args:
        cases: training cases or dataset.
        validation: held-out cases (None: none).
        grid: the model grid.
        settings: training settings (``cache_dir``: None = default user cache, ``""`` = no cache).
        progress: reporter or callback.
    """
    reporter = as_reporter(progress)
    distributed.init_distributed(resolve_device(settings.device))
    cache = None if settings.cache_dir == "" else (settings.cache_dir or default_cache_dir())
    with distributed.main_process_first():
        prepared = prepare_cases(cases, grid, cache_dir=cache, progress=reporter)
        val = prepare_cases(validation, grid, cache_dir=cache, progress=reporter, stage="prepare:validation") \
            if validation else []
    return prepared, val


def training_card(settings: TrainSettings, result: TrainResult, fingerprint: Mapping[str, Any]) -> dict[str, Any]:
    """The model card's ``training`` section: steps, settings, device, data fingerprint, metrics, versions, date."""
    last = result.history[-1] if result.history else {}
    return {"steps": result.step, "settings": settings.to_dict(), "device": result.device, "amp": result.amp,
            "world_size": result.world_size, "resumed_from": result.resumed_from, "data": dict(fingerprint),
            "final_metrics": {k: v for k, v in last.items() if k != "step"},
            "versions": checkpoints.software_versions(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat()}


def _as_cases(data: Any, what: str, layout: str | None) -> Sequence[Case]:
    if isinstance(data, (str, os.PathLike)):
        from ..io.datasets import load_dataset

        return load_dataset(data, layout=layout)
    if isinstance(data, Case):
        return [data]
    if isinstance(data, Sequence):
        return data
    raise InputError(f"{what} must be a dataset path, a Dataset or a list of cases, got {type(data).__name__}")


def train_generator(dataset: Any, *, task: Any, family: str, out_dir: str | os.PathLike[str], steps: int,
                    batch_size: int = 1, device: str = "auto", resume: bool = False, seed: int = 0,
                    progress: Reporter | ProgressCallback | None = None, validation: Any = None, amp: str = "auto",
                    checkpoint_every: int | None = None, preview_every: int = 0, cache_dir: str | None = None,
                    layout: str | None = None, label_map: str | Mapping[str, int] | None = None,
                    **config: Any) -> Generator:
    """Train a generator family and save it (weights + model card) in ``out_dir``.

    ``out_dir`` receives ``checkpoints/train_state.pt`` (periodic, atomic), ``validation/`` previews and, at the
    end, the generator files with ``model_card.json`` written last. Interrupted? Run again with ``resume=True``.
    Launched under torchrun, every rank trains and rank 0 writes.

    Args:
        dataset: dataset folder / ``dataset.json`` path, a :class:`~SyntheticImagingLib.io.datasets.Dataset`, or
            a list of cases.
        task: task preset name (``brain-tumor-mri``, ``head-hemorrhage-ct``) or object; the dataset's channels and
            label table replace the preset's (:func:`~SyntheticImagingLib.tasks.task_for_data`), so the model
            knows every channel and label of the data and its card keeps them (``task_spec``).
        family: trainable generator family (``gan3d``, ``diffusion``).
        out_dir: the generator folder to write.
        steps: total training steps.
        batch_size: samples per step (per process).
        device: ``auto``, ``cpu`` or ``cuda``.
        resume: continue the checkpoint in ``out_dir``.
        seed: seeds everything (same seed + CPU = same weights).
        progress: reporter or callback (stages ``prepare``, ``train``); cancel stops after a checkpoint.
        validation: held-out cases (a path, dataset or list), or an int ``n`` to hold out the last ``n`` cases of
            ``dataset`` (split by case).
        amp: ``auto``, ``bf16``, ``fp16`` or ``off``.
        checkpoint_every: steps between checkpoints (default: 100; one is always written at the end).
        preview_every: steps between validation previews (0: none).
        cache_dir: preprocessed-data cache (None: the user cache; ``""``: none).
        layout: dataset layout name for paths (``brats``, ``auto``; None: automatic).
        label_map: role = value overrides for label names no synonym matches (``"edema=2,enhancing=4"``).
        **config: family settings (e.g. ``spacing``, ``shape``, ``architecture``).

    Returns:
        the trained generator (already saved in ``out_dir``).

    Raises:
        InputError: unknown or non-trainable family, bad settings.
        ResourceError: ``out_dir`` holds a finished generator or a checkpoint and ``resume`` is False.
    """
    from ..generators.base import MODEL_CARD, create_generator

    out = Path(out_dir)
    if (out / MODEL_CARD).exists():
        if not resume:
            raise ResourceError("the output folder already holds a trained generator", where=str(out),
                                fix="choose a new --out folder, or pass --resume to continue its training")
        if not (out / "checkpoints" / CHECKPOINT_NAME).exists():
            raise ResourceError("the output folder holds a generator without its training checkpoint, so its "
                                "training cannot be continued", where=str(out), fix="train into a new --out folder")
    from ..registry import GENERATORS
    from ..tasks import task_for_cases

    if family in GENERATORS and not GENERATORS.get(family).trainable:
        raise InputError(f"generator family {family!r} is not trainable", fix="train gan3d or diffusion; "
                         f"{family!r} needs no training (use it directly with synthesize)")
    cases = _as_cases(dataset, "dataset", layout)
    gen = create_generator(family, task=task_for_cases(cases, task=task, label_map=label_map), **config)
    val: Sequence[Case] | None = None
    if isinstance(validation, int) and not isinstance(validation, bool):
        if not 0 < validation < len(cases):
            raise InputError(f"cannot hold out {validation} of {len(cases)} cases for validation")
        if hasattr(cases, "subset"):
            ids = cases.case_ids  # type: ignore[attr-defined]
            val, cases = cases.subset(ids[-validation:]), cases.subset(ids[:-validation])  # type: ignore[attr-defined]
        else:
            val, cases = list(cases[-validation:]), list(cases[:-validation])
    elif validation is not None:
        val = _as_cases(validation, "validation", layout)
    settings = TrainSettings(steps=steps, batch_size=batch_size, device=device, amp=amp, seed=seed,
                             checkpoint_every=checkpoint_every or max(1, min(100, steps)),
                             preview_every=preview_every, cache_dir=cache_dir)
    gen.fit(cases, progress=progress, out_dir=out, resume=resume, settings=settings,  # type: ignore[call-arg]
            validation=val)
    if distributed.is_main_process():
        gen.save(out)
    distributed.barrier()
    return gen
