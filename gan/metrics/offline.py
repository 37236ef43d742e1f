"""Offline video features for the built-in datasets: a small (2+1)D network that reelgan trains itself on the
datasets' known factors, so a Fréchet distance can be measured with no download ("FVD-digits-offline").

Why not I3D: the published I3D weights cannot be fetched everywhere, and Kinetics features say little about
white digits on black. A network trained to read exactly the factors that define these datasets (which
digits / shapes and colours are present, how many objects, where they are and how they move) has a feature
space in which wrong identities, missing objects and implausible motion move the distribution. The number
is reported under its own name and is not comparable with FVD.

Input protocol: 16-frame clips of any size; the net resizes frames to 32 px (area averaging when
shrinking) and looks at every second frame plus the differences between them (motion at full resolution).
"""
from __future__ import annotations

from typing import Dict

import numpy as np
import torch

from gan import trained_nets
from gan.metrics.offline_net import CLIP_FRAMES, EMBED_DIM, INPUT_SIZE, OfflineVideoNet, num_targets
from gan.metrics.offline_train import train_offline_net

OFFLINE_DATASETS = ("digits", "shapes")


def recipe(dataset: str) -> Dict:
    """Everything that defines the trained weights; changing any of it retrains (see gan/trained_nets.py)."""
    if dataset not in OFFLINE_DATASETS:
        raise ValueError(f"offline features exist for {OFFLINE_DATASETS}, not '{dataset}'")
    return {"net": "OfflineVideoNet-v9", "dataset": dataset, "input": INPUT_SIZE, "frames": CLIP_FRAMES,
            "embed": EMBED_DIM, "width": 16, "train_clips": 4000, "steps": 2000, "batch": 32, "lr": 6e-3,
            "seed": 2024, "content_seed": 9001, "objects": [1, 2, 3], "test_clips": 600, "threads": 1,
            "standardise": "held-out clips"}


def load_offline_net(dataset: str, allow_train: bool = True, path=None):
    """(OfflineVideoNet in eval mode, info) for 'digits' or 'shapes', trained on first use if needed."""
    r = recipe(dataset)
    state, info = trained_nets.load_or_train("offline", dataset, r, train_offline_net, allow_train, path)
    net = OfflineVideoNet(num_targets(dataset), r["width"])
    net.load_state_dict(state)
    return net.eval().requires_grad_(False), info


@torch.no_grad()
def offline_features(net: OfflineVideoNet, clips: np.ndarray, device="cpu") -> np.ndarray:
    """uint8 `[B, 16, H, W, 3]` -> float32 `[B, 64]`."""
    if clips.shape[1] != CLIP_FRAMES:
        raise ValueError(f"offline features are defined on {CLIP_FRAMES}-frame clips, got {clips.shape[1]} frames")
    x = OfflineVideoNet.prepare(torch.from_numpy(np.ascontiguousarray(clips)).to(device))
    return net.to(device)(x).float().cpu().numpy()
