"""int8 static quantization of the frame renderer with PT2E + X86InductorQuantizer (torchao), measured.

Kept out of the sampler because it is not faster on the stack this was written on (see BENCHMARKS.md):
- torch 2.14's export no longer records `source_fn_stack`, which the quantizer uses to find convs, so
  the 3x3 convs are tagged here by hand (the grouped FIR convs stay float);
- torch.export would cache a fake tensor in the generator's warp-grid cache, so the renderer runs once
  eagerly before export;
- inductor's int8 lowering (torchao's weight-prepack pass) then fails on torch 2.14, and without it the
  converted model runs quantize/dequantize in reference float kernels (slower than float32).
measure_int8 reports the error and speed of whatever stage works, and the error of the stage that fails.
"""
from __future__ import annotations

import math
import statistics
import time

import torch


def _summary(v):
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


def _fps(fn, args, frames, repeats, min_time):
    with torch.no_grad():
        fn(*args)
        t0 = time.perf_counter()
        fn(*args)
        n = max(1, math.ceil(min_time / max(time.perf_counter() - t0, 1e-6)))
        rates = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(n):
                fn(*args)
            rates.append(n * frames / (time.perf_counter() - t0))
    return _summary(rates)


def measure_int8(G, batch: int = 1, repeats: int = 3, min_time: float = 0.5, calib_videos: int = 4):
    from gan.sampling import FastSampler
    out = {"stage": "import"}
    try:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq
    except ImportError as e:
        out["error"] = f"torchao missing: {e}"
        return out
    sampler = FastSampler(G, chunk=batch, channels_last=False)
    t = torch.arange(batch, dtype=torch.float64) * 1.7
    with torch.no_grad():
        calib = []
        for i in range(calib_videos):
            w, x, img = sampler.prepare([1000 + i])
            calib.append((sampler.renderer.video_state(w), x, img, sampler.motion([1000 + i], t + 5.0 * i, w)))
        test_args = calib[0]
        renderer = sampler.renderer
        ref = renderer(*test_args)                     # also fills the warp-grid cache with a real tensor
        out["fp32_eager_fps"] = _fps(renderer, test_args, batch, repeats, min_time)
        out["stage"] = "export"
        gm = torch.export.export(renderer, test_args).module()
        tagged = 0
        for n in gm.graph.nodes:
            if n.target == torch.ops.aten.conv2d.default and (len(n.args) < 7 or n.args[6] == 1):
                n.meta["source_fn_stack"] = [(n.name, torch.nn.functional.conv2d)]
                tagged += 1
        out["quantized_convs"] = tagged
        out["stage"] = "prepare"
        quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
        prepared = prepare_pt2e(gm, quantizer)
        for args in calib:
            prepared(*args)
        out["stage"] = "convert"
        converted = convert_pt2e(prepared)
        q = converted(*test_args)
        err = (q - ref).abs()
        mse = float(((q - ref) ** 2).mean())
        out["error_ref_kernels"] = {"max_abs": float(err.max()), "mean_abs": float(err.mean()),
                                    "psnr_db": 10 * math.log10(4.0 / max(mse, 1e-12))}   # range [-1, 1]
        out["int8_reference_fps"] = _fps(converted, test_args, batch, repeats, min_time)
        out["stage"] = "compile"
        fp32_compiled = torch.compile(renderer, options={"freezing": True})
        t0 = time.perf_counter()
        try:
            compiled = torch.compile(converted, options={"freezing": True})
            qc = compiled(*test_args)
        except Exception as e:
            out["compile_error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"
            return out
        out["compile_s"] = time.perf_counter() - t0
        err = (qc - ref).abs()
        out["error_compiled"] = {"max_abs": float(err.max()), "mean_abs": float(err.mean())}
        out["int8_compiled_fps"] = _fps(compiled, test_args, batch, repeats, min_time)
        out["fp32_compiled_fps"] = _fps(fp32_compiled, test_args, batch, repeats, min_time)
        out["stage"] = "done"
    return out
