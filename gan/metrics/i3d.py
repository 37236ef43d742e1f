"""The I3D network of FVD in plain PyTorch: Inception-V1 inflated to 3D (Carreira & Zisserman 2017, fig. 3).

The published FVD weights exist only as a TorchScript file (`i3d_torchscript.pt`, see weights.py), which
carries its own code; this module is the same architecture written out, so the FVD pipeline can run end to end
with randomly initialised weights (the `--random-features` test mode) and so a reader can see what FVD
measures. Layer names and widths follow the DeepMind `kinetics-i3d` release; convolutions and pools use
TensorFlow 'SAME' padding as the original. Output: the 400 Kinetics logits, averaged over the remaining
time steps, which is what FVD takes as features ("raw features before the softmax").
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

Triple = Tuple[int, int, int]


def _same_pad(x: torch.Tensor, kernel: Triple, stride: Triple, value: float = 0.0) -> torch.Tensor:
    """TensorFlow 'SAME' padding of `x` [B, C, T, H, W]: output size ceil(in / stride), extra pad at the end."""
    pads = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value)


class Unit3D(nn.Module):
    """Conv3d (no bias) + BatchNorm + ReLU with SAME padding."""

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel: Triple = (1, 1, 1),
                 stride: Triple = (1, 1, 1)):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        self.conv = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, bias=False)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(_same_pad(x, self.kernel, self.stride))))


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel: Triple, stride: Triple):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # TF pads max-pools with -inf; zero is equivalent after a ReLU but -inf keeps that independent.
        return F.max_pool3d(_same_pad(x, self.kernel, self.stride, value=float("-inf")), self.kernel, self.stride)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, padding=SAME"


class InceptionBlock3D(nn.Module):
    """Four branches: 1x1; 1x1 -> 3x3; 1x1 -> 3x3; 3x3 max-pool -> 1x1; concatenated on channels."""

    def __init__(self,
                 in_channels: int,
                 widths: Sequence[int]):   # (b0, b1 reduce, b1, b2 reduce, b2, b3) as in the paper's table
        super().__init__()
        b0, b1r, b1, b2r, b2, b3 = widths
        self.branch0 = Unit3D(in_channels, b0)
        self.branch1 = nn.Sequential(Unit3D(in_channels, b1r), Unit3D(b1r, b1, (3, 3, 3)))
        self.branch2 = nn.Sequential(Unit3D(in_channels, b2r), Unit3D(b2r, b2, (3, 3, 3)))
        self.branch3 = nn.Sequential(MaxPool3dSame((3, 3, 3), (1, 1, 1)), Unit3D(in_channels, b3))
        self.out_channels = b0 + b1 + b2 + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)


_MIXED = [  # (name, widths); a string entry is a max-pool (kernel, stride) between stages
    ("Mixed_3b", (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", (128, 128, 192, 32, 96, 64)),
    ("MaxPool3d_4a_3x3", ((3, 3, 3), (2, 2, 2))),
    ("Mixed_4b", (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", (256, 160, 320, 32, 128, 128)),
    ("MaxPool3d_5a_2x2", ((2, 2, 2), (2, 2, 2))),
    ("Mixed_5b", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", (384, 192, 384, 48, 128, 128)),
]


class InceptionI3d(nn.Module):
    """I3D: `[B, 3, T, H, W]` in [-1, 1] -> logits `[B, num_classes]` (mean over the final time steps).

    At the FVD input size (16 x 224 x 224) the final feature map is 2 x 7 x 7 and the 2 x 7 x 7 average pool
    leaves one step; longer clips (128 frames) leave several, which are averaged as in the original.
    """

    def __init__(self,
                 num_classes: int = 400):  # Kinetics-400 logits are the FVD features
        super().__init__()
        self.num_classes = num_classes
        layers = [
            ("Conv3d_1a_7x7", Unit3D(3, 64, (7, 7, 7), (2, 2, 2))),
            ("MaxPool3d_2a_3x3", MaxPool3dSame((1, 3, 3), (1, 2, 2))),
            ("Conv3d_2b_1x1", Unit3D(64, 64)),
            ("Conv3d_2c_3x3", Unit3D(64, 192, (3, 3, 3))),
            ("MaxPool3d_3a_3x3", MaxPool3dSame((1, 3, 3), (1, 2, 2))),
        ]
        channels = 192
        for name, spec in _MIXED:
            if name.startswith("MaxPool"):
                layers.append((name, MaxPool3dSame(*spec)))
            else:
                block = InceptionBlock3D(channels, spec)
                layers.append((name, block))
                channels = block.out_channels
        self.features = nn.Sequential()
        for name, layer in layers:
            self.features.add_module(name, layer)
        self.logits = nn.Conv3d(channels, num_classes, 1)       # 'Conv3d_0c_1x1', with bias, no BN

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dim() == 5 and x.shape[1] == 3, f"I3D expects [B, 3, T, H, W], got {tuple(x.shape)}"
        h = self.features(x)                                    # [B, 1024, T', H', W']
        k = (min(2, h.shape[2]), min(7, h.shape[3]), min(7, h.shape[4]))
        h = F.avg_pool3d(h, k, stride=1)                        # VALID 2x7x7 pool (smaller maps: all of it)
        return self.logits(h).mean(dim=(2, 3, 4))               # [B, num_classes]

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}"
