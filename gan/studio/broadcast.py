"""One shared JPEG stream per distinct picture: a render thread, a pacer, and every viewer watching it.

A `Stream` owns a source (what to draw: the player room's `Scene`) and renders it on its own thread, a chunk
of frames at a time, JPEG-encoding each frame once; a pacer task on the server's event loop hands the frames
out at the source's frame rate to every `Viewer` subscribed, so N browser tabs cost one render. Back-pressure:
the thread renders at most `ahead` frames beyond the one on screen. A change to the source (`Stream.change`)
bumps the stream's version and drops every frame rendered before it, so the next frame shown is the new one.

Wire format of a frame (one binary WebSocket message): a 20-byte little-endian header (stream id u32,
version u32, time f64 in data frames, frame index u32) followed by the JPEG.
"""
from __future__ import annotations

import asyncio
import collections
import io
import itertools
import json
import struct
import threading
from dataclasses import dataclass, field
from typing import Callable, Deque, List, Optional, Protocol

import numpy as np

HEADER = struct.Struct("<IIdI")
_ids = itertools.count(1)
_versions = itertools.count(1)        # one counter for all streams: a version names one picture state


def encode_jpeg(frame: np.ndarray, quality: int = 90) -> bytes:
    """uint8 [H, W, 3] -> JPEG bytes (Pillow, libjpeg-turbo where the wheel has it)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@dataclass
class Frame:
    rgb: np.ndarray                   # uint8 [H, W, 3], what was rendered (recordings take this, not the JPEG)
    t: float                          # time of the frame in data frames
    stream: int
    version: int
    index: int = 0                    # running number within the stream, set when shown
    jpeg: bytes = b""

    def packet(self) -> bytes:
        return HEADER.pack(self.stream, self.version, self.t, self.index) + self.jpeg


class Plan(Protocol):
    def render(self) -> List[tuple]:
        """The planned frames: [(uint8 [H, W, 3], time)], rendered without the stream's lock held."""


class Source(Protocol):
    fps: float

    def plan(self) -> Optional[Plan]:
        """The next chunk to render (None: nothing new, e.g. paused); called with the stream's lock held."""

    def shown(self, t: float) -> None:
        """The frame at time t went out: the clock that a change continues from."""

    def restart(self) -> None:
        """A change happened: plan again from the last frame shown."""


class Viewer:
    """One WebSocket watching a stream: frames (a short queue, the oldest dropped when full) and text messages
    (never dropped), sent by one task so that nothing interleaves. `taps` see every frame offered (recording)."""

    def __init__(self, send_bytes: Callable, send_text: Callable, max_frames: int = 3):
        self._send_bytes, self._send_text = send_bytes, send_text
        self._frames: Deque[Frame] = collections.deque(maxlen=max_frames)
        self._messages: Deque[str] = collections.deque()
        self._wake = asyncio.Event()
        self.taps: List[Callable[[Frame], None]] = []
        self.sent = 0

    def offer(self, frame: Frame) -> None:
        self._frames.append(frame)
        for tap in list(self.taps):
            tap(frame)
        self._wake.set()

    def message(self, obj: dict) -> None:
        self._messages.append(json.dumps(obj))
        self._wake.set()

    def flush(self) -> None:
        """Drop the frames not sent yet (a change made them stale)."""
        self._frames.clear()

    async def run(self) -> None:
        """Send until the socket closes (the caller cancels the task or the send raises)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._messages or self._frames:
                if self._messages:
                    await self._send_text(self._messages.popleft())
                elif self._frames:
                    await self._send_bytes(self._frames.popleft().packet())
                    self.sent += 1


@dataclass
class _State:
    buffer: Deque[Frame] = field(default_factory=collections.deque)
    running: bool = True
    rendering: bool = False


class Stream:
    """A source rendered on one thread and shown at its fps to every subscribed Viewer."""

    def __init__(self,
                 source: Source,
                 loop: asyncio.AbstractEventLoop,  # the server's loop: the pacer runs there
                 ahead: int = 4,                  # frames rendered beyond the one on screen (>= the source's chunk)
                 quality: int = 90,               # JPEG quality
                 on_error: Optional[Callable[["Stream", BaseException], None]] = None):
        self.id, self.source, self.loop, self.ahead, self.quality = next(_ids), source, loop, int(ahead), quality
        self.version = next(_versions)
        self.viewers: List[Viewer] = []
        self.rendered = 0                 # frames rendered (a test reads it: N viewers, one render)
        self.shown = 0                    # frames handed to the viewers
        self.on_error = on_error
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._state = _State()
        self._ready = asyncio.Event()
        self._thread = threading.Thread(target=self._render_loop, name=f"studio-stream-{self.id}", daemon=True)
        self._pacer: Optional[asyncio.Task] = None

    # ---- lifecycle, viewers ------------------------------------------------------------------------------------
    def start(self) -> "Stream":
        self._thread.start()
        self._pacer = self.loop.create_task(self._pace())
        return self

    def close(self, join: float = 10.0) -> None:
        """Stop the thread (after the chunk it is rendering) and the pacer."""
        with self._cond:
            self._state.running = False
            self._cond.notify_all()
        if self._pacer is not None:
            self._pacer.cancel()
        if threading.current_thread() is not self._thread:
            self._thread.join(join)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def closed(self) -> bool:
        return not self._state.running

    def join(self, timeout: float = 10.0) -> None:
        self._thread.join(timeout)

    def subscribe(self, viewer: Viewer) -> None:
        self.viewers.append(viewer)

    def unsubscribe(self, viewer: Viewer) -> int:
        """Remove `viewer`; returns how many still watch."""
        if viewer in self.viewers:
            self.viewers.remove(viewer)
        return len(self.viewers)

    def change(self, fn: Callable[[Source], None]) -> int:
        """Apply fn(source) under the lock, drop every frame rendered before it; returns the new version."""
        with self._cond:
            fn(self.source)
            self.version = next(_versions)
            self._state.buffer.clear()
            self.source.restart()
            self._cond.notify_all()
        for v in self.viewers:
            v.flush()
        self._wake_pacer()
        return self.version

    def read(self, fn: Callable[[Source], object]):
        """fn(source) under the lock (a consistent snapshot of the source's state)."""
        with self._lock:
            return fn(self.source)

    def broadcast(self, obj: dict) -> None:
        for v in self.viewers:
            v.message(obj)

    # ---- the render thread ---------------------------------------------------------------------------------------
    def _render_loop(self) -> None:
        st = self._state
        while True:
            with self._cond:
                plan = None
                while st.running:
                    if len(st.buffer) < self.ahead:
                        plan = self.source.plan()
                        if plan is not None:
                            break
                    self._cond.wait(0.5)
                if not st.running:
                    return
                version = self.version
                st.rendering = True
            try:
                frames = [Frame(rgb, float(t), self.id, version, jpeg=encode_jpeg(rgb, self.quality))
                          for rgb, t in plan.render()]
            except Exception as e:                              # noqa: BLE001: shown on the page, stream paused
                with self._cond:
                    st.rendering = False
                self.loop.call_soon_threadsafe(self._failed, e)
                with self._cond:                               # wait for the next change before trying again
                    while st.running and self.version == version:
                        self._cond.wait(0.5)
                continue
            with self._cond:
                st.rendering = False
                if version == self.version and st.running:
                    st.buffer.extend(frames)
                    self.rendered += len(frames)
            self._wake_pacer()

    def _failed(self, e: BaseException) -> None:
        if self.on_error is not None:
            self.on_error(self, e)
        else:
            self.broadcast({"type": "error", "message": str(e)})

    def _wake_pacer(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self._ready.set)
        except RuntimeError:                                      # the loop is closed: shutting down
            pass

    # ---- the pacer (event loop) ---------------------------------------------------------------------------------
    async def _pace(self) -> None:
        due: Optional[float] = None
        while self._state.running:
            if due is not None:
                delay = due - self.loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            self._ready.clear()
            with self._cond:
                frame = self._state.buffer.popleft() if self._state.buffer else None
                if frame is not None:
                    self._cond.notify_all()                       # room for the render thread
                    if frame.version == self.version:
                        self.source.shown(frame.t)
                period = 1.0 / max(self.source.fps, 1e-3)
            if frame is None:
                await self._ready.wait()                          # late: show the next frame as soon as it exists
                due = None
                continue
            frame.index = self.shown
            self.shown += 1
            for v in list(self.viewers):
                v.offer(frame)
            now = self.loop.time()
            due = now + period if due is None or now - due > period else due + period
