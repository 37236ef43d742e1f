"""Losses: adversarial losses and penalties (pure functions), clip augmentation, the phase-based loss."""
from losses.adversarial import d_logistic, g_nonsaturating, r1_penalty
from losses.augment import AdaptiveAugment, ClipAugment
from losses.video_gan import PHASES, Batch, LossTerm, VideoGANLoss, batch_condition

__all__ = ["d_logistic", "g_nonsaturating", "r1_penalty", "AdaptiveAugment", "ClipAugment", "PHASES", "Batch",
           "LossTerm", "VideoGANLoss", "batch_condition"]
