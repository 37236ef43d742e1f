"""Invisible watermark for every clip reelgan writes, and its detector (pure numpy/torch).

Method: keyed spread spectrum in luma (Cox et al. 1997, "Secure spread spectrum watermarking for
multimedia"), laid out as in JAWS (Kalker et al. 1999, "A video watermarking system for broadcast
monitoring"): one pseudo-random TILE x TILE pattern, band-limited to mid frequencies, tiled over the
frame and added identically to EVERY frame. Because the mark does not change over time, trimming,
frame drops and frame-rate changes cannot desynchronise it, it adds no flicker, and the detector
simply averages the frames (the mark adds up coherently, moving content averages out). A crop is a
cyclic shift of the folded tile, so the detector folds the mean frame into one tile and correlates it
with the key's pattern at all TILE^2 cyclic shifts at once (FFT, phase-only whitening: SPOMF), over a
small set of scales for resized clips.

The pattern's frequency bins are split between a sync pattern (detection, shift and scale) and one
disjoint group of bins per payload bit (sign = bit), so payload patterns are exactly orthogonal to the
sync and to each other at every shift. Payload: 48 bits (32-bit model id + 16-bit user id) + CRC-8.
Version 2 marks (the default) protect those 56 bits with a convolutional code (gan/watermark_ecc.py) decoded
by soft Viterbi from per-bit correlations weighted per frequency ring by the channel gain that the sync bins,
which are known to the detector, measure (pilot-based maximum-ratio combining); version 1 marks (56 uncoded
bits, their own key derivation) are still found and read.

Embedding is luma-adaptive (Watermarker.embed): less mark near black and white, where clipping (here, or after
a brightness/contrast change) removes it, and a per-frame gain that spends each frame's PSNR budget.

Detection statistic: the sync correlation at a shift, normalised by its null standard deviation, is
z ~ N(0, 1) on unmarked content (a sum of many bounded, random-phase terms); the detector reports the
false-positive probability of the best of all shifts and scales searched (a weighted Bonferroni bound
over them), calibrated against unmarked clips in bench/watermark.py.
"""
from __future__ import annotations

import hashlib
import math
import os
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from gan import watermark_ecc as ecc
from gan.errors import ReelganError

TILE = 64                    # pattern period in pixels (a 64 px frame holds one tile)
BAND = (4.0, 16.0)           # radial frequency band in cycles per tile: 1/16 .. 1/4 cycle per pixel
SYNC_SHARE = 0.5             # fraction of the band's bins (= energy) given to the sync pattern
PAYLOAD_BITS = 48            # 32-bit model id + 16-bit user id
CODED_BITS = PAYLOAD_BITS + 8  # + CRC-8
VERSION = 2                  # what Watermarker embeds; detect() searches VERSIONS
VERSIONS = (2, 1)
INV_RATE = 3                 # v2: 1 / code rate (convolutional code, gan/watermark_ecc.py)
V2_SYNC_SHARE = 0.5          # v2: share of the bins given to the sync pattern
RINGS = (6.0, 8.0, 10.0, 12.0, 14.0)   # v2 decoding: radius edges (cycles per tile) of the channel-gain rings
AMPLITUDE = 2.4              # luma RMS of the mark at gain 1 in 8-bit levels (PSNR ~40.3 dB where nothing clips)
TARGET_PSNR = 40.3           # each frame's gain is raised until its PSNR comes down to this ...
MAX_GAIN = 3.0               # ... but at most this much (frames that are nearly all black or white)
GAIN_STEP = 1.1              # gains are powers of this (still frames keep identical offsets)
LUMA_RAMP = (16.0, 64.0)     # luma_weight: distance from 0 / 255 where the weight starts to rise / reaches 1
WEIGHT_FLOOR = 0.5           # luma_weight at 0 and 255
P_THRESHOLD = 1e-3           # `detected` when the false-positive probability is below this
MIN_FRAMES = 1
MIN_SIZE = 32                # smaller frames hold too few pattern samples: "undetermined"
SCALES = tuple(sorted({round(1.02 ** k, 4) for k in range(-11, 12)} | {0.5, 2.0}))  # 0.8 .. 1.24, 0.5, 2
SCALE1_WEIGHT = 0.5          # share of the false-positive budget spent on the unscaled search

AUTO = "auto"                # samplers: build the default Watermarker for the model (see for_generator)
PUBLIC_KEY = b"reelgan public watermark key v1"   # anyone can check a clip made with the default key
KEY_ENV = "REELGAN_WATERMARK_KEY"                 # path of a private key file


class WatermarkError(ReelganError, ValueError):
    """A watermark key, payload or clip that cannot be used (the message names the fix)."""


# ---- keys and payloads ----------------------------------------------------------------------------


def read_key(path: Union[str, os.PathLike]) -> bytes:
    """A private key file: any bytes (e.g. `head -c 32 /dev/urandom > wm.key`), at least 16 of them."""
    p = Path(path)
    if not p.is_file():
        raise WatermarkError(f"watermark key file {p} not found (make one: head -c 32 /dev/urandom > {p})")
    data = p.read_bytes()
    if len(data) < 16:
        raise WatermarkError(f"watermark key file {p} holds {len(data)} bytes; use at least 16 random bytes")
    return data


def resolve_key(key_file: Optional[str] = None, config_key: Optional[str] = None) -> Tuple[bytes, str]:
    """The key to use and where it came from: --watermark-key FILE, else $REELGAN_WATERMARK_KEY (a path),
    else the config's key file, else the public default key."""
    for value, origin in ((key_file, "--watermark-key"), (os.environ.get(KEY_ENV), f"${KEY_ENV}"),
                          (config_key, "config")):
        if value:
            return read_key(value), f"private key from {origin} ({value})"
    return PUBLIC_KEY, "public default key"


def crc8(value: int, bits: int = PAYLOAD_BITS) -> int:
    """CRC-8 (polynomial 0x07) of the payload's bytes, so a decoded payload can be checked."""
    crc = 0
    for byte in value.to_bytes(bits // 8, "big"):
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def make_payload(model_id: int, user_id: int = 0) -> int:
    if not 0 <= model_id < 2 ** 32 or not 0 <= user_id < 2 ** 16:
        raise WatermarkError(f"model id must fit 32 bits and user id 16 bits, got {model_id}, {user_id}")
    return (model_id << 16) | user_id


def parse_payload(text: str) -> int:
    """A payload as hex (up to 12 digits, 48 bits), e.g. '0x1234abcd0007'."""
    try:
        value = int(str(text), 16)
    except ValueError:
        raise WatermarkError(f"payload {text!r} is not hex (up to 12 hex digits, 48 bits)") from None
    if not 0 <= value < 2 ** PAYLOAD_BITS:
        raise WatermarkError(f"payload {text!r} does not fit {PAYLOAD_BITS} bits (12 hex digits)")
    return value


def model_id(state_dict: Dict[str, torch.Tensor], config: Optional[dict] = None,
             defaults: Optional[dict] = None) -> int:
    """32-bit id of a generator: sha256 over its weights (name, shape, float32 bytes) and the fields of its config
    that differ from `defaults` (the config class's own), so a field added in a later release, at its default,
    leaves the ids of models made before it as they were."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name]
        if not torch.is_tensor(t):
            continue
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    if config is not None:
        h.update(repr(sorted(set(_flatten(config)) - set(_flatten(defaults or {})))).encode())
    return int.from_bytes(h.digest()[:4], "big")


def for_generator(G, config=None, key_file: Optional[str] = None, user_id: Optional[int] = None) -> "Watermarker":
    """The default mark of a model's outputs: model id from its weights (a module or a state dict) and config
    (a Config or its dict; its watermark section left out), user id and key from the arguments, else from the
    config's `watermark` section."""
    cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config or {})
    section = cfg.pop("watermark", None) or {}
    key, origin = resolve_key(key_file, section.get("key") or None)
    uid = int(section.get("user_id", 0) if user_id is None else user_id)
    state = G.state_dict() if hasattr(G, "state_dict") else G
    defaults = type(config)().to_dict() if hasattr(config, "to_dict") else None     # a Config's own defaults
    return Watermarker(key, make_payload(model_id(state, cfg, defaults), uid), origin=origin)


def _flatten(d, prefix=""):
    for k, v in (d.items() if isinstance(d, dict) else []):
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield (f"{prefix}{k}", repr(v))


# ---- the keyed pattern ----------------------------------------------------------------------------


def _band_bins() -> Tuple[np.ndarray, np.ndarray]:
    """(fy, fx) indices of the rfft2 half-plane bins inside BAND; the fx = 0 and Nyquist columns are left
    out, so every bin is its own independent complex coefficient."""
    fy = np.fft.fftfreq(TILE) * TILE
    fx = np.fft.rfftfreq(TILE) * TILE
    r = np.hypot(fy[:, None], fx[None, :])
    inside = (r >= BAND[0]) & (r <= BAND[1]) & (fx[None, :] > 0) & (fx[None, :] < TILE // 2)
    return np.nonzero(inside)


_BINS = _band_bins()


def _reconfigure() -> None:
    """Recompute the band's bins after BAND or TILE changed (experiments)."""
    global _BINS
    _BINS = _band_bins()


class Key:
    """The patterns of one key: random phases on the band's bins, bins split into sync and bit groups."""

    def __init__(self, key: bytes = PUBLIC_KEY, version: int = VERSION):
        if version not in (1, 2):
            raise WatermarkError(f"watermark version {version} is unknown (1 or 2)")
        self.key, self.version = bytes(key), version
        seed = int.from_bytes(hashlib.sha256(f"reelgan-watermark-v{version}|".encode() + self.key).digest()[:16],
                              "big")
        rng = np.random.default_rng(seed)
        n = len(_BINS[0])
        self.phase = np.exp(2j * np.pi * rng.random(n))           # [n] unit-magnitude coefficients
        order = rng.permutation(n)
        n_sync = int(round(n * (SYNC_SHARE if version == 1 else V2_SYNC_SHARE)))
        self.n_channel = channel_length(version)
        self.group = np.empty(n, np.int64)                         # -1: sync, b: channel bit b
        self.group[order[:n_sync]] = -1
        self.group[order[n_sync:]] = np.arange(n - n_sync) % self.n_channel
        self.fingerprint = key_fingerprint(self.key)

    def pattern(self, coded: Sequence[int]) -> np.ndarray:
        """The TILE x TILE luma pattern (unit RMS) for coded bits (0/1)."""
        signs = np.where(np.asarray(coded) > 0, 1.0, -1.0)
        coef = self.phase * np.where(self.group < 0, 1.0, signs[np.maximum(self.group, 0)])
        spec = np.zeros((TILE, TILE // 2 + 1), np.complex128)
        spec[_BINS] = coef
        tile = np.fft.irfft2(spec, s=(TILE, TILE))
        return tile / tile.std()


def coded_bits(payload: int) -> np.ndarray:
    """The 56 bits payload + CRC-8 (what v1 embeds as is; v2 encodes them, see channel_bits)."""
    value = (payload << 8) | crc8(payload)
    return np.array([(value >> (CODED_BITS - 1 - i)) & 1 for i in range(CODED_BITS)], np.int64)


def channel_length(version: int = VERSION) -> int:
    return CODED_BITS if version == 1 else ecc.coded_length(CODED_BITS, INV_RATE)


def channel_bits(payload: int, version: int = VERSION) -> np.ndarray:
    """The bits the pattern carries: v1 payload + CRC as is, v2 their convolutional codeword."""
    bits = coded_bits(payload)
    return bits if version == 1 else ecc.encode(bits, INV_RATE)


def key_fingerprint(key: bytes) -> str:
    """8 hex digits that name a key without revealing it (sha256 of a prefixed key; not invertible)."""
    return hashlib.sha256(b"fp|" + bytes(key)).hexdigest()[:8]


def is_public(key: bytes) -> bool:
    return bytes(key) == PUBLIC_KEY


# ---- embedding ------------------------------------------------------------------------------------


def luma_weight(y: np.ndarray) -> np.ndarray:
    """Per-pixel weight of the mark from the pixel's luma: WEIGHT_FLOOR at 0 and 255, 1 on the mid range
    [LUMA_RAMP[1], 255 - LUMA_RAMP[1]] (what brightness/contrast changes of +-20% do not clip), linear between."""
    lo, hi = LUMA_RAMP
    ramp = np.clip((np.minimum(y, 255.0 - y) - lo) / (hi - lo), 0.0, 1.0)
    return (WEIGHT_FLOOR + (1.0 - WEIGHT_FLOOR) * ramp).astype(np.float32)


def _clipped_mse(v: np.ndarray, o: np.ndarray) -> float:
    """Mean squared change of int16 RGB `v` [H, W, 3] when luma offsets `o` [H, W] are added and clipped."""
    return float(np.mean((np.clip(v + o[..., None], 0, 255) - v) ** 2))


class Watermarker:
    """Adds the mark to uint8 RGB frames `[T, H, W, 3]` (or `[H, W, 3]`); the writers in gan.video_io call
    `embed` on every chunk they write. The same integer luma offset goes to R, G and B (chroma unchanged),
    tiled from the frame's top-left corner; a pixel's offset depends only on its position, its own value and
    its frame's gain, so unchanged pixels of consecutive frames with the same gain get the same offset."""

    def __init__(self,
                 key: bytes = PUBLIC_KEY,     # key bytes (PUBLIC_KEY: anyone can detect)
                 payload: int = 0,            # 48-bit payload (make_payload(model_id, user_id))
                 amplitude: float = AMPLITUDE,  # luma RMS in 8-bit levels
                 origin: str = "",            # where the key came from, for logs
                 version: int = VERSION):     # 2: ECC-coded payload; 1: the original uncoded layout
        self.keys = Key(key, version)
        self.payload = int(payload)
        if not 0 <= self.payload < 2 ** PAYLOAD_BITS:
            raise WatermarkError(f"payload must fit {PAYLOAD_BITS} bits")
        self.amplitude = float(amplitude)
        self.origin = origin
        self.tile = (self.amplitude * self.keys.pattern(channel_bits(self.payload, version))).astype(np.float32)
        self._cache: Dict[Tuple[int, int], np.ndarray] = {}

    def offsets(self, height: int, width: int) -> np.ndarray:
        """float32 [H, W]: the tiled pattern (RMS = amplitude) for a frame size."""
        if (height, width) not in self._cache:
            reps = (-(-height // TILE), -(-width // TILE))
            self._cache[(height, width)] = np.tile(self.tile, reps)[:height, :width].copy()
        return self._cache[(height, width)]

    def embed(self, frames: np.ndarray) -> np.ndarray:
        """Perceptual, clipping-aware shaping (as in Podilchuk & Zeng 1998 / Kutter & Winkler 2002, with a luma
        weight instead of a JND model): the pattern is weighted per pixel by luma_weight(luma), so pixels near 0
        or 255, whose mark is lost to clipping here or after a brightness/contrast change, carry less; then each
        frame's gain is raised until its MSE reaches the PSNR budget (TARGET_PSNR), up to MAX_GAIN. Gains are
        quantised to GAIN_STEP, so a still frame sequence gets identical offsets on every frame (no flicker)."""
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.shape[-1] != 3 or frames.ndim not in (3, 4):
            raise WatermarkError(f"embed expects uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
        single = frames.ndim == 3
        x = frames[None] if single else frames
        h, w = x.shape[1:3]
        base = self.offsets(h, w)
        budget = 255.0 ** 2 / 10 ** (TARGET_PSNR / 10)
        out = np.empty_like(x)
        for t, f in enumerate(x):
            v = f.astype(np.int16)
            o = base * luma_weight(f @ np.array([0.299, 0.587, 0.114], np.float32))
            gain = 1.0
            if MAX_GAIN > 1.0:
                mse = _clipped_mse(v, o)                   # MSE of the unit-gain mark after clipping
                gain = min(MAX_GAIN, math.sqrt(budget / max(mse, 1e-6)))
                gain = GAIN_STEP ** math.floor(math.log(max(gain, 1.0)) / math.log(GAIN_STEP))
            while True:
                g = np.clip(v + np.round(gain * o).astype(np.int16)[..., None], 0, 255)
                if gain <= 1.0 or np.mean((g - v) ** 2.0) <= budget:
                    break
                gain = max(1.0, gain / GAIN_STEP)
            out[t] = g
        return out[0] if single else out

    def describe(self) -> str:
        return (f"watermark on (v{self.keys.version}): payload {self.payload:012x} (model id {self.payload >> 16:08x}, "
                f"user id {self.payload & 0xFFFF}), {self.origin or 'key ' + self.keys.fingerprint}")

    def __repr__(self) -> str:
        return f"Watermarker(payload={self.payload:#014x}, key={self.keys.fingerprint}, amplitude={self.amplitude})"


# ---- detection ------------------------------------------------------------------------------------


@dataclass
class Detection:
    detected: Optional[bool]          # None: undetermined (too short / too small to decide)
    p_false: Optional[float]          # probability that an unmarked clip scores at least this high
    payload: Optional[str] = None     # 12 hex digits, when detected
    payload_valid: Optional[bool] = None   # its CRC-8 matches
    bit_confidence: Optional[float] = None  # mean posterior that a bit is right (v2: raw channel bits, pre-decoding)
    min_bit_confidence: Optional[float] = None
    z: Optional[float] = None         # best normalised correlation (null: N(0, 1) per test)
    shift: Optional[Tuple[int, int]] = None   # (dy, dx) of the tile found
    scale: Optional[float] = None
    frames: int = 0
    size: Tuple[int, int] = (0, 0)
    reason: str = ""
    version: Optional[int] = None     # the mark's layout found (2: ECC-coded payload, 1: uncoded)
    key_fingerprint: str = ""         # of the key searched for (key_fingerprint())
    key_public: Optional[bool] = None  # the public default key (anyone can check and forge the mark)
    channel_bit_errors: Optional[int] = None   # v2: raw channel bits whose sign disagrees with the decoded codeword

    @property
    def verdict(self) -> str:
        return "undetermined" if self.detected is None else ("detected" if self.detected else "not detected")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["verdict"] = self.verdict
        return d


def luma(frames: np.ndarray) -> torch.Tensor:
    """uint8 RGB `[T, H, W, 3]` -> float32 luma `[T, H, W]` (BT.601 weights); grey frames pass through."""
    x = torch.from_numpy(np.array(frames, copy=True)).float()
    if x.dim() == 3:
        return x
    return x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114


PREFILTER = dict(sigma=2.0, window=4.0, floor=1.5)  # high-pass blur, local-RMS window (px), RMS floor (levels)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [N, 1, H, W] with reflected borders."""
    r = max(1, int(math.ceil(2.5 * sigma)))
    g = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / sigma) ** 2)
    g = (g / g.sum()).to(x.dtype)
    x = F.pad(x, (r, r, r, r), mode="reflect" if min(x.shape[-2:]) > r else "replicate")
    x = F.conv2d(x, g.view(1, 1, 1, -1))
    return F.conv2d(x, g.view(1, 1, -1, 1))


def prepare(frames: np.ndarray) -> torch.Tensor:
    """The detector's view of a clip, [H, W]: each frame's high-pass residual (frame minus a Gaussian blur)
    divided by its local RMS plus a floor, averaged over frames. Flat areas, where the residual is mostly
    mark, weigh more than edges and texture, where it is mostly content (a local-variance prefilter, as
    Wiener-style detectors use); averaging over frames adds the static mark up and averages motion out."""
    pf = PREFILTER
    x = luma(frames)[:, None]                                        # [T, 1, H, W]
    if pf["sigma"] <= 0:
        return x.mean(dim=(0, 1))
    r = x - _blur(x, pf["sigma"])
    if pf["window"] > 0:
        r = r / (_blur(r * r, pf["window"]).sqrt() + pf["floor"])
    return r.mean(dim=(0, 1))


def _fold(image: torch.Tensor) -> torch.Tensor:
    """[H, W] -> [TILE, TILE]: sum of the image's pixels at equal positions modulo the tile."""
    h, w = image.shape
    ph, pw = -(-h // TILE) * TILE, -(-w // TILE) * TILE
    x = F.pad(image - image.mean(), (0, pw - w, 0, ph - h))
    return x.reshape(ph // TILE, TILE, pw // TILE, TILE).sum(dim=(0, 2))


def _spectrum(tile: torch.Tensor) -> np.ndarray:
    """Phase-only (whitened) band coefficients of a folded tile: SPOMF (Chen et al. 1994; JAWS)."""
    spec = np.fft.rfft2(tile.double().numpy())[_BINS]
    return spec / np.maximum(np.abs(spec), 1e-12)


def _correlate(coef: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """z-scores of the correlation at every cyclic shift: [TILE, TILE]. Each band bin contributes
    Re(c conj(r) e^{i phi}) with a random phase under the null, variance |r|^2 / 2."""
    spec = np.zeros((TILE, TILE // 2 + 1), np.complex128)
    spec[_BINS] = coef * np.conj(ref)
    corr = np.fft.irfft2(spec, s=(TILE, TILE)) * (TILE * TILE / 2.0)   # = sum_bins Re(...)
    return corr / math.sqrt(max(np.sum(np.abs(spec[_BINS]) ** 2) / 2.0, 1e-30))


def _norm_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _resample(image: torch.Tensor, scale: float) -> torch.Tensor:
    """Undo a resize by `scale`: [H, W] -> [H / scale, W / scale] (bilinear; area for downsizing)."""
    if scale == 1.0:
        return image
    h, w = image.shape
    size = (max(1, round(h / scale)), max(1, round(w / scale)))
    mode = "area" if scale > 1.0 else "bilinear"
    kw = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(image[None, None], size=size, mode=mode, **kw)[0, 0]


def detect(frames: np.ndarray, key: bytes = PUBLIC_KEY, scales: Sequence[float] = SCALES,
           threshold: float = P_THRESHOLD, versions: Sequence[int] = VERSIONS) -> Detection:
    """Look for the mark of `key` in uint8 frames `[T, H, W, 3]` (or grey `[T, H, W]`), in each layout of
    `versions` (p_false covers them all)."""
    frames = np.asarray(frames)
    if frames.ndim == 3 and frames.shape[-1] == 3:
        frames = frames[None]
    t, h, w = frames.shape[:3]
    base = dict(frames=int(t), size=(int(h), int(w)), key_fingerprint=key_fingerprint(key), key_public=is_public(key))
    if t < MIN_FRAMES or min(h, w) < MIN_SIZE:
        return Detection(None, None, reason=f"undetermined: {t} frame(s) of {h}x{w}; the detector needs at least "
                         f"{MIN_FRAMES} frame of at least {MIN_SIZE}x{MIN_SIZE} px", **base)
    return detect_view(prepare(frames), base, key, scales, threshold, versions)   # the mark is the same on every frame


def detect_view(mean: torch.Tensor, base: dict, key: bytes = PUBLIC_KEY, scales: Sequence[float] = SCALES,
                threshold: float = P_THRESHOLD, versions: Sequence[int] = VERSIONS) -> Detection:
    """detect() on the detector's view of a clip (prepare(); a caller reading a long clip in parts averages the
    parts' views); `base` = dict(frames=T, size=(H, W)) of what was read."""
    h, w = mean.shape
    base = {"key_fingerprint": key_fingerprint(key), "key_public": is_public(key), **base}
    best = None
    for version in versions:                                        # each layout has its own sync pattern
        keys = Key(key, version)
        found = _search(mean, keys, scales, threshold / len(versions))
        if found is not None and (best is None or found[0] < best[0]):
            best = found + (keys,)
        if best is not None and best[0] < threshold / len(versions) * 1e-3:
            break
    if best is None:
        return Detection(None, None, reason=f"undetermined: {h}x{w} is too small for the scale search", **base)
    p, z, shift, s, coef, keys = best
    p = min(1.0, p * len(versions))                                 # Bonferroni over the layouts searched
    det = Detection(p < threshold, p, z=z, shift=(int(shift[0]), int(shift[1])), scale=s, **base)
    if det.detected:
        det.version = keys.version
        _decode_payload(det, keys, coef, shift, z)
    return det


def _search(mean: torch.Tensor, keys: Key, scales: Sequence[float], threshold: float):
    """(p, z, shift, scale, coef) of the best sync correlation over shifts and scales, or None."""
    sync = np.where(keys.group < 0, keys.phase, 0)
    n_tests = TILE * TILE
    others = [s for s in scales if s != 1.0]
    w1 = (SCALE1_WEIGHT if others else 1.0) if 1.0 in scales else 0.0
    best = None
    for s in ([1.0] if w1 else []) + others:
        image = _resample(mean, s)
        if min(image.shape) < MIN_SIZE // 2:
            continue
        coef = _spectrum(_fold(image))
        zmap = _correlate(coef, sync)
        k = int(np.argmax(zmap))
        z = float(zmap.flat[k])
        weight = w1 if s == 1.0 else (1.0 - w1) / len(others)
        p = min(1.0, n_tests * _norm_sf(z) / weight)               # weighted Bonferroni over shifts and scales
        if best is None or p < best[0]:
            best = (p, z, divmod(k, TILE), s, coef)
        if s == 1.0 and p < threshold * 1e-3:                      # clearly found: skip the scale search
            break
    return best


def _decode_payload(det: Detection, keys: Key, coef: np.ndarray, shift, z_sync: float) -> None:
    """Correlate each channel bit's bins at the sync's shift. v1: sign = bit; bit confidence is the posterior
    of a Gaussian channel whose per-bit mean is the sync's z scaled by the energy share. v2: each bin's term is
    weighted by its ring's gain measured on the sync bins (a whitened bin's noise is N(0, 1/2) per real part, so
    the bin's log-likelihood ratio is 4 g t), summed per channel bit and decoded by soft Viterbi."""
    fy, fx = _BINS
    rot = np.exp(2j * np.pi * (fy * shift[0] + fx * shift[1]) / TILE)   # undo the cyclic shift
    terms = np.real(coef * np.conj(keys.phase) * rot)
    n = keys.n_channel
    if keys.version == 1:
        n_sync = int(np.sum(keys.group < 0))
        mag2 = np.abs(coef) ** 2
        z_bits = np.zeros(n)
        for b in range(n):
            m = keys.group == b
            z_bits[b] = terms[m].sum() / math.sqrt(max(mag2[m].sum() / 2.0, 1e-30))
        bits = (z_bits > 0).astype(np.int64)
        mu = np.array([max(z_sync, 0.0) * math.sqrt((keys.group == b).sum() / n_sync) for b in range(n)])
        conf = 1.0 / (1.0 + np.exp(-2.0 * mu * np.abs(z_bits)))
    else:
        llr = 4.0 * _ring_gains(terms, keys.group) * terms
        soft = np.bincount(keys.group[keys.group >= 0], weights=llr[keys.group >= 0], minlength=n)
        bits = ecc.decode(soft, CODED_BITS, INV_RATE)
        codeword = ecc.encode(bits, INV_RATE)
        det.channel_bit_errors = int(np.sum((soft > 0) != (codeword > 0)))
        conf = 1.0 / (1.0 + np.exp(-np.abs(soft)))
    value = int("".join(map(str, bits[:CODED_BITS])), 2)
    payload, crc = value >> 8, value & 0xFF
    det.payload = f"{payload:012x}"
    det.payload_valid = crc8(payload) == crc
    det.bit_confidence = float(conf.mean())
    det.min_bit_confidence = float(conf.min())


def _ring_gains(terms: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Per bin: the mean sync term of its frequency ring (the mark's surviving amplitude there after the
    whitening), floored at a small positive value so no ring is ignored outright."""
    fy, fx = _BINS
    r = np.hypot(np.fft.fftfreq(TILE)[fy] * TILE, fx)
    ring = np.digitize(r, RINGS)
    sync = group < 0
    g = np.array([terms[sync & (ring == k)].mean() if np.any(sync & (ring == k)) else 0.0
                  for k in range(len(RINGS) + 1)])
    g = np.maximum(g, 0.05 * max(float(g.max()), 1e-3))
    return g[ring]


def decoded_bits(det: Detection) -> Optional[np.ndarray]:
    return None if det.payload is None else coded_bits(int(det.payload, 16))[:PAYLOAD_BITS]
