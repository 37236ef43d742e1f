"""A mark a convolutional generator can carry in its weights (issue 31, route 3): the prototype behind the route-3
measurements in BENCHMARKS.md. The product is gan/watermark_weights.py (`reelgan-watermark mark-weights`, read by
`detect`), with the reader taken to the cepstrum directly (the same statistic, any frame size) and 16383 decoys.

The mark: a keyed linear filter (echo taps at offsets RMIN..RMAX px, key-derived signs, zero DC gain) on the
high-passed luma, which ripples each frame's power spectrum in a keyed way. The reader: Hann-windowed log power
spectra averaged over the frames, their smooth envelope removed, correlated with the key's ripple (a cepstral
statistic); the key is ranked among 2047 random decoy keys, p = (1 + decoys at or above it) / 2048. A power spectrum
barely changes under shifts and crops, so the reader needs no search, and a filter is an operation a generator's
last convolutions can learn (Stable Signature, Fernandez et al. 2023, with an analytic reader in place of HiDDeN).

    python bench/watermark_spectral.py posthoc --per-source 6          # the filter applied after rendering
    python bench/watermark_spectral.py null --per-source 100           # the fixed key on unmarked clips
    (the in-weights fine-tune it had, `finetune`, is now `reelgan-watermark mark-weights`; it was run at 4d60951)

Results: BENCHMARKS.md, "The mark in the generator's weights" (route 3).
"""
from __future__ import annotations

import argparse
import functools
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.watermark_clips import ATTACKS, source_clip  # noqa: E402

SOURCES = ["digits", "shapes", "photo", "G:configs/lite.yaml"]
DECOYS = 2047
P_THRESHOLD = 1e-3


def offsets(rmin: float, rmax: float) -> np.ndarray:
    """Echo offsets (dy, dx) in a half plane with rmin <= |d| <= rmax (the filter is symmetric)."""
    r = int(math.ceil(rmax))
    return np.array([(dy, dx) for dy in range(0, r + 1) for dx in range(-r, r + 1)
                     if not (dy == 0 and dx <= 0) and rmin <= math.hypot(dy, dx) <= rmax])


def keys(n_taps: int, seed: int = 1) -> np.ndarray:
    """Row 0: the key's tap signs; rows 1..: decoys. Zero mean (no DC gain), unit norm."""
    h = np.random.default_rng(seed).choice([-1.0, 1.0], size=(DECOYS + 1, n_taps))
    h -= h.mean(1, keepdims=True)
    return h / np.linalg.norm(h, axis=1, keepdims=True)


def ripple(h: np.ndarray, d: np.ndarray, fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """The filters' frequency responses sum_d h(d) cos(2 pi f.d) at frequencies (cycles per pixel): [rows, N]."""
    return h @ np.cos(2 * np.pi * (np.outer(fy, d[:, 0]) + np.outer(fx, d[:, 1]))).T


def luma(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.float32)
    return 0.299 * v[..., 0] + 0.587 * v[..., 1] + 0.114 * v[..., 2]


def _gauss(x: torch.Tensor, sigma: float, mode: str) -> torch.Tensor:
    r = int(3 * sigma + 1)
    g = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * sigma * sigma))
    g = g / g.sum()
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), g.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode=mode), g.view(1, 1, -1, 1))


def embed(v: np.ndarray, h: np.ndarray, d: np.ndarray, psnr: float = 40.3) -> np.ndarray:
    """Post-hoc: add the keyed filter of the high-passed luma to every channel, scaled to `psnr`."""
    y = torch.from_numpy(luma(v))[:, None]
    y = y - _gauss(y, 1.0, "replicate")
    r = int(np.abs(d).max())
    k = np.zeros((2 * r + 1, 2 * r + 1), np.float32)
    for w, (dy, dx) in zip(h, d):
        k[r + dy, r + dx] += w / 2
        k[r - dy, r - dx] += w / 2
    m = F.conv2d(F.pad(y, (r,) * 4, mode="reflect"), torch.from_numpy(k)[None, None])[:, 0].numpy()[..., None]
    target = 255 / 10 ** (psnr / 20)
    a = target / (np.sqrt((m ** 2).mean()) + 1e-9)
    for _ in range(3):                                   # clipping at 0 / 255 removes some: spend the budget again
        out = np.clip(v + a * m, 0, 255).round()
        a *= target / max(np.sqrt(((out - v) ** 2).mean()), 1e-6)
    return np.clip(v + a * m, 0, 255).round().astype(np.uint8)


@functools.lru_cache(maxsize=16)
def _basis(d_bytes: bytes, height: int, width: int):
    d = np.frombuffer(d_bytes, dtype=np.int64).reshape(-1, 2)
    fy = np.fft.fftfreq(height)[:, None] * np.ones((1, width))
    fx = np.ones((height, 1)) * np.fft.fftfreq(width)[None]
    half = (fy > 0) | ((fy == 0) & (fx > 0))
    return np.cos(2 * np.pi * (np.outer(fy[half], d[:, 0]) + np.outer(fx[half], d[:, 1]))), half


def cepstrum(v: np.ndarray, d: np.ndarray, smooth: float = 6.0) -> np.ndarray:
    """Per echo offset, the correlation of a uint8 clip's detrended log power spectrum with that offset's ripple."""
    y = luma(v)
    _, height, width = y.shape
    y = (y - y.mean((1, 2), keepdims=True)) * np.outer(np.hanning(height + 2)[1:-1], np.hanning(width + 2)[1:-1])
    p = np.abs(np.fft.fft2(y)) ** 2
    log_p = np.log(p + 1e-3 * p.mean((1, 2), keepdims=True) + 1e-6).mean(0)
    env = _gauss(torch.from_numpy(log_p)[None, None].float(), smooth, "circular")[0, 0].numpy()
    basis, half = _basis(np.ascontiguousarray(d, np.int64).tobytes(), height, width)
    return basis.T @ (log_p - env)[half]


def calibrate(d: np.ndarray, n_per_source: int):
    """Mean and spread of each offset's cepstrum on unmarked clips (indices 2000.., apart from every other set)."""
    c = np.array([cepstrum(source_clip(src, 2000 + i, 64, 16), d) for src in SOURCES for i in range(n_per_source)])
    return c.mean(0), c.std(0)


def statistic(v: np.ndarray, h: np.ndarray, d: np.ndarray, white=None) -> np.ndarray:
    """The cepstral statistic of a uint8 clip [T, H, W, 3] for the key and every decoy: [1 + DECOYS]; `white`
    (mean, spread) whitens each offset's cepstrum first."""
    c = cepstrum(v, d)
    if white is not None:
        c = (c - white[0]) / white[1]
    return h @ c


def read(v: np.ndarray, h: np.ndarray, d: np.ndarray, white=None):
    """(p, z): the key's rank among the decoys as a false-positive probability, and its z against them."""
    s = statistic(v, h, d, white)
    return (1 + (s[1:] >= s[0]).sum()) / (DECOYS + 1), (s[0] - s[1:].mean()) / s[1:].std()


def _summary(name: str, marked, unmarked) -> str:
    det = lambda rows: np.mean([p <= P_THRESHOLD for p, _ in rows])
    return (f"| {name} | {det(marked):.0%} | {np.median([z for _, z in marked]):.1f} | {det(unmarked):.0%} | "
            f"{np.median([z for _, z in unmarked]):.1f} / {np.max([z for _, z in unmarked]):.1f} |")


def posthoc(args) -> None:
    d = offsets(args.rmin, args.rmax)
    h = keys(len(d))
    white = calibrate(d, args.whiten) if args.whiten else None
    attacks = args.attacks.split(",")
    rows = {a: ([], []) for a in attacks}
    for src in SOURCES:
        for i in range(args.per_source):
            v = source_clip(src, i, 64, 16)
            mv = embed(v, h[0], d)
            for a in attacks:
                rows[a][0].append(read(ATTACKS[a](mv), h, d, white))
                rows[a][1].append(read(ATTACKS[a](v), h, d, white))
    print(f"post-hoc, {len(d)} taps at {args.rmin}-{args.rmax} px, PSNR 40.3 dB, {args.per_source} clips per source"
          f"{f', whitened on {args.whiten} clips per source' if args.whiten else ''}")
    print("| attack | marked: detected | z median | unmarked: detected | z median / max |\n|---|---|---|---|---|")
    for a in attacks:
        print(_summary(a, *rows[a]))


def null(args) -> None:
    """The fixed key's false-positive rate on unmarked clips (other seeds than posthoc's), plain and after CRF 28."""
    d = offsets(args.rmin, args.rmax)
    h = keys(len(d))
    white = calibrate(d, args.whiten) if args.whiten else None
    rows = {"none": [], "crf28": []}
    for src in SOURCES:
        for i in range(args.per_source):
            v = source_clip(src, 1000 + i, 64, 16)
            for a in rows:
                rows[a].append(read(ATTACKS[a](v), h, d, white))
    print("| unmarked clips | p <= 1e-3 | p <= 1e-2 | p <= 0.1 | z mean / sd / max |\n|---|---|---|---|---|")
    for a, r in rows.items():
        p, z = np.array([x[0] for x in r]), np.array([x[1] for x in r])
        print(f"| {len(p)}, {a} | {np.mean(p <= 1e-3):.4f} | {np.mean(p <= 1e-2):.4f} | {np.mean(p <= 0.1):.3f} | "
              f"{z.mean():.2f} / {z.std():.2f} / {z.max():.2f} |")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rmin", type=float, default=4.0)
    ap.add_argument("--rmax", type=float, default=12.0)
    ap.add_argument("--attacks", default="none,crop10%,crf23,crf28,crf28+crop")
    ap.add_argument("--whiten", type=int, default=0, metavar="N",
                    help="posthoc / null: whiten each offset's cepstrum by its mean and spread on N unmarked clips "
                         "per source (other clips than those measured)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("posthoc", help="the filter applied after rendering, on the watermark benchmark's clips")
    p.add_argument("--per-source", type=int, default=6)
    p.set_defaults(run=posthoc)
    n = sub.add_parser("null", help="the fixed key's false positives on unmarked clips")
    n.add_argument("--per-source", type=int, default=100)
    n.set_defaults(run=null)
    args = ap.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
