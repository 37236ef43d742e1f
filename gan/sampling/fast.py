"""The fast path of the one renderer (gan/sampling/render.py `ClipRenderer`): how a chunk's frames are
computed, never which frames. Opt-in speed-ups for inference:

- `torch.inference_mode` throughout; the modulated convs run unfused (one ordinary conv on a shared
  weight), which is what lets the compiler fold and pre-pack the weights.
- `precision='bf16'` (CPU with AMX / AVX512-BF16, or CUDA) or `'fp16'` (CUDA): the synthesis blocks
  get their own low-precision copy of the weights once, instead of autocast casting every weight for
  every chunk. Mapping, content and motion stay float32: motion phases at large t (endless clips)
  need float32.
- `compile=True`: torch.compile of the per-chunk frame rendering, with inductor freezing (gan.ops.frozen: weights
  become constants: demodulation norms and casts are folded, conv weights pre-packed). Chunks are
  padded to a fixed length so one graph serves the whole clip. The motion MLP stays eager: it is
  <1% of the FLOPs and its anchor window moves every chunk.
- The synthesis G's per-frame style affines take cat(w, v): their w half and bias are a per-video product,
  computed once per video (`video_state`), so each frame multiplies only v by its part of the weights (a third in
  the StyleGAN-V presets: at one frame per call the affines are weight-bandwidth bound).
- `precision='int8'` (CPU): the dense convs in int8 through PT2E quantization, compiled (gan/sampling/int8.py).
- CUDA only: CUDA graphs replay the fixed-shape chunk rendering (eager), or compile uses
  mode='reduce-overhead' (which captures its own graphs). Nothing CUDA is touched on CPU.
"""
from __future__ import annotations

import copy
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn

from gan.networks import VideoGenerator
from gan.networks.generator import Generator, _base_grid
from gan.precision import auto_precision, cpu_has_bf16  # noqa: F401 (re-exported)
from gan.sampling.load import SamplingError

PRECISIONS = ("fp32", "bf16", "fp16", "int8", "auto")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> bf16 on CPUs with native bf16 and on CUDA with bf16, fp16 on older CUDA, else fp32."""
    if precision not in PRECISIONS:
        raise SamplingError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return auto_precision(device, fp16=True)
    if precision == "fp16" and device.type != "cuda":
        raise SamplingError("precision 'fp16' needs a CUDA device; use 'bf16' on the CPU")
    if precision == "int8":
        if device.type != "cpu":
            raise SamplingError("precision 'int8' runs on the CPU; use 'bf16' or 'fp16' on a GPU")
        from gan.sampling.int8 import require_torchao
        require_torchao()
    return precision


class FrameRenderer(nn.Module):
    """The per-chunk work: (w, content, motion embeddings) -> frames, as one module that torch.compile,
    CUDA graphs and PT2E quantization can take whole. Holds its own copy of the synthesis weights in
    the rendering precision (and memory format)."""

    def __init__(self,
                 G: VideoGenerator,            # source generator (context_frames 0; not modified)
                 dtype: torch.dtype = torch.float32,  # precision of the per-frame synthesis
                 channels_last: bool = True,   # conv weights and activations in NHWC
                 resolution: Optional[int] = None):  # preview: stop at this block's size (None: G's own)
        super().__init__()
        # The copy holds what `frames` runs; the per-video parts (mapping, motion, content) run on the float32 G,
        # so the deep copy maps them to None (deepcopy's memo: an entry is returned instead of copying).
        keep = {id(m) for m in G.frame_modules()}
        res = check_preview(G, resolution)
        G = copy.deepcopy(G, {id(m): None for m in G.children() if id(m) not in keep}).eval().requires_grad_(False)
        if res != G.resolution:
            G.keep_up_to(res)
        self.per_video = split_style_affines(G) if isinstance(G, Generator) else None
        for m in G.frame_modules():
            m.to(dtype)
            if channels_last:
                m.to(memory_format=torch.channels_last)
        self.G, self.dtype, self.channels_last, self.resolution = G, dtype, channels_last, res

    def video_state(self, w: torch.Tensor) -> torch.Tensor:
        """Once per video: what forward() takes in w's place (the per-video halves of the style affines, or w)."""
        return w if self.per_video is None else self.per_video(w)

    def forward(self, ws: torch.Tensor, x: torch.Tensor, img: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # ws = video_state(w) [B, *], x [B, C, r, r], img [B, 3, r, r] (content), v [B, T, motion_dim]
        # -> [B, T, 3, H, W] float32 in [-1, 1]
        dt = self.dtype
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.G.frames(ws.to(dt), (x.to(dt), img.float()), v.to(dt), fused=False)
        return out.float().clamp(-1, 1)

    def extra_repr(self) -> str:
        return f"dtype={self.dtype}, channels_last={self.channels_last}, resolution={self.resolution}"


class PerVideoStyles(nn.Module):
    """w [B, w_dim] -> the w halves (+ biases) of all per-frame style affines, side by side [B, total]: one matmul
    per video, kept in float32."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight)        # [total, w_dim], the equalized-lr gain folded in
        self.register_buffer("bias", bias)            # [total]

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, w.float(), self.weight.t())


class FrameAffine(nn.Module):
    """A per-frame style affine over cat(w, v), split: its input is cat(PerVideoStyles(w), v), of which it takes its
    own slice of the per-video part and adds its v half times v."""

    def __init__(self, weight_v: torch.Tensor, offset: int, total: int):
        super().__init__()
        self.weight_v = nn.Parameter(weight_v, requires_grad=False)   # [C, motion_dim], gain folded in
        self.offset, self.total = offset, total

    def forward(self, style: torch.Tensor) -> torch.Tensor:
        base = style[:, self.offset:self.offset + self.weight_v.shape[0]]
        return torch.addmm(base, style[:, self.total:], self.weight_v.to(style.dtype).t())

    def extra_repr(self) -> str:
        return f"out={self.weight_v.shape[0]}, offset={self.offset}"


def split_style_affines(G: Generator) -> Optional[PerVideoStyles]:
    """Replace, in G (a FrameRenderer's copy), the style affines of the per-frame blocks by FrameAffines, and return
    the per-video part; None (G unchanged) when no block runs per frame."""
    w_dim = G.cfg.w_dim
    affines = [(m, m.affine) for b in G.blocks if b.resolution > G.content_res for m in b.modules()
               if hasattr(m, "affine") and m.affine.in_features > w_dim]
    if not affines:
        return None
    total = sum(a.out_features for _, a in affines)
    weights, biases, offset = [], [], 0
    for m, a in affines:
        wt = a.weight.detach().float() * a.weight_gain                                  # [C, w_dim + m]
        weights.append(wt[:, :w_dim])
        biases.append(a.bias.detach().float() * a.bias_gain)
        m.affine = FrameAffine(wt[:, w_dim:].clone(), offset, total)
        offset += a.out_features
    return PerVideoStyles(torch.cat(weights), torch.cat(biases))


def preview_resolutions(G: VideoGenerator) -> Tuple[int, ...]:
    """Sizes a FrameRenderer can render G's frames at: its own and the smaller ones its family can stop at."""
    return tuple(sorted(set(G.preview_resolutions()) | {G.resolution}))


def check_preview(G: VideoGenerator, resolution: Optional[int]) -> int:
    sizes = preview_resolutions(G)
    if resolution is None or resolution == G.resolution:
        return G.resolution
    if resolution not in sizes:
        raise SamplingError(f"this generator renders at {', '.join(map(str, sizes))} px, not {resolution}")
    return int(resolution)


def fill_grid_cache(G: VideoGenerator, device: torch.device) -> None:
    """Fill the sampling-grid cache eagerly (the warp's grid at the content resolution, the layered G's at the
    frame size): a miss inside a compiled graph would make dynamo recompile on the next chunk."""
    dev = torch.empty(0, device=device).device          # as tensors name it ('cuda:0', not 'cuda')
    for r in G.frame_grid_sizes():
        _base_grid(r, dev)


class ChunkGraphs:
    """CUDA graphs of a renderer, one per input shape, replayed with copied-in inputs."""

    def __init__(self, renderer: nn.Module):
        self.renderer = renderer
        self._graphs: Dict[Tuple, Tuple] = {}

    def __call__(self, w, x, img, v) -> torch.Tensor:
        key = tuple(tuple(a.shape) for a in (w, x, img, v))
        if key not in self._graphs:
            static = [a.clone() for a in (w, x, img, v)]
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):                      # warm-up outside the capture
                for _ in range(2):
                    self.renderer(*static)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                out = self.renderer(*static)
            self._graphs[key] = (graph, static, out)
        graph, static, out = self._graphs[key]
        for dst, src in zip(static, (w, x, img, v)):
            dst.copy_(src)
        graph.replay()
        return out.clone()                                     # the next replay overwrites `out`
