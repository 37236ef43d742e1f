"""Object identity for the analysis: a small crop classifier trained by reelgan on the real data, plus the
colour of shapes, turning each detection into a label ('7', 'red circle') and a confidence.

The classifier sees a 16 x 16 brightness crop around a detection, so one network serves every resolution.
Besides the dataset's classes it has a 'pair' class (two or more overlapping objects fused into one blob,
which a connected-component detector cannot separate: the analysis counts such a blob as two objects) and
a 'junk' class (noise blobs, half objects), trained so that a smeared or broken object from an untrained
generator is not confidently called a digit. Trained on the train split (digits: the train digit images)
and scored on the held-out test split.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from gan.data.builtin import PALETTE, BouncingShapes, MovingDigits
from gan.metrics import trained
from gan.metrics.detect import Detection

CROP = 16                                   # classifier input size (pixels)
PAIR = "pair"                               # label of blobs of two or more overlapping objects
JUNK = "?"                                  # label of crops that are no recognisable object
CLASS_NAMES = {"digits": MovingDigits.class_names, "shapes": BouncingShapes.class_names}
_PALETTE_NAMES = list(PALETTE)
_PALETTE_RGB = np.array([PALETTE[c] for c in _PALETTE_NAMES], np.float32)   # [6, 3]


class CropClassifier(nn.Module):
    """`[N, 1, 16, 16]` brightness in [0, 1] -> logits `[N, classes + 2]` (then pair, then junk)."""

    def __init__(self,
                 num_classes: int):         # dataset classes; 'pair' and 'junk' are added
        super().__init__()
        self.num_classes = num_classes
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),           # 8 x 8
            nn.Conv2d(32, 64, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2),          # 4 x 4
            nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(), nn.Linear(128, num_classes + 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dim() == 4 and x.shape[1:] == (1, CROP, CROP), f"expected [N, 1, {CROP}, {CROP}], got {tuple(x.shape)}"
        return self.net(x)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes} + pair + junk, crop={CROP}px"


def crop_boxes(boxes: np.ndarray, resolution: int) -> np.ndarray:
    """Square crop windows `[N, 4]` (x0, y0, x1, y1) around detection boxes, with a one-pixel margin."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    half = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / 2 + 1.0
    return np.stack([cx - half, cy - half, cx + half, cy + half], axis=1)


def extract_crops(frames: np.ndarray, frame_index: Sequence[int], windows: np.ndarray) -> torch.Tensor:
    """Bilinear crops `[N, 1, 16, 16]` of brightness (max over RGB / 255) from uint8 `[T, H, W, 3]`.

    `windows` are (x0, y0, x1, y1) in pixels; outside the frame reads as black background.
    """
    from torchvision.ops import roi_align
    if len(frame_index) == 0:
        return torch.zeros(0, 1, CROP, CROP)
    value = torch.from_numpy(np.ascontiguousarray(frames.max(axis=-1))).float().div(255.0)[:, None]  # [T, 1, H, W]
    rois = torch.cat([torch.as_tensor(frame_index, dtype=torch.float32)[:, None],
                      torch.as_tensor(windows, dtype=torch.float32)], dim=1)          # [N, 5]
    return roi_align(value, rois, output_size=CROP, spatial_scale=1.0, sampling_ratio=2, aligned=True)


def nearest_colour(frame: np.ndarray, box) -> Tuple[str, float]:
    """Palette colour name of the bright pixels in `box`, and its distance to the palette entry (0..1)."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    region = frame[max(0, y0):max(0, y1), max(0, x0):max(0, x1)].reshape(-1, 3).astype(np.float32)
    if len(region) == 0:
        return JUNK, 1.0
    bright = region[region.max(axis=1) >= 0.5 * region.max()]
    mean = bright.mean(axis=0)
    dist = np.linalg.norm(_PALETTE_RGB - mean, axis=1)
    i = int(dist.argmin())
    return _PALETTE_NAMES[i], float(dist[i] / 255.0)


class ObjectLabeler:
    """Labels detections of one dataset: `label(frames, items) -> [(label, confidence)]`.

    confidence is the classifier's probability of its best *real* class (pair and junk never count), so it
    measures recognisability; the label is PAIR or JUNK when one of those classes wins.
    """

    def __init__(self, dataset: str, allow_train: bool = True, path=None):
        from gan.metrics.classifier_train import classifier_recipe, train_classifier
        if dataset not in CLASS_NAMES:
            raise ValueError(f"object classifiers exist for {sorted(CLASS_NAMES)}, not '{dataset}'")
        self.dataset = dataset
        self.class_names = list(CLASS_NAMES[dataset])
        state, self.info = trained.load_or_train("classifier", dataset, classifier_recipe(dataset),
                                                 train_classifier, allow_train, path)
        self.net = CropClassifier(len(self.class_names))
        self.net.load_state_dict(state)
        self.net.eval().requires_grad_(False)

    @torch.no_grad()
    def probabilities(self, frames: np.ndarray, items: Sequence[Tuple[int, Detection]]) -> np.ndarray:
        """`[N, classes + 2]` softmax for (frame index, detection) pairs (columns: classes, pair, junk)."""
        if not items:
            return np.zeros((0, len(self.class_names) + 2), np.float32)
        windows = crop_boxes(np.array([d.box for _, d in items]), frames.shape[1])
        crops = extract_crops(frames, [k for k, _ in items], windows)
        return torch.softmax(self.net(crops), dim=1).numpy()

    def label(self, frames: np.ndarray, items: Sequence[Tuple[int, Detection]]) -> List[Tuple[str, float]]:
        probs = self.probabilities(frames, items)
        out = []
        c = len(self.class_names)
        for (k, d), p in zip(items, probs):
            best = int(p[:c].argmax())
            conf = float(p[best])
            name = self.class_names[best] if p[best] >= p[c:].max() else (PAIR if p[c] >= p[c + 1] else JUNK)
            if self.dataset == "shapes" and name not in (PAIR, JUNK):
                colour, _ = nearest_colour(frames[k], d.box)
                name = f"{colour} {name}"
            out.append((name, conf))
        return out

    def describe(self) -> Dict:
        return {"dataset": self.dataset, "classes": self.class_names, "sha256": self.info["sha256"],
                "held_out": self.info["scores"], "file": self.info["file"]}
