"""Payload coding of the watermark: raw channel bit errors vs decoded payload bits, v1 (56 uncoded bits) vs v2
(convolutional code, soft Viterbi with ring-gain weighting), after an attack (default H.264 CRF 23).

    OMP_NUM_THREADS=1 python bench/watermark_ecc.py --per-source 6            # 64 px x 16 frames, CRF 23
    OMP_NUM_THREADS=1 python bench/watermark_ecc.py --size 128 --frames 64 --attack crf28

Prints one JSON line per layout (and writes bench/results/watermark-ecc-<date>.json).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from gan import watermark as wm                                          # noqa: E402
from watermark_clips import ATTACKS, source_clip                        # noqa: E402

SOURCES = ["digits", "shapes", "photo", "G:configs/lite.yaml"]
LAYOUTS = {"v1": dict(version=1), "v2-r1/2": dict(version=2, inv_rate=2), "v2-r1/3": dict(version=2, inv_rate=3),
           "v2-r1/3-sync0.35": dict(version=2, inv_rate=3, sync_share=0.35),
           "v2-r1/2-sync0.35": dict(version=2, inv_rate=2, sync_share=0.35),
           "v2-r1/3-flat": dict(version=2, inv_rate=3, rings=())}       # no ring weighting: all bins alike


def capacity_bits(attacked, mark):
    """An upper bound on what the payload bins could carry on this clip: with the true pattern known, each
    frequency ring's mean whitened term a and its spread s give a Gaussian channel per bin, capacity
    0.5 * log2(1 + a^2 / s^2) (Shannon); summed over the payload bins (no shift: CRF-only attacks)."""
    keys = mark.keys
    coef = wm._spectrum(wm._fold(wm.prepare(attacked)))
    sign = np.where(keys.group < 0, 1.0, (2.0 * wm.channel_bits(mark.payload, keys.version) - 1)[np.maximum(
        keys.group, 0)])
    t = np.real(coef * np.conj(keys.phase)) * sign
    fy, fx = wm._BINS
    ring = np.digitize(np.hypot(np.fft.fftfreq(wm.TILE)[fy] * wm.TILE, fx), wm.RINGS)
    total = 0.0
    for k in range(len(wm.RINGS) + 1):
        m = ring == k
        a, v = t[m].mean(), max(t[m].var(), 1e-6)
        total += np.sum(m & (keys.group >= 0)) * 0.5 * np.log2(1.0 + max(a, 0.0) ** 2 / v)
    return float(total)


def run(layout, clips, attack, payload):
    wm.INV_RATE = layout.get("inv_rate", wm.INV_RATE)
    wm.V2_SYNC_SHARE = layout.get("sync_share", 0.5)
    wm.RINGS = layout.get("rings", (6.0, 8.0, 10.0, 12.0, 14.0))
    mark = wm.Watermarker(payload=payload, version=layout["version"])
    ref = wm.coded_bits(payload)[:wm.PAYLOAD_BITS]
    rows = []
    for src, clip in clips:
        attacked = ATTACKS[attack](mark.embed(clip))
        det = wm.detect(attacked, versions=(layout["version"],))
        bits = wm.decoded_bits(det)
        acc = float(np.mean(bits == ref)) if bits is not None else None
        if det.version == 1 and bits is not None:
            raw = 1.0 - acc
        elif det.channel_bit_errors is not None:
            raw = det.channel_bit_errors / wm.channel_length(2)
        else:
            raw = None
        rows.append(dict(source=src, detected=bool(det.detected), z=det.z, bit_acc=acc, raw_ber=raw,
                         valid=bool(det.payload_valid), capacity=capacity_bits(attacked, mark),
                         exact=bits is not None and bool(np.all(bits == ref))))
    det = [r for r in rows if r["detected"]]
    out = {"n": len(rows), "detected": len(det) / len(rows),
           "bit_acc_all": float(np.mean([r["bit_acc"] if r["detected"] else 0.5 for r in rows])),
           "bit_acc_detected": float(np.mean([r["bit_acc"] for r in det])) if det else None,
           "raw_channel_ber_detected": float(np.mean([r["raw_ber"] for r in det])) if det else None,
           "payload_exact": float(np.mean([r["exact"] for r in rows])),
           "crc_valid": float(np.mean([r["valid"] for r in rows])),
           "crc_valid_but_wrong": int(sum(r["valid"] and not r["exact"] for r in rows))}
    out["capacity_bits_per_source_median"] = {s: float(np.median([r["capacity"] for r in rows if r["source"] == s]))
                                              for s in SOURCES}
    out["per_source_bit_acc"] = {s: float(np.mean([r["bit_acc"] if r["detected"] else 0.5 for r in rows
                                                   if r["source"] == s])) for s in SOURCES}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--per-source", type=int, default=6)
    ap.add_argument("--attack", default="crf23", choices=sorted(ATTACKS))
    ap.add_argument("--layouts", default=",".join(LAYOUTS))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    clips = [(s, source_clip(s, i, args.size, args.frames)) for s in SOURCES for i in range(args.per_source)]
    payload = wm.make_payload(0x1234ABCD, 7)
    doc = {"meta": {"command": "OMP_NUM_THREADS=1 python bench/watermark_ecc.py " + " ".join(argv or sys.argv[1:]),
                    "date": str(date.today()), "size": args.size, "frames": args.frames, "attack": args.attack}}
    for name in args.layouts.split(","):
        doc[name] = run(LAYOUTS[name], clips, args.attack, payload)
        print(json.dumps({"layout": name, **doc[name]}), flush=True)
    doc["meta"]["total_s"] = time.time() - t0
    tag = args.layouts.replace(",", "_").replace("/", "")
    out = ROOT / "bench" / "results" / f"watermark-ecc-{args.size}-{args.attack}-{tag}-{date.today()}.json"
    out.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
