"""The sampler's compiled path with inductor freezing as a torch.compile option (what it did before) against
freezing set in the config while the graph compiles (gan.ops.frozen, what it does now): frames/s side by side.

    PYTHONPATH=$PWD python bench/freezing_ab.py stylegan_v128 128 1

Two FastSamplers (bf16, compiled) of one G; 9 interleaved rounds of 10 calls each; prints the medians (min-max) and
the per-round ratio.
"""
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cells import build_G  # noqa: E402
from gan.ops import compile_fn  # noqa: E402
from gan.sampling import FastSampler  # noqa: E402

cfg, res, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
G = build_G(cfg, res)
a_s = FastSampler(G, chunk=chunk, precision="bf16", compile=True)
a_s._fn = compile_fn(a_s.renderer, options={"freezing": True})          # the option (before)
b_s = FastSampler(G, chunk=chunk, precision="bf16", compile=True)        # gan.ops.frozen (now)
t = torch.arange(chunk, dtype=torch.float64)
with torch.inference_mode():
    fs = {}
    for name, s in (("options", a_s), ("frozen", b_s)):
        w, x, img = s.prepare([0])
        args = (w, x, img, s.motion([0], t, w))
        t0 = time.perf_counter()
        out = s._render(*args)
        print(name, "first call s", round(time.perf_counter() - t0, 1))
        fs[name] = (s, args, out)
    print("max diff", float((fs["options"][2] - fs["frozen"][2]).abs().max()))
    r = {k: [] for k in fs}
    for _ in range(9):
        for k, (s, args, _) in fs.items():
            t0 = time.perf_counter()
            for _ in range(10):
                s._render(*args)
            r[k].append(10 * chunk / (time.perf_counter() - t0))
    rat = [b / a for a, b in zip(r["options"], r["frozen"])]
    print(cfg, res, chunk, {k: (round(statistics.median(v), 1), round(min(v), 1), round(max(v), 1)) for k, v in r.items()},
          "frozen/options", round(statistics.median(rat), 3), round(min(rat), 3), round(max(rat), 3))
