"""ONNX Runtime streaming with the one chunk graph against the per-video / per-frame pair (reelgan-export --split):
frames/s side by side in one process, interleaved per round, one intra-op thread each; and the largest difference
between their frames (the same function split in two: float32 rounding only).

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python bench/onnx_split.py --configs lite:128,default:64,stylegan_v128:128

Each sample renders one clip of --frames frames in chunks of --chunk (the per-video work: once per clip with the
pair, once per chunk with the one graph). Randomly initialised weights (speed does not depend on them). Prints JSON
and writes bench/results/onnx_split-<date>.json.
"""
import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="lite:128,default:64")
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--chunks", default="4,16")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    from bench.run import machine_info
    from gan.config import load_config
    from gan.networks import build_generator
    from gan.onnx_export import export_onnx
    from gan.sampling.onnx_runtime import OnnxGenerator
    torch.set_num_threads(1)
    results = {}
    for item in args.configs.split(","):
        name, res = item.split(":")
        cfg = load_config(str(ROOT / "configs" / f"{name}.yaml"), {"data": {"resolution": int(res)}})
        torch.manual_seed(0)
        G = build_generator(cfg, 0).eval()
        d = Path(tempfile.mkdtemp(prefix="reelgan-split-"))
        export_onnx(G, cfg, d / "G.onnx", split=True)
        split = OnnxGenerator(d / "G.onnx", threads=1)
        whole = OnnxGenerator(d / "G.onnx", threads=1)
        whole.split = None
        for chunk in (int(c) for c in args.chunks.split(",")):
            runs = {"one graph": whole, "split": split}
            diff = float((whole.render([3], args.frames, chunk=chunk) - split.render([3], args.frames, chunk=chunk))
                         .abs().max())
            fps = {k: [] for k in runs}
            for r in range(args.rounds):
                for k, og in runs.items():
                    t0 = time.perf_counter()
                    og.render([r], args.frames, chunk=chunk)
                    fps[k].append(args.frames / (time.perf_counter() - t0))
            ratio = [a / b for a, b in zip(fps["split"], fps["one graph"])]
            row = {k: {"median": statistics.median(v), "min": min(v), "max": max(v)} for k, v in fps.items()}
            row["split / one graph"] = {"median": statistics.median(ratio), "min": min(ratio), "max": max(ratio)}
            row["max_abs_diff"] = diff
            results[f"{name} {res}px chunk {chunk}"] = row
            print(f"{name} {res}px chunk {chunk}: " + ", ".join(
                f"{k} {v['median']:.2f} ({v['min']:.2f}-{v['max']:.2f})" for k, v in row.items() if k != "max_abs_diff")
                + f", max |diff| {diff:.1e}", flush=True)
    out = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine_info(), "frames": args.frames,
           "rounds": args.rounds, "results": results}
    path = ROOT / "bench" / "results" / f"onnx_split-{dt.datetime.now().strftime('%Y-%m-%d-%H%M')}.json"
    path.write_text(json.dumps(out, indent=1))
    print("wrote", path)


if __name__ == "__main__":
    main()
