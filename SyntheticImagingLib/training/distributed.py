"""Multi-GPU / multi-node training on PyTorch's own engine: ``torchrun`` + DistributedDataParallel.

Launch any training (CLI or Python) under ``torchrun``; the environment it sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``) is detected here and the process group is started with NCCL on
GPUs or gloo on CPU::

    torchrun --nproc_per_node 4 -m SyntheticImagingLib train --data DATA --task brain-tumor-mri \\
        --generator gan3d --out model/ --device cuda
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --master_port 29500 --nproc_per_node 8 -m ...

Every rank runs the same loop on its own share of each step's samples; DDP averages the gradients, so the replicas
keep identical weights. Only rank 0 writes files (checkpoints, model card, previews).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
from collections.abc import Iterator, Mapping

import torch
import torch.distributed as dist
from torch import nn

from ..errors import InputError

__all__ = ["DistributedContext", "launched_by_torchrun", "init_distributed", "current_context", "wrap_ddp",
           "unwrap", "barrier", "is_main_process", "main_process_first", "all_reduce_mean", "shutdown"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class DistributedContext:
    """Where this process stands in a (possibly single-process) job.

    Args:
        rank: global rank (0 on a single process).
        local_rank: rank on this node (selects the GPU).
        world_size: number of processes.
        backend: ``"nccl"``, ``"gloo"`` or ``None`` (not distributed).
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        """True when several processes train together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes files (rank 0)."""
        return self.rank == 0


def launched_by_torchrun(env: Mapping[str, str] | None = None) -> bool:
    """True when the environment of ``torchrun`` (or another launcher setting the same variables) is present."""
    env = os.environ if env is None else env
    return int(env.get("WORLD_SIZE", "1")) > 1 and "RANK" in env


def current_context() -> DistributedContext:
    """The context of an already started process group (single-process context otherwise)."""
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(rank=dist.get_rank(), world_size=dist.get_world_size(),
                                  local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())),
                                  backend=str(dist.get_backend()))
    return DistributedContext()


def init_distributed(device: torch.device | str, *, timeout_s: float = 1800.0) -> DistributedContext:
    """Start the process group when launched by torchrun (idempotent); single-process context otherwise.

    Args:
        device: the training device: CUDA uses NCCL and this rank's GPU (``LOCAL_RANK``), CPU uses gloo.
        timeout_s: how long collective operations wait for the other ranks.

    Raises:
        InputError: torchrun started more processes on a node than it has GPUs.
    """
    if dist.is_available() and dist.is_initialized():
        return current_context()
    if not launched_by_torchrun():
        return DistributedContext()
    device = torch.device(device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "gloo"
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise InputError(f"local rank {local_rank} has no GPU (this node has {torch.cuda.device_count()})",
                             fix="set torchrun --nproc_per_node to at most the number of GPUs per node")
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return current_context()


def wrap_ddp(module: nn.Module, context: DistributedContext, device: torch.device) -> nn.Module:
    """Wrap ``module`` in DistributedDataParallel when distributed (unchanged otherwise).

    DDP broadcasts rank 0's parameters and buffers at wrap time, so all replicas start identical.
    """
    if not context.enabled or not any(p.requires_grad for p in module.parameters()):
        return module
    if device.type == "cuda":
        return nn.parallel.DistributedDataParallel(module, device_ids=[device.index or 0],
                                                   output_device=device.index or 0)
    return nn.parallel.DistributedDataParallel(module)


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def barrier() -> None:
    """Wait for every rank (no-op on a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def is_main_process() -> bool:
    """True on rank 0 or when not distributed: the process allowed to write files."""
    return current_context().is_main


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. filling a cache); the others run it after, reusing what it wrote."""
    main = is_main_process()
    if not main:
        barrier()
    try:
        yield
    finally:
        if main:
            barrier()


def all_reduce_mean(values: Mapping[str, float], device: torch.device) -> dict[str, float]:
    """Average scalar metrics over all ranks (for logging; unchanged on a single process)."""
    if not (dist.is_available() and dist.is_initialized()) or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= dist.get_world_size()
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def shutdown() -> None:
    """Destroy the process group if one is running."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
