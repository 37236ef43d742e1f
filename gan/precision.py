"""Which floating-point precision a device runs fast: bf16 only where the hardware has it."""
from __future__ import annotations

import torch


def cpu_has_bf16() -> bool:
    """True where oneDNN runs bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow (a
    training step of the CPU default ~8x slower than fp32 on an AVX2-only AMD EPYC, BENCHMARKS.md)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_bf16()


def auto_precision(device: torch.device, fp16: bool = False) -> str:
    """'bf16' where the device runs it natively; else 'fp16' on CUDA when the caller can use it; else 'fp32'."""
    if native_bf16(device):
        return "bf16"
    return "fp16" if fp16 and device.type == "cuda" else "fp32"
