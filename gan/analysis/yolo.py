"""YOLO in the analysis: an ultralytics model as the `Detector`, its own tracker (ByteTrack / BoT-SORT) as the
tracker. Optional: `pip install "reelgan[yolo]"` (ultralytics and the `lap` solver its trackers import).

    detector = UltralyticsDetector("yolo11n_digits.pt")
    analyzer = ClipAnalyzer(labeler, detector, tracker=DetectorTracks())

`detect(frames)` runs `model.track` over the clip frame by frame (the tracker is reset at each clip's first
frame), so every Detection carries ultralytics' track id; `DetectorTracks` turns those ids into the analysis'
Tracks instead of re-associating boxes itself. Weights may also be a model YAML (e.g. 'yolov8n.yaml'), which
builds an untrained model: plumbing tests only, nothing is downloaded.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from gan.analysis.detect import Detection
from gan.analysis.track import Track, TrackPoint

INSTALL_HINT = 'pip install "reelgan[yolo]"'


def load_yolo(weights):
    """An ultralytics YOLO from a weights file (.pt) or a model YAML; one-line errors for a missing file or
    package. Sets YOLO_OFFLINE so that ultralytics does not probe the network."""
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"YOLO weights not found: {path} (pass --weights with a .pt file you have, "
                                f"e.g. one trained on `generate.py --labels yolo --dataset DIR`)")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    try:
        from ultralytics import YOLO
    except ImportError:
        raise RuntimeError(f"--detector ultralytics needs the ultralytics package: {INSTALL_HINT}") from None
    return YOLO(str(path), task="detect")


class UltralyticsDetector:
    """`Detector` over an ultralytics YOLO model, tracking with ultralytics' own tracker."""

    def __init__(self,
                 weights=None,                       # .pt file (or model YAML: untrained, tests only)
                 conf: float = 0.25,                 # boxes below this confidence are dropped
                 tracker: str = "bytetrack.yaml",    # ultralytics tracker config: bytetrack.yaml, botsort.yaml, a path
                 imgsz: Optional[int] = None,        # inference size [default: the frame size, rounded to 32]
                 device: str = "cpu",
                 model=None):                        # an already built YOLO instead of `weights`
        if model is None and weights is None:
            raise ValueError("UltralyticsDetector needs weights (a .pt file) or a model")
        self.model = model if model is not None else load_yolo(weights)
        self.weights, self.conf, self.tracker, self.imgsz, self.device = weights, conf, tracker, imgsz, device

    def detect(self, frames: np.ndarray) -> List[List[Detection]]:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"detect expects uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
        imgsz = self.imgsz or max(32, -(-frames.shape[1] // 32) * 32)
        names = self.model.names
        out = []
        for k, frame in enumerate(frames):
            # ultralytics reads numpy frames as BGR (OpenCV); persist=False at k = 0 starts a fresh tracker.
            r = self.model.track(np.ascontiguousarray(frame[..., ::-1]), persist=k > 0, tracker=self.tracker,
                                 conf=self.conf, imgsz=imgsz, device=self.device, verbose=False)[0]
            boxes = r.boxes
            ids = boxes.id.int().tolist() if boxes.id is not None else [None] * len(boxes)
            dets = []
            for xyxy, score, cls, tid in zip(boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.int().tolist(), ids):
                x0, y0, x1, y1 = xyxy
                box = (int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1)))
                dets.append(Detection(box=box, center=((x0 + x1) / 2, (y0 + y1) / 2),
                                      area=max(1, (box[2] - box[0]) * (box[3] - box[1])), score=float(score),
                                      label=str(names[cls]), confidence=float(score), track_id=tid))
            out.append(dets)
        return out

    def __repr__(self) -> str:
        return (f"UltralyticsDetector(weights={str(self.weights)!r}, conf={self.conf}, tracker={self.tracker!r}, "
                f"imgsz={self.imgsz})")


class DetectorTracks:
    """Tracker that keeps the detector's own track ids (Detection.track_id); boxes without an id (not yet
    confirmed by the detector's tracker) belong to no track."""

    def track(self, detections: Sequence[List[Detection]], resolution: int) -> List[Track]:
        tracks: Dict[int, Track] = {}
        for frame, dets in enumerate(detections):
            for i, d in enumerate(dets):
                if d.track_id is None:
                    continue
                tr = tracks.setdefault(d.track_id, Track(id=d.track_id))
                tr.points.append(TrackPoint(frame=frame, center=d.center, box=tuple(float(v) for v in d.box),
                                            detection=i))
        return [tracks[k] for k in sorted(tracks)]

    def __repr__(self) -> str:
        return "DetectorTracks()"
