"""Layered image-to-video and continuation: the reference frame split into object layers that move rigidly.

The synthesis `ConditionalGenerator` (encoders.py) animates a still by warping it with a smooth flow field: things
move, but an object bends and stretches as it goes, because nothing in a warp says which pixels belong together.
For scenes of separate objects on a flat background (the built-ins; sprites, balls, digits on a backdrop) this
generator splits the reference frame itself into K object layers over the background and moves each layer as one
piece, so objects keep their exact pixels wherever they go:

- `ObjectSplitter` (no parameters): objects are the 8-connected regions of pixels that differ from the border's
  median colour, the K largest kept; each pixel's alpha is the coverage that mixes the object's colour with the
  background there (its anti-aliased edge included).
- Exact layers (`peel_layers`): each object is peeled off the frame, the background showing where it was, and
  its premultiplied colour is what the frame had there minus the background's share. Compositing the layers
  back over the peeled frame in order gives the frame exactly, so the reference frame is the input by
  construction (no reconstruction to learn) and a moved object carries its own pixels, anti-aliasing included.
- Learned: `ObjectEncoder` sums up each object (conv features averaged over its alpha, its centre and extent) and
  object k's w_k = mapping(z_k, its vector), one mapping network shared by the objects; its drift velocity comes
  from w_k through a linear head, as in the layered G, so the discriminators teach how fast and which way things
  go, and different seeds give different motions of the same still. Its start is its centre, its bounce span
  comes from its extent (an object bounces when its edge meets the border, as the built-ins do), and the motion
  embedding adds a small jitter. Positions are relative to the reference time: every shift is 0 there.
- Continuation measures each layer's velocity in the context instead (`match_shifts`: the layer against the
  earlier context frames: the best integer shift, refined to 1/8 px), so a clip goes on the way it was going.

Not for footage with textured backgrounds or objects that touch or overlap in the reference frame (they move as
one); use the synthesis generator (G.objects: 0) there. Interface: `prepare(z, c, context_times, motion)` -> state
once per clip, `render_prepared(state, t)` -> frames at any times, as `ConditionalGenerator`, so training,
sampling and streaming use it unchanged.
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from gan.config import CondConfig, GeneratorConfig
from gan.conditioning.encoders import ConditionalGenerator
from gan.networks.generator import MotionNetwork, _base_grid, reflect_unit
from gan.networks.layered import alpha_over, jitter_offsets, track_mean
from gan.networks.layers import Conv2dLayer, FullyConnectedLayer, MappingNetwork

MATCH_RESOLUTION = 16     # layers are matched against frames at most this size (cost ~ (2R+1)^2 pixels)


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


@torch.no_grad()
def match_shifts(layers: torch.Tensor, alphas: torch.Tensor, base: torch.Tensor, frames: torch.Tensor, radius: int,
                 resolution: int = MATCH_RESOLUTION) -> torch.Tensor:
    """Where has each layer gone in each frame? layers [B, K, C, H, W], alphas [B, K, 1, H, W], the frame without
    its objects base [B, C, H, W], frames [B, T, C, H, W] -> shifts [B, T, K, 2] (x, y in [-1, 1] frame units).
    Coarse: for every integer shift d up to `radius` pixels (at `resolution`), the squared error between the layer
    and the frame seen through its alpha at x + d, per unit of alpha: sum (P - A X_d)^2 = sum P^2 - 2 sum (P A) X_d
    + sum A^2 X_d^2 is two cross-correlations, one grouped conv each for all shifts, frames and clips at once.
    Fine: the layer itself moved (bilinear, as `composite` moves it) in 1/8 px steps within half a pixel of the
    best integer shift and laid over the base, against the frame where the layer is. No gradient: a measurement."""
    b, k, c, h, _ = layers.shape
    n = frames.shape[1]
    f = max(1, h // resolution)
    layers, alphas, frames = layers.float(), alphas.float(), frames.float()
    base = base.float()
    if f > 1:
        base = F.avg_pool2d(base, f)
        layers = F.avg_pool2d(layers.reshape(b * k, c, h, h), f).reshape(b, k, c, h // f, h // f)
        alphas = F.avg_pool2d(alphas.reshape(b * k, 1, h, h), f).reshape(b, k, 1, h // f, h // f)
        frames = F.avg_pool2d(frames.reshape(b * n, c, h, h), f).reshape(b, n, c, h // f, h // f)
    r = layers.shape[-1]
    radius = max(0, min(int(radius), r // 2))                           # larger moves: the object has bounced
    side = 2 * radius + 1
    x = F.pad(frames.transpose(0, 1).reshape(n, b * c, r, r), [radius] * 4)          # [T, B*C, r+2R, r+2R]
    cross = F.conv2d(x, (layers * alphas).reshape(b * k, c, r, r), groups=b)          # [T, B*K, side, side]
    energy = F.conv2d(x.square(), alphas.square().expand(-1, -1, c, -1, -1).reshape(b * k, c, r, r), groups=b)
    err = layers.square().sum(dim=(2, 3, 4)).reshape(1, b * k, 1, 1) - 2 * cross + energy
    err = err / alphas.sum(dim=(2, 3, 4)).clamp(min=1e-6).reshape(1, b * k, 1, 1)
    offs = torch.arange(side, device=layers.device, dtype=torch.float32) - radius
    err = err.reshape(n, b, k, side, side) + 1e-6 * (offs[:, None].square() + offs.square())   # ties: the least move
    best = err.flatten(3).argmin(dim=3)                                 # [T, B, K]
    coarse = torch.stack([offs[best % side], offs[best // side]], dim=3)   # [T, B, K, 2] pixels (x, y)
    fine = torch.arange(-4, 5, device=layers.device, dtype=torch.float32) / 8
    fy, fx = torch.meshgrid(fine, fine, indexing="ij")
    steps = torch.stack([fx.flatten(), fy.flatten()], dim=1)            # [S, 2]
    cand = coarse[:, :, :, None] + steps                                 # [T, B, K, S, 2]
    src = torch.cat([layers, alphas], dim=2)[None, :, :, None].expand(n, -1, -1, steps.shape[0], -1, -1, -1)
    moved = translate(src.reshape(-1, c + 1, r, r), cand * (2.0 / r)).reshape(n, b, k, -1, c + 1, r, r)
    target = frames.transpose(0, 1)[:, :, None, None]                  # [T, B, 1, 1, C, r, r]
    a = moved[:, :, :, :, c:]
    over = moved[:, :, :, :, :c] + (1 - a) * base[None, :, None, None]  # the layer alone over the base
    err = (a * (over - target).square()).sum(dim=(4, 5, 6)) / a.sum(dim=(4, 5, 6)).clamp(min=1e-6)
    err = err + 1e-6 * steps.square().sum(1)                             # ties: the least move
    pick = err.argmin(dim=3)                                            # [T, B, K]
    shift = cand.gather(3, pick[..., None, None].expand(-1, -1, -1, 1, 2)).squeeze(3)
    return shift.transpose(0, 1) * (2.0 / r)                            # [B, T, K, 2]; pixels at r -> [-1, 1]


class LayeredConditionalGenerator(ConditionalGenerator):
    """G(z, c, t, motion) with c = a still [B, C, H, W] or context frames [B, K, C, H, W] -> [B, T, C, H, W]:
    the reference frame's objects as layers moving rigidly over its background (see the module doc)."""

    def __init__(self, cfg: GeneratorConfig, resolution: int, img_channels: int, cond: CondConfig, objects: int):
        nn.Module.__init__(self)
        if cond.mode not in ("image", "continue"):
            raise ValueError(f"LayeredConditionalGenerator is for cond.mode 'image' or 'continue', got {cond.mode!r}")
        if objects < 1:
            raise ValueError(f"the layered conditional generator needs objects >= 1, got {objects}")
        self.cfg, self.resolution, self.img_channels, self.mode = cfg, resolution, img_channels, cond.mode
        self.z_dim, self.motion_dim, self.objects = cfg.z_dim, cfg.motion_dim, objects
        self.context_frames = 1 if cond.mode == "image" else cond.context_frames
        self.c_dim = cond.encoder_channels
        self.splitter = ObjectSplitter(objects)
        self.encoder = ObjectEncoder(img_channels * self.context_frames, cond.encoder_channels, impl=cfg.impl)
        self.slice = cfg.z_dim // objects
        self.mapping = MappingNetwork(self.slice, cond.encoder_channels, cfg.w_dim, cfg.mapping_layers, impl=cfg.impl)
        self.motion = MotionNetwork(cfg.motion_dim, cfg.motion_period, cfg.time_features,
                                    w_dim=objects * cfg.w_dim, impl=cfg.impl)
        self.velocity = FullyConnectedLayer(cfg.w_dim, 2, impl=cfg.impl)   # drift of each object from its w_k
        self.jitter = FullyConnectedLayer(cfg.motion_dim, 2 * objects, weight_init=0.1, impl=cfg.impl)
        self.speed, self.jitter_max = float(cfg.object_speed), float(cfg.object_jitter)
        self.register_buffer("w_mean", torch.zeros(cfg.w_dim))          # the velocity head reads w centred
        self.w_mean_beta = 0.99
        self.motion_encoder = None
        self.center_flow = False

    # ---- condition -> layers -------------------------------------------------------------------
    def layers(self, ctx: torch.Tensor) -> Dict:
        """The reference (last) frame of the context [B, K, C, H, W] split: object alphas and layers, the frame
        without its objects, each object's centre and half extent ([B, K, 2] in [-1, 1] frame units) and vector."""
        frame = ctx[:, -1].float()
        alphas, bg = self.splitter(frame)
        layers, base = peel_layers(frame, alphas, bg.expand_as(frame))
        a = alphas[:, :, 0]
        grid = _base_grid(self.resolution, ctx.device)[0]                # [H, W, 2]
        mass = a.sum(dim=(2, 3)).clamp(min=1e-6)[..., None]             # [B, K, 1]
        centre = (a[..., None] * grid).sum(dim=(2, 3)) / mass
        var = (a[..., None] * (grid - centre[:, :, None, None]).square()).sum(dim=(2, 3)) / mass
        extent = (3 * var).sqrt().clamp(1.0 / self.resolution, 1.0)      # a uniform box's half side from its variance
        # The encoder sees the last frame and the differences between context frames (how things were moving).
        x = torch.cat([ctx[:, -1:], ctx[:, 1:] - ctx[:, :-1]], dim=1).flatten(1, 2)
        vectors = self.encoder(x, alphas, centre, extent)
        return {"layers": layers, "alphas": alphas, "base": base, "centre": centre, "extent": extent,
                "vectors": vectors}

    def _w(self, z: torch.Tensor, vectors: torch.Tensor, truncation_psi: float = 1.0, update_w_avg: bool = False):
        b, k = z.shape[0], self.objects
        zk = z[:, :k * self.slice].reshape(b * k, self.slice)
        return self.mapping(zk, vectors.reshape(b * k, -1), truncation_psi, update_w_avg).reshape(b, -1)

    def mapping_forward(self, z, c=None, truncation_psi: float = 1.0, update_w_avg: bool = False):
        return self._w(z, self.layers(self.context_of(c))["vectors"], truncation_psi, update_w_avg)

    @torch.no_grad()
    def update_v_avg(self, motion: torch.Tensor, t: torch.Tensor, w: Optional[torch.Tensor] = None) -> None:
        """Track the mean w_k that the velocity head is centred on (the loop calls it after each G step)."""
        if w is not None:
            track_mean(self.w_mean, w, self.w_mean_beta)

    def drift(self, w: torch.Tensor) -> torch.Tensor:
        """Each object's drift velocity [B, K, 2] in spans per frame (the span: where its centre can go)."""
        wk = w.reshape(w.shape[0] * self.objects, -1) - self.w_mean.to(w.dtype)
        return self.speed * torch.tanh(self.velocity(wk).float()).reshape(w.shape[0], self.objects, 2)

    def prepare(self, z: torch.Tensor, c: torch.Tensor, context_times: torch.Tensor, motion: torch.Tensor,
                truncation_psi: float = 1.0, update_w_avg: bool = False, fused: bool = False) -> Dict:
        ctx = self.context_of(c)
        b = ctx.shape[0]
        assert context_times.shape == (b, self.context_frames), \
            f"context_times must be [B, {self.context_frames}], got {tuple(context_times.shape)}"
        state = self.layers(ctx)
        w = self._w(z, state["vectors"], truncation_psi, update_w_avg)
        span = (2 - 2 * state["extent"]).clamp(min=1e-3)                 # where the centre can go, [-1, 1] units
        t_ref = context_times[:, -1:].float()
        if self.context_frames > 1:
            # Continuation: each layer's velocity as the context shows it (least squares through the reference).
            dt = context_times[:, :-1].float() - t_ref                   # [B, K-1], negative
            radius = math.ceil(self.speed * self.resolution * float(dt.abs().max())) + 1
            seen = match_shifts(state["layers"], state["alphas"], state["base"], ctx[:, :-1], radius)   # [B, K-1, objects, 2]
            vel = (seen * dt[..., None, None]).sum(1) / dt.square().sum(1).clamp(min=1e-6)[:, None, None]
            vel = vel / span
        else:
            vel = self.drift(w)
        u0 = ((state["centre"] + 1 - state["extent"]) / span).clamp(0, 1)
        v_ref = self.motion(motion, t_ref, w=w if self.motion.w_dim > 0 else None)
        state.update({"w": w, "motion": motion, "t_ref": t_ref, "span": span, "u0": u0, "vel": vel,
                      "jitter_ref": self._jitter(v_ref)})
        return state

    def _jitter(self, v: torch.Tensor) -> torch.Tensor:
        return jitter_offsets(self.jitter, v, self.jitter_max, self.objects)

    def shifts(self, state: Dict, t: torch.Tensor) -> torch.Tensor:
        """Each layer's displacement from the reference frame at times t [B, T]: [B, T, K, 2] in [-1, 1] units
        (exactly 0 at the reference time)."""
        v = self.motion(state["motion"], t.float(), w=state["w"] if self.motion.w_dim > 0 else None)
        dt = (t.float() - state["t_ref"])[..., None, None]                # [B, T, 1, 1]
        u = reflect_unit(state["u0"][:, None] + state["vel"][:, None] * dt + self._jitter(v) - state["jitter_ref"])
        return (u - state["u0"][:, None]) * state["span"][:, None]

    def render_prepared(self, state: Dict, t: torch.Tensor, fused: bool = False) -> torch.Tensor:
        return composite(state["base"], state["layers"], state["alphas"], self.shifts(state, t))

    def placed_layers(self, state: Dict, t: torch.Tensor) -> torch.Tensor:
        """The object layers in place at times t [B, T]: [B, T, K, C + 1, H, W] (colour, then alpha; layer 0 at
        the back), what `render_prepared` composites over state['base'] (gan/labels.py reads the alpha)."""
        return move_layers(state["layers"], state["alphas"], self.shifts(state, t))

    def extra_repr(self) -> str:
        return (f"resolution={self.resolution}, mode={self.mode}, objects={self.objects}, "
                f"context_frames={self.context_frames}, speed={self.speed}, jitter={self.jitter_max}")
