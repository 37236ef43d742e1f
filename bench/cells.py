"""One benchmark measurement ("cell") per process: `python bench/cells.py '<json spec>'` prints one JSON line.

A fresh process per cell keeps peak memory (ru_maxrss) and compiled-code caches per measurement, and a
cell that crashes (e.g. an unsupported compiler path) cannot take the others down. Kinds:
- matmul:  float32 and bf16 2048^3 matmul GFLOP/s (the machine's ceilings)
- sampler: FastSampler frames/s for (config, resolution, precision, compile, batch = frames per call)
- stream:  the same through stream_clip (uint8 conversion + raw writes to /dev/null), batch 1
- train:   one training step (Dmain + Gmain + both optimizer steps), eager or torch.compile'd modules
- int8:    PT2E int8 attempt (bench/int8_pt2e.py)
Every timing is a median over `repeats` runs after warm-up, with min and max.
"""
from __future__ import annotations

import json
import math
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: KiB


def build_G(config: str, res: int):
    from gan.config import load_config
    from gan.networks import build_generator
    data = {"resolution": res, **({"channels": 3} if config.startswith("stylegan_v") else {})}  # RGB, as the peer
    cfg = load_config(str(ROOT / "configs" / f"{config}.yaml"), {"data": data})
    torch.manual_seed(0)
    return build_generator(cfg).eval().requires_grad_(False)


def timed_runs(step, frames_per_step: int, repeats: int, min_time: float):
    """Calls of `step` grouped into runs of >= min_time seconds; frames/s per run."""
    t0 = time.perf_counter()
    step()
    one = time.perf_counter() - t0
    n = max(1, math.ceil(min_time / max(one, 1e-6)))
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        rates.append(n * frames_per_step / (time.perf_counter() - t0))
    return rates, n


def cell_matmul(spec):
    out = {}
    for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(2048, 2048, dtype=dt), torch.randn(2048, 2048, dtype=dt)
        for _ in range(3):
            a @ b
        rates = []
        for _ in range(spec["repeats"] * 2):
            t0 = time.perf_counter()
            a @ b
            rates.append(2 * 2048 ** 3 / (time.perf_counter() - t0) / 1e9)
        out[name] = summary(rates)
    return {"gflops": out}


def cell_sampler(spec):
    from gan.sampling import FastSampler, flops_per_frame, param_count
    G = build_G(spec["config"], spec["res"])
    cost = flops_per_frame(G, frames=1)
    batch = spec["batch"]
    sampler = FastSampler(G, precision=spec["precision"], compile=spec["compile"], chunk=batch)
    chunks = sampler.render_chunks([0], None)                   # one endless clip, `batch` frames per call
    t0 = time.perf_counter()
    next(chunks)                                                # compiles here when compile=True
    first = time.perf_counter() - t0
    next(chunks)
    rates, n = timed_runs(lambda: next(chunks), batch, spec["repeats"], spec["min_time"])
    fps = summary(rates)
    return {"fps": fps, "gflops_per_frame": cost["frame"] / 1e9, "content_gflops": cost["content"] / 1e9,
            "achieved_gflops": fps["median"] * cost["frame"] / 1e9, "params_m": param_count(G) / 1e6,
            "first_call_s": first, "compile_s": max(0.0, first - batch / fps["median"]) if spec["compile"] else 0.0,
            "calls_per_run": n}


def cell_stream(spec):
    from gan.sampling import FastSampler, flops_per_frame, stream_clip
    from gan.video_io import RawWriter
    G = build_G(spec["config"], spec["res"])
    cost = flops_per_frame(G, frames=1)
    sampler = FastSampler(G, precision=spec["precision"], compile=spec["compile"], chunk=spec["batch"])
    with open(os.devnull, "wb") as sink:
        writer = RawWriter(sink)
        t0 = time.perf_counter()
        stream_clip(sampler, 0, writer, 2 * spec["batch"], fps=16.0)      # warm-up (and compile)
        first = time.perf_counter() - t0
        # Each run is a fresh clip: per-video mapping/content, then chunks, uint8 conversion, raw writes.
        frames = max(spec["batch"], int(spec.get("frames", 64)))
        rates = [stream_clip(sampler, 1 + r, writer, frames, fps=16.0)["fps"] for r in range(spec["repeats"])]
    fps = summary(rates)
    return {"fps": fps, "gflops_per_frame": cost["frame"] / 1e9, "achieved_gflops": fps["median"] * cost["frame"] / 1e9,
            "first_call_s": first, "frames_per_run": frames}


def cell_train(spec):
    """A minimal replica of gan.training.loop.step: Dmain (+ D optimizer step), then Gmain
    (+ G optimizer step), with the loop's optimizers, autocast and (optionally) torch.compile'd modules.
    Data are random tensors of the real batch shape (the loop loads them in worker processes); lazy R1
    (every r1_interval steps, eager by design) and the EMA update are left out."""
    from gan.config import load_config
    from gan.networks import build_discriminators, build_generator
    from gan.training.run import autocast_for, make_optimizers
    from losses import Batch, ClipAugment, VideoGANLoss
    cfg = load_config(str(ROOT / "configs" / f"{spec['config']}.yaml"))
    torch.manual_seed(0)
    G = build_generator(cfg)
    D_image, D_video = build_discriminators(cfg)
    for m in (G, D_image, D_video):
        m.to(memory_format=torch.channels_last)
    opt_G, opt_D = make_optimizers(cfg, G, D_image, D_video)
    wrap = torch.compile if spec["compile"] else (lambda m: m)
    loss = VideoGANLoss(wrap(G), wrap(D_image), wrap(D_video), ClipAugment(cfg.loss.augment, cfg.loss.augment_prob),
                        cfg.D.image_frames, cfg.loss.image_weight, cfg.loss.video_weight, cfg.loss.r1_gamma,
                        autocast_for(cfg.train.precision, torch.device("cpu")))
    b, t, r = cfg.train.batch, cfg.data.clip_frames, cfg.data.resolution
    gen = torch.Generator().manual_seed(1)

    def batch():
        times = torch.arange(t, dtype=torch.float32)[None].repeat(b, 1) * 2
        gen_times = torch.rand(b, 1, generator=gen) * 2 * cfg.G.motion_period + times
        return Batch(real=torch.rand(b, t, cfg.data.channels, r, r, generator=gen) * 2 - 1, times=times, real_c=None,
                     z=torch.randn(b, G.z_dim, generator=gen), gen_c=None, gen_times=gen_times,
                     motion=G.sample_motion(b, float(gen_times.max()), generator=gen))

    def step():
        data = batch()
        G.requires_grad_(False), D_image.requires_grad_(True), D_video.requires_grad_(True)
        opt_D.zero_grad(set_to_none=True)
        loss.accumulate_gradients("Dmain", data)
        opt_D.step()
        G.requires_grad_(True), D_image.requires_grad_(False), D_video.requires_grad_(False)
        opt_G.zero_grad(set_to_none=True)
        loss.accumulate_gradients("Gmain", data)
        opt_G.step()

    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    for _ in range(spec.get("warmup", 2)):
        step()
    rates = []
    for _ in range(spec["repeats"]):
        t0 = time.perf_counter()
        step()
        rates.append(1.0 / (time.perf_counter() - t0))
    sps = summary(rates)
    return {"steps_per_s": sps, "clips_per_s": sps["median"] * b, "first_step_s": first,
            "compile_s": max(0.0, first - 1.0 / sps["median"]) if spec["compile"] else 0.0,
            "batch": b, "precision": cfg.train.precision}


def cell_int8(spec):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from int8_pt2e import measure_int8
    return measure_int8(build_G(spec["config"], spec["res"]), spec["batch"], spec["repeats"], spec["min_time"])


CELLS = {"matmul": cell_matmul, "sampler": cell_sampler, "stream": cell_stream, "train": cell_train,
         "int8": cell_int8}


def main():
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(spec.get("threads") or os.cpu_count() or 1)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        result = CELLS[spec["kind"]](spec)
        result["ok"] = True
    except Exception as e:  # a failed cell is a result too (e.g. a compiler path this stack lacks)
        first_line = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        result = {"ok": False, "error": f"{type(e).__name__}: {first_line}"}
    result.update({"spec": spec, "wall_s": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(),
                   "threads": torch.get_num_threads(), "loadavg_start": load0, "loadavg_end": os.getloadavg()[0]})
    print("CELL_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
