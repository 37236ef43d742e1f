"""Held-out footage that reelgan's built-in renderer did not make, written as mp4 folders.

Two kinds, each drawn by code of its own (nothing from gan.data.builtin):
- `digits`: real handwritten digits from the other half of scikit-learn's set (its bundled 8x8 images,
  split here with a different rule), upscaled with torch's bilinear filter and a Gaussian blur, grey
  strokes alpha-composited over a grey background with film-like noise, another sprite size (0.3 of the
  frame, the built-in uses 0.42) and speed (0.6-1.6 px/frame), stored at 96 px as RGB mp4 (grey content).
- `pans`: camera pans with a slow zoom over scikit-learn's two bundled photographs (colour).

    python bench/footage.py --kind digits --out data/footage_digits --num 2000
    python bench/footage.py --kind pans --out data/footage_pans --num 1000
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


def _write(args):
    kind, out, index, frames = args
    torch.set_num_threads(1)
    video, caption, label = (render_digits if kind == "digits" else render_pan)(index, frames)
    name = f"{index:05d}.mp4"
    write_mp4(Path(out) / name, video, fps=16, crf=20)
    return {"file": name, "caption": caption, "label": label}


@click.command()
@click.option("--kind", type=click.Choice(["digits", "pans"]), required=True)
@click.option("--out", type=click.Path(file_okay=False), required=True)
@click.option("--num", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--frames", type=click.IntRange(min=2), default=16, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True,
              help="First clip index (a held-out test set uses another range).")
@click.option("--workers", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default=True)
def main(kind, out, num, frames, offset, workers):
    """Write NUM held-out clips of KIND to OUT with a metadata.jsonl of captions."""
    Path(out).mkdir(parents=True, exist_ok=True)
    jobs = [(kind, out, offset + i, frames) for i in range(num)]
    with ProcessPoolExecutor(workers) as pool:
        rows = list(pool.map(_write, jobs, chunksize=16))
    with open(Path(out) / "metadata.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    click.echo(f"wrote {num} {kind} clips to {out}")


if __name__ == "__main__":
    main()
