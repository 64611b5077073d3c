"""The training loop every trainable family shares: devices, AMP, seeds, progress, cancel, checkpoints, resume.

A family describes *what* it trains as a :class:`TrainingProgram` (its networks, optimisers and one step); the
:class:`Trainer` does the rest the same way for all of them:

* device ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``; mixed precision on CUDA (bf16 where the GPU
  supports it, else fp16 with a gradient scaler), full precision on CPU;
* determinism: networks are initialised from ``seed``, every step re-seeds torch, numpy and ``random`` from
  ``(seed, step, rank)``, batches are a pure function of the step (:class:`~.data.TrainingData`), and
  ``torch.use_deterministic_algorithms`` is on while training on CPU (on CUDA only when asked, as warn-only, since
  a few kernels have no deterministic version; by default CUDA runs autotuned cuDNN kernels for speed);
* progress events (losses, step, ETA; validation previews) through a
  :class:`~SyntheticImagingLib.progress.Reporter`, which also carries the cancel;
* periodic checkpoints (networks, optimisers, gradient scalers, step, data position, RNG states, loss history),
  written atomically by rank 0; a cancel writes one for the last finished step before stopping;
* resume: continue from the last checkpoint; on CPU the final weights are bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import datetime
import json
import os
import random
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import CancelledError, CheckpointError, InputError, ResourceError
from ..io.atomic import atomic_file, write_json
from ..progress import ProgressCallback, Reporter, as_reporter
from . import distributed
from .checkpoints import load_checkpoint, save_checkpoint, tensor_spec
from .data import TrainingData

__all__ = ["TrainSettings", "TrainingProgram", "StepContext", "TrainResult", "Trainer", "resolve_device",
           "resolve_amp", "step_seed", "seed_everything", "CHECKPOINT_NAME"]

#: The training state file inside a checkpoint folder.
CHECKPOINT_NAME = "train_state.pt"


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """How to train (not what): recorded in the model card's ``training`` section.

    Args:
        steps: total optimisation steps (a resumed run continues up to this number).
        batch_size: samples per step and per process.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        amp: mixed precision: ``"auto"`` (bf16/fp16 on CUDA, off on CPU), ``"bf16"``, ``"fp16"`` or ``"off"``.
        seed: seeds initialisation, data order, augmentation and noise.
        checkpoint_every: steps between checkpoints (one is always written at the end).
        preview_every: steps between validation previews (0: none).
        deterministic: use deterministic algorithms (bit-exact resume on CPU); None: on CPU only, while CUDA runs
            cuDNN autotuned kernels (faster 3D convolutions, not bit-reproducible).
        cache_dir: preprocessed-data cache (None: the default user cache; ``""``: no cache).
        num_threads: CPU threads for torch (None: torch's default).
    """

    steps: int = 1000
    batch_size: int = 1
    device: str = "auto"
    amp: str = "auto"
    seed: int = 0
    checkpoint_every: int = 100
    preview_every: int = 0
    deterministic: bool | None = None
    cache_dir: str | None = None
    num_threads: int | None = None

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.checkpoint_every < 1 or self.preview_every < 0:
            raise InputError(f"invalid training settings: steps={self.steps}, batch_size={self.batch_size}, "
                             f"checkpoint_every={self.checkpoint_every}, preview_every={self.preview_every}",
                             fix="steps >= 0, batch size >= 1, checkpoint interval >= 1")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise InputError(f"unknown mixed-precision setting {self.amp!r}", fix="use auto, bf16, fp16 or off")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dataclasses.asdict(self)


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> CUDA when available else CPU; checks that an asked-for GPU exists.

    Under torchrun on CUDA, each process gets its ``LOCAL_RANK`` GPU.
    """
    name = str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError("CUDA was asked for, but no CUDA GPU is visible to PyTorch", where="--device",
                             fix="use --device cpu (or auto), or install a CUDA build of PyTorch")
        if name == "cuda":
            name = f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) if distributed.launched_by_torchrun() else 0}"
    elif name not in ("cpu", "mps"):
        raise InputError(f"unknown device {name!r}", where="--device", fix="use auto, cpu or cuda")
    return torch.device(name)


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device`` (None: full precision).

    ``auto`` is off on CPUs even where they compute bf16 natively: there ``bf16`` makes a GAN step 1.4-1.6x faster
    with the same losses and held-out L1 over 431 BraTS steps (BENCHMARKS.md), but oneDNN's bf16 kernels make
    resumed runs differ from uninterrupted ones in the last bits, and fp32 resumes bit-exactly.
    """
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "fp16" and device.type != "cuda":
        raise InputError("fp16 mixed precision needs a CUDA GPU", where="--amp", fix="use --amp bf16 or off on CPU")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The seed of one step on one rank (a pure function: resumed runs draw the same numbers)."""
    return int(np.random.SeedSequence([int(seed), int(step), int(rank)]).generate_state(1, np.uint64)[0] >> 1)


def seed_everything(seed: int) -> None:
    """Seed torch (all devices), numpy's global RNG and ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    random.seed(seed)


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state(legacy=True)
    assert isinstance(np_state, tuple)  # the legacy form: (name, keys, pos, has_gauss, cached_gaussian)
    return {"torch": torch.get_rng_state(),
            "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
            "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                      "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
            "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]]}


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


class StepContext:
    """What a :class:`TrainingProgram` step gets from the loop.

    Attributes:
        device: the training device.
        step: index of the running step (0-based).
        rank / world_size: this process's place in a distributed job.
        modules: the networks (DDP-wrapped when distributed: call these for the forward pass that trains them).
        raw: the same networks unwrapped (for forward passes that must not synchronise, e.g. a frozen critic).
        optimizers: the optimisers by name.
        amp_dtype: autocast dtype (None: full precision).
    """

    def __init__(self, *, device: torch.device, modules: dict[str, nn.Module], optimizers: dict[str, Any],
                 amp_dtype: torch.dtype | None, scalers: dict[str, torch.amp.GradScaler],
                 context: distributed.DistributedContext) -> None:
        self.device = device
        self.modules = modules
        self.raw = {k: distributed.unwrap(m) for k, m in modules.items()}
        self.optimizers = optimizers
        self.amp_dtype = amp_dtype
        self.scalers = scalers
        self.rank = context.rank
        self.world_size = context.world_size
        self.step = 0

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed-precision context for forward passes (a no-op in full precision)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def optimize(self, loss: torch.Tensor, optimizer: str, *, max_grad_norm: float | None = None) -> None:
        """Zero the gradients, back-propagate ``loss`` and step ``optimizer`` (with the fp16 scaler if any)."""
        opt = self.optimizers[optimizer]
        scaler = self.scalers.get(optimizer)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if max_grad_norm:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], max_grad_norm)
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            if max_grad_norm:
                torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], max_grad_norm)
            opt.step()


class TrainingProgram(abc.ABC):
    """What a family trains: networks, optimisers, one step, and (optionally) validation previews."""

    @abc.abstractmethod
    def signature(self) -> dict[str, Any]:
        """JSON-serialisable identity (family, config, data fingerprint): a checkpoint resumes only if it matches."""

    @abc.abstractmethod
    def build(self) -> dict[str, nn.Module]:
        """Create the networks (on CPU; the loop moves them). Called after seeding."""

    @abc.abstractmethod
    def make_optimizers(self, modules: Mapping[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        """Create the optimisers over the (device-placed, unwrapped) networks."""

    @abc.abstractmethod
    def train_step(self, ctx: StepContext, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Run one optimisation step; return scalar metrics (losses)."""

    def validate(self, ctx: StepContext) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Validation samples (arrays to save) and metrics; default: none."""
        return {}, {}


@dataclasses.dataclass(kw_only=True)
class TrainResult:
    """What a training run produced.

    Args:
        modules: the trained networks (unwrapped, on the training device, in eval mode).
        step: steps completed.
        history: per-step metrics (``{"step": n, <metric>: value}``), including steps before a resume.
        device: the device trained on.
        amp: ``"bf16"``, ``"fp16"`` or ``"off"``.
        resumed_from: the step the run resumed from (None: a fresh run).
        world_size: number of processes.
        elapsed_s: wall time of this run.
        checkpoint: the last checkpoint written (None when none).
    """

    modules: dict[str, nn.Module]
    step: int
    history: list[dict[str, float]]
    device: str
    amp: str
    resumed_from: int | None
    world_size: int
    elapsed_s: float
    checkpoint: Path | None = None


@contextlib.contextmanager
def _deterministic(enabled: bool, device: torch.device) -> Iterator[None]:
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    if not enabled and device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: autotuning pays off after the first steps
    if enabled:
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=device.type != "cpu")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = previous[2], previous[3]


class Trainer:
    """Runs a :class:`TrainingProgram` (see the module docstring for what it guarantees).

    Args:
        settings: steps, batch size, device, AMP, seed, intervals.
        checkpoint_dir: folder of ``train_state.pt`` (None: no checkpoints, no resume).
        preview_dir: folder for validation previews (None: ``checkpoint_dir/../validation``).
        progress: reporter or callback; its cancel stops the run after a checkpoint.
        stage: progress stage name.
    """

    def __init__(self, *, settings: TrainSettings, checkpoint_dir: str | os.PathLike[str] | None = None,
                 preview_dir: str | os.PathLike[str] | None = None,
                 progress: Reporter | ProgressCallback | None = None, stage: str = "train") -> None:
        self.settings = settings
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        if preview_dir is None and self.checkpoint_dir is not None:
            preview_dir = self.checkpoint_dir.parent / "validation"
        self.preview_dir = Path(preview_dir) if preview_dir is not None else None
        self.reporter = as_reporter(progress)
        self.stage = stage

    @property
    def checkpoint_path(self) -> Path | None:
        """The training state file (None without a checkpoint folder)."""
        return self.checkpoint_dir / CHECKPOINT_NAME if self.checkpoint_dir is not None else None

    def run(self, program: TrainingProgram, data: TrainingData, *, resume: bool = False) -> TrainResult:
        """Train ``program`` on ``data`` up to ``settings.steps`` steps.

        Args:
            program: the family's networks and step.
            data: the training batches.
            resume: continue from the checkpoint in ``checkpoint_dir`` (a fresh start when there is none).

        Raises:
            CancelledError: cancelled (a checkpoint of the last finished step was written first).
            CheckpointError: the checkpoint to resume is unsafe, broken, or from another family/config/data.
            ResourceError: a checkpoint exists but ``resume`` is False (nothing is overwritten silently).
        """
        s = self.settings
        device = resolve_device(s.device)
        amp_dtype = resolve_amp(s.amp, device)
        context = distributed.init_distributed(device)
        if s.num_threads:
            torch.set_num_threads(int(s.num_threads))
        signature = json.loads(json.dumps(program.signature(), default=str))
        state = self._resume_state(signature, resume)
        started = time.monotonic()
        with _deterministic(device.type == "cpu" if s.deterministic is None else s.deterministic, device):
            seed_everything(s.seed)
            raw = {k: m.to(device) for k, m in program.build().items()}
            optimizers = program.make_optimizers(raw)
            scalers = {k: torch.amp.GradScaler("cuda") for k in optimizers} if amp_dtype == torch.float16 else {}
            history: list[dict[str, float]] = []
            start = 0
            if state is not None:
                start, history = self._restore(state, raw, optimizers, scalers, context)
            modules = {k: distributed.wrap_ddp(m, context, device) for k, m in raw.items()}
            ctx = StepContext(device=device, modules=modules, optimizers=optimizers, amp_dtype=amp_dtype,
                              scalers=scalers, context=context)
            last_saved: Path | None = self.checkpoint_path if state is not None else None
            saved_step = start if state is not None else None
            done = start
            for m in modules.values():
                m.train()
            try:
                for step in range(start, s.steps):
                    seed_everything(step_seed(s.seed, step, context.rank))
                    batch = {k: v.to(device, non_blocking=True)
                             for k, v in data.batch(step, s.batch_size, rank=context.rank,
                                                    world_size=context.world_size).items()}
                    ctx.step = step
                    metrics = distributed.all_reduce_mean(program.train_step(ctx, batch), device)
                    done = step + 1
                    history.append({"step": float(done), **metrics})
                    message = f"step {done}/{s.steps}"
                    if s.preview_every and (done % s.preview_every == 0 or done == s.steps):
                        # previews draw no numbers from the global RNGs, so they cannot change the training
                        path, val_metrics = self._preview(program, ctx, done, context)
                        metrics = {**metrics, **val_metrics}
                        history[-1].update(val_metrics)
                        if path is not None:
                            message += f", preview {path}"
                    if done % s.checkpoint_every == 0 or done == s.steps:
                        last_saved = self._save(signature, done, raw, optimizers, scalers, history, context) \
                            or last_saved
                        saved_step = done
                    eta = (time.monotonic() - started) / (done - start) * (s.steps - done)
                    self.reporter.report(self.stage, done, s.steps, message, eta_s=eta, **metrics)
            except (CancelledError, KeyboardInterrupt):
                if done > start and saved_step != done:  # keep every finished step
                    self._save(signature, done, raw, optimizers, scalers, history, context)
                raise
            for m in raw.values():
                m.eval()
        return TrainResult(modules=raw, step=done, history=history, device=str(device),
                           amp={None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp_dtype],
                           resumed_from=start if state is not None else None, world_size=context.world_size,
                           elapsed_s=time.monotonic() - started, checkpoint=last_saved)

    # -- checkpoints ------------------------------------------------------------------------------------------

    def _resume_state(self, signature: dict[str, Any], resume: bool) -> dict[str, Any] | None:
        path = self.checkpoint_path
        if path is None or not path.exists():
            return None
        if not resume:
            raise ResourceError("a training checkpoint already exists here", where=str(path),
                                fix="pass --resume (resume=True) to continue it, or choose a new output folder")
        state = load_checkpoint(path)
        if state.get("kind") != "train_state":
            raise CheckpointError("this is not a training-state checkpoint", where=str(path))
        if state.get("signature") != signature:
            old, new = state.get("signature") or {}, signature
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise CheckpointError(f"the checkpoint was made by a different training setup (differs in: {diff})",
                                  where=str(path), fix="resume with the same family, settings and data, or start "
                                  "a new run in a new output folder")
        if int(state.get("batch_size", -1)) != self.settings.batch_size or \
                int(state.get("seed", -1)) != self.settings.seed:
            raise CheckpointError(f"the checkpoint used batch size {state.get('batch_size')} and seed "
                                  f"{state.get('seed')}; this run asks for {self.settings.batch_size} and "
                                  f"{self.settings.seed}", where=str(path),
                                  fix="resume with the original --batch-size and --seed")
        return state

    def _restore(self, state: Mapping[str, Any], raw: Mapping[str, nn.Module], optimizers: Mapping[str, Any],
                 scalers: Mapping[str, Any], context: distributed.DistributedContext) -> tuple[int, list]:
        where = str(self.checkpoint_path)
        if int(state.get("world_size", 1)) != context.world_size:
            raise CheckpointError(f"the checkpoint was trained with {state.get('world_size')} processes, this run has "
                                  f"{context.world_size}", where=where,
                                  fix="resume with the same number of processes (torchrun --nproc_per_node)")
        try:
            for k, m in raw.items():
                m.load_state_dict(state["modules"][k])
            for k, o in optimizers.items():
                o.load_state_dict(state["optimizers"][k])
            for k, sc in scalers.items():
                if k in state.get("scalers", {}):
                    sc.load_state_dict(state["scalers"][k])
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(f"the checkpoint does not fit the networks ({str(err).splitlines()[0]})",
                                  where=where, fix="resume with the settings the run was started with") from None
        _set_rng_state(state["rng"])
        return int(state["step"]), [dict(h) for h in state.get("history", [])]

    def _save(self, signature: dict[str, Any], step: int, raw: Mapping[str, nn.Module],
              optimizers: Mapping[str, Any], scalers: Mapping[str, Any], history: list[dict[str, float]],
              context: distributed.DistributedContext) -> Path | None:
        path = self.checkpoint_path
        if path is None or not context.is_main:
            return None
        modules = {k: m.state_dict() for k, m in raw.items()}
        payload = {"kind": "train_state", "signature": signature, "step": step,
                   "data_position": step * self.settings.batch_size * context.world_size,
                   "batch_size": self.settings.batch_size, "seed": self.settings.seed,
                   "world_size": context.world_size, "modules": modules,
                   "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                   "scalers": {k: sc.state_dict() for k, sc in scalers.items()},
                   "rng": _rng_state(), "history": history}
        save_checkpoint(path, payload)
        # a human-readable summary beside it (resume trusts only the .pt, which embeds the same facts)
        write_json(path.with_suffix(".json"), {
            "step": step, "steps": self.settings.steps, "signature": signature, "world_size": context.world_size,
            "settings": self.settings.to_dict(), "tensors": tensor_spec(modules),
            "last_metrics": history[-1] if history else {},
            "saved": datetime.datetime.now(datetime.timezone.utc).isoformat()})
        return path

    def _preview(self, program: TrainingProgram, ctx: StepContext, step: int,
                 context: distributed.DistributedContext) -> tuple[Path | None, dict[str, float]]:
        for m in ctx.modules.values():
            m.eval()
        try:
            with torch.no_grad():
                arrays, metrics = program.validate(ctx)
        finally:
            for m in ctx.modules.values():
                m.train()
        if not arrays or self.preview_dir is None or not context.is_main:
            return None, metrics
        path = self.preview_dir / f"step_{step:07d}.npz"
        with atomic_file(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **{k: np.asarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]  # numpy's stub matches **arrays against allow_pickle
        _preview_png(path.with_suffix(".png"), arrays)
        return path, metrics


def _preview_png(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Middle axial slice of each 3D preview array, side by side (skipped when matplotlib is absent)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    vols = {k: np.asarray(v) for k, v in arrays.items() if np.asarray(v).ndim == 3}
    if not vols:
        return
    fig, axes = plt.subplots(1, len(vols), figsize=(2.2 * len(vols), 2.4), squeeze=False)
    for ax, (name, v) in zip(axes[0], vols.items()):
        ax.imshow(v[v.shape[0] // 2], cmap="gray", origin="lower")
        ax.set_title(name, fontsize=7)
        ax.axis("off")
    fig.tight_layout()
    try:
        with atomic_file(path) as tmp:
            fig.savefig(tmp, dpi=80, format="png")
    finally:
        plt.close(fig)
