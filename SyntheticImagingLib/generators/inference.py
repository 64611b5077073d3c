"""How a trained generator's networks run at synthesis: device, precision, batch size, compilation, memory layout.

Synthesis is inference only, so it can use lower precision than training: ``precision="auto"`` runs the networks
under bf16 autocast where the hardware computes bf16 natively (CUDA GPUs with bf16, fp16 on older ones; CPUs with
AVX512-BF16 or AMX, where oneDNN's bf16 3D convolutions take about half the fp32 time) and in fp32 elsewhere.
Outputs come back as fp32, so everything after the network (class-mean prior, clamping, the map back to physical
units, diffusion schedulers) stays in full precision. ``torch.compile`` and channels-last 3D are options: on a
2-core CPU compiling the GAN takes 10-20 s for a forward up to 25 % faster at 128^3 (slower at 64^3), which pays
off only for long runs; channels-last helps narrow generators only (BENCHMARKS.md).

Example:
    >>> settings = InferenceSettings(device="cpu", precision="fp32", batch_size=2)
    >>> settings.resolved_batch_size(torch.device("cpu"))
    2
    >>> resolve_precision("fp32", torch.device("cpu")) is None
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import InputError
from ..hardware import cpu_has_native_bf16

__all__ = ["InferenceSettings", "InferenceNetwork", "PRECISIONS", "resolve_precision"]

#: Accepted ``precision`` values.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for synthesis on ``device`` (None: full fp32).

    Args:
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        device: where the networks run.

    Raises:
        InputError: unknown precision, or fp16 on a CPU.
    """
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}", where="--precision", fix=f"use one of {PRECISIONS}")
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda":  # bf16 tensor cores from Ampere (8.0) on; older GPUs would emulate it: fp16
            return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None
    if precision == "fp16" and device.type != "cuda":
        raise InputError("fp16 synthesis needs a CUDA GPU", where="--precision", fix="use bf16 or fp32 on a CPU")
    return torch.bfloat16 if precision == "bf16" else torch.float16


@dataclasses.dataclass(frozen=True)
class InferenceSettings:
    """Synthesis-time settings (not part of a model: the same weights run under any of them).

    Args:
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``.
        precision: see :func:`resolve_precision`.
        batch_size: volumes per network call (None: 1 on CPU, where a batch is no faster, 4 on a GPU).
        compile: wrap the networks in ``torch.compile`` (slow first call; helps long runs).
        channels_last: run 3D convolutions in channels-last (NDHWC) memory layout.
        label_workers: processes drawing new lesion labels ahead of the network (0: one background thread; a GPU
            renders faster than one CPU core draws 128^3 labels). Spawned: a script that sets it must guard its
            entry point with ``if __name__ == "__main__":``.
    """

    device: str = "auto"
    precision: str = "auto"
    batch_size: int | None = None
    compile: bool = False
    channels_last: bool = False
    label_workers: int = 0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise InputError(f"unknown precision {self.precision!r}", where="--precision",
                             fix=f"use one of {PRECISIONS}")
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise InputError(f"batch size must be >= 1, got {self.batch_size}", where="--batch-size")
        if int(self.label_workers) < 0:
            raise InputError(f"label workers must be >= 0, got {self.label_workers}", where="--label-workers")

    @classmethod
    def build(cls, device: str | torch.device = "auto", **settings: Any) -> InferenceSettings:
        """Settings from ``to()``-style arguments, with a clear error for an unknown one."""
        unknown = set(settings) - {f.name for f in dataclasses.fields(cls)} - {"device"}
        if unknown:
            raise InputError(f"unknown synthesis settings {sorted(unknown)}",
                             fix=f"use {sorted(f.name for f in dataclasses.fields(cls) if f.name != 'device')}")
        return cls(device=str(device), **settings)

    def resolve(self) -> torch.device:
        """The device these settings run on, checked together with the precision (e.g. fp16 needs CUDA)."""
        from ..training.loop import resolve_device

        device = resolve_device(self.device)
        resolve_precision(self.precision, device)
        return device

    def resolved_batch_size(self, device: torch.device) -> int:
        """Volumes per network call on ``device``."""
        return int(self.batch_size) if self.batch_size is not None else (4 if device.type == "cuda" else 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain settings (for reports)."""
        return dataclasses.asdict(self)

    def options(self) -> dict[str, Any]:
        """Everything but the device: ``gen.to(s.device, **s.options())``."""
        return {k: v for k, v in self.to_dict().items() if k != "device"}


class InferenceNetwork(nn.Module):
    """A network run under the synthesis precision and memory layout, returning fp32.

    Args:
        net: the trained network (kept, not copied: its weights stay shared with the generator).
        dtype: autocast dtype (None: fp32).
        channels_last: convert 5D inputs (and the weights) to channels-last 3D.
        compile: compile the forward with ``torch.compile``.
    """

    def __init__(self, net: nn.Module, *, dtype: torch.dtype | None = None, channels_last: bool = False,
                 compile: bool = False) -> None:
        super().__init__()
        self.dtype = dtype
        self.channels_last = channels_last
        if channels_last:
            # torch's stub of Module.to lacks the memory_format keyword that Module.to accepts
            net = net.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        self.net = net
        # the compiled wrapper shares the network's weights; kept outside the module tree (no duplicate entries)
        object.__setattr__(self, "_forward", torch.compile(net, dynamic=False) if compile else net)

    def _layout(self, value: Any) -> Any:
        if self.channels_last and isinstance(value, torch.Tensor) and value.ndim == 5:
            return value.contiguous(memory_format=torch.channels_last_3d)
        return value

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        args = tuple(self._layout(a) for a in args)
        kwargs = {k: self._layout(v) for k, v in kwargs.items()}
        tensors = [v for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor)]
        if self.dtype is None or not tensors:
            out = self._forward(*args, **kwargs)
        else:
            with torch.autocast(device_type=tensors[0].device.type, dtype=self.dtype):
                out = self._forward(*args, **kwargs)
        return _to_float(out)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:  # attributes of the wrapped network (e.g. a diffusion UNet's settings)
            return getattr(super().__getattr__("net"), name)


def _to_float(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.float().contiguous() if value.is_floating_point() else value
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _to_float(v) for k, v in value.items()}
    return value
