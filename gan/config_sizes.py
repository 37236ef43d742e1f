"""The size checks of a config: caps on every count, and the memory a training step needs at least against what
this machine has now (gan/limits.py), so an impossible config fails at load, before anything is allocated."""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

from gan import limits

# Upper bounds on counts no run needs more of (each also allocates: frames, objects, layers, tokens).
MAX_INT = 2 ** 31 - 1
SIZE_CAPS = {"data.num_objects": 64, "G.objects": 64, "G.mapping_layers": 64, "cond.text_layers": 64,
             "cond.text_max_tokens": 4096, "cond.motion_anchors": 4096, "train.sample_seeds": 1024,
             "data.clip_frames": 4096, "D.mbstd_group": 4096, "G.channel_max": 16384, "D.channel_max": 16384,
             "G.channel_base": 2 ** 22, "D.channel_base": 2 ** 22, "G.z_dim": 65536, "G.w_dim": 65536,
             "G.motion_dim": 65536, "G.time_features": 65536, "G.motion_drift": 4096, "G.warp_grid": 1024,
             "G.object_resolution": 4096, "cond.encoder_dim": 65536, "cond.encoder_channels": 16384,
             "cond.text_dim": 65536, "cond.context_frames": 4096, "loss.r1_interval": 10 ** 6,
             "loss.augment_interval": 10 ** 6, "D.video_fuse_resolution": 4096, "D.video_resolution": 4096,
             "data.workers": 1024}


def _channels(base: int, cap: int, r: int) -> int:
    return max(1, min(base // r, cap))


def size_problem(cfg) -> Optional[str]:
    """What is wrong with a Config's sizes (None: nothing): every count below a cap, and what a training step must
    hold at least (parameters, Adam moments, one batch and one forward pass) within the memory available now:
    batch=1e9 or channel_max=1e6 fail here, at once, not after allocating for minutes."""
    for section in dataclasses.fields(cfg):
        sub = getattr(cfg, section.name)
        if not dataclasses.is_dataclass(sub):
            continue
        for f in dataclasses.fields(sub):
            v, key = getattr(sub, f.name), f"{section.name}.{f.name}"
            if isinstance(v, int) and not isinstance(v, bool) and key != "train.seed":
                if abs(v) > SIZE_CAPS.get(key, MAX_INT):
                    return f"{key} must be at most {SIZE_CAPS.get(key, MAX_INT)}, got {v}"
    d, t, r = cfg.data, cfg.train, cfg.data.resolution
    for key, v in (("data.video_frames", d.video_frames), ("train.sample_frames", t.sample_frames)):
        if v > limits.MAX_FRAMES:
            return f"{key} must be at most {limits.MAX_FRAMES}, got {v}"
    if not 1e-3 <= d.fps <= 1e4:
        return f"data.fps must be in [0.001, 10000] frames per second, got {d.fps}"
    res = [4 * 2 ** k for k in range(int(math.log2(r)) - 1)]                  # 4, 8, ..., r
    params = 0
    for net in (cfg.G, cfg.D):                                                  # two 3x3 convs per resolution
        for q in res:
            c = _channels(net.channel_base, net.channel_max, q)
            sep = net is cfg.G and 0 < cfg.G.separable_from <= q                # a 1x1 and a depthwise 3x3
            params += 2 * (c * c + 9 * c if sep else 9 * c * c)
    params += cfg.G.mapping_layers * cfg.G.w_dim * max(cfg.G.w_dim, cfg.G.z_dim)
    pixels = sum(_channels(cfg.G.channel_base, cfg.G.channel_max, q) * q * q for q in res)
    need = 4 * (4 * params + t.batch * d.clip_frames * (3 * r * r + pixels))     # G, G_ema, Adam's 2 moments
    try:
        limits.require_memory(need, f"this config (train.batch={t.batch}, data.clip_frames={d.clip_frames}, "
                              f"data.resolution={r}, G/D channel_max={cfg.G.channel_max}/{cfg.D.channel_max})",
                              "lower train.batch, the resolution or the channel counts", share=1.0)
        limits.require_memory(4 * t.sample_seeds * t.sample_frames * 3 * r * r, f"the sample grid "
                              f"(train.sample_seeds={t.sample_seeds} x train.sample_frames={t.sample_frames})",
                              "lower train.sample_frames or train.sample_seeds")
        limits.require_memory(d.video_frames * 3 * r * r, f"one built-in video (data.video_frames="
                              f"{d.video_frames})", "lower data.video_frames")
    except limits.LimitError as e:
        return str(e)
    return None
