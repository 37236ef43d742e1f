"""The InceptionV3 feature extractor of FID/KID in plain PyTorch (torchvision's architecture, no weights).

The published FID weights (`inception-2015-12-05.pt`, see weights.py) are a TorchScript file with its own
code; this module exists so the FID pipeline runs end to end with randomly initialised weights of the same
architecture (the `--random-features` test mode). Features: the 2048-d global average pool before the
classifier ('pool_3' in the TensorFlow graph), which is what FID uses.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class InceptionV3Features(nn.Module):
    """`[B, 3, H, W]` in [-1, 1] -> `[B, 2048]` pool features (torchvision InceptionV3, random init).

    The input must already be at the network size (299 for comparability; anything >= 75 runs).
    """

    def __init__(self, seed: int = 0):   # initialisation seed: random-init features are reproducible
        super().__init__()
        import torchvision
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True,
                                                  transform_input=False)
        net.fc = nn.Identity()                                  # keep the 2048-d pool features
        net.dropout = nn.Identity()
        self.net = net.eval()
        self.seed = seed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dim() == 4 and x.shape[1] == 3, f"InceptionV3 expects [B, 3, H, W], got {tuple(x.shape)}"
        assert min(x.shape[-2:]) >= 75, f"InceptionV3 needs frames of at least 75 px, got {tuple(x.shape[-2:])}"
        return self.net(x)                                      # [B, 2048]

    def extra_repr(self) -> str:
        return f"seed={self.seed}, features=2048 (pool_3)"
