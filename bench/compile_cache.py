"""The compiled sampler's start and speed with its packages kept on disk (gan/sampling/aot.py), against compiling in
the process (REELGAN_COMPILE_CACHE=0, what every run did before).

    PYTHONPATH=$PWD python bench/compile_cache.py --cells lite:128:bf16:1,lite:128:bf16:4,default:64:bf16:16

Per cell, `--starts` fresh processes of each kind, interleaved, time the first chunk from the sampler's creation and
then the steady frames/s: compiled in the process, compiled ahead of time into an empty cache (the first run on a
machine), and loaded from that cache (every later run). Each kind renders in its own processes: a compile in a
process was seen to slow what else that process renders. Random weights (the frames are not judged: the paths
render the same graph). Prints JSON and writes bench/results/compile_cache-<date>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _summary(v):
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


def _sampler(config, res, precision, batch, cached):
    sys.path.insert(0, str(ROOT / "bench"))
    from cells import build_G
    from gan.sampling import FastSampler
    G = build_G(config, res)
    if not cached:
        os.environ["REELGAN_COMPILE_CACHE"] = "0"
    t0 = time.perf_counter()
    s = FastSampler(G, chunk=batch, precision=precision, compile=True)
    os.environ.pop("REELGAN_COMPILE_CACHE", None)
    return s, t0


def start(config, res, precision, batch, cached, rounds, min_time=1.0) -> dict:
    """One fresh process: seconds from the sampler's creation to its first chunk, then its steady frames/s (the
    median of `rounds` rounds)."""
    import torch
    s, t0 = _sampler(config, res, precision, batch, cached)
    t = torch.arange(batch, dtype=torch.float64)
    w, x, img = s.prepare([0])
    v = s.motion([0], t, w)
    s.frames((w, x, img), v)
    first = time.perf_counter() - t0
    rates = []
    for _ in range(rounds):
        t1, n = time.perf_counter(), 0
        while time.perf_counter() - t1 < min_time:
            s.frames((w, x, img), v)
            n += 1
        rates.append(n * batch / (time.perf_counter() - t1))
    fn = s._fn
    return {"first_chunk_s": first, "fps": statistics.median(rates), "loaded": getattr(fn, "loaded", 0),
            "written": getattr(fn, "written", 0)}


def child(args) -> None:
    import torch
    torch.set_num_threads(args.threads)
    config, res, precision, batch = args.cell.split(":")
    res, batch = int(res), int(batch)
    out = start(config, res, precision, batch, args.child == "aot", args.rounds)
    print("RESULT " + json.dumps(out), flush=True)


def run_child(kind, cell, args, env) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--cell", cell, "--threads", str(args.threads),
           "--rounds", str(args.rounds)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT))
    wall = time.perf_counter() - t0
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return {**json.loads(line[7:]), "process_s": wall}
    return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="lite:128:bf16:1,lite:128:bf16:4,default:64:bf16:16",
                    help="config:resolution:precision:frames per call, comma separated")
    ap.add_argument("--starts", type=int, default=3, help="fresh processes per kind of start")
    ap.add_argument("--rounds", type=int, default=5, help="1 s rounds of steady rendering per process")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", choices=("aot", "jit"), help=argparse.SUPPRESS)
    ap.add_argument("--cell", help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.child:
        return child(args)
    sys.path.insert(0, str(ROOT / "bench"))
    from run import machine_info
    results = {}
    for cell in args.cells.split(","):
        with tempfile.TemporaryDirectory(prefix="reelgan-bench-cache-") as cache:
            env = {**os.environ, "REELGAN_CACHE": cache, "PYTHONPATH": str(ROOT)}
            runs = {"compiled in the process": [], "compiled ahead of time (empty cache)": [],
                    "loaded from the cache": []}
            for _ in range(args.starts):                 # interleaved: the machine's load falls on all three
                runs["compiled in the process"].append(run_child("jit", cell, args, env))
                for p in (Path(cache) / "compiled").glob("*.pt2"):
                    p.unlink()
                runs["compiled ahead of time (empty cache)"].append(run_child("aot", cell, args, env))
                runs["loaded from the cache"].append(run_child("aot", cell, args, env))
            bad = [r["error"] for v in runs.values() for r in v if "error" in r]
            if bad:
                results[cell] = {"error": bad[0]}
                print(cell, "error:", bad[0], flush=True)
                continue
            if any(r["loaded"] != 1 for r in runs["loaded from the cache"]):
                results[cell] = {"error": "a start meant to load the package compiled instead"}
                print(cell, results[cell]["error"], flush=True)
                continue
            jit, hit = runs["compiled in the process"], runs["loaded from the cache"]
            r = {"first_chunk_s": {k: _summary([x["first_chunk_s"] for x in v]) for k, v in runs.items()},
                 "process_s": {k: _summary([x["process_s"] for x in v]) for k, v in runs.items()},
                 "steady_fps": {k: _summary([x["fps"] for x in v]) for k, v in runs.items()},
                 "steady_loaded_over_in_process": _summary([b["fps"] / a["fps"] for a, b in zip(jit, hit)])}
        results[cell] = r
        fc, st, ra = r["first_chunk_s"], r["steady_fps"], r["steady_loaded_over_in_process"]
        print(f"{cell}: first chunk " + ", ".join(f"{k} {v['median']:.2f} s ({v['min']:.2f}-{v['max']:.2f})"
                                                  for k, v in fc.items()), flush=True)
        print(f"{cell}: steady " + ", ".join(f"{k} {v['median']:.1f} ({v['min']:.1f}-{v['max']:.1f}) frames/s"
                                             for k, v in st.items())
              + f"; loaded / in-process {ra['median']:.2f}x ({ra['min']:.2f}-{ra['max']:.2f})", flush=True)
    out = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine_info(),
           "threads": args.threads, "starts": args.starts, "rounds": args.rounds, "results": results}
    path = ROOT / "bench" / "results" / f"compile_cache-{dt.datetime.now().strftime('%Y-%m-%d-%H%M')}.json"
    path.write_text(json.dumps(out, indent=1))
    print("wrote", path)


if __name__ == "__main__":
    main()
