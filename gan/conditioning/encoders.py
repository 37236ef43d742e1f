"""Image and context (video) encoders, and the generator that uses them (image-to-video, continuation).

`ConditionalGenerator` is the temporally aware Generator whose condition `c` is pixels:
- c = a still [B, C, H, W] ('image' mode): animate it;
- c = context frames [B, K, C, H, W] ('continue' mode), at the first K times of t: continue them.

How the condition enters (see gan/networks/generator.py for the unconditional path):
- `ContentEncoder` maps the reference frame (the still, or the last context frame) to (a) a vector that joins z in the mapping network
  (through G's existing condition input, so w carries global appearance) and (b) residual features
  and RGB at `content_resolution`, added to G's once-per-video content: the spatial layout (where
  each object is) lives there, and G's motion warps it per frame like any generated content. The
  RGB residual includes the frame itself (downsampled to content_resolution), so the reference
  frame is right from the start and training refines it.
- Motion is made relative to the reference frame: the motion embedding at its time is subtracted,
  so that frame is a function of the encoded frame alone whatever the motion codes, and other
  frames move away from it. Random motion codes give different animations of the same still; a
  continuation starts from the most recent frame (so it is at least as close as copying it).
- 'continue': `MotionEncoder` reads the K context frames (and their frame gap) and predicts the
  first `motion_anchors` motion codes, so the observed motion carries on; anchors past those are
  random (seeded at sampling), so long continuations stay varied instead of freezing.
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from gan.config import CondConfig, GeneratorConfig
from gan.networks.generator import Generator, channels_at
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


class ConditionalGenerator(Generator):
    """G(z, c, t, motion) with c = a still [B, C, H, W] or context frames [B, K, C, H, W] -> [B, T, C, H, W].

    For 'continue', the context frames sit at t[:, :K]; t[:, K:] are the times to predict."""

    def __init__(self, cfg: GeneratorConfig, resolution: int, img_channels: int, cond: CondConfig):
        if cond.mode not in ("image", "continue"):
            raise ValueError(f"ConditionalGenerator is for cond.mode 'image' or 'continue', got {cond.mode!r}")
        super().__init__(cfg, resolution, img_channels, c_dim=cond.encoder_dim)
        self.mode = cond.mode
        self.center_flow = False            # v is relative to the reference frame: zero flow there
        self.context_frames = 1 if cond.mode == "image" else cond.context_frames
        r = cfg.content_resolution
        self.encoder = ContentEncoder(img_channels, resolution, r, channels_at(r, cfg.channel_base, cfg.channel_max),
                                      cond.encoder_channels, cond.encoder_dim, cfg.impl)
        if self.context_frames > 1:
            self.motion_encoder = MotionEncoder(self.context_frames, img_channels, resolution, cond.encoder_channels,
                                                cond.motion_anchors, cfg.motion_dim, cfg.impl)
        else:
            self.motion_encoder = None

    # ---- condition handling ----------------------------------------------------------------------
    def context_of(self, c: Optional[torch.Tensor]) -> torch.Tensor:
        """The condition as context frames [B, K, C, H, W] (a still is K = 1), checked."""
        if c is None:
            raise ValueError(f"this generator is conditional ({self.mode!r}): pass c = "
                             + ("a still [B, C, H, W]" if self.mode == "image" else
                                f"{self.context_frames} context frames [B, K, C, H, W]"))
        if c.ndim == 4:
            c = c.unsqueeze(1)
        expected = (self.context_frames, self.img_channels, self.resolution, self.resolution)
        if c.ndim != 5 or tuple(c.shape[1:]) != expected:
            raise ValueError(f"condition must be [B, {', '.join(map(str, expected))}] frames in [-1, 1], "
                             f"got {tuple(c.shape)}")
        return c

    def mapping_forward(self, z, c=None, truncation_psi: float = 1.0, update_w_avg: bool = False):
        # c: raw frames (encoded here) or an already encoded vector [B, encoder_dim]
        if c is not None and c.ndim >= 4:
            c = self.encoder(self.context_of(c)[:, -1])[0]
        return super().mapping_forward(z, c, truncation_psi, update_w_avg)

    def prepare(self, z: torch.Tensor, c: torch.Tensor, context_times: torch.Tensor, motion: torch.Tensor,
                truncation_psi: float = 1.0, update_w_avg: bool = False, fused: bool = False) -> Dict:
        """Everything that does not depend on the rendered times: w, content, motion codes, reference.

        context_times [B, K]: times of the given frames (the last one is the reference frame);
        motion [B, A_total, motion_dim]: random codes covering the times to render (anchors from 0)."""
        ctx = self.context_of(c)
        b = ctx.shape[0]
        assert context_times.shape == (b, self.context_frames), \
            f"context_times must be [B, {self.context_frames}], got {tuple(context_times.shape)}"
        vec, feat, rgb = self.encoder(ctx[:, -1])
        w = super().mapping_forward(z, vec, truncation_psi, update_w_avg)
        x, img = self.content(w, fused)
        content = (x if feat is None else x + feat.to(x.dtype), img + rgb.to(img.dtype))
        if self.motion_encoder is not None:
            predicted = self.motion_encoder(ctx, context_times).to(motion.dtype)
            n = min(predicted.shape[1], motion.shape[1])
            motion = torch.cat([predicted[:, :n], motion[:, n:]], dim=1)
        v_ref = self.motion(motion, context_times[:, -1:].float(), w=w)    # [B, 1, m]
        return {"w": w, "content": content, "motion": motion, "v_ref": v_ref}

    def render_prepared(self, state: Dict, t: torch.Tensor, fused: bool = False) -> torch.Tensor:
        """Frames [B, T, C, H, W] at times t [B, T] (any chunk of the clip) from `prepare`'s state."""
        v = self.motion(state["motion"], t, w=state["w"]) - state["v_ref"]  # zero at the reference frame
        return self.frames(state["w"], state["content"], v, fused)

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor], t: torch.Tensor,
                motion: Optional[torch.Tensor] = None, truncation_psi: float = 1.0,
                update_w_avg: bool = False, fused: bool = False) -> torch.Tensor:
        # z [B, z_dim], c frames, t [B, T] (first K = the context's times), motion [B, A, m] -> [B, T, C, H, W]
        assert t.ndim == 2 and t.shape[0] == z.shape[0], f"t must be [B, T], got {tuple(t.shape)}"
        if t.shape[1] < self.context_frames:
            raise ValueError(f"t must start with the {self.context_frames} context times, got {t.shape[1]} times")
        if motion is None:
            motion = self.sample_motion(z.shape[0], float(t.max()), device=z.device)
        state = self.prepare(z, c, t[:, :self.context_frames], motion, truncation_psi, update_w_avg, fused)
        return self.render_prepared(state, t, fused)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", mode={self.mode}, context_frames={self.context_frames}"
