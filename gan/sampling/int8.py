"""int8 frames on the CPU: PT2E static quantization of the frame renderer, compiled by inductor.

The fp32 FrameRenderer (unfused modulated convs: scale the activations, one static conv, demodulate) is
exported per input shape, its dense convolutions are quantized by torchao's X86InductorQuantizer (per-channel
int8 weights, per-tensor uint8 activations, min/max calibrated on rendered videos at that shape), and inductor
lowers them to oneDNN int8 convolutions (VNNI / AMX dot products) with the quantize steps fused around them. The
FIR filters, the transposed up-convs (no quantizer pattern; as sub-pixel convs they were slower), the style
affines and the elementwise work stay in floating point: bf16 on CPUs with native bf16, else float32.
Speed and error: BENCHMARKS.md, "PT2E int8 through inductor".
"""
from __future__ import annotations

import logging
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from gan.ops import compile_fn, frozen
from gan.precision import cpu_has_bf16
from gan.sampling.load import SamplingError

Args = Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
CALIBRATION_VIDEOS = 8


def require_torchao():
    pytree_log = logging.getLogger("torch.utils._pytree")      # torchao's import warns there about its own enum
    level = pytree_log.level
    pytree_log.setLevel(logging.ERROR)
    try:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer
    except ImportError:
        raise SamplingError("--precision int8 on a PyTorch checkpoint needs torchao: pip install torchao "
                            "(or export to ONNX and run --checkpoint G.onnx --precision int8)") from None
    except Exception as e:                            # a torchao built for another torch
        raise SamplingError(f"torchao does not load with torch {torch.__version__} ({type(e).__name__}: "
                            f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}): install the torchao "
                            "release made for this torch, or use --precision bf16") from None
    finally:
        pytree_log.setLevel(level)
    return prepare_pt2e, convert_pt2e, x86_inductor_quantizer


def int8_available() -> bool:
    """True where torchao is installed (the quantizer; the int8 kernels are torch's own oneDNN ones)."""
    import importlib.util
    return importlib.util.find_spec("torchao") is not None


def quantize_renderer(renderer: nn.Module, calibration: List[Args]) -> Tuple[Optional[nn.Module], int]:
    """The PT2E-converted copy of an fp32 FrameRenderer for calibration[0]'s shapes: (module, convs quantized);
    (None, 0) when its graph has no dense convolution (int8 would then only quantize a few elementwise ops)."""
    prepare_pt2e, convert_pt2e, xiq = require_torchao()
    aten = torch.ops.aten
    renderer(*calibration[0])                         # fills the warp-grid cache with real tensors before export
    gm = torch.export.export(renderer, calibration[0]).module()
    for n in list(gm.graph.nodes):                    # dtype assertions would fail under autocast (bf16 between)
        if str(n.target).startswith("aten._assert_tensor_metadata"):
            gm.graph.erase_node(n)
    tagged = 0
    for n in gm.graph.nodes:
        # torch >= 2.9's export no longer records source_fn_stack, which the quantizer matches convs by: tag the
        # dense convs (a weight of their own, not a broadcast FIR kernel) by hand.
        if (n.target == aten.conv2d.default and (len(n.args) < 7 or n.args[6] == 1)
                and getattr(n.args[1], "target", None) != aten.expand.default):
            n.meta["source_fn_stack"] = [(n.name, torch.nn.functional.conv2d)]
            tagged += 1
    if tagged == 0:
        return None, 0
    gm.recompile()
    quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(gm, quantizer)
    for args in calibration:
        prepared(*args)
    return convert_pt2e(prepared), tagged


class Int8Frames:
    """(video_state(w), x, img, v) -> frames through int8 convolutions: one quantized, compiled graph per input
    shape, each calibrated on `calibrate(shapes)`'s inputs (rendered videos at that shape) when first asked for."""

    def __init__(self, renderer: nn.Module, calibrate: Callable[[Tuple], List[Args]]):
        if renderer.dtype != torch.float32:
            raise ValueError("quantize the float32 FrameRenderer")
        self.renderer, self.calibrate = renderer, calibrate
        self.between = torch.bfloat16 if cpu_has_bf16() else torch.float32   # the float ops around the int8 ones
        self.quantized_convs = 0
        self._graphs: Dict[Tuple, Tuple[Callable, bool]] = {}

    def __call__(self, ws, x, img, v) -> torch.Tensor:
        key = tuple(tuple(a.shape) for a in (ws, x, img, v))
        if key not in self._graphs:
            module, self.quantized_convs = quantize_renderer(self.renderer, self.calibrate(key))
            if module is None:
                logging.getLogger(__name__).warning(
                    "int8: this generator's per-frame work has no dense convolution to quantize (the layered and "
                    "scene generators composite per frame): it renders as --precision fp32 --compile does")
            # Frozen (gan.ops.frozen): inductor lowers the int8 convs only with their weights pre-packed as constants.
            self._graphs[key] = (frozen(compile_fn(self.renderer if module is None else module)), module is not None)
        fn, quantized = self._graphs[key]
        with torch.autocast("cpu", self.between, enabled=quantized and self.between != torch.float32):
            return fn(ws, x, img, v).float()


__all__ = ["CALIBRATION_VIDEOS", "Int8Frames", "int8_available", "quantize_renderer", "require_torchao"]
