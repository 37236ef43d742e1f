"""The one interface of reelgan's generators: G(z, c, t) renders frames [B, T, C, H, W] at continuous times t.

c is None, class ids [B] or vectors [B, c_dim] (a caption's embedding) for
- `Generator` (generator.py): the synthesis G; content drawn once per video by synthesis blocks, warped per frame;
- `LayeredGenerator` (layered.py): K sprites drawn once per video, moved and composited over a background;
- `SceneGenerator` (scene.py): camera footage, a background seen through a static or moving camera (started
  from the data's backgrounds: `backgrounds`, `fit_backgrounds`) with sprites moving over it;
and a still [B, C, H, W] or K context frames [B, K, C, H, W] for their frame-conditioned forms (conditional.py):
- `ConditionalGenerator`: a `Generator` (composed, self.G) driven by the encoders of encoders.py;
- `LayeredConditionalGenerator`: the reference frame split into object layers that move rigidly (the layered G's
  object mapping and object motion, composed with encoders.py's object splitter and object encoder).

`build_generator(cfg, c_dim)` (gan/networks/__init__.py) builds the one a config asks for. Callers ask what a
generator can do through this interface (`context_frames`, `objects`, `latent_generator`), never through its
parts or its class.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn


class VideoGenerator(nn.Module):
    """What every generator offers.

    Attributes, set by every constructor:
      z_dim, motion_dim       sizes of the content code z [B, z_dim] and of one motion code (anchor)
      c_dim                   size of the condition vector the mapping reads (0: unconditional): classes, a caption
                              embedding, or what the encoder reads off the condition frames
      img_channels, resolution  frames are [B, T, img_channels, resolution, resolution] in [-1, 1]
      context_frames          0: c is None, class ids or vectors, and clips render chunk by chunk from
                              (w, content, motion embedding); K >= 1: c is K frames (1: a still to animate, K > 1: a
                              clip to continue), and clips render from `prepare` -> `render_prepared`
      objects                 0, or the number of object layers the frames are composited from (labels read their
                              placement: `placed_layers`, with the arguments of `frames` or of `render_prepared`)

    Every generator: `forward`, `mapping_forward`, `sample_motion` / `num_anchors` / `motion_period`, `update_avg`,
    `w_avg`, `latent_generator`. context_frames == 0 adds the per-chunk path: `content(w)` once per video,
    `motion_embedding(codes, t, anchor_offset, w)` and `frames(w, content, v)` per chunk (any window of an endless
    clip), `frame_modules()` and `frame_grid_sizes()` for the fast path (gan/sampling/fast.py). context_frames > 0
    adds `prepare(z, c, context_times, motion)` -> state once per clip and `render_prepared(state, t)` per chunk.
    """

    z_dim: int
    c_dim: int
    motion_dim: int
    img_channels: int
    resolution: int
    context_frames: int
    objects: int
    backgrounds: int = 0      # > 0: a bank of that many backgrounds that `fit_backgrounds` starts from the data

    # ---- every generator -------------------------------------------------------------------------
    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor], t: torch.Tensor,
                motion: Optional[torch.Tensor] = None, truncation_psi: float = 1.0,
                update_w_avg: bool = False, fused: bool = False) -> torch.Tensor:
        """z [B, z_dim], c (see context_frames), t [B, T] frame times (for frame conditions the first K are the
        context's), motion [B, A, motion_dim] codes for anchors 0.. (None: random) -> frames [B, T, C, H, W]."""
        assert t.ndim == 2 and t.shape[0] == z.shape[0], f"t must be [B, T], got {tuple(t.shape)}"
        if t.shape[1] < self.context_frames:
            raise ValueError(f"t must start with the {self.context_frames} context times, got {t.shape[1]} times")
        if motion is None:
            motion = self.sample_motion(z.shape[0], float(t.max()), device=z.device)
        if self.context_frames > 0:
            state = self.prepare(z, c, t[:, :self.context_frames], motion, truncation_psi, update_w_avg, fused)
            return self.render_prepared(state, t, fused)
        w = self.mapping_forward(z, c, truncation_psi, update_w_avg)
        v = self.motion_embedding(motion, t, w=w)
        return self.frames(w, self.content(w, fused), v, fused)

    def mapping_forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None, truncation_psi: float = 1.0,
                        update_w_avg: bool = False) -> torch.Tensor:
        """z [B, z_dim] and the condition -> the video's latent w [B, *]; truncation pulls w towards `w_avg`."""
        raise NotImplementedError

    @property
    def motion_period(self) -> float:
        """Frames between two motion anchors (the `motion` network's; a generator without one overrides this)."""
        return self.motion.period

    def num_anchors(self, t_max: float) -> int:
        """Motion codes (anchors 0..) needed to render times up to t_max."""
        return int(math.floor(t_max / self.motion_period)) + 2

    def sample_motion(self, batch: int, t_max: float, generator: Optional[torch.Generator] = None,
                      device=None) -> torch.Tensor:
        """Random motion codes [B, A, motion_dim] covering times [0, t_max]."""
        return torch.randn(batch, self.num_anchors(t_max), self.motion_dim, generator=generator, device=device)

    @torch.no_grad()
    def update_avg(self, z: torch.Tensor, c: Optional[torch.Tensor], motion: torch.Tensor, t: torch.Tensor) -> None:
        """Track the running means the generator is centred on, from one training batch (z, c, motion codes, times
        [B, T]): w_avg (the truncation centre) and what rendering subtracts (the flow's mean motion, the object
        kinematics' mean w). The loop calls it after each G step, so rendering stays a pure function of the
        weights and buffers."""
        raise NotImplementedError

    @property
    def w_avg(self) -> torch.Tensor:
        """The tracked mean latent [w_size] that truncation pulls towards (zeros before training): the `mapping`
        network's (a generator without one overrides this)."""
        return self.mapping.w_avg

    def fit_backgrounds(self, images: torch.Tensor) -> None:
        """Start the background bank from images [N, C, H, W] in [-1, 1] read off the data (backgrounds > 0)."""
        raise NotImplementedError

    @property
    def latent_generator(self) -> Optional["VideoGenerator"]:
        """The per-chunk (context_frames == 0) generator that renders this one's frames from a latent w: itself,
        or a frame-conditioned G's inner synthesis G (whose `encode_reference(frame)` gives the condition vector and
        the content residual that drive it). None when frames come from the condition's own pixels (nothing to
        project: gan/projector.py)."""
        return self

    # ---- context_frames == 0: per video, then per chunk ----------------------------------------
    def content(self, w: torch.Tensor, fused: bool = False):
        """What is drawn once per video: a tuple of tensors that `frames` reads."""
        raise NotImplementedError

    def motion_embedding(self, codes: torch.Tensor, t: torch.Tensor, anchor_offset: int = 0,
                         w: Optional[torch.Tensor] = None) -> torch.Tensor:
        """codes [B, K, motion_dim] for anchors anchor_offset.., t [B, T], w [B, *] -> per-frame state v [B, T, *]."""
        raise NotImplementedError

    def frames(self, w: torch.Tensor, content, v: torch.Tensor, fused: bool = False) -> torch.Tensor:
        """Frames [B, T, C, H, W] from w, content(w) and the per-frame state v [B, T, *]."""
        raise NotImplementedError

    def frame_modules(self) -> List[nn.Module]:
        """The submodules `frames` runs (the fast path keeps a copy of these only, in its precision)."""
        raise NotImplementedError

    def frame_grid_sizes(self) -> Tuple[int, ...]:
        """Sizes of the sampling grids `frames` uses (filled before compiling: a cache miss recompiles)."""
        raise NotImplementedError

    def preview_resolutions(self) -> Tuple[int, ...]:
        """Smaller sizes `frames` can stop at (see `keep_up_to`); none unless a family can."""
        return ()

    def keep_up_to(self, resolution: int) -> None:
        """Drop what draws above `resolution` (on a copy kept for previews); only for preview_resolutions()."""
        raise NotImplementedError

    # ---- context_frames > 0: per clip, then per chunk ------------------------------------------
    def prepare(self, z: torch.Tensor, c: torch.Tensor, context_times: torch.Tensor, motion: torch.Tensor,
                truncation_psi: float = 1.0, update_w_avg: bool = False, fused: bool = False) -> Dict:
        """Everything that does not depend on the rendered times, from the condition frames c and their times
        context_times [B, K] (the last is the reference frame) and motion codes [B, A, motion_dim] from anchor 0."""
        raise NotImplementedError

    def render_prepared(self, state: Dict, t: torch.Tensor, fused: bool = False) -> torch.Tensor:
        """Frames [B, T, C, H, W] at times t [B, T] (any chunk of the clip) from `prepare`'s state."""
        raise NotImplementedError
