"""Sampling from an exported ONNX generator (gan/onnx_export.py) with ONNX Runtime.

The latents and times come from the same code as the PyTorch renderer (render.py: seed_z, seed_motion,
frame_times, the same anchor window), so a seed gives the same clip from G.onnx as from its checkpoint,
within float32 rounding; ONNX Runtime runs where the torch generator would. precision 'int8' runs a
statically quantized copy of the graph (int8 weights and activations, calibrated on rendered frames' inputs,
onnxruntime.quantization; see BENCHMARKS.md "ONNX and int8" for its speed and its PSNR against fp32).
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch

from gan import watermark as wm
from gan.config import Config
from gan.onnx_export import VIDEO_OUTPUTS, read_metadata, split_pair
from gan.precision import cpu_flags, int8_note
from gan.sampling.load import SamplingError
from gan.sampling.render import frame_times, seed_motion, seed_z
from gan.sampling.write import FORMATS, write_clips

ONNX_PRECISIONS = ("fp32", "int8")


def is_onnx(path) -> bool:
    return str(path).lower().endswith(".onnx")


def require_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise SamplingError("an .onnx generator runs on ONNX Runtime: pip install 'reelgan[onnx]' "
                            "(or pip install onnxruntime)") from None
    return onnxruntime


def session(path, threads: Optional[int] = None):
    """A CPU InferenceSession of `path`; threads: intra-op threads (None: ONNX Runtime's default)."""
    ort = require_onnxruntime()
    opts = ort.SessionOptions()
    if threads is not None:
        opts.intra_op_num_threads, opts.inter_op_num_threads = int(threads), 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OnnxGenerator:
    """An exported generator: its ONNX Runtime session and the sizes the latent code path needs."""

    def __init__(self, path, precision: str = "fp32", threads: Optional[int] = None, calibration_seeds: int = 8):
        if precision not in ONNX_PRECISIONS:
            raise SamplingError(f"an .onnx generator runs at precision {' or '.join(ONNX_PRECISIONS)}, "
                                f"not {precision!r}")
        self.path, self.meta = Path(path), read_metadata(path)
        if self.meta.get("part"):
            whole = self.path.name[:-len(f".{self.meta['part']}.onnx")] + ".onnx"
            raise SamplingError(f"{self.path.name} is the per-{self.meta['part'].rstrip('s')} half of a --split "
                                f"export: pass {whole}, which uses both halves")
        self.config = Config.from_dict(self.meta["config"])
        g = self.config.G
        self.z_dim, self.motion_dim, self.motion_period = int(g.z_dim), int(g.motion_dim), float(g.motion_period)
        self.resolution, self.precision = int(self.config.data.resolution), precision
        if precision == "int8":
            self.session = quantized_session(self, threads, calibration_seeds)
        else:
            self.session = session(path, threads)
        self.split = split_sessions(self, threads) if precision == "fp32" else None

    def run(self, z: np.ndarray, psi: float, codes: np.ndarray, k0: int, t: np.ndarray) -> np.ndarray:
        feed = {"z": z.astype(np.float32), "psi": np.asarray(psi, np.float32), "codes": codes.astype(np.float32),
                "anchor_offset": np.asarray(k0, np.int64), "t": t.astype(np.float32)}
        return self.session.run(["frames"], feed)[0]

    def inputs(self, seeds: Sequence[int], t: torch.Tensor, truncation: float = 1.0) -> Dict[str, np.ndarray]:
        """The graph's feed for `seeds` at times t [T] (float64): ClipRenderer's latents and anchor window."""
        pos = t.float() / self.motion_period                  # as the motion network rounds it (float32)
        k0, k1 = int(pos.min().floor()), int(pos.max().floor()) + 2
        return {"z": seed_z(self, seeds, "cpu").numpy(), "psi": np.asarray(truncation, np.float32),
                "codes": seed_motion(self, seeds, k0, k1, "cpu").numpy(), "anchor_offset": np.asarray(k0, np.int64),
                "t": t.float()[None].expand(len(seeds), -1).numpy()}

    def render_chunks(self, seeds: Sequence[int], num_frames: Optional[int], *, time_step: float = 1.0,
                      start: float = 0.0, truncation: float = 1.0, chunk: int = 16) -> Iterator[torch.Tensor]:
        """ClipRenderer.render_chunks on ONNX Runtime: [B, t, C, H, W] float chunks in [-1, 1]. With the split
        graphs (reelgan-export --split) the per-video state is computed once and each chunk runs the frame graph."""
        state = None
        for t, n in frame_times(num_frames, chunk, time_step, start):
            feed = self.inputs(seeds, t, truncation)
            if self.split is None:
                out = self.session.run(["frames"], feed)[0]
            else:
                video, frames = self.split
                if state is None:
                    state = dict(zip(VIDEO_OUTPUTS, video.run(list(VIDEO_OUTPUTS), {k: feed[k] for k in ("z", "psi")})))
                out = frames.run(["frames"], {**state, **{k: feed[k] for k in ("codes", "anchor_offset", "t")}})[0]
            yield torch.from_numpy(out[:, :n])

    def render(self, seeds: Sequence[int], num_frames: int, **kwargs) -> torch.Tensor:
        return torch.cat(list(self.render_chunks(seeds, num_frames, **kwargs)), dim=1)

    def watermarker(self, key_file: Optional[str] = None, user_id: Optional[int] = None) -> wm.Watermarker:
        return watermarker(self.meta, key_file, user_id)


def split_sessions(G: OnnxGenerator, threads: Optional[int]):
    """Sessions of G.video.onnx and G.frames.onnx when both come from G.onnx's export (onnx_export.split_pair),
    else None."""
    pair = split_pair(G.path, G.meta)
    return None if pair is None else (session(pair[0], threads), session(pair[1], threads))


def watermarker(meta: Dict, key_file: Optional[str] = None, user_id: Optional[int] = None) -> wm.Watermarker:
    """wm.for_generator's mark of the checkpoint, from the model id stored at export (same key and user rules)."""
    section = meta["config"].get("watermark") or {}
    key, origin = wm.resolve_key(key_file, section.get("key") or None)
    uid = int(section.get("user_id", 0) if user_id is None else user_id)
    return wm.Watermarker(key, wm.make_payload(int(meta["model_id"]), uid), origin=origin)


def calibration_feeds(G: OnnxGenerator, seeds: Sequence[int], frames: int = 16) -> List[Dict[str, np.ndarray]]:
    """Inputs of rendered chunks for int8 calibration: one seed per feed, times 0..frames-1 and a later window."""
    feeds = []
    for s in seeds:
        for start in (0.0, 5.5 * G.motion_period):
            feeds.append(G.inputs([s], start + torch.arange(frames, dtype=torch.float64)))
    return feeds


def quantize(src, dst, feeds: List[Dict[str, np.ndarray]]) -> None:
    """Static int8 quantization (QDQ, per-channel weights, MinMax calibration on `feeds`) of `src` into `dst`."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    # Only the convolutions (transposed too) and matmuls, where the FLOPs are: the style affines and the mapping
    # (Gemm, small; per-channel Gemm trips onnxruntime 1.2x's bias scaling) and the elementwise ops (grid_sample,
    # modulation, demodulation, lerp) stay float32.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)         # its "consider pre-processing" advice goes to the root logger
    try:
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv", "ConvTranspose", "MatMul"])
    finally:
        root.setLevel(level)


def quantized_session(G: OnnxGenerator, threads: Optional[int], calibration_seeds: int):
    """An int8 session of G's graph, quantized now into a temporary file (calibration takes seconds)."""
    fp32 = session(G.path, threads)
    G.session = fp32
    with tempfile.TemporaryDirectory(prefix="reelgan-int8-") as tmp:
        dst = Path(tmp) / "G_int8.onnx"
        quantize(G.path, dst, calibration_feeds(G, range(10 ** 6, 10 ** 6 + calibration_seeds)))
        return session(dst, threads)


def generate_onnx(path, outdir: str, seeds: Sequence[int], frames: int = 64, fps: Optional[float] = None,
                  fmt: str = "mp4", truncation: float = 1.0, *, chunk: int = 16, batch: int = 4,
                  precision: str = "fp32", watermark=wm.AUTO,
                  log: Optional[Callable[[str], None]] = None) -> List[Path]:
    """generate() for an .onnx generator: unconditional clips, one file per seed (or one grid)."""
    if fmt not in FORMATS:
        raise SamplingError(f"unknown format {fmt!r}: use mp4, gif, png or grid")
    G = OnnxGenerator(path, precision)
    mark = G.watermarker() if isinstance(watermark, str) and watermark == wm.AUTO else watermark
    fps = G.config.data.fps if fps is None else float(fps)
    step = G.config.data.fps / fps
    if log is not None:
        log(f"{Path(path).name}: ONNX Runtime {precision}, {G.resolution}px")
    groups = [list(seeds)] if fmt == "grid" else [list(seeds[i:i + batch]) for i in range(0, len(seeds), batch)]
    written: List[Path] = []
    for group in groups:
        chunks = G.render_chunks(group, frames, time_step=step, truncation=truncation, chunk=chunk)
        written += write_clips(chunks, outdir, seeds if fmt == "grid" else group, fps, fmt, watermark=mark)
    return written


__all__ = ["ONNX_PRECISIONS", "OnnxGenerator", "generate_onnx", "is_onnx", "quantize", "session"]


def onnx_cli(path, outdir, seeds, frames, fps, fmt, truncation, chunk, batch, precision, device, no_watermark,
             key_file, user_id, log, others: Dict) -> List[Path]:
    """generate.py with an .onnx --checkpoint: what it covers, one line for what it does not."""
    given = [k for k, v in others.items() if v not in (None, False)]
    if given:
        names = ", ".join("--" + ("class" if k == "class_value" else k.replace("_", "-")) for k in given)
        raise SamplingError(f"an .onnx generator renders unconditional clips to files; {names}: use the "
                            f"PyTorch checkpoint instead (--checkpoint CKPT.pt)")
    if device not in ("cpu", "auto"):
        raise SamplingError("an .onnx generator runs on ONNX Runtime's CPU provider here: use --device cpu")
    if outdir is None:
        raise SamplingError("pass an output folder (--outdir)")
    if no_watermark:
        if key_file is not None or user_id is not None:
            raise SamplingError("--no-watermark does not combine with --watermark-key / --watermark-user")
        log("watermark OFF (--no-watermark): these clips carry no invisible watermark")
        mark = None
    else:
        mark = watermarker(read_metadata(path), key_file, user_id)
        log(mark.describe())
    if precision == "auto":           # lossless: int8 costs quality, so it is only ever asked for
        precision = "fp32"
    note = int8_note(cpu_flags()) if precision == "int8" else ""
    if note:
        log(note)
    return generate_onnx(path, outdir, seeds, frames, fps, fmt, truncation, chunk=chunk, batch=batch,
                         precision=precision, watermark=mark, log=log)
