"""Temporally aware StyleGAN2-class generator: G(z, c, t) renders frames at continuous times t.

Shape of the model (why it learns motion quickly and keeps objects intact):
- A content code z per video goes through the mapping network to w.
- Motion is a chain of random codes at anchors every `motion_period` frames. Time t is encoded as
  sinusoids of learned frequencies whose amplitudes and phases are smoothly (C1) interpolated
  between anchors, as in StyleGAN-V (Skorokhodov et al. 2022) but with fixed frequencies, so long
  clips neither loop (phases change at every anchor) nor drift (features stay bounded).
- The low-resolution blocks (<= content_resolution) depend on w only and run once per video; the
  motion embedding then predicts a coarse flow field that warps those content features per frame,
  so objects move as wholes instead of being re-drawn, and the higher blocks are modulated by
  [w, motion(t)] to render appearance changes. With warp_grid=0 this reduces to a StyleGAN-V-like
  generator whose motion enters only through modulation.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from gan.config import GeneratorConfig
from gan.networks.interface import VideoGenerator
from gan.networks.layers import FullyConnectedLayer, MappingNetwork
from gan.ops import bias_act, modulated_conv2d, modulated_separable_conv2d, setup_filter, upsample2d


def _compiling() -> bool:
    """Data-dependent checks are skipped inside torch.compile graphs (they would break the graph)."""
    return torch.compiler.is_compiling()


def channels_at(res: int, base: int, cmax: int) -> int:
    return int(min(base // res, cmax))


def condition_vector(c: Optional[torch.Tensor], c_dim: int, dtype=torch.float32) -> Optional[torch.Tensor]:
    """Class ids [B] -> one-hot [B, c_dim]; float vectors [B, c_dim] pass through; None stays None."""
    if c is None or c_dim == 0:
        return None
    if c.dtype in (torch.int64, torch.int32):
        if c.ndim != 1:
            raise ValueError(f"class labels must be [B] integers, got shape {tuple(c.shape)}")
        if not _compiling() and c.numel() and (int(c.min()) < 0 or int(c.max()) >= c_dim):
            raise ValueError(f"class label out of range [0, {c_dim}): {c.tolist()}")
        return F.one_hot(c, c_dim).to(dtype)
    if c.ndim != 2 or c.shape[1] != c_dim:
        raise ValueError(f"condition must be [B] class ids or [B, {c_dim}] vectors, got {tuple(c.shape)}")
    return c.to(dtype)


def motion_codes_for_seed(seed: int, k0: int, k1: int, dim: int) -> torch.Tensor:
    """Motion codes for anchors k0..k1-1 of the video with this seed: [k1 - k0, dim].

    Each anchor has its own RNG stream keyed by (seed, k), so any window of an endless clip can be
    drawn directly and a seed gives the same motion whatever the clip length or batch size."""
    out = []
    for k in range(k0, k1):
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, k, 7919]).generate_state(1)[0]))
        out.append(torch.randn(dim, generator=g))
    return torch.stack(out)


def reflect_unit(p: torch.Tensor) -> torch.Tensor:
    """Fold unbounded coordinates into [0, 1] like a ball bouncing between walls (a triangle wave of period 2)."""
    return 1 - (torch.remainder(p, 2.0) - 1).abs()


class MotionNetwork(nn.Module):
    """Motion codes at anchors + continuous times -> motion embedding per frame."""

    def __init__(self,
                 motion_dim: int,          # code size per anchor, and output embedding size
                 period: float,            # frames between anchors
                 num_freqs: int,           # sinusoid count (sin and cos each)
                 w_dim: int = 0,           # > 0: anchors also see the video's w (motion fits the content)
                 drift: int = 0,           # > 0: this many bouncing constant-velocity features (need w_dim > 0)
                 impl: str = "ref"):
        super().__init__()
        self.motion_dim, self.period, self.num_freqs, self.w_dim = motion_dim, float(period), num_freqs, w_dim
        if drift > 0 and w_dim <= 0:
            raise ValueError("motion drift is a function of the video's w: build the motion network with w_dim > 0")
        # Drift: the sinusoids (periods up to 4 anchor periods) and the anchor codes give motion that wanders
        # around a place; an object that crosses the frame at a steady speed (and bounces off its edges) needs
        # coordinates that grow linearly with time. Each drift feature is reflect(phase + speed * t) in [-1, 1],
        # speed and phase a function of the video's w only (never of the anchor codes, so any window of an
        # endless stream gets the same drift): a caption's "moving left" or a still's layout sets them.
        self.drift = int(drift)
        self.drift_head = FullyConnectedLayer(w_dim, 2 * drift, impl=impl) if drift > 0 else None
        self.max_drift_speed = 1.0 / (2.0 * period)   # at most one crossing of the unit range in 2 anchor periods
        # With w_dim, each anchor's parameters depend on its random code and on the video's w: the motion can
        # fit what the content placed where, and a condition that reaches w (a class, a caption such as
        # "moving left") steers the motion too. Without it (StyleGAN-V) motion is blind to content and condition.
        self.w_embed = FullyConnectedLayer(w_dim, motion_dim, impl=impl) if w_dim > 0 else None
        self.anchor = nn.Sequential(
            FullyConnectedLayer(motion_dim * (2 if w_dim > 0 else 1), motion_dim, activation="lrelu", impl=impl),
            FullyConnectedLayer(motion_dim, 3 * num_freqs, impl=impl))  # amplitude, phase, slow code
        # Periods log-spaced from 4 frames to 4 anchor periods; learnable (as log-frequency). Shorter
        # periods would start the model with frame-to-frame jitter.
        periods = torch.logspace(math.log10(4.0), math.log10(4 * period), num_freqs)
        self.log_omega = nn.Parameter(torch.log(2 * math.pi / periods))
        self.out = FullyConnectedLayer(3 * num_freqs + self.drift, motion_dim, activation="lrelu", impl=impl)

    def drift_features(self, w: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """w [B, w_dim], t [B, T] -> [B, T, drift] in [-1, 1], computed in float32 from the float32 times."""
        speed, phase = self.drift_head(w).float().chunk(2, dim=1)                   # [B, drift] each
        speed = self.max_drift_speed * torch.tanh(speed)
        return 2 * reflect_unit(phase.unsqueeze(1) + t.float().unsqueeze(-1) * speed.unsqueeze(1)) - 1

    def num_anchors(self, t_max: float) -> int:
        """Anchors needed to render times up to t_max."""
        return int(math.floor(t_max / self.period)) + 2

    def forward(self, codes: torch.Tensor, t: torch.Tensor, anchor_offset: int = 0,
                w: Optional[torch.Tensor] = None) -> torch.Tensor:
        # codes [B, K, motion_dim] for anchors anchor_offset.., t [B, T] (frames, >= 0), w [B, w_dim] (when
        # built with w_dim) -> [B, T, motion_dim]. A window of codes plus its offset renders any stretch of an
        # endless clip in constant memory.
        b, k, _ = codes.shape
        assert t.ndim == 2 and t.shape[0] == b, f"t must be [B={b}, T], got {tuple(t.shape)}"
        x = codes
        if self.w_embed is not None:
            if w is None or w.shape != (b, self.w_dim):
                raise ValueError(f"this motion network depends on the video's latent: pass w [B={b}, {self.w_dim}], "
                                 f"got {None if w is None else tuple(w.shape)}")
            e = self.w_embed(w)
            x = torch.cat([codes, e.unsqueeze(1).expand(-1, k, -1).to(codes.dtype)], dim=2)
        params = self.anchor(x.reshape(b * k, -1)).reshape(b, k, 3, self.num_freqs)
        pos = t.float() / self.period
        a = pos - pos.floor()
        idx = pos.floor().long() - anchor_offset
        nxt = (pos.floor() + 1).long() - anchor_offset     # = idx + 1 with no int64 Add (ORT-web WebGPU gets it wrong)
        if not _compiling() and (int(idx.min()) < 0 or int(idx.max()) + 1 >= k):
            raise ValueError(f"times {float(t.min()):.1f}..{float(t.max()):.1f} need motion anchors "
                             f"{int(pos.min())}..{int(pos.max()) + 1}, got {anchor_offset}..{anchor_offset + k - 1}")
        s = (a * a * (3 - 2 * a)).unsqueeze(-1).unsqueeze(-1)      # smoothstep: C1 at anchors
        gather = lambda i: torch.gather(params, 1, i[..., None, None].expand(-1, -1, 3, self.num_freqs))
        p = gather(idx).lerp(gather(nxt), s.to(params.dtype))        # [B, T, 3, F]
        amp, phase, slow = p.unbind(2)
        arg = t.float().unsqueeze(-1) * self.log_omega.exp() + phase
        parts = [(1 + amp) * torch.sin(arg), (1 + amp) * torch.cos(arg), slow]
        if self.drift_head is not None:
            parts.append(self.drift_features(w, t).to(slow.dtype))
        feats = torch.cat(parts, dim=-1)
        return self.out(feats.reshape(b * t.shape[1], -1)).reshape(b, t.shape[1], -1)

    def extra_repr(self) -> str:
        return (f"motion_dim={self.motion_dim}, period={self.period}, freqs={self.num_freqs}, w_dim={self.w_dim}, "
                f"drift={self.drift}")


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (+ optional 2x upsampling) + bias + lrelu. No per-pixel noise: noise that
    changes per frame makes video flicker, and noise fixed per video adds nothing to content."""

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 style_dim: int,                     # size of the vector that drives modulation
                 up: int = 1,                        # 2: upsample (FIR) before the conv
                 kernel_size: int = 3,
                 activation: str = "lrelu",
                 conv_clamp: Optional[float] = None,
                 impl: str = "ref",
                 up_conv: str = "dense",             # up=2: 'dense' (conv at 2x) or 'transposed' (StyleGAN2)
                 separable: bool = False):           # the kernel as a 1x1 conv then a depthwise conv (MobileStyleGAN)
        super().__init__()
        self.in_channels, self.out_channels, self.up, self.activation = in_channels, out_channels, up, activation
        self.conv_clamp, self.impl, self.up_conv, self.separable = conv_clamp, impl, up_conv, separable
        self.affine = FullyConnectedLayer(style_dim, in_channels, bias_init=1, impl=impl)
        if separable:
            self.pw = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
            self.dw = nn.Parameter(torch.randn(out_channels, 1, kernel_size, kernel_size))
        else:
            self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("resample_filter", setup_filter(), persistent=False)

    def forward(self, x: torch.Tensor, style: torch.Tensor, fused: bool = False) -> torch.Tensor:
        styles = self.affine(style)
        up_filter = None
        if self.up > 1 and (self.up_conv == "transposed" or self.separable):
            up_filter = self.resample_filter
        elif self.up > 1:
            x = upsample2d(x, self.resample_filter, up=self.up, impl=self.impl)
        if self.separable:
            x = modulated_separable_conv2d(x, self.pw.to(x.dtype), self.dw.to(x.dtype), styles, demodulate=True,
                                           fused=fused, impl=self.impl, up_filter=up_filter)
        else:
            x = modulated_conv2d(x, self.weight.to(x.dtype), styles, demodulate=True, fused=fused, impl=self.impl,
                                 up_filter=up_filter)
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, clamp=self.conv_clamp, impl=self.impl)

    def extra_repr(self) -> str:
        return f"in={self.in_channels}, out={self.out_channels}, up={self.up}" + \
            (", separable" if self.separable else f" ({self.up_conv})" if self.up > 1 else "")


class ToRGBLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, style_dim: int, conv_clamp=None, impl: str = "ref"):
        super().__init__()
        self.conv_clamp, self.impl = conv_clamp, impl
        self.affine = FullyConnectedLayer(style_dim, in_channels, bias_init=1, impl=impl)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, style: torch.Tensor, fused: bool = False) -> torch.Tensor:
        styles = self.affine(style) * self.weight_gain
        x = modulated_conv2d(x, self.weight.to(x.dtype), styles, demodulate=False, fused=fused, impl=self.impl)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp, impl=self.impl)


class SynthesisBlock(nn.Module):
    """One resolution: (upsample +) two modulated convs, and an RGB output summed over blocks (StyleGAN2's skip
    architecture)."""

    def __init__(self,
                 in_channels: int,          # 0 for the first block (starts from a learned constant)
                 out_channels: int,
                 resolution: int,           # output resolution of this block
                 style_dim: int,
                 img_channels: int,
                 conv_clamp: Optional[float] = None,
                 impl: str = "ref",
                 input_kind: str = "const",   # first block: 'const', 'latent' (const + map from w), 'projected'
        #                                             (the map from w alone, as DCGAN's input layer)
                 up_conv: str = "dense",      # the up-conv's form (SynthesisLayer)
                 separable: bool = False):    # separable kernels in both convs (SynthesisLayer)
        super().__init__()
        self.in_channels, self.resolution, self.impl = in_channels, resolution, impl
        self.input_fc = None
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution)) \
                if input_kind != "projected" else None
            if input_kind in ("latent", "projected"):
                self.input_fc = FullyConnectedLayer(style_dim, out_channels * resolution * resolution, impl=impl)
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, style_dim, up=2, conv_clamp=conv_clamp, impl=impl,
                                        up_conv=up_conv, separable=separable)
        self.conv1 = SynthesisLayer(out_channels, out_channels, style_dim, conv_clamp=conv_clamp, impl=impl,
                                    separable=separable)
        self.torgb = ToRGBLayer(out_channels, img_channels, style_dim, conv_clamp=conv_clamp, impl=impl)
        self.register_buffer("resample_filter", setup_filter(), persistent=False)

    def forward(self, x, img, style, fused: bool = False):
        # x [N, Cin, r/2, r/2] or None, img [N, 3, r/2, r/2] or None, style [N, style_dim]
        if self.conv0 is None:
            shape = (style.shape[0], self.conv1.in_channels, self.resolution, self.resolution)
            x = self.const.to(style.dtype).unsqueeze(0).expand(shape) if self.const is not None else None
            if self.input_fc is not None:
                y = self.input_fc(style).reshape(shape).to(style.dtype)
                x = y if x is None else x + y
            x = self.conv1(x, style, fused)
        else:
            x = self.conv1(self.conv0(x, style, fused), style, fused)
        if img is not None:
            img = upsample2d(img, self.resample_filter, impl=self.impl)
        y = self.torgb(x, style, fused).float()
        img = y if img is None else img + y
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}"


class Generator(VideoGenerator):
    """The synthesis G: G(z, c, t, motion) -> frames [B, T, C, H, W] rendered at the continuous times t [B, T]."""

    def __init__(self,
                 cfg: GeneratorConfig,
                 resolution: int,
                 img_channels: int = 3,
                 c_dim: int = 0,                 # condition vector size (classes, a caption embedding); 0: none
                 center_flow: bool = True):      # False: the caller makes motion relative (v = 0 at a reference
        #                                          frame; gan/networks/conditional.py), so the flow needs no v_avg
        super().__init__()
        self.cfg, self.resolution, self.img_channels, self.c_dim = cfg, resolution, img_channels, c_dim
        self.z_dim, self.motion_dim = cfg.z_dim, cfg.motion_dim
        self.context_frames, self.objects = 0, 0
        self.mapping = MappingNetwork(cfg.z_dim, c_dim, cfg.w_dim, cfg.mapping_layers, impl=cfg.impl)
        self.motion = MotionNetwork(cfg.motion_dim, cfg.motion_period, cfg.time_features,
                                    w_dim=cfg.w_dim, drift=cfg.motion_drift,
                                    impl=cfg.impl)
        log2 = int(math.log2(resolution))
        self.resolutions = [2 ** i for i in range(2, log2 + 1)]
        self.content_res = cfg.content_resolution
        blocks, in_ch = [], 0
        for res in self.resolutions:
            out_ch = channels_at(res, cfg.channel_base, cfg.channel_max)
            style_dim = cfg.w_dim if res <= self.content_res else cfg.w_dim + cfg.motion_dim
            blocks.append(SynthesisBlock(in_ch, out_ch, res, style_dim, img_channels,
                                         cfg.conv_clamp, cfg.impl, input_kind=cfg.input, up_conv=cfg.up_conv,
                                         separable=0 < cfg.separable_from <= res))
            in_ch = out_ch
        self.blocks = nn.ModuleList(blocks)
        self.flow, self.center_flow = None, bool(center_flow and cfg.warp_grid > 0)
        if cfg.warp_grid > 0:
            # Small random init and a faster learning rate: content moves from the first step, so the video
            # D never faces only static fakes. No bias, and v centred on its running mean (v_avg, tracked
            # like w_avg): the flow can only move content, never park it (docs/notes.md, "The warp flow").
            self.flow = FullyConnectedLayer(cfg.motion_dim, 2 * cfg.warp_grid ** 2, bias=False, weight_init=0.02,
                                            lr_multiplier=4.0, impl=cfg.impl)
        if self.center_flow:
            self.register_buffer("v_avg", torch.zeros(cfg.motion_dim))
        self.v_avg_beta = 0.995

    # ---- latents -------------------------------------------------------------------------------
    def mapping_forward(self, z, c=None, truncation_psi: float = 1.0, update_w_avg: bool = False):
        return self.mapping(z, condition_vector(c, self.c_dim, z.dtype), truncation_psi, update_w_avg)

    @torch.no_grad()
    def update_avg(self, z: torch.Tensor, c: Optional[torch.Tensor], motion: torch.Tensor, t: torch.Tensor) -> None:
        """w_avg, and the mean motion embedding v_avg that the flow is centred on."""
        w = self.mapping_forward(z, c, update_w_avg=True)
        if self.center_flow:
            v = self.motion(motion, t, w=w).float().mean(dim=(0, 1))
            self.v_avg.copy_(v.lerp(self.v_avg, self.v_avg_beta))

    def motion_embedding(self, codes: torch.Tensor, t: torch.Tensor, anchor_offset: int = 0,
                         w: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.motion(codes, t, anchor_offset, w=w)

    # ---- synthesis -----------------------------------------------------------------------------
    def content(self, w: torch.Tensor, fused: bool = False):
        """Time-independent low-resolution features: x [B, C, r, r], img [B, 3, r, r]."""
        x = img = None
        for block in self.blocks:
            if block.resolution > self.content_res:
                break
            x, img = block(x, img, w, fused)
        return x, img

    def frame_modules(self) -> List[nn.Module]:
        return [self.blocks] + ([self.flow] if self.flow is not None else [])

    def frame_grid_sizes(self) -> Tuple[int, ...]:
        return (self.content_res,) if self.flow is not None else ()

    def preview_resolutions(self) -> Tuple[int, ...]:
        # each block adds its RGB output to the upsampled sum, so any block ends in a whole, coarser frame
        return tuple(r for r in self.resolutions if self.content_res < r < self.resolution)

    def keep_up_to(self, resolution: int) -> None:
        # the skip sum of the RGB outputs up to `resolution` (StyleGAN2, fig. 7)
        self.blocks = nn.ModuleList([b for b in self.blocks if b.resolution <= resolution])

    def warp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # x [N, C, r, r] content repeated per frame, v [N, motion_dim] -> warped x [N, C, r, r]
        n, _, r, _ = x.shape
        g = self.cfg.warp_grid
        # Soft bound (tanh) on the displacement: unbounded, it drifts to one constant shift (mode collapse).
        m = self.cfg.warp_max
        if self.center_flow:
            v = v - self.v_avg.to(v.dtype)
        flow = (m * torch.tanh(self.flow(v).float() / m)).reshape(n, 2, g, g)
        flow = F.interpolate(flow, size=(r, r), mode="bilinear", align_corners=False)
        base = _base_grid(r, x.device)
        grid = base + flow.permute(0, 2, 3, 1)
        # 'border': content pulled in from outside the frame repeats the edge instead of turning black.
        return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False).to(x.dtype)

    def frames(self, w, content, v, fused: bool = False):
        """Render frames from per-video w [B, w_dim], content, and motion embeddings v [B, T, m]."""
        b, t, _ = v.shape
        x, img = content
        x = x.unsqueeze(1).expand(-1, t, -1, -1, -1).reshape(b * t, *x.shape[1:])
        img = img.unsqueeze(1).expand(-1, t, -1, -1, -1).reshape(b * t, *img.shape[1:])
        vf = v.reshape(b * t, -1).to(x.dtype)
        if self.flow is not None:
            x, img = self.warp(x, vf), self.warp(img, vf)
        style = torch.cat([w.unsqueeze(1).expand(-1, t, -1).reshape(b * t, -1), vf], dim=1)
        for block in self.blocks:
            if block.resolution > self.content_res:
                x, img = block(x, img, style, fused)
        return img.reshape(b, t, *img.shape[1:])

    def extra_repr(self) -> str:
        return (f"resolution={self.resolution}, c_dim={self.c_dim}, content_res={self.content_res}, "
                f"warp_grid={self.cfg.warp_grid}")


_GRID_CACHE = {}


def _base_grid(r: int, device) -> torch.Tensor:
    key = (r, str(device))
    if key not in _GRID_CACHE:
        lin = (torch.arange(r, dtype=torch.float32, device=device) + 0.5) / r * 2 - 1
        yy, xx = torch.meshgrid(lin, lin, indexing="ij")
        _GRID_CACHE[key] = torch.stack([xx, yy], dim=-1).unsqueeze(0)  # [1, r, r, 2] (x, y)
    return _GRID_CACHE[key]
