"""The PyTorch int8 path's cost in quality on a trained generator: frame PSNR against fp32 and FVD16 (the real I3D)
of the same seeds rendered both ways.

    PYTHONPATH=$PWD python bench/int8_quality.py --checkpoint CKPT --data /tmp/bikes --num 128

Renders seeds 0..num-1 (16 frames from t = 0, batches of 8, no watermark) through FastSampler at fp32 and at int8,
writes them as mp4 under --outdir/{fp32,int8}, and runs `python -m gan.metrics --videos DIR --metrics fvd16` on
each against the same real windows. Prints JSON and writes bench/results/int8_quality-<date>.json.
"""
import argparse
import datetime as dt
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True, help="the real clips FVD compares against")
    ap.add_argument("--num", type=int, default=128)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--outdir", default=None)
    args = ap.parse_args()
    from bench.run import machine_info
    from gan.sampling import FastSampler, load_generator
    from gan.video_io import to_uint8, write_mp4
    G, info = load_generator(args.checkpoint)
    outdir = Path(args.outdir or tempfile.mkdtemp(prefix="reelgan-int8q-"))
    seeds = list(range(args.num))
    clips = {}
    for precision in ("fp32", "int8"):
        sampler = FastSampler(G, precision=precision, chunk=args.frames)
        clips[precision] = torch.cat([sampler.render(seeds[i:i + args.batch], args.frames)
                                      for i in range(0, len(seeds), args.batch)])
        (outdir / precision).mkdir(parents=True, exist_ok=True)
        for s, clip in zip(seeds, clips[precision]):
            write_mp4(outdir / precision / f"seed{s:04d}.mp4", to_uint8(clip), fps=info["config"].data.fps)
    mse = ((clips["int8"] - clips["fp32"]) ** 2).mean(dim=(1, 2, 3, 4))
    psnr = [10 * math.log10(4.0 / float(m)) for m in mse]            # frames in [-1, 1]
    psnr_all = 10 * math.log10(4.0 / float(mse.mean()))
    fvd = {}
    for precision in ("fp32", "int8"):
        out = outdir / f"fvd_{precision}.json"
        subprocess.run([sys.executable, "-m", "gan.metrics", "--videos", str(outdir / precision), "--data", args.data,
                        "--resolution", str(G.resolution), "--metrics", "fvd16", "--num", str(args.num), "--quiet",
                        "--out", str(out)], check=True, cwd=ROOT)
        fvd[precision] = json.loads(out.read_text())
    result = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine_info(),
              "checkpoint": args.checkpoint, "data": args.data, "num": args.num, "frames": args.frames,
              "psnr_db": {"all_frames": psnr_all, "clip_mean": sum(psnr) / len(psnr), "clip_min": min(psnr),
                          "clip_max": max(psnr)}, "fvd16": fvd}
    print(json.dumps(result, indent=1))
    path = ROOT / "bench" / "results" / f"int8_quality-{dt.datetime.now().strftime('%Y-%m-%d-%H%M')}.json"
    path.write_text(json.dumps(result, indent=1))
    print("wrote", path)


if __name__ == "__main__":
    main()
