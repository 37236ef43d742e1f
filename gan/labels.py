"""Object labels for generated clips, free from the layered generators: boxes, track ids and classes.

The layered G (gan/networks/layered.py) places every object's sprite itself and composites the sprites in slot
order, and the layered image-to-video G (gan/networks/conditional.py) moves object layers the same way, so the
boxes need no detector: object k's visible alpha in a frame is its own alpha times the transparency of every
layer in front of it,

    visible_k = a_k * prod_{j > k} (1 - a_j)            (slot 0 at the back, as `alpha_over` composites),

and its box is the tight box of the pixels where visible_k > threshold. Sprites are resampled into the frame
with zero padding, so a part outside the frame has no alpha (boxes are clipped to the frame); an object that is
out of the frame or fully covered has no pixel over the threshold and is left out of that frame. The track id
is the object's slot (1-based, stable for the whole clip); the class is the clip's class for class-conditional
models, else 0 ('object'): the unconditional G does not know what its objects are. The layered image-to-video G
labels the K objects it split off the still; smaller objects past the K largest stay in its background and
get no box.

Sampling feeds these from the clips it renders (gan/sampling/sinks.py). Writers: YOLO (one txt per frame), COCO (one json per clip, `track_id` on each annotation), MOTChallenge
(one txt per clip, with visibility), and `YoloDataset`: the folder layout ultralytics trains from
(images/{train,val}, labels/{train,val}, data.yaml).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch

from gan.errors import ReelganError
from gan.networks import VideoGenerator

FORMATS = ("yolo", "coco", "mot")


class LabelError(ReelganError, ValueError):
    pass


@dataclass(frozen=True)
class ObjectBox:
    frame: int                 # 0-based frame index in the clip
    track: int                 # 1-based object id, stable over the clip (the layer's slot + 1)
    cls: int                   # class index (0 for models that do not know classes)
    box: tuple                 # x0, y0, x1, y1 in pixels, x1 / y1 exclusive, inside the frame
    visibility: float          # visible alpha / alpha inside the frame (1: nothing in front of it)


def require_layered(G) -> None:
    """Labels come from the layered generators' own placement; the synthesis G has no objects to read."""
    if G.objects == 0:
        raise LabelError("labels need the layered generator (G.objects > 0); this model is the synthesis "
                         "generator, which has no objects to label")


def visible_alpha(alphas: torch.Tensor) -> torch.Tensor:
    """alphas [..., K, H, W] of layers in place (layer 0 at the back) -> each layer's visible alpha, same shape."""
    behind_front = torch.cumprod((1 - alphas).flip(-3), dim=-3).flip(-3)        # prod_{j >= k} (1 - a_j)
    in_front = torch.cat([behind_front[..., 1:, :, :], torch.ones_like(alphas[..., :1, :, :])], dim=-3)
    return alphas * in_front


def boxes_from_alpha(alphas: torch.Tensor, threshold: float = 0.5):
    """alphas [T, K, H, W] of layers in place -> (boxes [T, K, 4] long (x0, y0, x1, y1, exclusive), present [T, K]
    bool, visibility [T, K] float): tight boxes of the visible part (see the module doc)."""
    if alphas.ndim != 4:
        raise ValueError(f"alphas must be [T, K, H, W], got {tuple(alphas.shape)}")
    alphas = alphas.float()
    vis = visible_alpha(alphas)
    mask = vis > threshold
    h, w = mask.shape[-2:]
    rows, cols = mask.any(-1), mask.any(-2)                                      # [T, K, H], [T, K, W]
    ys, xs = torch.arange(h, device=mask.device), torch.arange(w, device=mask.device)
    y0 = torch.where(rows, ys, h).amin(-1)
    y1 = torch.where(rows, ys, -1).amax(-1) + 1
    x0 = torch.where(cols, xs, w).amin(-1)
    x1 = torch.where(cols, xs, -1).amax(-1) + 1
    visibility = vis.sum((-2, -1)) / alphas.sum((-2, -1)).clamp(min=1e-6)
    return torch.stack([x0, y0, x1, y1], -1), rows.any(-1), visibility.clamp(0, 1)


def clip_boxes(alphas: torch.Tensor, cls: int = 0, first_frame: int = 0, threshold: float = 0.5) -> List[ObjectBox]:
    """alphas [T, K, H, W] of one clip -> its ObjectBoxes, frame by frame, objects in slot order."""
    boxes, present, visibility = boxes_from_alpha(alphas, threshold)
    out = []
    for t, k in present.nonzero().tolist():
        out.append(ObjectBox(first_frame + t, k + 1, int(cls), tuple(int(v) for v in boxes[t, k].tolist()),
                             round(float(visibility[t, k]), 4)))
    return out


@torch.no_grad()
def conditional_labels(G: VideoGenerator, state: Dict, times: torch.Tensor,
                       threshold: float = 0.5) -> List[List[ObjectBox]]:
    """Labels of the clips that `G.render_prepared(state, times)` renders (times [B, T]), one list per clip."""
    require_layered(G)
    alphas = G.placed_layers(state, times)[:, :, :, -1]
    return [clip_boxes(a, 0, 0, threshold) for a in alphas]


# ---- writers -------------------------------------------------------------------------------------------------

def yolo_lines(boxes: Sequence[ObjectBox], width: int, height: int) -> List[str]:
    """'class cx cy w h' normalised to [0, 1] (the YOLO txt format), one line per box."""
    lines = []
    for b in boxes:
        x0, y0, x1, y1 = b.box
        lines.append(f"{b.cls} {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} "
                     f"{(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}")
    return lines


def by_frame(boxes: Sequence[ObjectBox], num_frames: int) -> List[List[ObjectBox]]:
    frames: List[List[ObjectBox]] = [[] for _ in range(num_frames)]
    for b in boxes:
        frames[b.frame].append(b)
    return frames


def write_yolo(folder: Path, boxes: Sequence[ObjectBox], num_frames: int, width: int, height: int) -> Path:
    """folder/000000.txt ... one file per frame (empty when no object is visible)."""
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(by_frame(boxes, num_frames)):
        lines = yolo_lines(frame, width, height)
        (folder / f"{t:06d}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    return folder


def write_coco(path: Path, boxes: Sequence[ObjectBox], num_frames: int, width: int, height: int,
               names: Sequence[str], video: str) -> Path:
    """One COCO json per clip: an image per frame, an annotation per box (bbox [x, y, w, h], plus track_id)."""
    images = [{"id": t + 1, "file_name": f"{video}#{t:06d}", "frame_index": t, "width": width, "height": height}
              for t in range(num_frames)]
    anns = [{"id": i + 1, "image_id": b.frame + 1, "category_id": b.cls, "track_id": b.track,
             "bbox": [b.box[0], b.box[1], b.box[2] - b.box[0], b.box[3] - b.box[1]],
             "area": (b.box[2] - b.box[0]) * (b.box[3] - b.box[1]), "iscrowd": 0, "visibility": b.visibility}
            for i, b in enumerate(boxes)]
    cats = [{"id": i, "name": n} for i, n in enumerate(names)]
    path.write_text(json.dumps({"videos": [{"id": 1, "name": video}], "images": images, "annotations": anns,
                                "categories": cats}))
    return path


def write_mot(path: Path, boxes: Sequence[ObjectBox]) -> Path:
    """MOTChallenge ground truth: frame (1-based), id, left, top, width, height, 1, class, visibility."""
    lines = [f"{b.frame + 1},{b.track},{b.box[0]},{b.box[1]},{b.box[2] - b.box[0]},{b.box[3] - b.box[1]},1,"
             f"{b.cls},{b.visibility:.4f}" for b in sorted(boxes, key=lambda b: (b.frame, b.track))]
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    return path


def write_labels(fmt: str, clip_path: Path, boxes: Sequence[ObjectBox], num_frames: int, width: int, height: int,
                 names: Sequence[str]) -> Path:
    """Labels of one clip beside it: seed0000_yolo/ (per-frame txt), seed0000.coco.json or seed0000.mot.txt."""
    stem = clip_path.with_suffix("") if clip_path.suffix else clip_path
    if fmt == "yolo":
        return write_yolo(stem.parent / f"{stem.name}_yolo", boxes, num_frames, width, height)
    if fmt == "coco":
        return write_coco(stem.parent / f"{stem.name}.coco.json", boxes, num_frames, width, height, names,
                          clip_path.name)
    if fmt == "mot":
        return write_mot(stem.parent / f"{stem.name}.mot.txt", boxes)
    raise LabelError(f"unknown label format {fmt!r}: use one of {', '.join(FORMATS)}")


class YoloDataset:
    """The folder ultralytics trains from: images/{train,val}/*.png, labels/{train,val}/*.txt (same stems),
    data.yaml naming them and the classes. `add_clip` writes every frame of a clip as an image."""

    def __init__(self, root, names: Sequence[str]):
        self.root, self.names = Path(root), list(names)
        self.counts = {"train": 0, "val": 0}

    def add_clip(self, stem: str, frames_u8: np.ndarray, boxes: Sequence[ObjectBox], split: str = "train",
                 first: int = 0) -> None:
        """Frames first.. of a clip (uint8 [t, H, W, 3]) and the boxes of those frames (a clip may come in parts)."""
        from PIL import Image
        if split not in self.counts:
            raise ValueError(f"split must be train or val, got {split!r}")
        t, h, w = frames_u8.shape[:3]
        images, labels = self.root / "images" / split, self.root / "labels" / split
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        shifted = [ObjectBox(b.frame - first, b.track, b.cls, b.box, b.visibility) for b in boxes]
        for j, frame in enumerate(by_frame(shifted, t)):
            i = first + j
            Image.fromarray(frames_u8[j]).save(images / f"{stem}_{i:06d}.png")
            lines = yolo_lines(frame, w, h)
            (labels / f"{stem}_{i:06d}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
        self.counts[split] += t

    def finish(self) -> Path:
        """Writes data.yaml; val falls back to the train images when no clip went to val."""
        import yaml
        val = "images/val" if self.counts["val"] else "images/train"
        data = {"path": str(self.root.resolve()), "train": "images/train", "val": val,
                "names": {i: n for i, n in enumerate(self.names)}}
        path = self.root / "data.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path


def split_of(index: int, val_every: int = 5) -> str:
    """Every `val_every`-th clip (the 5th, 10th, ...) goes to val, the rest to train."""
    return "val" if val_every > 0 and index % val_every == val_every - 1 else "train"
