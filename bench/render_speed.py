"""ClipRenderer frames/s of randomly initialised generators (speed does not depend on the weights), for side-by-side
comparisons of two checkouts: run it alternately from each, e.g.

    for r in 1 2 3; do for t in ../old .; do (cd $t && OMP_NUM_THREADS=1 PYTHONPATH=$PWD \
        python $OLDPWD/bench/render_speed.py --cell default:64:fp32:16); done; done

A fifth field overrides G fields, e.g. lite:128:fp32:16:up_conv=transposed (several: joined by '+').
Prints one JSON line: {cell: [median, min, max]} frames/s over 5 clips after a warm-up clip."""
import json
import statistics
import sys
import time

import torch


def measure(name: str, res: int, precision: str, chunk: int, frames: int, threads: int, G_set: str = ""):
    from gan.config import load_config
    from gan.networks import build_generator
    from gan.sampling.render import ClipRenderer
    torch.set_num_threads(threads)
    G_over = dict(kv.split("=", 1) for kv in G_set.split("+") if kv)
    cfg = load_config(f"configs/{name}.yaml", {"data": {"resolution": res}, "G": G_over})
    torch.manual_seed(0)
    r = ClipRenderer(build_generator(cfg, 0).eval(), chunk=chunk, precision=None if precision == "eager" else precision)
    for _ in r.render_chunks([0], frames):                        # warm-up
        pass
    rates = []
    for seed in range(1, 6):
        t = time.perf_counter()
        for _ in r.render_chunks([seed], frames):
            pass
        rates.append(frames / (time.perf_counter() - t))
    return statistics.median(rates), min(rates), max(rates)


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", action="append", required=True, help="config:px:precision:chunk, e.g. lite:128:fp32:4 (precision 'eager': G itself, generate()'s path)")
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    out = {}
    for cell in a.cell:
        name, res, prec, chunk, *G_set = cell.split(":")
        out[cell] = measure(name, int(res), prec, int(chunk), a.frames, a.threads, *G_set)
    json.dump(out, sys.stdout)
    print()
