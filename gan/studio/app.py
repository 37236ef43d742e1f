"""The studio's web app: rooms (the player; a training room later) on one small ASGI app, served by uvicorn.

Starlette + uvicorn, not gradio: both sustain 60 frames/s of 64-128 px JPEGs in headless Chromium, but gradio
costs several times the CPU per frame, which on a 2-core laptop is taken from the generator (bench/
studio_framework.py, BENCHMARKS.md "Studio"). Everything the page needs is served from gan/studio/static
(hand-written JS and CSS, no CDN), so the studio works offline.

A room is any object with `name`, `title`, `routes()` (its pages, sockets and files under /<name>),
`async startup()` and `async shutdown()`; the first room's page is also served at /. Every request passes
guard.py's checks first (Host, Origin, the per-launch token).
"""
from __future__ import annotations

import contextlib
import errno
import signal
import socket
from pathlib import Path
from typing import Callable, List, Optional, Protocol

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gan.studio.guard import Access, Guard
from gan.studio.playback import StudioError

STATIC = Path(__file__).resolve().parent / "static"
WS_MAX_MESSAGE = 64 * 1024


class Static(StaticFiles):
    """The shared static files, marked usable by a cross-origin isolated page (the in-browser player's WASM
    threads start workers from these scripts, and a worker without COEP is refused shared memory)."""

    def file_response(self, *args, **kwargs) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update({"Cross-Origin-Embedder-Policy": "require-corp",
                                 "Cross-Origin-Resource-Policy": "same-origin"})
        return response


class Room(Protocol):
    name: str
    title: str

    def routes(self) -> list: ...

    async def startup(self) -> None: ...

    async def shutdown(self) -> None: ...


def build_app(rooms: List[Room], access: Access) -> Starlette:
    """One app serving every room, the shared static files, and / -> the first room, behind `access`'s guard."""
    if not rooms:
        raise StudioError("the studio needs at least one room")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        for room in rooms:
            await room.startup()
        try:
            yield
        finally:
            for room in rooms:
                await room.shutdown()

    async def home(request):
        query = request.url.query                        # keeps ?token=... for the room's page
        return RedirectResponse(f"/{rooms[0].name}" + (f"?{query}" if query else ""))

    async def no_icon(request):
        return Response(status_code=204)

    routes = [Route("/", home), Route("/favicon.ico", no_icon),
              Mount("/static", app=Static(directory=STATIC), name="static")]
    for room in rooms:
        routes += room.routes()
    return Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(Guard, access=access)])


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or one clear error (in use, not allowed)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise StudioError(f"port {port} is in use (another studio or server?): choose another with --port")
        if e.errno == errno.EACCES:
            raise StudioError(f"port {port} needs privileges here: choose one above 1023 with --port")
        raise StudioError(f"cannot listen on {host}:{port}: {e.strerror}: check --host and --port")
    return sock


def serve(app: Starlette, sock: socket.socket, on_ready: Optional[Callable[[], None]] = None) -> None:
    """Serve `app` on `sock` until SIGINT/SIGTERM; returns normally (exit status 0) after a clean shutdown:
    open sockets closed, rooms shut down (their threads joined)."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets)
            if on_ready is not None and not self.should_exit:
                on_ready()

    # ws_max_size: a control is a few hundred bytes; a larger message is refused before it is buffered.
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3, ws_ping_interval=None,
                            lifespan="on", ws_max_size=WS_MAX_MESSAGE)
    server = Server(config)
    # uvicorn re-raises the signal that stopped it once it is done, with the handlers found at start: make those
    # no-ops, so Ctrl-C / SIGTERM end the command with status 0 and no KeyboardInterrupt traceback.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    if server.started is False and not server.should_exit:
        raise StudioError("the studio's server did not start (see the messages above)")
