"""Object detection in frames: the pluggable `Detector` interface and the built-in threshold detector.

The built-in datasets draw bright objects on a black background, so thresholding the brightness and taking
connected components (scipy.ndimage.label) finds them with no weights at all. A stronger detector (e.g. a
user-installed YOLO) plugs in by implementing `Detector.detect`; see `CallableDetector` for a thin adapter:

    def run(frame):                                    # uint8 [H, W, 3] -> [(x0, y0, x1, y1, score, label)]
        return [(x0, y0, x1, y1, score, name) for ... in my_model(frame)]
    detector = CallableDetector(run)

YOLO through ultralytics (with its own tracker) ships as `gan.analysis.yolo.UltralyticsDetector`
(`pip install "reelgan[yolo]"`, `reelgan-analyze --detector ultralytics --weights PATH`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

import numpy as np
from scipy import ndimage


@dataclass
class Detection:
    box: Tuple[int, int, int, int]       # x0, y0, x1, y1 in pixels, x1/y1 exclusive
    center: Tuple[float, float]          # (x, y): brightness-weighted centroid, sub-pixel
    area: int                            # pixels above the threshold (box area for box-only detectors)
    score: float = 1.0                   # detector confidence in [0, 1]
    label: Optional[str] = None          # class name, for detectors that also classify
    confidence: Optional[float] = None   # that label's confidence
    track_id: Optional[int] = None       # set by detectors that track too (gan/analysis/yolo.py)

    @property
    def size(self) -> Tuple[int, int]:
        return self.box[2] - self.box[0], self.box[3] - self.box[1]

    def contains(self, x: float, y: float, margin: float = 0.0) -> bool:
        x0, y0, x1, y1 = self.box
        return x0 - margin <= x <= x1 + margin and y0 - margin <= y <= y1 + margin


@runtime_checkable
class Detector(Protocol):
    """Anything with `detect(frames uint8 [T, H, W, 3]) -> one list of Detection per frame`."""

    def detect(self, frames: np.ndarray) -> List[List[Detection]]:
        ...


_EIGHT = np.ones((3, 3), bool)         # 8-connectivity: diagonal stroke pixels belong together


class ThresholdDetector:
    """Bright objects on a dark background: brightness threshold, a small dilation that bridges gaps in thin
    strokes, connected components, and a minimum area that drops specks of noise."""

    def __init__(self,
                 threshold: float = 0.3,        # brightness (max over RGB, in [0, 1]) that counts as object
                 min_area: float = 0.002,       # smallest component, as a fraction of the frame area (>= 2 px)
                 dilate: int = 1):              # dilation radius in pixels before labelling (0: none)
        if not 0 < threshold < 1 or min_area < 0 or dilate < 0:
            raise ValueError(f"ThresholdDetector needs 0 < threshold < 1, min_area >= 0, dilate >= 0; "
                             f"got {threshold}, {min_area}, {dilate}")
        self.threshold, self.min_area, self.dilate = threshold, min_area, dilate

    def detect(self, frames: np.ndarray) -> List[List[Detection]]:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"detect expects uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
        return [self._frame(f) for f in frames]

    def _frame(self, frame: np.ndarray) -> List[Detection]:
        value = frame.max(axis=-1).astype(np.float32) / 255.0     # [H, W] brightness
        mask = value > self.threshold
        grown = ndimage.binary_dilation(mask, _EIGHT, iterations=self.dilate) if self.dilate else mask
        labels, count = ndimage.label(grown, structure=_EIGHT)
        labels = np.where(mask, labels, 0)                        # measure the object, not the dilation
        min_pixels = max(2, self.min_area * frame.shape[0] * frame.shape[1])
        out = []
        for index, sl in enumerate(ndimage.find_objects(labels), start=1):
            if sl is None:
                continue
            own = labels[sl] == index
            area = int(own.sum())
            if area < min_pixels:
                continue
            weight = value[sl] * own
            ys, xs = np.mgrid[sl[0], sl[1]]
            total = float(weight.sum())
            cx, cy = float((weight * xs).sum() / total), float((weight * ys).sum() / total)
            rows, cols = np.nonzero(own)
            box = (sl[1].start + int(cols.min()), sl[0].start + int(rows.min()),
                   sl[1].start + int(cols.max()) + 1, sl[0].start + int(rows.max()) + 1)
            out.append(Detection(box=box, center=(cx + 0.5, cy + 0.5), area=area))
        return out

    def __repr__(self) -> str:
        return f"ThresholdDetector(threshold={self.threshold}, min_area={self.min_area}, dilate={self.dilate})"


class CallableDetector:
    """Adapter for box detectors: `fn(frame uint8 [H, W, 3]) -> [(x0, y0, x1, y1, score[, label]), ...]`."""

    def __init__(self,
                 fn: Callable[[np.ndarray], Sequence[tuple]],
                 min_score: float = 0.25):      # boxes below this score are dropped
        self.fn, self.min_score = fn, min_score

    def detect(self, frames: np.ndarray) -> List[List[Detection]]:
        out = []
        for frame in np.asarray(frames):
            dets = []
            for item in self.fn(frame):
                x0, y0, x1, y1, score = (float(v) for v in item[:5])
                if score < self.min_score:
                    continue
                label = str(item[5]) if len(item) > 5 else None
                box = (int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1)))
                dets.append(Detection(box=box, center=((x0 + x1) / 2, (y0 + y1) / 2),
                                      area=max(1, (box[2] - box[0]) * (box[3] - box[1])), score=score,
                                      label=label, confidence=score if label is not None else None))
            out.append(dets)
        return out
