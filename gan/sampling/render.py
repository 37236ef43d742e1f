"""The one chunked renderer: clips of any length and frame rate, chunk by chunk (constant memory).

One RNG per seed: the content code comes from `torch.Generator().manual_seed(seed)` and each motion
anchor from its own (seed, k) stream, so a seed gives the same clip whatever the batch size, the clip
length or the chunk size. `ClipRenderer` holds the per-clip work (mapping, content) once and renders
frames per chunk; its options (precision, compile, CUDA graphs: gan/sampling/fast.py) only change how
a chunk's frames are computed, never which frames.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterable, Iterator, NamedTuple, Optional, Sequence

import torch

from gan import threads
from gan.conditioning.inputs import ConditionError
from gan.networks import VideoGenerator, motion_codes_for_seed
from gan.ops import compile_fn
from gan.sampling.aot import CompiledFrames, compile_cache_dir
from gan.sampling.fast import DTYPES, ChunkGraphs, FrameRenderer, fill_grid_cache, resolve_precision
from gan.sampling.int8 import CALIBRATION_VIDEOS, Int8Frames
from gan.sampling.load import SamplingError


def seed_z(G: VideoGenerator, seeds: Sequence[int], device) -> torch.Tensor:
    z = [torch.randn(G.z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.stack(z).to(device)


def seed_motion(G: VideoGenerator, seeds: Sequence[int], k0: int, k1: int, device) -> torch.Tensor:
    return torch.stack([motion_codes_for_seed(int(s), k0, k1, G.motion_dim) for s in seeds]).to(device)


def frame_times(num_frames: Optional[int], chunk: int, time_step: float = 1.0, start: float = 0.0,
                pad: bool = False) -> Iterator[tuple]:
    """(times [m] float64, n) per chunk: frame k is at start + k * time_step; n frames of the m are kept
    (pad=True renders a short last chunk at full length, for fixed-shape graphs). None: endless."""
    if chunk < 1:
        raise SamplingError("chunk must be >= 1")
    if time_step <= 0 or start < 0:
        raise SamplingError("time_step must be > 0 and start >= 0")
    if num_frames is not None and num_frames < 1:
        raise SamplingError("num_frames must be >= 1 (or None for an endless clip)")

    def chunks():                                # checked above, when called; rendered lazily
        k = 0
        while num_frames is None or k < num_frames:
            n = chunk if num_frames is None else min(chunk, num_frames - k)
            m = chunk if pad else n
            yield start + torch.arange(k, k + m, dtype=torch.float64) * time_step, n
            k += n
    return chunks()


class Prepared(NamedTuple):
    """A group of clips prepared once (gan/sampling/conditions.py): the times of their frames, chunk by chunk, and
    how to render them. The renderer turns it into chunks (ClipRenderer.clip_chunks)."""
    times: Iterable[tuple]                      # (times [m] float64, n kept) per chunk, as frame_times yields
    frames_at: Callable                         # times [m] -> frames [B, m, C, H, W]
    alphas_at: Callable                         # times [m] -> the layered G's objects in place: alpha [B, m, K, H, W]
    lead: Optional[torch.Tensor] = None         # frames given, not rendered, before the rendered ones [B, K, C, H, W]


class Chunk(NamedTuple):
    t: Optional[torch.Tensor]                   # the frames' times [n] (None: the given lead frames)
    frames: torch.Tensor                        # [B, n, C, H, W] in [-1, 1]


class ClipRenderer:
    """Chunked clip rendering from a generator. precision None renders with G itself (`fused` selects the
    modulated-conv kernel); 'fp32' / 'bf16' / 'fp16' / 'auto' render through a FrameRenderer copy of the
    synthesis in that precision, optionally compiled (see gan/sampling/fast.py); 'int8' quantizes its dense convs
    and always compiles (gan/sampling/int8.py)."""

    def __init__(self,
                 G: VideoGenerator,              # trained generator (G_ema), float32
                 device="cpu",
                 chunk: int = 16,                # frames per video per rendering step
                 fused: bool = True,             # precision None: fused modulated convs (False: grouped reference)
                 precision: Optional[str] = None,  # None: G as it is; 'fp32', 'bf16', 'fp16' (CUDA) or 'auto'
                 compile: bool = False,          # torch.compile the chunk rendering (slow first chunk)
                 channels_last: bool = True,     # FrameRenderer: NHWC convs
                 cuda_graphs: bool = True,       # CUDA only: replay fixed-shape chunks as CUDA graphs
                 static_shapes: Optional[bool] = None,  # pad the last chunk (None: when compiled/graphed)
                 resolution: Optional[int] = None):  # a precision given: preview at a smaller block size
        if chunk < 1:
            raise SamplingError("chunk must be >= 1")
        if resolution not in (None, G.resolution) and precision is None and not compile:
            raise SamplingError("a preview resolution renders through the fast path: give a precision")
        self.device, self.chunk = torch.device(device), int(chunk)
        self.precision = None if precision is None and not compile else resolve_precision(precision or "fp32",
                                                                                          self.device)
        if self.precision is not None and G.context_frames > 0:
            raise SamplingError("precision / compile speed up the per-chunk path of unconditional, class and text "
                                "models; an image/continue model renders with its generator: leave them unset")
        self.compile = bool(compile)
        self.cuda_graphs = bool(cuda_graphs) and self.device.type == "cuda" and not compile \
            and self.precision is not None
        self.grad_off: Callable = torch.no_grad                      # rendered clips may feed autograd later
        self.renderer: Optional[FrameRenderer] = None
        self._states: "OrderedDict[int, tuple]" = OrderedDict()         # id(w) -> (w, renderer.video_state(w))
        self._condition: Optional[torch.Tensor] = None                   # the latest condition prepared (int8)
        if self.precision is None:
            self.G, self.fused = G, bool(fused)
            self._frames: Callable = lambda w, x, img, v: G.frames(w, (x, img), v, fused=self.fused)
        else:                                                        # the accelerated per-chunk call
            self.G, self.fused, self.grad_off = G.to(self.device).eval().requires_grad_(False), False, \
                torch.inference_mode
            int8 = self.precision == "int8"
            self.renderer = FrameRenderer(self.G, torch.float32 if int8 else DTYPES[self.precision],
                                          channels_last and not int8, resolution).to(self.device)
            self._fn: Callable = self.renderer
            if int8:                                                 # quantized per chunk shape, always compiled
                fill_grid_cache(self.G, self.device)
                self.compile, self._fn = True, Int8Frames(self.renderer, self._calibration)
            elif self.compile:
                fill_grid_cache(self.G, self.device)
                self._fn = (compile_fn(self.renderer, mode="reduce-overhead") if self.device.type == "cuda"
                            else CompiledFrames(self.renderer, compile_cache_dir()))
            self._graphs = ChunkGraphs(self.renderer) if self.cuda_graphs else None
            self._frames = self._render
        self._fixed = (self.compile or self.cuda_graphs) if static_shapes is None else bool(static_shapes)

    def describe(self) -> str:
        parts = [self.precision or "fp32", "compiled" if self.compile else "eager"]
        if self.renderer is not None and self.renderer.resolution != self.G.resolution:
            parts.append(f"preview {self.renderer.resolution}px")
        if self.cuda_graphs:
            parts.append("cuda-graphs")
        return "+".join(parts)

    def _calibration(self, shapes: tuple) -> list:
        """int8 calibration inputs of the frame renderer at `shapes` (its four inputs'): CALIBRATION_VIDEOS videos
        (seeds no user picks; a conditional model's under the latest condition prepared), each at the start and at
        a later window of its motion."""
        batch, frames = shapes[0][0], shapes[3][1]
        t = torch.arange(frames, dtype=torch.float64)
        c = None if self._condition is None else self._condition.expand(batch, *self._condition.shape[1:])
        feeds = []
        with torch.inference_mode():
            for first in range(10 ** 6, 10 ** 6 + max(CALIBRATION_VIDEOS, batch), batch):
                seeds = list(range(first, first + batch))
                w, x, img = self.prepare(seeds, c)
                for start in (0.0, 5.5 * float(self.G.motion_period)):
                    feeds.append((self.renderer.video_state(w), x, img, self.motion(seeds, t + start, w)))
        return feeds

    def _video_state(self, w: torch.Tensor) -> torch.Tensor:
        # FrameRenderer.video_state once per video: a clip's chunks (and the studio's frames) pass the same w tensor,
        # made by prepare() and never changed in place, so its identity names the video (the entry holds w: the id
        # stays unique while cached).
        hit = self._states.get(id(w))
        if hit is None:
            hit = self._states[id(w)] = (w, self.renderer.video_state(w))
            while len(self._states) > 32:
                self._states.popitem(last=False)
        return hit[1]

    def _render(self, w, x, img, v) -> torch.Tensor:
        threads.follow()                             # a core another program took (or gave back) since the last chunk
        w = self._video_state(w)
        if self._graphs is not None:
            return self._graphs(w, x, img, v)
        if self.compile and self.device.type == "cuda":
            # reduce-overhead replays CUDA graphs whose outputs the next replay overwrites: copy out.
            torch.compiler.cudagraph_mark_step_begin()
            return self._fn(w, x, img, v).clone()
        return self._fn(w, x, img, v)

    # ---- per clip, then per chunk -----------------------------------------------------------------
    def prepare(self, seeds: Sequence[int], c: Optional[torch.Tensor] = None, truncation: float = 1.0):
        """Per-video work, once per clip: w [B, w_dim] and the content features (x, img)."""
        return self.prepare_latents(seed_z(self.G, seeds, self.device), c, truncation)

    def prepare_latents(self, z: torch.Tensor, c: Optional[torch.Tensor] = None, truncation: float = 1.0):
        """prepare() from content codes z [B, z_dim] given directly (e.g. a point between two seeds' codes)."""
        if self.G.c_dim > 0 and c is None:
            raise SamplingError("this generator is class-conditional: pass a class (e.g. --class 3)")
        if c is not None:
            self._condition = c[:1].to(self.device)
        with self.grad_off():
            w = self.G.mapping_forward(z.to(self.device), None if c is None else c.to(self.device),
                                       truncation_psi=truncation)
            x, img = self.G.content(w, fused=self.fused)
        return w, x, img

    def anchor_window(self, t: torch.Tensor) -> tuple:
        """(k0, k1): the motion anchors k0..k1-1 that frame times t (any order, >= 0) need."""
        pos = t.float() / self.G.motion_period               # as the motion network rounds it (float32)
        return int(pos.min().floor()), int(pos.max().floor()) + 2

    def motion(self, seeds: Sequence[int], t: torch.Tensor, w: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Motion embeddings [B, T, m] at frame times t [T] (float64), from each seed's anchor stream."""
        k0, k1 = self.anchor_window(t)
        return self.motion_from_codes(seed_motion(self.G, seeds, k0, k1, self.device), k0, t, w)

    def motion_from_codes(self, codes: torch.Tensor, k0: int, t: torch.Tensor,
                          w: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Motion embeddings [B, T, m] at times t ([T] for every video, or [B, T]) from anchor codes
        [B, k1 - k0, m] given directly, the first one being anchor k0 (see anchor_window)."""
        tt = t.float().to(self.device)
        tt = tt[None].expand(codes.shape[0], -1) if tt.dim() == 1 else tt
        with self.grad_off():
            return self.G.motion_embedding(codes.to(self.device), tt, anchor_offset=k0, w=w)

    def frames(self, prepared: tuple, v: torch.Tensor) -> torch.Tensor:
        """Frames [B, T, C, H, W] in [-1, 1] from prepare()'s (w, x, img) and motion embeddings v [B, T, m]:
        the per-chunk call of render_chunks, for callers that choose their own times (the studio's player)."""
        w, x, img = prepared
        with self.grad_off():
            return self._frames(w, x, img, v).clamp(-1, 1)

    def render_chunks(self, seeds: Sequence[int], num_frames: Optional[int], *, time_step: float = 1.0,
                      start: float = 0.0, c: Optional[torch.Tensor] = None,
                      truncation: float = 1.0) -> Iterator[torch.Tensor]:
        """Yield [B, t, C, H, W] float chunks in [-1, 1] (t <= chunk) of the clips of `seeds`; frame k is
        at time start + k * time_step (in training-data frames). num_frames None renders forever."""
        clips = self.latent_clips(seeds, num_frames, time_step=time_step, start=start, c=c, truncation=truncation)
        return (chunk.frames for chunk in self.clip_chunks(clips))

    def latent_clips(self, seeds: Sequence[int], num_frames: Optional[int], *, time_step: float = 1.0,
                     start: float = 0.0, c: Optional[torch.Tensor] = None, truncation: float = 1.0) -> Prepared:
        """Unconditional, class and text models: the clips of `seeds` (condition c per seed), prepared once."""
        times = frame_times(num_frames, self.chunk, time_step, start, pad=self._fixed)
        w, x, img = self.prepare(seeds, c, truncation)
        return Prepared(times, lambda t: self._frames(w, x, img, self.motion(seeds, t, w)),
                        lambda t: self.G.placed_layers(w, (x, img), self.motion(seeds, t, w))[0][:, :, :, -1])

    def prepare_conditioned(self, seeds: Sequence[int], cond: torch.Tensor, context_times: torch.Tensor,
                            t_max: float, truncation: float = 1.0):
        """Image / continue models: G.prepare for one condition `cond` [K, C, H, W] given at `context_times` [K],
        one clip per seed (seed -> z and the random motion codes up to time t_max)."""
        G, s = self.G, len(seeds)
        with self.grad_off():
            z = seed_z(G, seeds, self.device)
            motion = seed_motion(G, seeds, 0, G.num_anchors(float(t_max)), self.device)
            c = cond.to(self.device).unsqueeze(0).expand(s, *cond.shape)
            ct = context_times.float().to(self.device)[None].expand(s, -1)
            return G.prepare(z, c, ct, motion, truncation_psi=truncation)

    def conditioned_clips(self, seeds: Sequence[int], cond: torch.Tensor, context_times: torch.Tensor,
                          times: torch.Tensor, truncation: float = 1.0, lead: bool = False) -> Prepared:
        """Image / continue models: the clips at `times` [T] (float64) from one condition `cond` [K, C, H, W] given
        at `context_times` [K], one per seed, prepared once; lead=True writes `cond` before the rendered frames."""
        state = self.prepare_conditioned(seeds, cond, context_times, float(times.max()), truncation)
        at = lambda t: t.float().to(self.device)[None].expand(len(seeds), -1)          # noqa: E731  [T] -> [S, T]
        chunks = [(times[i:i + self.chunk], len(times[i:i + self.chunk])) for i in range(0, len(times), self.chunk)]
        return Prepared(chunks, lambda t: self.G.render_prepared(state, at(t)),
                        lambda t: self.G.placed_layers(state, at(t))[:, :, :, -1],
                        cond[None].expand(len(seeds), *cond.shape) if lead else None)

    def clip_chunks(self, clips: Prepared) -> Iterator[Chunk]:
        """The clips of a Prepared group, chunk by chunk (constant memory): its lead frames, then the rendered ones."""
        if clips.lead is not None:
            yield Chunk(None, clips.lead.to(self.device).clamp(-1, 1))
        for t, n in clips.times:
            with self.grad_off():
                out = clips.frames_at(t).clamp(-1, 1)
            yield Chunk(t[:n], out[:, :n])

    def render(self, seeds: Sequence[int], num_frames: int, **kwargs) -> torch.Tensor:
        """Whole clips [B, T, C, H, W] (short clips; use render_chunks for long ones)."""
        return self.whole(self.latent_clips(seeds, num_frames, **kwargs))

    def whole(self, clips: Prepared) -> torch.Tensor:
        """A Prepared group's clips at once [B, T, C, H, W] (short clips; clip_chunks for long ones)."""
        return torch.cat([chunk.frames for chunk in self.clip_chunks(clips)], dim=1)


class FastSampler(ClipRenderer):
    """The ClipRenderer with its inference path on (precision 'fp32' unless given): a name for benchmarks."""

    def __init__(self, G: VideoGenerator, device="cpu", precision: str = "fp32", **kwargs):
        super().__init__(G, device, precision=precision, **kwargs)


def render(G: VideoGenerator, seeds: Sequence[int], num_frames: int, *, chunk: int = 16, device="cpu",
           fused: bool = True, **kwargs) -> torch.Tensor:
    """Whole clips [B, T, C, H, W] of G itself (short clips; ClipRenderer.render_chunks for long ones)."""
    return ClipRenderer(G, device, chunk, fused).render(seeds, num_frames, **kwargs)


def prompt_condition(text_encoder, prompt: str, seeds: Sequence[int], device="cpu") -> torch.Tensor:
    """A sentence -> the condition c [S, text_dim] of text-to-video models, one row per seed."""
    if not prompt.strip():
        raise ConditionError("--prompt is empty: describe the clip, e.g. 'a red circle moving left'")
    with torch.no_grad():
        emb = text_encoder.encode([prompt])
    return emb.to(device=device, dtype=torch.float32).expand(len(seeds), -1)
