"""Clip sources and attacks for bench/watermark.py (kept apart so experiments can import them).

Sources (nothing is trained): the built-in moving digits and bouncing shapes (gan/data/builtin.py),
pans across scikit-learn's two bundled photos (`load_sample_images`: china.jpg, flower.jpg), and an
untrained generator built from a config preset (random weights, seeded). Attacks re-encode with
the ffmpeg binary that imageio-ffmpeg ships (libx264, yuv420p) and resize with Pillow.
"""
from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from typing import Callable, Dict

import numpy as np
from PIL import Image


# ---- sources ----------------------------------------------------------------------------------------


def builtin_clip(kind: str, index: int, size: int, frames: int, seed: int = 0) -> np.ndarray:
    from gan.data.builtin import BouncingShapes, MovingDigits
    cls = MovingDigits if kind == "digits" else BouncingShapes
    ds = cls(resolution=size, num_videos=100000, video_frames=frames, seed=seed, split="test")
    return ds.render(index, 0, frames)                                 # uint8 [T, H, W, 3]


@functools.lru_cache(maxsize=None)
def _photos():
    from sklearn.datasets import load_sample_images
    return [np.asarray(im, np.uint8) for im in load_sample_images().images]    # 2 x [427, 640, 3]


def photo_pan(index: int, size: int, frames: int) -> np.ndarray:
    """A camera pan over one of the bundled photos: a square window (random size 160-400 px) moving at a
    random constant velocity, resized to `size` (Pillow, antialiased bicubic)."""
    rng = np.random.default_rng([7, index])
    photo = _photos()[index % 2]
    h, w, _ = photo.shape
    win = int(rng.integers(160, min(h, 400)))
    x0, y0 = rng.uniform(0, w - win), rng.uniform(0, h - win)
    vx, vy = rng.uniform(-1.5, 1.5, 2) * (win / 100)
    out = np.empty((frames, size, size, 3), np.uint8)
    for k in range(frames):
        x = int(np.clip(x0 + vx * k, 0, w - win))
        y = int(np.clip(y0 + vy * k, 0, h - win))
        out[k] = np.asarray(Image.fromarray(photo[y:y + win, x:x + win]).resize((size, size), Image.BICUBIC))
    return out


@functools.lru_cache(maxsize=4)
def untrained_generator(preset: str, seed: int = 0):
    import torch
    from gan.config import load_config
    from gan.networks import build_generator
    cfg = load_config(preset)
    torch.manual_seed(seed)
    return build_generator(cfg, 0).eval().requires_grad_(False), cfg


def generator_clip(preset: str, index: int, frames: int, size: int) -> np.ndarray:
    from gan.sampling import render
    from gan.video_io import resize_square, to_uint8
    G, _ = untrained_generator(preset)
    clip = to_uint8(render(G, [index], frames, chunk=16)[0])
    return resize_square(clip, size)


def source_clip(source: str, index: int, size: int, frames: int) -> np.ndarray:
    if source in ("digits", "shapes"):
        return builtin_clip(source, index, size, frames)
    if source == "photo":
        return photo_pan(index, size, frames)
    if source.startswith("G:"):
        return generator_clip(source[2:], index, frames, size)
    raise ValueError(f"unknown source {source!r}")


# ---- attacks ----------------------------------------------------------------------------------------


def _ffmpeg() -> str:
    import imageio_ffmpeg
    return imageio_ffmpeg.get_ffmpeg_exe()


def h264(frames: np.ndarray, crf: int, fps: float = 16.0) -> np.ndarray:
    """Encode with libx264 (yuv420p, preset medium) at `crf` and decode again."""
    t, h, w, _ = frames.shape
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "a.mp4")
        enc = [_ffmpeg(), "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
               "-r", str(fps), "-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(crf),
               "-threads", "1", path]
        subprocess.run(enc, input=np.ascontiguousarray(frames).tobytes(), check=True)
        dec = [_ffmpeg(), "-loglevel", "error", "-threads", "1", "-i", path, "-f", "rawvideo", "-pix_fmt",
               "rgb24", "-"]
        raw = subprocess.run(dec, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def resize_half_and_back(frames: np.ndarray) -> np.ndarray:
    t, h, w, _ = frames.shape
    out = np.empty_like(frames)
    for k, f in enumerate(frames):
        small = Image.fromarray(f).resize((w // 2, h // 2), Image.BICUBIC)
        out[k] = np.asarray(small.resize((w, h), Image.BICUBIC))
    return out


def crop(frames: np.ndarray, frac: float = 0.1) -> np.ndarray:
    _, h, w, _ = frames.shape
    dy, dx = int(round(h * frac)), int(round(w * frac))
    return np.ascontiguousarray(frames[:, dy:h - dy, dx:w - dx])


def gain(frames: np.ndarray, brightness: float = 0.0, contrast: float = 1.0) -> np.ndarray:
    x = frames.astype(np.float32)
    x = (x - 127.5) * contrast + 127.5 + brightness * 255.0
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def grey(frames: np.ndarray) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(f).convert("L").convert("RGB")) for f in frames])


def gif_palette(frames: np.ndarray) -> np.ndarray:
    """What write_gif does to a frame: Pillow's adaptive 256-colour palette."""
    return np.stack([np.asarray(Image.fromarray(f).quantize(256).convert("RGB")) for f in frames])


ATTACKS: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda v: v,
    "crf18": lambda v: h264(v, 18),
    "crf23": lambda v: h264(v, 23),
    "crf28": lambda v: h264(v, 28),
    "crf35": lambda v: h264(v, 35),
    "resize0.5": resize_half_and_back,
    "crop10%": crop,
    "first8": lambda v: v[:8],
    "drop2nd": lambda v: v[::2],
    "bright+20%": lambda v: gain(v, brightness=0.2),
    "bright-20%": lambda v: gain(v, brightness=-0.2),
    "contrast+20%": lambda v: gain(v, contrast=1.2),
    "contrast-20%": lambda v: gain(v, contrast=0.8),
    "grey": grey,
    "gif": gif_palette,
    "crf28+crop": lambda v: crop(h264(v, 28)),
}
