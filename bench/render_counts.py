"""Counts, not timings, of one checkout's eager chunk rendering, for comparing two trees on a machine too busy to
time: run it from each tree and diff the JSON (BENCHMARKS.md, "Sampling before and after the front-doors refactor").

    cd TREE && OMP_NUM_THREADS=1 PYTHONPATH=$PWD python $OLDPWD/bench/render_counts.py --out counts.json
    cd TREE && PYTHONPATH=$PWD python $OLDPWD/bench/render_counts.py --quick --threads 2   # one JSON line

The cell is bench/render_speed.py's (a config at a resolution, built after torch.manual_seed(0), rendered by
ClipRenderer.render_chunks, one seed per clip). Per clip: getrusage deltas (user / system CPU seconds, minor page
faults, voluntary and involuntary context switches), Python GC passes and, with bench/gomp_count.c LD_PRELOADed,
OpenMP parallel regions. Once: the state the per-chunk call runs under (threads, grad mode, denormals, oneDNN), the
torch profiler's ops with input shapes and cProfile's Python calls of one clip, the loaded modules and shared
libraries, and checksums of the frames (the same weights and seeds must give the same frames in both trees).
"""
from __future__ import annotations

import argparse
import cProfile
import collections
import ctypes
import gc
import hashlib
import json
import os
import pstats
import resource
import sys
import time

import torch


def _gomp_counter():
    """bench/gomp_count.c's count of OpenMP parallel regions when it is LD_PRELOADed, else None."""
    try:
        fn = ctypes.CDLL(None).gomp_regions
    except AttributeError:
        return None
    fn.restype = ctypes.c_ulong
    return fn


GOMP_REGIONS = _gomp_counter()


def usage() -> dict:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"user_s": r.ru_utime, "sys_s": r.ru_stime, "minflt": r.ru_minflt, "nvcsw": r.ru_nvcsw,
            "nivcsw": r.ru_nivcsw, "wall_s": time.perf_counter(),
            "omp_regions": GOMP_REGIONS() if GOMP_REGIONS else -1,
            **{f"gc{g}": s["collections"] for g, s in enumerate(gc.get_stats())}}


def delta(a: dict, b: dict) -> dict:
    return {k: round(b[k] - a[k], 6) for k in a}


def state_now() -> dict:
    """What the per-chunk call runs under (read from inside it)."""
    tiny = torch.tensor([1e-39], dtype=torch.float32)           # a denormal: 0 after x * 1 when they are flushed
    return {"num_threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
            "grad_enabled": torch.is_grad_enabled(), "inference_mode": torch.is_inference_mode_enabled(),
            "denormals_flushed": bool((tiny * 1.0).item() == 0.0), "mkldnn": torch.backends.mkldnn.enabled,
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "default_dtype": str(torch.get_default_dtype()), "matmul_precision": torch.get_float32_matmul_precision(),
            "GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT"), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")}


def shared_libs() -> list:
    with open("/proc/self/maps") as f:
        return sorted({os.path.basename(line.split()[-1]) for line in f if ".so" in line.split()[-1]})


def build(name: str, res: int, chunk: int, seen: dict):
    from gan.config import load_config
    from gan.networks import build_generator
    from gan.sampling.render import ClipRenderer
    cfg = load_config(f"configs/{name}.yaml", {"data": {"resolution": res}})
    torch.manual_seed(0)
    G = build_generator(cfg, 0).eval()
    r = ClipRenderer(G, chunk=chunk, precision=None)
    frames = r._frames                          # both trees look it up per chunk: record the state inside it

    def recorded(*args):
        if not seen:
            seen.update(state_now())
        return frames(*args)
    r._frames = recorded
    return G, r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="default:64:eager:16", help="config:px:eager:chunk (the eager path only)")
    ap.add_argument("--frames", type=int, default=64, help="frames per clip")
    ap.add_argument("--clips", type=int, default=5, help="counted clips after a warm-up clip")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (0: not called, torch's default; "
                    "the call also turns MKL's dynamic thread choice off)")
    ap.add_argument("--quick", action="store_true", help="getrusage sums only, printed as one JSON line")
    ap.add_argument("--out", default=None, help="the full JSON (without --quick)")
    a = ap.parse_args()
    name, res, prec, chunk = a.cell.split(":")
    if prec != "eager" or (not a.quick and not a.out):
        ap.error("the eager path only (config:px:eager:chunk), and --out unless --quick")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    seen: dict = {}
    G, r = build(name, int(res), int(chunk), seen)

    def clip(seed: int) -> str:
        h = hashlib.sha256()
        for out in r.render_chunks([seed], a.frames):
            h.update(out.contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    clip(0)                                                        # warm-up
    per_clip, sums = [], []
    for seed in range(1, a.clips + 1):
        u0 = usage()
        sums.append(clip(seed))
        per_clip.append(delta(u0, usage()))
    tot = {k: sum(c[k] for c in per_clip) for k in per_clip[0]}
    n = a.frames * a.clips
    summary = {"user_ms_per_frame": 1000 * tot["user_s"] / n, "sys_ms_per_frame": 1000 * tot["sys_s"] / n,
               "wall_ms_per_frame": 1000 * tot["wall_s"] / n, "minflt_per_clip": tot["minflt"] / a.clips,
               "nvcsw_per_clip": tot["nvcsw"] / a.clips, "nivcsw_per_clip": tot["nivcsw"] / a.clips,
               "omp_regions_per_clip": tot["omp_regions"] / a.clips,
               "gc_passes": [tot["gc0"], tot["gc1"], tot["gc2"]], "state": seen, "frames_sha": sums}
    if a.quick:
        print(json.dumps(summary))
        return

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        clip(a.clips + 1)
    ops, by_name = collections.Counter(), collections.Counter()
    for e in prof.events():
        ops[f"{e.name} {e.input_shapes}"] += 1
        by_name[e.name] += 1
    pr = cProfile.Profile()
    pr.enable()
    clip(a.clips + 2)
    pr.disable()
    here = os.getcwd()
    calls = collections.Counter()
    for (f, ln, fn), (cc, nc, tt, ct, callers) in pstats.Stats(pr).stats.items():
        calls[f"{os.path.relpath(f, here) if f.startswith(here) else os.path.basename(f)}:{fn}"] += nc
    weights = hashlib.sha256(b"".join(t.detach().numpy().tobytes() for t in G.state_dict().values())).hexdigest()
    doc = {"cell": a.cell, "tree": here, "params": sum(p.numel() for p in G.parameters()),
           "weights_sha": weights[:16], **summary, "per_clip": per_clip,
           "env": {k: v for k, v in os.environ.items() if k.startswith(("OMP", "GOMP", "KMP", "MKL", "ONEDNN", "DNNL",
                                                                        "ATEN", "LD_"))},
           "modules": sorted(sys.modules), "shared_libs": shared_libs(),
           "profiler_events": sum(ops.values()), "ops_by_name": dict(by_name), "ops_by_shape": dict(ops),
           "py_calls": sum(calls.values()), "py_calls_by_fn": dict(calls)}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
    print(f"{a.cell}: {summary['user_ms_per_frame']:.3f} ms user CPU per frame, {doc['profiler_events']} profiler "
          f"events and {doc['py_calls']} Python calls per clip; state {seen}")


if __name__ == "__main__":
    main()
