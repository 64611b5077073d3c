"""Training-step benchmark of the ``gan3d`` family: our training loop against a plain MONAI tutorial-style loop.

Four measurements run side by side in one process, in a rotating order within each repeat, for the same
networks (built by the family's own ``GAN3DGenerator.build_networks``), BraTS cases, grid, batch size, seed and
device:

* ``ours_cached``: ``GAN3DGenerator.fit`` (the path behind ``train_generator``: ``prepare_training_data`` ->
  ``TrainingData`` -> ``Trainer.run``) with a warm preprocessing cache (filled once before the repeats);
* ``ours_uncached``: the same with ``cache_dir=""``, so every run resamples the cases from the NIfTI files;
* ``plain_cachedataset``: a loop written as in the MONAI tutorials: ``LoadImaged`` / ``Orientationd`` /
  ``Spacingd`` / ``CropForegroundd`` / ``ResizeWithPadOrCropd`` / ``ScaleIntensityd`` into a ``CacheDataset``,
  ``RandFlipd`` + ``RandScaleIntensityd`` per sample, ``monai.data.DataLoader``, least-squares
  ``PatchAdversarialLoss`` + L1, the same Adam settings, generator step then critic step (real and fake
  forwards), ``loss.item()`` logging; full precision unless ``--plain-amp``;
* ``plain_dataset``: the same loop over a ``monai.data.Dataset`` (every sample re-read from NIfTI each epoch).

Per measurement: ``step_s`` (mean time of the steps after ``--warmup``, i.e. steady state), ``samples_per_s``
(batch / step_s), ``prep_s`` (ours: preparing the cases; plain: building the dataset, i.e. filling the
CacheDataset), ``total_s`` (the whole run of ``--steps`` steps, preparation included), peak CPU RSS of this
process during the measurement (VmHWM, reset before each measurement where Linux allows it; else the process
peak), and ``torch.cuda.max_memory_allocated`` on CUDA. Our loop runs without an output folder, so no
checkpoint is written (a real run writes one every 100 steps). Ratios are plain / ours (above 1: ours faster),
the median of the per-repeat ratios. The targets (reported, not asserted): step ratio ours-cached vs the
CacheDataset loop >= 0.95 on CPU and >= 1.5 on GPU.

One JSON line per measurement, then one summary JSON line.

Usage (from the project root)::

    python Testing/benchmarks/bench_training.py                      # 4 mm 40x48x40, batch 2, 10 steps, 3 repeats
    python Testing/benchmarks/bench_training.py --grid 2mm --device cuda --steps 30 --warmup 5
    python Testing/benchmarks/bench_training.py --grid 128 --batch-size 1 --cases 10 --json bench_training.jsonl

NIfTI files are read with nibabel when it is installed (MONAI's default reader), else with a small SimpleITK
``ImageReader`` defined here (MONAI has no SimpleITK reader of its own).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing the package

from SyntheticImagingLib.generators import create_generator  # noqa: E402
from SyntheticImagingLib.generators.gan3d import GAN3DGenerator  # noqa: E402
from SyntheticImagingLib.io import load_dataset  # noqa: E402
from SyntheticImagingLib.progress import ProgressEvent  # noqa: E402
from SyntheticImagingLib.training.data import prepare_cases  # noqa: E402
from SyntheticImagingLib.training.loop import TrainSettings, resolve_device  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak_memory import peak_rss_mb, reset_peak_rss  # noqa: E402

__all__ = ["main", "GRIDS", "VARIANTS", "bench_ours", "bench_plain", "summarize"]

#: ``--grid`` choices: spacing (mm) and shape (z, y, x).
GRIDS: dict[str, tuple[float, tuple[int, int, int]]] = {
    "4mm": (4.0, (40, 48, 40)),
    "2mm": (2.0, (80, 96, 80)),
    "128": (1.5, (128, 128, 128)),
}

#: Measurement names, in the order of the first repeat (later repeats rotate it).
VARIANTS = ("ours_cached", "ours_uncached", "plain_cachedataset", "plain_dataset")

TASK = "brain-tumor-mri"
TARGETS = {"cpu": 0.95, "cuda": 1.5}


# -- memory -----------------------------------------------------------------------------------------------------

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Meter:
    """Times one measurement: start, per-step timestamps, preparation end; peak memory."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        self.rss_reset = reset_peak_rss()
        self.rss_start_mb = peak_rss_mb()
        _sync(device)
        self.start = time.perf_counter()
        self.prep_end: float | None = None
        self.steps: list[float] = []

    def prepared(self) -> None:
        self.prep_end = time.perf_counter()

    def step(self) -> None:
        _sync(self.device)
        self.steps.append(time.perf_counter())

    def result(self, warmup: int, batch_size: int) -> dict[str, Any]:
        _sync(self.device)
        end = time.perf_counter()
        n = len(self.steps)
        w = min(warmup, n - 1)
        step_s = (self.steps[-1] - self.steps[w - 1]) / (n - w) if w > 0 else (self.steps[-1] - self.start) / n
        return {"step_s": step_s, "samples_per_s": batch_size / step_s,
                "first_steps_s": (self.steps[w - 1] - (self.prep_end or self.start)) if w > 0 else None,
                "prep_s": (self.prep_end or self.start) - self.start, "total_s": end - self.start, "steps_run": n,
                "peak_rss_mb": round(peak_rss_mb(), 1), "rss_at_start_mb": round(self.rss_start_mb, 1),
                "rss_peak_reset": self.rss_reset,
                "gpu_max_allocated_mb": round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
                if self.device.type == "cuda" else None}


# -- ours -------------------------------------------------------------------------------------------------------

def _generator(spacing: float, shape: Sequence[int], architecture: str) -> GAN3DGenerator:
    gen = create_generator("gan3d", task=TASK, spacing=[spacing] * 3, shape=list(shape), architecture=architecture)
    assert isinstance(gen, GAN3DGenerator)
    return gen


def bench_ours(cases: Any, *, spacing: float, shape: Sequence[int], architecture: str, steps: int, warmup: int,
               batch_size: int, device: torch.device, amp: str, seed: int, cache_dir: str) -> dict[str, Any]:
    """Our training path (``GAN3DGenerator.fit`` -> ``Trainer``), timed through its progress events.

    Args:
        cases: the dataset (lazy; preparation reads its files unless the cache has them).
        spacing / shape / architecture: the model grid and generator architecture.
        steps / warmup: steps to run, of which the first ``warmup`` are not timed.
        batch_size: samples per step.
        device: training device.
        amp: our mixed-precision setting (``auto``: bf16/fp16 on CUDA, off on CPU).
        seed: training seed.
        cache_dir: preprocessing cache (``""``: none).
    """
    gen = _generator(spacing, shape, architecture)
    meter = _Meter(device)

    def on_event(event: ProgressEvent) -> None:
        if event.stage == "train":
            meter.step()
        elif event.stage == "prepare" and event.step == event.total:
            meter.prepared()

    settings = TrainSettings(steps=steps, batch_size=batch_size, device=str(device), amp=amp, seed=seed,
                             cache_dir=cache_dir)
    gen.fit(cases, settings=settings, progress=on_event)
    out = meter.result(warmup, batch_size)
    out["amp"] = gen.training["amp"]
    return out


# -- plain MONAI loop -------------------------------------------------------------------------------------------

def _has_nibabel() -> bool:
    try:
        import nibabel  # noqa: F401
    except ImportError:
        return False
    return True


def _reader() -> Any:
    """MONAI's NIfTI reader when nibabel is installed, else a minimal SimpleITK-backed ``ImageReader``."""
    if _has_nibabel():
        return None  # LoadImaged's default choice
    import SimpleITK as sitk
    from monai.data import ImageReader
    from monai.utils import MetaKeys, SpaceKeys

    class SimpleITKReader(ImageReader):
        """Reads one 3D image as an ``(x, y, z)`` array with its RAS affine (what ``ITKReader`` returns)."""

        def verify_suffix(self, filename: Any) -> bool:
            return True

        def read(self, data: Any, **kwargs: Any) -> Any:
            return sitk.ReadImage(str(data if isinstance(data, (str, os.PathLike)) else data[0]))

        def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
            array = sitk.GetArrayFromImage(img).transpose(2, 1, 0)  # (z, y, x) -> (x, y, z)
            direction = np.asarray(img.GetDirection(), float).reshape(3, 3)
            affine = np.eye(4)
            affine[:3, :3] = direction * np.asarray(img.GetSpacing(), float)
            affine[:3, 3] = img.GetOrigin()
            affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine  # ITK's LPS -> RAS
            meta = {MetaKeys.AFFINE: affine, MetaKeys.ORIGINAL_AFFINE: affine.copy(),
                    MetaKeys.SPATIAL_SHAPE: np.asarray(array.shape), MetaKeys.SPACE: SpaceKeys.RAS,
                    MetaKeys.ORIGINAL_CHANNEL_DIM: float("nan")}
            return array, meta

    return SimpleITKReader()


def _head_mask(image: torch.Tensor) -> torch.Tensor:
    """The head (any channel above 0), ``[1, x, y, z]`` float: the plain loop's stand-in for our brain mask."""
    return (image > 0).any(0, keepdim=True).float()


def _plain_transforms(spacing: float, shape: Sequence[int], reader: Any) -> Any:
    """The deterministic (cacheable) then the random transforms, as a MONAI tutorial writes them."""
    from monai import transforms as T

    keys = ["flair", "t1", "label"]
    size_xyz = list(shape)[::-1]  # MONAI arrays are (x, y, z)
    orientation = [T.Orientationd(keys, axcodes="RAS")] if _has_nibabel() else []  # it needs nibabel
    deterministic = [
        T.LoadImaged(keys, reader=reader, image_only=True),
        T.EnsureChannelFirstd(keys),
        *orientation,
        T.Spacingd(keys, pixdim=[spacing] * 3, mode=("bilinear", "bilinear", "nearest")),
        T.ConcatItemsd(["flair", "t1"], "image"),
        T.DeleteItemsd(["flair", "t1"]),
        T.CropForegroundd(["image", "label"], source_key="image", allow_smaller=True),
        T.ResizeWithPadOrCropd(["image", "label"], spatial_size=size_xyz),
        T.CopyItemsd("image", names="brain"),
        T.Lambdad("brain", _head_mask),
        T.ScaleIntensityd("image", minv=-1.0, maxv=1.0, channel_wise=True),
    ]
    random = [
        T.RandFlipd(["image", "label", "brain"], prob=0.5, spatial_axis=0),
        T.RandScaleIntensityd("image", factors=0.1, prob=1.0, channel_wise=True),
        T.EnsureTyped(["image", "label", "brain"], dtype=torch.float32, track_meta=False),
    ]
    return T.Compose(deterministic + random)


def bench_plain(cases: Any, *, spacing: float, shape: Sequence[int], architecture: str, steps: int, warmup: int,
                batch_size: int, device: torch.device, amp: bool, seed: int, cached: bool,
                workers: int) -> dict[str, Any]:
    """A plain MONAI tutorial-style pix2pix loop over the same files, networks, losses and optimisers.

    Args:
        cases: the dataset (its entries give the NIfTI paths).
        spacing / shape / architecture: the model grid and generator architecture.
        steps / warmup: steps to run, of which the first ``warmup`` are not timed.
        batch_size: samples per step.
        device: training device.
        amp: bf16 autocast (the tutorials' default is full precision).
        seed: seeds the networks and the shuffling.
        cached: ``CacheDataset`` (else ``Dataset``).
        workers: DataLoader worker processes (0: load in this process, as our loop does).
    """
    from monai.data import CacheDataset, DataLoader, Dataset
    from monai.losses import PatchAdversarialLoss
    from monai.utils import set_determinism

    meter = _Meter(device)
    gen = _generator(spacing, shape, architecture)
    c = gen.config
    files = [{"flair": str(e.images["FLAIR"]), "t1": str(e.images["T1"]), "label": str(e.label)}
             for e in cases.entries]
    set_determinism(seed)
    transforms = _plain_transforms(spacing, shape, _reader())
    if cached:
        ds = CacheDataset(files, transforms, cache_rate=1.0, progress=False)
    else:
        ds = Dataset(files, transforms)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=workers,
                        pin_memory=device.type == "cuda")
    torch.manual_seed(seed)
    nets = gen.build_networks()  # the family's own builder: the same modules (class-mean buffer left at 0)
    generator, discriminator = nets["generator"].to(device), nets["discriminator"].to(device)
    betas = (c.beta1, 0.999)
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=c.lr_g, betas=betas)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=c.lr_d, betas=betas)
    adv_loss = PatchAdversarialLoss(criterion="least_squares")
    lambda_l1, lambda_adv = c.lambda_l1, c.lambda_adv
    values = gen.grid.label_values
    use_amp = bool(amp)

    def autocast() -> contextlib.AbstractContextManager[Any]:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()

    meter.prepared()

    generator.train()
    discriminator.train()
    done, epoch_loss_g, epoch_loss_d = 0, 0.0, 0.0
    while done < steps:
        for batch in loader:
            images = batch["image"].to(device)
            label = batch["label"].to(device)
            brain = batch["brain"].to(device)
            cond = torch.cat([(label == v).float() for v in values] + [brain], 1)

            optimizer_g.zero_grad(set_to_none=True)
            with autocast():
                fake = generator(cond)
                logits_fake = discriminator(torch.cat([cond, fake], 1).contiguous())[-1]
            loss_g = lambda_adv * adv_loss(logits_fake.float(), target_is_real=True, for_discriminator=False) \
                + lambda_l1 * F.l1_loss(fake.float(), images)
            loss_g.backward()
            optimizer_g.step()

            optimizer_d.zero_grad(set_to_none=True)
            with autocast():
                logits_fake = discriminator(torch.cat([cond, fake.detach()], 1).contiguous())[-1]
            loss_d_fake = adv_loss(logits_fake.float(), target_is_real=False, for_discriminator=True)
            with autocast():
                logits_real = discriminator(torch.cat([cond, images], 1).contiguous())[-1]
            loss_d_real = adv_loss(logits_real.float(), target_is_real=True, for_discriminator=True)
            loss_d = lambda_adv * 0.5 * (loss_d_fake + loss_d_real)
            loss_d.backward()
            optimizer_d.step()

            epoch_loss_g += loss_g.item()
            epoch_loss_d += loss_d.item()
            done += 1
            meter.step()
            if done >= steps:
                break
    set_determinism(None)
    out = meter.result(warmup, batch_size)
    out["amp"] = "bf16" if use_amp else "off"
    out["workers"] = workers
    return out


# -- driver -----------------------------------------------------------------------------------------------------

def _median(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.median(vals), 4) if vals else None


def summarize(rows: Sequence[dict[str, Any]], device: torch.device, config: dict[str, Any]) -> dict[str, Any]:
    """Medians per measurement and the plain / ours ratios (median of the per-repeat ratios).

    Args:
        rows: the measurement lines (``variant``, ``repeat`` and the timings).
        device: the training device (picks the target).
        config: the run's settings, copied into the summary.
    """
    by = {v: [r for r in rows if r["variant"] == v] for v in VARIANTS}
    medians = {v: {k: _median(rs, k) for k in ("step_s", "samples_per_s", "prep_s", "total_s", "peak_rss_mb",
                                               "gpu_max_allocated_mb")} for v, rs in by.items() if rs}

    def ratio(plain: str, ours: str, key: str) -> float | None:
        pairs = [(p[key], o[key]) for p in by[plain] for o in by[ours] if p["repeat"] == o["repeat"]]
        return round(statistics.median(a / b for a, b in pairs), 3) if pairs else None

    ratios = {"step_cached": ratio("plain_cachedataset", "ours_cached", "step_s"),
              "step_uncached": ratio("plain_dataset", "ours_uncached", "step_s"),
              "step_ours_uncached_vs_plain_cachedataset": ratio("plain_cachedataset", "ours_uncached", "step_s"),
              "total_cached": ratio("plain_cachedataset", "ours_cached", "total_s"),
              "total_uncached": ratio("plain_dataset", "ours_uncached", "total_s")}
    target = TARGETS["cuda" if device.type == "cuda" else "cpu"]
    value = ratios["step_cached"]
    return {"summary": True, **config, "medians": medians, "ratios_plain_over_ours": ratios,
            "target": {"ratio": "step_cached", "min": target, "value": value,
                       "met": None if value is None else value >= target}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the measurements, print JSON lines and return the summary.

    Args:
        argv: command-line arguments.
    """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "brats2018"))
    p.add_argument("--cases", type=int, default=4, help="first N cases of the dataset (0: all)")
    p.add_argument("--grid", choices=sorted(GRIDS), default="4mm")
    p.add_argument("--architecture", default="segresnet", choices=["segresnet", "unet", "spade"])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3, help="first steps of each run left out of the step time")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--amp", default="auto", help="our loop's mixed precision (auto, bf16, fp16, off)")
    p.add_argument("--plain-amp", action="store_true", help="bf16 autocast in the plain loop too")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the plain loop")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--cache-dir", default="", help="our warm cache folder (default: a temporary one)")
    p.add_argument("--json", help="also write every line here (JSON lines)")
    args = p.parse_args(argv)
    if args.steps <= args.warmup:
        p.error("--steps must exceed --warmup")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    spacing, shape = GRIDS[args.grid]
    ds = load_dataset(args.data, layout="brats")
    if args.cases:
        ds = ds.subset(ds.case_ids[: args.cases])
    if len(ds) < args.batch_size:
        p.error(f"{len(ds)} cases cannot fill a batch of {args.batch_size}")
    config = {"device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
              else "CPU", "torch": torch.__version__, "threads": torch.get_num_threads(), "grid": args.grid,
              "spacing_mm": spacing, "shape_zyx": list(shape), "architecture": args.architecture,
              "cases": len(ds), "batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup,
              "repeats": args.repeats, "plain_workers": args.workers}
    lines: list[dict[str, Any]] = []

    def emit(row: dict[str, Any]) -> None:
        lines.append(row)
        print(json.dumps(row), flush=True)

    common = dict(spacing=spacing, shape=shape, architecture=args.architecture, steps=args.steps,
                  warmup=args.warmup, batch_size=args.batch_size, device=device, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="bench_training_cache_") as tmp:
        cache = args.cache_dir or tmp
        t = time.perf_counter()
        prepare_cases(ds, _generator(spacing, shape, args.architecture).grid, cache_dir=cache)
        emit({"variant": "cache_warm", "cases": len(ds), "seconds": round(time.perf_counter() - t, 3)})
        runs: dict[str, Callable[[], dict[str, Any]]] = {
            "ours_cached": lambda: bench_ours(ds, amp=args.amp, cache_dir=cache, **common),
            "ours_uncached": lambda: bench_ours(ds, amp=args.amp, cache_dir="", **common),
            "plain_cachedataset": lambda: bench_plain(ds, amp=args.plain_amp, cached=True, workers=args.workers,
                                                      **common),
            "plain_dataset": lambda: bench_plain(ds, amp=args.plain_amp, cached=False, workers=args.workers,
                                                 **common),
        }
        order = [v for v in VARIANTS if v in args.variants]
        rows = []
        for r in range(args.repeats):
            for v in order[r % len(order):] + order[: r % len(order)]:  # rotate: drift hits every variant alike
                res = runs[v]()
                row = {"variant": v, "repeat": r, **{k: round(x, 4) if isinstance(x, float) else x
                                                      for k, x in res.items()}}
                rows.append(row)
                emit(row)
    summary = summarize(rows, device, config)
    emit(summary)
    if args.json:
        Path(args.json).write_text("".join(json.dumps(row) + "\n" for row in lines))
    return summary


if __name__ == "__main__":
    main()
