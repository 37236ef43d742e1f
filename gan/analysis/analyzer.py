"""Analysis of clips: detect and track the objects, then score what a viewer would notice.

Per clip (uint8 `[T, H, W, 3]`):
- tracks: how many objects were followed; `count_accuracy`: fraction of frames showing the expected number
  of objects (a blob the classifier calls 'pair', overlapping objects the detector cannot separate, counts
  as two; one it calls junk counts as none);
- object tracks: tracks whose majority label is a real class (every track when there are no labels);
  persistence, identity and motion are scored over them, and are 0 in a clip that has none;
- persistence: mean fraction of the clip each object track is present (1.0 when nothing vanishes or appears);
  events 'vanish' (a track ends before the last frame), 'appear' (one starts after the first);
- identity: per track, the fraction of its clean observations whose label is the track's majority label
  (junk counts against it, 'pair' blobs are skipped); event 'identity_switch' when another real label
  holds for `min_run` consecutive observations;
- recognisability: the classifier's confidence in its best real class, averaged over clean observations
  that are not 'pair' blobs;
- motion: between bounces the built-ins move at constant velocity, so the second difference of a track's
  position is ~0 except on the axis of a wall bounce; `motion_plausibility` is the fraction of steps within
  tolerance, and event 'teleport' is a step longer than any real object moves, or a track that ends in
  the frame before another one starts (a jump beyond the tracker's gate).
Flags per clip list the events; `clean` is a clip without any. `aggregate()` averages over clips.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from gan.data.builtin import SPEED_RANGE
from gan.analysis.classifier import JUNK, PAIR
from gan.analysis.detect import Detector, ThresholdDetector
from gan.analysis.track import Track, Tracker


@dataclass
class AnalysisConfig:
    expected_objects: Optional[int] = None  # objects per clip in the data (None: count is not scored)
    stride: float = 1.0                     # data frames between consecutive clip frames (scales speeds)
    min_run: int = 3                        # identity switch: this many consecutive frames of another label
    motion_tol: float = 0.75                # px of allowed second difference, plus 1.5% of the width
    max_speed: float = SPEED_RANGE[1]       # fastest real motion, fraction of the width per data frame


class ClipAnalyzer:
    """Detector + tracker + labeler (any may be swapped: see detect.Detector and classifier.ObjectLabeler)."""

    def __init__(self,
                 labeler=None,                         # ObjectLabeler or None (labels from the detector)
                 detector: Optional[Detector] = None,  # default: ThresholdDetector()
                 tracker: Optional[Tracker] = None,    # default: Tracker()
                 config: Optional[AnalysisConfig] = None):
        self.detector = detector or ThresholdDetector()
        if not isinstance(self.detector, Detector):
            raise TypeError(f"detector {self.detector!r} has no detect(frames) method (see gan.analysis.detect)")
        self.tracker = tracker or Tracker()
        self.labeler = labeler
        self.config = config or AnalysisConfig()

    def analyze(self, frames: np.ndarray) -> Dict:
        """Report dict for one clip; `report['tracks']` holds per-frame points for drawing."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"analyze expects uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
        t, res = frames.shape[0], frames.shape[2]
        detections = self.detector.detect(frames)
        tracks = self.tracker.track(detections, res)
        labels = self._labels(frames, detections, tracks)
        per_track = [self._track_report(tr, labels[tr.id], t, res) for tr in tracks]
        return self._clip_report(per_track, tracks, t)

    # ----- labels

    def _labels(self, frames, detections, tracks: List[Track]) -> Dict[int, Dict[int, tuple]]:
        """{track id: {frame: (label, confidence)}} for the clean (own) observations."""
        items, keys = [], []
        for tr in tracks:
            for p in tr.points:
                if p.own:
                    items.append((p.frame, detections[p.frame][p.detection]))
                    keys.append((tr.id, p.frame))
        if self.labeler is not None:
            values = self.labeler.label(frames, items)
        else:
            values = [(d.label, d.confidence) for _, d in items]          # (None, None): not scored
        out: Dict[int, Dict[int, tuple]] = {tr.id: {} for tr in tracks}
        for (tid, k), v in zip(keys, values):
            out[tid][k] = v
        return out

    # ----- per track

    def _track_report(self, tr: Track, labels: Dict[int, tuple], t: int, res: int) -> Dict:
        cfg = self.config
        seq = [labels[k] for k in sorted(labels) if labels[k][0] not in (PAIR, None)]  # pairs: like shared
        names = [n for n, _ in seq]
        confidences = [c for _, c in seq if c is not None]
        real = [n for n in names if n != JUNK]
        majority = max(set(real), key=real.count) if real else JUNK
        switch = _longest_other_run(names, majority) >= cfg.min_run if real else False
        pairs = {k for k, (name, _) in labels.items() if name == PAIR}    # fused blobs: centroid is not the object's
        steps, jumps = _motion_steps(tr, res, cfg, skip=pairs)
        jump_limit = max(3.0, 3 * cfg.max_speed * res * cfg.stride)
        return {
            "id": tr.id, "first": tr.first, "last": tr.last, "frames": len(tr.points),
            "presence": len(tr.points) / t,
            "label": majority,
            # An object track: one the classifier calls a real class (or any track when there are no labels).
            "is_object": bool(real) or not names,
            # A track that never looks like a real object has no identity to keep: 0, not 1.
            "identity_consistency": (names.count(majority) / len(names) if real else 0.0) if names else None,
            "identity_switch": bool(switch),
            "recognisability": float(np.mean(confidences)) if confidences else None,
            "motion_plausibility": float(np.mean(steps)) if steps else None,
            "max_step": float(max(jumps)) if jumps else 0.0,
            "teleport": bool(jumps and max(jumps) > jump_limit),
            "points": [{"frame": p.frame, "box": [round(float(v), 2) for v in p.box],
                        "center": [round(float(v), 2) for v in p.center], "shared": p.shared,
                        "detected": p.detection is not None,
                        "label": labels.get(p.frame, (None, None))[0],
                        "confidence": _round(labels.get(p.frame, (None, None))[1])} for p in tr.points],
        }

    # ----- per clip

    def _clip_report(self, per_track: List[Dict], tracks: List[Track], t: int) -> Dict:
        cfg = self.config
        vanish = [r["id"] for r in per_track if r["last"] < t - 1]
        appear = [r["id"] for r in per_track if r["first"] > 0]
        jumped = [r["id"] for r in per_track if r["first"] > 0 and any(       # ends here, starts over there
            e["last"] == r["first"] - 1 for e in per_track)]
        present = np.zeros(t, int)                                      # objects visible per frame
        for tr, r in zip(tracks, per_track):                            # junk is not an object
            for p, q in zip(tr.points, r["points"]):
                present[p.frame] += {PAIR: 2, JUNK: 0}.get(q["label"], 1)
        flags = []
        if vanish:
            flags.append("vanish")
        if appear:
            flags.append("appear")
        if any(r["teleport"] for r in per_track) or jumped:
            flags.append("teleport")
        if any(r["identity_switch"] for r in per_track):
            flags.append("identity_switch")
        count_acc = float(np.mean(present == cfg.expected_objects)) if cfg.expected_objects else None
        # Persistence, identity and motion are scores of objects: a clip in which nothing is recognisable
        # (an untrained generator's washes and specks) scores 0 on them, not the 1 that a static blob would get.
        objects = [r for r in per_track if r["is_object"]]
        if count_acc is not None and count_acc < 0.8:
            flags.append("count")
        return {
            "frames": t,
            "num_tracks": len(per_track),
            "count_accuracy": count_acc,
            "num_objects": len(objects),
            "persistence": _mean([r["presence"] for r in objects], default=0.0),
            "identity_consistency": _mean([r["identity_consistency"] for r in objects],
                                          default=None if objects else 0.0),
            "recognisability": _mean([r["recognisability"] for r in per_track]),
            "motion_plausibility": _mean([r["motion_plausibility"] for r in objects],
                                         default=None if objects else 0.0),
            "events": {"vanish": vanish, "appear": appear, "teleport": sorted(
                {r["id"] for r in per_track if r["teleport"]} | set(jumped)),
                "identity_switch": [r["id"] for r in per_track if r["identity_switch"]]},
            "flags": flags,
            "clean": not flags,
            "tracks": per_track,
        }


def _longest_other_run(names: Sequence[str], majority: str) -> int:
    """Longest run of one real label other than the majority (junk frames neither extend nor break it)."""
    best, run, current = 0, 0, None
    for n in names:
        if n == JUNK:
            continue
        if n != majority and n == current:
            run += 1
        elif n != majority:
            run, current = 1, n
        else:
            run, current = 0, None
        best = max(best, run)
    return best


def _motion_steps(tr: Track, res: int, cfg: AnalysisConfig, skip=frozenset()):
    """(plausible flags of second differences, lengths of steps) over consecutive clean observations.

    A wall bounce reflects one velocity component between two frames, which changes it by at most twice
    the speed; so near a wall (within a quarter of the width: thin digits keep their box away from it)
    an axis may accelerate by up to 2x its speed. Everywhere else motion must be constant within `tol`.
    """
    own = {p.frame: p for p in tr.points if p.own and p.frame not in skip}
    tol = cfg.motion_tol + 0.015 * res
    margin = 0.25 * res
    ok, jumps = [], []
    for k, p in own.items():
        if k + 1 in own:
            jumps.append(float(np.hypot(*(np.array(own[k + 1].center) - np.array(p.center)))))
        if k - 1 in own and k + 1 in own:
            before = np.array(p.center) - np.array(own[k - 1].center)
            after = np.array(own[k + 1].center) - np.array(p.center)
            a = after - before
            x0, y0, x1, y1 = p.box
            near = [min(x0, res - x1) <= margin, min(y0, res - y1) <= margin]
            residual = [0.0 if near[i] and abs(a[i]) <= 2 * max(abs(before[i]), abs(after[i])) + tol else a[i]
                        for i in range(2)]
            ok.append(math.hypot(*residual) <= tol)
    return ok, jumps


def _mean(values: Iterable, default=None):
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else default


def _round(v):
    return None if v is None else round(float(v), 4)


SCORES = ("persistence", "count_accuracy", "identity_consistency", "recognisability", "motion_plausibility")


def aggregate(reports: Sequence[Dict]) -> Dict:
    """Means over clips of the per-clip scores, event rates and the fraction of clean clips."""
    out = {"clips": len(reports), "tracks_per_clip": _mean([r["num_tracks"] for r in reports], 0.0),
           "objects_per_clip": _mean([r["num_objects"] for r in reports], 0.0)}
    for key in SCORES:
        out[key] = _mean([r[key] for r in reports])
    for event in ("vanish", "appear", "teleport", "identity_switch", "count"):
        out[f"rate_{event}"] = _mean([event in r["flags"] for r in reports], 0.0)
    out["clean_clips"] = _mean([r["clean"] for r in reports], 0.0)
    return out
