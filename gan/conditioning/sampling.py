"""Sampling from conditional checkpoints: animate a still, continue a clip, or render a prompt.

Seeds work as in gan/sampling.py: seed s fixes the content code z and every motion anchor's code, so
the same (condition, seed) gives the same clip whatever the batch, chunk size or clip length.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch

from gan.conditioning.build import build_conditional_generator
from gan.conditioning.encoders import ConditionalGenerator
from gan.conditioning.inputs import ConditionError, last_frames, load_image, load_video
from gan.conditioning.text import TextEncoder, build_text_encoder
from gan.config import Config
from gan.labels import YoloDataset, conditional_labels, layered_labels, require_layered, write_clip_labels
from gan.networks import build_generator
from gan.sampling import SamplingError, render_chunks, resolve_watermark, seed_motion, seed_z
from gan.checkpoint import CheckpointError, generator_key, load, load_modules

OPTION_FOR_MODE = {"image": "--image", "continue": "--video", "text": "--prompt"}
MODE_WORDS = {"image": "image-to-video", "continue": "video continuation", "text": "text-to-video",
              "none": "unconditional generation"}


def checkpoint_mode(path: Union[str, Path], state: Optional[Dict] = None) -> str:
    """cond.mode of a checkpoint's config ('none' for unconditional and pre-conditioning checkpoints)."""
    ckpt = load(path, map_location="cpu") if state is None else state
    return str(ckpt.get("config", {}).get("cond", {}).get("mode", "none"))


def check_mode(mode: str, wanted: str) -> None:
    """A clear error when the condition given does not match what the checkpoint was trained for."""
    if mode == wanted:
        return
    trained = f"this checkpoint was trained for {MODE_WORDS.get(mode, mode)} (cond.mode '{mode}')"
    if wanted == "none":
        raise ConditionError(f"{trained}: pass {OPTION_FOR_MODE.get(mode, '--image/--video/--prompt')}")
    hint = f"use {OPTION_FOR_MODE[mode]}" if mode in OPTION_FOR_MODE else "leave out --image/--video/--prompt"
    raise ConditionError(f"{trained}, not {MODE_WORDS[wanted]} ({OPTION_FOR_MODE[wanted]}): {hint}")


def load_conditional(path: Union[str, Path], device="cpu", text_encoder: Optional[TextEncoder] = None,
                     state: Optional[Dict] = None) -> Tuple[torch.nn.Module, Dict]:
    """The EMA generator of a conditional checkpoint, rebuilt from its config, plus info
    (config, mode, c_dim and, for 'text', the text encoder: the saved built-in one or `text_encoder`).
    `state`: the file's contents when the caller has read it already."""
    ckpt = load(path, map_location="cpu") if state is None else state
    key = generator_key(ckpt, path)
    cfg = Config.from_saved(ckpt["config"])
    mode = cfg.cond.mode
    if mode in ("image", "continue"):
        G = build_conditional_generator(cfg)
    elif mode == "text":
        G = build_generator(cfg, ckpt.get("c_dim", cfg.cond.text_dim))
    else:
        raise ConditionError(f"{path} is an unconditional checkpoint: generate without --image/--video/--prompt")
    load_modules(ckpt, {key: G}, path)
    G = G.to(device).eval().requires_grad_(False)
    info = {"config": cfg, "mode": mode, "c_dim": ckpt.get("c_dim", 0), "step": ckpt.get("step"),
            "text_encoder": None}
    if mode == "text":
        saved = ckpt.get("cond", {}) or {}
        if text_encoder is not None:
            if int(text_encoder.dim) != cfg.cond.text_dim:
                raise ConditionError(f"the text encoder gives {text_encoder.dim}-d embeddings; this model was "
                                     f"trained on {cfg.cond.text_dim}-d ones")
            info["text_encoder"] = text_encoder
        elif saved.get("text_encoder") is not None:
            enc = build_text_encoder(cfg.cond, (), vocab=saved["text_vocab"])
            enc.load_state_dict(saved["text_encoder"])
            info["text_encoder"] = enc.to(device).eval().requires_grad_(False)
        else:
            raise ConditionError(f"this model was trained with an external text encoder "
                                 f"({saved.get('external_text_encoder')}); pass the same one: "
                                 f"generate_conditional(..., text_encoder=...)")
    return G, info


@torch.no_grad()
def prepare_conditioned(G: ConditionalGenerator, seeds: Sequence[int], cond: torch.Tensor,
                        context_times: torch.Tensor, t_max: float, truncation: float = 1.0, device="cpu") -> Dict:
    """G.prepare for one condition `cond` [K, C, H, W] given at `context_times` [K], one clip per seed (seed -> z
    and the random motion codes up to time t_max)."""
    s = len(seeds)
    z = seed_z(G, seeds, device)
    motion = seed_motion(G, seeds, 0, G.motion.num_anchors(float(t_max)), device)
    c = cond.to(device).unsqueeze(0).expand(s, *cond.shape)
    ct = context_times.float().to(device)[None].expand(s, -1)
    return G.prepare(z, c, ct, motion, truncation_psi=truncation)


@torch.no_grad()
def render_conditioned(G: ConditionalGenerator, seeds: Sequence[int], cond: torch.Tensor, context_times: torch.Tensor,
                       times: torch.Tensor, truncation: float = 1.0, chunk: int = 16, device="cpu") -> torch.Tensor:
    """Clips [S, T, C, H, W] at `times` [T] from one condition `cond` [K, C, H, W] given at
    `context_times` [K], one clip per seed (seed -> z and the random motion codes)."""
    if chunk < 1:
        raise SamplingError("chunk must be >= 1")
    s = len(seeds)
    state = prepare_conditioned(G, seeds, cond, context_times, float(times.max()), truncation, device)
    out = []
    for i in range(0, len(times), chunk):
        t = times[i:i + chunk].float().to(device)[None].expand(s, -1)
        out.append(G.render_prepared(state, t).clamp(-1, 1))
    return torch.cat(out, dim=1)


def animate(G: ConditionalGenerator, still: torch.Tensor, seeds: Sequence[int], num_frames: int,
            time_step: float = 1.0, **kw) -> torch.Tensor:
    """Image-to-video: [S, num_frames, C, H, W]; frame 0 renders the still, later frames move it."""
    times = torch.arange(num_frames, dtype=torch.float64) * time_step
    return render_conditioned(G, seeds, still.unsqueeze(0), torch.zeros(1), times, **kw)


def continue_clip(G: ConditionalGenerator, context: torch.Tensor, seeds: Sequence[int], num_frames: int,
                  context_stride: int = 1, time_step: float = 1.0, **kw) -> torch.Tensor:
    """Continuation: `num_frames` predicted frames after the K context frames [K, C, H, W] (given
    `context_stride` data frames apart), `time_step` apart -> [S, num_frames, C, H, W]."""
    k = context.shape[0]
    context_times = torch.arange(k, dtype=torch.float64) * context_stride
    last = float(context_times[-1])
    times = torch.cat([context_times, last + torch.arange(1, num_frames + 1, dtype=torch.float64) * time_step])
    return render_conditioned(G, seeds, context, context_times, times, **kw)[:, k:]


@torch.no_grad()
def text_clips(G, text_encoder: TextEncoder, prompt: str, seeds: Sequence[int], num_frames: int,
               time_step: float = 1.0, truncation: float = 1.0, chunk: int = 16, device="cpu") -> torch.Tensor:
    """Text-to-video: [S, num_frames, C, H, W] for one prompt."""
    if not prompt.strip():
        raise ConditionError("--prompt is empty: describe the clip, e.g. 'a red circle moving left'")
    emb = text_encoder.encode([prompt]).to(device=device, dtype=torch.float32)
    c = emb.expand(len(seeds), -1)
    return torch.cat(list(render_chunks(G, seeds, num_frames, time_step=time_step, c=c, truncation=truncation,
                                        chunk=chunk, device=device, fused=False)), dim=1)


def write_clips(clips: torch.Tensor, outdir: Union[str, Path], seeds: Sequence[int], fps: float, fmt: str,
                prefix: str = "", watermark=None) -> List[Path]:
    """[S, T, C, H, W] in [-1, 1] -> one file per seed (mp4 / gif / png folder) or one grid mp4, each marked by
    `watermark` (a gan.watermark.Watermarker; None: unmarked)."""
    from gan import video_io
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    u8 = video_io.to_uint8(clips.float().cpu())
    if fmt == "grid":
        path = out / f"{prefix}grid_seeds{seeds[0]}-{seeds[-1]}.mp4"
        video_io.write_mp4(path, video_io.make_grid(u8), fps, watermark=watermark)
        return [path]
    written = []
    for s, clip in zip(seeds, u8):
        p = out / f"{prefix}seed{s:04d}"
        if fmt == "mp4":
            video_io.write_mp4(p.with_suffix(".mp4"), clip, fps, watermark=watermark)
            written.append(p.with_suffix(".mp4"))
        elif fmt == "gif":
            video_io.write_gif(p.with_suffix(".gif"), clip, fps, watermark=watermark)
            written.append(p.with_suffix(".gif"))
        elif fmt == "png":
            video_io.write_png_frames(p, clip, watermark=watermark)
            written.append(p)
        else:
            raise SamplingError(f"unknown format {fmt!r}: use mp4, gif, png or grid")
    return written


def generate_conditional(checkpoint: str, outdir: str, seeds: Sequence[int], frames: int = 64,
                         fps: Optional[float] = None, fmt: str = "mp4", truncation: float = 1.0,
                         image: Optional[str] = None, video: Optional[str] = None, prompt: Optional[str] = None,
                         context_stride: int = 1, device: str = "cpu", chunk: int = 16,
                         text_encoder: Optional[TextEncoder] = None, log=None, watermark="auto",
                         labels: Optional[str] = None, label_threshold: float = 0.5,
                         dataset: Optional[str] = None, state: Optional[Dict] = None) -> List[Path]:
    """The --image / --video / --prompt paths of generate.py. Exactly one condition must be given.

    --image: clips of `frames` frames whose frame 0 is the still. --video: the last K frames of the
    video (K = the model's context_frames, `context_stride` apart) followed by `frames` predicted ones.
    --prompt: `frames` frames following the sentence. `watermark`: see gan.sampling.resolve_watermark (the
    whole written clip is marked, the context frames of --video included). `labels` (yolo / coco / mot; layered
    models, --image and --prompt) writes each clip's object boxes beside it, `dataset` the ultralytics folder
    (gan/labels.py)."""
    given = {k: v for k, v in (("image", image), ("continue", video), ("text", prompt)) if v is not None}
    if len(given) != 1:
        raise ConditionError("give exactly one of --image, --video, --prompt")
    (wanted, value), = given.items()
    if frames < 1 or (fps is not None and fps <= 0) or context_stride < 1:
        raise SamplingError("--frames and --context-stride must be >= 1 and --fps > 0")
    ckpt = load(checkpoint, map_location="cpu") if state is None else state     # read once
    check_mode(checkpoint_mode(checkpoint, ckpt), wanted)
    G, info = load_conditional(checkpoint, device, text_encoder=text_encoder, state=ckpt)
    if labels is not None:
        if wanted == "continue":
            raise ConditionError("--labels covers --image and --prompt, not --video (its first frames are the "
                                 "input clip's)")
        require_layered(G)
    cfg = info["config"]
    mark = resolve_watermark(watermark, G, info)
    data_fps = cfg.data.fps
    fps = data_fps if fps is None else float(fps)
    kw = dict(truncation=truncation, chunk=chunk, device=device)
    res, ch = cfg.data.resolution, cfg.data.channels
    if wanted == "image":
        still = load_image(value, res, ch)
        clips = animate(G, still, seeds, frames, time_step=data_fps / fps, **kw)
    elif wanted == "continue":
        k = G.context_frames
        context = last_frames(load_video(value, res, ch), k, context_stride)
        future = continue_clip(G, context, seeds, frames, context_stride, data_fps / fps, **kw)
        clips = torch.cat([context.to(future.device)[None].expand(len(seeds), *context.shape), future], dim=1)
    else:
        enc = info["text_encoder"]
        tok = getattr(enc, "tokenizer", None)
        unknown = tok.unknown_words(value) if tok is not None else []
        if unknown and log is not None:
            log(f"warning: words the model never saw in a caption are ignored: {', '.join(unknown)}")
        clips = text_clips(G, enc, value, seeds, frames, time_step=data_fps / fps, **kw)
    paths = write_clips(clips, outdir, seeds, fps, fmt, watermark=mark)
    if labels is None:
        return paths
    if fmt == "grid":
        raise ConditionError("--labels are written per clip: use --format mp4, gif or png, not grid")
    times = torch.arange(frames, dtype=torch.float64) * (data_fps / fps)
    if wanted == "image":
        state = prepare_conditioned(G, seeds, still[None], torch.zeros(1), float(times.max()), truncation, device)
        boxes = conditional_labels(G, state, times.float().to(device)[None].expand(len(seeds), -1), label_threshold)
    else:
        c = info["text_encoder"].encode([value]).to(device=device, dtype=torch.float32).expand(len(seeds), -1)
        boxes = layered_labels(G, seeds, frames, c=c, threshold=label_threshold, time_step=data_fps / fps,
                               truncation=truncation, chunk=chunk, device=device, fused=False)
    ds = YoloDataset(dataset, ["object"]) if dataset else None
    paths += write_clip_labels(labels, paths, seeds, boxes, frames, cfg.data.resolution, ["object"], ds, clips)
    if ds is not None:
        paths.append(ds.finish())
    return paths
