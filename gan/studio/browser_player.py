"""The in-browser player: an exported G.onnx runs in the page itself (onnxruntime-web, WebAssembly), so the
laptop's browser renders and steers the model and no Python process renders frames.

The room serves the page (static/browser/), the .onnx file and the sizes its JS needs to build the graph's
inputs (gan/onnx_export.py: z, psi, codes, anchor_offset, t). Where `reelgan-export --split` wrote the per-video and
per-frame halves beside G.onnx, it serves those too and the page runs the per-video half once per seed and
truncation, then only the per-frame half for each chunk. The runtime is vendored under
static/browser/ort/ (onnxruntime-web, WASM build only; MANIFEST has its version and SHA-256), so it works
offline. The page is served cross-origin isolated (COOP + COEP), which lets the runtime use WebAssembly
threads (SharedArrayBuffer). Frames shown in the page carry no watermark: nothing is written to a file here.

Backends: 'wasm' (the vendored build), 'webgpu' (onnxruntime-web's WebGPU build, fetched once from the npm registry
by gan/studio/ort_web.py and served from the cache; the page falls back to WebAssembly, and says so, when the browser
has no WebGPU adapter), 'auto' (WebGPU where the build is cached and the browser has an adapter, else WebAssembly).
"""
from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from gan.config import Config
from gan.onnx_export import read_metadata, split_pair
from gan.studio import ort_web
from gan.studio.playback import StudioError

STATIC = Path(__file__).resolve().parent / "static"
ISOLATED = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}
BACKENDS = ("auto", "wasm", "webgpu")


def model_info(path) -> dict:
    """What the page needs to feed G.onnx: latent sizes, the motion anchors' period, fps, resolution."""
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise StudioError(f"--in-browser plays an exported ONNX generator, not {path.name}: export one with "
                          f"reelgan-export CKPT G.onnx --format onnx")
    meta = read_metadata(path)                          # one line for a file that is not a reelgan export
    cfg = Config.from_dict(meta["config"])
    return {"name": path.name, "split": split_pair(path, meta) is not None,
            "z_dim": int(cfg.G.z_dim), "motion_dim": int(cfg.G.motion_dim),
            "motion_period": float(cfg.G.motion_period), "fps": float(cfg.data.fps),
            "resolution": int(cfg.data.resolution), "step": meta.get("step"), "bytes": path.stat().st_size}


class BrowserRoom:
    """reelgan-studio --checkpoint G.onnx --in-browser: /browser (page), /browser/model.onnx, /browser/info."""

    name, title = "browser", "in-browser player"

    def __init__(self, path, settings: dict, backend: str = "auto", say=None):
        """backend: 'webgpu' fetches the WebGPU build if it is not cached (`say` gets the progress lines);
        'auto' uses it only if it is cached."""
        if backend not in BACKENDS:
            raise StudioError(f"unknown backend {backend!r}: choose from {', '.join(BACKENDS)}")
        self.path = Path(path)
        try:
            self.webgpu = ort_web.fetch_build(say) if backend == "webgpu" else (
                ort_web.cached_build() if backend == "auto" else None)
        except ort_web.OrtWebError as e:
            raise StudioError(str(e)) from None
        self.info = {**model_info(self.path), **settings, "backend": backend,
                     "webgpu_build": f"/browser/ort-webgpu/{ort_web.ENTRY}" if self.webgpu else None}

    def routes(self) -> list:
        return [Route("/browser", self.page), Route("/browser/model.onnx", self.model),
                Route("/browser/model.{part}.onnx", self.half),
                Route("/browser/info", self.describe), Route("/browser/ort-webgpu/{name}", self.runtime)]

    async def page(self, request: Request) -> Response:
        return HTMLResponse((STATIC / "browser" / "player.html").read_text(), headers=ISOLATED)

    async def model(self, request: Request) -> Response:
        return FileResponse(self.path, media_type="application/octet-stream", headers=ISOLATED)

    async def half(self, request: Request) -> Response:
        """G.video.onnx / G.frames.onnx (checked again: the files may have changed since the start)."""
        pair = split_pair(self.path, read_metadata(self.path))
        part = request.path_params["part"]
        if pair is None or part not in ("video", "frames"):
            return Response("not found", status_code=404)
        return FileResponse(pair[part == "frames"], media_type="application/octet-stream", headers=ISOLATED)

    async def runtime(self, request: Request) -> Response:
        """The cached WebGPU build's files (only those: the name is checked against the pinned list)."""
        name = request.path_params["name"]
        if self.webgpu is None or name not in ort_web.FILES:
            return Response("not found", status_code=404)
        return FileResponse(self.webgpu / name, media_type=ort_web.media_type(name),
                            headers={**ISOLATED, "Cross-Origin-Resource-Policy": "same-origin"})

    async def describe(self, request: Request) -> Response:
        return JSONResponse(self.info, headers=ISOLATED)

    async def startup(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass
