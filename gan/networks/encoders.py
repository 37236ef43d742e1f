"""Encoders of condition frames (image-to-video, continuation: gan/networks/conditional.py).

- `ContentEncoder`: the reference frame -> a vector for the mapping network (w carries global appearance) and
  residual features and RGB at the synthesis G's content resolution (the spatial layout).
- `MotionEncoder`: context frames and their gap -> the first motion codes, so observed motion carries on.
- `ObjectSplitter` (no parameters): a frame on a flat background -> its K largest objects' alphas and the
  background colour (8-connected regions that differ from the border's median colour).
- `ObjectEncoder`: frames and object alphas -> one vector per object (conv features pooled over its alpha, with
  its centre and extent).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from gan.networks.layers import Conv2dLayer, FullyConnectedLayer


def _downs(channels: int, steps: int, impl: str) -> nn.Sequential:
    """`steps` 3x3 convs that each halve the resolution (box filter: cheap, exact average pooling)."""
    return nn.Sequential(*[Conv2dLayer(channels, channels, 3, activation="lrelu", down=2, resample_filter=[1, 1],
                                       impl=impl) for _ in range(steps)])


class ContentEncoder(nn.Module):
    """A frame [B, C, H, W] -> vector [B, out_dim], features [B, Cr, r, r] (None when r = H: nothing above r
    reads them) and RGB [B, C, r, r] at r."""

    def __init__(self,
                 img_channels: int,          # C of the frames
                 resolution: int,            # H = W of the frames
                 content_resolution: int,    # r: where G's content features live
                 content_channels: int,      # Cr: G's channels at r
                 channels: int,              # encoder width
                 out_dim: int,               # vector size (G's condition size)
                 impl: str = "ref"):
        super().__init__()
        self.resolution, self.content_resolution = resolution, content_resolution
        self.fromrgb = Conv2dLayer(img_channels, channels, 1, activation="lrelu", impl=impl)
        self.down = _downs(channels, int(math.log2(resolution // content_resolution)), impl)
        self.mix = Conv2dLayer(channels, channels, 3, activation="lrelu", impl=impl)
        # Residual for G's content features: only where blocks above r use them (r < resolution).
        self.feat = Conv2dLayer(channels, content_channels, 3, impl=impl) if content_resolution < resolution else None
        self.rgb = Conv2dLayer(channels, img_channels, 1, impl=impl)        # residual for G's content RGB
        self.tail = _downs(channels, int(math.log2(content_resolution // 4)), impl)
        self.vec = FullyConnectedLayer(channels * 16, out_dim, impl=impl)

    def forward(self, frame: torch.Tensor):
        assert frame.ndim == 4 and frame.shape[-1] == self.resolution, \
            f"expected a frame [B, C, {self.resolution}, {self.resolution}], got {tuple(frame.shape)}"
        h = self.mix(self.down(self.fromrgb(frame)))                       # [B, ch, r, r]
        vec = self.vec(self.tail(h).flatten(1))                            # [B, out_dim]
        # The frame itself (area-downsampled to r) joins G's skip-RGB path: the reference frame starts out
        # as the input, and the network learns corrections and detail instead of re-drawing it from scratch.
        still = F.avg_pool2d(frame, self.resolution // self.content_resolution) if self.resolution > \
            self.content_resolution else frame
        return vec, (self.feat(h) if self.feat is not None else None), self.rgb(h) + still

    def extra_repr(self) -> str:
        return f"resolution={self.resolution} -> {self.content_resolution}"


class MotionEncoder(nn.Module):
    """Context frames [B, K, C, H, W] + their times [B, K] -> motion codes [B, anchors, motion_dim]."""

    def __init__(self,
                 context_frames: int,        # K (>= 2: motion needs two frames)
                 img_channels: int,
                 resolution: int,
                 channels: int,              # encoder width
                 anchors: int,               # motion codes predicted
                 motion_dim: int,            # size of one code
                 impl: str = "ref"):
        super().__init__()
        self.context_frames, self.anchors, self.motion_dim = context_frames, anchors, motion_dim
        # Frames and their differences, stacked on channels: differences make small motions visible.
        in_ch = img_channels * (2 * context_frames - 1)
        self.fromrgb = Conv2dLayer(in_ch, channels, 1, activation="lrelu", impl=impl)
        self.down = _downs(channels, int(math.log2(resolution // 4)), impl)
        self.register_buffer("gap_freqs", torch.arange(1, 9, dtype=torch.float32) * math.pi / 2, persistent=False)
        self.fc = FullyConnectedLayer(channels * 16 + 16, 4 * channels, activation="lrelu", impl=impl)
        self.out = FullyConnectedLayer(4 * channels, anchors * motion_dim, impl=impl)

    def forward(self, context: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        b, k = context.shape[:2]
        assert k == self.context_frames and times.shape == (b, k), \
            f"expected {self.context_frames} context frames and times [B, K], got {tuple(context.shape)}, " \
            f"{tuple(times.shape)}"
        diffs = context[:, 1:] - context[:, :-1]
        x = torch.cat([context, diffs], dim=1).flatten(1, 2)              # [B, (2K-1)*C, H, W]
        h = self.down(self.fromrgb(x)).flatten(1)
        gap = (times[:, 1:] - times[:, :-1]).float().mean(1, keepdim=True).clamp(min=1e-3).log()
        arg = gap * self.gap_freqs
        h = torch.cat([h, arg.sin().to(h.dtype), arg.cos().to(h.dtype)], dim=1)
        return self.out(self.fc(h)).reshape(b, self.anchors, self.motion_dim)

    def extra_repr(self) -> str:
        return f"context_frames={self.context_frames}, anchors={self.anchors}"


def border_colour(frame: torch.Tensor) -> torch.Tensor:
    """The background colour of a frame [B, C, H, W] on a flat background: the median of its border pixels, [B, C]."""
    border = torch.cat([frame[..., 0, :], frame[..., -1, :], frame[..., 1:-1, 0], frame[..., 1:-1, -1]], dim=-1)
    return border.median(dim=-1).values


def connected_components(mask: torch.Tensor) -> torch.Tensor:
    """mask [B, H, W] (bool) -> labels [B, H, W] (long; 0 off the mask, otherwise one id per 8-connected region):
    every pixel takes the largest id in its 3x3 neighbourhood until nothing changes."""
    b, h, w = mask.shape
    on = mask.float()[:, None]
    labels = (torch.arange(1, h * w + 1, device=mask.device, dtype=torch.float32).reshape(1, 1, h, w) * on)
    for _ in range(h * w):
        grown = F.max_pool2d(labels, 3, stride=1, padding=1) * on
        if torch.equal(grown, labels):
            break
        labels = grown
    return labels[:, 0].long()


class ObjectSplitter(nn.Module):
    """A frame [B, C, H, W] on a flat background -> each of its K largest objects' alpha [B, K, 1, H, W] and the
    background colour [B, C, 1, 1]. No parameters: objects are the 8-connected regions of pixels that differ from
    the border's median colour by more than `threshold`, grown by a pixel to take in their anti-aliased edges;
    alpha is the coverage that mixes the object's strongest colour with the background into each pixel (exact
    for flat-coloured objects). Objects past the K largest stay in the background (they do not move)."""

    def __init__(self, objects: int, threshold: float = 0.2, edge: float = 0.02):
        super().__init__()
        self.objects, self.threshold, self.edge = objects, float(threshold), float(edge)

    @torch.no_grad()
    def forward(self, frame: torch.Tensor):
        b, c, h, w = frame.shape
        frame = frame.float()
        bg = border_colour(frame)[..., None, None]                       # [B, C, 1, 1]
        diff = frame - bg
        strength = diff.abs().amax(dim=1)                                # [B, H, W]
        labels = connected_components(strength > self.threshold).flatten(1)          # [B, N]
        counts = torch.zeros(b, h * w + 1, device=frame.device)
        counts.scatter_add_(1, labels, torch.ones_like(labels, dtype=torch.float32))   # pixels per label
        counts[:, 0] = 0                                                 # 0: not an object
        size, ids = counts.topk(self.objects, dim=1)                     # the K largest, [B, K]
        core = (labels[:, None] == ids[..., None]) & (size[..., None] > 0)           # [B, K, N]
        core = core.reshape(b, self.objects, h, w).float()
        region = F.max_pool2d(core, 3, stride=1, padding=1) * (strength > self.edge).float()[:, None]
        # The object's colour: its pixel that differs most from the background.
        peak = (strength.flatten(1)[:, None] * core.flatten(2)).argmax(dim=2)        # [B, K]
        colour = diff.flatten(2).gather(2, peak[:, None].expand(-1, c, -1))          # [B, C, K]
        colour = colour.transpose(1, 2)[..., None, None]                 # [B, K, C, 1, 1]
        cover = (diff[:, None] * colour).sum(2) / colour.square().sum(2).clamp(min=1e-6)
        alphas = (cover.clamp(0, 1) * region)[:, :, None]                # [B, K, 1, H, W]
        return alphas, bg

    def extra_repr(self) -> str:
        return f"objects={self.objects}, threshold={self.threshold}, edge={self.edge}"


class ObjectEncoder(nn.Module):
    """Frames (+ differences) [B, Cin, H, W] and object alphas [B, K, 1, H, W] -> one vector per object [B, K, D]:
    conv features averaged over the object's alpha, with its centre and extent."""

    def __init__(self, in_channels: int, dim: int, impl: str = "ref"):
        super().__init__()
        self.convs = nn.Sequential(*[Conv2dLayer(in_channels if i == 0 else dim, dim, 3, activation="lrelu", impl=impl)
                                     for i in range(3)])
        self.out = FullyConnectedLayer(dim + 4, dim, activation="lrelu", impl=impl)

    def forward(self, x: torch.Tensor, alphas: torch.Tensor, centre: torch.Tensor, extent: torch.Tensor):
        feat = self.convs(x)                                             # [B, D, H, W]
        a = alphas[:, :, 0].to(feat.dtype)                               # [B, K, H, W]
        pooled = torch.einsum("bkhw,bdhw->bkd", a, feat) / a.sum(dim=(2, 3)).clamp(min=1e-6)[..., None]
        b, k, d = pooled.shape
        summary = torch.cat([pooled, centre.to(feat.dtype), extent.to(feat.dtype)], dim=2)
        return self.out(summary.reshape(b * k, d + 4)).reshape(b, k, d)
