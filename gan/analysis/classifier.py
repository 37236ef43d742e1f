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

from gan.data.builtin import PALETTE, BouncingShapes, MovingDigits
from gan import trained_nets
from gan.analysis.classifier_net import CropClassifier, crop_boxes, extract_crops
from gan.analysis.classifier_train import classifier_recipe, train_classifier
from gan.analysis.detect import Detection

PAIR = "pair"                               # label of blobs of two or more overlapping objects
JUNK = "?"                                  # label of crops that are no recognisable object
CLASS_NAMES = {"digits": MovingDigits.class_names, "shapes": BouncingShapes.class_names}
_PALETTE_NAMES = list(PALETTE)
_PALETTE_RGB = np.array([PALETTE[c] for c in _PALETTE_NAMES], np.float32)   # [6, 3]


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
        if dataset not in CLASS_NAMES:
            raise ValueError(f"object classifiers exist for {sorted(CLASS_NAMES)}, not '{dataset}'")
        self.dataset = dataset
        self.class_names = list(CLASS_NAMES[dataset])
        state, self.info = trained_nets.load_or_train("classifier", dataset, classifier_recipe(dataset),
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
