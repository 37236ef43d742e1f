"""Adversarial losses and penalties as pure functions: tensors in, tensors out."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def g_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator's non-saturating logistic loss, per sample: softplus(-D(G(z)))  (Goodfellow 2014)."""
    return F.softplus(-fake_logits)


def d_logistic(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator's logistic loss, mean over each set: softplus(D(fake)) + softplus(-D(real))."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real_inputs: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): squared norm of dD/dx on real data, per sample: [B].

    `real_inputs` must require grad and have produced `real_logits`. The graph is kept so the
    penalty can be back-propagated into D (a double backward: run it eagerly, never compiled)."""
    inputs = [real_inputs] if torch.is_tensor(real_inputs) else list(real_inputs)
    grads = torch.autograd.grad(real_logits.sum(), inputs, create_graph=True)
    return sum(g.float().square().flatten(1).sum(1) for g in grads)
