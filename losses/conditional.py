"""Losses of the conditional modes: adversarial terms (as in losses/video_gan.py) plus
- 'image':    LPIPS + L1 of the first generated frame against the still it animates;
- 'continue': LPIPS + L1 (+ temporal) of the rendered clip against the real one: the context frames
              (reconstruction) and the future frames (prediction);
- 'text':     the matching-aware discriminator loss of GAN-CLS (Reed et al. 2016, eq. 3 with the
              "real image, wrong text" term): D must call a real clip with a wrong caption fake, so
              it has to read the text, and G has to follow it.
Conditions reach the discriminators through their projection heads (text embeddings); in the
'image' and 'continue' modes the Ds stay unconditional: the condition is inside the clip they judge
(the animated still is frame 0, the context frames lead the clip), so a clip that breaks away from
it looks fake to the video D.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from losses.adversarial import d_logistic, g_nonsaturating
from losses.perceptual import ClipLPIPS, ReconstructionLoss
from losses.video_gan import PHASES, Batch, VideoGANLoss, d_stats, finite_stats

logger = logging.getLogger(__name__)

RANDOM_BACKBONE_WARNING = ("LPIPS IS USING A RANDOM BACKBONE (cond.lpips_random_backbone: true): this is a test "
                           "setting, not LPIPS; perceptual terms and metrics from this run are not comparable to "
                           "published LPIPS. Set cond.lpips_backbone to the pretrained weights for real runs.")


def weighted_mean(x: torch.Tensor, weights: Optional[torch.Tensor]) -> torch.Tensor:
    """The mean of x weighted by `weights` (same number of entries; None: the plain mean); 0 when nothing counts."""
    if weights is None:
        return x.mean()
    w = weights.to(x.dtype).flatten()
    assert w.shape == x.flatten().shape, f"weights must have one entry per value, got {w.shape} vs {x.shape}"
    return (x.flatten() * w).sum() / w.sum().clamp(min=1e-8)


def d_matching_aware(real_logits: torch.Tensor, fake_logits: torch.Tensor, mismatch_logits: torch.Tensor,
                     mismatch_mask: Optional[torch.Tensor] = None, weight: float = 1.0) -> torch.Tensor:
    """D loss with GAN-CLS's third pair: softplus(-D(real, c)) + softplus(D(fake, c)) + weight *
    softplus(D(real, wrong c)), each a mean. `mismatch_logits` [N] or [N, K] (K wrong captions per clip);
    `mismatch_mask` of the same shape weighs them: 0 drops a pair (a "wrong" caption equal to the right one).
    The term is sum(weight * softplus) / sum(weights): the mean over counted pairs for 0/1 weights, the mean
    over clips for per-clip weights that sum to 1 (CaptionNegatives.table); 0 when nothing counts."""
    return d_logistic(real_logits, fake_logits) + weight * weighted_mean(F.softplus(mismatch_logits), mismatch_mask)



class ClipPerceptual(nn.Module):
    """LPIPS on clips of any size: frames smaller than `min_size` are upsampled (AlexNet's pooling needs
    >= 32 px), one channel is repeated to three. Same call as ClipLPIPS: [B, T, C, H, W] pair -> [B]."""

    def __init__(self, lpips_model: ClipLPIPS, min_size: int = 32):
        super().__init__()
        self.lpips, self.min_size = lpips_model, int(min_size)
        self.random_backbone = lpips_model.random_backbone

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        x = x.reshape(b * t, c, h, w).float()
        if c == 1:
            x = x.expand(-1, 3, -1, -1)
        if min(h, w) < self.min_size:
            s = -(-self.min_size // min(h, w))
            x = F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
        return x.reshape(b, t, *x.shape[1:])

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.lpips(self._prep(x), self._prep(y))

    def extra_repr(self) -> str:
        return f"min_size={self.min_size}"


def build_perceptual(net: str = "alex", backbone: Optional[str] = None, random_backbone: bool = False,
                     log: Optional[Callable[[str], None]] = None) -> ClipPerceptual:
    """LPIPS for clips. Without weights it raises MissingWeightsError (naming the file and where to put it);
    a random backbone only by explicit request, announced on every channel we have."""
    if random_backbone:
        warnings.warn(RANDOM_BACKBONE_WARNING, stacklevel=2)
        logger.warning(RANDOM_BACKBONE_WARNING)
        if log is not None:
            log("WARNING: " + RANDOM_BACKBONE_WARNING)
    return ClipPerceptual(ClipLPIPS(net, backbone=backbone, random_backbone=random_backbone))


def build_reconstruction(cond_cfg, log: Optional[Callable[[str], None]] = None) -> ReconstructionLoss:
    """LPIPS + L1 + temporal with cfg.cond's weights. LPIPS is built only for lpips_weight > 0; with 0 the
    temporal term compares frame changes in L1, so `cond.lpips_weight=0` trains without the backbone."""
    needs_lpips = cond_cfg.lpips_weight > 0
    model = build_perceptual(cond_cfg.lpips_net, cond_cfg.lpips_backbone, cond_cfg.lpips_random_backbone,
                             log) if needs_lpips else None
    return ReconstructionLoss(model, cond_cfg.lpips_weight, cond_cfg.l1_weight, cond_cfg.temporal_weight)


@dataclass
class CondBatch(Batch):
    """Batch plus the conditional extras. 'image'/'continue': gen_c holds G's condition frames (taken
    from the same real clips, which are the reconstruction targets). 'text': gen_c holds the detached
    embeddings of gen_captions; the D-side embeddings are recomputed in the loss (the encoder learns there)."""
    real_captions: Optional[List[str]] = None
    gen_captions: Optional[List[str]] = None
    wrong_captions: Optional[List[str]] = None        # real clips' wrong captions, B * K (clip b's at b*K..)
    mismatch_mask: Optional[torch.Tensor] = None      # [B, K] the video D's weight of each (0: not wrong for it)
    mismatch_mask_image: Optional[torch.Tensor] = None  # [B, K] the image D's (it sees one frame: appearance only)
    extra: Dict = field(default_factory=dict)


class ConditionalVideoGANLoss(VideoGANLoss):
    """VideoGANLoss with conditions, reconstruction terms and the matching-aware D loss."""

    def __init__(self, G, D_image, D_video, augment, *,
                 mode: str,                                      # 'image', 'continue' or 'text'
                 recon: Optional[ReconstructionLoss] = None,     # image/continue: target terms
                 recon_weight: float = 1.0,
                 text_encoder=None,                              # 'text': TextEncoder (built-in or external)
                 text_trainable: bool = False,                   # built-in: learns in the D phase
                 mismatch_weight: float = 1.0,
                 **kwargs):                                      # the VideoGANLoss arguments
        super().__init__(G, D_image, D_video, augment, **kwargs)
        if mode not in ("image", "continue", "text"):
            raise ValueError(f"mode must be 'image', 'continue' or 'text', got {mode!r}")
        if mode == "text" and text_encoder is None:
            raise ValueError("mode 'text' needs a text encoder")
        self.mode, self.recon, self.recon_weight = mode, recon, recon_weight
        self.text_encoder, self.text_trainable, self.mismatch_weight = text_encoder, text_trainable, mismatch_weight

    @classmethod
    def from_base(cls, base: VideoGANLoss, **extra) -> "ConditionalVideoGANLoss":
        """Same networks, augmentation, weights, precision and scaling as `base`, plus the conditional parts."""
        return cls(base.G, base.D_image, base.D_video, base.augment, image_frames=base.image_frames,
                   image_weight=base.image_weight, video_weight=base.video_weight, r1_gamma=base.r1_gamma,
                   autocast=base.autocast, grad_scale=base.grad_scale, **extra)

    # -- conditions ------------------------------------------------------------------------------
    def embed(self, captions: Optional[List[str]], grad: bool, device) -> Optional[torch.Tensor]:
        """Text embeddings [B, dim] for the Ds; gradients reach the built-in encoder only when `grad`."""
        if self.mode != "text":
            return None
        with torch.set_grad_enabled(grad and self.text_trainable and torch.is_grad_enabled()):
            return self.text_encoder.encode(captions).to(device=device, dtype=torch.float32)

    def recon_targets(self, fake: torch.Tensor, real: torch.Tensor):
        """The frames that have a target: the first ('image') or all of them ('continue')."""
        if self.mode == "image":
            return fake[:, :1], real[:, :1]
        return fake, real

    # -- phases ----------------------------------------------------------------------------------
    def accumulate_gradients(self, phase: str, batch: CondBatch, gain: float = 1.0,
                             fake: Optional[torch.Tensor] = None) -> Dict[str, float]:
        """As VideoGANLoss.accumulate_gradients (`fake`: the clips G renders for `batch`, when the caller has them)."""
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; expected one of {PHASES}")
        stats: Dict[str, torch.Tensor] = {}
        gap = batch.times - batch.times[:, :1]
        dev = batch.real.device
        if phase == "Gmain":
            with self.autocast():
                fake = self.generate(batch) if fake is None else fake         # G(z, gen_c, gen_times, motion)
                d_c = batch.gen_c if self.mode == "text" else None            # detached embeddings
                li, lv = self.run_D(fake, gap, d_c)
                loss_i, loss_v = g_nonsaturating(li).mean(), g_nonsaturating(lv).mean()
                loss = self.image_weight * loss_i + self.video_weight * loss_v
            if self.recon is not None and self.mode != "text" and self.recon_weight > 0:
                with torch.autocast(dev.type, enabled=False):                 # LPIPS and L1 in float32
                    out, target = self.recon_targets(fake.float(), batch.real.float())
                    terms = self.recon(out, target)
                loss = loss + self.recon_weight * terms["total"].mean()
                stats.update({f"G/recon_{k}": v.mean() for k, v in terms.items()})
            self.grad_scale(loss * gain).backward()
            stats.update({"G/loss": loss, "G/loss_image": loss_i, "G/loss_video": loss_v,
                          "fake/logit_image": li.mean(), "fake/logit_video": lv.mean()})
        elif phase == "Dmain":
            with self.autocast():
                if fake is None:
                    with torch.no_grad():
                        fake = self.generate(batch)
                c_fake = self.embed(batch.gen_captions, True, dev)
                c_real = self.embed(batch.real_captions, True, dev)
                fi, fv = self.run_D(fake.detach(), gap, c_fake)
                if self.mode == "text" and self.mismatch_weight > 0:
                    # The real clips with their caption and all K wrong ones, on ONE pass of each D: only the
                    # projection term depends on the caption ([B, 1 + K] logits).
                    b = batch.real.shape[0]
                    c_wrong = self.embed(batch.wrong_captions, True, dev).reshape(b, -1, c_real.shape[1])
                    li, lv = self.run_D(batch.real, gap, torch.cat([c_real[:, None], c_wrong], dim=1))
                    ri, mi, rv, mv = li[:, :1], li[:, 1:], lv[:, :1], lv[:, 1:]
                    mask = batch.mismatch_mask
                    mask_i = self.frame_condition(batch.mismatch_mask_image if batch.mismatch_mask_image is not None
                                                  else mask)                 # one row per frame the image D sees
                    loss_i = d_matching_aware(ri, fi, mi, mask_i, self.mismatch_weight)
                    loss_v = d_matching_aware(rv, fv, mv, mask, self.mismatch_weight)
                    stats.update({"mismatch/logit_image": weighted_mean(mi, mask_i),
                                  "mismatch/logit_video": weighted_mean(mv, mask)})  # what the loss weighs
                else:
                    ri, rv = self.run_D(batch.real, gap, c_real)
                    loss_i, loss_v = d_logistic(ri, fi), d_logistic(rv, fv)
                loss = loss_i + loss_v
            self.grad_scale(loss * gain).backward()
            stats.update(d_stats(loss, loss_i, loss_v, ri, rv, fi, fv))
        else:  # Dreg: as in VideoGANLoss, with the real clips' conditions (no gradient into the text encoder)
            if self.r1_gamma <= 0:
                return {}
            c_real = self.embed(batch.real_captions, False, dev)
            if c_real is not None:
                c_real = c_real.detach()
            stats.update(self.r1(batch.real, gap, c_real, gain))
        return finite_stats(phase, stats)
