"""The crop classifier of the analysis (classifier.py) and how crops are cut, apart from its training
(classifier_train.py) and its use (classifier.py), which both build on it."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn as nn

CROP = 16                                   # classifier input size (pixels)


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
