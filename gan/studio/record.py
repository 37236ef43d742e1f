"""The record button: the frames a viewer is shown, from start to stop, into a watermarked mp4.

Frames are written on a thread of their own through gan.video_io.Mp4Writer (the writer generate.py uses:
H.264, the model's invisible mark, a temp file renamed into place when done). The name is reserved before
the first frame, so a recording never replaces a file, the user's or another recording's.
"""
from __future__ import annotations

import os
import queue
import re
import threading
import time
from pathlib import Path
from typing import Optional

import numpy as np

from gan.video_io import Mp4Writer

NAME = re.compile(r"^studio_[A-Za-z0-9_.-]+\.mp4$")
MAX_FRAMES = 30 * 60 * 10          # ten minutes at 30 frames/s: a forgotten button stops itself


def reserve(outdir: Path, stem: str) -> Path:
    """A new file outdir/stem.mp4 (stem-1.mp4, -2, ... if taken), created empty so no one else takes it."""
    outdir.mkdir(parents=True, exist_ok=True)
    for i in range(10_000):
        path = outdir / (f"{stem}.mp4" if i == 0 else f"{stem}-{i}.mp4")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        os.close(fd)
        return path
    raise FileExistsError(f"no free name for {stem}.mp4 in {outdir}")


class Recorder:
    """add(frame) from the server's loop (never blocks), finish() once: the path of the finished mp4."""

    def __init__(self, outdir: Path, stem: str, fps: float, watermark=None, max_frames: int = MAX_FRAMES):
        self.path = reserve(Path(outdir), stem)
        self.fps, self.max_frames = float(fps), int(max_frames)
        self.frames = 0
        self.error: Optional[str] = None
        self._writer = Mp4Writer(self.path, self.fps, watermark=watermark)
        self._queue: "queue.Queue[Optional[np.ndarray]]" = queue.Queue()
        self._size = None
        self._done = False
        self._thread = threading.Thread(target=self._write_loop, name="studio-record", daemon=True)
        self._thread.start()

    @property
    def full(self) -> bool:
        return self.frames >= self.max_frames

    def add(self, frame) -> None:
        """A shown frame (broadcast.Frame or uint8 [H, W, 3])."""
        if self._done or self.full:
            return
        rgb = getattr(frame, "rgb", frame)
        if self._size is None:
            self._size = rgb.shape[:2]
        elif rgb.shape[:2] != self._size:                   # a preview size changed mid-recording: keep one size
            from PIL import Image
            rgb = np.asarray(Image.fromarray(rgb).resize(self._size[::-1], Image.BILINEAR))
        self.frames += 1
        self._queue.put(rgb)

    def _write_loop(self) -> None:
        while True:
            rgb = self._queue.get()
            if rgb is None:
                return
            if self.error is None:
                try:
                    self._writer.write(rgb[None])
                except Exception as e:                      # noqa: BLE001: reported by finish()
                    self.error = f"{type(e).__name__}: {e}"

    def finish(self, timeout: float = 120.0) -> Path:
        """Write what was added and publish the file (blocking: call it off the event loop)."""
        self._done = True
        self._queue.put(None)
        self._thread.join(timeout)
        try:
            if self.error is not None:
                raise OSError(f"recording {self.path.name} failed: {self.error}")
            if self.frames == 0:
                raise ValueError("nothing was recorded: no frame was shown between start and stop")
            self._writer.close()                            # temp file -> the reserved name (atomic)
        except BaseException:
            self._writer.abort()
            self.path.unlink(missing_ok=True)               # the empty placeholder we made
            raise
        return self.path


def stem_for(seed: int) -> str:
    return time.strftime(f"studio_seed{seed}_%Y%m%d-%H%M%S")
