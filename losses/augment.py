"""Differentiable augmentation for clips (DiffAugment, Zhao et al. 2020; ADA, Karras et al. 2020).

Every frame of a clip gets the same parameters, so augmentation never creates fake motion; real and
fake clips go through the same pipeline. Built on kornia's differentiable image ops.
"""
from __future__ import annotations

from typing import Callable, Sequence

import kornia
import torch
import torch.nn as nn

KNOWN = ("translation", "color", "cutout", "flip")


class ClipAugment(nn.Module):
    def __init__(self,
                 ops: Sequence[str] = ("translation",),  # which augmentations, in order
                 prob: float = 0.5,                      # probability that a clip gets each one
                 translation: float = 0.125,             # max shift as a fraction of the size
                 cutout: float = 0.5):                   # cutout square side as a fraction of the size
        super().__init__()
        bad = [o for o in ops if o not in KNOWN]
        if bad:
            raise ValueError(f"unknown augmentation {bad[0]!r}; known: {KNOWN}")
        self.ops, self.prob, self.translation, self.cutout = tuple(ops), float(prob), translation, cutout

    def forward(self, video: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        # video [B, T, C, H, W] -> same shape; parameters drawn per clip, shared by its frames
        if not self.ops or self.prob <= 0:
            return video
        b, t, c, h, w = video.shape
        x = video.reshape(b * t, c, h, w)
        dev = video.device

        def draw(*shape):
            return torch.rand(*shape, generator=generator).to(dev)

        def per_frame(v):  # [B, ...] -> [B*T, ...]
            return v.repeat_interleave(t, dim=0)

        def gate():  # [B] bool: clips that get this op
            return draw(b) < self.prob

        for op in self.ops:
            on = gate()
            if op == "translation":
                shift = (draw(b, 2) * 2 - 1) * self.translation * torch.tensor([w, h], device=dev)
                shift = torch.where(on[:, None], shift.round(), torch.zeros_like(shift))
                x = kornia.geometry.transform.translate(x, per_frame(shift).to(x.dtype), padding_mode="reflection")
            elif op == "flip":
                x = torch.where(per_frame(on)[:, None, None, None], x.flip(-1), x)
            elif op == "color":
                bright = (draw(b) - 0.5) * 0.5 * on           # additive in [-1, 1] scale
                sat = 1 + (draw(b) - 0.5) * on                 # x0.5 .. x1.5
                contrast = 1 + (draw(b) - 0.5) * on
                x = x + per_frame(bright).to(x.dtype)[:, None, None, None]
                mean = x.mean(dim=1, keepdim=True)
                x = (x - mean) * per_frame(sat).to(x.dtype)[:, None, None, None] + mean
                mean = x.mean(dim=[1, 2, 3], keepdim=True)
                x = (x - mean) * per_frame(contrast).to(x.dtype)[:, None, None, None] + mean
            elif op == "cutout":
                size = torch.tensor([w, h], device=dev) * self.cutout
                centre = draw(b, 2) * torch.tensor([w, h], device=dev)
                ys = torch.arange(h, device=dev)[None, :, None]
                xs = torch.arange(w, device=dev)[None, None, :]
                inside = ((xs - centre[:, 0, None, None]).abs() < size[0] / 2) & \
                         ((ys - centre[:, 1, None, None]).abs() < size[1] / 2) & on[:, None, None]
                x = x * (~per_frame(inside)).to(x.dtype)[:, None]
        return x.reshape(b, t, c, h, w)

    def extra_repr(self) -> str:
        return f"ops={self.ops}, prob={self.prob}"


class AdaptiveAugment:
    """ADA's feedback loop (Karras et al. 2020): raise the augmentation probability while D is too sure
    of the real clips, lower it when it is not.

    The overfitting heuristic is r_t = E[sign(D(real))], over `interval` steps; of the image and the video
    D the surer one counts (they share the augmentation). The max is taken of the two interval means, not
    per step: each step's sign is a noisy mean over one batch, and a per-step max of two noisy numbers is
    biased upwards (with batch 32 it read ~0.62 for Ds at 0.55 and 0.45, and p climbed to 1 in every run).
    p moves by batch * interval / (speed_kimg * 1000) per adjustment, so it can go from 0 to 1 in
    `speed_kimg` thousand clips (ADA used 500 for runs of 25,000 kimg; a CPU run that sees ~20 kimg needs ~5).
    """

    def __init__(self, augment: ClipAugment, target: float, speed_kimg: float, interval: int, batch: int):
        if not 0 < target < 1:
            raise ValueError(f"augment_target must be in (0, 1), got {target}")
        if speed_kimg <= 0 or interval < 1:
            raise ValueError(f"augment_speed_kimg must be > 0 and augment_interval >= 1, got "
                             f"{speed_kimg}, {interval}")
        self.augment, self.target, self.interval = augment, float(target), int(interval)
        self.step_size = batch * interval / (speed_kimg * 1000)
        self.signs = []                                     # per step: [image D, video D] mean sign(real logit)
        self.rt = None                                      # the last interval's heuristic (for logging)

    def observe(self, stats) -> None:
        image = float(stats["real/sign_image"])
        self.signs.append([image, float(stats.get("real/sign_video", image))])   # video D off: the image D's

    def adjust(self, reduce: Callable[[float], float] = lambda v: v) -> None:
        """Call every `interval` steps; `reduce` averages over ranks so every rank keeps the same p."""
        if not self.signs:
            return
        # (A checkpoint of an older version holds one number per step: it stands for both Ds.)
        pairs = [s if isinstance(s, (list, tuple)) else (s, s) for s in self.signs]
        means = [reduce(sum(p[i] for p in pairs) / len(pairs)) for i in (0, 1)]
        self.rt = max(means)
        self.signs = []
        step = self.step_size if self.rt > self.target else -self.step_size
        self.augment.prob = float(min(max(self.augment.prob + step, 0.0), 1.0))
