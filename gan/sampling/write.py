"""The one writer of sampling: clips (whole or chunk by chunk) -> files, each marked by `watermark`
(a gan.watermark.Watermarker; None: unmarked), and the real-time stream writer with its rate report."""
from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch

from gan import video_io
from gan.sampling.load import SamplingError
from gan.video_io import to_uint8
from gan.writes import refuse_existing

FORMATS = ("mp4", "gif", "png", "grid")


def output_paths(outdir: Union[str, Path], seeds: Sequence[int], fmt: str, prefix: str = "") -> List[Path]:
    """The files (png: folders) write_clips makes for `seeds` in `fmt`."""
    out = Path(outdir)
    if fmt == "grid":
        return [out / f"{prefix}grid_seeds{seeds[0]}-{seeds[-1]}.mp4"]
    ext = {"mp4": ".mp4", "gif": ".gif", "png": ""}[fmt]
    return [out / f"{prefix}seed{s:04d}{ext}" for s in seeds]


def write_clips(clips: Union[torch.Tensor, Iterable[torch.Tensor]], outdir: Union[str, Path], seeds: Sequence[int],
                fps: float, fmt: str, prefix: str = "", watermark=None, overwrite: bool = True) -> List[Path]:
    """Clips [S, T, C, H, W] in [-1, 1], or an iterable of such chunks along T, -> one file per seed (mp4 /
    gif / png folder) or one grid mp4. mp4 files are encoded chunk by chunk (constant memory); a failure
    leaves no partial file. overwrite=False refuses (WriteError) when one of the outputs exists."""
    if fmt not in FORMATS:
        raise SamplingError(f"unknown format {fmt!r}: use mp4, gif, png or grid")
    chunks = [clips] if torch.is_tensor(clips) else clips
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{prefix}seed{s:04d}" for s in seeds]
    refuse_existing(output_paths(outdir, seeds, fmt, prefix), overwrite)
    if fmt == "mp4":
        writers = [video_io.Mp4Writer(p.with_suffix(".mp4"), fps, watermark=watermark) for p in paths]
        try:
            for part in chunks:
                for wtr, clip in zip(writers, to_uint8(part.float().cpu())):
                    wtr.write(clip)
        except BaseException:
            for wtr in writers:                          # never publish a partial file
                wtr.abort()
            raise
        for wtr in writers:
            wtr.close()
        return [p.with_suffix(".mp4") for p in paths]
    u8 = to_uint8(torch.cat([part.float().cpu() for part in chunks], dim=1))
    if fmt == "grid":
        path = out / f"{prefix}grid_seeds{seeds[0]}-{seeds[-1]}.mp4"
        video_io.write_mp4(path, video_io.make_grid(u8), fps, watermark=watermark)
        return [path]
    written = []
    for p, clip in zip(paths, u8):
        if fmt == "gif":
            video_io.write_gif(p.with_suffix(".gif"), clip, fps, watermark=watermark)
            written.append(p.with_suffix(".gif"))
        else:
            video_io.write_png_frames(p, clip, watermark=watermark)
            written.append(p)
    return written


# ---- real time ----------------------------------------------------------------------------------


def open_stream(seed: int, fps: float, outdir: Optional[str], stream_to: Optional[str], stdout,
                watermark, overwrite: bool = True) -> Tuple[object, str]:
    """(writer, target) for a stream: '-' raw rgb24 frames on `stdout`; a path: .mp4 encoded, anything else
    raw; neither: OUTDIR/seedNNNN_stream.mp4."""
    if stream_to == "-":
        if stdout is None:
            raise SamplingError("streaming to '-' needs a binary stdout")
        writer, target = video_io.RawWriter(stdout, watermark=watermark), "<stdout>"
    else:
        if stream_to is None:
            if outdir is None:
                raise SamplingError("pass --outdir (writes seedNNNN_stream.mp4) or --stream-to (- or a file)")
            path = Path(outdir) / f"seed{seed:04d}_stream.mp4"
        else:
            path = Path(stream_to)
        refuse_existing([path], overwrite)
        path.parent.mkdir(parents=True, exist_ok=True)
        is_mp4 = path.suffix.lower() == ".mp4"
        writer = (video_io.Mp4Writer(path, fps, watermark=watermark) if is_mp4
                  else video_io.RawWriter(open(path, "wb"), watermark=watermark))
        target = str(path)
    return writer, target


def finish_stream(writer, stream_to: Optional[str], stdout, stats: Dict) -> None:
    """Close a stream's writer: an interrupted endless mp4 keeps what it wrote; a reader that left a pipe is
    no error at exit."""
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


def stream_clip(sampler: "ClipRenderer", seed: int, writer, num_frames: Optional[int] = None, *,
                fps: float, time_step: float = 1.0, c: Optional[torch.Tensor] = None, truncation: float = 1.0,
                log: Optional[Callable[[str], None]] = None, report_every: float = 5.0) -> Dict[str, float]:
    """Render one clip of `seed` chunk by chunk into `writer` (see stream_chunks) until num_frames (None: until
    interrupted)."""
    chunks = sampler.render_chunks([seed], num_frames, time_step=time_step, c=c, truncation=truncation)
    return stream_chunks(chunks, writer, fps=fps, describe=sampler.describe(), log=log, report_every=report_every)


def stream_chunks(chunks: Iterable[torch.Tensor], writer, *, fps: float, describe: str = "",
                  log: Optional[Callable[[str], None]] = None, report_every: float = 5.0) -> Dict[str, float]:
    """Write one clip's chunks [1, t, C, H, W] into `writer` (anything with `.write(uint8 [t, H, W, 3])`) as they
    are rendered. Reports the achieved frames/s against the target `fps` through `log` every `report_every`
    seconds and at the end; returns the totals."""
    stats = {"frames": 0, "seconds": 0.0, "first_chunk_s": 0.0, "fps": 0.0, "steady_fps": 0.0, "target_fps": fps,
             "stopped": "done"}
    t0 = time.perf_counter()
    t_first = t_report = None
    try:
        for part in chunks:
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
            f"{fps:g} = {stats['steady_fps'] / fps:.2f}x real time [{describe}]")
    return stats


def _rate_line(frames: int, seconds: float, fps: float, what: str) -> str:
    rate = frames / max(seconds, 1e-9)
    return f"stream: {rate:.1f} frames/s {what} (target {fps:g}: {rate / fps:.2f}x real time)"

