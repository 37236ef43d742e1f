"""Video reading and writing: ffmpeg (via imageio-ffmpeg) for mp4/webm/gif decoding and H.264 encoding,
Pillow for GIFs and PNG frames.

Conventions: frames in memory are numpy uint8 `[T, H, W, 3]` (RGB); model tensors are float `[..., C, H, W]`
in [-1, 1] and go through `to_uint8` first. Every writer takes `watermark` (a `gan.watermark.Watermarker`, or
None for no mark) and marks each frame on its way out; the samplers pass one by default. Every file writer is atomic (temp file in the target folder, then
`os.replace`), so an interrupted run never leaves a half-written video under the final name.
"""
from __future__ import annotations

import contextlib
import io
import logging
import math
import os
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, List, Optional, Union

import imageio_ffmpeg
import numpy as np
import torch
from PIL import Image

from gan.errors import ReelganError, publish
from gan.writes import held_signals, temp_file_beside
if TYPE_CHECKING:
    from gan.watermark import Watermarker

PathLike = Union[str, os.PathLike]


class VideoReadError(ReelganError, RuntimeError):
    """A video file that ffmpeg cannot open or decode."""

    def __init__(self, path: PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read video {self.path}: {reason}")


class _DropResizeNotice(logging.Filter):
    """imageio-ffmpeg warns on every read whose output size differs from the source; we resize on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "frame size for reading" not in record.getMessage()


logging.getLogger("imageio_ffmpeg").addFilter(_DropResizeNotice())


# ----------------------------------------------------------------------------------------------------------
# Conversions and checks


def to_uint8(x) -> np.ndarray:
    """Float `[..., C, H, W]` in [-1, 1] (torch or numpy) -> numpy uint8 `[..., H, W, 3]` (C=1 is repeated)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not torch.is_tensor(x) or x.dim() < 3:
        raise ValueError(f"to_uint8 expects a tensor [..., C, H, W], got {type(x).__name__} "
                         f"with shape {tuple(getattr(x, 'shape', ()))}")
    channels = x.shape[-3]
    if channels not in (1, 3):
        raise ValueError(f"to_uint8 expects 1 or 3 channels at dim -3, got shape {tuple(x.shape)}")
    x = x.detach().to("cpu", torch.float32)
    x = ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    x = x.movedim(-3, -1)                                     # [..., H, W, C]
    if channels == 1:
        x = x.expand(*x.shape[:-1], 3)
    return np.ascontiguousarray(x.numpy())


def _check_frames(frames, what: str = "frames") -> np.ndarray:
    """Validate uint8 `[T, H, W, 3]` (a single `[H, W, 3]` frame is promoted to T=1)."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{what} must be uint8 [T, H, W, 3], got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 [T, H, W, 3], got dtype {frames.dtype} "
                         f"(convert model output with gan.video_io.to_uint8)")
    return frames


def _mark(frames: np.ndarray, watermark: "Optional[Watermarker]") -> np.ndarray:
    return frames if watermark is None else watermark.embed(frames)


def _pad_even(frames: np.ndarray) -> np.ndarray:
    """Pad `[T, H, W, 3]` by replicating the last row/column so H and W are even (yuv420p needs it)."""
    _, h, w, _ = frames.shape
    if h % 2 == 0 and w % 2 == 0:
        return frames
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def resize_square(frames, size: int) -> np.ndarray:
    """uint8 `[T, H, W, 3]` -> `[T, size, size, 3]`: short side to `size` (antialiased bicubic), centre crop."""
    frames = _check_frames(frames)
    _, h, w, _ = frames.shape
    if h == size and w == size:
        return frames
    scale = size / min(h, w)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    left, top = (new_w - size) // 2, (new_h - size) // 2
    out = np.empty((len(frames), size, size, 3), np.uint8)
    for k, frame in enumerate(frames):
        image = Image.fromarray(frame).resize((new_w, new_h), Image.BICUBIC)
        out[k] = np.asarray(image.crop((left, top, left + size, top + size)))
    return out


# ----------------------------------------------------------------------------------------------------------
# Reading


def _square_filter(size: int) -> str:
    # Short side to `size` (long side keeps the aspect ratio), then a centred size x size crop.
    return (f"scale=w='if(lte(iw,ih),{size},-1)':h='if(lte(iw,ih),-1,{size})':flags=area,"
            f"crop={size}:{size}")


def read_video(path: PathLike, max_frames: Optional[int] = None, size: Optional[int] = None,
               start: int = 0, stride: int = 1) -> np.ndarray:
    """Decode frames `start, start+stride, ...` (at most `max_frames` of them) -> uint8 `[T, H, W, 3]`.

    `size` resizes the short side to `size` and centre-crops to a square (done by ffmpeg, deterministic).
    Frames are taken as stored (no frame-rate resampling), so GIFs with uneven delays keep every frame.
    Decoding stops as soon as the requested frames are out.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise VideoReadError(path, "not a regular file (a pipe, socket or device)" if os.path.exists(path)
                             else "file not found")
    if start < 0 or stride < 1 or (max_frames is not None and max_frames < 1):
        raise ValueError(f"read_video needs start >= 0, stride >= 1, max_frames >= 1; "
                         f"got start={start}, stride={stride}, max_frames={max_frames}")
    filters = []
    if start > 0 or stride > 1:
        filters.append(f"select='gte(n,{start})*not(mod(n-{start},{stride}))'")
    if size is not None:
        filters.append(_square_filter(int(size)))
    output_params = ["-fps_mode", "passthrough"]              # never duplicate or drop frames
    if filters:
        output_params += ["-vf", ",".join(filters)]
    if max_frames is not None:
        output_params += ["-frames:v", str(int(max_frames))]
    frames: List[np.ndarray] = []
    try:
        gen = imageio_ffmpeg.read_frames(path, output_params=output_params)
        try:
            meta = next(gen)
            width, height = meta["size"]
            for buf in gen:
                frames.append(np.frombuffer(buf, np.uint8).reshape(height, width, 3))
        finally:
            gen.close()
    except (OSError, RuntimeError, ValueError, IndexError, AttributeError) as e:
        # imageio-ffmpeg raises IOError/RuntimeError with ffmpeg's stderr; keep only its last line.
        raise VideoReadError(path, _last_line(e)) from e
    if not frames:
        raise VideoReadError(path, f"no frames decoded (start={start}, stride={stride})")
    declared = declared_frames(path, meta)
    if declared:                                              # a truncated file decodes fewer frames than it declares
        want = max(0, -(-(declared - start) // stride))
        want = min(want, max_frames) if max_frames is not None else want
        if len(frames) < 0.9 * want - 1:
            raise VideoReadError(path, f"the file is truncated: decoded {len(frames)} of the {want} frames its "
                                       f"header declares; re-export or re-download it")
    return np.stack(frames)


def declared_frames(path: PathLike, meta: dict) -> Optional[int]:
    """Frames an mp4-family container declares (duration x fps); None for GIFs and unknown durations,
    whose per-frame delays make that product unreliable."""
    if Path(path).suffix.lower() not in (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"):
        return None
    duration, fps = meta.get("duration"), meta.get("fps")
    try:
        n = float(duration) * float(fps)
    except (TypeError, ValueError):
        return None
    return int(round(n)) if math.isfinite(n) and n > 0 else None


def probe_size(path: PathLike) -> tuple:
    """(height, width) of a video's frames, from its header (nothing decoded beyond the first frame)."""
    path = str(path)
    if not os.path.isfile(path):
        raise VideoReadError(path, "not a regular file (a pipe, socket or device)" if os.path.exists(path)
                             else "file not found")
    try:
        gen = imageio_ffmpeg.read_frames(path)
        try:
            meta = next(gen)
        finally:
            gen.close()
    except (OSError, RuntimeError, ValueError, IndexError, AttributeError, StopIteration) as e:
        raise VideoReadError(path, _last_line(e)) from e
    width, height = meta["source_size"]
    return int(height), int(width)


def probe_video(path: PathLike) -> dict:
    """Frame count, frame rate and size of a video: `dict(frames=int, fps=float, width=int, height=int)`.

    Counting decodes the whole file once, which also proves that it is readable.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise VideoReadError(path, "file not found")
    try:
        gen = imageio_ffmpeg.read_frames(path, output_params=["-fps_mode", "passthrough"])
        try:
            meta = next(gen)
        finally:
            gen.close()
        frames, _secs = imageio_ffmpeg.count_frames_and_secs(path)
    except (OSError, RuntimeError, ValueError, IndexError, AttributeError, StopIteration) as e:
        raise VideoReadError(path, _last_line(e)) from e
    if not frames:
        raise VideoReadError(path, "contains no decodable video frames")
    width, height = meta["source_size"]
    return dict(frames=int(frames), fps=float(meta.get("fps") or 0.0), width=int(width), height=int(height),
                declared_frames=declared_frames(path, meta))


# ffmpeg's words for a file with no decodable video in it (truncated, empty or not a video at all)
_NO_VIDEO = ("moov atom not found", "Invalid data found when processing input", "does not contain any stream",
             "Could not open encoder before EOF", "received no packets", "Conversion failed")


def _last_line(e: BaseException) -> str:
    """The reason ffmpeg gave, in words: its last line, or 'truncated or not a video' for the usual cases."""
    text = str(e)
    hits = [w for w in _NO_VIDEO if w in text]
    if hits:
        return f"no decodable video in it: the file is truncated, empty or not a video (ffmpeg: {hits[0]})"
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    return lines[-1] if lines else type(e).__name__


# ----------------------------------------------------------------------------------------------------------
# Writing


def _write_beside(path: Path, suffix: str, write) -> None:
    """write(tmp) into a temp file beside `path`, then publish it as `path`; the temp file never outlives the call."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with temp_file_beside(path, f".{path.name}.", f".tmp{suffix}") as (fd, tmp):
        os.close(fd)
        write(Path(tmp))
        publish(Path(tmp), path)


class Mp4Writer:
    """Incremental H.264 mp4 writer with constant memory: `with Mp4Writer(p, 16) as w: w.write(chunk)`.

    Frames are uint8 `[t, H, W, 3]` chunks (all the same size); odd sizes are padded by one replicated
    row/column. The file appears under its final name only when the writer closes without an error.
    """

    def __init__(self,
                 path: PathLike,      # output .mp4
                 fps: float,          # frame rate stored in the container
                 crf: int = 18,       # x264 constant rate factor: 0 lossless, 18 visually clean, 51 worst
                 watermark: "Optional[Watermarker]" = None):  # mark every frame (None: unmarked)
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.fps = fps
        self.crf = int(crf)
        self.watermark = watermark
        self.frames_written = 0
        self._size = None             # (H, W) of the first chunk, before padding
        self._gen = None              # imageio-ffmpeg writer generator, opened on the first chunk
        self._tmp: Optional[Path] = None
        self._temp = contextlib.ExitStack()   # owns the temp file: closing it removes the file unless published
        self._closed = False

    def _open(self, height: int, width: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with held_signals():                                  # owned by self._temp before a stop signal acts
            fd, tmp = self._temp.enter_context(temp_file_beside(self.path, f".{self.path.name}.", ".tmp.mp4"))
        os.close(fd)
        self._tmp = Path(tmp)
        padded = (width + width % 2, height + height % 2)     # (W, H) as ffmpeg wants it
        self._gen = imageio_ffmpeg.write_frames(
            str(self._tmp), padded, fps=Fraction(self.fps).limit_denominator(1001),
            codec="libx264", pix_fmt_out="yuv420p", quality=None,
            macro_block_size=1,                               # we pad ourselves; never rescale
            ffmpeg_log_level="error",
            output_params=["-crf", str(self.crf), "-movflags", "+faststart", "-f", "mp4"])
        self._gen.send(None)

    def write(self, frames) -> None:
        if self._closed:
            raise ValueError(f"Mp4Writer for {self.path} is already closed")
        frames = _check_frames(frames)                        # [t, H, W, 3]
        if self._size is None:
            self._size = frames.shape[1:3]
            self._open(*self._size)
        elif frames.shape[1:3] != self._size:
            raise ValueError(f"all frames of {self.path} must have size {self._size}, got {frames.shape[1:3]}")
        for frame in _pad_even(_mark(frames, self.watermark)):
            self._gen.send(np.ascontiguousarray(frame))
        self.frames_written += len(frames)

    def close(self) -> None:
        """Finish encoding and move the file into place (a second call does nothing)."""
        if self._closed:
            return
        self._closed = True
        if self._gen is None:
            raise ValueError(f"no frames were written to {self.path}; an mp4 needs at least one frame")
        gen, self._gen = self._gen, None
        with self._temp:                                      # the temp file goes unless published
            gen.close()                                       # waits for ffmpeg to finish
            if not self._tmp.is_file() or self._tmp.stat().st_size == 0:
                raise RuntimeError(f"ffmpeg failed to write {self.path} (see its messages above)")
            publish(self._tmp, self.path)

    def abort(self) -> None:
        """Stop ffmpeg and delete the partial file."""
        self._closed = True
        if self._gen is not None:
            gen, self._gen = self._gen, None
            gen.close()
        self._temp.close()

    def __enter__(self) -> "Mp4Writer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class RawWriter:
    """Raw rgb24 frames to a binary stream, e.g. `RawWriter(sys.stdout.buffer)` piped into
    `ffmpeg -f rawvideo -pix_fmt rgb24 -s WxH -r FPS -i - out.mp4`. Same `write` interface as Mp4Writer."""

    def __init__(self,
                 fileobj: BinaryIO,   # binary stream; it is flushed, never closed, by this writer
                 watermark: "Optional[Watermarker]" = None):  # mark every frame (None: unmarked)
        self.fileobj = fileobj
        self.watermark = watermark
        self.frames_written = 0
        self._size = None

    def write(self, frames) -> None:
        frames = _check_frames(frames)                        # [t, H, W, 3]
        if self._size is None:
            self._size = frames.shape[1:3]
        elif frames.shape[1:3] != self._size:
            raise ValueError(f"raw stream frames must all have size {self._size}, got {frames.shape[1:3]}")
        self.fileobj.write(np.ascontiguousarray(_mark(frames, self.watermark)).tobytes())
        self.frames_written += len(frames)

    def close(self) -> None:
        self.fileobj.flush()

    def __enter__(self) -> "RawWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()


def write_mp4(path: PathLike, frames, fps: float, crf: int = 18, watermark: "Optional[Watermarker]" = None) -> None:
    """Write uint8 `[T, H, W, 3]` as H.264/yuv420p mp4 (odd sizes padded to even), atomically."""
    with Mp4Writer(path, fps, crf=crf, watermark=watermark) as writer:
        writer.write(frames)


def encode_gif(frames, fps: float, watermark: "Optional[Watermarker]" = None) -> bytes:
    """uint8 `[T, H, W, 3]` -> the bytes of a looping GIF (Pillow). GIF delays are in 10 ms steps.

    Pillow merges identical consecutive frames (their delays add up, so playback timing is unchanged).
    """
    frames = _check_frames(frames)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    images = [Image.fromarray(f) for f in _mark(frames, watermark)]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=max(10, round(1000.0 / fps)), loop=0, disposal=1)
    return buf.getvalue()


def write_gif(path: PathLike, frames, fps: float, watermark: "Optional[Watermarker]" = None) -> None:
    """Write uint8 `[T, H, W, 3]` as a looping GIF (`encode_gif`), atomically."""
    data = encode_gif(frames, fps, watermark)
    _write_beside(Path(path), ".gif", lambda tmp: tmp.write_bytes(data))


def write_png_frames(directory: PathLike, frames, watermark: "Optional[Watermarker]" = None) -> List[Path]:
    """Write uint8 `[T, H, W, 3]` as `directory/frame_000000.png`, ... Returns the file paths."""
    frames = _mark(_check_frames(frames), watermark)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, frame in enumerate(frames):
        p = directory / f"frame_{k:06d}.png"
        _write_beside(p, ".png", lambda tmp: Image.fromarray(frame).save(tmp, format="PNG"))
        paths.append(p)
    return paths


def write_video(path: PathLike, frames, fps: float, watermark: "Optional[Watermarker]" = None) -> None:
    """Write uint8 `[T, H, W, 3]`, choosing the format from the extension (.mp4 or .gif)."""
    ext = Path(path).suffix.lower()
    if ext == ".mp4":
        write_mp4(path, frames, fps, watermark=watermark)
    elif ext == ".gif":
        write_gif(path, frames, fps, watermark=watermark)
    else:
        raise ValueError(f"cannot write video {path}: unsupported extension '{ext}' (use .mp4 or .gif)")


# ----------------------------------------------------------------------------------------------------------
# Grids


def make_grid(videos, nrow: Optional[int] = None, sep: int = 2, sep_value: int = 255) -> np.ndarray:
    """Tile N videos into one video: uint8 `[N, T, H, W, 3]` -> uint8 `[T, H', W', 3]`.

    `nrow` is the number of videos per row (default: ceil(sqrt(N))); tiles are separated by `sep` pixels of
    grey level `sep_value`, empty cells are black. A float torch tensor `[N, T, C, H, W]` in [-1, 1] is
    converted with `to_uint8` first.
    """
    if torch.is_tensor(videos) and videos.is_floating_point():
        videos = to_uint8(videos)
    videos = np.asarray(videos)
    if videos.ndim != 5 or videos.shape[-1] != 3 or videos.dtype != np.uint8:
        raise ValueError(f"make_grid expects uint8 [N, T, H, W, 3], got {videos.dtype} {videos.shape}")
    n, t, h, w, _ = videos.shape
    cols = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / cols))
    grid = np.full((t, rows * h + (rows - 1) * sep, cols * w + (cols - 1) * sep, 3), sep_value, np.uint8)
    for cell in range(rows * cols):
        r, c = divmod(cell, cols)
        y, x = r * (h + sep), c * (w + sep)
        grid[:, y:y + h, x:x + w] = videos[cell] if cell < n else 0
    return grid
