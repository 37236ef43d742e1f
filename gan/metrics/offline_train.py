"""Training of the offline video feature net (offline.py) on the built-in datasets' ground-truth factors.

Clips come from the dataset's own renderer with a content seed no training run uses by default, a random
number of objects (1-3) and a random start frame. Targets, read from `factors()`: per clip, the presence of
each joint identity (digit, or shape x colour), the object count, and per present identity its centre and
velocity at the middle of the clip; per sampled frame and 4 x 4 px cell, the identity and velocity of the
object covering the cell centre (dense supervision of the trunk). Held-out scores are measured on the test split.
"""
from __future__ import annotations

import logging
import time
from typing import Dict, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from gan.data.builtin import PALETTE, SPEED_RANGE, BouncingShapes, MovingDigits
from gan import trained_nets
from gan.metrics.offline_net import CLIP_FRAMES, INPUT_SIZE, OfflineVideoNet, num_targets

logger = logging.getLogger(__name__)
_COLOURS = list(PALETTE)
_CELLS = INPUT_SIZE // 4
_CELL_CENTRES = np.stack(np.meshgrid(np.arange(_CELLS) * 4 + 2.0, np.arange(_CELLS) * 4 + 2.0, indexing="xy"), -1)


def _identity(dataset: str, obj: Dict) -> int:
    if dataset == "digits":
        return obj["class_id"]
    return obj["class_id"] * len(_COLOURS) + _COLOURS.index(obj["color"])


def render_training_clips(dataset: str, num: int, content_seed: int, split: str, objects=(1, 2, 3),
                          seed: int = 0) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    """`num` clips uint8 `[num, 16, 32, 32, 3]` and their targets (see module doc)."""
    cls = MovingDigits if dataset == "digits" else BouncingShapes
    k = num_targets(dataset)
    sources = {n: cls(resolution=INPUT_SIZE, num_videos=num, video_frames=2 * CLIP_FRAMES, num_objects=n,
                      seed=content_seed, split=split) for n in objects}
    rng = np.random.default_rng(seed)
    clips = np.zeros((num, CLIP_FRAMES, INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
    presence = np.zeros((num, k), np.float32)
    count = np.zeros(num, np.int64)
    motion = np.zeros((num, k, 4), np.float32)
    mask = np.zeros((num, k), np.float32)
    steps, cells = CLIP_FRAMES // 2, INPUT_SIZE // 4
    dense = np.zeros((num, steps, cells, cells), np.int64)             # 0: background, else identity + 1
    dense_velocity = np.zeros((num, steps, 2, cells, cells), np.float32)
    nearest = np.full((num, steps, cells, cells), np.inf)               # distance to the labelling object
    max_speed = SPEED_RANGE[1] * INPUT_SIZE
    for i in range(num):
        n = int(objects[i % len(objects)])
        src = sources[n]
        start = int(rng.integers(0, CLIP_FRAMES))
        clips[i] = src.render(i, start, CLIP_FRAMES)
        mid = start + CLIP_FRAMES // 2
        count[i] = n - 1
        for obj in src.factors(i)["objects"]:
            j = _identity(dataset, obj)
            pos = obj["position"]                                       # [frames, 2] top-left
            centre = (pos[mid] + obj["size"] / 2) / INPUT_SIZE * 2 - 1  # in [-1, 1]
            velocity = (pos[mid] - pos[mid - 1]) / max_speed            # in [-1, 1]
            presence[i, j] = 1
            motion[i, j] += np.concatenate([centre, velocity])
            mask[i, j] += 1
            for step in range(steps):                                    # sampled frames 0, 2, ..., 14
                f = start + 2 * step
                # Every cell whose centre lies on the object's box gets its identity (nearest object wins).
                centre = pos[f] + obj["size"] / 2
                dist = np.abs(_CELL_CENTRES - centre).max(axis=-1)       # [8, 8] Chebyshev distance
                mine = (dist <= obj["size"] / 2) & (dist < nearest[i, step])
                nearest[i, step][mine] = dist[mine]
                dense[i, step][mine] = j + 1
                dense_velocity[i, step][:, mine] = ((pos[f + 1] - pos[f]) / max_speed)[:, None]
    motion /= np.maximum(mask, 1)[..., None]                            # same identity twice: the mean
    return clips, {"presence": presence, "count": count, "motion": motion, "mask": np.minimum(mask, 1),
                   "dense": dense, "dense_velocity": dense_velocity}


def _loss(net: OfflineVideoNet, x: torch.Tensor, t: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict]:
    e, dense = net.trunk(x)                                             # [B, 64], [B, T', K+3, 8, 8]
    out = net.heads(e)
    # Summed over identities (not averaged): otherwise K-way presence is a faint signal next to the others.
    presence = F.binary_cross_entropy_with_logits(out["presence"], t["presence"], reduction="sum") / len(x)
    count = F.cross_entropy(out["count"], t["count"])
    err = (out["motion"] - t["motion"]).square().sum(-1) * t["mask"]   # [B, K]
    motion = err.sum() / t["mask"].sum().clamp(min=1)
    dense = dense.flatten(0, 1)                                         # [B*T', K+3, 8, 8]
    k = net.num_classes
    weight = torch.ones(k + 1)
    weight[0] = 0.25                                                    # most cells are background
    labels = t["dense"].flatten(0, 1)                                   # [B*T', 8, 8]
    identity = F.cross_entropy(dense[:, :k + 1], labels, weight=weight)
    occupied = (labels > 0).float()
    vel_err = (dense[:, k + 1:] - t["dense_velocity"].flatten(0, 1)).square().sum(1) * occupied
    velocity = vel_err.sum() / occupied.sum().clamp(min=1)
    parts = {"presence": presence, "count": count, "motion": motion, "cells": identity, "velocity": velocity}
    return sum(parts.values()), {k: v.item() for k, v in parts.items()}


def _tensors(clips: np.ndarray, targets: Dict[str, np.ndarray], idx) -> Tuple[torch.Tensor, Dict]:
    x = OfflineVideoNet.prepare(torch.from_numpy(clips[idx]))
    return x, {k: torch.from_numpy(v[idx]) for k, v in targets.items()}


def train_offline_net(recipe: Dict, progress: bool = True) -> Tuple[Dict[str, torch.Tensor], Dict]:
    """Train from `recipe` (offline.recipe) with its fixed seed -> (state_dict, held-out scores)."""
    from tqdm.auto import tqdm
    t0 = time.time()
    dataset = recipe["dataset"]
    clips, targets = render_training_clips(dataset, recipe["train_clips"], recipe["content_seed"], "train",
                                           tuple(recipe["objects"]), seed=recipe["seed"])
    with torch.random.fork_rng(devices=[]), trained_nets.threads(recipe["threads"]):
        torch.manual_seed(recipe["seed"])
        net = OfflineVideoNet(num_targets(dataset), recipe["width"])
        opt = torch.optim.AdamW(net.parameters(), lr=recipe["lr"], weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["lr"], total_steps=recipe["steps"],
                                                    pct_start=0.1)
        rng = np.random.default_rng(recipe["seed"])
        bar = tqdm(range(recipe["steps"]), desc=f"train offline net ({dataset})", disable=not progress)
        for _ in bar:
            idx = rng.choice(len(clips), recipe["batch"], replace=False)
            x, t = _tensors(clips, targets, idx)
            loss, parts = _loss(net, x, t)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.set_postfix_str(" ".join(f"{k} {v:.3f}" for k, v in parts.items()))
        scores = evaluate_offline_net(net.eval(), dataset, recipe)
        standardise(net, dataset, recipe)
    scores["train_seconds"] = round(time.time() - t0, 1)
    logger.info(f"offline net ({dataset}) held-out scores: {scores}")
    return net.state_dict(), scores


@torch.no_grad()
def standardise(net: OfflineVideoNet, dataset: str, recipe: Dict) -> None:
    """Set the feature mean / std buffers from the held-out real clips (the same ones evaluate uses)."""
    clips, _ = render_training_clips(dataset, recipe["test_clips"], recipe["content_seed"] + 1, "test",
                                     tuple(recipe["objects"]), seed=recipe["seed"] + 1)
    net.feature_mean.zero_()
    net.feature_std.fill_(1.0)
    e = torch.cat([net(OfflineVideoNet.prepare(torch.from_numpy(clips[i:i + 100])))
                   for i in range(0, len(clips), 100)])                 # [N, 64]
    net.feature_mean.copy_(e.mean(0))
    net.feature_std.copy_(e.std(0).clamp(min=1e-6))


@torch.no_grad()
def evaluate_offline_net(net: OfflineVideoNet, dataset: str, recipe: Dict) -> Dict:
    """Held-out (test split) scores: identity presence exact match, count accuracy, velocity RMSE."""
    num = recipe["test_clips"]
    clips, targets = render_training_clips(dataset, num, recipe["content_seed"] + 1, "test",
                                           tuple(recipe["objects"]), seed=recipe["seed"] + 1)
    hits = counts = 0
    sq, n = 0.0, 0.0
    for i in range(0, num, 100):
        idx = np.arange(i, min(i + 100, num))   # batches of 100 clips
        x, t = _tensors(clips, targets, idx)
        out = net.heads(net(x))
        hits += ((out["presence"] > 0).float() == t["presence"]).all(dim=1).sum().item()
        counts += (out["count"].argmax(1) == t["count"]).sum().item()
        vel = (out["motion"][..., 2:] - t["motion"][..., 2:]).square().sum(-1) * t["mask"]
        sq += vel.sum().item()
        n += t["mask"].sum().item()
    return {"presence_exact": round(hits / num, 4), "count_accuracy": round(counts / num, 4),
            "velocity_rmse": round((sq / max(n, 1)) ** 0.5, 4), "num_test": num}
