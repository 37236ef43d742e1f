"""A mark a convolutional generator can carry in its weights (issue 31, route 3; a prototype, not the product).

The mark: a keyed linear filter (echo taps at offsets RMIN..RMAX px, key-derived signs, zero DC gain) on the
high-passed luma, which ripples each frame's power spectrum in a keyed way. The reader: Hann-windowed log power
spectra averaged over the frames, their smooth envelope removed, correlated with the key's ripple (a cepstral
statistic); the key is ranked among 2047 random decoy keys, p = (1 + decoys at or above it) / 2048. A power spectrum
barely changes under shifts and crops, so the reader needs no search, and a filter is an operation a generator's
last convolutions can learn (Stable Signature, Fernandez et al. 2023, with an analytic reader in place of HiDDeN).

    python bench/watermark_spectral.py posthoc --per-source 6          # the filter applied after rendering
    python bench/watermark_spectral.py null --per-source 100           # the fixed key on unmarked clips
    python bench/watermark_spectral.py finetune CKPT --steps 3000 --params 'blocks\\.[23]\\.'   # in the weights

Results: BENCHMARKS.md, "The mark in the generator's weights" (route 3).
"""
from __future__ import annotations

import argparse
import copy
import functools
import math
import re
import sys
import time
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


class Reader(torch.nn.Module):
    """The statistic in torch (differentiable) for frames [T, C, H, W] in [-1, 1] at one size."""

    def __init__(self, h: np.ndarray, d: np.ndarray, size: int, smooth: float = 6.0):
        super().__init__()
        fy = np.fft.fftfreq(size)[:, None] * np.ones((1, size))
        fx = np.ones((size, 1)) * np.fft.fftfreq(size)[None]
        half = (fy > 0) | ((fy == 0) & (fx > 0))
        self.register_buffer("rip", torch.from_numpy(ripple(h, d, fy[half], fx[half])).float())
        self.register_buffer("mask", torch.from_numpy(half))
        self.register_buffer("win", torch.from_numpy(np.outer(np.hanning(size + 2)[1:-1],
                                                              np.hanning(size + 2)[1:-1])).float())
        self.smooth = smooth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.clamp(-1, 1) * 127.5 + 127.5
        y = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2] if x.shape[1] == 3 else x[:, 0]
        y = (y - y.mean((1, 2), keepdim=True)) * self.win
        p = torch.fft.fft2(y).abs() ** 2
        log_p = torch.log(p + 1e-3 * p.mean((1, 2), keepdim=True) + 1e-6).mean(0)
        env = _gauss(log_p[None, None], self.smooth, "circular")[0, 0]
        s = self.rip @ (log_p - env)[self.mask]
        return (s[0] - s[1:].mean().detach()) / s[1:].std().detach()


def _codes(G, batch: int, frames: int, gen: torch.Generator, start: float = 64.0):
    z = torch.randn(batch, G.z_dim, generator=gen)
    t = torch.rand(batch, 1, generator=gen) * start + torch.arange(frames, dtype=torch.float32)[None]
    return z, t, G.sample_motion(batch, float(t.max()), generator=gen)


def _uint8(x: torch.Tensor) -> np.ndarray:
    v = (x.clamp(-1, 1) * 127.5 + 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return v.repeat(3, -1) if v.shape[-1] == 1 else v


def finetune(args) -> None:
    from gan.sampling.load import load_generator
    torch.set_num_threads(args.threads)
    G, info = load_generator(args.checkpoint)
    size = int(info["config"].data.resolution)
    d = offsets(args.rmin, args.rmax)
    h = keys(len(d))
    reader = Reader(h, d, size)
    ref = copy.deepcopy(G)
    params = [p for n, p in G.named_parameters() if re.search(args.params, n)]
    for p in params:
        p.requires_grad_(True)
    print(f"fine-tuning {sum(p.numel() for p in params)} of {sum(p.numel() for p in G.parameters())} parameters "
          f"({args.params!r}) of {args.checkpoint}")
    opt = torch.optim.Adam(params, lr=args.lr, betas=(0.9, 0.99))
    budget, lam, gen, t0 = 4.0 / 10 ** (args.psnr / 10), 1.0, torch.Generator().manual_seed(0), time.time()
    for step in range(args.steps):
        z, t, motion = _codes(G, 4, 8, gen)
        with torch.no_grad():
            want = ref(z, None, t, motion=motion).clamp(-1, 1)
        got = G(z, None, t, motion=motion)
        shown = got + (got.clamp(-1, 1) - got).detach()          # what a written clip holds
        zs = torch.stack([reader(c) for c in shown])
        mse = (got.clamp(-1, 1) - want).pow(2).mean()
        loss = F.softplus(args.margin - zs).mean() + lam * mse / budget
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lam = float(min(1e4, max(1e-3, lam * math.exp(0.05 * (mse.item() / budget - 1)))))   # Lagrange weight
        if step % 250 == 0 or step == args.steps - 1:
            print(f"step {step}: z {zs.mean().item():.2f}, PSNR {10 * math.log10(4 / max(mse.item(), 1e-12)):.1f} dB "
                  f"({time.time() - t0:.0f} s)", flush=True)
    G.requires_grad_(False)
    if args.out:
        torch.save(G.state_dict(), args.out)
    attacks = args.attacks.split(",")
    rows, psnrs = {a: ([], []) for a in attacks}, []
    with torch.no_grad():
        for i in range(args.clips):                                # seeds the fine-tune never drew; bare forward
            z, t, motion = _codes(G, 1, 16, torch.Generator().manual_seed(20000 + i), 0.0)
            xm, xr = G(z, None, t, motion=motion)[0].clamp(-1, 1), ref(z, None, t, motion=motion)[0].clamp(-1, 1)
            psnrs.append(10 * math.log10(4 / max((xm - xr).pow(2).mean().item(), 1e-12)))
            for a in attacks:
                rows[a][0].append(read(ATTACKS[a](_uint8(xm)), h, d))
                rows[a][1].append(read(ATTACKS[a](_uint8(xr)), h, d))
    print(f"{args.clips} fresh clips of 16 frames: PSNR to the unmarked G median {np.median(psnrs):.1f} dB, "
          f"min {np.min(psnrs):.1f} dB")
    print("| attack | marked: detected | z median | unmarked: detected | z median / max |\n|---|---|---|---|---|")
    for a in attacks:
        print(_summary(a, *rows[a]))


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
    f = sub.add_parser("finetune", help="fine-tune a generator's layers so its clips carry the mark")
    f.add_argument("checkpoint")
    f.add_argument("--steps", type=int, default=3000)
    f.add_argument("--params", default=r"blocks\.[23]\.", help="regex of the parameter names to fine-tune")
    f.add_argument("--lr", type=float, default=3e-4)
    f.add_argument("--psnr", type=float, default=41.0, help="PSNR to the unmarked G the fidelity term holds")
    f.add_argument("--margin", type=float, default=6.0, help="z the mark term pushes each clip towards")
    f.add_argument("--clips", type=int, default=24)
    f.add_argument("--threads", type=int, default=2)
    f.add_argument("--out", default=None, help="where to save the marked G's state dict")
    f.set_defaults(run=finetune)
    args = ap.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
