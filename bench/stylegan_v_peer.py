"""reelgan's StyleGAN-V-shaped generators against StyleGAN-V's own (Skorokhodov et al. 2022) at 128 px: frames/s
side by side in one process on this CPU, interleaved per round, as ratios to the peer.

\b
  git clone https://github.com/universome/stylegan-v && git -C stylegan-v checkout 3fecd69
  pip install omegaconf                                  # the peer's config library (not a reelgan dependency)
  python bench/stylegan_v_peer.py --peer stylegan-v      # ~10 minutes on 2 cores; --compile adds ~3 per graph
  python bench/stylegan_v_peer.py --peer stylegan-v --onnx stylegan_v128 --precisions fp32   # + ONNX Runtime

Both sides render one video in chunks of `batch` frames after their per-video work: the peer maps z once and
runs its synthesis network per chunk (motion codes fixed, the motion mapping per chunk, as its synthesis does,
noise 'const'), in fp32 eager with its CPU reference ops, as its code runs on a CPU; reelgan renders through
FastSampler (its fast path: content once per video); --onnx adds the exported graph on ONNX Runtime fp32, which
recomputes the per-video work in every call (gan/onnx_export.py). Every contestant gets the same threads. Writes
bench/results/stylegan_v_peer-<date>.json.
"""
from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import click
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# reelgan contestants: name -> (config file, G overrides). 'dense': the up-convs at the output size after FIR
# upsampling (41.9 GFLOPs per frame); the preset: StyleGAN2's transposed up-convs (22.6); 'fast': the blocks up to
# 32 px once per video (14.6); 'separable': 1x1 + depthwise kernels from 8 px up (2.8; from 16 px: 3.1).
REELGAN = {"stylegan_v128 dense": ("stylegan_v128.yaml", {"up_conv": "dense"}),    # the preset before issue 30
           "stylegan_v128": ("stylegan_v128.yaml", {}),
           "stylegan_v128_fast": ("stylegan_v128_fast.yaml", {}),
           "stylegan_v128_separable": ("stylegan_v128_separable.yaml", {}),
           "stylegan_v128_separable16": ("stylegan_v128_separable.yaml", {"separable_from": 16})}  # the preset before


def peer_generator(peer: Path, resolution: int):
    """StyleGAN-V's Generator as its train.py builds it below 512 px (fmaps 0.5: channel_base 16384, at most 512
    channels), fp32 (num_fp16_res 0: fp16 is for its GPU kernels), its 'stylegan-v' model config."""
    for p in (str(peer), str(peer / "src")):
        if p not in sys.path:
            sys.path.insert(0, p)
    try:
        from omegaconf import OmegaConf
        from training.networks import Generator
    except ImportError as e:
        raise click.ClickException(f"cannot import StyleGAN-V from {peer} ({e}); pass --peer a checkout of "
                                   f"universome/stylegan-v and pip install omegaconf")
    load = lambda name: OmegaConf.load(peer / "configs" / name)
    root = OmegaConf.create({"dataset": {"c_dim": 0, "fps": 25, "max_num_frames": 1024},
                             "sampling": OmegaConf.merge(load("sampling/base.yaml"), load("sampling/random.yaml")),
                             "model": OmegaConf.merge(load("model/base.yaml"), load("model/stylegan-v.yaml"))})
    cfg = root.model.generator
    G = Generator(c_dim=0, w_dim=cfg.w_dim, img_resolution=resolution, img_channels=3,
                  mapping_kwargs=dict(num_layers=2, cfg=cfg),
                  synthesis_kwargs=dict(channel_base=16384, channel_max=512, num_fp16_res=0, conv_clamp=None),
                  cfg=cfg)
    return G.eval().requires_grad_(False)


def peer_chunks(G, batch: int) -> Callable[[], torch.Tensor]:
    torch.manual_seed(0)
    c = torch.zeros(1, 0)
    ws = G.mapping(torch.randn(1, G.z_dim), c)                      # per video
    motion_z = torch.randn(1, 4096, G.synthesis.motion_encoder.cfg.motion.z_dim)
    state = {"k": 0}

    def chunk():
        t = (torch.arange(batch, dtype=torch.float32) + state["k"] * batch)[None]
        state["k"] += 1
        return G.synthesis(ws, t=t, c=c, motion_z=motion_z, noise_mode="const")
    return chunk


def peer_gflops(G) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    torch.manual_seed(0)
    c = torch.zeros(1, 0)
    ws = G.mapping(torch.randn(1, G.z_dim), c)
    mz = torch.randn(1, 64, G.synthesis.motion_encoder.cfg.motion.z_dim)
    with FlopCounterMode(display=False) as counter:
        G.synthesis(ws, t=torch.zeros(1, 1), c=c, motion_z=mz, noise_mode="const")
    return counter.get_total_flops() / 1e9


def reelgan_generator(name: str, resolution: int):
    from gan.config import load_config
    from gan.networks import build_generator
    file, overrides = REELGAN[name]
    cfg = load_config(str(ROOT / "configs" / file))
    cfg.data.resolution = resolution
    cfg.data.channels = 3                   # RGB, as the peer renders (the presets' built-in data is grey digits)
    for k, v in overrides.items():
        setattr(cfg.G, k, v)
    torch.manual_seed(0)
    return build_generator(cfg).eval().requires_grad_(False), cfg


def onnx_generator(name: str, resolution: int, threads: int, folder: str):
    from gan.onnx_export import export_onnx
    from gan.sampling.onnx_runtime import OnnxGenerator
    G, cfg = reelgan_generator(name, resolution)
    path = Path(folder) / (name.replace(" ", "_") + ".onnx")
    export_onnx(G, cfg, path)
    return OnnxGenerator(path, threads=threads)


def summary(xs: List[float]) -> Dict[str, float]:
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs)}


@click.command(help=__doc__)
@click.option("--peer", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="A checkout of universome/stylegan-v (3fecd69).")
@click.option("--resolution", default=128, show_default=True)
@click.option("--batches", default="1,4", show_default=True, help="Frames per generator call.")
@click.option("--configs", "names", default=",".join(REELGAN), show_default=True)
@click.option("--precisions", default="auto", show_default=True,
              help="reelgan precisions, comma-separated; auto: fp32, plus bf16 where the CPU runs it natively.")
@click.option("--compile", "compile_names", default="", help="reelgan configs to add compiled (fp32 / bf16 as above).")
@click.option("--onnx", "onnx_names", default="", help="reelgan configs to add on ONNX Runtime fp32 (exported here).")
@click.option("--rounds", default=5, show_default=True)
@click.option("--seconds", default=2.0, show_default=True, help="Rendering time per contestant per round.")
@click.option("--threads", default=2, show_default=True)
def main(peer, resolution, batches, names, precisions, compile_names, onnx_names, rounds, seconds, threads):
    from bench.run import machine_info
    from gan.sampling import FastSampler, flops_per_frame
    from gan.sampling.fast import cpu_has_bf16
    torch.set_num_threads(threads)
    precs = ["fp32"] + (["bf16"] if cpu_has_bf16() else []) if precisions == "auto" else precisions.split(",")
    names = [n for n in names.split(",") if n]
    onnx_names = [n for n in onnx_names.split(",") if n]
    unknown = [n for n in names + onnx_names + [n for n in compile_names.split(",") if n] if n not in REELGAN]
    if unknown:
        raise click.ClickException(f"unknown config {unknown[0]!r}; choose from {', '.join(REELGAN)}")
    tmp = tempfile.mkdtemp(prefix="reelgan-peer-")
    Gp = peer_generator(peer, resolution)
    gflops = {"StyleGAN-V": peer_gflops(Gp)}
    Gs = {n: reelgan_generator(n, resolution)[0] for n in names}
    for n in dict.fromkeys(names + onnx_names):
        gflops[n] = flops_per_frame(Gs.get(n) or reelgan_generator(n, resolution)[0], frames=1)["frame"] / 1e9
    onnx = {n: onnx_generator(n, resolution, threads, tmp) for n in onnx_names}
    results = {}
    for batch in (int(b) for b in batches.split(",")):
        contestants = {"StyleGAN-V fp32 eager": peer_chunks(Gp, batch)}
        for n in names:
            for p in precs:
                for comp in ((False, True) if n in compile_names.split(",") else (False,)):
                    chunks = FastSampler(Gs[n], precision=p, compile=comp, chunk=batch).render_chunks([0], None)
                    contestants[f"{n} {p} {'compiled' if comp else 'eager'}"] = lambda c=chunks: next(c)
        for n, og in onnx.items():
            chunks = og.render_chunks([0], None, chunk=batch)
            contestants[f"{n} ONNX Runtime fp32"] = lambda c=chunks: next(c)
        with torch.inference_mode():
            for name, fn in contestants.items():                    # warm-up (and compile)
                t0 = time.perf_counter()
                fn(), fn()
                print(f"b{batch} {name}: warm-up {time.perf_counter() - t0:.1f} s", flush=True)
            fps: Dict[str, List[float]] = {name: [] for name in contestants}
            for r in range(rounds):
                for name, fn in contestants.items():
                    t0, n = time.perf_counter(), 0
                    while time.perf_counter() - t0 < seconds or n == 0:
                        fn()
                        n += 1
                    fps[name].append(n * batch / (time.perf_counter() - t0))
        peer_fps = fps["StyleGAN-V fp32 eager"]
        results[f"b{batch}"] = {name: {"fps": summary(v),
                                       "ratio_to_peer": summary([a / b for a, b in zip(v, peer_fps)])}
                                for name, v in fps.items()}
        print(f"\nbatch {batch} (frames per call), {rounds} rounds x {seconds:.0f} s, {threads} threads:")
        for name, row in results[f"b{batch}"].items():
            f, q = row["fps"], row["ratio_to_peer"]
            print(f"  {name:45s} {f['median']:7.2f} ({f['min']:.2f}-{f['max']:.2f}) frames/s   "
                  f"x{q['median']:.2f} ({q['min']:.2f}-{q['max']:.2f})", flush=True)
    out = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine_info(), "threads": threads,
           "resolution": resolution, "rounds": rounds, "seconds": seconds, "gflops_per_frame": gflops,
           "results": results}
    path = ROOT / "bench" / "results" / f"stylegan_v_peer-{dt.datetime.now().strftime('%Y-%m-%d-%H%M')}.json"
    path.write_text(json.dumps(out, indent=1))
    print("GFLOP per frame:", {k: round(v, 1) for k, v in gflops.items()}, "\nwrote", path)


if __name__ == "__main__":
    main()
