"""Watermark benchmark: robustness, false positives, quality and cost, ours vs invisible-watermark.

    OMP_NUM_THREADS=1 python bench/watermark.py            # full run (~10 min on 2 shared cores)
    OMP_NUM_THREADS=1 python bench/watermark.py --quick    # a small subset while developing

Writes bench/results/watermark-<date>.json and the Watermark section of BENCHMARKS.md (between its markers).
Clips: see bench/watermark_clips.py (built-in digits and shapes, pans over scikit-learn's two bundled photos,
an untrained configs/lite.yaml generator; nothing trained). Baseline: the `invisible-watermark` package's
dwtDct per frame (32-bit payload), per-frame bits averaged over the frames; it has no detector of its own,
so "detected" means at least 26 of the 32 known bits match (binomial false-positive rate 2.7e-4).
"""
from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from gan import watermark as wm                                          # noqa: E402
from watermark_clips import ATTACKS, h264, source_clip                  # noqa: E402

START, END = "<!-- watermark:start -->", "<!-- watermark:end -->"
SOURCES = ["digits", "shapes", "photo", "G:configs/lite.yaml"]
IWM_MIN_MATCH = 26                                                       # of 32 bits


def _stats(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


# ---- baseline: invisible-watermark (dwtDct per frame, bits averaged over frames) ------------------------


class IWM:
    """The package's WatermarkEncoder refuses frames under 256x256, so its dwtDct class (EmbedMaxDct, what
    `encode(..., 'dwtDct')` runs, with the package's default scales) is called directly."""

    def __init__(self, bits):
        from imwatermark.maxDct import EmbedMaxDct
        self.bits = [int(b) for b in bits]
        self.algo = EmbedMaxDct(watermarks=self.bits, wmLen=len(self.bits), scales=[0, 36, 36], block=4)

    def embed(self, frames):
        return np.stack([self.algo.encode(f[..., ::-1].copy())[..., ::-1] for f in frames])

    def detect(self, frames):
        if min(frames.shape[1:3]) < 16:
            return False, 0.0
        soft = np.mean([self.algo.decode(f[..., ::-1].copy()) for f in frames], axis=0)
        acc = float(np.mean((soft > 0.5) == np.array(self.bits, bool)))
        return acc * len(self.bits) >= IWM_MIN_MATCH, acc


# ---- measurements ----------------------------------------------------------------------------------------


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return 10 * np.log10(255 ** 2 / max(mse, 1e-12))


def flicker(v):
    return float(np.mean(np.abs(np.diff(v.astype(np.int16), axis=0))))


def robustness(size, frames, per_source, mark, iwm, iwm_per_source, log):
    ref = wm.coded_bits(mark.payload)[:wm.PAYLOAD_BITS]
    rows = {a: {"ours": [], "ours_bits": [], "ours_z": [], "iwm": [], "iwm_bits": []} for a in ATTACKS}
    quality = {"ours": {"psnr": [], "flicker": []}, "iwm": {"psnr": [], "flicker": []}}
    for src in SOURCES:
        for i in range(per_source):
            clip = source_clip(src, i, size, frames)
            marked = mark.embed(clip)
            quality["ours"]["psnr"].append(psnr(marked, clip))
            quality["ours"]["flicker"].append(flicker(marked) / max(flicker(clip), 1e-9))
            other = iwm.embed(clip) if i < iwm_per_source else None
            if other is not None:
                quality["iwm"]["psnr"].append(psnr(other, clip))
                quality["iwm"]["flicker"].append(flicker(other) / max(flicker(clip), 1e-9))
            for name, attack in ATTACKS.items():
                det = wm.detect(attack(marked))
                rows[name]["ours"].append(bool(det.detected))
                rows[name]["ours_z"].append(det.z if det.z is not None else 0.0)
                bits = wm.decoded_bits(det)
                rows[name]["ours_bits"].append(float(np.mean(bits == ref)) if bits is not None else 0.5)
                if other is not None:
                    found, acc = iwm.detect(attack(other))
                    rows[name]["iwm"].append(found)
                    rows[name]["iwm_bits"].append(acc)
        log(f"  {size} px: {src} done")
    table = {a: {"ours_detect": float(np.mean(r["ours"])), "ours_bit_acc": float(np.mean(r["ours_bits"])),
                 "ours_z_median": float(np.median(r["ours_z"])), "ours_z_min": float(np.min(r["ours_z"])),
                 "n": len(r["ours"]), "iwm_detect": float(np.mean(r["iwm"])) if r["iwm"] else None,
                 "iwm_bit_acc": float(np.mean(r["iwm_bits"])) if r["iwm_bits"] else None, "iwm_n": len(r["iwm"])}
             for a, r in rows.items()}
    q = {k: {m: _stats(v) for m, v in d.items() if v} for k, d in quality.items()}
    return table, q


def false_positives(n, iwm, log):
    """Unmarked clips (64 px x 16 frames): digits, shapes, photo pans, in turn; every 10th also after CRF 28."""
    ps, hits_iwm, n_iwm = [], 0, 0
    kinds = ["digits", "shapes", "photo"]
    for i in range(n):
        clip = source_clip(kinds[i % 3], 1000 + i, 64, 16)
        if i % 10 == 9:
            clip = h264(clip, 28)
        det = wm.detect(clip)
        ps.append(det.p_false)
        if i % 10 == 0:
            hits_iwm += int(iwm.detect(clip)[0])
            n_iwm += 1
        if (i + 1) % 500 == 0:
            log(f"  unmarked: {i + 1}/{n}")
    ps = np.array(ps)
    rates = {str(a): float(np.mean(ps <= a)) for a in (1e-3, 1e-2, 1e-1, 0.5)}
    return {"n": n, "empirical_rate_at_p": rates, "threshold": wm.P_THRESHOLD,
            "iwm_false_detections": hits_iwm, "iwm_n": n_iwm}


def detection_time(mark, repeats):
    torch.set_num_threads(2)
    clip = mark.embed(source_clip("photo", 0, 128, 64))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        wm.detect(clip)
        times.append(time.perf_counter() - t0)
    unmarked = source_clip("photo", 1, 128, 64)                   # no early exit: the full scale search
    full = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        wm.detect(unmarked)
        full.append(time.perf_counter() - t0)
    torch.set_num_threads(1)
    return {"marked_s": _stats(times), "unmarked_full_search_s": _stats(full)}


def embed_rate(mark, repeats):
    frames = np.random.default_rng(0).integers(0, 256, (64, 128, 128, 3), dtype=np.uint8)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        mark.embed(frames)
        rates.append(64 / (time.perf_counter() - t0))
    return _stats(rates)


def stream_rates(frames, repeats, log):
    """generate.py --stream with an untrained configs/lite.yaml checkpoint, with and without the mark."""
    from gan.checkpoint import FORMAT_VERSION
    from gan.config import load_config
    from gan.networks import build_generator
    cfg = load_config(str(ROOT / "configs" / "lite.yaml"))
    torch.manual_seed(0)
    G = build_generator(cfg)
    out = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as d:
        ckpt = Path(d) / "lite.pt"
        torch.save({"format_version": FORMAT_VERSION, "config": cfg.to_dict(), "step": 0, "c_dim": 0,
                    "G_ema": G.state_dict()}, ckpt)
        for r in range(repeats):
            for mode in ("on", "off"):
                cmd = [sys.executable, str(ROOT / "generate.py"), "--checkpoint", str(ckpt), "--stream", "--frames",
                       str(frames), "--stream-to", str(Path(d) / "s.raw"), "--chunk", "8"]
                if mode == "off":
                    cmd.append("--no-watermark")
                env = dict(os.environ, OMP_NUM_THREADS="2")
                res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT))
                m = re.search(r"steady ([0-9.]+) frames/s", res.stderr)
                if not m:
                    raise RuntimeError(f"stream run failed: {res.stderr[-500:]}")
                out[mode].append(float(m.group(1)))
            log(f"  stream run {r + 1}/{repeats}: on {out['on'][-1]:.2f}, off {out['off'][-1]:.2f} frames/s")
    ratios = [a / b for a, b in zip(out["on"], out["off"])]
    return {"on_fps": _stats(out["on"]), "off_fps": _stats(out["off"]), "on_over_off": _stats(ratios)}


# ---- report ----------------------------------------------------------------------------------------------


def _pct(x):
    return "-" if x is None else f"{100 * x:.0f}%"


def section(doc) -> str:
    m = doc["meta"]
    L = [START, "", f"Command: `{m['command']}`; machine: {m['cpu']} ({m['cores']} cores, "
         f"{'shared with other jobs' if m['shared'] else 'idle'}); {m['date']}; total {m['total_s']:.0f} s.",
         f"Clips (nothing trained): {m['clips']}", ""]
    L += ["| attack | 64 px x 16: detected (ours) | bits (ours) | z median / min | detected (iwm) | bits (iwm) | "
          "128 px x 64: detected (ours) | bits (ours) | z median / min | detected (iwm) | bits (iwm) |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    a, b = doc["robustness"]["64"], doc["robustness"]["128"]
    for name in a:
        x, y = a[name], b[name]
        L.append(f"| {name} | {_pct(x['ours_detect'])} | {_pct(x['ours_bit_acc'])} | {x['ours_z_median']:.1f} / "
                 f"{x['ours_z_min']:.1f} | {_pct(x['iwm_detect'])} | {_pct(x['iwm_bit_acc'])} | "
                 f"{_pct(y['ours_detect'])} | {_pct(y['ours_bit_acc'])} | {y['ours_z_median']:.1f} / "
                 f"{y['ours_z_min']:.1f} | {_pct(y['iwm_detect'])} | {_pct(y['iwm_bit_acc'])} |")
    n64, n128 = next(iter(a.values())), next(iter(b.values()))
    L += ["", f"Clips per cell: ours {n64['n']} (64 px) / {n128['n']} (128 px); invisible-watermark "
          f"{n64['iwm_n']} / {n128['iwm_n']}. Detected: p_false < {wm.P_THRESHOLD:g} (ours); >= {IWM_MIN_MATCH}/32 "
          "known bits (iwm). Bits: share of payload bits right (48 ours, 32 iwm).", ""]
    fp = doc["false_positives"]
    L.append(f"False positives on {fp['n']} unmarked 64 px clips (every 10th after CRF 28): share with p_false <= "
             + ", ".join(f"{k}: {v:.4f}" for k, v in fp["empirical_rate_at_p"].items())
             + f" (calibrated: at most the p itself); invisible-watermark {fp['iwm_false_detections']} of "
               f"{fp['iwm_n']}.")
    q = doc["quality"]
    for size in ("64", "128"):
        o, i = q[size]["ours"], q[size].get("iwm", {})
        L.append(f"Quality {size} px: PSNR ours {o['psnr']['median']:.1f} dB (min {o['psnr']['min']:.1f}), "
                 f"flicker ratio {o['flicker']['median']:.3f} ({o['flicker']['min']:.3f}-{o['flicker']['max']:.3f})"
                 + (f"; iwm {i['psnr']['median']:.1f} dB (min {i['psnr']['min']:.1f}), flicker "
                    f"{i['flicker']['median']:.3f} ({i['flicker']['min']:.3f}-{i['flicker']['max']:.3f})" if i else "")
                 + ".")
    t = doc["timing"]
    d, e = t["detect"], t["embed_fps"]
    L.append(f"Detection of a 128 px x 64-frame clip (2 threads): marked {d['marked_s']['median']:.3f} s "
             f"({d['marked_s']['min']:.3f}-{d['marked_s']['max']:.3f}), unmarked (full scale search) "
             f"{d['unmarked_full_search_s']['median']:.3f} s ({d['unmarked_full_search_s']['min']:.3f}-"
             f"{d['unmarked_full_search_s']['max']:.3f}). Embedding alone: {e['median']:.0f} frames/s at 128 px "
             f"({e['min']:.0f}-{e['max']:.0f}).")
    s = t.get("stream")
    if s:
        L.append(f"`generate.py --stream` (untrained lite, 128 px, raw file, 2 threads): with mark "
                 f"{s['on_fps']['median']:.2f} frames/s ({s['on_fps']['min']:.2f}-{s['on_fps']['max']:.2f}), "
                 f"without {s['off_fps']['median']:.2f} ({s['off_fps']['min']:.2f}-{s['off_fps']['max']:.2f}); "
                 f"ratio on/off {s['on_over_off']['median']:.3f} ({s['on_over_off']['min']:.3f}-"
                 f"{s['on_over_off']['max']:.3f}).")
    L += ["", END]
    return "\n".join(L)


def update_benchmarks(text: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    doc = path.read_text()
    if START in doc:
        doc = doc[:doc.index(START)] + text + doc[doc.index(END) + len(END):]
    else:
        doc = doc.rstrip() + "\n\n## Watermark\n" + text + "\n"
    path.write_text(doc)


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a small subset (minutes), not written to BENCHMARKS.md")
    ap.add_argument("--no-stream", action="store_true", help="skip the generate.py --stream comparison")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    log = lambda s: print(f"[{time.time() - t0:6.0f} s] {s}", flush=True)  # noqa: E731
    q = args.quick
    mark = wm.Watermarker(payload=wm.make_payload(0x1234ABCD, 7))
    iwm = IWM(np.random.default_rng(20).integers(0, 2, 32))
    doc = {"robustness": {}, "quality": {}, "timing": {}}
    for size, frames, per, per_iwm in ((64, 16, 3 if q else 25, 2 if q else 5), (128, 64, 1 if q else 10, 1 if q else 2)):
        log(f"robustness {size} px x {frames} frames, {per} clips per source")
        doc["robustness"][str(size)], doc["quality"][str(size)] = robustness(size, frames, per, mark, iwm, per_iwm, log)
    log("false positives")
    doc["false_positives"] = false_positives(150 if q else 2100, iwm, log)
    log("timing")
    doc["timing"]["detect"] = detection_time(mark, 3 if q else 5)
    doc["timing"]["embed_fps"] = embed_rate(mark, 5)
    if not args.no_stream:
        doc["timing"]["stream"] = stream_rates(24 if q else 64, 1 if q else 3, log)
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout
    doc["meta"] = {"command": "OMP_NUM_THREADS=1 python bench/watermark.py" + (" --quick" if q else ""),
                   "cpu": cpu.split(":", 1)[-1].strip() or platform.processor(), "cores": os.cpu_count(),
                   "shared": True, "date": str(date.today()), "total_s": time.time() - t0,
                   "clips": "built-in digits and shapes (gan/data/builtin.py, test split), pans over scikit-learn's "
                            "bundled china.jpg / flower.jpg (`load_sample_images`), and an untrained configs/lite.yaml "
                            "generator (torch seed 0, seeds 0..N; 128 px, resized to 64 px with Pillow bicubic); "
                            "one quarter of the clips from each.",
                   "torch": torch.__version__}
    out = ROOT / "bench" / "results" / f"watermark-{date.today()}{'-quick' if q else ''}.json"
    out.write_text(json.dumps(doc, indent=1))
    text = section(doc)
    print(text)
    if not q:
        update_benchmarks(text)
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
