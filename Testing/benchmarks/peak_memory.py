"""Peak memory per measurement for the benchmarks: this process's resident set and the GPU's allocations.

``reset_peaks`` before a measurement, ``peaks`` after it: the figures then belong to that measurement alone even
when several run in one process (Linux ``clear_refs``; elsewhere the process-wide peak, flagged).
"""

from __future__ import annotations

import gc
import resource
from pathlib import Path
from typing import Any

import torch

__all__ = ["reset_peaks", "peaks", "reset_peak_rss", "peak_rss_mb"]


def reset_peak_rss() -> bool:
    """Reset this process's peak resident set (Linux ``clear_refs`` 5); False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident set of this process in MiB (VmHWM; ``ru_maxrss`` elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def reset_peaks(device: torch.device) -> bool:
    """Start a measurement: collect garbage, reset the RSS and CUDA peaks. Returns whether RSS could be reset."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    return reset_peak_rss()


def peaks(device: torch.device) -> dict[str, Any]:
    """Peak RSS (MiB) and, on CUDA, peak allocated GPU memory (MiB) since :func:`reset_peaks`."""
    return {"peak_rss_mb": round(peak_rss_mb(), 1),
            "gpu_max_allocated_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
            if device.type == "cuda" else None}
