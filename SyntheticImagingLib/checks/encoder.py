"""The project's own 3D feature encoder: no downloaded weights, trained self-supervised on the real training set.

A small MONAI 3D ResNet (group norm, global average pooling) is trained with SimCLR: two randomly augmented
views of each real training case (left-right flip, small affine with zoom-in crops, intensity scale/shift,
Gaussian noise) must find each other among the views of the other cases (NT-Xent,
:class:`monai.losses.ContrastiveLoss`). Its pooled features (before the projection head) are the embedding the
fidelity check (Fréchet distance, precision/recall) and the privacy check (distance to closest record) use.

Augmentations run batched in torch (``grid_sample``) rather than as per-sample MONAI transforms: on the two
CPU cores a CI run has, per-sample affine resampling would cost more than the network itself.

Training is deterministic for a seed (torch's global RNG is forked). :func:`get_encoder` trains once per
evaluation and keeps the encoder in ``context.cache["encoder"]`` (a dict keyed by the training data's
fingerprint, seed and settings); when ``context.cache["encoder_dir"]`` names a folder the weights are also
saved there (``torch.save`` of tensors and plain values only) and read back with ``weights_only=True``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pickle
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import ContrastiveLoss
from monai.networks.nets import ResNet

from ..cases import Case
from ..errors import CheckpointError, InputError
from ..progress import ProgressCallback, Reporter, as_reporter
from .base import CheckContext, Profile
from .prepare import cases_fingerprint
from .segmenter import resolve_device

__all__ = ["EncoderConfig", "AugmentParams", "SIMCLR_AUGMENT", "FeatureEncoder", "augment_batch", "stack_cases",
           "train_encoder", "get_encoder", "ENCODER_CACHE_KEY", "ENCODER_DIR_KEY", "ENCODER_FORMAT"]

#: ``context.cache`` key of the dict {key: FeatureEncoder}.
ENCODER_CACHE_KEY = "encoder"
#: Optional ``context.cache`` entry: a folder where trained encoders are saved and looked up.
ENCODER_DIR_KEY = "encoder_dir"
#: Bumped whenever the saved format or the network changes, so old files are not reused.
ENCODER_FORMAT = "1"


@dataclasses.dataclass(frozen=True, kw_only=True)
class AugmentParams:
    """Random augmentations of a batch (each drawn independently per sample).

    Args:
        flip_lr: probability of a left-right (x axis: the patient's left-right on canonical LPS cases) flip; other
            flips would make anatomy implausible.
        rotate_deg: maximum rotation about each axis.
        scale: range of isotropic zoom factors (above 1 zooms in, i.e. a random crop resized to the grid).
        translate: maximum translation as a fraction of the grid's half-extent.
        intensity_scale: per-channel multiplicative jitter ``1 +- intensity_scale``.
        intensity_shift: per-channel additive jitter ``+- intensity_shift``.
        noise_std: maximum standard deviation of added Gaussian noise (drawn uniformly up to it).
    """

    flip_lr: float = 0.5
    rotate_deg: float = 10.0
    scale: tuple[float, float] = (0.9, 1.25)
    translate: float = 0.08
    intensity_scale: float = 0.15
    intensity_shift: float = 0.1
    noise_std: float = 0.08


#: The views SimCLR contrasts.
SIMCLR_AUGMENT = AugmentParams()


@dataclasses.dataclass(frozen=True, kw_only=True)
class EncoderConfig:
    """How the feature encoder is built and trained.

    Args:
        widths: channels of the 4 ResNet stages (the embedding has ``widths[-1]`` dimensions).
        projection_dim: output size of the projection head the contrastive loss sees.
        steps: optimiser steps (None: the profile's ``encoder_steps``).
        batch_size: cases per step (two views each; capped at the number of training cases).
        learning_rate: AdamW learning rate (cosine-annealed to 5 % of it).
        temperature: NT-Xent temperature.
        augment: the random views.
    """

    widths: tuple[int, int, int, int] = (16, 32, 64, 128)
    projection_dim: int = 64
    steps: int | None = None
    batch_size: int = 8
    learning_rate: float = 2e-3
    temperature: float = 0.2
    augment: AugmentParams = SIMCLR_AUGMENT

    def __post_init__(self) -> None:
        if len(self.widths) != 4 or min(self.widths) < 1:
            raise InputError(f"encoder widths must be 4 positive numbers, got {self.widths}")
        if self.batch_size < 2:
            raise InputError("the contrastive encoder needs a batch size of at least 2 cases")

    @classmethod
    def for_profile(cls, profile: Profile, **overrides: Any) -> EncoderConfig:
        """Settings sized for a check profile (``encoder_steps`` sets ``steps``; full: a wider network).

        Args:
            profile: the check profile.
            **overrides: any field to change.
        """
        base: dict[str, Any] = {"steps": profile.encoder_steps}
        if profile.name == "full":
            base.update(widths=(32, 64, 128, 256), batch_size=16, learning_rate=1e-3)
        return cls(**{**base, **overrides})

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dataclasses.asdict(self)


def _build(config: EncoderConfig, in_channels: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    # Group norm, not batch norm: batches are a handful of cases, and batch statistics would let the contrastive
    # task be solved through the batch rather than the image.
    trunk = ResNet(block="basic", layers=[1, 1, 1, 1], block_inplanes=list(config.widths), spatial_dims=3,
                   n_input_channels=in_channels, conv1_t_size=3, conv1_t_stride=2, no_max_pool=True,
                   feed_forward=False, norm=("group", {"num_groups": 4}))
    dim = config.widths[-1]
    head = torch.nn.Sequential(torch.nn.Linear(dim, dim), torch.nn.ReLU(inplace=True),
                               torch.nn.Linear(dim, config.projection_dim))
    return trunk, head


def _rotation(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [B, 3, 3] from angles [B, 3] (radians) about the three axes."""
    c, s = torch.cos(angles), torch.sin(angles)
    one, zero = torch.ones_like(c[:, 0]), torch.zeros_like(c[:, 0])
    rx = torch.stack([one, zero, zero, zero, c[:, 0], -s[:, 0], zero, s[:, 0], c[:, 0]], 1).view(-1, 3, 3)
    ry = torch.stack([c[:, 1], zero, s[:, 1], zero, one, zero, -s[:, 1], zero, c[:, 1]], 1).view(-1, 3, 3)
    rz = torch.stack([c[:, 2], -s[:, 2], zero, s[:, 2], c[:, 2], zero, zero, zero, one], 1).view(-1, 3, 3)
    return rz @ ry @ rx


def augment_batch(images: torch.Tensor, params: AugmentParams, *, generator: torch.Generator,
                  background: float = -1.0) -> torch.Tensor:
    """Randomly augmented copies of a batch ``[B, C, z, y, x]`` (normalised units, background ``-1``).

    Args:
        images: the batch.
        params: which augmentations, how strong.
        generator: the random source (CPU generator, so results do not depend on the device).
        background: value outside the image after a shift or rotation.
    """
    b, c = images.shape[:2]
    dev, dtype = images.device, images.dtype

    def uniform(*shape: int, lo: float = -1.0, hi: float = 1.0) -> torch.Tensor:
        return (torch.rand(*shape, generator=generator) * (hi - lo) + lo).to(dev, dtype)

    angles = uniform(b, 3) * math.radians(params.rotate_deg)
    zoom = uniform(b, 1, lo=params.scale[0], hi=params.scale[1])
    theta = torch.zeros(b, 3, 4, device=dev, dtype=dtype)
    # affine_grid maps output to input coordinates: dividing by the zoom shows a smaller region (a crop).
    theta[:, :, :3] = _rotation(angles) / zoom[:, :, None]
    theta[:, :, 3] = uniform(b, 3) * params.translate
    flip = (torch.rand(b, generator=generator) < params.flip_lr).to(dev)
    theta[:, 0, :] = torch.where(flip[:, None], -theta[:, 0, :], theta[:, 0, :])  # grid x = image x (last axis)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # grid_sample pads with zeros: sample (image - background) so padding lands on the background value
    out = F.grid_sample(images - background, grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False) + background
    scale = 1.0 + uniform(b, c, 1, 1, 1) * params.intensity_scale
    shift = uniform(b, c, 1, 1, 1) * params.intensity_shift
    sigma = uniform(b, 1, 1, 1, 1, lo=0.0, hi=params.noise_std)
    noise = torch.randn(out.shape, generator=generator).to(dev, dtype) * sigma
    return out * scale + shift + noise


def stack_cases(cases: Sequence[Case], channels: Sequence[str]) -> np.ndarray:
    """Images ``[n, C, z, y, x]`` float32 of cases on one grid, channels in the given order.

    Args:
        cases: cases sharing one shape.
        channels: channel names to stack.
    """
    if not cases:
        return np.zeros((0, len(channels), 1, 1, 1), np.float32)
    shape = cases[0].shape
    for case in cases:
        missing = [ch for ch in channels if ch not in case.channels]
        if missing:
            raise InputError(f"case has channels {case.channel_names}, the encoder needs {list(channels)}",
                             where=case.case_id, fix="compare cases of one task (same image channels)")
        if case.shape != shape:
            raise InputError(f"case shape {case.shape} differs from {shape}", where=case.case_id,
                             fix="prepare all cases onto the profile grid first (checks.prepare)")
    return np.stack([np.stack([c.channels[ch] for ch in channels]) for c in cases]).astype(np.float32, copy=False)


class FeatureEncoder:
    """A trained (or loaded) encoder: images in, feature vectors out.

    Args:
        config: network and training settings.
        channel_names: input channels, in order.
        shape: the grid ``(z, y, x)`` it was trained on.
        fingerprint: identifies the training data, seed and settings.
        device: where it runs.
    """

    def __init__(self, *, config: EncoderConfig, channel_names: Sequence[str], shape: Sequence[int],
                 fingerprint: str, device: str | torch.device = "cpu") -> None:
        self.config = config
        self.channel_names = tuple(channel_names)
        self.shape = tuple(int(s) for s in shape)
        self.fingerprint = fingerprint
        self.device = resolve_device(device)
        self.trunk, self.head = _build(config, len(self.channel_names))
        self.trunk.to(self.device)
        self.head.to(self.device)
        self.losses: list[float] = []
        self.seconds = 0.0
        self.train_ids: tuple[str, ...] = ()

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.config.widths[-1])

    @torch.inference_mode()
    def embed(self, cases: Sequence[Case], *, batch_size: int = 16) -> np.ndarray:
        """Embeddings ``[n, dim]`` float32 (pooled trunk features, not the projection head's).

        Args:
            cases: prepared cases on the encoder's grid with its channels.
            batch_size: cases per forward pass.
        """
        self.trunk.eval()
        out = np.zeros((len(cases), self.dim), np.float32)
        for start in range(0, len(cases), batch_size):
            x = stack_cases(cases[start:start + batch_size], self.channel_names)
            out[start:start + len(x)] = self.embed_arrays(x)
        return out

    @torch.inference_mode()
    def embed_arrays(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        """Embeddings of a stacked batch ``[n, C, z, y, x]`` (see :meth:`embed`).

        Args:
            images: normalised images on the encoder's grid.
        """
        self.trunk.eval()
        x = torch.as_tensor(images, dtype=torch.float32).to(self.device)
        if tuple(x.shape[2:]) != self.shape:
            raise InputError(f"images of shape {tuple(x.shape[2:])} given to an encoder trained on {self.shape}",
                             fix="prepare the cases onto the same profile grid as the training cases")
        return self.trunk(x).float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable summary (no weights)."""
        tail = self.losses[-max(1, len(self.losses) // 10):] if self.losses else [float("nan")]
        return {"network": "monai ResNet (basic, 1-1-1-1, group norm)", "config": self.config.to_dict(),
                "channels": list(self.channel_names), "shape": list(self.shape), "dim": self.dim,
                "fingerprint": self.fingerprint, "train_cases": len(self.train_ids),
                "final_loss": float(np.mean(tail)), "seconds": self.seconds, "device": str(self.device)}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write weights and settings (tensors and plain values only, loadable with ``weights_only=True``).

        Args:
            path: the ``.pt`` file.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({"format": ENCODER_FORMAT, "config": self.config.to_dict(),
                           "channels": list(self.channel_names), "shape": list(self.shape),
                           "fingerprint": self.fingerprint, "train_ids": list(self.train_ids),
                           "losses": self.losses, "seconds": self.seconds})
        payload = {"meta": meta, "trunk": {k: v.cpu() for k, v in self.trunk.state_dict().items()},
                   "head": {k: v.cpu() for k, v in self.head.state_dict().items()}}
        tmp = path.with_name(path.name + ".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)  # a crash mid-write never leaves a truncated file under the real name
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> FeatureEncoder:
        """Read what :meth:`save` wrote (never unpickles code).

        Args:
            path: the ``.pt`` file.
            device: where to run it.
        """
        try:
            payload = torch.load(Path(path), map_location="cpu", weights_only=True)
            meta = json.loads(payload["meta"])
        except (OSError, RuntimeError, KeyError, TypeError, ValueError, EOFError, pickle.UnpicklingError) as err:
            raise CheckpointError(f"encoder weights cannot be read ({err})", where=str(path),
                                  fix="delete the file; the encoder is retrained on the next run") from None
        if meta.get("format") != ENCODER_FORMAT:
            raise CheckpointError(f"encoder file format {meta.get('format')!r}, this version reads {ENCODER_FORMAT}",
                                  where=str(path), fix="delete the file; the encoder is retrained on the next run")
        cfg = dict(meta["config"])
        augment: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg["augment"].items()}
        cfg["augment"] = AugmentParams(**augment)
        cfg["widths"] = tuple(cfg["widths"])
        enc = cls(config=EncoderConfig(**cfg), channel_names=meta["channels"], shape=meta["shape"],
                  fingerprint=meta["fingerprint"], device=device)
        enc.trunk.load_state_dict(payload["trunk"])
        enc.head.load_state_dict(payload["head"])
        enc.trunk.eval()
        enc.losses = [float(v) for v in meta["losses"]]
        enc.seconds = float(meta["seconds"])
        enc.train_ids = tuple(meta["train_ids"])
        return enc


def train_encoder(cases: Sequence[Case], *, config: EncoderConfig, seed: int = 0, device: str | torch.device = "auto",
                  progress: Reporter | ProgressCallback | None = None, stage: str = "encoder",
                  fingerprint: str | None = None) -> FeatureEncoder:
    """Train the encoder with SimCLR on real cases (images only; labels are not used).

    Args:
        cases: prepared real training cases (at least 2, one grid).
        config: network and training settings (``steps`` must be set).
        seed: seeds weights, batches and augmentations.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: progress + cancel.
        stage: progress stage name.
        fingerprint: recorded with the weights (default: the cases' fingerprint).
    """
    if len(cases) < 2:
        raise InputError(f"the contrastive encoder needs at least 2 real training cases, got {len(cases)}",
                         fix="give more real training cases")
    if config.steps is None or config.steps < 1:
        raise InputError("encoder steps must be set to a positive number", fix="use EncoderConfig.for_profile")
    reporter = as_reporter(progress)
    dev = resolve_device(device)
    channels = tuple(cases[0].channel_names)
    images = torch.from_numpy(stack_cases(cases, channels)).to(dev)
    batch = min(config.batch_size, len(cases))
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.monotonic()
    every = max(1, config.steps // 20)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        enc = FeatureEncoder(config=config, channel_names=channels, shape=cases[0].shape,
                             fingerprint=fingerprint or cases_fingerprint(cases), device=dev)
        params = list(enc.trunk.parameters()) + list(enc.head.parameters())
        opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.steps,
                                                           eta_min=config.learning_rate * 0.05)
        loss_fn = ContrastiveLoss(temperature=config.temperature)
        enc.trunk.train()
        enc.head.train()
        for step in range(1, config.steps + 1):
            idx = torch.from_numpy(rng.choice(len(cases), size=batch, replace=False)).to(dev)
            x = images[idx]
            views = augment_batch(torch.cat([x, x]), config.augment, generator=gen)
            z = enc.head(enc.trunk(views))
            loss = loss_fn(z[:batch], z[batch:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            enc.losses.append(float(loss.detach()))
            if step % every == 0 or step == config.steps:
                reporter.report(stage, step, config.steps, f"{len(cases)} cases", loss=enc.losses[-1])
        enc.trunk.eval()
        enc.head.eval()
    enc.seconds = time.monotonic() - t0
    enc.train_ids = tuple(c.case_id for c in cases)
    return enc


def _key(cases: Sequence[Case], config: EncoderConfig, seed: int) -> str:
    settings = json.dumps([ENCODER_FORMAT, config.to_dict(), seed], sort_keys=True)
    return f"{cases_fingerprint(cases)}-{hashlib.blake2b(settings.encode(), digest_size=6).hexdigest()}"


def get_encoder(real_train: Sequence[Case], *, context: CheckContext,
                config: EncoderConfig | None = None) -> FeatureEncoder:
    """The encoder of this training set: from ``context.cache``, else from the encoder folder, else trained.

    Args:
        real_train: prepared real training cases (the only data the encoder ever sees).
        context: profile (steps), device, seed, progress and the shared cache.
        config: settings (default: :meth:`EncoderConfig.for_profile`).
    """
    config = config or EncoderConfig.for_profile(context.profile)
    key = _key(real_train, config, context.seed)
    cache: dict[str, FeatureEncoder] = context.cache.setdefault(ENCODER_CACHE_KEY, {})
    if key in cache:
        return cache[key]
    folder = context.cache.get(ENCODER_DIR_KEY)
    path = Path(folder) / f"encoder-{key}.pt" if folder else None
    enc = None
    if path is not None and path.exists():
        try:
            enc = FeatureEncoder.load(path, device=context.device)
        except CheckpointError:
            enc = None  # a broken or outdated file is retrained and overwritten, never trusted
        if enc is not None and enc.fingerprint != key:
            enc = None
    if enc is None:
        enc = train_encoder(real_train, config=config, seed=context.seed, device=context.device,
                            progress=context.progress, stage="encoder", fingerprint=key)
        if path is not None:
            enc.save(path)
    cache[key] = enc
    return enc
