"""The mark in a generator's weights: a keyed echo filter that its last layers learn to apply.

The mark is a linear filter on the high-frequency luma (echo taps at offsets of RMIN..RMAX px, signs derived from
the key, zero DC gain). It ripples every frame's power spectrum in a keyed way. Fine-tuning the last synthesis
blocks against a differentiable reader of that ripple puts the mark in every clip the model renders, with no step
after rendering, and the weights carry it wherever the model is shared (Stable Signature, Fernandez et al. 2023,
with an analytic reader in place of a learned extractor).

Reader: the log power spectra of the Hann-windowed luma, averaged over frames; their cepstrum (inverse FFT) at the
echo lags; its correlation with the key's taps, ranked among DECOYS fixed random keys: p_false = rank / (DECOYS + 1).
A generator draws the echo at the lag scale of its frame size (x1 at 64 px, x2 at 128, x4 at 256 and up: a model
at 128 px paints its texture at about the scale a 64 px one does); the reader tries every scale the frames can
hold, the threshold split between them.
A power spectrum barely changes under shifts and crops, so the reader needs no search. A key's score against the
decoys is exactly calibrated only over random keys; BENCHMARKS.md ("The in-weights mark in the product") measures
the public key's false-positive rate on unmarked clips and real footage.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import math
import re
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from gan import watermark as wm
from gan.errors import ReelganError

SCHEME = "echo-v1"
RMIN, RMAX = 4.0, 12.0       # echo offsets in pixels: inside what a 64 px frame's last 3x3 convolutions reach
DECOYS = 16383               # random keys the key is ranked among: p_false resolution 1 / 16384
LAG_SCALES = (1, 2, 4)       # the echo lags x this; a model's scale: the largest <= its frame side / 64
ENVELOPE = 6.0 / 64          # spread (cycles per pixel) of the smooth spectral envelope taken out of the cepstrum
MIN_SIZE = 32                # frames smaller than this: "undetermined"
P_THRESHOLD = wm.P_THRESHOLD
MIN_FRESH = 0.75             # mark-weights writes a model only when this share of its fresh check clips carry the mark
CHECK_THRESHOLD = P_THRESHOLD / 4   # ... at the strictest threshold `detect` applies (2 marks x 2 keys, Bonferroni)


class WeightMarkError(ReelganError, ValueError):
    pass


@functools.lru_cache(maxsize=1)
def offsets() -> np.ndarray:
    """Echo lags (dy, dx), one of each +-pair, with RMIN <= |d| <= RMAX: int [n, 2]."""
    r = int(math.ceil(RMAX))
    return np.array([(dy, dx) for dy in range(0, r + 1) for dx in range(-r, r + 1)
                     if not (dy == 0 and dx <= 0) and RMIN <= math.hypot(dy, dx) <= RMAX], dtype=np.int64)


def _signs(seed: bytes, rows: int) -> np.ndarray:
    """`rows` tap vectors of +-1 from SHAKE-256 of `seed` (a fixed function of the bytes: no library's random stream
    decides a mark), zero mean (no DC gain, so no brightness change), unit norm."""
    n = len(offsets())
    bits = np.unpackbits(np.frombuffer(hashlib.shake_256(seed).digest((rows * n + 7) // 8), np.uint8))
    h = bits[:rows * n].reshape(rows, n).astype(np.float64) * 2 - 1
    h -= h.mean(1, keepdims=True)
    return h / np.linalg.norm(h, axis=1, keepdims=True)


def key_taps(key: bytes) -> np.ndarray:
    """The key's echo tap weights [n] (unit norm, zero sum), derived from the key bytes (never stored)."""
    return _signs(b"weightmark|" + SCHEME.encode() + b"|key|" + bytes(key), 1)[0]


@functools.lru_cache(maxsize=1)
def decoys() -> np.ndarray:
    """DECOYS fixed random tap vectors, the same for every key [DECOYS, n]."""
    return _signs(b"weightmark|" + SCHEME.encode() + b"|decoys", DECOYS)


def lag_scale(height: int, width: int) -> int:
    """The lag scale a model with frames of this size draws the echo at."""
    return max(k for k in LAG_SCALES if k == 1 or min(height, width) >= 64 * k)


def readable_scales(height: int, width: int) -> Tuple[int, ...]:
    """The lag scales frames of this size are read at: every scale whose model's frames could have been cropped
    or resized to this size, down to 0.75 of their side (a 64 px clip: x1 only)."""
    return tuple(k for k in LAG_SCALES if k == 1 or min(height, width) >= 48 * k)


def _lag_weights(scale: int = 1) -> np.ndarray:
    """Gaussian smoothing of the log spectrum is a Gaussian product in the cepstrum: 1 - it removes the envelope."""
    r2 = ((scale * offsets()) ** 2).sum(1)
    return 1.0 - np.exp(-2 * math.pi ** 2 * ENVELOPE ** 2 * r2)


def log_spectrum_sum(frames: np.ndarray) -> Tuple[np.ndarray, int]:
    """(sum over frames of the log power spectrum of the windowed luma [H, W], frame count) of uint8 [T, H, W, 3]
    (or [T, H, W] luma); sums of batches of one clip add up."""
    v = np.asarray(frames, dtype=np.float32)
    y = v if v.ndim == 3 else 0.299 * v[..., 0] + 0.587 * v[..., 1] + 0.114 * v[..., 2]
    _, h, w = y.shape
    win = np.outer(np.hanning(h + 2)[1:-1], np.hanning(w + 2)[1:-1]).astype(np.float32)
    y = (y - y.mean((1, 2), keepdims=True)) * win
    p = np.abs(np.fft.fft2(y)) ** 2
    return np.log(p + 1e-3 * p.mean((1, 2), keepdims=True) + 1e-6).sum(0), len(y)


def cepstrum(mean_log_spectrum: np.ndarray, scale: int = 1) -> np.ndarray:
    """The cepstrum of a mean log power spectrum [H, W] at the echo lags x `scale`, envelope removed: [n]."""
    c = np.fft.ifft2(mean_log_spectrum).real
    d = scale * offsets()
    h, w = c.shape
    return c[d[:, 0] % h, d[:, 1] % w] * _lag_weights(scale)


@dataclass
class WeightMarkReading:
    detected: Optional[bool]             # None: undetermined (frames too small)
    p_false: Optional[float]
    z: Optional[float]
    frames: int = 0
    key_fingerprint: str = ""
    key_public: bool = True
    reason: str = ""
    scale: Optional[int] = None          # the lag scale of the best reading

    def to_dict(self) -> dict:
        return {"detected": self.detected, "p_false": self.p_false, "z": self.z, "frames": self.frames,
                "key_fingerprint": self.key_fingerprint, "key_public": self.key_public, "scheme": SCHEME,
                "scale": self.scale}


def read_spectrum(mean_log_spectrum: np.ndarray, frames: int, key: bytes = wm.PUBLIC_KEY,
                  threshold: float = P_THRESHOLD) -> WeightMarkReading:
    """The in-weights mark of `key` in a clip given its mean log spectrum (log_spectrum_sum / frames): the best
    of its readable lag scales, p_false multiplied by their number (Bonferroni)."""
    base = dict(frames=frames, key_fingerprint=wm.key_fingerprint(key), key_public=wm.is_public(key))
    h, w = mean_log_spectrum.shape
    if min(h, w) < MIN_SIZE:
        return WeightMarkReading(None, None, None, reason=f"frames {w}x{h} under {MIN_SIZE} px", **base)
    scales = readable_scales(h, w)
    best = None
    for k in scales:
        c = cepstrum(mean_log_spectrum, k)
        s_key, s = float(key_taps(key) @ c), decoys() @ c
        p = min(1.0, (1 + int((s >= s_key).sum())) / (DECOYS + 1) * len(scales))
        z = (s_key - float(s.mean())) / max(float(s.std()), 1e-12)
        if best is None or p < best.p_false or (p == best.p_false and z > best.z):
            best = WeightMarkReading(p <= threshold, p, z, scale=k, **base)
    return best


def read(frames: np.ndarray, key: bytes = wm.PUBLIC_KEY, threshold: float = P_THRESHOLD) -> WeightMarkReading:
    """The in-weights mark of `key` in a uint8 clip [T, H, W, 3]."""
    total, n = log_spectrum_sum(frames)
    return read_spectrum(total / n, n, key, threshold)


class Reader(torch.nn.Module):
    """read()'s z for the key, differentiable, for frames [T, C, H, W] in [-1, 1] (the decoys' mean and spread
    held fixed in the gradient)."""

    def __init__(self, key: bytes, height: int, width: int, scale: int = 1):
        super().__init__()
        table = np.concatenate([key_taps(key)[None], decoys()]) * _lag_weights(scale)[None]
        self.register_buffer("table", torch.from_numpy(table).float())
        self.register_buffer("win", torch.from_numpy(np.outer(np.hanning(height + 2)[1:-1],
                                                              np.hanning(width + 2)[1:-1])).float())
        d = scale * offsets()
        self.register_buffer("index", torch.from_numpy((d[:, 0] % height) * width + d[:, 1] % width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.clamp(-1, 1) * 127.5 + 127.5
        y = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2] if x.shape[1] == 3 else x[:, 0]
        y = (y - y.mean((1, 2), keepdim=True)) * self.win
        p = torch.fft.fft2(y).abs() ** 2
        log_p = torch.log(p + 1e-3 * p.mean((1, 2), keepdim=True) + 1e-6).mean(0)
        c = torch.fft.ifft2(log_p).real.flatten()[self.index]
        s = self.table @ c
        return (s[0] - s[1:].mean().detach()) / s[1:].std().detach()


# ---- putting the mark in a generator's weights ------------------------------------------------------------

def last_blocks(G: torch.nn.Module, count: int = 2) -> str:
    """A regex of the parameters of G's `count` highest-resolution synthesis blocks (the longest 'blocks' list)."""
    found: Dict[str, set] = {}
    for name, _ in G.named_parameters():
        m = re.match(r"(.*blocks)\.(\d+)\.", name)
        if m:
            found.setdefault(m.group(1), set()).add(int(m.group(2)))
    if not found:
        raise WeightMarkError(f"{type(G).__name__} has no synthesis blocks to fine-tune; pass --layers REGEX")
    prefix = max(found, key=lambda k: len(found[k]))
    top = sorted(found[prefix])[-count:]
    return rf"^{re.escape(prefix)}\.({'|'.join(map(str, top))})\."


def _codes(G, batch: int, frames: int, gen: torch.Generator, start: float):
    z = torch.randn(batch, G.z_dim, generator=gen)
    t = torch.rand(batch, 1, generator=gen) * start + torch.arange(frames, dtype=torch.float32)[None]
    return z, t, G.sample_motion(batch, float(t.max()), generator=gen)


def _render(G, z, t, motion) -> torch.Tensor:
    return G(z, None, t, motion=motion)


@dataclass
class MarkReport:
    steps: int
    seconds: float
    params: int
    total_params: int
    layers: str
    scale: int                         # the lag scale the echo was drawn at
    train_z: float                     # the reader's z on the last steps' training clips
    fresh: List[WeightMarkReading]     # clips of seeds the fine-tune never drew, bare forward pass, uint8
    psnr: List[float]                  # those clips against the unmarked G's on the same codes

    @property
    def detected(self) -> float:
        return float(np.mean([bool(r.detected) for r in self.fresh]))


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Frames [T, C, H, W] in [-1, 1] as the uint8 [T, H, W, 3] a written clip holds."""
    v = (x.clamp(-1, 1) * 127.5 + 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return v.repeat(3, -1) if v.shape[-1] == 1 else v


@torch.no_grad()
def check_fresh(G, ref, key: bytes, clips: int = 8, frames: int = 16, seed: int = 10_000_000):
    """(readings, PSNRs): G's clips on seeds the fine-tune never draws, read as written (at CHECK_THRESHOLD), and
    their PSNR against `ref` (the unmarked G) on the same codes."""
    readings, psnr = [], []
    for i in range(clips):
        z, t, motion = _codes(G, 1, frames, torch.Generator().manual_seed(seed + i), 0.0)
        x = _render(G, z, t, motion)[0].clamp(-1, 1)
        y = _render(ref, z, t, motion)[0].clamp(-1, 1)
        readings.append(read(to_uint8(x), key, CHECK_THRESHOLD))
        psnr.append(10 * math.log10(4.0 / max(float((x - y).pow(2).mean()), 1e-12)))
    return readings, psnr


def mark_weights(G: torch.nn.Module, key: bytes, steps: int = 3000, layers: Optional[str] = None,
                 lr: float = 1e-3, psnr: float = 41.0, margin: float = 6.0, batch: int = 4, frames: int = 8,
                 check_clips: int = 8, seed: int = 0, blur: bool = True,
                 progress: Optional[Callable[[int, float, float], None]] = None) -> Tuple[torch.nn.Module, MarkReport]:
    """A copy of G whose clips carry the in-weights mark of `key`: Adam on the `layers` parameters (default: the
    last two synthesis blocks) pushes the reader's z on G's clips towards `margin` while a Lagrange weight holds
    their PSNR against the unmarked G near `psnr` dB. G itself is left unchanged."""
    ref = copy.deepcopy(G).eval().requires_grad_(False)
    G = copy.deepcopy(G).eval().requires_grad_(False)
    layers = layers or last_blocks(G)
    try:
        re.compile(layers)
    except re.error as e:
        raise WeightMarkError(f"--layers {layers!r} is not a regular expression ({e})") from None
    params = [p for n, p in G.named_parameters() if re.search(layers, n) and p.is_floating_point()]
    if not params:
        raise WeightMarkError(f"no parameter of {type(G).__name__} matches --layers {layers!r}")
    for p in params:
        p.requires_grad_(True)
    size = _render(G, *_codes(G, 1, 1, torch.Generator().manual_seed(0), 0.0)).shape[-2:]
    if min(size) < MIN_SIZE:
        raise WeightMarkError(f"this model's frames are {size[1]}x{size[0]} px; the in-weights mark needs at least "
                              f"{MIN_SIZE} px")
    scale = lag_scale(int(size[0]), int(size[1]))
    reader = Reader(key, int(size[0]), int(size[1]), scale)
    opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.99))
    budget, lam, gen, t0, recent = 4.0 / 10 ** (psnr / 10), 1.0, torch.Generator().manual_seed(seed), time.time(), []
    for step in range(steps):
        z, t, motion = _codes(G, batch, frames, gen, 64.0)
        with torch.no_grad():
            want = _render(ref, z, t, motion).clamp(-1, 1)
        got = _render(G, z, t, motion)
        shown = got + (got.clamp(-1, 1) - got).detach()            # what a written clip holds
        if blur and step % 2:                                       # a codec's low-pass, every other step
            sigma = float(torch.empty(()).uniform_(0.4, 1.0, generator=gen))
            shown = wm._blur(shown.flatten(0, 2)[:, None], sigma).view_as(shown)
        zs = torch.stack([reader(c) for c in shown])
        mse = (got.clamp(-1, 1) - want).pow(2).mean()
        loss = F.softplus(margin - zs).mean() + lam * mse / budget
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lam = float(min(1e4, max(1e-3, lam * math.exp(0.05 * (mse.item() / budget - 1)))))
        recent = (recent + [zs.mean().item()])[-50:]
        if progress is not None:
            progress(step, recent[-1], 10 * math.log10(4.0 / max(mse.item(), 1e-12)))
    G.requires_grad_(False)
    fresh, psnrs = check_fresh(G, ref, key, clips=check_clips)
    report = MarkReport(steps=steps, seconds=time.time() - t0, params=sum(p.numel() for p in params),
                        total_params=sum(p.numel() for p in G.parameters()), layers=layers, scale=scale,
                        train_z=float(np.mean(recent)) if recent else 0.0, fresh=fresh, psnr=psnrs)
    return G, report


def record(key: bytes, report: MarkReport, psnr_target: float) -> dict:
    """The `weightmark` field of a marked model file: what a reader needs to know, never the key itself."""
    return {"scheme": SCHEME, "key_fingerprint": wm.key_fingerprint(key), "key_public": wm.is_public(key),
            "lag_scale": report.scale, "layers": report.layers, "steps": report.steps, "psnr_target": psnr_target,
            "fresh_detected": report.detected, "fresh_psnr_median": float(np.median(report.psnr))}
