"""Scene generator: camera footage as a background stream seen through a camera, with moving things over it.

The two-stream video GAN of Vondrick et al. 2016 ("Generating Videos with Scene Dynamics"): a background drawn
once per video and a foreground of moving things with alpha composited over it. Here, by the kind of camera that
the data shows (gan/data/footage_kind.py):

- 'static' (street, security, nature cameras): the background is one image per video, from a bank of learned
  backgrounds (one per camera, started from the footage's per-pixel median: videos of one camera share one
  background) mixed by the video's w, plus a residual synthesised from w (content blocks, upsampled). The
  moving things are the layered G's sprites (layered.py: drawn once per video, moved along continuous-time
  trajectories), so they persist by construction and the scene is right from the first steps.
- 'subject' (a face or a person filling the frame): the background stream holds the subject, drawn once per video
  (identity is the content code), moved per frame by a small smooth warp from the motion embedding.
- 'moving' (pans, handheld, drone, dashcam): the background is a canvas larger than the frame, synthesised once
  per video, and each frame is a window into it along a camera path that is a continuous function of time
  (start and velocity from w, a small offset from the motion embedding, a slow zoom), so a pan slides across one
  scene instead of re-drawing it.

Interface: gan/networks/interface.py (content(w) once per video, motion_embedding per frame, frames).
The per-frame state v is [motion embedding, each object's (x, y), the camera's (x, y, zoom)], float32.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from gan.config import GeneratorConfig
from gan.networks.generator import MotionNetwork, SynthesisBlock, _base_grid, channels_at, condition_vector, reflect_unit
from gan.networks.interface import VideoGenerator
from gan.networks.layered import ALPHA_OFFSET, ObjectMapping, ObjectMotion, alpha_over, sprite_resolution
from gan.networks.layers import FullyConnectedLayer, MappingNetwork

CAMERAS = ("static", "subject", "moving")
SUBJECT_WARP = 0.12          # largest warp displacement of a subject, in half-frames (G.scene_warp -1)
CAMERA_JITTER = 0.02         # largest offset of the camera path from the motion embedding, in canvas spans
# Each sprite covers at least this share of its box (its alpha scaled up when less). Without a floor the sprites of
# a static-camera run turned transparent within 50 steps (the Ds found the empty scene easier to accept: foreground
# share 0.00005, real 0.02; BENCHMARKS.md, "Camera footage"); with one, a thing must be drawn and moved.
MIN_COVERAGE = 0.15


def sprite_window(res: int) -> torch.Tensor:
    """[1, 1, res, res]: sin(pi u) sin(pi v) over the sprite box. Alpha is multiplied by it, so a sprite fades out
    before its box's edge: without it, step-100 sprites showed their boxes' straight edges (docs/camera_*.png)."""
    u = torch.sin(math.pi * (torch.arange(res, dtype=torch.float32) + 0.5) / res)
    return (u[:, None] * u[None, :])[None, None]


def synthesis(res: int, out_channels: int, cfg: GeneratorConfig) -> nn.ModuleList:
    """Modulated-conv blocks from 4 px up to `res` (StyleGAN2 skip architecture)."""
    blocks, in_ch = [], 0
    for r in [2 ** i for i in range(2, int(math.log2(res)) + 1)]:
        ch = channels_at(r, cfg.channel_base, cfg.channel_max)
        blocks.append(SynthesisBlock(in_ch, ch, r, cfg.w_dim, out_channels, cfg.conv_clamp, cfg.impl,
                                     input_kind=cfg.input, up_conv=cfg.up_conv,
                                     separable=0 < cfg.separable_from <= r))
        in_ch = ch
    return nn.ModuleList(blocks)


def run_blocks(blocks: nn.ModuleList, style: torch.Tensor, fused: bool = False) -> torch.Tensor:
    x = img = None
    for block in blocks:
        x, img = block(x, img, style, fused)
    return img.float()


class SceneGenerator(VideoGenerator):
    """G(z, c, t, motion) -> frames [B, T, C, H, W]: a background seen through a camera, sprites over it."""

    def __init__(self,
                 cfg: GeneratorConfig,
                 resolution: int,
                 img_channels: int = 3,
                 c_dim: int = 0,              # condition vector size (classes, a caption embedding); 0: none
                 camera: str = "static",      # 'static', 'subject' or 'moving' (see the module doc)
                 objects: int = 0,            # foreground sprites (0: none)
                 backgrounds: int = 0):       # learned backgrounds in the bank (0: the residual synthesis alone)
        super().__init__()
        if camera not in CAMERAS:
            raise ValueError(f"camera must be one of {CAMERAS}, got '{camera}'")
        self.cfg, self.resolution, self.img_channels, self.c_dim = cfg, resolution, img_channels, c_dim
        self.z_dim, self.motion_dim, self.context_frames = cfg.z_dim, cfg.motion_dim, 0
        self.camera, self.objects, self.backgrounds = camera, int(objects), int(backgrounds)
        self.mapping = MappingNetwork(cfg.z_dim, c_dim, cfg.w_dim, cfg.mapping_layers, impl=cfg.impl)
        self.motion = MotionNetwork(cfg.motion_dim, cfg.motion_period, cfg.time_features, w_dim=cfg.w_dim,
                                    impl=cfg.impl)
        # ---- background stream ----
        self.canvas = cfg.canvas if camera == "moving" else 1.0
        canvas_res = 2 ** math.ceil(math.log2(resolution * self.canvas) - 1e-9)
        bg_res = canvas_res if camera == "moving" or self.backgrounds == 0 else min(cfg.content_resolution,
                                                                                  resolution)
        self.background_style = FullyConnectedLayer(cfg.w_dim, cfg.w_dim, weight_init=0.5, bias_init=1,
                                                    impl=cfg.impl)
        self.background_blocks = synthesis(bg_res, img_channels, cfg)
        self.bank_logits = None
        # The bank learns at G.background_lr of the rate (StyleGAN's lr multiplier: stored / the gain, why: config.py);
        # at 0 it is a buffer, since the training loop turns every parameter's gradient on.
        self.bank_gain = cfg.background_lr if cfg.background_lr > 0 else 1.0
        if self.backgrounds > 0:                # filled from the data by fit_backgrounds before training
            bank = torch.zeros(self.backgrounds, img_channels, resolution, resolution)
            if cfg.background_lr > 0:
                self.bank_weight = nn.Parameter(bank)
            else:
                self.register_buffer("bank_weight", bank)
            self.bank_logits = FullyConnectedLayer(cfg.w_dim, self.backgrounds, weight_init=1.0, impl=cfg.impl)
        else:
            self.bank_weight = None
        # The residual starts small over a bank (the median is already a good scene), whole without one.
        self.residual_gain = nn.Parameter(torch.tensor(0.01 if self.backgrounds > 0 else 1.0))
        self.flow = None
        self.warp = (SUBJECT_WARP if camera == "subject" else 0.0) if cfg.scene_warp == -1 else float(cfg.scene_warp)
        if self.warp > 0 and camera != "moving":  # a smooth per-frame warp of the scene (no bias: centred motion)
            g = max(2, cfg.warp_grid)
            self.flow = FullyConnectedLayer(cfg.motion_dim, 2 * g * g, bias=False, weight_init=0.05, impl=cfg.impl)
        self.camera_head = None
        if camera == "moving":                 # start (x, y), velocity (x, y), zoom rate from w; offset from v
            self.camera_head = FullyConnectedLayer(cfg.w_dim, 5, impl=cfg.impl)
            self.camera_jitter = FullyConnectedLayer(cfg.motion_dim, 2, weight_init=0.1, impl=cfg.impl)
        self.register_buffer("w_mean", torch.zeros(cfg.w_dim))   # camera kinematics read w centred (as layered)
        # ---- foreground: the layered G's sprites, their own mapping (z's slices) and trajectories ----
        self.object_mapping = self.object_motion = self.sprite_blocks = None
        if self.objects > 0:
            self.object_mapping = ObjectMapping(cfg.z_dim, c_dim, cfg.w_dim, cfg.mapping_layers, self.objects,
                                                impl=cfg.impl)
            net = MotionNetwork(cfg.motion_dim, cfg.motion_period, cfg.time_features,
                                w_dim=self.object_mapping.w_dim, impl=cfg.impl)
            self.object_motion = ObjectMotion(net, cfg.w_dim, self.objects, cfg.object_speed, cfg.object_jitter,
                                              impl=cfg.impl)
            self.sprite_res = cfg.object_resolution or sprite_resolution(cfg.object_size, resolution)
            self.sprite_blocks = synthesis(self.sprite_res, img_channels + 1, cfg)
            self.register_buffer("window", sprite_window(self.sprite_res), persistent=False)
        self.w_mean_beta = 0.99

    # ---- the data prior --------------------------------------------------------------------------
    @torch.no_grad()
    def fit_backgrounds(self, images: torch.Tensor) -> None:
        """Start the bank from backgrounds read off the data, images [N, C, H, W] in [-1, 1] (N <= backgrounds;
        the rest repeat them)."""
        if self.bank_weight is None:
            raise ValueError("this scene generator has no background bank (backgrounds=0)")
        assert images.ndim == 4 and images.shape[1] == self.img_channels, f"got {tuple(images.shape)}"
        if images.shape[-1] != self.resolution:
            images = F.interpolate(images.float(), size=(self.resolution,) * 2, mode="area")
        idx = torch.arange(self.backgrounds) % images.shape[0]
        self.bank_weight.copy_(images[idx].to(self.bank_weight) / self.bank_gain)

    @property
    def bank(self) -> Optional[torch.Tensor]:
        """The background bank [N, C, H, W] in image units (None without one)."""
        return None if self.bank_weight is None else self.bank_weight * self.bank_gain

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        old = state_dict.pop(prefix + "bank", None)            # checkpoints before the lr multiplier: image units
        if old is not None:
            state_dict[prefix + "bank_weight"] = old / self.bank_gain
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ---- latents ---------------------------------------------------------------------------------
    @property
    def motion_period(self) -> float:
        return self.motion.period

    @property
    def w_avg(self) -> torch.Tensor:
        parts = [self.mapping.w_avg] + ([self.object_mapping.w_avg] if self.objects else [])
        return torch.cat(parts)

    def split(self, w: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """w [B, w_dim (+ K * w_dim)] -> (the scene's w, the objects' w or None)."""
        d = self.cfg.w_dim
        return w[:, :d], (w[:, d:] if self.objects else None)

    def mapping_forward(self, z, c=None, truncation_psi: float = 1.0, update_w_avg: bool = False):
        c = condition_vector(c, self.c_dim, z.dtype)
        w = self.mapping(z, c, truncation_psi, update_w_avg)
        if self.objects:
            w = torch.cat([w, self.object_mapping(z, c, truncation_psi, update_w_avg)], dim=1)
        return w

    @torch.no_grad()
    def update_avg(self, z: torch.Tensor, c: Optional[torch.Tensor], motion: torch.Tensor, t: torch.Tensor) -> None:
        """w_avg, the mean scene w the camera reads centred, and the mean object w of the sprites' kinematics."""
        ws, wo = self.split(self.mapping_forward(z, c, update_w_avg=True))
        self.w_mean.copy_(ws.float().mean(0).lerp(self.w_mean, self.w_mean_beta))
        if self.objects:
            self.object_motion.track(wo, self.w_mean_beta)

    # ---- per frame state -------------------------------------------------------------------------
    def motion_embedding(self, codes: torch.Tensor, t: torch.Tensor, anchor_offset: int = 0,
                         w: Optional[torch.Tensor] = None) -> torch.Tensor:
        if w is None:
            raise ValueError("the scene generator's motion depends on the video's latent: pass w")
        ws, wo = self.split(w)
        v = self.motion(codes, t, anchor_offset, w=ws).float()
        parts = [v]
        if self.objects:
            vo = self.object_motion.embedding(codes, t, anchor_offset, wo)
            parts.append(self.object_motion.positions(vo, t, wo).flatten(2))
        if self.camera_head is not None:
            parts.append(self.camera_path(ws, v, t))
        return torch.cat(parts, dim=2)

    def camera_path(self, ws: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The camera's (x, y) in [0, 1] of the canvas' free span and its zoom, [B, T, 3] float32: a start and a
        velocity (at most G.camera_speed frame widths per frame) from w, bouncing at the canvas' edges, plus a small
        offset from the motion embedding v [B, T, m]; zoom = exp(rate * t) with |rate| <= camera_speed / 4."""
        k = self.camera_head(ws - self.w_mean.to(ws.dtype)).float()                      # [B, 5]
        span = max(self.canvas - 1.0, 1e-3)                     # the free span, in frame widths
        start = torch.sigmoid(1.702 * k[:, None, :2])
        vel = (self.cfg.camera_speed / span) * torch.tanh(k[:, None, 2:4])             # frame widths -> spans
        b, n, m = v.shape
        jit = CAMERA_JITTER * torch.tanh(self.camera_jitter(v.reshape(b * n, m).to(ws.dtype)).float()).reshape(b, n, 2)
        pos = reflect_unit(start + vel * t.float()[..., None] + jit)
        zoom = torch.exp(0.25 * self.cfg.camera_speed * torch.tanh(k[:, None, 4:5]) * t.float()[..., None])
        return torch.cat([pos, zoom], dim=2)

    # ---- once per video ----------------------------------------------------------------------------
    def content(self, w: torch.Tensor, fused: bool = False):
        """(sprites [B, K * (C + 1), s, s] or an empty [B, 0, 1, 1], background canvas [B, C, R, R]), float32."""
        b, c = w.shape[0], self.img_channels
        ws, wo = self.split(w)
        res = run_blocks(self.background_blocks, self.background_style(ws), fused)
        canvas_res = self.resolution if self.bank_weight is not None else res.shape[-1]
        if res.shape[-1] != canvas_res:
            res = F.interpolate(res, size=(canvas_res,) * 2, mode="bilinear", align_corners=False)
        bg = self.residual_gain * res
        if self.bank_weight is not None:
            mix = torch.softmax(self.bank_logits(ws).float(), dim=1)                      # [B, N]
            bg = bg + torch.einsum("bn,nchw->bchw", mix, self.bank.float())
        if not self.objects:
            return w.new_zeros(b, 0, 1, 1).float(), bg
        img = run_blocks(self.sprite_blocks, wo.reshape(b * self.objects, -1), fused)
        alpha = torch.sigmoid(img[:, c:] + ALPHA_OFFSET) * self.window
        # below the floor, the sprite's own shape (peak-normalised: stable however transparent) scaled up to it
        shape = alpha / alpha.amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-30)
        lifted = shape * (MIN_COVERAGE / shape.mean(dim=(1, 2, 3), keepdim=True).clamp(min=1e-6))
        alpha = torch.where(alpha.mean(dim=(1, 2, 3), keepdim=True) < MIN_COVERAGE, lifted, alpha).clamp(max=1.0)
        sprites = torch.cat([img[:, :c] * alpha, alpha], dim=1).reshape(b, self.objects * (c + 1), *img.shape[2:])
        return sprites, bg

    # ---- per frame ---------------------------------------------------------------------------------
    def view(self, canvas: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The background of every frame [B, T, C, H, W] from the canvas [B, C, R, R] and the state v."""
        b, n, _ = v.shape
        h = self.resolution
        if self.camera == "moving":
            cam = v[..., -3:].float().reshape(b * n, 3)
            side = 1.0 / self.canvas                                   # the window, in canvas half-spans
            scale = (side / cam[:, 2]).reshape(-1, 1, 1, 1)
            centre = ((2 * cam[:, :2] - 1) * (1 - scale.reshape(-1, 1))).reshape(-1, 1, 1, 2)
            grid = _base_grid(h, v.device) * scale + centre
            src = canvas.float()[:, None].expand(-1, n, -1, -1, -1).reshape(b * n, *canvas.shape[1:])
            out = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
            return out.reshape(b, n, -1, h, h)
        bg = canvas.float()
        if bg.shape[-1] != h:
            bg = F.interpolate(bg, size=(h, h), mode="bilinear", align_corners=False)
        bg = bg[:, None].expand(-1, n, -1, -1, -1)
        if self.flow is None:
            return bg
        g = max(2, self.cfg.warp_grid)
        vf = v[..., :self.motion_dim].reshape(b * n, -1)
        flow = self.warp * torch.tanh(self.flow(vf.to(self.flow.weight.dtype)).float()).reshape(b * n, 2, g, g)
        flow = F.interpolate(flow, size=(h, h), mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
        out = F.grid_sample(bg.reshape(b * n, -1, h, h), _base_grid(h, v.device) + flow, mode="bilinear",
                            padding_mode="border", align_corners=False)
        return out.reshape(b, n, -1, h, h)

    def placed_layers(self, w, content, v):
        """(sprites in place [B, T, K, C + 1, H, W] (premultiplied colour, then alpha), background [B, T, C, H, W])."""
        sprites, canvas = content
        bg = self.view(canvas, v)
        b, n, _ = v.shape
        k, c, h, s = self.objects, self.img_channels, self.resolution, self.cfg.object_size
        if k == 0:
            return bg.new_zeros(b, n, 0, c + 1, h, h), bg
        pos = v[..., self.motion_dim:self.motion_dim + 2 * k].float().reshape(b * n * k, 1, 1, 2)
        grid = (_base_grid(h, v.device) - (2 * pos - 1) * (1 - s)) / s                  # sprite coords
        spr = sprites.float().reshape(b, 1, k, c + 1, *sprites.shape[2:]).expand(-1, n, -1, -1, -1, -1)
        placed = F.grid_sample(spr.reshape(b * n * k, c + 1, *sprites.shape[2:]), grid, mode="bilinear",
                               padding_mode="zeros", align_corners=False).reshape(b, n, k, c + 1, h, h)
        return placed, bg

    def frames(self, w, content, v, fused: bool = False):
        """Frames [B, T, C, H, W] (float32): the background through the camera, the sprites over it."""
        placed, bg = self.placed_layers(w, content, v)
        return alpha_over(bg, placed)

    def frame_modules(self) -> List[nn.Module]:
        return [self.flow] if self.flow is not None else []

    def frame_grid_sizes(self) -> Tuple[int, ...]:
        return (self.resolution,)

    def extra_repr(self) -> str:
        return (f"resolution={self.resolution}, c_dim={self.c_dim}, camera={self.camera}, objects={self.objects}, "
                f"backgrounds={self.backgrounds}, canvas={self.canvas:g}, warp={self.warp:g}")
