"""The field's attack suite against the post-hoc mark (v2 layout), and removal / forgery by averaging clips.

    OMP_NUM_THREADS=1 python bench/watermark_attacks.py                  # ~15 min on 2 shared cores
    OMP_NUM_THREADS=1 python bench/watermark_attacks.py --quick          # a smoke run, not written anywhere

Attacks as in Video Seal's evaluation (Fernandez et al. 2024, "Video Seal: open and efficient video watermarking"):
H.264 and H.265 at CRF 23 / 30 / 40, VP9, a crop to 0.71 of each side combined with brightness x 0.5, per-frame
JPEG, Gaussian blur, frame drops and swaps; encoders are the ffmpeg that imageio-ffmpeg ships (libx264,
libx265, libvpx-vp9; yuv420p). Averaging attack: the mark is the same pattern on every clip of one key and
payload, so the mean high-pass residual of N marked clips estimates it; subtracting that estimate from a fresh
marked clip is removal, adding it to an unmarked clip is forgery (the copy attack, Kutter et al. 2000).

Writes bench/results/watermark-attacks-<date>.json and, unless --quick, the table between the
watermark-attacks markers of BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from gan import watermark as wm                                          # noqa: E402
from watermark_clips import _ffmpeg, h264, source_clip                  # noqa: E402

START, END = "<!-- watermark-attacks:start -->", "<!-- watermark-attacks:end -->"
SOURCES = ["digits", "shapes", "photo", "G:configs/lite.yaml"]


def encode(frames: np.ndarray, codec_args, suffix: str, fps: float = 16.0) -> np.ndarray:
    t, h, w, _ = frames.shape
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "a" + suffix)
        enc = [_ffmpeg(), "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
               "-r", str(fps), "-i", "-", *codec_args, "-pix_fmt", "yuv420p", "-threads", "1", path]
        subprocess.run(enc, input=np.ascontiguousarray(frames).tobytes(), check=True)
        dec = [_ffmpeg(), "-loglevel", "error", "-threads", "1", "-i", path, "-f", "rawvideo", "-pix_fmt",
               "rgb24", "-"]
        raw = subprocess.run(dec, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def h265(v, crf):
    return encode(v, ["-c:v", "libx265", "-crf", str(crf), "-x265-params", "log-level=error:pools=1"], ".mp4")


def vp9(v, crf=30):
    return encode(v, ["-c:v", "libvpx-vp9", "-crf", str(crf), "-b:v", "0", "-cpu-used", "4"], ".webm")


def crop_bright(v, side=0.71, factor=0.5):
    """Centre crop keeping `side` of each side, then brightness x factor (torchvision's adjust_brightness)."""
    _, h, w, _ = v.shape
    ch, cw = int(round(h * side)), int(round(w * side))
    y, x = (h - ch) // 2, (w - cw) // 2
    return np.clip(np.round(v[:, y:y + ch, x:x + cw].astype(np.float32) * factor), 0, 255).astype(np.uint8)


def jpeg(v, quality=50):
    out = []
    for f in v:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, "JPEG", quality=quality)
        out.append(np.asarray(Image.open(buf).convert("RGB")))
    return np.stack(out)


def blur(v, radius=1.0):
    return np.stack([np.asarray(Image.fromarray(f).filter(ImageFilter.GaussianBlur(radius))) for f in v])


def drop(v, share=0.25, seed=0):
    keep = np.sort(np.random.default_rng(seed).permutation(len(v))[:max(1, int(round(len(v) * (1 - share))))])
    return v[keep]


def swap(v, share=0.25, seed=0):
    """Swap `share` of the frames with their next neighbour."""
    v = v.copy()
    rng = np.random.default_rng(seed)
    for i in rng.choice(len(v) - 1, size=max(1, int(len(v) * share / 2)), replace=False):
        v[[i, i + 1]] = v[[i + 1, i]]
    return v


ATTACKS = {
    "none": lambda v: v,
    "h264 crf23": lambda v: h264(v, 23), "h264 crf30": lambda v: h264(v, 30), "h264 crf40": lambda v: h264(v, 40),
    "h265 crf23": lambda v: h265(v, 23), "h265 crf30": lambda v: h265(v, 30), "h265 crf40": lambda v: h265(v, 40),
    "vp9 crf30": vp9,
    "crop0.71+bright0.5": crop_bright,
    "jpeg q50": jpeg,
    "blur r1": blur,
    "drop 25%": drop,
    "swap 25%": swap,
}


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float(10 * np.log10(255 ** 2 / max(mse, 1e-12)))


def suite(size, frames, per_source, mark, log):
    ref = wm.coded_bits(mark.payload)[:wm.PAYLOAD_BITS]
    rows = {a: [] for a in ATTACKS}
    for src in SOURCES:
        for i in range(per_source):
            marked = mark.embed(source_clip(src, i, size, frames))
            for name, attack in ATTACKS.items():
                det = wm.detect(attack(marked))
                bits = wm.decoded_bits(det)
                rows[name].append(dict(detected=bool(det.detected), z=det.z or 0.0,
                                       exact=bits is not None and bool(np.all(bits == ref)),
                                       bits=float(np.mean(bits == ref)) if bits is not None else 0.5))
        log(f"  {size} px: {src} done")
    return {a: {"detected": float(np.mean([r["detected"] for r in rs])), "payload_exact": float(np.mean(
        [r["exact"] for r in rs])), "bit_acc": float(np.mean([r["bits"] for r in rs])),
        "z_median": float(np.median([r["z"] for r in rs])), "n": len(rs)} for a, rs in rows.items()}


def residual(v):
    x = wm.luma(v)[:, None]
    return (x - wm._blur(x, wm.PREFILTER["sigma"]))[:, 0].mean(0).numpy()


def averaging(size, frames, ns, n_eval, mark, log):
    """Removal and forgery with the pattern estimated from N marked clips (other content, same key/payload)."""
    pool = [mark.embed(source_clip(SOURCES[i % 4], 500 + i, size, frames)) for i in range(max(ns))]
    res = np.cumsum([residual(v) for v in pool], axis=0)
    fresh = [source_clip(SOURCES[i % 4], 900 + i, size, frames) for i in range(n_eval)]
    out = {}
    for n in ns:
        est = res[n - 1] / n
        removed, forged = [], []
        for clip in fresh:
            marked = mark.embed(clip)
            att = np.clip(np.round(marked - est[None, ..., None]), 0, 255).astype(np.uint8)
            removed.append((bool(wm.detect(att).detected), psnr(att, marked), psnr(att, clip)))
            fake = np.clip(np.round(clip + est[None, ..., None]), 0, 255).astype(np.uint8)
            forged.append((bool(wm.detect(fake).detected), psnr(fake, clip)))
        out[str(n)] = {"still_detected": float(np.mean([r[0] for r in removed])),
                       "psnr_vs_marked": float(np.median([r[1] for r in removed])),
                       "psnr_vs_original": float(np.median([r[2] for r in removed])),
                       "forgery_detected": float(np.mean([r[0] for r in forged])),
                       "forgery_psnr": float(np.median([r[1] for r in forged])), "n": n_eval}
        log(f"  averaging {size} px: N={n}: {out[str(n)]}")
    return out


def false_positives(n, log):
    """Unmarked 64 px x 16 clips (digits, shapes, photo pans in turn; every 10th after CRF 28): the share whose
    p_false (both layouts searched) is at most p; calibrated when it is at most p."""
    kinds = ["digits", "shapes", "photo"]
    ps = []
    for i in range(n):
        clip = source_clip(kinds[i % 3], 1000 + i, 64, 16)
        ps.append(wm.detect(h264(clip, 28) if i % 10 == 9 else clip).p_false)
    ps = np.array(ps)
    log(f"  unmarked: {n} clips")
    return {"n": n, "rate_at_p": {str(a): float(np.mean(ps <= a)) for a in (1e-3, 1e-2, 1e-1)}}


def _pct(x):
    return f"{100 * x:.0f}%"


def section(doc) -> str:
    m = doc["meta"]
    L = [START, "", f"Command: `{m['command']}`; machine: {m['cpu']} ({m['cores']} cores, shared with other jobs); "
         f"{m['date']}; total {m['total_s']:.0f} s. Mark: post-hoc, v{wm.VERSION} layout, public key, "
         f"payload 1234abcd0007; clips as in \"Watermark\" (digits, shapes, photo pans, untrained lite G).", "",
         "| attack | 64 px x 16: detected | payload exact | bits | z median | 128 px x 64: detected | payload exact "
         "| bits | z median |", "|---|---|---|---|---|---|---|---|---|"]
    a, b = doc["suite"]["64"], doc["suite"]["128"]
    for k in a:
        x, y = a[k], b[k]
        L.append(f"| {k} | {_pct(x['detected'])} | {_pct(x['payload_exact'])} | {_pct(x['bit_acc'])} | "
                 f"{x['z_median']:.1f} | {_pct(y['detected'])} | {_pct(y['payload_exact'])} | {_pct(y['bit_acc'])} | "
                 f"{y['z_median']:.1f} |")
    n64, n128 = next(iter(a.values()))["n"], next(iter(b.values()))["n"]
    L += ["", f"Clips per cell: {n64} (64 px), {n128} (128 px). Detected: p_false < {wm.P_THRESHOLD:g}; payload "
          "exact: all 48 bits right (undetected clips count as wrong); bits: share of the 48 right (undetected: "
          "50%).", "", "Averaging attack (64 px x 16, public key; the pattern estimated from N marked clips of "
          "other content, then subtracted from / added to fresh clips):", "",
          "| N clips averaged | still detected after removal | PSNR removed vs marked | forgery detected on "
          "unmarked clips | forgery PSNR |", "|---|---|---|---|---|"]
    for n, r in doc["averaging"].items():
        L.append(f"| {n} | {_pct(r['still_detected'])} | {r['psnr_vs_marked']:.1f} dB | {_pct(r['forgery_detected'])} "
                 f"| {r['forgery_psnr']:.1f} dB |")
    fp = doc["false_positives"]
    L += ["", f"({next(iter(doc['averaging'].values()))['n']} fresh clips per row.) False positives, both layouts "
          f"searched, {fp['n']} unmarked 64 px clips (every 10th after CRF 28): share with p_false <= "
          + ", ".join(f"{k}: {v:.3f}" for k, v in fp["rate_at_p"].items()) + " (calibrated: at most p).", "", END]
    return "\n".join(L)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--per-source-64", type=int, default=4)
    ap.add_argument("--per-source-128", type=int, default=2)
    ap.add_argument("--unmarked", type=int, default=300, help="unmarked clips for the false-positive check")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    log = lambda s: print(f"[{time.time() - t0:6.0f} s] {s}", flush=True)  # noqa: E731
    mark = wm.Watermarker(payload=wm.make_payload(0x1234ABCD, 7))
    q = args.quick
    doc = {"suite": {}}
    for size, frames, per in ((64, 16, 1 if q else args.per_source_64), (128, 64, 1 if q else args.per_source_128)):
        log(f"suite {size} px x {frames} frames, {per} clips per source")
        doc["suite"][str(size)] = suite(size, frames, per, mark, log)
    doc["averaging"] = averaging(64, 16, (1, 4) if q else (1, 2, 4, 16, 64), 4 if q else 8, mark, log)
    doc["false_positives"] = false_positives(30 if q else args.unmarked, log)
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout
    cmd = "OMP_NUM_THREADS=1 python bench/watermark_attacks.py " + " ".join(argv if argv is not None else sys.argv[1:])
    doc["meta"] = {"command": cmd.strip(), "cpu": cpu.split(":", 1)[-1].strip(), "cores": os.cpu_count(),
                   "date": str(date.today()), "total_s": time.time() - t0}
    out = ROOT / "bench" / "results" / f"watermark-attacks-{date.today()}{'-quick' if q else ''}.json"
    out.write_text(json.dumps(doc, indent=1))
    text = section(doc)
    print(text)
    if not q:
        path = ROOT / "BENCHMARKS.md"
        md = path.read_text()
        md = md[:md.index(START)] + text + md[md.index(END) + len(END):]
        path.write_text(md)
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
