"""Fast generator-only sampling and real-time streaming.

`FastSampler` renders the same clips as `gan.sampling.render_chunks` (same per-seed RNG streams, so
`--seed 7` is the same clip), with opt-in speed-ups for inference:

- `torch.inference_mode` throughout; the modulated convs run unfused (one ordinary conv on a shared
  weight), which is what lets the compiler fold and pre-pack the weights.
- `precision='bf16'` (CPU with AMX / AVX512-BF16, or CUDA) or `'fp16'` (CUDA): the synthesis blocks
  get their own low-precision copy of the weights once, instead of autocast casting every weight for
  every chunk. Mapping, content and motion stay float32: motion phases at large t (endless clips)
  need float32.
- `compile=True`: torch.compile of the per-chunk frame rendering, with inductor freezing (weights
  become constants: demodulation norms and casts are folded, conv weights pre-packed). Chunks are
  padded to a fixed length so one graph serves the whole clip. The motion MLP stays eager: it is
  <1% of the FLOPs and its anchor window moves every chunk.
- int8 (PT2E + X86InductorQuantizer) was measured and is not offered: see bench/int8_pt2e.py and
  BENCHMARKS.md (on torch 2.14 + torchao 0.18 inductor cannot lower the int8 convs).
- CUDA only: CUDA graphs replay the fixed-shape chunk rendering (eager), or compile uses
  mode='reduce-overhead' (which captures its own graphs). Nothing CUDA is touched on CPU.

`stream_clip` drives a sampler chunk by chunk into a writer (`gan.video_io.Mp4Writer` / `RawWriter`)
with constant memory and reports the achieved frame rate against a target.
"""
from __future__ import annotations

import copy
import io
import math
import os
import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from gan.networks import Generator
from gan.networks.generator import _base_grid
from gan.sampling import SamplingError, seed_motion, seed_z

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_bf16() -> bool:
    """True where oneDNN runs bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> bf16 on CPUs with native bf16 and on CUDA with bf16, fp16 on older CUDA, else fp32."""
    if precision not in PRECISIONS:
        raise SamplingError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise SamplingError("precision 'fp16' needs a CUDA device; use 'bf16' on the CPU")
    return precision


class FrameRenderer(nn.Module):
    """The per-chunk work: (w, content, motion embeddings) -> frames, as one module that torch.compile,
    CUDA graphs and PT2E quantization can take whole. Holds its own copy of the synthesis weights in
    the rendering precision (and memory format)."""

    def __init__(self,
                 G: Generator,                 # source generator (not modified)
                 dtype: torch.dtype = torch.float32,  # precision of the per-frame synthesis
                 channels_last: bool = True):  # conv weights and activations in NHWC
        super().__init__()
        G = copy.deepcopy(G).eval().requires_grad_(False)
        G.mapping = None                     # per-video parts run on the float32 G
        G.motion = None
        G.blocks.to(dtype)
        if G.flow is not None:
            G.flow.to(dtype)
        if channels_last:
            G.blocks.to(memory_format=torch.channels_last)
        self.G, self.dtype, self.channels_last = G, dtype, channels_last

    def forward(self, w: torch.Tensor, x: torch.Tensor, img: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # w [B, w_dim], x [B, C, r, r], img [B, 3, r, r] (content), v [B, T, motion_dim]
        # -> [B, T, 3, H, W] float32 in [-1, 1]
        dt = self.dtype
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.G.frames(w.to(dt), (x.to(dt), img.float()), v.to(dt), fused=False)
        return out.float().clamp(-1, 1)

    def extra_repr(self) -> str:
        return f"dtype={self.dtype}, channels_last={self.channels_last}"


class FastSampler:
    """Chunked clip rendering from a generator with opt-in inference speed-ups (see module doc)."""

    def __init__(self,
                 G: Generator,                 # trained generator (G_ema), float32; moved to `device`, eval
                 device="cpu",
                 precision: str = "fp32",      # 'fp32', 'bf16', 'fp16' (CUDA) or 'auto'
                 compile: bool = False,        # torch.compile the chunk rendering (slow first chunk)
                 channels_last: bool = True,   # NHWC convs
                 cuda_graphs: bool = True,     # CUDA only: replay fixed-shape chunks as CUDA graphs
                 chunk: int = 16,              # frames per video per rendering step
                 static_shapes: Optional[bool] = None):  # pad the last chunk (None: when compiled/graphed)
        if chunk < 1:
            raise SamplingError("chunk must be >= 1")
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        self.G = G.to(self.device).eval().requires_grad_(False)
        self.chunk, self.compile = int(chunk), bool(compile)
        self.cuda_graphs = bool(cuda_graphs) and self.device.type == "cuda" and not compile
        self.renderer = FrameRenderer(self.G, _DTYPES[self.precision], channels_last).to(self.device)
        self._fn: Callable = self.renderer
        self._fixed = (self.compile or self.cuda_graphs) if static_shapes is None else bool(static_shapes)
        self._graphs: Dict[Tuple, Tuple] = {}
        if self.compile:
            # Fill the sampling-grid cache eagerly (the warp's grid at the content resolution, the layered G's
            # at the frame size): a miss inside the compiled graph would make dynamo recompile on the next
            # chunk (it guards on the cache's keys).
            dev = torch.empty(0, device=self.device).device          # as tensors name it ('cuda:0', not 'cuda')
            for r in {self.G.content_res, self.G.resolution}:
                _base_grid(r, dev)
        if self.compile:
            if self.device.type == "cuda":
                self._fn = torch.compile(self.renderer, mode="reduce-overhead")
            else:
                self._fn = torch.compile(self.renderer, options={"freezing": True})

    def describe(self) -> str:
        parts = [self.precision, "compiled" if self.compile else "eager"]
        if self.cuda_graphs:
            parts.append("cuda-graphs")
        return "+".join(parts)

    # ---- the per-chunk call ---------------------------------------------------------------------
    def _render(self, w, x, img, v) -> torch.Tensor:
        if self.cuda_graphs:
            return self._graph_replay(w, x, img, v)
        if self.compile and self.device.type == "cuda":
            # reduce-overhead replays CUDA graphs whose outputs the next replay overwrites: copy out.
            torch.compiler.cudagraph_mark_step_begin()
            return self._fn(w, x, img, v).clone()
        return self._fn(w, x, img, v)

    def _graph_replay(self, w, x, img, v) -> torch.Tensor:
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

    # ---- clips ----------------------------------------------------------------------------------
    def prepare(self, seeds: Sequence[int], c: Optional[torch.Tensor] = None, truncation: float = 1.0):
        """Per-video work, once per clip: w [B, w_dim] and the content features (float32)."""
        if self.G.c_dim > 0 and c is None:
            raise SamplingError("this generator is class-conditional: pass a class (e.g. --class 3)")
        with torch.inference_mode():
            z = seed_z(self.G, seeds, self.device)
            w = self.G.mapping_forward(z, None if c is None else c.to(self.device), truncation_psi=truncation)
            x, img = self.G.content(w, fused=False)
        return w, x, img

    def motion(self, seeds: Sequence[int], t: torch.Tensor, w: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Motion embeddings [B, T, m] at frame times t [T] (float64), from each seed's anchor stream; w [B, w_dim]
        from `prepare` (needed when the generator's motion depends on w)."""
        period = self.G.motion.period
        k0, k1 = int(math.floor(float(t[0]) / period)), int(math.floor(float(t[-1]) / period)) + 2
        codes = seed_motion(self.G, seeds, k0, k1, self.device)
        tt = t.float().to(self.device)[None].expand(len(seeds), -1)
        return self.G.motion(codes, tt, anchor_offset=k0, w=w)

    def render_chunks(self, seeds: Sequence[int], num_frames: Optional[int], *, time_step: float = 1.0,
                      start: float = 0.0, c: Optional[torch.Tensor] = None,
                      truncation: float = 1.0) -> Iterator[torch.Tensor]:
        """Yield [B, t, C, H, W] float32 chunks in [-1, 1] (t <= chunk) of the clips of `seeds`; frame k
        is at time start + k * time_step. num_frames None renders forever. Memory stays constant."""
        if time_step <= 0 or start < 0:
            raise SamplingError("time_step must be > 0 and start >= 0")
        if num_frames is not None and num_frames < 1:
            raise SamplingError("num_frames must be >= 1 (or None for an endless clip)")
        w, x, img = self.prepare(seeds, c, truncation)
        k = 0
        while num_frames is None or k < num_frames:
            n = self.chunk if num_frames is None else min(self.chunk, num_frames - k)
            # Static shapes: a short last chunk renders the full length (extra times beyond the end), then
            # is cut, so compiled graphs and CUDA graphs never see a second shape.
            m = self.chunk if self._fixed else n
            t = start + torch.arange(k, k + m, dtype=torch.float64) * time_step
            with torch.inference_mode():
                v = self.motion(seeds, t, w)
                out = self._render(w, x, img, v)
            yield out[:, :n]
            k += n

    def render(self, seeds: Sequence[int], num_frames: int, **kwargs) -> torch.Tensor:
        """Whole clips [B, T, C, H, W] (short clips; use render_chunks or stream_clip for long ones)."""
        return torch.cat(list(self.render_chunks(seeds, num_frames, **kwargs)), dim=1)


# ---- streaming ----------------------------------------------------------------------------------


def stream_clip(sampler: FastSampler, seed: int, writer, num_frames: Optional[int] = None, *,
                fps: float, time_step: float = 1.0, c: Optional[torch.Tensor] = None, truncation: float = 1.0,
                log: Optional[Callable[[str], None]] = None, report_every: float = 5.0) -> Dict[str, float]:
    """Render one clip chunk by chunk into `writer` (anything with `.write(uint8 [t, H, W, 3])`) until
    num_frames (None: until interrupted). Reports the achieved frames/s against the target `fps` through
    `log` every `report_every` seconds and at the end; returns the totals."""
    from gan.video_io import to_uint8
    stats = {"frames": 0, "seconds": 0.0, "first_chunk_s": 0.0, "fps": 0.0, "steady_fps": 0.0, "target_fps": fps,
             "stopped": "done"}
    t0 = time.perf_counter()
    t_first = t_report = None
    try:
        for part in sampler.render_chunks([seed], num_frames, time_step=time_step, c=c, truncation=truncation):
            writer.write(to_uint8(part[0]))
            now = time.perf_counter()
            stats["frames"] += part.shape[1]
            if t_first is None:                          # includes compilation / graph capture
                t_first, t_report, stats["first_chunk_s"], first_n = now, now, now - t0, part.shape[1]
            elif log is not None and now - t_report >= report_every:
                t_report = now
                log(_rate_line(stats["frames"] - first_n, now - t_first, fps, "so far"))
    except KeyboardInterrupt:                     # the normal ends of an endless stream
        stats["stopped"] = "interrupted"
    except BrokenPipeError:
        stats["stopped"] = "broken pipe"
    now = time.perf_counter()
    stats["seconds"] = now - t0
    stats["fps"] = stats["frames"] / max(stats["seconds"], 1e-9)
    if t_first is not None and stats["frames"] > first_n:
        stats["steady_fps"] = (stats["frames"] - first_n) / max(now - t_first, 1e-9)
    else:
        stats["steady_fps"] = stats["fps"]
    if log is not None:
        log(f"stream: {stats['frames']} frames in {stats['seconds']:.1f} s ({stats['fps']:.1f} frames/s overall, "
            f"first chunk {stats['first_chunk_s']:.2f} s); steady {stats['steady_fps']:.1f} frames/s vs target "
            f"{fps:g} = {stats['steady_fps'] / fps:.2f}x real time [{sampler.describe()}]")
    return stats


def stream_video(checkpoint, seed: int = 0, frames: Optional[int] = None, fps: Optional[float] = None, *,
                 outdir: Optional[str] = None, stream_to: Optional[str] = None, precision: str = "fp32",
                 compile: bool = False, chunk: int = 8, device: str = "cpu", truncation: float = 1.0,
                 class_value: Optional[str] = None, stdout=None,
                 log: Optional[Callable[[str], None]] = None, watermark="auto",
                 state: Optional[Dict] = None) -> Dict[str, float]:
    """Real-time mode of generate.py: one clip of `seed` (endless when frames is None) written chunk by
    chunk to `stream_to` ('-': raw rgb24 frames on `stdout`; a path: .mp4 encoded, anything else raw)
    or to OUTDIR/seedNNNN_stream.mp4, marked by `watermark` (gan.sampling.resolve_watermark; None: unmarked).
    Returns stream_clip's totals plus the output and frame size."""
    from pathlib import Path

    from gan import video_io
    from gan.sampling import load_generator, resolve_class, resolve_watermark
    G, info = load_generator(checkpoint, device, state)
    mark = resolve_watermark(watermark, G, info)
    data_fps = info["config"].data.fps
    fps = data_fps if fps is None else float(fps)
    if fps <= 0 or (frames is not None and frames < 1):
        raise SamplingError("--fps must be > 0 and --frames >= 1")
    cls = resolve_class(class_value, info)
    c = torch.full((1,), cls, dtype=torch.long) if cls is not None else None
    sampler = FastSampler(G, device=device, precision=precision, compile=compile, chunk=chunk)
    if stream_to == "-":
        if stdout is None:
            raise SamplingError("streaming to '-' needs a binary stdout")
        writer, target = video_io.RawWriter(stdout, watermark=mark), "<stdout>"
    else:
        if stream_to is None:
            if outdir is None:
                raise SamplingError("pass --outdir (writes seedNNNN_stream.mp4) or --stream-to (- or a file)")
            path = Path(outdir) / f"seed{seed:04d}_stream.mp4"
        else:
            path = Path(stream_to)
        path.parent.mkdir(parents=True, exist_ok=True)
        is_mp4 = path.suffix.lower() == ".mp4"
        writer = (video_io.Mp4Writer(path, fps, watermark=mark) if is_mp4
                  else video_io.RawWriter(open(path, "wb"), watermark=mark))
        target = str(path)
    res = G.resolution
    if log is not None:
        length = "endless: Ctrl-C stops" if frames is None else f"{frames} frames"
        log(f"stream: seed {seed}, {res}x{res} rgb24 at {fps:g} fps -> {target} "
            f"({length}; {sampler.describe()}, chunk {chunk})")
    try:
        stats = stream_clip(sampler, seed, writer, frames, fps=fps, time_step=data_fps / fps, c=c,
                            truncation=truncation, log=log)
    except BaseException:
        if isinstance(writer, video_io.Mp4Writer):
            writer.abort()                       # never publish a partial file after an error
        raise
    finally:
        if isinstance(writer, video_io.RawWriter) and stream_to != "-":
            writer.fileobj.close()
    if isinstance(writer, video_io.Mp4Writer):
        if writer.frames_written:               # an interrupted endless stream keeps what it wrote
            writer.close()
        else:
            writer.abort()
    elif stream_to == "-":
        try:
            writer.close()
        except BrokenPipeError:
            stats["stopped"] = "broken pipe"
        if stats["stopped"] == "broken pipe":   # the reader (ffplay, ...) left: no flush error at exit
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
            except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
                pass
    stats.update({"output": target, "height": res, "width": res})
    return stats


def _rate_line(frames: int, seconds: float, fps: float, what: str) -> str:
    rate = frames / max(seconds, 1e-9)
    return f"stream: {rate:.1f} frames/s {what} (target {fps:g}: {rate / fps:.2f}x real time)"


# ---- cost ---------------------------------------------------------------------------------------


def flops_per_frame(G: Generator, frames: int = 4) -> Dict[str, float]:
    """FLOPs (torch.utils.flop_counter: 2 per multiply-add of convs and matmuls) of rendering: 'frame'
    per frame (motion + synthesis above the content resolution) and 'content' once per video. The
    synthesis is counted on the meta device (shapes only, no arithmetic), so this is instant at any size."""
    from torch.utils.flop_counter import FlopCounterMode
    on_cpu = next(G.parameters()).device.type == "cpu"
    mode, grads = G.training, [p.requires_grad for p in G.parameters()]
    sampler = FastSampler(G if on_cpu else copy.deepcopy(G).cpu(), channels_last=False)   # sets eval, no grad
    t = torch.arange(frames, dtype=torch.float64)
    meta = torch.device("meta")
    with torch.inference_mode():
        w0 = sampler.prepare([0], torch.zeros(1, dtype=torch.long) if G.c_dim else None)[0]
        with FlopCounterMode(display=False) as motion:          # data-dependent (anchor checks): real tensors
            v = sampler.motion([0], t, w0)
        G_meta, renderer = copy.deepcopy(sampler.G).to(meta), sampler.renderer.to(meta)
        z = torch.zeros(1, G.z_dim, device=meta)
        c = torch.zeros(1, G.c_dim, device=meta) if G.c_dim else None
        with FlopCounterMode(display=False) as per_video:
            w = G_meta.mapping_forward(z, c)
            x, img = G_meta.content(w)
        with FlopCounterMode(display=False) as synthesis:
            renderer(w, x, img, v.to(meta))
    G.train(mode)
    for p, g in zip(G.parameters(), grads):
        p.requires_grad_(g)
    return {"frame": (motion.get_total_flops() + synthesis.get_total_flops()) / frames,
            "content": float(per_video.get_total_flops())}


def param_count(G: Generator) -> int:
    return sum(p.numel() for p in G.parameters())


__all__: List[str] = ["FastSampler", "FrameRenderer", "stream_clip", "flops_per_frame", "param_count",
                      "resolve_precision", "cpu_has_bf16", "PRECISIONS"]
