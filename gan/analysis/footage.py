"""Scores of camera footage that need no network: is the scene drawn right, do things move through it as
persistent regions, does a moving camera slide rather than melt, does a face keep its identity.

The primitives (luma, phase correlation, regions) live in gan/data/footage_kind.py, which reads the same
statistics off footage at prepare time. All read clips uint8 [N, T, H, W, 3] (real or generated) as luma at `SIZE` px in [0, 1]:
- scene error: mean |temporal median of each clip - the real footage's per-pixel median background|;
- foreground: pixels further than FG_THRESHOLD from that background; their share, and the moving regions per
  frame (connected components of at least MIN_AREA pixels);
- persistence: the share of regions with a region of the next frame whose centre is within 3 px;
- change: mean |frame t+1 - frame t| (flicker when high and no region persists);
- global motion: the shift between consecutive frames by phase correlation (px / frame, at SIZE px), and the
  change left after undoing it (a pan that slides leaves little; a scene that melts leaves a lot);
- identity: the distance of a clip's first and last frames' features (a fixed 16 px luma, normalised) over the
  distance of the first frames of two different clips (< 1: a clip keeps who is in it).
"""
from __future__ import annotations

from typing import Dict, Iterable, Optional

import numpy as np

from gan.data.footage_kind import FG_THRESHOLD, SIZE, background, luma, phase_shift, regions  # noqa: F401

PERSIST_PX = 3.0            # a region is found again when a region of the next frame is centred this close


def _shifted(frame: np.ndarray, d: np.ndarray) -> np.ndarray:
    from scipy import ndimage
    return ndimage.shift(frame, d, order=1, mode="nearest")


def scores(clips: Iterable[np.ndarray], bg: Optional[np.ndarray], faces: bool = False) -> Dict[str, float]:
    """Every score above over batches of clips uint8 [N, T, H, W, 3]; bg: the real background (luma [SIZE, SIZE],
    None: the scene and foreground scores are left out)."""
    y = np.concatenate([luma(c) for c in clips])                           # [N, T, S, S]
    n, t = y.shape[:2]
    out: Dict[str, float] = {"clips": float(n)}
    change = np.abs(np.diff(y, axis=1)).mean(axis=(2, 3))                   # [N, T-1]
    out["change"] = float(change.mean())
    out["static_clips"] = float((change.mean(1) < 1e-3).mean())             # share of clips that do not move
    shifts = np.array([[phase_shift(y[i, k], y[i, k + 1]) for k in range(t - 1)] for i in range(n)])
    out["global_motion"] = float(np.linalg.norm(shifts, axis=-1).mean())    # px / frame
    m = 4                                                                   # border left out after the shift
    resid = [np.abs(_shifted(y[i, k], shifts[i, k]) - y[i, k + 1])[m:-m, m:-m].mean()
             for i in range(n) for k in range(t - 1)]
    out["compensated_change"] = float(np.mean(resid))
    if bg is not None:
        out["scene_error"] = float(np.abs(np.median(y, axis=1) - bg).mean())
        fg = np.abs(y - bg) > FG_THRESHOLD                                  # [N, T, S, S]
        out["foreground"] = float(fg.mean())
        counts, found, total = [], 0, 0
        for i in range(n):
            cents = [regions(fg[i, k]) for k in range(t)]
            counts += [len(c) for c in cents]
            for a, b in zip(cents[:-1], cents[1:]):
                if len(a) and len(b):
                    d = np.linalg.norm(a[:, None] - b[None], axis=-1).min(1)
                    found += int((d <= PERSIST_PX).sum())
                total += len(a)
        out["regions"] = float(np.mean(counts))
        out["persistence"] = float(found / total) if total else float("nan")
    if faces:
        out["identity"] = identity(y)
    return out


def identity_features(y: np.ndarray) -> np.ndarray:
    """Luma frames [..., S, S] -> 16 px, zero mean, unit norm features [..., 256] (a fixed, network-free feature)."""
    s = y.shape[-1]
    f = y.reshape(*y.shape[:-2], 16, s // 16, 16, s // 16).mean(axis=(-3, -1)).reshape(*y.shape[:-2], 256)
    f = f - f.mean(-1, keepdims=True)
    return f / (np.linalg.norm(f, axis=-1, keepdims=True) + 1e-6)


def identity(y: np.ndarray) -> float:
    """Luma clips [N, T, S, S] -> mean distance(first, last frame of a clip) / mean distance(first frames of clips
    i and i+1): below 1 when a clip keeps its identity better than two clips share one."""
    f = identity_features(y)
    within = np.linalg.norm(f[:, 0] - f[:, -1], axis=-1).mean()
    between = np.linalg.norm(f[:, 0] - np.roll(f[:, 0], 1, axis=0), axis=-1).mean()
    return float(within / max(between, 1e-6))
