"""generate.py's one function: checkpoint -> clips on disk (or a real-time stream), for every mode.

load once (gan/sampling/load.py) -> render in chunks (render.py; fast.py accelerates the same renderer)
-> watermark -> write (write.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence


from gan import limits
from gan import watermark as wm
from gan.conditioning.text import TextEncoder
from gan.sampling.conditions import Condition, Output, condition_for
from gan.sampling.load import load_generator, read, resolve_watermark
from gan.sampling.render import ClipRenderer
from gan.sampling.sinks import LabelSink
from gan.sampling.write import finish_stream, open_stream, output_paths, stream_chunks, write_clips
from gan.writes import refuse_existing


def generate(checkpoint, outdir: Optional[str], seeds: Sequence[int], frames: Optional[int] = 64,
             fps: Optional[float] = None, fmt: str = "mp4", truncation: float = 1.0, *,
             class_value: Optional[str] = None, image: Optional[str] = None, video: Optional[str] = None,
             prompt: Optional[str] = None, context_stride: int = 1, device: str = "cpu", chunk: int = 16,
             batch: int = 4, stream: bool = False, stream_to: Optional[str] = None, precision: str = "fp32",
             compile: bool = False, stdout=None, text_encoder: Optional[TextEncoder] = None,
             log: Optional[Callable[[str], None]] = None, watermark=wm.AUTO, watermark_key: Optional[str] = None,
             watermark_user: Optional[int] = None, state: Optional[Dict] = None, labels: Optional[str] = None,
             label_threshold: float = 0.5, dataset: Optional[str] = None, overwrite: bool = True):
    """Render `seeds` of `checkpoint` into `outdir`; returns the written paths (stream=True: the stream's totals).

    Condition (at most one): `class_value` (class-conditional), `image` (frame 0 of every clip), `video` (its
    last K frames, `context_stride` apart, followed by `frames` predicted ones), `prompt` (text-to-video).
    stream=True renders one clip of seeds[0] chunk by chunk to `stream_to` ('-': raw rgb24 on `stdout`),
    endless when frames is None, through the renderer's `precision` / `compile` options. `watermark`:
    wm.AUTO (the model's mark; `watermark_key` / `watermark_user` change it), a Watermarker, or None (unmarked).
    `state`: the file's contents if read. `labels` (yolo / coco / mot; layered models, not --video) writes each
    clip's object boxes beside it and `dataset` the ultralytics folder (gan/labels.py). overwrite=False (generate.py
    without --force) refuses before rendering when an output exists; sizes are checked against this machine first."""
    out = Output(outdir, fmt, frames, fps, batch, stream, stream_to, precision, compile, labels, label_threshold,
                 dataset)
    G, info = load_generator(checkpoint, device, read(checkpoint, state), text_encoder)   # the one build of G
    cond = condition_for(G, info, out, class_value=class_value, image=image, video=video, prompt=prompt,
                         context_stride=context_stride, log=log)
    sink = LabelSink(G, labels, label_threshold, cond.names, cond.label_class, dataset) if labels else None
    mark = resolve_watermark(watermark, G, info, watermark_key, watermark_user, log)
    fps = info["config"].data.fps if fps is None else float(fps)
    step = info["config"].data.fps / fps                                # data frames per output frame
    check_request(frames, fps, truncation, step, seeds, G.resolution, fmt, chunked=stream or fmt == "mp4")
    limits.require_memory(min(batch, len(seeds)) * min(chunk, frames or chunk) * 64 * G.resolution ** 2 * 4,
                          f"rendering --batch {batch} x --chunk {chunk} frames at once (about 64 feature maps of "
                          f"{G.resolution}x{G.resolution} each)", "lower --batch or --chunk")
    renderer = ClipRenderer(G, device, chunk, fused=cond.fused, **out.renderer_options())
    if stream:
        return _stream(cond, renderer, seeds[0], out, fps, step, truncation, stdout, mark, log, overwrite)
    refuse_existing(output_paths(outdir, seeds, fmt), overwrite)
    written: List[Path] = []
    for group in out.groups(seeds):
        clips = cond.prepare(renderer, group, frames, step, truncation)
        chunks = renderer.clip_chunks(clips)
        parts = sink.feed(clips, group, chunks) if sink else (part.frames for part in chunks)
        paths = write_clips(parts, outdir, group, fps, fmt, watermark=mark)
        written += paths + (sink.write(paths) if sink else [])
    return written + (sink.finish() if sink else [])


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


def _stream(cond: Condition, renderer: ClipRenderer, seed: int, out: Output, fps: float, step: float,
            truncation: float, stdout, mark, log, overwrite: bool = True) -> Dict:
    """One clip of `seed`, chunk by chunk into the stream writer, with the achieved rate against `fps`."""
    from gan import video_io
    writer, target = open_stream(seed, fps, out.outdir, out.stream_to, stdout, mark, overwrite)
    res = renderer.G.resolution
    if log is not None:
        length = "endless: Ctrl-C stops" if out.frames is None else f"{out.frames} frames"
        log(f"stream: seed {seed}, {res}x{res} rgb24 at {fps:g} fps -> {target} "
            f"({length}; {renderer.describe()}, chunk {renderer.chunk})")
    try:
        chunks = renderer.clip_chunks(cond.prepare(renderer, [seed], out.frames, step, truncation))
        stats = stream_chunks((part.frames for part in chunks), writer, fps=fps, describe=renderer.describe(),
                              log=log)
    except BaseException:
        if isinstance(writer, video_io.Mp4Writer):
            writer.abort()                       # never publish a partial file after an error
        raise
    finally:
        if isinstance(writer, video_io.RawWriter) and out.stream_to != "-":
            writer.fileobj.close()
    finish_stream(writer, out.stream_to, stdout, stats)
    stats.update({"output": target, "height": res, "width": res})
    return stats
