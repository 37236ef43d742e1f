"""Image and video discriminators (residual StyleGAN2 D, projection-conditioned).

- ImageDiscriminator judges single frames: appearance, sharpness, object identity.
- VideoDiscriminator judges a clip: a per-frame 2D stem down to `fuse_resolution`, then (2+1)D
  residual blocks (2D spatial conv, then a temporal conv across frames), conditioned on the frame
  gap of the clip (StyleGAN-V's time-difference conditioning), so it can tell motion speeds apart;
  optionally (`D.video_diffs`) each frame comes with its difference to the next, as in two-stream
  action recognition: the direction of motion is then visible to the first layer.
Downsampling is the box filter (average pooling) by default, or 2x2 max pooling (`D.downsample: max`),
which keeps the corners of small shapes that averaging blurs away (docs/notes.md).
Both take an optional condition c (class ids or vectors) through the projection discriminator of
Miyato & Koyama 2018: logit = f(x) + <embed(c), h(x)>. Only the projection depends on c, so several
conditions per sample (c [N, K, c_dim] -> logits [N, K]) cost one pass: the matching-aware loss scores a
real clip against its caption and every one-word variant of it at once.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from gan.config import DiscriminatorConfig
from gan.networks.generator import channels_at, condition_vector
from gan.networks.layers import Conv2dLayer, FullyConnectedLayer


class DiscriminatorBlock(nn.Module):
    """Residual block: two 3x3 convs, the second downsampling; 1x1 skip. Output at half resolution."""

    def __init__(self, in_channels: int, out_channels: int, conv_clamp=None, impl: str = "ref",
                 resample_filter=(1, 3, 3, 1), down_pool: str = "filter"):
        super().__init__()
        self.conv0 = Conv2dLayer(in_channels, in_channels, 3, activation="lrelu", conv_clamp=conv_clamp, impl=impl)
        self.conv1 = Conv2dLayer(in_channels, out_channels, 3, activation="lrelu", down=2, conv_clamp=conv_clamp,
                                 resample_filter=resample_filter, impl=impl, down_pool=down_pool)
        self.skip = Conv2dLayer(in_channels, out_channels, 1, bias=False, down=2, resample_filter=resample_filter,
                                impl=impl, down_pool=down_pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(x, gain=math.sqrt(0.5))
        return y + self.conv1(self.conv0(x), gain=math.sqrt(0.5))


class TemporalBlock(nn.Module):
    """(2+1)D residual block on [B, C, T, H, W]: temporal conv (k=3 over frames), then a 2D block."""

    def __init__(self, in_channels: int, out_channels: int, conv_clamp=None, impl: str = "ref",
                 resample_filter=(1, 3, 3, 1), down_pool: str = "filter"):
        super().__init__()
        # Temporal conv as a (3, 1) conv2d over [B, C, T, H*W]: same maths as a (3, 1, 1) conv3d, but
        # conv2d has the fast CPU kernels (and channels_last) that conv3d lacks.
        self.temporal = Conv2dLayer(in_channels, in_channels, 1, activation="lrelu", impl=impl)
        self.temporal.weight = nn.Parameter(torch.randn(in_channels, in_channels, 3, 1))
        self.temporal.padding = (1, 0)
        self.temporal.weight_gain = 1 / math.sqrt(3 * in_channels)
        self.spatial = DiscriminatorBlock(in_channels, out_channels, conv_clamp, impl, resample_filter, down_pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        x = x + self.temporal(x.reshape(b, c, t, h * w), gain=math.sqrt(0.5)).reshape(b, c, t, h, w)
        y = self.spatial(x.transpose(1, 2).reshape(b * t, c, h, w))
        return y.reshape(b, t, *y.shape[1:]).transpose(1, 2)


class MinibatchStd(nn.Module):
    """Appends the std over groups of samples (StyleGAN): a batch of fakes too alike reads as fake.

    A second statistic, the std of the spatially averaged features, is blind to where things are. Without it a
    G that draws the same object in every video at different places passes the per-pixel statistic (the places
    vary as much as in real data); found with the layered G's sprites."""

    num_channels = 2                                  # the per-pixel std and the pooled std

    def __init__(self, group_size: int):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        if g <= 1 or n % g:
            g = 1
            while g * 2 <= min(self.group_size, n) and n % (g * 2) == 0:
                g *= 2
        if g <= 1:
            return torch.cat([x, torch.zeros_like(x[:, :self.num_channels])], dim=1)
        y = x.float().reshape(g, -1, c, h, w)
        stats = [(y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean(dim=[1, 2, 3])]  # [n/g]
        p = y.mean(dim=[3, 4])                                                           # [g, n/g, c]
        stats.append((p - p.mean(0)).square().mean(0).add(1e-8).sqrt().mean(dim=1))
        y = torch.stack(stats, dim=1).reshape(-1, self.num_channels, 1, 1).repeat(g, 1, h, w).to(x.dtype)
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, std per pixel and pooled"


class Epilogue(nn.Module):
    """4x4 features -> logit, with projection conditioning when c_dim > 0."""

    def __init__(self, channels: int, c_dim: int, mbstd_group: int, conv_clamp=None, impl: str = "ref"):
        super().__init__()
        self.mbstd = MinibatchStd(mbstd_group) if mbstd_group > 0 else None
        extra = self.mbstd.num_channels if self.mbstd else 0
        self.conv = Conv2dLayer(channels + extra, channels, 3, activation="lrelu",
                                conv_clamp=conv_clamp, impl=impl)
        self.fc = FullyConnectedLayer(channels * 16, channels, activation="lrelu", impl=impl)
        self.out = FullyConnectedLayer(channels, 1, impl=impl)
        self.c_dim = c_dim
        self.embed = FullyConnectedLayer(c_dim, channels, impl=impl) if c_dim > 0 else None

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor]) -> torch.Tensor:
        """-> [N, 1]; with c [N, K, c_dim] (K conditions per sample, e.g. a caption and its wrong versions)
        -> [N, K], the features computed once: only the projection term depends on c."""
        if self.mbstd is not None:
            x = self.mbstd(x)
        h = self.fc(self.conv(x).flatten(1))
        logit = self.out(h)
        if self.embed is not None:
            if c is None:
                raise ValueError("this discriminator is conditional: pass c")
            if c.ndim == 3:
                n, k = c.shape[:2]
                if n != h.shape[0]:
                    raise ValueError(f"conditions [N, K, c_dim] must have N = {h.shape[0]}, got {tuple(c.shape)}")
                e = self.embed(condition_vector(c.reshape(n * k, -1), self.c_dim, h.dtype)).reshape(n, k, -1)
                return (logit + (e * h[:, None]).sum(dim=2) / math.sqrt(h.shape[1])).float()
            e = self.embed(condition_vector(c, self.c_dim, h.dtype))
            logit = logit + (e * h).sum(dim=1, keepdim=True) / math.sqrt(h.shape[1])
        return logit.float()


class ImageDiscriminator(nn.Module):
    """frames [N, C, H, W] (+ c [N] or [N, c_dim]) -> logits [N, 1]; c [N, K, c_dim] -> [N, K]."""

    def __init__(self, cfg: DiscriminatorConfig, resolution: int, img_channels: int = 3, c_dim: int = 0):
        super().__init__()
        self.resolution, self.c_dim = resolution, c_dim
        ch = lambda r: channels_at(r, cfg.channel_base, cfg.channel_max)
        self.fromrgb = Conv2dLayer(img_channels, ch(resolution), 1, activation="lrelu", impl=cfg.impl)
        res = [2 ** i for i in range(int(math.log2(resolution)), 2, -1)]
        down = (cfg.conv_clamp, cfg.impl, cfg.resample_filter, cfg.downsample)
        self.blocks = nn.Sequential(*[DiscriminatorBlock(ch(r), ch(r // 2), *down) for r in res])
        self.epilogue = Epilogue(ch(4), c_dim, cfg.mbstd_group, cfg.conv_clamp, cfg.impl)

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        assert img.ndim == 4 and img.shape[-1] == self.resolution, f"expected [N, C, {self.resolution}, " \
                                                                   f"{self.resolution}], got {tuple(img.shape)}"
        return self.epilogue(self.blocks(self.fromrgb(img)), c)


class VideoDiscriminator(nn.Module):
    """clips [B, T, C, H, W] + frame times [B, T] (+ c [B] or [B, c_dim]) -> logits [B, 1]; c [B, K, c_dim]
    -> [B, K]."""

    def __init__(self, cfg: DiscriminatorConfig, resolution: int, img_channels: int = 3, c_dim: int = 0):
        super().__init__()
        self.resolution, self.c_dim = resolution, c_dim
        # The clip is judged at `input_res` (box-downsampled): motion and temporal consistency read as well at
        # half size, and the video D, which sees every frame, costs a quarter per frame (the image D keeps
        # full-size frames, so detail is still judged).
        self.input_res = min(cfg.video_resolution or resolution, resolution)
        if resolution % self.input_res or self.input_res & (self.input_res - 1):
            raise ValueError(f"D.video_resolution must be a power of two (or 0 for the data resolution {resolution}), "
                             f"got {cfg.video_resolution}")
        resolution = self.input_res
        ch = lambda r: channels_at(r, cfg.channel_base, cfg.channel_max)
        fuse = min(cfg.video_fuse_resolution, resolution)
        self.diffs = cfg.video_diffs
        self.fromrgb = Conv2dLayer(img_channels * (2 if self.diffs else 1), ch(resolution), 1, activation="lrelu",
                                   impl=cfg.impl)
        stem = [2 ** i for i in range(int(math.log2(resolution)), int(math.log2(fuse)), -1)]
        down = (cfg.conv_clamp, cfg.impl, cfg.resample_filter, cfg.downsample)
        self.stem = nn.Sequential(*[DiscriminatorBlock(ch(r), ch(r // 2), *down) for r in stem])
        temporal = [2 ** i for i in range(int(math.log2(fuse)), 2, -1)]
        self.temporal = nn.ModuleList([TemporalBlock(ch(r), ch(r // 2), *down) for r in temporal])
        # Frame gap -> per-channel bias at the fusion point (Fourier features of log gap).
        self.register_buffer("gap_freqs", torch.arange(1, 9, dtype=torch.float32) * math.pi / 2, persistent=False)
        self.gap_embed = FullyConnectedLayer(16, ch(fuse), impl=cfg.impl)
        self.epilogue = Epilogue(ch(4), c_dim, cfg.mbstd_group, cfg.conv_clamp, cfg.impl)

    def forward(self, video: torch.Tensor, times: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, t, ch, h, w = video.shape
        assert h == w == self.resolution and times.shape == (b, t), \
            f"expected video [B, T, C, {self.resolution}, {self.resolution}] and times [B, T], " \
            f"got {tuple(video.shape)} and {tuple(times.shape)}"
        x = video.reshape(b * t, ch, h, w)
        if self.input_res < h:
            x = F.avg_pool2d(x, h // self.input_res)
        if self.diffs:                                                     # frame k: [x_k, x_{k+1} - x_k]
            v = x.reshape(b, t, *x.shape[1:])
            d = v[:, 1:] - v[:, :-1]
            d = torch.cat([d, d[:, -1:]], dim=1) if t > 1 else torch.zeros_like(v)   # last frame: last change
            x = torch.cat([v, d], dim=2).reshape(b * t, 2 * ch, *x.shape[2:])
        x = self.stem(self.fromrgb(x))
        x = x.reshape(b, t, *x.shape[1:]).transpose(1, 2)                 # [B, C, T, h, w]
        gap = (times[:, 1:] - times[:, :-1]).float().mean(dim=1, keepdim=True).clamp(min=1e-3).log()
        arg = gap * self.gap_freqs                                         # [B, 8]
        x = x + self.gap_embed(torch.cat([arg.sin(), arg.cos()], 1).to(x.dtype))[:, :, None, None, None]
        for block in self.temporal:
            x = block(x)
        return self.epilogue(x.mean(dim=2), c)                             # mean over time
