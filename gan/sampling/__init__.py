"""Sampling: one loader (load.py), one chunked renderer that the fast path accelerates (render.py, fast.py),
one writer (write.py), and generate.py's one function (generate.py)."""
from gan.sampling.cost import flops_per_frame, param_count
from gan.sampling.fast import PRECISIONS, FrameRenderer, cpu_has_bf16, resolve_precision
from gan.sampling.generate import generate, generate_conditional, generate_videos, stream_video
from gan.sampling.load import (MAX_SEED, MAX_SEEDS, SamplingError, check_mode, checkpoint_mode,
                               checkpoint_watermarker, load_conditional, load_generator, parse_seeds, resolve_class,
                               resolve_watermark)
from gan.sampling.render import (ClipRenderer, FastSampler, animate, continue_clip, render, render_chunks,
                                 render_conditioned, render_grid_video, seed_motion, seed_z, text_clips)
from gan.sampling.write import stream_clip, write_clips

__all__ = ["flops_per_frame", "param_count", "PRECISIONS", "FrameRenderer", "cpu_has_bf16", "resolve_precision",
           "generate", "generate_conditional", "generate_videos", "stream_video", "MAX_SEED", "MAX_SEEDS",
           "SamplingError", "check_mode", "checkpoint_mode", "checkpoint_watermarker", "load_conditional",
           "load_generator", "parse_seeds", "resolve_class", "resolve_watermark", "ClipRenderer", "FastSampler",
           "animate", "continue_clip", "render", "render_chunks", "render_conditioned", "render_grid_video",
           "seed_motion", "seed_z", "text_clips", "stream_clip", "write_clips"]
