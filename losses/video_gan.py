"""The phase-based loss of a video GAN with an image and a video discriminator.

`accumulate_gradients(phase, ...)` computes one phase's loss and calls backward; the training loop
owns the optimizers (stylegan2-ada `training/loss.py`). Phases:
- 'Gmain': non-saturating loss of G against both discriminators (weighted).
- 'Dmain': logistic loss of both discriminators on real and generated clips.
- 'Dreg':  lazy R1 on real data for both discriminators, scaled by the interval (the "gain").
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Dict, Optional

import torch
import torch.nn as nn

from losses.adversarial import d_logistic, g_nonsaturating, r1_penalty
from losses.augment import ClipAugment

PHASES = ("Gmain", "Dmain", "Dreg")


@dataclass
class Batch:
    """Real clips and the latents for generated ones, for one phase."""
    real: torch.Tensor                 # [B, T, C, H, W] in [-1, 1]
    times: torch.Tensor                # [B, T] frame times of the real clips
    real_c: Optional[torch.Tensor]     # [B] class ids / [B, c_dim] / None
    z: torch.Tensor                    # [B, z_dim]
    gen_c: Optional[torch.Tensor]      # condition for generated clips
    gen_times: torch.Tensor            # [B, T] times at which G renders (offset + same gaps)
    motion: torch.Tensor               # [B, K, motion_dim] motion codes


class VideoGANLoss:
    def __init__(self,
                 G: nn.Module,                  # generator (possibly compiled)
                 D_image: nn.Module,            # frames [N, C, H, W] -> [N, 1]
                 D_video: nn.Module,            # clips, times -> [B, 1]
                 augment: ClipAugment,          # applied identically to real and fake
                 image_frames: int = 2,         # frames per clip for the image D
                 image_weight: float = 1.0,     # weights of the two D terms in the G loss
                 video_weight: float = 1.0,
                 r1_gamma: float = 0.1,         # R1 weight (0: off)
                 autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                 grad_scale: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):  # fp16 loss scaling
        self.G, self.D_image, self.D_video, self.augment = G, D_image, D_video, augment
        self.image_frames, self.image_weight, self.video_weight = image_frames, image_weight, video_weight
        self.r1_gamma, self.autocast = r1_gamma, autocast
        self.grad_scale = grad_scale or (lambda loss: loss)  # main phases only; R1 runs in float32

    # -- helpers ---------------------------------------------------------------------------------
    def pick_frames(self, video: torch.Tensor) -> torch.Tensor:
        """`image_frames` random frames of each clip, folded into the batch: [B*k, C, H, W]."""
        b, t = video.shape[:2]
        idx = torch.rand(b, t, device=video.device).argsort(dim=1)[:, :self.image_frames]
        frames = torch.gather(video, 1, idx[:, :, None, None, None].expand(-1, -1, *video.shape[2:]))
        return frames.reshape(b * self.image_frames, *video.shape[2:])

    def frame_condition(self, c: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        return None if c is None else c.repeat_interleave(self.image_frames, dim=0)

    def run_D(self, video: torch.Tensor, times: torch.Tensor, c: Optional[torch.Tensor], augment: bool = True):
        if augment:
            video = self.augment(video)
        logits_img = self.D_image(self.pick_frames(video), self.frame_condition(c))
        logits_vid = self.D_video(video, times, c)
        return logits_img, logits_vid

    def generate(self, batch: Batch) -> torch.Tensor:
        return self.G(batch.z, batch.gen_c, batch.gen_times, batch.motion)

    # -- phases ----------------------------------------------------------------------------------
    def accumulate_gradients(self, phase: str, batch: Batch, gain: float = 1.0,
                             fake: Optional[torch.Tensor] = None) -> Dict[str, float]:
        """Compute `phase`'s loss, call backward (scaled by `gain`), return detached stats.

        `fake`: the clips G renders for `batch`, when the caller already has them (the training loop renders
        once per step, with the graph, and hands the same tensor to Dmain, detached, and to Gmain: both
        phases use one z and motion and G's weights do not change in between, so this is the same maths
        as rendering twice, one G forward cheaper)."""
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; expected one of {PHASES}")
        stats: Dict[str, torch.Tensor] = {}
        gap = batch.times - batch.times[:, :1]
        if phase == "Gmain":
            with self.autocast():
                fake = self.generate(batch) if fake is None else fake
                li, lv = self.run_D(fake, gap, batch.gen_c)
                loss_i, loss_v = g_nonsaturating(li).mean(), g_nonsaturating(lv).mean()
                loss = self.image_weight * loss_i + self.video_weight * loss_v
            self.grad_scale(loss * gain).backward()
            stats.update({"G/loss": loss, "G/loss_image": loss_i, "G/loss_video": loss_v,
                          "fake/logit_image": li.mean(), "fake/logit_video": lv.mean()})
        elif phase == "Dmain":
            with self.autocast():
                if fake is None:
                    with torch.no_grad():
                        fake = self.generate(batch)
                fi, fv = self.run_D(fake.detach(), gap, batch.gen_c)
                ri, rv = self.run_D(batch.real, gap, batch.real_c)
                loss_i, loss_v = d_logistic(ri, fi), d_logistic(rv, fv)
                loss = loss_i + loss_v
            self.grad_scale(loss * gain).backward()
            stats.update(d_stats(loss, loss_i, loss_v, ri, rv, fi, fv))
        else:  # Dreg: float32, eager (double backward)
            if self.r1_gamma <= 0:
                return {}
            stats.update(self.r1(batch.real, gap, batch.real_c, gain))
        return finite_stats(phase, stats)

    def r1(self, real: torch.Tensor, gap: torch.Tensor, c: Optional[torch.Tensor], gain: float) -> Dict:
        """Lazy R1 of both Ds on real clips (float32, eager: double backward); calls backward, returns stats."""
        # R1 is taken at the augmented real sample (the distribution D actually sees), which also
        # keeps the double backward away from the augmentation's resampling ops.
        with torch.no_grad():
            real = self.augment(real)
        frames = self.pick_frames(real).detach().requires_grad_(True)
        clip = real.detach().requires_grad_(True)
        li = self.D_image(frames, self.frame_condition(c))
        lv = self.D_video(clip, gap, c)
        r1_i, r1_v = r1_penalty(li, frames), r1_penalty(lv, clip)
        loss = (r1_i.mean() + r1_v.mean()) * (self.r1_gamma / 2)
        # Adding the logits times zero keeps every D parameter in the graph (DDP-safe, no unused params).
        ((loss + 0 * (li.sum() + lv.sum())) * gain).backward()
        return {"D/r1_image": r1_i.mean(), "D/r1_video": r1_v.mean(), "D/loss_r1": loss}


def d_stats(loss, loss_i, loss_v, ri, rv, fi, fv) -> Dict[str, torch.Tensor]:
    """The D phase's logged numbers; real/sign_* also feed the adaptive augmentation."""
    return {"D/loss": loss, "D/loss_image": loss_i, "D/loss_video": loss_v,
            "real/logit_image": ri.mean(), "real/logit_video": rv.mean(),
            "real/sign_image": ri.sign().mean(), "real/sign_video": rv.sign().mean(),
            "fake/logit_image_d": fi.mean(), "fake/logit_video_d": fv.mean()}


def finite_stats(phase: str, stats: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """Detached floats; a NaN/Inf stops training with a message that says what to try."""
    out = {k: float(v.detach()) for k, v in stats.items()}
    for k, v in out.items():
        if not math.isfinite(v):
            raise FloatingPointError(f"{phase}: {k} is {v}; training diverged (try a lower learning rate, "
                                     f"a larger r1_gamma, or precision 'fp32')")
    return out
