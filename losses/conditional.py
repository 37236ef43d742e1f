"""The conditional modes' hooks into losses/video_gan.py's VideoGANLoss (its `condition` and `terms`):
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

from losses.adversarial import d_logistic
from losses.perceptual import ClipLPIPS, ReconstructionLoss
from losses.video_gan import Batch, LossTerm

logger = logging.getLogger(__name__)

RANDOM_BACKBONE_WARNING = ("LPIPS IS USING A RANDOM BACKBONE (cond.lpips_random_backbone: true): this is a test "
                           "setting, not LPIPS; perceptual terms and metrics from this run are not comparable to "
                           "published LPIPS. Leave cond.lpips_random_backbone false for real runs (the weights are "
                           "fetched on first use).")


def weighted_mean(x: torch.Tensor, weights: Optional[torch.Tensor]) -> torch.Tensor:
    """The mean of x weighted by `weights` (same number of entries; None: the plain mean); 0 when nothing counts."""
    if weights is None:
        return x.mean()
    w = weights.to(x.dtype).flatten()
    assert w.shape == x.flatten().shape, f"weights must have one entry per value, got {w.shape} vs {x.shape}"
    return (x.flatten() * w).sum() / w.sum().clamp(min=1e-8)


def mismatch_penalty(mismatch_logits: torch.Tensor, mismatch_mask: Optional[torch.Tensor] = None,
                     weight: float = 1.0) -> torch.Tensor:
    """GAN-CLS's third term: weight * softplus(D(real, wrong c)), averaged with `mismatch_mask` (weighted_mean)."""
    return weight * weighted_mean(F.softplus(mismatch_logits), mismatch_mask)


def d_matching_aware(real_logits: torch.Tensor, fake_logits: torch.Tensor, mismatch_logits: torch.Tensor,
                     mismatch_mask: Optional[torch.Tensor] = None, weight: float = 1.0) -> torch.Tensor:
    """D loss with GAN-CLS's third pair: softplus(-D(real, c)) + softplus(D(fake, c)) + weight *
    softplus(D(real, wrong c)), each a mean. `mismatch_logits` [N] or [N, K] (K wrong captions per clip);
    `mismatch_mask` of the same shape weighs them: 0 drops a pair (a "wrong" caption equal to the right one).
    The term is sum(weight * softplus) / sum(weights): the mean over counted pairs for 0/1 weights, the mean
    over clips for per-clip weights that sum to 1 (CaptionNegatives.table); 0 when nothing counts."""
    return d_logistic(real_logits, fake_logits) + mismatch_penalty(mismatch_logits, mismatch_mask, weight)


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


def build_perceptual(net: str = "alex", weights: Optional[str] = None, random_backbone: bool = False,
                     log: Optional[Callable[[str], None]] = None) -> ClipPerceptual:
    """LPIPS v0.1 for clips, real weights by default (the cache, fetched on first use; MissingWeightsError says
    how to get them where that fails); random weights only by explicit request, announced on every channel."""
    if random_backbone:
        warnings.warn(RANDOM_BACKBONE_WARNING, stacklevel=2)
        logger.warning(RANDOM_BACKBONE_WARNING)
        if log is not None:
            log("WARNING: " + RANDOM_BACKBONE_WARNING)
    return ClipPerceptual(ClipLPIPS(net, weights=weights, random_backbone=random_backbone))


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


def no_condition(batch: Batch, phase: str, side: str) -> None:
    """The `condition` hook of 'image' / 'continue': unconditional Ds (the condition is inside the clip)."""
    return None


class TextConditions:
    """The `condition` hook of 'text': the Ds see sentence embeddings. In the D phase they are recomputed with
    gradients (the built-in encoder learns with the Ds); G's phase uses the batch's detached ones; R1 none."""

    def __init__(self,
                 encoder,                             # TextEncoder (built-in or external)
                 trainable: bool):                    # built-in: learns in the D phase
        self.encoder, self.trainable = encoder, trainable

    def embed(self, captions: List[str], grad: bool, device) -> torch.Tensor:
        """Text embeddings [B, dim]; gradients reach the built-in encoder only when `grad`."""
        with torch.set_grad_enabled(grad and self.trainable and torch.is_grad_enabled()):
            return self.encoder.encode(captions).to(device=device, dtype=torch.float32)

    def __call__(self, batch: CondBatch, phase: str, side: str) -> torch.Tensor:
        if phase == "Gmain":
            return batch.gen_c                                          # detached embeddings (make_batch)
        captions = batch.gen_captions if side == "fake" else batch.real_captions
        return self.embed(captions, phase == "Dmain", batch.real.device)


class ReconstructionTerm(LossTerm):
    """'image' / 'continue': LPIPS + L1 (+ temporal) of G's clip against the real one it was conditioned on,
    on the frames that have a target (the first for 'image', all for 'continue'), in float32."""

    def __init__(self,
                 recon: ReconstructionLoss,
                 weight: float = 1.0,                 # against the adversarial terms (0: off)
                 first_frame_only: bool = False):     # 'image': only frame 0 has a target
        self.recon, self.weight, self.first_frame_only = recon, weight, first_frame_only

    def targets(self, fake: torch.Tensor, real: torch.Tensor):
        """The frames that have a target: the first ('image') or all of them ('continue')."""
        return (fake[:, :1], real[:, :1]) if self.first_frame_only else (fake, real)

    def g_terms(self, loss, batch, fake):
        if self.weight <= 0:
            return None, {}
        with torch.autocast(batch.real.device.type, enabled=False):    # LPIPS and L1 in float32
            out, target = self.targets(fake.float(), batch.real.float())
            terms = self.recon(out, target)
        return self.weight * terms["total"].mean(), {f"G/recon_{k}": v.mean() for k, v in terms.items()}


class MatchingAwareTerm(LossTerm):
    """'text': GAN-CLS's third pair (Reed et al. 2016, eq. 3): the Ds score each real clip under its wrong
    captions too, on the same pass as under its own, and pay `weight * softplus(D(real, wrong c))` (masked:
    a "wrong" caption that fits the clip does not count; the image D has its own mask, it sees one frame)."""

    def __init__(self,
                 conditions: TextConditions,          # the embeddings of the wrong captions
                 weight: float = 1.0):                # 0: off (the plain logistic loss)
        self.conditions, self.weight = conditions, weight

    def real_conditions(self, loss, batch: CondBatch):
        if self.weight <= 0:
            return None
        e = self.conditions.embed(batch.wrong_captions, True, batch.real.device)
        return e.reshape(batch.real.shape[0], -1, e.shape[-1])                  # [B, K, dim]

    def masks(self, loss, batch: CondBatch) -> Dict[str, Optional[torch.Tensor]]:
        image = batch.mismatch_mask_image if batch.mismatch_mask_image is not None else batch.mismatch_mask
        return {"image": loss.frame_condition(image), "video": batch.mismatch_mask}  # one image row per frame

    def d_terms(self, loss, batch, logits):
        masks = self.masks(loss, batch)
        added = {k: mismatch_penalty(v, masks[k], self.weight) for k, v in logits.items()}
        stats = {f"mismatch/logit_{k}": weighted_mean(v, masks[k]) for k, v in logits.items()}  # what it weighs
        return added, stats
