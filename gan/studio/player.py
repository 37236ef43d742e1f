"""The player room: a checkpoint played live, steered from the page, recorded on demand.

Each tab is a `Session` (a broadcast.Viewer and its settings). Tabs with equal settings watch one stream
(one render for all of them). A control from a tab changes its stream in place when the tab watches alone,
and otherwise moves the tab to the stream of its new settings (made from the old one's clock if none exists),
so one tab's seed never changes another's picture; a scrub moves the clock of everyone on that stream.

WebSocket messages from the page (JSON), each answered by {"type": "applied", "id", "stream", "version"} or
{"type": "error", "id", "message"}:
  {"type": "set", "id": n, <any of Settings' fields>: value}
  {"type": "scrub", "id": n, "seconds": s}                 jump to time s (seconds of the training data)
  {"type": "interpolate", "id": n, "seed": b, "seconds": d} glide from the current seed to b over d seconds
  {"type": "record", "id": n, "on": true | false}           -> {"type": "recorded", "url", "name", "frames"}
The server also sends {"type": "hello"} (the model's controls, the tab's settings), {"type": "status"}
(compiling, the stream's time) and frames (broadcast.py's binary format). guard.py has checked the socket's Host,
Origin and token before it is accepted; a message that is binary, not a JSON object, or carries a number that is
huge or not finite gets one error line, and the socket goes on.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Dict, List, Optional

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from gan.errors import ReelganError, one_line
from gan.studio.broadcast import Stream, Viewer
from gan.studio.record import NAME, Recorder, stem_for
from gan.studio.playback import LIMITS, Model, Scene, Settings, StudioError, in_range, show

STATIC = Path(__file__).resolve().parent / "static"
MAX_UPLOAD = 16 * 1024 * 1024


def reject_constant(name: str):
    raise ValueError(f"{name} is not a number here")


def parse_control(text: Optional[str]):
    """A WebSocket text message -> the control (a dict with a sane id), or the one-line error (a str)."""
    if text is None:
        return "a control is a JSON text message, not a binary one"
    try:
        msg = json.loads(text, parse_constant=reject_constant)     # NaN / Infinity are not JSON numbers: refused
    except (ValueError, RecursionError):
        msg = None
    if not isinstance(msg, dict):
        return "a control is a JSON object with finite numbers, e.g. {\"type\": \"set\", \"seed\": 3}"
    mid = msg.get("id")
    if not (mid is None or (isinstance(mid, int) and not isinstance(mid, bool) and abs(mid) < 2 ** 53)):
        return f"a control's id must be a whole number, got {show(mid)}"
    return msg


async def read_body(request: Request, limit: int) -> Optional[bytearray]:
    """The request's body, or None once it passes `limit` bytes (what was read is dropped)."""
    try:
        if int(request.headers.get("content-length", 0)) > limit:
            return None
    except ValueError:
        pass
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            return None
    return body


class Session:
    def __init__(self, viewer: Viewer, settings: Settings):
        self.viewer, self.settings = viewer, settings
        self.stream: Optional[Stream] = None
        self.recorder: Optional[Recorder] = None


class PlayerRoom:
    name, title = "player", "reelgan studio: player"

    def __init__(self,
                 model: Model,
                 outdir: Path,                      # recordings go here
                 defaults: Optional[Settings] = None,  # a new tab's settings (None: the model's)
                 ahead: int = 0,                    # frames rendered ahead (0: two chunks)
                 quality: int = 90):                # JPEG quality of the stream
        self.model, self.outdir = model, Path(outdir)
        self.defaults = defaults or model.defaults()
        self.ahead = ahead or 2 * model.chunk
        self.quality = quality
        self.streams: Dict[Settings, Stream] = {}
        self._closing: List[Stream] = []                   # streams stopped, threads finishing their chunk
        self.sessions: List[Session] = []
        self.recordings: Dict[str, Path] = {}
        self.loop: Optional[asyncio.AbstractEventLoop] = None

    # ---- the room's part of the app ------------------------------------------------------------------------------
    def routes(self) -> list:
        return [Route("/player", self.page), WebSocketRoute("/player/ws", self.websocket),
                Route("/player/still", self.upload, methods=["POST"]),
                Route("/player/recordings/{name}", self.download)]

    async def page(self, request: Request) -> Response:
        return HTMLResponse((STATIC / "player.html").read_text())

    async def startup(self) -> None:
        self.loop = asyncio.get_running_loop()

    async def shutdown(self) -> None:
        """Stop every stream (threads joined) and finish recordings in progress: what was recorded is kept."""
        for s in list(self.sessions):
            await self._stop_recording(s, announce=False)
        for stream in list(self.streams.values()):
            stream.close(join=0)
        for stream in list(self.streams.values()) + self._closing:
            stream.join()                                  # no render thread outlives the server
        self.streams.clear()

    # ---- streams ------------------------------------------------------------------------------------------------
    def _stream_for(self, settings: Settings, t: float = 0.0) -> Stream:
        stream = self.streams.get(settings)
        if stream is None:
            stream = Stream(Scene(self.model, settings, t), self.loop, self.ahead, self.quality,
                            on_error=self._render_failed).start()
            self.streams[settings] = stream
        return stream

    def _join(self, session: Session, stream: Stream) -> None:
        old = session.stream
        if old is stream:
            return
        session.viewer.flush()
        if old is not None and old.unsubscribe(session.viewer) == 0:
            self._drop(old)
        stream.subscribe(session.viewer)
        session.stream = stream

    def _drop(self, stream: Stream) -> None:
        for key, s in list(self.streams.items()):
            if s is stream:
                del self.streams[key]
        stream.close(join=0)                               # never wait on the event loop; the thread ends itself
        self._closing = [s for s in self._closing if s.alive] + [stream]

    def _render_failed(self, stream: Stream, e: BaseException) -> None:
        message = one_line(e) if isinstance(e, ReelganError) else f"rendering failed: {type(e).__name__}: " \
                                                                    f"{one_line(e)}"
        stream.broadcast({"type": "error", "message": message})

    def _rekey(self, stream: Stream, new: Settings) -> None:
        for key, s in list(self.streams.items()):
            if s is stream:
                del self.streams[key]
        self.streams[new] = stream

    def _change(self, session: Session, new: Settings, then=None) -> Stream:
        """Give the session the stream of `new` settings; `then(scene)` (an interpolation) runs on it if the
        session drives it alone or made it."""
        old = session.stream
        elsewhere = self.streams.get(new)
        if elsewhere is not None and elsewhere is not old:
            self._join(session, elsewhere)
        elif len(old.viewers) == 1 or new == old.source.settings:
            def apply(scene):
                scene.update(new)
                if then is not None:
                    then(scene)
            old.change(apply)
            self._rekey(old, new)
        else:
            fresh = self._stream_for(new, old.read(lambda scene: scene.time))
            if then is not None:
                fresh.change(then)
            self._join(session, fresh)
        session.settings = new
        if self.model.will_compile(new):
            session.stream.broadcast({"type": "status", "text": "compiling the renderer: the first frames wait "
                                                                  "for torch.compile (tens of seconds on a CPU)"})
        return session.stream

    # ---- one tab --------------------------------------------------------------------------------------------------
    async def websocket(self, ws: WebSocket) -> None:
        await ws.accept()
        viewer = Viewer(ws.send_bytes, ws.send_text)
        session = Session(viewer, self.defaults)
        self.sessions.append(session)
        sender = asyncio.create_task(viewer.run())
        try:
            self._join(session, self._stream_for(session.settings))
            viewer.message({"type": "hello", "model": self.model.capabilities(), **self._where(session)})
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                msg = parse_control(message.get("text"))
                if isinstance(msg, str):
                    viewer.message({"type": "error", "id": None, "message": msg})
                    continue
                try:
                    reply = await self._handle(session, msg)
                except (ReelganError, ValueError, OSError) as e:
                    reply = {"type": "error", "id": msg.get("id"), "message": one_line(e)}
                except Exception as e:                     # a bug here: one line for the page, the socket lives on
                    reply = {"type": "error", "id": msg.get("id"),
                             "message": f"the studio failed on this control: {type(e).__name__}: {one_line(e)}"}
                viewer.message(reply)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            sender.cancel()
            await self._stop_recording(session, announce=False)
            self.sessions.remove(session)
            if session.stream is not None and session.stream.unsubscribe(viewer) == 0:
                self._drop(session.stream)

    def _where(self, session: Session) -> dict:
        s = session.stream
        return {"stream": s.id, "version": s.version, "settings": session.settings.to_dict(),
                "seconds": s.read(lambda scene: scene.time) / self.model.data_fps}

    async def _handle(self, session: Session, msg: dict) -> dict:
        kind, mid = msg.get("type"), msg.get("id")
        fields = {k: v for k, v in msg.items() if k not in ("type", "id")}
        if kind == "set":
            self._change(session, self.model.validate(session.settings, fields))
        elif kind == "scrub":
            t = in_range("time", fields.get("seconds")) * self.model.data_fps
            if t > self.model.max_time:
                raise StudioError(f"this model plays up to {self.model.max_time / self.model.data_fps:g} s (an "
                                  f"image-to-video model draws its motion from 0 to the time shown at once)")
            session.stream.change(lambda scene: scene.jump(t))
        elif kind == "interpolate":
            seconds = in_range("duration", fields.get("seconds", 2.0))
            if not self.model.capabilities()["interpolate"]:
                raise StudioError("this model does not interpolate between seeds")
            start = session.settings.seed
            new = self.model.validate(session.settings, {"seed": fields.get("seed")})
            self._change(session, new, then=lambda scene: scene.interpolate(start, seconds))
        elif kind == "record":
            if not isinstance(fields.get("on"), bool):
                raise StudioError("record: 'on' must be true or false")
            if fields["on"]:
                if session.recorder is None:
                    session.recorder = Recorder(self.outdir, stem_for(session.settings.seed), session.settings.fps,
                                                watermark=self.model.mark)
                    session.viewer.taps.append(session.recorder.add)
            else:
                done = await self._stop_recording(session)
                return {"type": "recorded", "id": mid, **done}
        else:
            raise StudioError(f"unknown message type {show(kind)}: use set, scrub, interpolate or record")
        return {"type": "applied", "id": mid, **self._where(session)}

    async def _stop_recording(self, session: Session, announce: bool = True) -> dict:
        rec, session.recorder = session.recorder, None
        if rec is None:
            if announce:
                raise StudioError("not recording: press record first")
            return {}
        if rec.add in session.viewer.taps:
            session.viewer.taps.remove(rec.add)
        try:
            path = await asyncio.get_running_loop().run_in_executor(None, rec.finish)
        except (ValueError, OSError) as e:
            if announce:
                raise StudioError(one_line(e)) from None
            return {}
        self.recordings[path.name] = path
        return {"name": path.name, "url": f"/player/recordings/{path.name}", "frames": rec.frames,
                "path": str(path)}

    # ---- files ------------------------------------------------------------------------------------------------
    async def upload(self, request: Request) -> Response:
        body = await read_body(request, MAX_UPLOAD)
        if body is None:
            return JSONResponse({"error": f"the image is larger than {MAX_UPLOAD >> 20} MB"}, status_code=413)
        try:
            key = await asyncio.get_running_loop().run_in_executor(None, self.model.add_still, bytes(body))
        except ReelganError as e:
            return JSONResponse({"error": one_line(e)}, status_code=400)
        return JSONResponse({"id": key})

    async def download(self, request: Request) -> Response:
        name = request.path_params["name"]
        path = self.recordings.get(name)
        if not NAME.match(name) or path is None or not path.is_file():
            return JSONResponse({"error": f"no recording named {name!r}"}, status_code=404)
        return FileResponse(path, media_type="video/mp4", filename=name)


__all__ = ["PlayerRoom", "Session", "LIMITS"]
