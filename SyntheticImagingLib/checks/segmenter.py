"""The utility segmenter: a small MONAI 3D UNet (or SegResNet) trained with Dice+CE on prepared cases.

Cases with one label (or binarised by ``checks.prepare``) train a lesion-vs-background network (2 outputs);
cases that share a table of K > 1 labels (tumour sub-regions, hemorrhage subtypes) train a K + 1 class network
with the same softmax Dice+CE on one-hot targets, and :func:`segment` returns the argmax as the table's own
label values.

Training is deterministic for a given seed (torch's global RNG is forked, so callers' random state is left
alone), runs on the profile grid (whole volumes on the quick grid, random patches biased to the lesion when a
patch size is set), and uses CUDA with mixed precision when available. :func:`segment` predicts with MONAI's
sliding-window inferer. Trained segmenters are kept and shared by :mod:`.segmenter_store`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from monai.inferers import SlidingWindowInferer
from monai.losses import DiceCELoss
from monai.networks.nets import SegResNet, UNet

from ..cases import Case, LabelTable
from ..errors import InputError, LabelError
from ..io.orientation import left_right_axis
from ..progress import ProgressCallback, Reporter, as_reporter
from .base import Profile
from .prepare import LESION_LABELS

__all__ = ["SegmenterConfig", "TrainedSegmenter", "resolve_device", "cpu_threads", "default_cpu_threads",
           "train_segmenter", "segment", "build_network", "training_labels"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SegmenterConfig:
    """How the utility segmenter is built and trained.

    Args:
        architecture: ``"unet"`` (monai.networks.nets.UNet) or ``"segresnet"``.
        features: feature maps per resolution level (its length sets the depth).
        res_units: residual units per UNet level (0: plain conv blocks, about twice as fast on CPU).
        steps: optimiser steps.
        batch_size: volumes (or patches) per step.
        learning_rate: Adam learning rate (cosine-annealed to 5 % of it).
        weight_decay: Adam weight decay.
        patch_size: training patch ``(z, y, x)``; None trains on whole volumes.
        foreground_prob: share of patches centred on a lesion voxel (only with ``patch_size``).
        augment: random left-right flips (of the patient: along the array axis the case geometry says runs
            left-right, the last one on canonical cases) and per-channel intensity scale/shift.
        cpu_threads: torch threads while training/predicting on CPU (None: :func:`default_cpu_threads`).
    """

    architecture: str = "unet"
    features: tuple[int, ...] = (8, 16, 32, 64)
    res_units: int = 0
    steps: int = 100
    batch_size: int = 2
    learning_rate: float = 1e-2
    weight_decay: float = 1e-5
    patch_size: tuple[int, int, int] | None = None
    foreground_prob: float = 0.5
    augment: bool = True
    cpu_threads: int | None = None

    def __post_init__(self) -> None:
        if self.architecture not in ("unet", "segresnet"):
            raise InputError(f"unknown segmenter architecture {self.architecture!r}", fix="use 'unet' or 'segresnet'")
        if len(self.features) < 2 or self.steps < 1 or self.batch_size < 1:
            raise InputError("segmenter needs >= 2 feature levels, >= 1 step and a batch size >= 1")

    @classmethod
    def for_profile(cls, profile: Profile, **overrides: Any) -> SegmenterConfig:
        """Settings sized for a check profile (full: deeper, wider residual UNet for a GPU; others: the CPU-sized
        defaults, which reach Dice ~0.8 on BraTS whole tumour at 4 mm in 100 steps).

        Args:
            profile: the check profile (``segmenter_steps`` sets ``steps``).
            **overrides: any field to change.
        """
        base: dict[str, Any] = {"steps": profile.segmenter_steps}
        if profile.segmenter_patch is not None:
            base["patch_size"] = tuple(profile.segmenter_patch)
        if profile.name == "full":
            base.update(features=(16, 32, 64, 128, 256), res_units=1, batch_size=2, learning_rate=1e-3)
        return cls(**{**base, **overrides})

    @property
    def divisor(self) -> int:
        """Grid sizes must be multiples of this (one halving per level below the top)."""
        return 2 ** (len(self.features) - 1)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class TrainedSegmenter:
    """A trained segmenter and how it was made.

    Args:
        model: the network (in eval mode after training).
        config: its settings.
        channel_names: input channels, in order.
        device: where it runs.
        seed: training seed.
        train_ids: ids of the training cases.
        losses: training loss per step.
        seconds: training wall time.
        labels: the label table it predicts (class ``i`` is ``labels.values[i - 1]``); one label: lesion (1) vs 0.
    """

    model: torch.nn.Module
    config: SegmenterConfig
    channel_names: tuple[str, ...]
    device: torch.device
    seed: int
    train_ids: tuple[str, ...]
    losses: list[float]
    seconds: float
    labels: LabelTable = LESION_LABELS

    @property
    def label_values(self) -> tuple[int, ...]:
        """The label value of each output class after background (``(1,)`` for a lesion segmenter)."""
        return tuple(self.labels.values) if len(self.labels.values) > 1 else (1,)

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable summary (no weights)."""
        tail = self.losses[-max(1, len(self.losses) // 10):]
        return {"config": self.config.to_dict(), "channels": list(self.channel_names), "device": str(self.device),
                "seed": self.seed, "train_cases": len(self.train_ids), "final_loss": float(np.mean(tail)),
                "seconds": self.seconds, "classes": {"0": "background", **self.labels.to_dict()}
                if len(self.labels.values) > 1 else {"0": "background", "1": "lesion"}}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when present, else CPU; a clear error when CUDA is asked for but absent.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("CUDA was requested but no CUDA GPU is available to PyTorch",
                         fix="use device 'auto' or 'cpu', or install a CUDA build of PyTorch")
    return dev


def default_cpu_threads() -> int:
    """Half of the CPU cores this process may use (at least 1, at most torch's setting).

    Small 3D convolutions scale poorly across threads, and when other jobs share the cores (a CI runner)
    OpenMP threads that wait for each other make a step up to ten times slower than one thread alone.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(torch.get_num_threads(), cores // 2))


@contextlib.contextmanager
def cpu_threads(n: int | None, device: torch.device) -> Iterator[None]:
    """Use ``n`` torch threads inside the block when running on CPU (restored afterwards).

    Args:
        n: threads (None: :func:`default_cpu_threads`).
        device: the compute device (nothing changes on CUDA).
    """
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n or default_cpu_threads())))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def training_labels(cases: Sequence[Case]) -> LabelTable:
    """The label table a segmenter trained on ``cases`` predicts: their shared table when it has several labels,
    else :data:`~.prepare.LESION_LABELS` (any non-zero value is the lesion).

    Args:
        cases: labelled training cases.

    Raises:
        LabelError: cases with several labels whose tables differ.
    """
    tables: list[LabelTable] = []
    for case in cases:
        if case.label is not None and case.label_table not in tables:
            tables.append(case.label_table)
    multi = [t for t in tables if len(t.values) > 1]
    if not multi:
        return LESION_LABELS
    if len(tables) > 1:
        raise LabelError(f"training cases have different label tables {[t.names for t in tables]}",
                         fix="prepare every set onto one label table (checks.prepare.prepare_cases with labels=...)")
    return multi[0]


def build_network(config: SegmenterConfig, in_channels: int, out_channels: int = 2) -> torch.nn.Module:
    """The untrained MONAI network of ``config`` (UNet or SegResNet, 3D).

    Args:
        config: segmenter settings.
        in_channels: image channels.
        out_channels: classes including background.
    """
    if config.architecture == "segresnet":
        depth = len(config.features)
        return SegResNet(spatial_dims=3, init_filters=config.features[0], in_channels=in_channels,
                         out_channels=out_channels, blocks_down=tuple([1, 2, 2, 4, 4][:depth]),
                         blocks_up=(1,) * (depth - 1))
    return UNet(spatial_dims=3, in_channels=in_channels, out_channels=out_channels, channels=config.features,
                strides=(2,) * (len(config.features) - 1), num_res_units=config.res_units)


def _padded_shape(shape: Sequence[int], divisor: int) -> tuple[int, int, int]:
    return tuple(int(math.ceil(s / divisor) * divisor) for s in shape)  # type: ignore[return-value]


def _classes(label: np.ndarray, values: Sequence[int], where: str) -> np.ndarray:
    """Label values -> class indices 0..K (``values[i]`` -> ``i + 1``); one value: any non-zero is class 1."""
    if len(values) <= 1:
        return label > 0
    out = np.zeros(label.shape, np.uint8)
    for i, v in enumerate(values):
        out[label == v] = i + 1
    stray = (label != 0) & (out == 0)
    if stray.any():
        raise LabelError(f"label values {sorted(int(v) for v in np.unique(label[stray]))} are not in the training "
                         f"label table {list(values)}", where=where,
                         fix="prepare every set onto one label table (checks.prepare.prepare_cases)")
    return out


def _stack(cases: Sequence[Case], channels: Sequence[str], divisor: int, *, need_label: bool,
           values: Sequence[int] = (1,)) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int, int]]:
    shapes = {c.shape for c in cases}
    if len(shapes) != 1:
        raise InputError(f"cases are on different grids {sorted(shapes)}",
                         fix="prepare all cases with checks.prepare.prepare_cases and one profile")
    shape = next(iter(shapes))
    padded = _padded_shape(shape, divisor)
    pad = [(0, p - s) for s, p in zip(shape, padded)]
    images = np.empty((len(cases), len(channels), *padded), dtype=np.float32)
    labels = np.zeros((len(cases), 1, *padded), dtype=np.uint8) if need_label else None
    for i, case in enumerate(cases):
        missing = [c for c in channels if c not in case.channels]
        if missing:
            raise InputError(f"case has channels {case.channel_names}, the segmenter needs {list(channels)}",
                             where=case.case_id, fix="use cases with the same image channels as the real set")
        for j, name in enumerate(channels):
            a = case.channels[name]
            # pad with the volume's minimum: the background value in network units
            images[i, j] = np.pad(a, pad, constant_values=float(a.min()))
        if labels is not None:
            if case.label is None:
                raise LabelError("a training case has no label map", where=case.case_id,
                                 fix="train the segmenter on labelled cases only")
            labels[i, 0] = np.pad(_classes(case.label, values, case.case_id), pad)
    return images, labels, shape


def _crop_starts(labels: np.ndarray, idx: np.ndarray, patch: Sequence[int], shape: Sequence[int],
                 fg_prob: float, rng: np.random.Generator, fg_coords: list[np.ndarray]) -> list[tuple[int, ...]]:
    starts = []
    for i in idx:
        coords = fg_coords[int(i)]
        if coords.size and rng.random() < fg_prob:
            centre = coords[rng.integers(len(coords))]
        else:
            centre = np.array([rng.integers(s) for s in shape])
        start = np.clip(centre - np.asarray(patch) // 2, 0, np.asarray(shape) - np.asarray(patch))
        starts.append(tuple(int(v) for v in start))
    return starts


def _left_right_dims(cases: Sequence[Case]) -> list[int]:
    """Per case, the dim of a ``[C, z, y, x]`` sample (negative) that runs along the patient's left-right axis,
    from its geometry: ``-1`` (the last axis, x) on cases in the canonical LPS orientation."""
    return [left_right_axis(c.geometry) - 3 for c in cases]


def _flip_left_right(batch: torch.Tensor, flip: torch.Tensor, dims: Sequence[int]) -> torch.Tensor:
    """The samples of ``batch`` ``[B, C, z, y, x]`` marked in ``flip`` mirrored left-right (sample ``b`` along
    ``dims[b]``, see :func:`_left_right_dims`): a mirror of the patient, whatever order the source stored."""
    if len(set(dims)) == 1:  # the usual case: every case canonical
        return torch.where(flip[:, None, None, None, None], batch.flip(dims[0]), batch)
    return torch.stack([batch[b].flip(dims[b]) if flip[b] else batch[b] for b in range(len(batch))])


def train_segmenter(cases: Sequence[Case], *, config: SegmenterConfig, seed: int = 0,
                    device: str | torch.device = "auto", progress: Reporter | ProgressCallback | None = None,
                    stage: str = "train") -> TrainedSegmenter:
    """Train a lesion segmenter on prepared, labelled cases: lesion vs background, or one class per label when
    the cases share a table of several labels (:func:`training_labels`).

    Args:
        cases: training cases (one grid, one label table; see ``checks.prepare``).
        config: network and training settings.
        seed: seeds weights, batch order, patches and augmentation.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: progress + cancel (checked every few steps).
        stage: progress stage name.
    """
    if not cases:
        raise InputError("no training cases for the segmenter", fix="give at least one labelled case")
    reporter = as_reporter(progress)
    dev = resolve_device(device)
    channels = tuple(cases[0].channel_names)
    table = training_labels(cases)
    values = tuple(table.values) if len(table.values) > 1 else (1,)
    images, labels, shape = _stack(cases, channels, config.divisor, need_label=True, values=values)
    assert labels is not None
    padded = images.shape[2:]
    patch = None
    if config.patch_size is not None:
        patch = tuple(min(p, s) for p, s in zip(_padded_shape(config.patch_size, config.divisor), padded))
        if patch == tuple(padded):
            patch = None
    fg_coords = [np.argwhere(labels[i, 0]) for i in range(len(cases))] if patch else []
    lr_dims = _left_right_dims(cases)
    x_all = torch.from_numpy(images).to(dev)
    y_all = torch.from_numpy(labels).to(dev)
    use_amp = dev.type == "cuda"
    rng = np.random.default_rng(seed)
    losses: list[float] = []
    t0 = time.monotonic()
    every = max(1, config.steps // 20)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), cpu_threads(config.cpu_threads, dev):
        torch.manual_seed(seed)
        model = build_network(config, len(channels), len(values) + 1).to(dev)
        loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)
        opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.steps,
                                                           eta_min=config.learning_rate * 0.05)
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        model.train()
        for step in range(1, config.steps + 1):
            idx = rng.integers(0, len(cases), size=config.batch_size)
            if patch is None:
                x, y = x_all[idx], y_all[idx]
            else:
                starts = _crop_starts(labels, idx, patch, padded, config.foreground_prob, rng, fg_coords)
                sl = [tuple(slice(s, s + p) for s, p in zip(st, patch)) for st in starts]
                x = torch.stack([x_all[int(i)][(slice(None), *s)] for i, s in zip(idx, sl)])
                y = torch.stack([y_all[int(i)][(slice(None), *s)] for i, s in zip(idx, sl)])
            if config.augment:
                flip = torch.from_numpy(rng.random(len(idx)) < 0.5).to(dev)
                dims = [lr_dims[int(i)] for i in idx]
                x, y = _flip_left_right(x, flip, dims), _flip_left_right(y, flip, dims)
                scale = torch.from_numpy(rng.normal(1.0, 0.1, (len(idx), len(channels))).astype(np.float32))
                shift = torch.from_numpy(rng.normal(0.0, 0.1, (len(idx), len(channels))).astype(np.float32))
                x = x * scale.to(dev)[..., None, None, None] + shift.to(dev)[..., None, None, None]
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=use_amp):
                loss = loss_fn(model(x), y.long())
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            losses.append(float(loss.detach()))
            if step % every == 0 or step == config.steps:
                reporter.report(stage, step, config.steps, f"{len(cases)} cases", loss=losses[-1])
        model.eval()
    return TrainedSegmenter(model=model, config=config, channel_names=channels, device=dev, seed=seed,
                            train_ids=tuple(c.case_id for c in cases), losses=losses,
                            seconds=time.monotonic() - t0, labels=table)


@torch.inference_mode()
def segment(model: TrainedSegmenter, cases: Sequence[Case]) -> list[np.ndarray]:
    """Predicted label maps (uint8 ``[z, y, x]``, int16 for values over 255, on each case's grid): 0/1 for a
    lesion segmenter, the label table's own values for a multi-label one.

    Args:
        model: from :func:`train_segmenter`.
        cases: prepared cases with the model's channels.
    """
    net = model.model.eval()
    with cpu_threads(model.config.cpu_threads, model.device):
        # one case at a time: bounded memory for large test sets
        return [_segment_one(model, net, case) for case in cases]


def _segment_one(model: TrainedSegmenter, net: torch.nn.Module, case: Case) -> np.ndarray:
    dev, config = model.device, model.config
    images, _, shape = _stack([case], model.channel_names, config.divisor, need_label=False)
    padded = images.shape[2:]
    roi = padded if config.patch_size is None else tuple(
        min(p, s) for p, s in zip(_padded_shape(config.patch_size, config.divisor), padded))
    inferer = SlidingWindowInferer(roi_size=roi, sw_batch_size=1, overlap=0.25 if roi != padded else 0.0,
                                   mode="gaussian")
    x = torch.from_numpy(images).to(dev)
    with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=dev.type == "cuda"):
        logits = inferer(x, net)
    assert isinstance(logits, torch.Tensor)  # one output head: a tensor, not a tuple or dict
    pred = torch.argmax(logits, dim=1)[0]
    values = model.label_values
    if values != (1,):
        # lesion vs background first (all labels' probability together against background, as the binary
        # segmenter decides), then the most likely label inside: a lesion split over several labels is not lost
        # to background because no single label beats it
        prob = torch.softmax(logits.float(), dim=1)[0]
        pred = torch.where(prob[0] < 0.5, torch.argmax(prob[1:], dim=0) + 1, torch.zeros_like(pred))
    out: np.ndarray = pred.to("cpu").numpy().astype(np.uint8)[: shape[0], : shape[1], : shape[2]]
    if values != (1,):
        lut = np.asarray((0, *values), dtype=np.uint8 if max(values) < 256 else np.int16)
        out = lut[out]
    return np.ascontiguousarray(out)
