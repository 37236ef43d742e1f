"""Multi-object tracking across the frames of one clip, aware of occlusions.

Online association with constant-velocity prediction and Hungarian matching (scipy linear_sum_assignment)
inside a distance gate. Two objects that overlap become one connected component; the tracker keeps both
tracks alive through such a merge ("shared" points at the predicted positions), and a track that starts by
splitting off another object's blob is extended backwards through the merge. So objects that cross each
other in real data do not count as vanishing and reappearing, while an object that really disappears,
pops up from nowhere or jumps further than the gate does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from gan.analysis.detect import Detection

Box = Tuple[float, float, float, float]


@dataclass
class TrackPoint:
    frame: int
    center: Tuple[float, float]          # (x, y) in pixels
    box: Box                             # x0, y0, x1, y1
    detection: Optional[int]             # index into the frame's detections (None: not detected there)
    shared: bool = False                 # the detection holds another object too (merge): position predicted

    @property
    def own(self) -> bool:
        """A clean observation of this object alone (used for identity and motion)."""
        return self.detection is not None and not self.shared


@dataclass
class Track:
    id: int
    points: List[TrackPoint] = field(default_factory=list)

    @property
    def first(self) -> int:
        return self.points[0].frame

    @property
    def last(self) -> int:
        return self.points[-1].frame

    def at(self, frame: int) -> Optional[TrackPoint]:
        for p in self.points:
            if p.frame == frame:
                return p
        return None

    def velocity(self, max_speed: float = np.inf) -> np.ndarray:
        """Pixels per frame: median of the last three steps between own points (0 with fewer than two),
        clamped to `max_speed` (a blob's centroid jumps when two objects merge or split)."""
        own = [p for p in self.points if p.own][-4:]
        if len(own) < 2:
            return np.zeros(2)
        steps = [(np.array(b.center) - np.array(a.center)) / (b.frame - a.frame) for a, b in zip(own, own[1:])]
        v = np.median(np.stack(steps), axis=0)
        speed = float(np.hypot(*v))
        return v * (max_speed / speed) if speed > max_speed else v

    def predict(self, frame: int, max_speed: float = np.inf) -> Tuple[np.ndarray, Box]:
        last = self.points[-1]
        shift = self.velocity(max_speed) * (frame - last.frame)
        x0, y0, x1, y1 = last.box
        return np.array(last.center) + shift, (x0 + shift[0], y0 + shift[1], x1 + shift[0], y1 + shift[1])


def _inside(box: Box, xy, margin: float) -> bool:
    return box[0] - margin <= xy[0] <= box[2] + margin and box[1] - margin <= xy[1] <= box[3] + margin


def _touch(a: Box, b: Box, margin: float) -> bool:
    return a[0] - margin < b[2] and b[0] - margin < a[2] and a[1] - margin < b[3] and b[1] - margin < a[3]


class Tracker:
    def __init__(self,
                 gate: float = 0.25,        # largest frame-to-frame match distance, as a fraction of the width
                 min_gate: float = 3.0,     # ... but at least this many pixels
                 max_gap: int = 2,          # frames a track may go undetected before it ends
                 margin: float = 1.0,       # pixels of slack for "inside a box" tests
                 attach: float = 0.15,      # a merged track stays with a blob this near (fraction of the width)
                 max_speed: float = 0.1):   # predictions never move faster (fraction of the width per frame)
        self.gate, self.min_gate, self.max_gap, self.margin = gate, min_gate, max_gap, margin
        self.attach, self.max_speed = attach, max_speed

    def track(self, detections: Sequence[List[Detection]], resolution: int) -> List[Track]:
        """detections: one list per frame -> tracks sorted by id (ids in order of appearance)."""
        gate = max(self.min_gate, self.gate * resolution)
        tracks: List[Track] = []
        active: List[Track] = []
        for k, dets in enumerate(detections):
            preds = [t.predict(k, self.max_speed * resolution) for t in active]
            matched: Dict[int, int] = {}                               # track position in active -> det index
            if active and dets:
                cost = np.array([[np.hypot(*(p[0] - np.array(d.center))) for d in dets] for p in preds])
                rows, cols = linear_sum_assignment(np.where(cost <= gate, cost, 1e9))
                matched = {int(r): int(c) for r, c in zip(rows, cols) if cost[r, c] <= gate}
            owner = {j: i for i, j in matched.items()}                  # det index -> track position
            for i, j in matched.items():
                d = dets[j]
                active[i].points.append(TrackPoint(k, tuple(d.center), tuple(d.box), j))
            for j, d in enumerate(dets):
                if j in owner:
                    continue
                host = self._fragment_host(d, dets, owner, active, k)
                if host is not None:                                    # a split-off piece of a tracked object
                    continue
                t = Track(len(tracks))
                t.points.append(TrackPoint(k, tuple(d.center), tuple(d.box), j))
                tracks.append(t)
                active.append(t)
                owner[j] = len(active) - 1
            for i, t in enumerate(list(active)):
                if i in matched or t.first == k:
                    continue
                centre, box = preds[i]
                # Merged into another object's blob; once merged, a track stays with a blob it drifts out of
                # (its velocity came from biased centroids) as long as it is near: that blob still hides it.
                reach = self.attach * resolution if t.points[-1].shared else self.margin
                j = next((j for j in owner if _inside(dets[j].box, centre, reach)), None)
                if j is not None:
                    x0, y0, x1, y1 = dets[j].box
                    shift = np.clip(centre, (x0, y0), (x1, y1)) - centre
                    centre = centre + shift
                    box = (box[0] + shift[0], box[1] + shift[1], box[2] + shift[0], box[3] + shift[1])
                    t.points.append(TrackPoint(k, tuple(centre), box, j, shared=True))
                    host = active[owner[j]]
                    other = host.points[-1]
                    if other.frame == k and not other.shared and len(host.points) > 1:
                        # The blob's centroid mixes two objects: the host continues from its own prediction.
                        other_centre, other_box = preds[owner[j]] if owner[j] < len(preds) else (other.center,
                                                                                                  other.box)
                        host.points[-1] = TrackPoint(k, tuple(other_centre), tuple(other_box), j, shared=True)
                    elif other.frame == k:
                        other.shared = True
            active = [t for t in active if k - t.last <= self.max_gap]
        for t in tracks:
            self._extend_backwards(t, tracks, resolution)
        return tracks

    def _fragment_host(self, d: Detection, dets, owner, active, k) -> Optional[int]:
        """A small unmatched component touching a matched object's box is a piece of that object."""
        for j, i in owner.items():
            host = dets[j]
            if d.area < 0.5 * host.area and _touch(d.box, host.box, self.margin):
                p = active[i].points[-1]
                if p.frame == k and p.detection == j:
                    x0, y0, x1, y1 = p.box
                    box = (min(x0, d.box[0]), min(y0, d.box[1]), max(x1, d.box[2]), max(y1, d.box[3]))
                    w = host.area / (host.area + d.area)
                    centre = tuple(w * np.array(p.center) + (1 - w) * np.array(d.center))
                    active[i].points[-1] = TrackPoint(k, centre, box, j, p.shared)
                return i
        return None

    def _extend_backwards(self, t: Track, tracks: List[Track], resolution: int) -> None:
        """A track born inside another track's blob was hidden in it: add shared points back through it
        (walking back at its first velocity, held inside the blob as in the forward pass)."""
        own = [p for p in t.points if p.own][:2]
        if t.first == 0 or not own:
            return
        velocity = np.zeros(2)
        if len(own) == 2:
            velocity = (np.array(own[1].center) - np.array(own[0].center)) / (own[1].frame - own[0].frame)
            speed = float(np.hypot(*velocity))
            velocity *= min(1.0, self.max_speed * resolution / max(speed, 1e-9))
        centre, box = np.array(t.points[0].center), t.points[0].box
        reach = self.margin
        added = []
        for k in range(t.first - 1, -1, -1):
            centre = centre - velocity
            box = (box[0] - velocity[0], box[1] - velocity[1], box[2] - velocity[0], box[3] - velocity[1])
            host = next((o.at(k) for o in tracks if o is not t and o.at(k) is not None
                         and _inside(o.at(k).box, centre, reach)), None)
            if host is None:
                break
            x0, y0, x1, y1 = host.box
            shift = np.clip(centre, (x0, y0), (x1, y1)) - centre
            centre = centre + shift
            box = (box[0] + shift[0], box[1] + shift[1], box[2] + shift[0], box[3] + shift[1])
            added.append(TrackPoint(k, tuple(centre), box, host.detection, shared=True))
            host.shared = True
            reach = self.attach * resolution
        t.points[:0] = added[::-1]
