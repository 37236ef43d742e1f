"""What rendering costs: FLOPs per frame and per video, parameter counts."""
from __future__ import annotations

import copy
from typing import Dict

import torch

from gan.networks import VideoGenerator
from gan.sampling.render import FastSampler


def flops_per_frame(G: VideoGenerator, frames: int = 4) -> Dict[str, float]:
    """FLOPs (torch.utils.flop_counter: 2 per multiply-add of convs and matmuls) of rendering: 'frame'
    per frame (motion + synthesis above the content resolution) and 'content' once per video. The
    synthesis is counted on the meta device (shapes only, no arithmetic), so this is instant at any size."""
    from torch.utils.flop_counter import FlopCounterMode
    on_cpu = next(G.parameters()).device.type == "cpu"
    mode, grads = G.training, [p.requires_grad for p in G.parameters()]
    sampler = FastSampler(G if on_cpu else copy.deepcopy(G).cpu(), channels_last=False)   # sets eval, no grad
    t = torch.arange(frames, dtype=torch.float64)
    meta = torch.device("meta")
    with torch.inference_mode():
        w0 = sampler.prepare([0], torch.zeros(1, dtype=torch.long) if G.c_dim else None)[0]
        with FlopCounterMode(display=False) as motion:          # data-dependent (anchor checks): real tensors
            v = sampler.motion([0], t, w0)
        G_meta, renderer = copy.deepcopy(sampler.G).to(meta), sampler.renderer.to(meta)
        z = torch.zeros(1, G.z_dim, device=meta)
        c = torch.zeros(1, G.c_dim, device=meta) if G.c_dim else None
        with FlopCounterMode(display=False) as per_video:
            w = G_meta.mapping_forward(z, c)
            x, img = G_meta.content(w)
            ws = renderer.video_state(w)
        with FlopCounterMode(display=False) as synthesis:
            renderer(ws, x, img, v.to(meta))
    G.train(mode)
    for p, g in zip(G.parameters(), grads):
        p.requires_grad_(g)
    return {"frame": (motion.get_total_flops() + synthesis.get_total_flops()) / frames,
            "content": float(per_video.get_total_flops())}


def param_count(G: VideoGenerator) -> int:
    return sum(p.numel() for p in G.parameters())
