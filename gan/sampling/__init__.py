"""Sampling: one loader (load.py), the conditions of every mode (conditions.py), one chunked renderer that the
fast path accelerates (render.py, fast.py), one writer and the label sink fed by the same chunks (write.py,
sinks.py), and generate.py's one function (generate.py)."""
from gan.sampling.conditions import Condition, Output, condition_for
from gan.sampling.cost import flops_per_frame, param_count
from gan.sampling.fast import PRECISIONS, FrameRenderer, cpu_has_bf16, resolve_precision
from gan.sampling.generate import generate
from gan.sampling.load import (MAX_SEED, MAX_SEEDS, SamplingError, checkpoint_watermarker, load_conditional,
                               load_generator, parse_seeds, resolve_watermark)
from gan.sampling.render import ClipRenderer, FastSampler, prompt_condition, render, seed_z
from gan.sampling.sinks import LabelSink, layered_labels
from gan.sampling.write import stream_clip, write_clips

__all__ = ["Condition", "Output", "condition_for", "flops_per_frame", "param_count", "PRECISIONS", "FrameRenderer",
           "cpu_has_bf16", "resolve_precision", "generate", "MAX_SEED", "MAX_SEEDS", "SamplingError",
           "checkpoint_watermarker", "load_conditional", "load_generator", "parse_seeds", "resolve_watermark",
           "ClipRenderer", "FastSampler", "prompt_condition", "render", "seed_z", "LabelSink", "layered_labels",
           "stream_clip", "write_clips"]
