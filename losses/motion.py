"""Motion matching: G pays for clips that move less (or more) than real clips at the same frame gaps.

A scene generator (gan/networks/scene.py) can only move by moving its sprites, its warp or its camera, and on
footage whose subject sits in the background's median the Ds stopped asking for that motion: every clip stood still
by step 1000 (BENCHMARKS.md, "Camera footage"). This term is feature matching (Salimans et al. 2016, "Improved
Techniques for Training GANs") on one hand-picked feature, each clip's frame-to-frame change: the 1-D optimal
transport distance between the batch's real and generated clips' log change (sorted values against sorted values),
so a batch of mostly static clips pays even when a few move a lot.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch

from losses.video_gan import Batch, LossTerm

Tensor = torch.Tensor


def clip_change(video: Tensor) -> Tensor:
    """[B]: each clip's mean absolute difference between consecutive frames (the frames as given: [B, T, C, H, W],
    T >= 2; real and generated clips of one batch share their frame gaps)."""
    if video.ndim != 5 or video.shape[1] < 2:
        raise ValueError(f"expected clips [B, T >= 2, C, H, W], got {tuple(video.shape)}")
    return (video[:, 1:] - video[:, :-1]).abs().mean(dim=(1, 2, 3, 4))


def sorted_log_distance(fake: Tensor, real: Tensor, floor: float = 0.05) -> Tensor:
    """Mean squared difference of the sorted log values of two [B] samples (the 1-D Wasserstein-2 distance of the
    log change, squared). `floor` (a share of the real mean) keeps a still clip's log finite and its gradient
    bounded: a clip whose change is under it reads as moving `floor` times the real mean."""
    eps = floor * real.mean().detach() + 1e-8
    a = torch.log(fake + eps).sort().values
    b = torch.log(real.detach() + eps).sort().values
    return (a - b).square().mean()


class MotionMatchTerm(LossTerm):
    """Gmain: `weight` times the sorted log distance between the generated and the real clips' frame change."""

    def __init__(self, weight: float):
        if weight < 0:
            raise ValueError(f"the motion matching weight must be >= 0, got {weight}")
        self.weight = weight

    def g_terms(self, loss, batch: Batch, fake: Tensor) -> Tuple[Optional[Tensor], Dict[str, Tensor]]:
        if self.weight <= 0 or fake.shape[1] < 2:
            return None, {}
        with torch.autocast(batch.real.device.type, enabled=False):
            fake_change, real_change = clip_change(fake.float()), clip_change(batch.real.float())
            distance = sorted_log_distance(fake_change, real_change)
        stats = {"G/motion_match": distance, "motion/fake_change": fake_change.mean().detach(),
                 "motion/real_change": real_change.mean()}
        return self.weight * distance, stats
