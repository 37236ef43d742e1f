"""Annotated videos of the analysis: boxes in a colour per track, 'id:label confidence' tags, the clip's flags.

Frames are upscaled (nearest neighbour, so pixels stay honest) until tags are legible, then tiled into one
grid mp4 with gan.video_io.make_grid.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import numpy as np
from PIL import Image, ImageDraw

from gan.video_io import make_grid, write_mp4

_TRACK_COLOURS = [(255, 80, 80), (80, 200, 255), (120, 255, 120), (255, 200, 60), (220, 120, 255),
                  (255, 140, 200), (160, 160, 160), (60, 255, 220)]


def annotate_clip(frames: np.ndarray, report: Dict, min_size: int = 192) -> np.ndarray:
    """uint8 `[T, H, W, 3]` + analyze() report -> annotated uint8 `[T, H*s, W*s, 3]`."""
    t, h, w, _ = frames.shape
    scale = max(1, int(np.ceil(min_size / max(h, w))))
    out = np.empty((t, h * scale, w * scale, 3), np.uint8)
    flags = ",".join(report["flags"]) or "clean"
    for k in range(t):
        image = Image.fromarray(frames[k]).resize((w * scale, h * scale), Image.NEAREST)
        draw = ImageDraw.Draw(image)
        for tr in report["tracks"]:
            point = next((p for p in tr["points"] if p["frame"] == k), None)
            if point is None:
                continue
            colour = _TRACK_COLOURS[tr["id"] % len(_TRACK_COLOURS)]
            x0, y0, x1, y1 = (v * scale for v in point["box"])
            draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=colour, width=1 if point["shared"] else 2)
            label = point["label"] if point["label"] is not None else ("merged" if point["shared"] else "-")
            conf = f" {point['confidence']:.2f}" if point["confidence"] is not None else ""
            draw.text((x0 + 1, max(0, y0 - 11)), f"{tr['id']}:{label}{conf}", fill=colour, stroke_width=1,
                      stroke_fill=(0, 0, 0))
        draw.text((2, h * scale - 12), f"{k:03d} {flags}", fill=(255, 255, 0) if report["flags"] else (200, 200, 200),
                  stroke_width=1, stroke_fill=(0, 0, 0))
        out[k] = np.asarray(image)
    return out


def write_annotated(path: Path, clips: Sequence[np.ndarray], reports: Sequence[Dict], fps: float = 8.0,
                    max_clips: int = 16) -> Path:
    """Annotate the first `max_clips` clips and write them as one grid mp4."""
    n = min(len(clips), max_clips)
    if n == 0:
        raise ValueError("no clips to annotate")
    videos = np.stack([annotate_clip(clips[i], reports[i]) for i in range(n)])   # [N, T, H', W', 3]
    write_mp4(path, make_grid(videos), fps)
    return Path(path)
