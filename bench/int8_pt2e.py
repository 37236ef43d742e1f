"""int8 static quantization of the frame renderer (PT2E + torchao's X86InductorQuantizer, through inductor: the
sampler's --precision int8, gan/sampling/int8.py), measured side by side with the sampler's compiled fp32 and bf16.

    PYTHONPATH=$PWD python bench/int8_pt2e.py --cells lite:128:1,lite:128:4,default:64:4,default:64:16

Two int8 variants: float32 between the int8 ops, and bf16 between them (autocast; the sampler's choice on CPUs with
native bf16). Inductor's int8 lowering (weight prepacking into oneDNN qconv) needs `torch._inductor.config.freezing`
set while the graph compiles: as `torch.compile(options={"freezing": True})` the prepack op stays in the graph and
compilation fails (UnsupportedOperatorException: onednn.qconv_prepack), which an earlier version of this benchmark
reported as torch's failure. Prints JSON and writes bench/results/int8_pt2e-<date>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _summary(v):
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


def _psnr(a: torch.Tensor, ref: torch.Tensor) -> float:
    mse = float(((a.float() - ref) ** 2).mean())
    return 10 * math.log10(4.0 / max(mse, 1e-12))                 # frames in [-1, 1]: peak-to-peak 2


def measure_int8(G, batch: int = 1, repeats: int = 7, min_time: float = 0.5, calib_videos: int = 8,
                 test_videos: int = 4):
    """Frames/s of int8 (fp32 and bf16 between the int8 ops) against the sampler's compiled fp32 and bf16, in
    interleaved rounds, and each path's frame PSNR against fp32 eager on `test_videos` unseen videos."""
    import torch._inductor.config as inductor_config
    from gan.sampling import FastSampler
    from gan.sampling.int8 import quantize_renderer
    out = {"stage": "import"}
    try:
        import torchao  # noqa: F401
    except ImportError as e:
        out["error"] = f"torchao missing: {e}"
        return out
    ref_sampler = FastSampler(G, chunk=batch, channels_last=False)
    t = torch.arange(batch, dtype=torch.float64)

    def feed(sampler, seed, start=0.0):
        w, x, img = sampler.prepare([seed])
        return w, x, img, sampler.motion([seed], t + start, w)

    with torch.no_grad():
        calib = []
        for i in range(calib_videos):
            w, x, img, v = feed(ref_sampler, 1000 + i, 5.5 * i)
            calib.append((ref_sampler.renderer.video_state(w), x, img, v))
        tests = []
        for i in range(test_videos):
            w, x, img, v = feed(ref_sampler, i, 3.0 * i)
            tests.append((ref_sampler.renderer.video_state(w), x, img, v))
        refs = [ref_sampler.renderer(*a) for a in tests]          # also fills the warp-grid cache with real tensors
        out["stage"] = "quantize"
        converted, out["quantized_convs"] = quantize_renderer(ref_sampler.renderer, calib)
        if converted is None:
            out["stage"], out["note"] = "done", "no dense convolution per frame: int8 renders as fp32 compiled"
            return out
        out["psnr_reference_kernels"] = statistics.mean(_psnr(converted(*a), r) for a, r in zip(tests, refs))
        out["stage"] = "compile"
        paths, times = {}, {}
        for name, precision in (("fp32 compiled", "fp32"), ("bf16 compiled", "bf16")):
            sampler = FastSampler(G, chunk=batch, precision=precision, compile=True)
            args = [feed(sampler, i, 3.0 * i) for i in range(test_videos)]
            t0 = time.perf_counter()
            outs = [sampler._render(*a) for a in args]
            times[name] = time.perf_counter() - t0
            paths[name] = (sampler._render, args, outs)
        for name, dtype in (("int8 compiled", None), ("int8 + bf16 compiled", torch.bfloat16)):
            compiled = torch.compile(converted)

            def call(*a, compiled=compiled, dtype=dtype):
                with torch.autocast("cpu", dtype or torch.float32, enabled=dtype is not None):
                    return compiled(*a)
            t0 = time.perf_counter()
            try:
                with inductor_config.patch(freezing=True):
                    outs = [call(*a) for a in tests]
            except Exception as e:
                out["compile_error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"
                return out
            times[name] = time.perf_counter() - t0
            paths[name] = (call, tests, outs)
        out["compile_s"] = times
        out["psnr_db"] = {k: statistics.mean(_psnr(o, r) for o, r in zip(outs, refs)) for k, (_, _, outs) in
                          paths.items()}
        out["stage"] = "timing"
        calls = {}
        for name, (fn, args, _) in paths.items():
            t0 = time.perf_counter()
            fn(*args[0])
            calls[name] = max(1, math.ceil(min_time / max(time.perf_counter() - t0, 1e-6)))
        rates = {k: [] for k in paths}
        for _ in range(repeats):
            for name, (fn, args, _) in paths.items():
                t0 = time.perf_counter()
                for j in range(calls[name]):
                    fn(*args[j % len(args)])
                rates[name].append(calls[name] * batch / (time.perf_counter() - t0))
        out["fps"] = {k: _summary(v) for k, v in rates.items()}
        best = max(("fp32 compiled", "bf16 compiled"), key=lambda k: out["fps"][k]["median"])
        out["best_float"] = best
        out["ratio_to_best_float"] = {k: _summary([a / b for a, b in zip(rates[k], rates[best])])
                                      for k in ("int8 compiled", "int8 + bf16 compiled")}
        out["stage"] = "done"
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="lite:128:1,lite:128:4,default:64:4,default:64:16",
                    help="config:resolution:frames per call, comma separated")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from cells import build_G
    from run import machine_info
    torch.set_num_threads(args.threads)
    results = {}
    for cell in args.cells.split(","):
        config, res, batch = cell.split(":")
        r = measure_int8(build_G(config, int(res)), int(batch), repeats=args.rounds)
        results[cell] = r
        if "fps" in r:
            print(f"{cell}: " + ", ".join(f"{k} {v['median']:.1f} ({v['min']:.1f}-{v['max']:.1f}) frames/s "
                                          f"{r['psnr_db'][k]:.1f} dB" for k, v in r["fps"].items())
                  + "; int8 / best float " + ", ".join(f"{k} {v['median']:.2f}x ({v['min']:.2f}-{v['max']:.2f})"
                                                        for k, v in r["ratio_to_best_float"].items()), flush=True)
        else:
            print(cell, json.dumps(r), flush=True)
    out = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine_info(),
           "threads": args.threads, "rounds": args.rounds, "results": results}
    path = ROOT / "bench" / "results" / f"int8_pt2e-{dt.datetime.now().strftime('%Y-%m-%d-%H%M')}.json"
    path.write_text(json.dumps(out, indent=1))
    print("wrote", path)


if __name__ == "__main__":
    main()
