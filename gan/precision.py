"""Which floating-point precision a device runs fast: bf16 only where the hardware has it."""
from __future__ import annotations

import torch


def cpu_has_bf16() -> bool:
    """True where oneDNN runs bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated, several times
    slower than fp32 (BENCHMARKS.md, "Training precision on a CPU without native bf16")."""
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


def cpu_flags() -> frozenset:
    """The CPU's feature flags (Linux /proc/cpuinfo); empty where unreadable."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def int8_note(flags: frozenset) -> str:
    """One line when int8 will not pay on this CPU: without VNNI or AMX, int8 dot products take several
    instructions each and ONNX Runtime's int8 kernels ran slower than its fp32 ones (BENCHMARKS.md); '' otherwise
    or where the flags are unknown."""
    if not flags or any(f in flags for f in INT8_DOT_FLAGS):
        return ""
    return ("int8: this CPU has no VNNI or AMX, where int8 runs slower than fp32 (BENCHMARKS.md, \"ONNX and "
            "int8\"); --precision fp32 is faster here and lossless")
