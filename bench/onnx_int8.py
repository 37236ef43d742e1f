"""Frames/s of one generator, side by side in one process: PyTorch eager fp32 and bf16 (ClipRenderer's fast path)
vs ONNX Runtime fp32 and int8 (static quantization, gan/sampling/onnx_runtime.py), one intra-op thread each;
and the frame PSNR of each against PyTorch fp32 on the same seeds. Randomly initialised weights by default (speed
does not depend on them; the PSNR of a trained model differs: --checkpoint measures one).

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python bench/onnx_int8.py --config default --frames 16 --rounds 7
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python bench/onnx_int8.py --checkpoint runs/mine/checkpoints/latest.pt

Each round renders one clip of `frames` frames (one chunk: mapping, content, motion and frames, the work of one
ONNX run) per runtime, interleaved, after a warm-up. Prints JSON: {runtime: [median, min, max] frames/s, psnr}."""
import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.float() - b.float()) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)          # peak-to-peak 2 ([-1, 1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="default")
    ap.add_argument("--resolution", type=int, default=None)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calibration-seeds", type=int, default=8)
    ap.add_argument("--checkpoint", default=None, help="a trained generator instead of --config's random weights")
    args = ap.parse_args()
    from gan.config import load_config
    from gan.networks import build_generator
    from gan.onnx_export import export_onnx
    from gan.sampling.fast import cpu_has_bf16
    from gan.sampling.onnx_runtime import OnnxGenerator
    from gan.sampling.render import ClipRenderer
    torch.set_num_threads(1)
    if args.checkpoint:
        from gan.sampling.load import load_generator
        G, info = load_generator(args.checkpoint)
        cfg, args.config = info["config"], args.checkpoint
    else:
        over = {"data": {"resolution": args.resolution}} if args.resolution else None
        cfg = load_config(f"configs/{args.config}.yaml", over)
        torch.manual_seed(0)
        G = build_generator(cfg, 0).eval()
    tmp = Path(tempfile.mkdtemp(prefix="reelgan-onnx-bench-"))
    t = time.perf_counter()
    export_onnx(G, cfg, tmp / "G.onnx")
    export_s = time.perf_counter() - t
    t = time.perf_counter()
    int8 = OnnxGenerator(tmp / "G.onnx", "int8", threads=1, calibration_seeds=args.calibration_seeds)
    quant_s = time.perf_counter() - t
    n = args.frames
    runners = {"torch_fp32": ClipRenderer(G, chunk=n, precision="fp32"),
               "torch_bf16": ClipRenderer(G, chunk=n, precision="bf16"),
               "ort_fp32": OnnxGenerator(tmp / "G.onnx", threads=1), "ort_int8": int8}
    render = {k: (lambda r: (lambda s: r.render([s], n, chunk=n) if isinstance(r, OnnxGenerator)
                             else r.render([s], n)))(r) for k, r in runners.items()}
    ref = {s: render["torch_fp32"](s) for s in range(100, 104)}
    quality = {k: statistics.mean(psnr(f(s), ref[s]) for s in ref) for k, f in render.items() if k != "torch_fp32"}
    rates = {k: [] for k in render}
    for k, f in render.items():                                        # warm-up
        f(0)
    for r in range(args.rounds):
        for k, f in render.items():
            t = time.perf_counter()
            f(r + 1)
            rates[k].append(n / (time.perf_counter() - t))
    out = {k: [round(statistics.median(v), 1), round(min(v), 1), round(max(v), 1)] for k, v in rates.items()}
    best = max(statistics.median(rates["torch_fp32"]), statistics.median(rates["torch_bf16"]))
    print(json.dumps({"config": args.config, "resolution": G.resolution, "frames_per_clip": n,
                      "cpu_has_bf16": cpu_has_bf16(), "fps_median_min_max": out,
                      "int8_vs_best_torch": round(statistics.median(rates["ort_int8"]) / best, 2),
                      "int8_vs_ort_fp32": round(statistics.median(rates["ort_int8"]) /
                                                statistics.median(rates["ort_fp32"]), 2),
                      "psnr_vs_torch_fp32_db": {k: round(v, 1) for k, v in quality.items()},
                      "export_s": round(export_s, 1), "calibrate_quantize_s": round(quant_s, 1)}))


if __name__ == "__main__":
    main()
