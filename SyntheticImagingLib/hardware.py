"""What this machine computes natively, for choices made at run time (precision)."""

from __future__ import annotations

import functools

import torch

__all__ = ["cpu_has_native_bf16"]


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether oneDNN computes bf16 natively on this CPU (AVX512-BF16 or AMX); emulated bf16 is slower than fp32."""
    # oneDNN's own bf16 check also says yes on AVX512 CPUs that only emulate bf16 (Skylake, Cascade Lake)
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()))
    except (AttributeError, RuntimeError):
        return False
