"""Building blocks shared by the generator and the discriminators.

All weights use the equalised learning rate of Karras et al. 2018 (sec. 4.1): parameters are
stored at unit scale and multiplied by He's constant at run time, so Adam updates every layer at
the same relative speed.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn

from gan.ops import bias_act, downsample2d, setup_filter, upsample2d


class FullyConnectedLayer(nn.Module):
    def __init__(self,
                 in_features: int,             # input size
                 out_features: int,            # output size
                 bias: bool = True,            # learn an additive bias
                 activation: str = "linear",   # activation name from gan.ops.ACTIVATIONS
                 lr_multiplier: float = 1.0,   # learning-rate multiplier (the mapping network uses 0.01)
                 bias_init: float = 0.0,       # initial bias value (1 for style affines: identity modulation)
                 weight_init: float = 1.0,     # initial weight scale (0: the layer starts as its bias)
                 impl: str = "ref"):           # op implementation: 'ref' or 'compiled'
        super().__init__()
        self.in_features, self.out_features, self.activation, self.impl = in_features, out_features, activation, impl
        self.weight = nn.Parameter(torch.randn(out_features, in_features) * (weight_init / lr_multiplier))
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias.to(x.dtype) * self.bias_gain if self.bias is not None else None
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x @ w.t(), b, act=self.activation, impl=self.impl)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, act={self.activation}"


class Conv2dLayer(nn.Module):
    def __init__(self,
                 in_channels: int,              # input channels
                 out_channels: int,             # output channels
                 kernel_size: int,              # square kernel width
                 bias: bool = True,             # learn an additive bias
                 activation: str = "linear",    # activation name
                 up: int = 1,                   # upsample by this factor (FIR) before the conv
                 down: int = 1,                 # downsample by this factor (FIR) after the conv
                 conv_clamp: Optional[float] = None,  # clamp outputs to +-this (None: off)
                 resample_filter=(1, 3, 3, 1),  # FIR taps for resampling
                 impl: str = "ref",
                 down_pool: str = "filter"):    # how `down` reduces: 'filter' (resample_filter) or 'max'
        super().__init__()
        if down_pool not in ("filter", "max"):
            raise ValueError(f"down_pool must be 'filter' or 'max', got '{down_pool}'")
        self.in_channels, self.out_channels, self.activation = in_channels, out_channels, activation
        self.up, self.down, self.conv_clamp, self.impl = up, down, conv_clamp, impl
        self.padding = kernel_size // 2
        # A box filter as wide as the stride is average pooling: exact, and its double backward (R1)
        # is cheap on every device, unlike the depthwise FIR conv's.
        taps = [float(v) for v in resample_filter]
        self.box_down = down > 1 and len(taps) == down and len(set(taps)) == 1
        self.max_down = down > 1 and down_pool == "max"
        self.register_buffer("resample_filter", setup_filter(taps), persistent=False)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        if self.up > 1:
            x = upsample2d(x, self.resample_filter, up=self.up, impl=self.impl)
        x = torch.nn.functional.conv2d(x, w, padding=self.padding)
        if self.max_down:
            x = torch.nn.functional.max_pool2d(x, self.down)
        elif self.box_down:
            x = torch.nn.functional.avg_pool2d(x, self.down)
        elif self.down > 1:
            x = downsample2d(x, self.resample_filter, down=self.down, impl=self.impl)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        b = self.bias.to(x.dtype) if self.bias is not None else None
        act_gain = None if gain == 1 else gain * (math.sqrt(2) if self.activation == "lrelu" else 1.0)
        return bias_act(x, b, act=self.activation, gain=act_gain, clamp=clamp, impl=self.impl)

    def extra_repr(self) -> str:
        return (f"in={self.in_channels}, out={self.out_channels}, k={self.weight.shape[-1]}, "
                f"up={self.up}, down={self.down}{' (max)' if self.max_down else ' (box)' if self.box_down else ''}, "
                f"act={self.activation}")


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """z (+ condition) -> w. Tracks the running mean of w for the truncation trick."""

    def __init__(self,
                 z_dim: int,                 # content latent size
                 c_dim: int,                 # condition embedding size from the caller (0: unconditional)
                 w_dim: int,                 # output latent size
                 num_layers: int = 2,        # MLP depth
                 lr_multiplier: float = 0.01,  # slower mapping learning (StyleGAN)
                 w_avg_beta: float = 0.995,  # decay of the tracked w average
                 impl: str = "ref"):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.w_avg_beta = z_dim, c_dim, w_dim, w_avg_beta
        self.embed = FullyConnectedLayer(c_dim, w_dim, impl=impl) if c_dim > 0 else None
        features = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        self.layers = nn.ModuleList([
            FullyConnectedLayer(features[i], features[i + 1], activation="lrelu", lr_multiplier=lr_multiplier,
                                impl=impl)
            for i in range(num_layers)])
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None, truncation_psi: float = 1.0,
                update_w_avg: bool = False) -> torch.Tensor:
        assert z.ndim == 2 and z.shape[1] == self.z_dim, f"z must be [B, {self.z_dim}], got {tuple(z.shape)}"
        x = normalize_2nd_moment(z)
        if self.embed is not None:
            if c is None:
                raise ValueError("this generator is conditional: pass c (class labels or a condition embedding)")
            x = torch.cat([x, normalize_2nd_moment(self.embed(c))], dim=1)
        for layer in self.layers:
            x = layer(x)
        if update_w_avg:
            self.w_avg.copy_(x.detach().float().mean(0).lerp(self.w_avg, self.w_avg_beta))
        if truncation_psi != 1:
            x = self.w_avg.to(x.dtype).lerp(x, truncation_psi)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}"
