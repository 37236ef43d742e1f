"""Simple measurements of generated clips against the built-in datasets' known factors: PSNR, the
dominant colour of the moving object, and the direction of its centroid's motion. Used by
bench/conditional.py to check that clips follow their prompt (and by tests). Frames are [T, C, H, W]
in [-1, 1] on a black background, as the built-ins draw them."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from gan.data.builtin import _DIRECTIONS, PALETTE


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of images [..., C, H, W] in [-1, 1] (peak = the full range), one value per image."""
    mse = ((x.float() - y.float()) / 2).square().flatten(-3).mean(-1)
    return 10 * torch.log10(1.0 / mse.clamp(min=1e-10))


def _weights(clip: torch.Tensor, threshold: float) -> torch.Tensor:
    """Per-pixel object weight [T, H, W]: brightness (max channel in [0, 1]) above `threshold`."""
    v = ((clip.float() + 1) / 2).clamp(0, 1).amax(dim=1)
    return torch.where(v > threshold, v, torch.zeros_like(v))


def centroid_track(clip: torch.Tensor, threshold: float = 0.25) -> torch.Tensor:
    """Brightness-weighted centroid (x, y) in pixels per frame [T, 2] (NaN where a frame is empty)."""
    w = _weights(clip, threshold)                                   # [T, H, W]
    t, h, wd = w.shape
    ys = torch.arange(h, dtype=torch.float32)[None, :, None]
    xs = torch.arange(wd, dtype=torch.float32)[None, None, :]
    mass = w.sum(dim=(1, 2))
    cx = (w * xs).sum(dim=(1, 2)) / mass
    cy = (w * ys).sum(dim=(1, 2)) / mass
    out = torch.stack([cx, cy], dim=1)
    out[mass <= 0] = float("nan")
    return out


def motion_vector(clip: torch.Tensor, times: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Least-squares velocity (px per frame) of the centroid over the clip: [2] (x right, y down)."""
    track = centroid_track(clip)
    t = torch.arange(clip.shape[0], dtype=torch.float32) if times is None else times.float()
    ok = ~torch.isnan(track).any(dim=1)
    if ok.sum() < 2:
        return torch.zeros(2)
    return fit_velocity(t[ok], track[ok])


def fit_velocity(t: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Least-squares velocity [2] (units of xy per unit of t) of positions xy [N, 2] at times t [N], N >= 2."""
    tc = t - t.mean()
    return (tc[:, None] * (xy - xy.mean(0))).sum(0) / tc.square().sum().clamp(min=1e-8)


def dominant_colour(clip: torch.Tensor, threshold: float = 0.25) -> Optional[str]:
    """Name of the PALETTE colour closest (in hue: cosine of RGB vectors) to the object's mean colour."""
    w = _weights(clip, threshold)                                   # [T, H, W]
    if float(w.sum()) <= 0:
        return None
    rgb = ((clip.float() + 1) / 2).clamp(0, 1)                      # [T, C, H, W]
    mean = (rgb * w[:, None]).sum(dim=(0, 2, 3)) / w.sum()
    names = list(PALETTE)
    pal = torch.tensor([PALETTE[n] for n in names], dtype=torch.float32) / 255
    sim = torch.nn.functional.cosine_similarity(pal, mean[None].expand_as(pal), dim=1)
    return names[int(sim.argmax())]


def direction_angle(name: str) -> float:
    """Angle (radians, image axes: +y down) of one of the built-ins' 8 direction names."""
    return _DIRECTIONS.index(name) * math.pi / 4


def direction_matches(velocity: torch.Tensor, name: str, tolerance_deg: float = 45.0, min_speed: float = 0.05) -> bool:
    """True when the velocity points within `tolerance_deg` of direction `name` and moves at all."""
    vx, vy = float(velocity[0]), float(velocity[1])
    if math.hypot(vx, vy) < min_speed:
        return False
    diff = math.atan2(vy, vx) - direction_angle(name)
    diff = (diff + math.pi) % (2 * math.pi) - math.pi
    return abs(diff) <= math.radians(tolerance_deg)


def mean_speed(clip: torch.Tensor) -> float:
    """Mean centroid speed in px per frame (0 for a static or empty clip)."""
    v = motion_vector(clip)
    return float(np.hypot(float(v[0]), float(v[1])))


def analysed_object(report: dict) -> Optional[dict]:
    """The main object of a clip as `reelgan-analyze` sees it (a report of gan.analysis.analyzer.ClipAnalyzer):
    the longest object track's label ("red circle" for shapes: colour + class; "7" for digits), split into
    colour and class, and its velocity in px/frame from a least-squares fit of the tracked centres.
    None when the clip has no recognised object (the analysis found only junk or nothing)."""
    objects = [r for r in report["tracks"] if r["is_object"]]
    if not objects:
        return None
    main = max(objects, key=lambda r: (r["frames"], r["recognisability"] or 0.0))
    points = [(p["frame"], p["center"]) for p in main["points"] if p["detected"] and not p["shared"]]
    velocity = torch.zeros(2)
    if len(points) >= 2:
        velocity = fit_velocity(torch.tensor([f for f, _ in points], dtype=torch.float32),
                                torch.tensor([c for _, c in points], dtype=torch.float32))
    words = str(main["label"]).split(" ", 1)
    colour, name = (words[0], words[1]) if len(words) == 2 else (None, words[0])
    return {"label": main["label"], "colour": colour, "class_name": name, "velocity": velocity,
            "recognisability": main["recognisability"]}


def prompt_agreement(report: dict, obj: dict, named_colour: bool = True) -> dict:
    """Does the analysed clip show what the caption of ground-truth object `obj` (a built-in dataset's factors)
    says? {'colour', 'class', 'direction', 'all'} as booleans; a clip without a recognised object misses all.
    `named_colour=False` (captions that name no colour, as the white digits'): 'colour' is None, found or not."""
    found = analysed_object(report)
    if found is None:
        return {"colour": False if named_colour else None, "class": False, "direction": False, "all": False}
    colour = found["colour"] == obj["color"] if named_colour and found["colour"] is not None else None
    cls = found["class_name"] == obj["class_name"]
    direction = direction_matches(found["velocity"], obj["direction"])
    out = {"colour": colour, "class": cls, "direction": direction}
    out["all"] = all(v for v in out.values() if v is not None)
    return out
