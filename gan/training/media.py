"""TensorBoard media as StyleGAN users expect: animated grids of fakes (every sample) and of reals (step 0),
with the prompt or class of every grid cell in a text table beside them.

No moviepy: the grid is encoded as a GIF with Pillow (gan.video_io.encode_gif) and written as an image summary,
which TensorBoard's image dashboard plays animated (torch's add_video does the same, through moviepy).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from tensorboard.compat.proto.summary_pb2 import Summary

from gan.video_io import encode_gif, make_grid, to_uint8


def grid_columns(count: int) -> int:
    """Cells per row of the training sample grids (reals, fakes and their caption tables alike)."""
    return max(1, min(4, count))


def gif_summary(tag: str, frames: np.ndarray, fps: float) -> Summary:
    """An image summary holding uint8 `[T, H, W, 3]` as an animated GIF."""
    t, h, w, c = np.asarray(frames).shape
    image = Summary.Image(height=h, width=w, colorspace=c, encoded_image_string=encode_gif(frames, fps))
    return Summary(value=[Summary.Value(tag=tag, image=image)])


def caption_rows(cells: Sequence[str], columns: int) -> List[List[str]]:
    """A flat list of per-cell captions (grid reading order) cut into the grid's rows."""
    return [list(cells[i:i + columns]) for i in range(0, len(cells), columns)]


def caption_table(rows: Sequence[Sequence[str]]) -> str:
    """Markdown table laid out like the grid: cell (r, c) holds the caption of the clip at row r, column c."""
    cols = max(len(r) for r in rows)
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")    # noqa: E731
    lines = ["| | " + " | ".join(f"column {c + 1}" for c in range(cols)) + " |",
             "|---" * (cols + 1) + "|"]
    for r, row in enumerate(rows):
        cells = [esc(s) for s in row] + [""] * (cols - len(row))
        lines.append(f"| row {r + 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@torch.no_grad()
def real_grid(dataset, count: int, num_frames: int) -> Tuple[np.ndarray, Optional[List[List[str]]]]:
    """The first `count` videos of `dataset` from their first frame at stride 1 (as the fakes are rendered), as
    uint8 `[T, H', W', 3]`, and their captions (text data) or class names (labelled data) by grid row, else None.
    T is `num_frames`, or less where a video is shorter."""
    count = max(1, min(count, len(dataset)))
    items = [dataset.preview(i, num_frames) for i in range(count)]
    t = min(it["video"].shape[0] for it in items)
    video = torch.stack([it["video"][:t] for it in items])                    # [N, T, C, H, W]
    frames = make_grid(to_uint8(video), nrow=grid_columns(count))
    if "caption" in items[0]:
        cells = [it["caption"] for it in items]
    elif dataset.num_classes > 0:
        cells = [dataset.class_names[int(it["label"])] for it in items]
    else:
        return frames, None
    return frames, caption_rows(cells, grid_columns(count))

