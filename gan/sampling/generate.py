"""generate.py's one function: checkpoint -> clips on disk (or a real-time stream), for every mode.

load once (gan/sampling/load.py) -> render in chunks (render.py; fast.py accelerates the same renderer)
-> watermark -> write (write.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch

from gan import limits
from gan import watermark as wm
from gan.conditioning.inputs import ConditionError, last_frames, load_image, load_video
from gan.conditioning.text import TextEncoder
from gan.sampling.load import (SamplingError, check_mode, checkpoint_mode, load_generator, read, resolve_class,
                               resolve_watermark, text_encoder_of)
from gan.sampling.render import ClipRenderer, prompt_condition
from gan.sampling.write import FORMATS, finish_stream, open_stream, output_paths, stream_clip, write_clips
from gan.writes import refuse_existing


def generate(checkpoint, outdir: Optional[str], seeds: Sequence[int], frames: Optional[int] = 64,
             fps: Optional[float] = None, fmt: str = "mp4", truncation: float = 1.0, *,
             class_value: Optional[str] = None, image: Optional[str] = None, video: Optional[str] = None,
             prompt: Optional[str] = None, context_stride: int = 1, device: str = "cpu", chunk: int = 16,
             batch: int = 4, stream: bool = False, stream_to: Optional[str] = None, precision: str = "fp32",
             compile: bool = False, stdout=None, text_encoder: Optional[TextEncoder] = None,
             log: Optional[Callable[[str], None]] = None, watermark=wm.AUTO, state: Optional[Dict] = None,
             labels: Optional[str] = None, label_threshold: float = 0.5, dataset: Optional[str] = None,
             overwrite: bool = True):
    """Render `seeds` of `checkpoint` into `outdir`; returns the written paths (stream=True: the stream's totals).

    Condition (at most one): `class_value` (class-conditional), `image` (frame 0 of every clip), `video` (its
    last K frames, `context_stride` apart, followed by `frames` predicted ones), `prompt` (text-to-video).
    stream=True renders one clip of seeds[0] chunk by chunk to `stream_to` ('-': raw rgb24 on `stdout`),
    endless when frames is None, through the renderer's `precision` / `compile` options. `watermark`:
    wm.AUTO (the model's mark), a Watermarker, or None (unmarked). `state`: the file's contents if read.
    `labels` (yolo / coco / mot; layered models, not --video) writes each clip's object boxes beside it and
    `dataset` the ultralytics folder (gan/labels.py). overwrite=False (generate.py without --force) refuses
    before rendering when an output exists. Sizes are checked against this machine first (check_request)."""
    given = {k: v for k, v in (("image", image), ("continue", video), ("text", prompt)) if v is not None}
    if len(given) > 1:
        raise ConditionError("give exactly one of --image, --video, --prompt")
    wanted, value = next(iter(given.items()), ("none", None))
    if wanted != "none" and (class_value is not None or stream):
        raise ConditionError("--class and --stream do not combine with --image/--video/--prompt")
    if fmt not in FORMATS:
        raise SamplingError(f"unknown format {fmt!r}: use mp4, gif, png or grid")
    if (frames is not None and frames < 1) or (fps is not None and fps <= 0) or context_stride < 1:
        raise SamplingError("--fps must be > 0 and --frames, --context-stride >= 1")
    ckpt = read(checkpoint, state)
    check_mode(checkpoint_mode(checkpoint, ckpt), wanted)
    G, info = load_generator(checkpoint, device, ckpt, text_encoder)
    if labels is not None:
        from gan.labels import require_layered
        if wanted == "continue":
            raise ConditionError("--labels covers --image and --prompt, not --video (its first frames are the "
                                 "input clip's)")
        if stream:
            raise ConditionError("--labels write files beside clips: not with --stream")
        if fmt == "grid":
            raise ConditionError("--labels are written per clip: use --format mp4, gif or png, not grid")
        require_layered(G)
    mark = resolve_watermark(watermark, G, info)
    cfg = info["config"]
    fps = cfg.data.fps if fps is None else float(fps)
    step = cfg.data.fps / fps                                          # data frames per output frame
    check_request(frames, fps, truncation, step, seeds, G.resolution, fmt, chunked=wanted == "none" and fmt == "mp4")
    limits.require_memory(min(batch, len(seeds)) * min(chunk, frames or chunk) * 64 * G.resolution ** 2 * 4,
                          f"rendering --batch {batch} x --chunk {chunk} frames at once (about 64 feature maps of "
                          f"{G.resolution}x{G.resolution} each)", "lower --batch or --chunk")
    if stream:
        return _stream(G, info, seeds[0], frames, fps, step, truncation, class_value, outdir, stream_to, stdout,
                       mark, log, ClipRenderer(G, device, chunk, precision=precision, compile=compile), overwrite)
    if outdir is None:
        raise SamplingError("pass an output folder (--outdir)")
    refuse_existing(output_paths(outdir, seeds, fmt), overwrite)
    renderer = ClipRenderer(G, device, chunk, fused=wanted == "none")
    if wanted == "none":                                               # unconditional / class: batches of seeds
        cls = resolve_class(class_value, info)
        groups = [list(seeds)] if fmt == "grid" else [list(seeds[i:i + batch]) for i in range(0, len(seeds), batch)]
        written: List[Path] = []
        for group in groups:
            c = torch.full((len(group),), cls, dtype=torch.long) if cls is not None else None
            chunks = renderer.render_chunks(group, frames, time_step=step, c=c, truncation=truncation)
            if frames is not None:                        # a progress bar, and a refusal of days of work
                chunks = limits.timed(chunks, -(-frames // renderer.chunk), f"seeds {group[0]}-{group[-1]}", log,
                                      progress=log is not None)
            if fmt == "grid":
                return write_clips(chunks, outdir, seeds, fps, fmt, watermark=mark)
            written += write_clips(chunks, outdir, group, fps, fmt, watermark=mark)
        if labels is not None:
            from gan.labels import generate_labels
            written += generate_labels(checkpoint, written, seeds, labels, frames=frames, fps=fps,
                                       truncation=truncation, class_value=class_value, device=device, chunk=chunk,
                                       batch=batch, threshold=label_threshold, dataset=dataset, state=ckpt)
        return written
    res, ch = cfg.data.resolution, cfg.data.channels
    if wanted == "text":
        enc = text_encoder_of(info)
        tok = getattr(enc, "tokenizer", None)
        unknown = tok.unknown_words(value) if tok is not None else []
        if unknown and log is not None:
            log(f"warning: words the model never saw in a caption are ignored: {', '.join(unknown)}")
        c = prompt_condition(enc, value, seeds, device)
        clips = torch.cat(list(renderer.render_chunks(seeds, frames, time_step=step, c=c, truncation=truncation)), 1)
        paths = write_clips(clips, outdir, seeds, fps, fmt, watermark=mark)
        if labels is not None:
            from gan.labels import layered_labels
            boxes = layered_labels(G, seeds, frames, c=c, threshold=label_threshold, time_step=step,
                                   truncation=truncation, chunk=chunk, device=device, fused=False)
            paths += _write_labels(labels, paths, seeds, boxes, frames, res, dataset, clips)
        return paths
    if wanted == "image":
        still = load_image(value, res, ch)
        times = torch.arange(frames, dtype=torch.float64) * step
        clips = torch.cat(list(renderer.render_conditioned(seeds, still[None], torch.zeros(1), times, truncation)), 1)
        paths = write_clips(clips, outdir, seeds, fps, fmt, watermark=mark)
        if labels is not None:
            from gan.labels import conditional_labels
            prepared = renderer.prepare_conditioned(seeds, still[None], torch.zeros(1), float(times.max()),
                                                    truncation)
            t = times.float().to(renderer.device)[None].expand(len(seeds), -1)
            paths += _write_labels(labels, paths, seeds, conditional_labels(G, prepared, t, label_threshold),
                                   frames, res, dataset, clips)
        return paths
    context = last_frames(load_video(value, res, ch), G.context_frames, context_stride)     # [K, C, H, W]
    k = context.shape[0]
    context_times = torch.arange(k, dtype=torch.float64) * context_stride
    future_times = float(context_times[-1]) + torch.arange(1, frames + 1, dtype=torch.float64) * step
    times = torch.cat([context_times, future_times])
    chunks = renderer.render_conditioned(seeds, context, context_times, times, truncation)
    future = torch.cat(list(chunks), dim=1)[:, k:]
    clips = torch.cat([context.to(future.device)[None].expand(len(seeds), *context.shape), future], dim=1)
    return write_clips(clips, outdir, seeds, fps, fmt, watermark=mark)        # the context frames are marked too


def _write_labels(fmt, paths, seeds, boxes, frames, res, dataset, clips) -> List[Path]:
    """Label files beside the clips (one 'object' class), and the ultralytics folder with `dataset`."""
    from gan.labels import YoloDataset, write_clip_labels
    ds = YoloDataset(dataset, ["object"]) if dataset else None
    written = write_clip_labels(fmt, paths, seeds, boxes, frames, res, ["object"], ds, clips)
    if ds is not None:
        written.append(ds.finish())
    return written


def check_request(frames: Optional[int], fps: float, truncation: float, step: float, seeds: Sequence[int], res: int,
                  fmt: str, chunked: bool) -> None:
    """Frames, rates and truncation finite and in range, and what a non-chunked output holds in memory at once
    (every frame of every seed as float32) within this machine's: checked before anything is rendered."""
    limits.finite(fps, "--fps", 0, 1000, lo_open=True)
    limits.finite(step, "--fps (the time step it gives against the model's data.fps)", 0, 1e6, lo_open=True)
    limits.finite(truncation, "--truncation", 0, 2)
    if frames is None:
        return
    limits.require_int(frames, "--frames", 1, limits.MAX_FRAMES)
    if not chunked:
        limits.require_memory(len(seeds) * frames * 3 * res * res * 4, f"{len(seeds)} clip(s) of {frames} frames "
                              f"at {res}x{res} in --format {fmt} (held whole in memory)",
                              "ask for fewer --frames or --seeds, or use --format mp4 (written chunk by chunk)")


def _stream(G, info, seed, frames, fps, step, truncation, class_value, outdir, stream_to, stdout, mark, log,
            renderer: ClipRenderer, overwrite: bool = True) -> Dict:
    cls = resolve_class(class_value, info)
    c = torch.full((1,), cls, dtype=torch.long) if cls is not None else None
    writer, target = open_stream(seed, fps, outdir, stream_to, stdout, mark, overwrite)
    res = G.resolution
    if log is not None:
        length = "endless: Ctrl-C stops" if frames is None else f"{frames} frames"
        log(f"stream: seed {seed}, {res}x{res} rgb24 at {fps:g} fps -> {target} "
            f"({length}; {renderer.describe()}, chunk {renderer.chunk})")
    from gan import video_io
    try:
        stats = stream_clip(renderer, seed, writer, frames, fps=fps, time_step=step, c=c, truncation=truncation,
                            log=log)
    except BaseException:
        if isinstance(writer, video_io.Mp4Writer):
            writer.abort()                       # never publish a partial file after an error
        raise
    finally:
        if isinstance(writer, video_io.RawWriter) and stream_to != "-":
            writer.fileobj.close()
    finish_stream(writer, stream_to, stdout, stats)
    stats.update({"output": target, "height": res, "width": res})
    return stats


# ---- the per-mode entry points, kept for scripts: each is generate() -------------------------------


def generate_videos(checkpoint: str, outdir: str, seeds: Sequence[int], frames: int = 64, fps: Optional[float] = None,
                    fmt: str = "mp4", truncation: float = 1.0, class_value: Optional[str] = None,
                    device: str = "cpu", chunk: int = 16, batch: int = 4, watermark=wm.AUTO,
                    state: Optional[Dict] = None) -> List[Path]:
    """Unconditional / class-conditional clips: one file per seed (mp4, gif, png folder) or one grid file."""
    return generate(checkpoint, outdir, seeds, frames, fps, fmt, truncation, class_value=class_value, device=device,
                    chunk=chunk, batch=batch, watermark=watermark, state=state)


def generate_conditional(checkpoint: str, outdir: str, seeds: Sequence[int], frames: int = 64,
                         fps: Optional[float] = None, fmt: str = "mp4", truncation: float = 1.0,
                         image: Optional[str] = None, video: Optional[str] = None, prompt: Optional[str] = None,
                         context_stride: int = 1, device: str = "cpu", chunk: int = 16,
                         text_encoder: Optional[TextEncoder] = None, log=None, watermark=wm.AUTO,
                         state: Optional[Dict] = None) -> List[Path]:
    """The --image / --video / --prompt paths; exactly one condition must be given."""
    if image is None and video is None and prompt is None:
        raise ConditionError("give exactly one of --image, --video, --prompt")
    return generate(checkpoint, outdir, seeds, frames, fps, fmt, truncation, image=image, video=video, prompt=prompt,
                    context_stride=context_stride, device=device, chunk=chunk, text_encoder=text_encoder, log=log,
                    watermark=watermark, state=state)


def stream_video(checkpoint, seed: int = 0, frames: Optional[int] = None, fps: Optional[float] = None, *,
                 outdir: Optional[str] = None, stream_to: Optional[str] = None, precision: str = "fp32",
                 compile: bool = False, chunk: int = 8, device: str = "cpu", truncation: float = 1.0,
                 class_value: Optional[str] = None, stdout=None, log=None, watermark=wm.AUTO,
                 state: Optional[Dict] = None) -> Dict[str, float]:
    """Real-time mode: one clip of `seed` (endless when frames is None) written chunk by chunk."""
    return generate(checkpoint, outdir, [seed], frames, fps, "mp4", truncation, class_value=class_value,
                    device=device, chunk=chunk, stream=True, stream_to=stream_to, precision=precision,
                    compile=compile, stdout=stdout, log=log, watermark=watermark, state=state)
