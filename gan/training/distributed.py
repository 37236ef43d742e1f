"""torchrun support. Gradients are all-reduced explicitly after each phase's backward (as
stylegan2-ada does) instead of through DistributedDataParallel: DDP's reducer cannot follow the
double backward of R1, and the loss freezes one network per phase, which DDP reads as unused
parameters. Rank 0 writes every file."""
from __future__ import annotations

import datetime
import os
from typing import Iterable

import torch
import torch.distributed as dist


def init_from_env(device: torch.device) -> tuple:
    """(rank, world_size), initialising the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=10))
    return dist.get_rank(), dist.get_world_size()


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_reduce_grads(params: Iterable[torch.nn.Parameter]) -> None:
    """Average .grad over ranks in one flat buffer (missing grads count as zeros)."""
    if world_size() <= 1:
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
    dist.all_reduce(flat)
    flat /= world_size()
    for p, g in zip(params, flat.split([p.numel() for p in params])):
        p.grad = g.reshape(p.shape).clone()


def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Make every rank start from rank 0's parameters and buffers."""
    if world_size() <= 1:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=src)


def all_reduce_mean(value: float, device) -> float:
    if world_size() <= 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t) / world_size()


def all_gather_floats(value: float, device) -> list:
    if world_size() <= 1:
        return [value]
    out = [torch.zeros(1, dtype=torch.float64, device=device) for _ in range(world_size())]
    dist.all_gather(out, torch.tensor([value], dtype=torch.float64, device=device))
    return [float(t) for t in out]


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
