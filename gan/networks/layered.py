"""Layered generator: objects as sprites that persist and move rigidly, composited over a background.

For scenes of separate moving objects (the built-in digits, balls, sprites on a backdrop) a synthesis
generator must learn, from the discriminators alone, that an object keeps its shape from frame to frame;
in a short CPU budget it does not (objects melt and flicker). This generator makes persistence part of
the model instead:

- Each object k has its own latent (the k-th slice of z) and one shared mapping network turns it into
  w_k: objects are independent draws from one learned object distribution. w is the objects' w_k side
  by side. Each w_k is rendered ONCE per video by a small modulated-conv synthesis into a sprite:
  colour and alpha at `object_resolution`.
- Object k sits in a box of side `object_size` (fraction of the frame) whose position is a
  continuous function of time: a start and a drift velocity from w_k, plus an offset from the video's
  motion embedding (the continuous-time MotionNetwork of the synthesis G), folded into the frame as a
  ball bouncing off the borders (a triangle wave). Any time t renders directly, so clips have any
  length and frame rate, and a window of an endless stream needs only its own motion anchors.
- Frames are the background with the sprites placed by bilinear resampling and alpha-composited in
  slot order. The per-frame work is K resamplings and a blend: no convolutions per frame at all.

Interface: gan/networks/interface.py, as `Generator` (content(w) -> (sprites, background) once per video,
motion_embedding(codes, t, w=w) -> per-frame state, frames(w, content, v) -> video), so training, sampling,
the fast sampler, streaming and projection use it unchanged. The per-frame state v is the motion
embedding followed by the 2K object positions, computed in float32 from float32 times. `ObjectMapping` and
`ObjectMotion` also serve the layered image-to-video G (conditional.py), whose objects come from the frame.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from gan.config import GeneratorConfig
from gan.networks.generator import (MotionNetwork, SynthesisBlock, _base_grid, channels_at, condition_vector,
                                    reflect_unit)
from gan.networks.interface import VideoGenerator
from gan.networks.layers import FullyConnectedLayer, MappingNetwork


# Sprites start mostly transparent (alpha ~ 0.12 at a zero raw output): an object is grown where the
# discriminators want one, not painted over its whole box (docs/notes.md, "Layered G").
ALPHA_OFFSET = -2.0


def alpha_over(background: torch.Tensor, layers: torch.Tensor) -> torch.Tensor:
    """Frames [B, T, C, H, W] from a background [B, T, C, H, W] and layers [B, T, K, C + 1, H, W] (premultiplied
    colour, then alpha) composited in order, layer 0 at the back."""
    c = background.shape[2]
    for i in range(layers.shape[2]):
        background = background * (1 - layers[:, :, i, c:]) + layers[:, :, i, :c]
    return background


def peel_layers(frame: torch.Tensor, alphas: torch.Tensor, background: torch.Tensor):
    """frame [B, C, H, W], object alphas [B, K, 1, H, W], background [B, C, H, W] -> (premultiplied layer colours
    [B, K, C, H, W], the frame without its objects S_0 [B, C, H, W]). Object k is peeled off S_k (S_K = the frame):
    where its alpha is non-zero the background shows instead, S_{k-1} = S_k there, B elsewhere, and its colour is
    P_k = S_k - (1 - a_k) S_{k-1} (for a pixel that mixes colour c over B with coverage a, exactly a c).
    Compositing the layers over S_0 in order 1..K gives the frame back exactly, whatever the alphas."""
    s = frame
    layers = []
    for k in reversed(range(alphas.shape[1])):
        a = alphas[:, k]
        below = torch.where(a > 0, background, s)                        # S_{k-1}
        layers.append(s - (1 - a) * below)                               # P_k
        s = below
    return torch.stack(layers[::-1], dim=1), s


def translate(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Images x [N, C, H, H] moved by shifts [N, 2] (x, y in the [-1, 1] frame coordinates; bilinear, zeros
    coming in at the borders)."""
    grid = _base_grid(x.shape[-1], x.device) - shifts.reshape(-1, 1, 1, 2).float()       # sample at x - shift
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def move_layers(layers: torch.Tensor, alphas: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """layers [B, K, C, H, W], alphas [B, K, 1, H, W], shifts [B, T, K, 2] (x, y in the [-1, 1] frame coordinates)
    -> each layer moved by its shift, [B, T, K, C + 1, H, W] (premultiplied colour, then alpha)."""
    b, k, c, h, w = layers.shape
    n = shifts.shape[1]
    src = torch.cat([layers, alphas], dim=2).float()[:, None].expand(-1, n, -1, -1, -1, -1)
    return translate(src.reshape(b * n * k, c + 1, h, w), shifts).reshape(b, n, k, c + 1, h, w)


def composite(base: torch.Tensor, layers: torch.Tensor, alphas: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """base [B, C, H, W], layers, alphas, shifts as `move_layers` -> frames [B, T, C, H, W]: each layer moved by
    its shift, composited in order over base."""
    moved = move_layers(layers, alphas, shifts)
    return alpha_over(base.float()[:, None].expand(-1, shifts.shape[1], -1, -1, -1), moved)

def jitter_offsets(head: nn.Module, v: torch.Tensor, scale: float, objects: int) -> torch.Tensor:
    """Each object's offset from the motion embedding v [B, T, m]: scale * tanh(head(v)), [B, T, K, 2] float32."""
    b, n, m = v.shape
    return scale * torch.tanh(head(v.reshape(b * n, m)).float()).reshape(b, n, objects, 2)


def sprite_resolution(object_size: float, resolution: int) -> int:
    """The box's side in pixels rounded up to a power of two, within [4, resolution] (G.object_resolution: 0)."""
    side = max(4.0, object_size * resolution)
    return int(min(resolution, 2 ** math.ceil(math.log2(side) - 1e-9)))


class ObjectMapping(nn.Module):
    """z [B, z_dim] -> w [B, K * w_dim]: object k's latent is the k-th slice of z, mapped by ONE shared MLP.

    The objects of a video are independent draws from one learned object distribution (appearance, start,
    drift), as the objects of a scene are. With a per-slot style from a joint w, the G learned to stack its two
    slots into one tall glyph at one place (every video alike by step 500); shared and independent, they
    cannot be correlated. Truncation pulls every object towards the one average object (w_avg [w_dim]).
    The condition is the video's [B, c_dim] (every object reads it) or one per object [B, K, c_dim]."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_layers: int, objects: int, impl: str = "ref"):
        super().__init__()
        if z_dim < objects:
            raise ValueError(f"G.z_dim ({z_dim}) must be at least G.objects ({objects}): each object gets a slice")
        self.objects, self.slice, self.z_dim, self.c_dim = objects, z_dim // objects, z_dim, c_dim
        self.w_dim = objects * w_dim
        self.net = MappingNetwork(self.slice, c_dim, w_dim, num_layers, impl=impl)

    @property
    def w_avg(self) -> torch.Tensor:
        return self.net.w_avg.repeat(self.objects)

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None, truncation_psi: float = 1.0,
                update_w_avg: bool = False) -> torch.Tensor:
        assert z.ndim == 2 and z.shape[1] == self.z_dim, f"z must be [B, {self.z_dim}], got {tuple(z.shape)}"
        b, k = z.shape[0], self.objects
        zk = z[:, :k * self.slice].reshape(b * k, self.slice)
        ck = None if c is None else c.reshape(b * k, -1) if c.ndim == 3 else c.repeat_interleave(k, dim=0)
        return self.net(zk, ck, truncation_psi, update_w_avg).reshape(b, -1)

    def extra_repr(self) -> str:
        return f"objects={self.objects}, z slice={self.slice}"


class ObjectMotion(nn.Module):
    """The MotionNetwork plus object trajectories: (codes, t, w) -> [B, T, motion_dim + 2K] (embedding, then
    each object's (x, y) in [0, 1] across the box-free span of the frame). Without `starts` the objects' start
    positions come from elsewhere (the layered image-to-video G: where they are in the frame) and only their
    drift comes from w."""

    def __init__(self, motion: MotionNetwork, w_dim: int, objects: int, speed: float, jitter: float,
                 impl: str = "ref", starts: bool = True):
        super().__init__()
        self.net, self.objects, self.speed, self.jitter_max = motion, objects, float(speed), float(jitter)
        self.period, self.motion_dim, self.starts = motion.period, motion.motion_dim, bool(starts)
        # Start (x, y) and drift velocity (x, y) of each object, from its own w_k (one head shared by all).
        self.kinematics = FullyConnectedLayer(w_dim, 4 if starts else 2, impl=impl)
        # Per object: an offset from the motion embedding (starts near zero; the Ds decide how much wobble).
        self.jitter = FullyConnectedLayer(motion.motion_dim, 2 * objects, weight_init=0.1, impl=impl)
        # Kinematics read w centred on its running mean (tracked in training, like v_avg): w's mean is far
        # from zero, and uncentred it gave every video the same drift direction at the start.
        self.register_buffer("w_mean", torch.zeros(w_dim))

    def num_anchors(self, t_max: float) -> int:
        return self.net.num_anchors(t_max)

    def _kinematics(self, w: torch.Tensor) -> torch.Tensor:
        b = w.shape[0]
        wk = w.reshape(b * self.objects, -1) - self.w_mean.to(w.dtype)
        return self.kinematics(wk).float().reshape(b, self.objects, -1)

    def drift(self, w: torch.Tensor) -> torch.Tensor:
        """w [B, K * w_dim] -> each object's drift velocity [B, K, 2] (float32; spans of the frame per frame)."""
        return self.speed * torch.tanh(self._kinematics(w)[..., -2:])

    def start_and_drift(self, w: torch.Tensor):
        """w [B, K * w_dim] -> each object's start and drift velocity, [B, K, 2] each (float32; positions in
        [0, 1] of the box-free span, velocities in those units per frame)."""
        if not self.starts:
            raise ValueError("this object motion has no start positions (they come from the condition frame)")
        kin = self._kinematics(w)
        # sigmoid(1.702 x) is the normal CDF to within 0.01: for the roughly unit-normal outputs of the
        # freshly initialised layer, starts are spread uniformly over the frame (objects anywhere from step 0).
        return torch.sigmoid(1.702 * kin[..., :2]), self.speed * torch.tanh(kin[..., 2:])

    def jitter_offsets(self, v: torch.Tensor) -> torch.Tensor:
        """Each object's offset [B, T, K, 2] (float32) from the motion embedding v [B, T, m]."""
        return jitter_offsets(self.jitter, v, self.jitter_max, self.objects)

    @torch.no_grad()
    def track(self, w: torch.Tensor, beta: float) -> None:
        """w_mean <- the running mean of the per-object styles in w [B, K * w_dim] (kept beta of the old)."""
        self.w_mean.copy_(w.float().reshape(-1, self.w_mean.shape[0]).mean(0).lerp(self.w_mean, beta))

    def embedding(self, codes: torch.Tensor, t: torch.Tensor, anchor_offset: int = 0,
                  w: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The motion embedding [B, T, motion_dim] alone (w [B, K * w_dim]: needed when it reads the latent)."""
        return self.net(codes, t, anchor_offset, w=w if self.net.w_dim > 0 else None)

    def positions(self, v: torch.Tensor, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # v [B, T, m] motion embedding, t [B, T] frames, w [B, K * w_dim] -> [B, T, K, 2] in [0, 1]
        start, vel = self.start_and_drift(w)
        return reflect_unit(start[:, None] + vel[:, None] * t.float()[..., None, None] + self.jitter_offsets(v))

    def forward(self, codes: torch.Tensor, t: torch.Tensor, anchor_offset: int = 0,
                w: Optional[torch.Tensor] = None) -> torch.Tensor:
        if w is None:
            raise ValueError("the layered generator's motion depends on the video's latent: pass w [B, w_dim]")
        v = self.embedding(codes, t, anchor_offset, w)
        pos = self.positions(v, t, w)
        return torch.cat([v.float(), pos.flatten(2)], dim=2)

    def extra_repr(self) -> str:
        return f"objects={self.objects}, speed={self.speed}, jitter={self.jitter_max}, starts={self.starts}"


class LayeredGenerator(VideoGenerator):
    """G(z, c, t, motion) -> frames [B, T, C, H, W]: K sprites over a background (see the module doc)."""

    def __init__(self, cfg: GeneratorConfig, resolution: int, img_channels: int = 3, c_dim: int = 0,
                 objects: int = 2):
        super().__init__()
        if objects < 1:
            raise ValueError(f"the layered generator needs objects >= 1, got {objects}")
        self.cfg, self.resolution, self.img_channels, self.c_dim = cfg, resolution, img_channels, c_dim
        self.z_dim, self.motion_dim, self.objects, self.context_frames = cfg.z_dim, cfg.motion_dim, objects, 0
        self.mapping = ObjectMapping(cfg.z_dim, c_dim, cfg.w_dim, cfg.mapping_layers, objects, impl=cfg.impl)
        wk = self.mapping.w_dim                # the video's w: its objects' w_k side by side
        net = MotionNetwork(cfg.motion_dim, cfg.motion_period, cfg.time_features,
                            w_dim=wk, impl=cfg.impl)
        self.motion = ObjectMotion(net, cfg.w_dim, objects, cfg.object_speed, cfg.object_jitter, impl=cfg.impl)
        self.sprite_res = cfg.object_resolution or sprite_resolution(cfg.object_size, resolution)
        self.sprite_blocks = self._synthesis(self.sprite_res, img_channels + 1, cfg)   # colour + alpha logit
        # The background reads the whole w with small weights: every video starts on the same background (the
        # bias), varied only as far as the Ds ask (at unit scale, backgrounds varied from black to grey and stayed).
        self.background_style = self.blocks = self.background_colour = None
        if cfg.background == "static":         # `blocks`: the background's synthesis up to content_resolution
            self.background_style = FullyConnectedLayer(wk, cfg.w_dim, weight_init=0.1, bias_init=1, impl=cfg.impl)
            self.blocks = self._synthesis(cfg.content_resolution, img_channels, cfg)
        else:
            self.background_colour = FullyConnectedLayer(wk, img_channels, weight_init=0.1, impl=cfg.impl)
        self.w_mean_beta = 0.99
        with torch.no_grad():                 # start the kinematics centred (a fixed draw: init stays seeded)
            z = torch.randn(1024, cfg.z_dim, generator=torch.Generator().manual_seed(0))
            c = torch.zeros(1024, c_dim) if c_dim > 0 else None
            self.motion.w_mean.copy_(self.mapping(z, c).reshape(-1, cfg.w_dim).mean(0))

    # ---- latents -------------------------------------------------------------------------------
    def mapping_forward(self, z, c=None, truncation_psi: float = 1.0, update_w_avg: bool = False):
        return self.mapping(z, condition_vector(c, self.c_dim, z.dtype), truncation_psi, update_w_avg)

    @torch.no_grad()
    def update_avg(self, z: torch.Tensor, c: Optional[torch.Tensor], motion: torch.Tensor, t: torch.Tensor) -> None:
        """w_avg, and the mean w_k that the object kinematics are centred on."""
        self.motion.track(self.mapping_forward(z, c, update_w_avg=True), self.w_mean_beta)

    def motion_embedding(self, codes: torch.Tensor, t: torch.Tensor, anchor_offset: int = 0,
                         w: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.motion(codes, t, anchor_offset, w=w)

    def frame_modules(self) -> List[nn.Module]:
        return []                             # per frame: resampling and blending, no weights

    def frame_grid_sizes(self) -> Tuple[int, ...]:
        return (self.resolution,)

    @staticmethod
    def _synthesis(res: int, out_channels: int, cfg: GeneratorConfig) -> nn.ModuleList:
        blocks, in_ch = [], 0
        for r in [2 ** i for i in range(2, int(math.log2(res)) + 1)]:
            ch = channels_at(r, cfg.channel_base, cfg.channel_max)
            blocks.append(SynthesisBlock(in_ch, ch, r, cfg.w_dim, out_channels, cfg.conv_clamp,
                                         cfg.impl, input_kind=cfg.input, up_conv=cfg.up_conv,
                                         separable=0 < cfg.separable_from <= r))
            in_ch = ch
        return nn.ModuleList(blocks)

    def drift(self, w: torch.Tensor) -> torch.Tensor:
        """Each object's drift velocity in pixels per frame, [B, K, 2] (x right, y down), read off the kinematics
        head: where the video's w sends its objects, before bounces and the motion embedding's small offset.
        A direct check of motion conditioning ("moving left") with no detection or tracking in between."""
        return self.motion.drift(w) * (1 - self.cfg.object_size) * self.resolution   # box-free span in px (frames())

    def object_styles(self, w: torch.Tensor) -> torch.Tensor:
        """[B, K * w_dim] -> [B, K, w_dim]."""
        return w.reshape(w.shape[0], self.objects, -1)

    def content(self, w: torch.Tensor, fused: bool = False):
        """Once per video: sprites [B, K * (C + 1), s, s] (colour premultiplied by alpha, then alpha) and the
        background [B, C, r, r] (r = 1 for a flat background)."""
        b, c = w.shape[0], self.img_channels
        x = img = None
        wk = self.object_styles(w).reshape(b * self.objects, -1)
        for block in self.sprite_blocks:
            x, img = block(x, img, wk, fused)
        img = img.float()
        alpha = torch.sigmoid(img[:, c:] + ALPHA_OFFSET)
        sprites = torch.cat([img[:, :c] * alpha, alpha], dim=1).reshape(b, self.objects * (c + 1), *img.shape[2:])
        if self.background_colour is not None:
            background = self.background_colour(w).float().reshape(b, c, 1, 1)
        else:
            x = bg = None
            style = self.background_style(w)
            for block in self.blocks:
                x, bg = block(x, bg, style, fused)
            background = bg.float()
        return sprites.to(w.dtype), background

    def frames(self, w, content, v, fused: bool = False):
        """Frames [B, T, C, H, W] (float32) from w, content(w) and the motion state v [B, T, motion_dim + 2K]."""
        placed, bg = self.placed_layers(w, content, v)
        return alpha_over(bg.unsqueeze(1).expand(-1, v.shape[1], -1, -1, -1), placed)   # slot 0 at the back

    def placed_layers(self, w, content, v):
        """The sprites in place: (layers [B, T, K, C + 1, H, W] (premultiplied colour, then alpha; slot 0 at the
        back), background [B, C, H, W]), float32. `frames` composites them; gan/labels.py reads their alpha."""
        sprites, background = content
        b, n, _ = v.shape
        k, c, h, s = self.objects, self.img_channels, self.resolution, self.cfg.object_size
        pos = v[..., self.motion_dim:].float().reshape(b * n * k, 1, 1, 2)
        # Output pixel u (in [-1, 1]) samples sprite coordinate (u - centre) / s; centres keep boxes inside.
        centre = (2 * pos - 1) * (1 - s)
        grid = (_base_grid(h, v.device) - centre) / s                  # [B*T*K, h, h, 2]
        spr = sprites.float().reshape(b, 1, k, c + 1, *sprites.shape[2:]).expand(-1, n, -1, -1, -1, -1)
        placed = F.grid_sample(spr.reshape(b * n * k, c + 1, *sprites.shape[2:]), grid, mode="bilinear",
                               padding_mode="zeros", align_corners=False).reshape(b, n, k, c + 1, h, h)
        bg = background.float()
        if bg.shape[-1] != h:
            bg = F.interpolate(bg, size=(h, h), mode="bilinear", align_corners=False)
        return placed, bg

    def extra_repr(self) -> str:
        return (f"resolution={self.resolution}, c_dim={self.c_dim}, objects={self.objects}, "
                f"sprite={self.sprite_res}px at {self.cfg.object_size:g} of the frame, "
                f"background={self.cfg.background}")
