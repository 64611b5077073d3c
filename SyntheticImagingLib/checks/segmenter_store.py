"""Trained utility segmenters, kept so that identical training is done once.

Two levels:

- within one evaluation, :func:`reference_segmenter` keeps the real-data (TRTR seed 0) segmenter in
  ``context.cache`` so the utility and adherence checks share it;
- across evaluations, when the evaluation has a ``cache_dir`` (``evaluate(cache_dir=...)``, the CLI's
  ``--cache-dir``), :func:`trained_segmenter` writes every segmenter it trains under ``<cache_dir>/segmenters``
  and loads it back when the same cases (ids and contents, in order), settings, seed and device type come again.
  Ranking several generators against one real set then trains the real-only (TRTR) segmenters once, not once per
  generator. Training is deterministic for a given seed, so a loaded model is the one training would make.

Files hold tensors and plain values only (``torch.load(weights_only=True)``); a damaged or foreign file is
retrained and overwritten, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..cases import Case, LabelTable
from ..io.atomic import atomic_file
from ..progress import Reporter
from .base import CheckContext
from .prepare import cases_fingerprint
from .segmenter import SegmenterConfig, TrainedSegmenter, build_network, resolve_device, train_segmenter

__all__ = ["trained_segmenter", "reference_segmenter", "save_segmenter", "load_segmenter", "store_key",
           "REFERENCE_CACHE_KEY", "SEGMENTER_FORMAT"]

#: ``context.cache`` key of the dict {key: TrainedSegmenter} of reference (real-data) segmenters.
REFERENCE_CACHE_KEY = "reference_segmenter"
#: version of the files :func:`save_segmenter` writes (a change retrains instead of misreading).
SEGMENTER_FORMAT = 1


def store_key(cases: Sequence[Case], config: SegmenterConfig, seed: int, device: str | torch.device) -> str:
    """Name of a trained segmenter: its training cases (ids and contents, in order), settings, seed and device
    type (CUDA and CPU training give different weights).

    Args:
        cases: the prepared training cases.
        config: segmenter settings.
        seed: training seed.
        device: the training device.
    """
    settings = json.dumps(config.to_dict(), sort_keys=True)
    digest = hashlib.blake2b(f"{SEGMENTER_FORMAT}:{settings}".encode(), digest_size=6).hexdigest()
    return f"{cases_fingerprint(cases)}-s{seed}-{resolve_device(device).type}-{digest}"


def save_segmenter(model: TrainedSegmenter, path: str | Path) -> Path:
    """Write a trained segmenter's weights and provenance atomically.

    Args:
        model: from :func:`.segmenter.train_segmenter`.
        path: the ``.pt`` file.
    """
    path = Path(path)
    meta = json.dumps({"format": SEGMENTER_FORMAT, "config": model.config.to_dict(),
                       "channels": list(model.channel_names), "seed": model.seed, "train_ids": list(model.train_ids),
                       "losses": model.losses, "seconds": model.seconds, "labels": model.labels.to_dict()})
    payload = {"meta": meta, "weights": {k: v.detach().cpu() for k, v in model.model.state_dict().items()}}
    with atomic_file(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_segmenter(path: str | Path, *, device: str | torch.device = "cpu") -> TrainedSegmenter | None:
    """Read what :func:`save_segmenter` wrote; None when the file is missing, damaged or of another format.

    Args:
        path: the ``.pt`` file.
        device: where the model runs.
    """
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
        meta = json.loads(payload["meta"])
        if meta.get("format") != SEGMENTER_FORMAT:
            return None
        cfg: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()}
        config = SegmenterConfig(**cfg)
        labels = LabelTable.from_dict(meta["labels"])
        n_out = len(labels.values) + 1 if len(labels.values) > 1 else 2
        net = build_network(config, len(meta["channels"]), n_out)
        net.load_state_dict(payload["weights"])
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, EOFError, pickle.UnpicklingError):
        return None
    dev = resolve_device(device)
    return TrainedSegmenter(model=net.to(dev).eval(), config=config, channel_names=tuple(meta["channels"]),
                            device=dev, seed=int(meta["seed"]), train_ids=tuple(meta["train_ids"]),
                            losses=[float(v) for v in meta["losses"]], seconds=float(meta["seconds"]), labels=labels)


def trained_segmenter(cases: Sequence[Case], *, config: SegmenterConfig, seed: int, context: CheckContext,
                      stage: str = "train", key: str | None = None) -> TrainedSegmenter:
    """:func:`.segmenter.train_segmenter`, or the same model from ``context.cache_dir`` when it was trained before.

    Args:
        cases: prepared, labelled training cases.
        config: segmenter settings.
        seed: training seed.
        context: the evaluation context (device, progress, ``cache_dir``).
        stage: progress stage name.
        key: :func:`store_key` of these arguments when the caller has it (hashing the cases is not free).
    """
    path = None
    if context.cache_dir is not None:
        key = key or store_key(cases, config, seed, context.device)
        path = Path(context.cache_dir) / "segmenters" / f"{key}.pt"
        model = load_segmenter(path, device=context.device)
        if model is not None and model.train_ids == tuple(c.case_id for c in cases):
            reporter: Reporter = context.progress
            reporter.report(stage, config.steps, config.steps, f"{len(cases)} cases (trained before: {path.name})")
            return model
    model = train_segmenter(cases, config=config, seed=seed, device=context.device, progress=context.progress,
                            stage=stage)
    if path is not None:
        save_segmenter(model, path)
    return model


def reference_segmenter(real_train: Sequence[Case], context: CheckContext, *,
                        config: SegmenterConfig | None = None) -> TrainedSegmenter:
    """The segmenter trained on all real training cases with the evaluation's seed, trained once and cached.

    The cache is ``context.cache[REFERENCE_CACHE_KEY]``, keyed like :func:`store_key`, so the utility check's TRTR
    run and any later check share one model (and, with a ``cache_dir``, later evaluations too).

    Args:
        real_train: prepared real training cases.
        context: the evaluation context (profile, device, seed, cache, progress).
        config: settings (default: :meth:`SegmenterConfig.for_profile`).
    """
    config = config or SegmenterConfig.for_profile(context.profile)
    key = store_key(real_train, config, context.seed, context.device)
    cache: dict[str, TrainedSegmenter] = context.cache.setdefault(REFERENCE_CACHE_KEY, {})
    if key not in cache:
        cache[key] = trained_segmenter(real_train, config=config, seed=context.seed, context=context,
                                       stage="reference_segmenter", key=key)
    return cache[key]
