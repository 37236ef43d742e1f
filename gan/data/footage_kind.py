"""What kind of camera footage a video is, read off its frames at prepare time (no network):

- 'moving': the camera moves (pan, handheld, drone, dashcam): consecutive frames are shifted copies of each other
  (phase correlation finds a shift, and undoing it removes most of the change);
- 'subject': a static camera with one large moving thing filling much of the frame (a talking head, a person);
- 'static': a static camera with small things moving through a fixed scene (street, security, nature cameras).

Separate objects over a flat background (sprites) are found before this, by prepared.layout. The dataset's kind is
the most common kind of its videos; `suggest` turns it into generator settings (gan/networks/scene.py).
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np

SIZE = 64                      # luma side the statistics (and gan/analysis/footage.py's scores) are read at
FG_THRESHOLD = 0.08            # |luma - background| above this is foreground (codec noise on real footage: ~0.01)
MIN_AREA = 4                   # smallest region counted, in pixels at SIZE px


def luma(clips: np.ndarray, size: int = SIZE) -> np.ndarray:
    """uint8 [N, T, H, W, 3] -> float32 [N, T, size, size] in [0, 1] (BT.601 luma, area-resized)."""
    x = clips.astype(np.float32) / 255.0
    y = x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114
    h = y.shape[-1]
    if h != size:
        if h % size == 0:
            f = h // size
            y = y.reshape(*y.shape[:-2], size, f, size, f).mean(axis=(-3, -1))
        else:
            import torch
            import torch.nn.functional as F
            t = torch.from_numpy(y.reshape(-1, 1, h, h))
            y = F.interpolate(t, size=(size, size), mode="area").numpy().reshape(*y.shape[:-2], size, size)
    return y


def background(frames: np.ndarray) -> np.ndarray:
    """The per-pixel median of luma frames [..., H, W] over every leading axis -> [H, W]."""
    return np.median(frames.reshape(-1, *frames.shape[-2:]), axis=0)


def regions(mask: np.ndarray):
    """A boolean frame -> centres [(y, x)] of its connected regions of at least MIN_AREA pixels."""
    from scipy import ndimage
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros((0, 2))
    idx = np.arange(1, n + 1)
    area = ndimage.sum(mask, labels, idx)
    keep = idx[area >= MIN_AREA]
    if len(keep) == 0:
        return np.zeros((0, 2))
    return np.array(ndimage.center_of_mass(mask, labels, keep)).reshape(-1, 2)


def phase_shift(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The (dy, dx) that moves frame a onto frame b (phase correlation with a Hann window, integer peak refined
    by a parabola), in pixels."""
    h, w = a.shape
    win = np.outer(np.hanning(h), np.hanning(w))
    fa, fb = np.fft.fft2((a - a.mean()) * win), np.fft.fft2((b - b.mean()) * win)
    r = fb * np.conj(fa)
    r /= np.abs(r) + 1e-9
    c = np.fft.ifft2(r).real
    py, px = np.unravel_index(np.argmax(c), c.shape)
    out = []
    for p, n, step in ((py, h, (1, 0)), (px, w, (0, 1))):
        m = c[py, px]
        lo = c[(py - step[0]) % h, (px - step[1]) % w]
        hi = c[(py + step[0]) % h, (px + step[1]) % w]
        den = lo - 2 * m + hi
        v = p + (float(np.clip(0.5 * (lo - hi) / den, -0.5, 0.5)) if abs(den) > 1e-9 else 0.0)
        out.append(v - n if v > n / 2 else v)
    return np.array(out)

MOVING_PX = 0.5                # median global shift (px / frame at SIZE px) above which the camera moves ...
MOVING_BORDER = 0.22           # ... or share of the frame's border ring that changes over GAP frames (a static
#                                camera's border stays; a pan's, zoom's or tilt's changes all round)
MOVING_STILL = 0.8             # (with MOVING_PX) at most this share of pixels at the video's median background
GAP = 4                        # frames between the two frames compared for motion
SUBJECT_SHARE = 0.10           # foreground share above which a static camera films one large subject ...
SUBJECT_EXTENT = 0.4           # ... or moving regions this large (box side / frame side)
SAME_CAMERA = 14.0             # mean |difference| (uint8) of two videos' 8 px median thumbnails: one camera


def _luma(video: np.ndarray) -> np.ndarray:
    """uint8 [T, R, R, C] -> float32 [T, SIZE, SIZE] in [0, 1]."""
    x = video if video.shape[-1] == 3 else np.repeat(video, 3, axis=-1)
    return luma(x[None], SIZE)[0]


def camera_stats(video: np.ndarray, pairs: int = 8, samples: int = 24) -> Dict[str, object]:
    """Per-video statistics, uint8 [T, R, R, C] -> {'motion': median global shift (px / frame at SIZE px),
    'mover_speed': their median px / frame, 'border': median share of the 6 px border ring that changes by more than 0.05 over GAP frames, 'still': share
    of pixels at the median background, 'movers': median moving regions per frame, 'mover_extent': their 90th
    percentile box side / frame side, 'thumb': the median background at 8 px (64 uint8 luma values, row major)}."""
    t = len(video)
    y = _luma(video)
    gap = min(GAP, t - 1)
    starts = np.unique(np.linspace(0, t - 1 - gap, min(pairs, t - gap)).round().astype(int)) if gap > 0 else []
    shifts = [np.linalg.norm(phase_shift(y[k], y[k + gap])) / gap for k in starts]
    ring = np.ones((SIZE, SIZE), bool)
    ring[6:-6, 6:-6] = False
    border = [float((np.abs(y[k + gap] - y[k]) > 0.05)[ring].mean()) for k in starts]
    idx = np.unique(np.linspace(0, t - 1, min(samples, t)).round().astype(int))
    bg = np.median(y[idx], axis=0)
    fg = np.abs(y[idx] - bg) > FG_THRESHOLD
    from scipy import ndimage
    counts, extents = [], []
    for m in fg:
        counts.append(len(regions(m)))
        labels, _ = ndimage.label(m)
        for sl in ndimage.find_objects(labels):
            if sl is not None and (sl[0].stop - sl[0].start) * (sl[1].stop - sl[1].start) >= 4:
                extents.append(max(sl[0].stop - sl[0].start, sl[1].stop - sl[1].start) / SIZE)
    # how fast the moving things go: each region's distance to the nearest region GAP frames later
    steps = []
    for k in starts:
        a, b = (regions(np.abs(y[j] - bg) > FG_THRESHOLD) for j in (k, k + gap))
        if len(a) and len(b):
            steps += list(np.linalg.norm(a[:, None] - b[None], axis=-1).min(1) / gap)
    thumb = bg.reshape(8, SIZE // 8, 8, SIZE // 8).mean(axis=(1, 3))
    return {"motion": round(float(np.median(shifts)) if shifts else 0.0, 3),
            "border": round(float(np.median(border)) if border else 0.0, 3),
            "still": round(1.0 - float(fg.mean()), 4),
            "movers": float(np.median(counts)),
            "mover_extent": round(float(np.percentile(extents, 90)) if extents else 0.0, 3),
            "mover_speed": round(float(np.median(steps)) if steps else 0.0, 3),
            "thumb": [int(v) for v in (thumb * 255).round().reshape(-1)]}


def kind_of(stats: Dict[str, object]) -> str:
    """'moving', 'subject' or 'static' for one video's camera_stats."""
    # Phase correlation alone locks onto high-contrast things moving over a smooth static scene: a shift counts
    # only where the scene itself changes (a pan's per-pixel median is a blur that few pixels match).
    if stats.get("border", 0.0) > MOVING_BORDER or (stats["motion"] > MOVING_PX and stats["still"] < MOVING_STILL):
        return "moving"
    if 1 - stats["still"] > SUBJECT_SHARE or stats["mover_extent"] >= SUBJECT_EXTENT:
        return "subject"
    return "static"


def count_cameras(thumbs: List[List[int]]) -> int:
    """Distinct static views among 8 px median thumbnails: greedy clusters within SAME_CAMERA of a first member."""
    centres: List[np.ndarray] = []
    for th in thumbs:
        v = np.asarray(th, np.float32)
        if not any(np.abs(v - c).mean() <= SAME_CAMERA for c in centres):
            centres.append(v)
    return len(centres)


def suggest(stats: List[Dict[str, object]]) -> Dict[str, object]:
    """The generator settings for camera footage from its videos' camera_stats: the scene G (gan/networks/scene.py)
    with the camera kind most videos show; for a static camera as many foreground sprites as things move at once
    (at most 6), their size and speed, and one background per camera; for a subject filling the frame no sprites (its content code holds
    the identity, a small warp moves it); for a moving camera a canvas larger than the frame."""
    kinds = [kind_of(s) for s in stats]
    kind = max(("static", "subject", "moving"), key=kinds.count)
    out: Dict[str, object] = {"G.camera": kind}
    same = [s for s, k in zip(stats, kinds) if k == kind]
    if kind == "static":
        movers = [s["movers"] for s in same]
        out["G.objects"] = int(np.clip(round(float(np.percentile(movers, 75))), 1, 6))
        ext = float(np.median([s["mover_extent"] for s in same if s["mover_extent"] > 0] or [0.2]))
        out["G.object_size"] = round(float(np.clip(1.3 * ext, 0.15, 0.5)), 2)
        out["G.backgrounds"] = count_cameras([s["thumb"] for s in same if s.get("thumb")])
        # Fastest drift twice the median speed of the moving things, in box-free frame spans per frame (the
        # layered G's default 0.08 is ~4 px / frame at 64 px; walkers go ~1 and were lost between frames).
        speed = float(np.median([s.get("mover_speed", 0.0) for s in same]))
        out["G.object_speed"] = round(float(np.clip(2 * speed / ((1 - out["G.object_size"]) * SIZE), 0.005, 0.08)), 3)
        out["G.object_jitter"] = round(out["G.object_speed"] / 2, 4)
    elif kind == "subject":
        out["G.objects"] = 0
        out["G.backgrounds"] = count_cameras([s["thumb"] for s in same if s.get("thumb")])
    else:
        out["G.objects"] = 0
        out["G.backgrounds"] = 0
        motion = float(np.median([s["motion"] for s in same]))
        out["G.camera_speed"] = round(float(np.clip(2.0 * motion / SIZE, 0.01, 0.1)), 3)     # frame widths / frame
    return out


def explain_kind(hint: Dict[str, object]) -> Dict[str, str]:
    """'key=value' -> why, for the settings of `suggest` (printed by `reelgan-dataset info` and by training)."""
    kind = hint.get("G.camera")
    if kind is None:
        return {}
    keys = ", ".join(f"{k}={v}" for k, v in hint.items() if k.startswith("G."))
    why = {"static": "a static camera with things moving through the scene: the scene generator (one background "
                     "per camera, the moving things as sprites)",
           "subject": "a static camera filming one large subject (a face, a person): the scene generator (the "
                      "subject drawn once per video, moved by a small warp)",
           "moving": "a moving camera: the scene generator (a canvas larger than the frame, seen through a "
                     "camera path in continuous time)"}[kind]
    return {keys: why}


def median_backgrounds(source, n: int, videos: int = 96, frames: int = 16) -> np.ndarray:
    """The n most common static views of a prepared source (gan.data.prepared.PreparedDataset): each sampled video's
    per-pixel median over `frames` evenly spaced frames, grouped by camera (count_cameras' rule), the median of each
    of the n largest groups -> uint8 [n', H, W, C] with n' = min(n, groups). Started from these, the scene G
    draws the right scene from its first steps ("videos of one camera share one background")."""
    picks = np.unique(np.linspace(0, len(source) - 1, min(videos, len(source))).round().astype(int))
    medians = []
    for i in picks:
        count = min(frames, source.num_frames(int(i)))
        stride = max(1, (source.num_frames(int(i)) - 1) // max(1, count - 1))
        count = min(count, (source.num_frames(int(i)) - 1) // stride + 1)
        medians.append(np.median(source.read(int(i), 0, count, stride), axis=0))
    thumbs = [_luma(m[None].round().astype(np.uint8)).reshape(8, SIZE // 8, 8, SIZE // 8).mean(axis=(1, 3))
              .reshape(-1) * 255 for m in medians]
    groups: List[List[int]] = []
    for k, th in enumerate(thumbs):
        for g in groups:
            if np.abs(th - thumbs[g[0]]).mean() <= SAME_CAMERA:
                g.append(k)
                break
        else:
            groups.append([k])
    groups.sort(key=len, reverse=True)
    return np.stack([np.median(np.stack([medians[k] for k in g]), axis=0) for g in groups[:n]]).round().astype(
        np.uint8)
