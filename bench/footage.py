"""Held-out footage that reelgan's built-in renderer did not make, written as mp4 folders.

Two kinds, each drawn by code of its own (nothing from gan.data.builtin):
- `digits`: real handwritten digits from the other half of scikit-learn's set (its bundled 8x8 images,
  split here with a different rule), upscaled with torch's bilinear filter and a Gaussian blur, grey
  strokes alpha-composited over a grey background with film-like noise, another sprite size (0.3 of the
  frame, the built-in uses 0.42) and speed (0.6-1.6 px/frame), stored at 96 px as RGB mp4 (grey content).
- `pans`: camera pans with a slow zoom over scikit-learn's two bundled photographs (colour).
- `street`: a static camera (a fixed crop of one bundled photograph per camera) with people-like figures
  (a body, a head, a swinging stride) walking across at their own speed and depth, and sensor noise.

    python bench/footage.py --kind digits --out data/footage_digits --num 2000
    python bench/footage.py --kind pans --out data/footage_pans --num 1000
    python bench/footage.py --kind street --out data/footage_street --num 400 --frames 32 --cameras 1
"""
from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import click
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.video_io import write_mp4  # noqa: E402


def _digit_pool():
    from sklearn.datasets import load_digits
    d = load_digits()
    held_out = np.arange(len(d.target)) % 2 == 1             # odd positions: another split than the built-in's
    return d.images[held_out].astype(np.float32) / 16.0, d.target[held_out]


def _sprite(image: np.ndarray, size: int) -> np.ndarray:
    x = torch.from_numpy(np.pad(image, 1))[None, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    k = torch.tensor([0.25, 0.5, 0.25])
    x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), (k[:, None] * k[None, :])[None, None])
    return x[0, 0].clamp(0, 1).numpy() ** 0.8


def render_digits(index: int, frames: int = 16, res: int = 96, objects: int = 2):
    """One clip: uint8 [T, res, res, 3] (R = G = B) and its caption / label."""
    images, targets = _digit_pool()
    rng = np.random.default_rng([7, index])
    bg = rng.uniform(25, 60)
    size = int(round(0.3 * res))
    out = np.full((frames, res, res), bg, np.float32)
    words = []
    labels = []
    for _ in range(objects):
        k = int(rng.integers(len(images)))
        alpha = _sprite(images[k], size)
        level = rng.uniform(190, 245)
        pos = rng.uniform(0, res - size, 2)
        angle = rng.uniform(0, 2 * np.pi)
        vel = rng.uniform(0.6, 1.6) * np.array([np.cos(angle), np.sin(angle)])
        for t in range(frames):
            x, y = (int(round(v)) for v in pos)
            region = out[t, y:y + size, x:x + size]
            region += alpha * (level - region)                # "over" compositing
            pos = pos + vel
            for a in range(2):                                # bounce inside the frame
                if not 0 <= pos[a] <= res - size:
                    vel[a] = -vel[a]
                    pos[a] = np.clip(pos[a], 0, res - size)
        words.append(f"a {targets[k]}")
        labels.append(int(targets[k]))
    out += rng.normal(0, 2.0, out.shape)                      # sensor-like noise, different per frame
    grey = np.clip(out, 0, 255).round().astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1), " and ".join(words), labels[0]


def render_pan(index: int, frames: int = 16, res: int = 96):
    """One clip: a window moving and slowly zooming across one of the two bundled photos."""
    from sklearn.datasets import load_sample_images
    photos = load_sample_images().images
    rng = np.random.default_rng([11, index])
    photo = torch.from_numpy(np.array(photos[index % len(photos)])).permute(2, 0, 1).float()[None]  # [1, 3, H, W]
    h, w = photo.shape[-2:]
    side0 = rng.uniform(0.35, 0.6) * min(h, w)
    zoom = rng.uniform(-0.01, 0.01)                           # relative change of the window per frame
    centre = np.array([rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h])
    angle = rng.uniform(0, 2 * np.pi)
    vel = rng.uniform(1.0, 4.0) * np.array([np.cos(angle), np.sin(angle)])
    out = []
    for t in range(frames):
        side = side0 * (1 + zoom) ** t
        cx, cy = centre + vel * t
        cx = float(np.clip(cx, side / 2, w - side / 2))
        cy = float(np.clip(cy, side / 2, h - side / 2))
        theta = torch.tensor([[[side / w, 0, 2 * cx / w - 1], [0, side / h, 2 * cy / h - 1]]], dtype=torch.float32)
        grid = F.affine_grid(theta, (1, 3, res, res), align_corners=False)
        out.append(F.grid_sample(photo, grid, mode="bilinear", align_corners=False)[0])
    video = torch.stack(out).permute(0, 2, 3, 1).clamp(0, 255).round().to(torch.uint8).numpy()
    return video, "a pan over a photograph", index % len(photos)


def _camera_view(camera: int, res: int) -> np.ndarray:
    """Camera k's fixed view: a square crop of bundled photo k % 2 at a place set by k, float32 [res, res, 3]."""
    from sklearn.datasets import load_sample_images
    photo = np.array(load_sample_images().images[camera % 2]).astype(np.float32)
    h, w = photo.shape[:2]
    rng = np.random.default_rng([13, camera])
    side = int(rng.uniform(0.55, 0.8) * h)
    y, x = int(rng.uniform(0, h - side)), int(rng.uniform(0, w - side))
    t = torch.from_numpy(photo[y:y + side, x:x + side]).permute(2, 0, 1)[None]
    return F.interpolate(t, size=(res, res), mode="area")[0].permute(1, 2, 0).numpy()


def render_street(index: int, frames: int = 32, res: int = 96, cameras: int = 1):
    """One clip of a static camera: figures walking across camera (index % cameras)'s view, uint8 [T, res, res, 3].
    Figures are further away (smaller, slower) higher up in the frame; each keeps its colours and speed."""
    camera = index % cameras
    base = _camera_view(camera, res)
    rng = np.random.default_rng([17, index])
    yy, xx = np.mgrid[0:res, 0:res].astype(np.float32)
    walkers = []
    for _ in range(int(rng.integers(2, 6))):
        depth = rng.uniform(0.55, 1.0)                         # 1: near the camera (bottom of the frame)
        height = depth * 0.24 * res
        ground = res * (0.45 + 0.5 * depth)
        speed = depth * rng.uniform(0.5, 1.4) * rng.choice([-1, 1])
        x0 = rng.uniform(-0.1 * res, 1.1 * res)
        walkers.append((depth, height, ground, speed, x0, rng.uniform(20, 235, 3), rng.uniform(20, 235, 3),
                        rng.uniform(0, 2 * np.pi)))
    out = np.repeat(base[None], frames, axis=0)
    for depth, height, ground, speed, x0, shirt, legs, phase in sorted(walkers, key=lambda w: w[0]):
        for t in range(frames):
            cx = x0 + speed * t
            frame = out[t]
            wdt = 0.28 * height
            body = ((xx - cx) / (0.5 * wdt)) ** 2 + ((yy - (ground - 0.62 * height)) / (0.28 * height)) ** 2 <= 1
            head = (xx - cx) ** 2 + (yy - (ground - 0.9 * height)) ** 2 <= (0.11 * height) ** 2
            swing = 0.18 * height * np.sin(phase + 0.35 * abs(speed) * t / depth)
            legs_mask = np.zeros_like(body)
            for s in (swing, -swing):                          # two legs: thin quads from the hip to the foot
                u = (yy - (ground - 0.4 * height)) / (0.4 * height)
                lx = cx + s * u
                legs_mask |= (u >= 0) & (u <= 1) & (np.abs(xx - lx) <= 0.07 * height + 0.4)
            frame[body] = shirt
            frame[legs_mask] = legs
            frame[head] = (215, 170, 140)
    out += rng.normal(0, 2.0, out.shape)
    return np.clip(out, 0, 255).round().astype(np.uint8), "people walking past a static camera", camera


def _write(args):
    kind, out, index, frames, cameras = args
    torch.set_num_threads(1)
    if kind == "street":
        video, caption, label = render_street(index, frames, cameras=cameras)
    else:
        video, caption, label = (render_digits if kind == "digits" else render_pan)(index, frames)
    name = f"{index:05d}.mp4"
    write_mp4(Path(out) / name, video, fps=16, crf=20)
    return {"file": name, "caption": caption, "label": label}


@click.command()
@click.option("--kind", type=click.Choice(["digits", "pans", "street"]), required=True)
@click.option("--out", type=click.Path(file_okay=False), required=True)
@click.option("--num", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--frames", type=click.IntRange(min=2), default=16, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True,
              help="First clip index (a held-out test set uses another range).")
@click.option("--cameras", type=click.IntRange(min=1), default=1, show_default=True,
              help="street: how many static cameras (views) the clips come from.")
@click.option("--workers", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default=True)
def main(kind, out, num, frames, offset, cameras, workers):
    """Write NUM held-out clips of KIND to OUT with a metadata.jsonl of captions."""
    Path(out).mkdir(parents=True, exist_ok=True)
    jobs = [(kind, out, offset + i, frames, cameras) for i in range(num)]
    with ProcessPoolExecutor(workers) as pool:
        rows = list(pool.map(_write, jobs, chunksize=16))
    with open(Path(out) / "metadata.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    click.echo(f"wrote {num} {kind} clips to {out}")


if __name__ == "__main__":
    main()
