"""The frame-conditioned generators (image-to-video, continuation): c is a still [B, C, H, W] ('image': animate
it) or K context frames [B, K, C, H, W] ('continue', at the first K times of t: continue them). Both render a clip
from `prepare(z, c, context_times, motion)` (once) and `render_prepared(state, t)` (any chunk of times).

`ConditionalGenerator` composes a synthesis `Generator` (self.G) with the encoders of encoders.py:
- `ContentEncoder` maps the reference frame (the still, or the last context frame) to (a) a vector that joins z in
  G's mapping network (G's condition input, so w carries global appearance) and (b) residual features and RGB at
  `content_resolution`, added to G's once-per-video content: the spatial layout (where each object is) lives
  there, and G's motion warps it per frame like any generated content. The RGB residual includes the frame itself
  (downsampled to content_resolution), so the reference frame is right from the start and training refines it.
- Motion is made relative to the reference frame: the motion embedding at its time is subtracted, so that frame
  is a function of the encoded frame alone whatever the motion codes, and other frames move away from it. Random
  motion codes give different animations of the same still; a continuation starts from the most recent frame (so
  it is at least as close as copying it).
- 'continue': `MotionEncoder` reads the K context frames (and their frame gap) and predicts the first
  `motion_anchors` motion codes, so the observed motion carries on; anchors past those are random (seeded at
  sampling), so long continuations stay varied instead of freezing.

`LayeredConditionalGenerator`: a warp moves things, but an object bends and stretches as it goes, because nothing in
a warp says which pixels belong together. For scenes of separate objects on a flat background (the built-ins;
sprites, balls, digits on a backdrop) this generator splits the reference frame itself into K object layers over
the background and moves each layer as one piece, so objects keep their exact pixels wherever they go:
- `ObjectSplitter` (encoders.py, no parameters): objects are the 8-connected regions of pixels that differ from the
  border's median colour, the K largest kept; each pixel's alpha is the coverage that mixes the object's colour
  with the background there (its anti-aliased edge included).
- Exact layers (`peel_layers`, layered.py): each object is peeled off the frame, the background showing where it
  was, and its premultiplied colour is what the frame had there minus the background's share. Compositing the
  layers back over the peeled frame in order gives the frame exactly, so the reference frame is the input by
  construction (no reconstruction to learn) and a moved object carries its own pixels, anti-aliasing included.
- Learned, with the layered G's parts (layered.py): `ObjectEncoder` sums up each object (conv features averaged
  over its alpha, its centre and extent) and object k's w_k = mapping(z_k, its vector) (`ObjectMapping`); its drift
  velocity comes from w_k through `ObjectMotion`'s kinematics head, so the discriminators teach how fast and which
  way things go, and different seeds give different motions of the same still. Its start is its centre, its
  bounce span comes from its extent (an object bounces when its edge meets the border, as the built-ins do), and
  the motion embedding adds a small jitter. Positions are relative to the reference time: every shift is 0 there.
- Continuation measures each layer's velocity in the context instead (`match_shifts`: the layer against the
  earlier context frames: the best integer shift, refined to 1/8 px), so a clip goes on the way it was going.
  Not for footage with textured backgrounds or objects that touch or overlap in the reference frame (they move as
  one); use the synthesis generator (G.objects: 0) there.
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import torch
import torch.nn.functional as F

from gan.config import CondConfig, GeneratorConfig
from gan.networks.encoders import ContentEncoder, MotionEncoder, ObjectEncoder, ObjectSplitter
from gan.networks.generator import Generator, MotionNetwork, _base_grid, channels_at, reflect_unit
from gan.networks.interface import VideoGenerator
from gan.networks.layered import ObjectMapping, ObjectMotion, composite, move_layers, peel_layers, translate

MATCH_RESOLUTION = 16     # layers are matched against frames at most this size (cost ~ (2R+1)^2 pixels)


def context_frames_of(mode: str, cond: CondConfig) -> int:
    if mode not in ("image", "continue"):
        raise ValueError(f"the frame-conditioned generators are for cond.mode 'image' or 'continue', got {mode!r}")
    return 1 if mode == "image" else cond.context_frames


def check_context(G: VideoGenerator, mode: str, c: Optional[torch.Tensor]) -> torch.Tensor:
    """The condition c of G as context frames [B, K, C, H, W] (a still is K = 1), checked."""
    if c is None:
        raise ValueError(f"this generator is conditional ({mode!r}): pass c = "
                         + ("a still [B, C, H, W]" if mode == "image" else
                            f"{G.context_frames} context frames [B, K, C, H, W]"))
    if c.ndim == 4:
        c = c.unsqueeze(1)
    expected = (G.context_frames, G.img_channels, G.resolution, G.resolution)
    if c.ndim != 5 or tuple(c.shape[1:]) != expected:
        raise ValueError(f"condition must be [B, {', '.join(map(str, expected))}] frames in [-1, 1], "
                         f"got {tuple(c.shape)}")
    return c


def context_with_times(G: VideoGenerator, c: Optional[torch.Tensor], context_times: torch.Tensor) -> torch.Tensor:
    """prepare()'s condition as context frames [B, K, C, H, W], checked against its times [B, K]."""
    ctx = G.context_of(c)
    assert context_times.shape == (ctx.shape[0], G.context_frames), \
        f"context_times must be [B, {G.context_frames}], got {tuple(context_times.shape)}"
    return ctx


class ConditionalGenerator(VideoGenerator):
    """G(z, c, t, motion) with c = a still [B, C, H, W] or context frames [B, K, C, H, W] -> [B, T, C, H, W]: the
    synthesis G (self.G) driven by the encoders (see the module doc). For 'continue', the context frames sit at
    t[:, :K]; t[:, K:] are the times to predict."""

    def __init__(self, cfg: GeneratorConfig, resolution: int, img_channels: int, cond: CondConfig):
        super().__init__()
        self.context_frames = context_frames_of(cond.mode, cond)
        # v is relative to the reference frame (zero flow there), so the flow is not centred on a running mean.
        self.G = Generator(cfg, resolution, img_channels, c_dim=cond.encoder_dim, center_flow=False)
        self.cfg, self.mode, self.resolution, self.img_channels = cfg, cond.mode, resolution, img_channels
        self.z_dim, self.c_dim, self.motion_dim, self.objects = cfg.z_dim, cond.encoder_dim, cfg.motion_dim, 0
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
        return check_context(self, self.mode, c)

    def encode_reference(self, frame: torch.Tensor):
        """The reference frame [B, C, H, W] -> (the vector G's mapping reads [B, encoder_dim], the residual
        (features or None, RGB) added to G's content)."""
        vec, feat, rgb = self.encoder(frame)
        return vec, (feat, rgb)

    @property
    def latent_generator(self) -> Generator:
        return self.G

    @property
    def motion_period(self) -> float:
        return self.G.motion_period

    @property
    def w_avg(self) -> torch.Tensor:
        return self.G.w_avg

    def mapping_forward(self, z, c=None, truncation_psi: float = 1.0, update_w_avg: bool = False):
        # c: raw frames (encoded here) or an already encoded vector [B, encoder_dim]
        if c is not None and c.ndim >= 4:
            c = self.encode_reference(self.context_of(c)[:, -1])[0]
        return self.G.mapping_forward(z, c, truncation_psi, update_w_avg)

    @torch.no_grad()
    def update_avg(self, z: torch.Tensor, c: Optional[torch.Tensor], motion: torch.Tensor, t: torch.Tensor) -> None:
        """G's w_avg, for the encoded reference frames (relative motion needs no other mean)."""
        self.G.update_avg(z, self.encode_reference(self.context_of(c)[:, -1])[0], motion, t)

    # ---- rendering -------------------------------------------------------------------------------
    def prepare(self, z: torch.Tensor, c: torch.Tensor, context_times: torch.Tensor, motion: torch.Tensor,
                truncation_psi: float = 1.0, update_w_avg: bool = False, fused: bool = False) -> Dict:
        """w, content, motion codes and the reference frame's motion embedding (see VideoGenerator.prepare)."""
        ctx = context_with_times(self, c, context_times)
        vec, (feat, rgb) = self.encode_reference(ctx[:, -1])
        w = self.G.mapping_forward(z, vec, truncation_psi, update_w_avg)
        x, img = self.G.content(w, fused)
        content = (x if feat is None else x + feat.to(x.dtype), img + rgb.to(img.dtype))
        if self.motion_encoder is not None:
            predicted = self.motion_encoder(ctx, context_times).to(motion.dtype)
            n = min(predicted.shape[1], motion.shape[1])
            motion = torch.cat([predicted[:, :n], motion[:, n:]], dim=1)
        v_ref = self.G.motion_embedding(motion, context_times[:, -1:].float(), w=w)    # [B, 1, m]
        return {"w": w, "content": content, "motion": motion, "v_ref": v_ref}

    def render_prepared(self, state: Dict, t: torch.Tensor, fused: bool = False) -> torch.Tensor:
        v = self.G.motion_embedding(state["motion"], t, w=state["w"]) - state["v_ref"]  # zero at the reference frame
        return self.G.frames(state["w"], state["content"], v, fused)

    def extra_repr(self) -> str:
        return f"mode={self.mode}, context_frames={self.context_frames}"


class LayeredConditionalGenerator(VideoGenerator):
    """G(z, c, t, motion) with c = a still [B, C, H, W] or context frames [B, K, C, H, W] -> [B, T, C, H, W]:
    the reference frame's objects as layers moving rigidly over its background (see the module doc)."""

    def __init__(self, cfg: GeneratorConfig, resolution: int, img_channels: int, cond: CondConfig, objects: int):
        super().__init__()
        if objects < 1:
            raise ValueError(f"the layered conditional generator needs objects >= 1, got {objects}")
        self.context_frames = context_frames_of(cond.mode, cond)
        self.cfg, self.resolution, self.img_channels, self.mode = cfg, resolution, img_channels, cond.mode
        self.z_dim, self.motion_dim, self.objects = cfg.z_dim, cfg.motion_dim, objects
        self.c_dim = cond.encoder_channels
        self.splitter = ObjectSplitter(objects)
        self.encoder = ObjectEncoder(img_channels * self.context_frames, cond.encoder_channels, impl=cfg.impl)
        self.mapping = ObjectMapping(cfg.z_dim, cond.encoder_channels, cfg.w_dim, cfg.mapping_layers, objects,
                                     impl=cfg.impl)
        net = MotionNetwork(cfg.motion_dim, cfg.motion_period, cfg.time_features,
                            w_dim=objects * cfg.w_dim, impl=cfg.impl)
        # Starts come from the frame: the kinematics head gives each object's drift from its w_k only.
        self.motion = ObjectMotion(net, cfg.w_dim, objects, cfg.object_speed, cfg.object_jitter, impl=cfg.impl,
                                   starts=False)
        self.speed = float(cfg.object_speed)
        self.w_mean_beta = 0.99

    def context_of(self, c: Optional[torch.Tensor]) -> torch.Tensor:
        return check_context(self, self.mode, c)

    @property
    def latent_generator(self) -> None:
        return None                            # the layers are the reference frame's own pixels

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

    def mapping_forward(self, z, c=None, truncation_psi: float = 1.0, update_w_avg: bool = False):
        return self.mapping(z, self.layers(self.context_of(c))["vectors"], truncation_psi, update_w_avg)

    @torch.no_grad()
    def update_avg(self, z: torch.Tensor, c: Optional[torch.Tensor], motion: torch.Tensor, t: torch.Tensor) -> None:
        """w_avg, and the mean w_k that the velocity head is centred on."""
        self.motion.track(self.mapping_forward(z, c, update_w_avg=True), self.w_mean_beta)

    def prepare(self, z: torch.Tensor, c: torch.Tensor, context_times: torch.Tensor, motion: torch.Tensor,
                truncation_psi: float = 1.0, update_w_avg: bool = False, fused: bool = False) -> Dict:
        ctx = context_with_times(self, c, context_times)
        state = self.layers(ctx)
        w = self.mapping(z, state["vectors"], truncation_psi, update_w_avg)
        span = (2 - 2 * state["extent"]).clamp(min=1e-3)                 # where the centre can go, [-1, 1] units
        t_ref = context_times[:, -1:].float()
        if self.context_frames > 1:
            # Continuation: each layer's velocity as the context shows it (least squares through the reference).
            dt = context_times[:, :-1].float() - t_ref                   # [B, K-1], negative
            radius = math.ceil(self.speed * self.resolution * float(dt.abs().max())) + 1
            seen = match_shifts(state["layers"], state["alphas"], state["base"], ctx[:, :-1],
                                radius)                                  # [B, K-1, objects, 2]
            vel = (seen * dt[..., None, None]).sum(1) / dt.square().sum(1).clamp(min=1e-6)[:, None, None]
            vel = vel / span
        else:
            vel = self.motion.drift(w)                                   # spans per frame
        u0 = ((state["centre"] + 1 - state["extent"]) / span).clamp(0, 1)
        v_ref = self.motion.embedding(motion, t_ref, w=w)
        state.update({"w": w, "motion": motion, "t_ref": t_ref, "span": span, "u0": u0, "vel": vel,
                      "jitter_ref": self.motion.jitter_offsets(v_ref)})
        return state

    def shifts(self, state: Dict, t: torch.Tensor) -> torch.Tensor:
        """Each layer's displacement from the reference frame at times t [B, T]: [B, T, K, 2] in [-1, 1] units
        (exactly 0 at the reference time)."""
        v = self.motion.embedding(state["motion"], t.float(), w=state["w"])
        dt = (t.float() - state["t_ref"])[..., None, None]                # [B, T, 1, 1]
        u = reflect_unit(state["u0"][:, None] + state["vel"][:, None] * dt + self.motion.jitter_offsets(v)
                         - state["jitter_ref"])
        return (u - state["u0"][:, None]) * state["span"][:, None]

    def render_prepared(self, state: Dict, t: torch.Tensor, fused: bool = False) -> torch.Tensor:
        return composite(state["base"], state["layers"], state["alphas"], self.shifts(state, t))

    def placed_layers(self, state: Dict, t: torch.Tensor) -> torch.Tensor:
        """The object layers in place at times t [B, T]: [B, T, K, C + 1, H, W] (colour, then alpha; layer 0 at
        the back), what `render_prepared` composites over state['base'] (gan/labels.py reads the alpha)."""
        return move_layers(state["layers"], state["alphas"], self.shifts(state, t))

    def extra_repr(self) -> str:
        return (f"resolution={self.resolution}, mode={self.mode}, objects={self.objects}, "
                f"context_frames={self.context_frames}")


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
