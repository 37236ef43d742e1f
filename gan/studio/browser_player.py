"""The in-browser player: an exported G.onnx runs in the page itself (onnxruntime-web, WebAssembly), so the
laptop's browser renders and steers the model and no Python process renders frames.

The room serves the page (static/browser/), the .onnx file and the sizes its JS needs to build the graph's
inputs (gan/onnx_export.py: z, psi, codes, anchor_offset, t). The runtime is vendored under
static/browser/ort/ (onnxruntime-web, WASM build only; MANIFEST has its version and SHA-256), so it works
offline. The page is served cross-origin isolated (COOP + COEP), which lets the runtime use WebAssembly
threads (SharedArrayBuffer). Frames shown in the page carry no watermark: nothing is written to a file here.
"""
from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from gan.config import Config
from gan.onnx_export import read_metadata
from gan.studio.playback import StudioError

STATIC = Path(__file__).resolve().parent / "static"
ISOLATED = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}


def model_info(path) -> dict:
    """What the page needs to feed G.onnx: latent sizes, the motion anchors' period, fps, resolution."""
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise StudioError(f"--in-browser plays an exported ONNX generator, not {path.name}: export one with "
                          f"reelgan-export CKPT G.onnx --format onnx")
    meta = read_metadata(path)                          # one line for a file that is not a reelgan export
    cfg = Config.from_dict(meta["config"])
    return {"name": path.name, "z_dim": int(cfg.G.z_dim), "motion_dim": int(cfg.G.motion_dim),
            "motion_period": float(cfg.G.motion_period), "fps": float(cfg.data.fps),
            "resolution": int(cfg.data.resolution), "step": meta.get("step"), "bytes": path.stat().st_size}


class BrowserRoom:
    """reelgan-studio --checkpoint G.onnx --in-browser: /browser (page), /browser/model.onnx, /browser/info."""

    name, title = "browser", "in-browser player"

    def __init__(self, path, settings: dict):
        self.path = Path(path)
        self.info = {**model_info(self.path), **settings}

    def routes(self) -> list:
        return [Route("/browser", self.page), Route("/browser/model.onnx", self.model),
                Route("/browser/info", self.describe)]

    async def page(self, request: Request) -> Response:
        return HTMLResponse((STATIC / "browser" / "player.html").read_text(), headers=ISOLATED)

    async def model(self, request: Request) -> Response:
        return FileResponse(self.path, media_type="application/octet-stream", headers=ISOLATED)

    async def describe(self, request: Request) -> Response:
        return JSONResponse(self.info, headers=ISOLATED)

    async def startup(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass
