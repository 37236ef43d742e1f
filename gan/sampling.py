"""Generator-only sampling: load G_ema from a checkpoint, render clips of any length and frame rate in
chunks (constant memory), write mp4 / gif / png frames / grids.

One RNG per seed: the content code comes from `torch.Generator().manual_seed(seed)` and each motion
anchor from its own (seed, k) stream, so a seed gives the same clip whatever the batch size, the clip
length or the chunk size.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from gan import watermark as wm
from gan.config import Config
from gan.errors import ReelganError
from gan.networks import Generator, build_generator, motion_codes_for_seed
from gan.checkpoint import CheckpointError, generator_key, load, load_modules


class SamplingError(ReelganError, ValueError):
    pass


def load_generator(path: Union[str, Path], device="cpu", state: Optional[Dict] = None) -> Tuple[Generator, Dict]:
    """The EMA generator of a checkpoint (or of an exported G file), rebuilt from its own config.
    `state`: the file's contents when the caller has read it already (gan.checkpoint.load)."""
    ckpt = load(path, map_location="cpu") if state is None else state
    key = generator_key(ckpt, path)
    cfg = Config.from_saved(ckpt["config"])
    G = build_generator(cfg, ckpt.get("c_dim", 0))
    load_modules(ckpt, {key: G}, path)
    G = G.to(device).eval().requires_grad_(False)
    info = {"config": cfg, "c_dim": ckpt.get("c_dim", 0), "class_names": list(ckpt.get("class_names", [])),
            "step": ckpt.get("step")}
    return G, info


def resolve_watermark(watermark, G: Generator, info: Dict) -> Optional[wm.Watermarker]:
    """`watermark` as the samplers take it: wm.AUTO (the default: the model's mark, key from $REELGAN_WATERMARK_KEY
    or the config, else the public key), a Watermarker, or None (no mark)."""
    if isinstance(watermark, str):
        if watermark != wm.AUTO:
            raise SamplingError(f"watermark must be {wm.AUTO!r}, a Watermarker or None, got {watermark!r}")
        return wm.for_generator(G, info["config"])
    return watermark


def checkpoint_watermarker(path: Union[str, Path], key_file: Optional[str] = None,
                           user_id: Optional[int] = None, state: Optional[Dict] = None) -> wm.Watermarker:
    """The mark the samplers put on a checkpoint's outputs (wm.for_generator), without building the model."""
    ckpt = load(path, map_location="cpu") if state is None else state
    key = "G_ema" if "G_ema" in ckpt else "G"
    if key not in ckpt:
        raise CheckpointError(f"{path} holds no generator weights")
    return wm.for_generator(ckpt[key], Config.from_saved(ckpt["config"]), key_file=key_file, user_id=user_id)


def seed_z(G: Generator, seeds: Sequence[int], device) -> torch.Tensor:
    return torch.stack([torch.randn(G.z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]).to(device)


def seed_motion(G: Generator, seeds: Sequence[int], k0: int, k1: int, device) -> torch.Tensor:
    return torch.stack([motion_codes_for_seed(int(s), k0, k1, G.motion_dim) for s in seeds]).to(device)


@torch.no_grad()
def render_chunks(G: Generator, seeds: Sequence[int], num_frames: Optional[int], *, time_step: float = 1.0,
                  start: float = 0.0, c: Optional[torch.Tensor] = None, truncation: float = 1.0,
                  chunk: int = 16, device="cpu", fused: bool = True) -> Iterator[torch.Tensor]:
    """Yield [B, t, C, H, W] float chunks in [-1, 1] of the clips of `seeds`; frame k is at time
    start + k * time_step (in training-data frames). num_frames None renders forever."""
    for w, content, v in chunk_states(G, seeds, num_frames, time_step=time_step, start=start, c=c,
                                      truncation=truncation, chunk=chunk, device=device, fused=fused):
        yield G.frames(w, content, v, fused=fused).clamp(-1, 1)


@torch.no_grad()
def chunk_states(G: Generator, seeds: Sequence[int], num_frames: Optional[int], *, time_step: float = 1.0,
                 start: float = 0.0, c: Optional[torch.Tensor] = None, truncation: float = 1.0,
                 chunk: int = 16, device="cpu", fused: bool = True) -> Iterator[Tuple]:
    """What `render_chunks` renders, before rendering: (w, content(w), motion state v [B, t, ...]) per chunk."""
    if chunk < 1:
        raise SamplingError("chunk must be >= 1")
    if time_step <= 0 or start < 0:
        raise SamplingError("time_step must be > 0 and start >= 0")
    if G.c_dim > 0 and c is None:
        raise SamplingError("this generator is class-conditional: pass a class (e.g. --class 3)")
    z = seed_z(G, seeds, device)
    if c is not None:
        c = c.to(device)
    w = G.mapping_forward(z, c, truncation_psi=truncation)
    content = G.content(w, fused=fused)
    period = G.motion.period
    k = 0
    while num_frames is None or k < num_frames:
        n = chunk if num_frames is None else min(chunk, num_frames - k)
        t = start + (torch.arange(k, k + n, dtype=torch.float64) * time_step)
        k0, k1 = int(math.floor(float(t[0]) / period)), int(math.floor(float(t[-1]) / period)) + 2
        codes = seed_motion(G, seeds, k0, k1, device)
        tt = t.float().to(device)[None].expand(len(seeds), -1)
        yield w, content, G.motion(codes, tt, anchor_offset=k0, w=w)
        k += n


def render(G: Generator, seeds: Sequence[int], num_frames: int, **kwargs) -> torch.Tensor:
    """Whole clips [B, T, C, H, W] (for short clips; use render_chunks for long ones)."""
    return torch.cat(list(render_chunks(G, seeds, num_frames, **kwargs)), dim=1)


def render_grid_video(G: Generator, seeds: Sequence[int], num_frames: int, device, c_dim: int = 0,
                      nrow: Optional[int] = None) -> np.ndarray:
    """A grid of clips as uint8 [T, H', W', 3]; conditional models cycle through the classes."""
    from gan.video_io import make_grid, to_uint8
    c = torch.arange(len(seeds)) % c_dim if c_dim > 0 else None
    was_training = G.training
    G.eval()
    video = render(G, seeds, num_frames, c=c, device=device, fused=False)
    G.train(was_training)
    return make_grid(to_uint8(video.float().cpu()), nrow=nrow or min(4, len(seeds)))


MAX_SEEDS = 100_000       # one file per seed: more is a typo, not a request
MAX_SEED = 2 ** 63 - 1    # torch.Generator.manual_seed's range


def parse_seeds(text: str) -> List[int]:
    """'0-3,7,10-11' -> [0, 1, 2, 3, 7, 10, 11]; at most MAX_SEEDS seeds, each in [0, MAX_SEED]."""
    seeds: List[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                if hi - lo + 1 + len(seeds) > MAX_SEEDS:       # checked before building the list
                    raise SamplingError(f"--seeds {text!r} asks for {hi - lo + 1 + len(seeds)} clips; at most "
                                        f"{MAX_SEEDS} per run (e.g. --seeds 0-99)")
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except SamplingError:
            raise
        except (TypeError, ValueError):
            raise SamplingError(f"bad seed list {text!r}: use numbers and ranges like '0-3,7'") from None
    if not seeds or min(seeds) < 0 or max(seeds) > MAX_SEED:
        raise SamplingError(f"bad seed list {text!r}: need at least one seed, all in [0, 2**63)")
    if len(seeds) > MAX_SEEDS:
        raise SamplingError(f"--seeds {text!r} asks for {len(seeds)} clips; at most {MAX_SEEDS} per run")
    return seeds


def resolve_class(value: Optional[str], info: Dict) -> Optional[int]:
    """A class given as an index or a name -> index; checks it against the checkpoint."""
    c_dim, names = info["c_dim"], info["class_names"]
    if value is None:
        if c_dim > 0:
            raise SamplingError(f"this model is class-conditional: pass --class (0..{c_dim - 1}"
                                + (f" or one of {names}" if names else "") + ")")
        return None
    if c_dim == 0:
        raise SamplingError("--class was given but this model is unconditional")
    if value in names:
        return names.index(value)
    try:
        idx = int(value)
    except ValueError:
        raise SamplingError(f"unknown class {value!r}; choose 0..{c_dim - 1} or one of {names}") from None
    if not 0 <= idx < c_dim:
        raise SamplingError(f"class {idx} out of range 0..{c_dim - 1}")
    return idx


def generate_videos(checkpoint: str, outdir: str, seeds: Sequence[int], frames: int = 64,
                    fps: Optional[float] = None, fmt: str = "mp4", truncation: float = 1.0,
                    class_value: Optional[str] = None, device: str = "cpu", chunk: int = 16,
                    batch: int = 4, watermark=wm.AUTO, state: Optional[Dict] = None) -> List[Path]:
    """Render one file per seed (mp4, gif, png folder) or one grid file; returns the written paths.
    `watermark`: see resolve_watermark (None writes unmarked clips); `state`: as in load_generator."""
    from gan import video_io
    G, info = load_generator(checkpoint, device, state)
    mark = resolve_watermark(watermark, G, info)
    data_fps = info["config"].data.fps
    fps = data_fps if fps is None else float(fps)
    if fps <= 0 or frames < 1:
        raise SamplingError("--fps must be > 0 and --frames >= 1")
    cls = resolve_class(class_value, info)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    kw = dict(time_step=data_fps / fps, truncation=truncation, chunk=chunk, device=device)
    written: List[Path] = []
    if fmt == "grid":
        c = torch.full((len(seeds),), cls, dtype=torch.long) if cls is not None else None
        video = video_io.to_uint8(render(G, seeds, frames, c=c, **kw).float().cpu())
        path = out / f"grid_seeds{seeds[0]}-{seeds[-1]}.mp4"
        video_io.write_mp4(path, video_io.make_grid(video), fps, watermark=mark)
        return [path]
    for i in range(0, len(seeds), batch):
        group = list(seeds[i:i + batch])
        c = torch.full((len(group),), cls, dtype=torch.long) if cls is not None else None
        paths = [out / f"seed{s:04d}" for s in group]
        if fmt == "mp4":
            writers = [video_io.Mp4Writer(p.with_suffix(".mp4"), fps, watermark=mark) for p in paths]
            try:
                for part in render_chunks(G, group, frames, c=c, **kw):
                    frames_u8 = video_io.to_uint8(part.float().cpu())
                    for wtr, clip in zip(writers, frames_u8):
                        wtr.write(clip)
            except BaseException:
                for wtr in writers:  # never publish a partial file
                    wtr.abort()
                raise
            for wtr in writers:
                wtr.close()
            written += [p.with_suffix(".mp4") for p in paths]
        elif fmt in ("gif", "png"):
            clips = video_io.to_uint8(render(G, group, frames, c=c, **kw).float().cpu())
            for p, clip in zip(paths, clips):
                if fmt == "gif":
                    video_io.write_gif(p.with_suffix(".gif"), clip, fps, watermark=mark)
                    written.append(p.with_suffix(".gif"))
                else:
                    video_io.write_png_frames(p, clip, watermark=mark)
                    written.append(p)
        else:
            raise SamplingError(f"unknown format {fmt!r}: use mp4, gif, png or grid")
    return written
