"""FVD16 with the Kinetics-400 I3D on the default job's data: I3D throughput, the floor of an untrained
generator (configs/default.yaml, seed 0, no training step), and real vs real (an independent draw of the
same data: the best a generator can reach at this clip count).

    OMP_NUM_THREADS=2 python bench/fvd_i3d.py --num 128 --out bench/results/fvd_i3d.json

At fewer than 2048 clips FVD is biased upwards (covariances of 400-d features from N clips): numbers at
N < 2048 compare only with numbers at the same N.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.clip_sources import DatasetClips, GeneratorClips  # noqa: E402
from gan.metrics.evaluate import MetricOptions, compute_metrics  # noqa: E402
from gan.metrics.features import build_extractor  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def throughput(batch: int, reps: int) -> dict:
    """I3D clips/s on 16-frame 64 px uint8 clips (resize to 224 included), min/median/max of `reps` batches."""
    ex = build_extractor("i3d")
    clips = np.random.default_rng(0).integers(0, 256, (batch, 16, 64, 64, 3), dtype=np.uint8)
    ex(clips[:1])                                                     # warm-up
    rates = []
    for _ in range(reps):
        t0 = time.perf_counter()
        ex(clips)
        rates.append(batch / (time.perf_counter() - t0))
    return {"batch": batch, "clips_per_s": {"min": min(rates), "median": float(np.median(rates)),
                                            "max": max(rates)}, "threads": torch.get_num_threads()}


def untrained_checkpoint(path: Path) -> Path:
    from gan.checkpoint import FORMAT_VERSION, save_atomic
    from gan.config import load_config
    from gan.networks import build_generator
    cfg = load_config(str(ROOT / "configs" / "default.yaml"))
    torch.manual_seed(cfg.train.seed)
    G = build_generator(cfg).eval()
    save_atomic({"format_version": FORMAT_VERSION, "config": cfg.to_dict(), "G_ema": G.state_dict(), "c_dim": 0,
                 "step": 0}, path)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=int, default=128, help="real and fake clips")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--skip-fvd", action="store_true", help="throughput only")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    report = {"machine": "2-core AMD EPYC, shared with other jobs", "torch": torch.__version__,
              "throughput": throughput(8, args.reps)}
    print(json.dumps(report["throughput"]), flush=True)
    if not args.skip_fvd:
        opts = MetricOptions(num_real=args.num, num_fake=args.num, progress=False)
        with tempfile.TemporaryDirectory() as tmp:
            fake = GeneratorClips(str(untrained_checkpoint(Path(tmp) / "untrained.pt")), "cpu")
            real = DatasetClips.from_config(fake.config.data, content_seed=fake.config.train.seed)
            t0 = time.time()
            r = compute_metrics(["fvd16"], fake, real, fake.resolution, opts)
            report["untrained_vs_real"] = {"fvd16": r["results"]["fvd16"]["value"], "summary": r["summary"],
                                           "seconds": round(time.time() - t0, 1)}
            print(r["summary"], flush=True)
            other = DatasetClips.from_config(fake.config.data, content_seed=fake.config.train.seed + 1)
            other.seed_offset = 1                                     # another draw and order, as the CLI does
            r2 = compute_metrics(["fvd16"], other, real, fake.resolution, opts)
            report["real_vs_real"] = {"fvd16": r2["results"]["fvd16"]["value"], "summary": r2["summary"]}
            report["network"] = r["results"]["fvd16"]["network"]
            print(r2["summary"], flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
