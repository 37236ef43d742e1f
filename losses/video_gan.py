"""The phase-based loss of a video GAN with an image and a video discriminator.

`accumulate_gradients(phase, ...)` computes one phase's loss and calls backward; the training loop
owns the optimizers (stylegan2-ada `training/loss.py`). Phases:
- 'Gmain': non-saturating loss of G against both discriminators (weighted).
- 'Dmain': logistic loss of both discriminators on real and generated clips.
- 'Dreg':  lazy R1 on real data for both discriminators, scaled by the interval (the "gain").

A mode adds to this through two hook points, never a second loss: `condition` (what condition the Ds see
with each clip) and `terms` (LossTerm objects whose extra losses join a phase's). The loop holds one
VideoGANLoss; its fields (r1_gamma, image_weight, video_weight) may change between steps.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from gan.ops import compile_fn
from losses.adversarial import d_logistic, g_nonsaturating, r1_penalty
from losses.augment import ClipAugment

PHASES = ("Gmain", "Dmain", "Dreg")
Tensor = torch.Tensor


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


def batch_condition(batch: Batch, phase: str, side: str) -> Optional[Tensor]:
    """The default `condition` hook: the Ds see the batch's own conditions (class ids or None)."""
    return batch.real_c if side == "real" else batch.gen_c


class LossTerm:
    """Extra loss terms of a mode, at VideoGANLoss's hook points. Each default adds nothing; a term overrides
    the ones it needs. `loss` is the VideoGANLoss calling (its helpers: frame_condition, run_D, ...)."""

    def g_terms(self, loss: "VideoGANLoss", batch: Batch, fake: Tensor) -> Tuple[Optional[Tensor], Dict[str, Tensor]]:
        """Gmain, after the adversarial loss: (a loss added to G's, or None; named scalars to log)."""
        return None, {}

    def real_conditions(self, loss: "VideoGANLoss", batch: Batch) -> Optional[Tensor]:
        """Dmain: [B, K, ...] more conditions under which the Ds score each real clip, in the same pass as its
        own condition (same augmentation, same frames; a projection D reads c only in its last term)."""
        return None

    def d_terms(self, loss: "VideoGANLoss", batch: Batch, logits: Dict[str, Tensor]
                ) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
        """Dmain, given each D's [N, K] logits under `real_conditions`: (losses added per D, keyed 'image' /
        'video'; named scalars to log)."""
        return {}, {}


class VideoGANLoss:
    """The one loss object of a run: both Ds, the augmentation, the weights, and a mode's hooks (`condition`,
    `terms`). `main` holds the networks the main phases call (compiled or not); R1 calls the eager ones."""

    def __init__(self,
                 G: nn.Module,                  # generator
                 D_image: nn.Module,            # frames [N, C, H, W] -> [N, 1]
                 D_video: nn.Module,            # clips, times -> [B, 1]
                 augment: ClipAugment,          # applied identically to real and fake
                 image_frames: int = 2,         # frames per clip for the image D
                 image_weight: float = 1.0,     # weights of the two D terms in the G loss
                 video_weight: float = 1.0,     # ... 0: the video D is off (not trained, not asked)
                 r1_gamma: float = 0.1,         # R1 weight (0: off)
                 autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                 grad_scale: Optional[Mapping[str, Callable[[Tensor], Tensor]]] = None,  # fp16 loss scaling of
                 # the G and the D phase: {'G': scaler_G.scale, 'D': scaler_D.scale}; None: unscaled
                 compile: bool = False,         # main phases through torch.compile (R1 stays eager)
                 condition: Optional[Callable[[Batch, str, str], Optional[Tensor]]] = None,  # (batch, phase,
                 # 'real'/'fake') -> what the Ds see with those clips; None: batch_condition
                 terms: Sequence[LossTerm] = ()):  # a mode's extra terms
        self.G, self.D_image, self.D_video, self.augment = G, D_image, D_video, augment
        self.image_frames, self.image_weight, self.video_weight = image_frames, image_weight, video_weight
        self.r1_gamma, self.autocast = r1_gamma, autocast
        self.grad_scale = dict(grad_scale or {})          # main phases only; R1 runs in float32
        # R1 needs a double backward: it runs on the eager modules, the main phases on the compiled ones.
        wrap = compile_fn if compile else (lambda m: m)
        self.main = {"G": wrap(G), "image": wrap(D_image), "video": wrap(D_video)}
        self.condition = condition or batch_condition
        self.terms = list(terms)

    @property
    def video_on(self) -> bool:
        return self.video_weight > 0

    # -- helpers ---------------------------------------------------------------------------------
    def pick_frames(self, video: torch.Tensor) -> torch.Tensor:
        """`image_frames` random frames of each clip, folded into the batch: [B*k, C, H, W]."""
        b, t = video.shape[:2]
        idx = torch.rand(b, t, device=video.device).argsort(dim=1)[:, :self.image_frames]
        frames = torch.gather(video, 1, idx[:, :, None, None, None].expand(-1, -1, *video.shape[2:]))
        return frames.reshape(b * self.image_frames, *video.shape[2:])

    def frame_condition(self, c: Optional[torch.Tensor], frames: Optional[int] = None) -> Optional[torch.Tensor]:
        return None if c is None else c.repeat_interleave(frames or self.image_frames, dim=0)

    def run_D(self, video: Tensor, times: Tensor, c: Optional[Tensor], augment: bool = True) -> Dict[str, Tensor]:
        """Logits of each D that is on: {'image': [B*k, ...], 'video': [B, ...]}."""
        if augment:
            video = self.augment(video)
        logits = {"image": self.main["image"](self.pick_frames(video), self.frame_condition(c))}
        if self.video_on:
            logits["video"] = self.main["video"](video, times, c)
        return logits

    @torch.no_grad()
    def score_clips(self, video: Tensor, times: Tensor, c: Optional[Tensor]) -> Dict[str, Tensor]:
        """Each clip's mean logit [B] from each D, as the D phase sees a clip but on every frame and without
        augmentation, eager (the video D even while its weight is 0): what a clip looks like to the Ds (the training
        room shows it)."""
        b, t = video.shape[:2]
        image = self.D_image(video.flatten(0, 1), self.frame_condition(c, t)).reshape(b, t, -1).mean(dim=(1, 2))
        return {"image": image, "video": self.D_video(video, times, c).reshape(b, -1).mean(dim=1)}

    def generate(self, batch: Batch) -> torch.Tensor:
        return self.main["G"](batch.z, batch.gen_c, batch.gen_times, batch.motion)

    def _scaled(self, side: str, loss: Tensor) -> Tensor:
        scale = self.grad_scale.get(side)
        return loss if scale is None else scale(loss)

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
        gap = batch.times - batch.times[:, :1]
        if phase == "Gmain":
            stats = self.g_main(batch, gap, gain, fake)
        elif phase == "Dmain":
            stats = self.d_main(batch, gap, gain, fake)
        else:  # Dreg: float32, eager (double backward)
            if self.r1_gamma <= 0:
                return {}
            stats = self.r1(batch.real, gap, self.condition(batch, "Dreg", "real"), gain)
        return finite_stats(phase, stats)

    def g_main(self, batch: Batch, gap: Tensor, gain: float, fake: Optional[Tensor]) -> Dict[str, Tensor]:
        with self.autocast():
            fake = self.generate(batch) if fake is None else fake
            logits = self.run_D(fake, gap, self.condition(batch, "Gmain", "fake"))
            parts = {k: g_nonsaturating(v).mean() for k, v in logits.items()}
            loss = self.image_weight * parts["image"]
            if "video" in parts:
                loss = loss + self.video_weight * parts["video"]
        stats: Dict[str, Tensor] = {}
        for term in self.terms:                              # outside autocast: a term picks its own precision
            extra, term_stats = term.g_terms(self, batch, fake)
            if extra is not None:
                loss = loss + extra
            stats.update(term_stats)
        self._scaled("G", loss * gain).backward()
        stats["G/loss"] = loss
        for k, v in parts.items():
            stats[f"G/loss_{k}"] = v
        for k, v in logits.items():
            stats[f"fake/logit_{k}"] = v.mean()
        return stats

    def d_main(self, batch: Batch, gap: Tensor, gain: float, fake: Optional[Tensor]) -> Dict[str, Tensor]:
        stats: Dict[str, Tensor] = {}
        with self.autocast():
            if fake is None:
                with torch.no_grad():
                    fake = self.generate(batch)
            c_fake = self.condition(batch, "Dmain", "fake")
            c_real = self.condition(batch, "Dmain", "real")
            fake_logits = self.run_D(fake.detach(), gap, c_fake)
            # Terms that score the real clips under more conditions: one D pass, the clip's own condition first.
            extra = [(t, t.real_conditions(self, batch)) for t in self.terms]
            extra = [(t, c) for t, c in extra if c is not None]
            if extra:
                c_all = torch.cat([c_real[:, None]] + [c for _, c in extra], dim=1)
                all_logits = self.run_D(batch.real, gap, c_all)
                real_logits = {k: v[:, :1] for k, v in all_logits.items()}
            else:
                real_logits = self.run_D(batch.real, gap, c_real)
            parts = {k: d_logistic(real_logits[k], fake_logits[k]) for k in real_logits}
            start = 1
            for term, c in extra:
                k = c.shape[1]
                added, term_stats = term.d_terms(self, batch, {n: v[:, start:start + k] for n, v in all_logits.items()})
                start += k
                for name, value in added.items():
                    if name in parts:
                        parts[name] = parts[name] + value
                stats.update(term_stats)
            loss = parts["image"]
            if "video" in parts:
                loss = loss + parts["video"]
        self._scaled("D", loss * gain).backward()
        stats.update(d_stats(loss, parts, real_logits, fake_logits))
        return stats

    def r1(self, real: torch.Tensor, gap: torch.Tensor, c: Optional[torch.Tensor], gain: float) -> Dict:
        """Lazy R1 of the Ds on real clips (float32, eager: double backward); calls backward, returns stats."""
        # R1 is taken at the augmented real sample (the distribution D actually sees), which also
        # keeps the double backward away from the augmentation's resampling ops.
        with torch.no_grad():
            real = self.augment(real)
        if c is not None:
            c = c.detach()
        inputs = {"image": self.pick_frames(real).detach().requires_grad_(True)}
        if self.video_on:
            inputs["video"] = real.detach().requires_grad_(True)
        logits = {"image": self.D_image(inputs["image"], self.frame_condition(c))}
        if self.video_on:
            logits["video"] = self.D_video(inputs["video"], gap, c)
        r1 = {k: r1_penalty(logits[k], inputs[k]) for k in logits}
        penalty, keep = r1["image"].mean(), logits["image"].sum()
        if self.video_on:
            penalty, keep = penalty + r1["video"].mean(), keep + logits["video"].sum()
        loss = penalty * (self.r1_gamma / 2)
        # Adding the logits times zero keeps every D parameter in the graph (DDP-safe, no unused params).
        ((loss + 0 * keep) * gain).backward()
        stats = {f"D/r1_{k}": v.mean() for k, v in r1.items()}
        stats["D/loss_r1"] = loss
        return stats


def d_stats(loss: Tensor, parts: Dict[str, Tensor], real: Dict[str, Tensor], fake: Dict[str, Tensor]
            ) -> Dict[str, Tensor]:
    """The D phase's logged numbers, per D that is on; real/sign_* also feed the adaptive augmentation."""
    stats = {"D/loss": loss}
    stats.update({f"D/loss_{k}": v for k, v in parts.items()})
    stats.update({f"real/logit_{k}": v.mean() for k, v in real.items()})
    stats.update({f"real/sign_{k}": v.sign().mean() for k, v in real.items()})
    stats.update({f"fake/logit_{k}_d": v.mean() for k, v in fake.items()})
    return stats


def finite_stats(phase: str, stats: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """Detached floats; a NaN/Inf stops training with a message that says what to try."""
    out = {k: float(v.detach()) for k, v in stats.items()}
    for k, v in out.items():
        if not math.isfinite(v):
            raise FloatingPointError(f"{phase}: {k} is {v}; training diverged (try a lower learning rate, "
                                     f"a larger r1_gamma, or precision 'fp32')")
    return out
