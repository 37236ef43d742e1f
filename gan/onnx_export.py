"""The unconditional generator as one ONNX graph, for ONNX Runtime (CPU, CUDA, WebAssembly).

Graph (opset OPSET), every axis named below dynamic:
  inputs   z [B, z_dim] float32          content code (gan.sampling.render.seed_z: one per seed)
           psi [] float32                truncation psi (1: off)
           codes [B, K, motion_dim] f32  motion anchor codes k0..k0+K-1 (seed_motion)
           anchor_offset [] int64        k0
           t [B, T] float32              frame times in training-data frames
  output   frames [B, T, C, H, W] float32 in [-1, 1]
It is the renderer's whole chunk call: mapping -> content -> motion embedding -> frames, all in float32
with the modulated convolutions unfused (one static conv on scaled activations, then demodulation: the
form ONNX Runtime's static int8 quantizer can handle). This graph recomputes the per-video work (mapping,
content) in every chunk; `split=True` (reelgan-export --split) also writes its two halves beside it, which
ONNX Runtime sampling (fp32) then uses so that work runs once per clip:
  G.video.onnx   z [B, z_dim], psi []  ->  w, content_x, content_img (the video's latent and content)
  G.frames.onnx  w, content_x, content_img, codes, anchor_offset, t  ->  frames [B, T, C, H, W]
Each carries the same metadata plus 'part' ('video' / 'frames'); a pair from another export is ignored.

metadata_props: 'reelgan' = JSON {kind, format_version, config (the checkpoint's, as plain types), c_dim,
class_names, step, model_id (the watermark's model id, from the weights), opset}. The loader rebuilds the
latents, times and the watermark from it (gan/sampling/onnx_runtime.py).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Dict, Union

import torch
import torch.nn as nn

from gan import checkpoint as ckpt_io
from gan import watermark as wm
from gan.config import Config
from gan.errors import ReelganError
from gan.writes import temp_file_beside
from gan.networks import build_generator
from gan.networks.generator import _base_grid

OPSET = 18
KIND = "reelgan-generator-onnx"
META_KEY = "reelgan"
INPUTS = ("z", "psi", "codes", "anchor_offset", "t")
VIDEO_INPUTS, VIDEO_OUTPUTS = ("z", "psi"), ("w", "content_x", "content_img")
FRAME_INPUTS = ("w", "content_x", "content_img", "codes", "anchor_offset", "t")


class OnnxExportError(ReelganError, RuntimeError):
    pass


def require_onnx():
    """The onnx package, or one line saying how to get it."""
    try:
        import onnx
    except ImportError:
        raise OnnxExportError("ONNX export needs the onnx package: pip install 'reelgan[onnx]' "
                              "(or pip install onnx onnxruntime)") from None
    return onnx


class VideoGraph(nn.Module):
    """The per-video work: (z, psi) -> (w, content_x, content_img), computed once per clip."""

    def __init__(self, G: nn.Module):
        super().__init__()
        self.G = G

    def forward(self, z, psi):
        G = self.G
        w = G.mapping(z, None, 1.0)
        w = G.w_avg.to(w.dtype).lerp(w, psi)                         # truncation (psi = 1 leaves w as is)
        x, img = G.content(w, fused=False)
        return w, x, img


class FrameGraph(nn.Module):
    """The per-chunk work: (w, content_x, content_img, codes, anchor_offset, t) -> frames [B, T, C, H, W]."""

    def __init__(self, G: nn.Module):
        super().__init__()
        self.G = G

    def forward(self, w, content_x, content_img, codes, anchor_offset, t):
        G = self.G
        v = G.motion_embedding(codes, t, anchor_offset=anchor_offset, w=w)
        return G.frames(w, (content_x, content_img), v, fused=False).clamp(-1, 1)


class ChunkGraph(nn.Module):
    """ClipRenderer's chunk call as one module: (z, psi, codes, anchor_offset, t) -> frames [B, T, C, H, W]: the
    per-video work and the per-chunk work in one graph."""

    def __init__(self, G: nn.Module):
        super().__init__()
        self.video, self.frame = VideoGraph(G), FrameGraph(G)

    def forward(self, z, psi, codes, anchor_offset, t):
        return self.frame(*self.video(z, psi), codes, anchor_offset, t)


def check_exportable(G: nn.Module, cfg: Config, c_dim: int) -> None:
    if c_dim > 0 or cfg.cond.mode != "none" or getattr(G, "context_frames", 0) > 0:
        raise OnnxExportError("ONNX export covers unconditional generators (cond.mode none, no classes) for now: "
                              "export this one with --format pt or safetensors")


def split_paths(out: Union[str, Path]):
    """The per-video and per-frame graphs written beside G.onnx by --split: G.video.onnx, G.frames.onnx."""
    out = Path(out)
    stem = out.name[:-len(".onnx")] if out.name.lower().endswith(".onnx") else out.name
    return out.with_name(stem + ".video.onnx"), out.with_name(stem + ".frames.onnx")


def split_pair(path: Union[str, Path], meta: Dict):
    """(G.video.onnx, G.frames.onnx) when both lie beside G.onnx (`meta`: its metadata) and come from its export
    (same model id and config), else None: a stale pair from another export is never mixed in (a warning says so)."""
    path = Path(path)
    video, frames = split_paths(path)
    if not (video.is_file() and frames.is_file()):
        return None
    metas = [read_metadata(p) for p in (video, frames)]
    if [m.get("part") for m in metas] != ["video", "frames"] or not all(
            m.get("model_id") == meta.get("model_id") and m.get("config") == meta.get("config") for m in metas):
        logging.getLogger(__name__).warning("%s and %s are not %s's halves (another export): using %s alone",
                                            video.name, frames.name, path.name, path.name)
        return None
    return video, frames


def _write_graph(onnx, module: nn.Module, args, names, outputs, shapes, out: Path, meta: Dict, opset: int) -> None:
    """torch.onnx.export (dynamo) of `module` into a temp file beside `out`, the metadata added, checked, renamed."""
    with temp_file_beside(out, out.name + ".", ".tmp") as (fd, tmp):
        os.close(fd)
        with torch.no_grad():
            torch.onnx.export(module.eval(), args, tmp, input_names=list(names), output_names=list(outputs),
                              dynamic_shapes=shapes, opset_version=opset, dynamo=True, external_data=False,
                              verbose=False)
        model = onnx.load(tmp)
        entry = model.metadata_props.add()
        entry.key, entry.value = META_KEY, json.dumps(meta)
        onnx.checker.check_model(model)
        onnx.save(model, tmp)
        os.replace(tmp, out)


def export_onnx(G: nn.Module, cfg: Config, out: Union[str, Path], *, c_dim: int = 0, class_names=(), step=None,
                opset: int = OPSET, split: bool = False) -> Dict:
    """Write G (float32, eval) as the ONNX graph above to `out` (atomically); with `split`, also its per-video and
    per-frame halves (split_paths), which ONNX Runtime sampling then uses so a clip's per-video work runs once.
    Returns a summary."""
    onnx = require_onnx()
    check_exportable(G, cfg, c_dim)
    G = G.float().eval().requires_grad_(False)
    model_id = wm.model_id(G.state_dict(), {k: v for k, v in cfg.to_dict().items() if k != "watermark"},
                           type(cfg)().to_dict())
    b, k, tt = 2, 3, 5
    times = torch.linspace(0, G.motion_period * (k - 1) - 0.01, tt)[None].repeat(b, 1)    # inside anchors 0..k-1
    z, psi = torch.randn(b, G.z_dim), torch.tensor(1.0)
    codes, k0 = torch.randn(b, k, G.motion_dim), torch.tensor(0, dtype=torch.int64)
    B, K, T = torch.export.Dim("B"), torch.export.Dim("K", min=2), torch.export.Dim("T")
    for r in G.frame_grid_sizes():      # a cache miss inside the trace would store a fake tensor in the cache
        _base_grid(r, torch.device("cpu"))
    out = Path(out)
    meta = {"kind": KIND, "format_version": ckpt_io.FORMAT_VERSION, "config": cfg.to_dict(), "c_dim": c_dim,
            "class_names": [str(n) for n in class_names], "step": step, "model_id": int(model_id), "opset": opset}
    shapes = {"z": {0: B}, "psi": None, "codes": {0: B, 1: K}, "anchor_offset": None, "t": {0: B, 1: T}}
    _write_graph(onnx, ChunkGraph(G), (z, psi, codes, k0, times), INPUTS, ["frames"], shapes, out, meta, opset)
    written = [out]
    if split:
        video, frames = split_paths(out)
        with torch.no_grad():
            w, cx, cimg = VideoGraph(G)(z, psi)
        if cx is None or cimg is None:
            raise OnnxExportError("this generator's per-video state is not a pair of tensors: export it without "
                                  "--split")
        _write_graph(onnx, VideoGraph(G), (z, psi), VIDEO_INPUTS, VIDEO_OUTPUTS, {"z": {0: B}, "psi": None},
                     video, {**meta, "part": "video"}, opset)
        shapes = {"w": {0: B}, "content_x": {0: B}, "content_img": {0: B}, "codes": {0: B, 1: K},
                  "anchor_offset": None, "t": {0: B, 1: T}}
        _write_graph(onnx, FrameGraph(G), (w, cx, cimg, codes, k0, times), FRAME_INPUTS, ["frames"], shapes, frames,
                     {**meta, "part": "frames"}, opset)
        written += [video, frames]
    return {"path": str(out), "bytes": out.stat().st_size, "opset": opset, "step": step,
            "files": [str(p) for p in written]}


def export_checkpoint_onnx(checkpoint: Union[str, Path], out: Union[str, Path], split: bool = False) -> Dict:
    """reelgan-export --format onnx: the EMA generator of `checkpoint` (training or exported file)."""
    ckpt = ckpt_io.load(checkpoint, map_location="cpu")
    key = ckpt_io.generator_key(ckpt, checkpoint)
    cfg = Config.from_dict(ckpt["config"])
    c_dim = int(ckpt.get("c_dim", 0))
    G = build_generator(cfg, c_dim)
    ckpt_io.load_modules(ckpt, {key: G}, checkpoint)
    return export_onnx(G, cfg, out, c_dim=c_dim, class_names=ckpt.get("class_names", []), step=ckpt.get("step"),
                       split=split)


def read_metadata(path: Union[str, Path]) -> Dict:
    """The 'reelgan' metadata of an exported ONNX file (one clear error when it is not one)."""
    onnx = require_onnx()
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:                                          # noqa: BLE001  (protobuf's DecodeError et al.)
        raise OnnxExportError(f"{path} is not a readable ONNX file ({type(e).__name__}): re-export it with "
                              f"reelgan-export CKPT {Path(path).name} --format onnx") from None
    props = {p.key: p.value for p in model.metadata_props}
    if META_KEY not in props:
        raise OnnxExportError(f"{path} is an ONNX file but not a reelgan export (no '{META_KEY}' metadata): "
                              f"export it with reelgan-export CKPT {Path(path).name} --format onnx")
    meta = json.loads(props[META_KEY])
    ckpt_io.check_format(meta.get("format_version"), path)
    return meta
