"""Training data and training of the crop classifier (classifier.py), from real renders of the built-ins.

Crops come from the same detector the analysis uses, run on real clips at 16, 32 and 64 px with 1-3 objects;
a detection is labelled by the object whose box centre it holds, or 'pair' when it holds several (overlapping
objects fused into one blob); pieces holding no centre are left out. Junk examples: smoothed-noise blobs
and washes, half objects. Train split for training, test split (disjoint digit images) for the held-out
accuracy.
"""
from __future__ import annotations

import time
from typing import Dict, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from gan.data.builtin import BouncingShapes, MovingDigits
from gan import trained_nets
from gan.analysis.classifier_net import CROP, CropClassifier, crop_boxes, extract_crops
from gan.analysis.detect import ThresholdDetector

_SOURCES = {"digits": MovingDigits, "shapes": BouncingShapes}


def classifier_recipe(dataset: str) -> Dict:
    return {"net": "CropClassifier-v5", "dataset": dataset, "crop": CROP, "resolutions": [16, 32, 64],
            "clips_per_resolution": 600, "frames": 6, "frame_stride": 5, "steps": 3000, "batch": 128,
            "lr": 2e-3, "seed": 77, "content_seed": 4242, "detector": repr(ThresholdDetector()), "threads": 1}


def _iou(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _assign(dets, truth):
    """Objects per detection: each object goes to the detection whose box holds its centre (best overlap
    first). Boxes of separate digits often overlap while their strokes do not, so box overlap alone would
    call many single digits a pair."""
    owned = [[] for _ in dets]
    for class_id, box in truth:
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        inside = [j for j, d in enumerate(dets) if d.contains(*centre, margin=1.0)]
        if inside:
            owned[max(inside, key=lambda j: _iou(dets[j].box, box))].append((class_id, box))
    return owned


def labelled_crops(dataset: str, recipe: Dict, split: str, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Crops `[N, 1, 16, 16]` and labels `[N]` (class id; num_classes: pair; num_classes + 1: junk)."""
    cls = _SOURCES[dataset]
    pair, junk = len(cls.class_names), len(cls.class_names) + 1
    detector = ThresholdDetector()
    rng = np.random.default_rng(seed)
    crops, labels = [], []
    n_frames = (recipe["frames"] - 1) * recipe["frame_stride"] + 1
    for res in recipe["resolutions"]:
        for n_obj in (1, 2, 3):
            src = cls(resolution=res, num_videos=recipe["clips_per_resolution"], video_frames=n_frames,
                      num_objects=n_obj, seed=recipe["content_seed"] + seed, split=split)
            for i in range(0, len(src), 3):
                frames = src.render(i, 0, recipe["frames"], recipe["frame_stride"])     # [T, H, W, 3]
                objects = src.factors(i)["objects"]
                items, windows, ys = [], [], []
                for k, dets in enumerate(detector.detect(frames)):
                    kk = k * recipe["frame_stride"]
                    truth = [(o["class_id"], (*o["position"][kk], *(o["position"][kk] + o["size"])))
                             for o in objects]
                    for d, owned in zip(dets, _assign(dets, truth)):
                        window = crop_boxes(np.array([d.box]), res)[0]
                        if len(owned) == 1:
                            label = owned[0][0]
                            items.append(k), windows.append(window), ys.append(label)
                            jitter = window + rng.uniform(-0.1, 0.1, 4) * (window[2] - window[0])
                            items.append(k), windows.append(jitter), ys.append(label)
                            half = window.copy()                             # half an object: junk
                            axis = int(rng.integers(2))
                            half[[axis, axis + 2]] += rng.choice([-1, 1]) * 0.5 * (window[2] - window[0])
                            items.append(k), windows.append(half), ys.append(junk)
                        elif len(owned) > 1:                                  # overlapping objects, one blob
                            items.append(k), windows.append(window), ys.append(pair)
                if items:
                    crops.append(extract_crops(frames, items, np.array(windows)))
                    labels += ys
    x = torch.cat(crops)
    y = torch.tensor(labels)
    noise = _noise_blobs(len(x) // 6, rng)
    return torch.cat([x, noise]), torch.cat([y, torch.full((len(noise),), junk)])


def _noise_blobs(n: int, rng: np.random.Generator) -> torch.Tensor:
    """Junk like an untrained generator's: smoothed random fields, half of them thresholded into blobs of
    random size and shape, half left as shaded washes that fill the crop; random brightness."""
    out = np.zeros((n, 1, CROP, CROP), np.float32)
    for i in range(n):
        field = ndimage.gaussian_filter(rng.normal(size=(CROP, CROP)), rng.uniform(1.0, 4.0))
        field = (field - field.mean()) / (field.std() + 1e-8)
        if i % 2:
            mask = np.clip((field - rng.uniform(-0.5, 1.0)) * rng.uniform(1, 4), 0, 1)
        else:
            mask = np.clip(rng.uniform(0.5, 0.8) + field * rng.uniform(0.1, 0.3), 0, 1)
        out[i, 0] = mask * rng.uniform(0.4, 1.0)
    return torch.from_numpy(out)


def train_classifier(recipe: Dict, progress: bool = True) -> Tuple[Dict[str, torch.Tensor], Dict]:
    """Train from `recipe` with its fixed seed -> (state_dict, held-out scores on the test split)."""
    from tqdm.auto import tqdm
    t0 = time.time()
    dataset = recipe["dataset"]
    x, y = labelled_crops(dataset, recipe, "train", seed=0)
    num_classes = len(_SOURCES[dataset].class_names)
    with torch.random.fork_rng(devices=[]), trained_nets.threads(recipe["threads"]):
        torch.manual_seed(recipe["seed"])
        net = CropClassifier(num_classes)
        opt = torch.optim.AdamW(net.parameters(), lr=recipe["lr"], weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["lr"], total_steps=recipe["steps"])
        gen = torch.Generator().manual_seed(recipe["seed"])
        bar = tqdm(range(recipe["steps"]), desc=f"train object classifier ({dataset})", disable=not progress)
        for _ in bar:
            idx = torch.randint(len(x), (recipe["batch"],), generator=gen)
            xb = x[idx] * (0.7 + 0.3 * torch.rand(len(idx), 1, 1, 1, generator=gen))   # brightness jitter
            loss = F.cross_entropy(net(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.set_postfix_str(f"loss {loss.item():.3f}")
    net.eval()
    scores = evaluate_classifier(net, dataset, recipe)
    scores["train_crops"] = int(len(x))
    scores["train_seconds"] = round(time.time() - t0, 1)
    return net.state_dict(), scores


@torch.no_grad()
def evaluate_classifier(net: CropClassifier, dataset: str, recipe: Dict) -> Dict:
    """Accuracy on single real objects of the test split, and recall of the pair and junk classes."""
    x, y = labelled_crops(dataset, recipe, "test", seed=1)
    pred = net(x).argmax(1)
    pair = len(_SOURCES[dataset].class_names)
    real = y < pair
    return {"test_accuracy": round((pred[real] == y[real]).float().mean().item(), 4),
            "test_pair_recall": round((pred[y == pair] == pair).float().mean().item(), 4),
            "test_junk_recall": round((pred[y == pair + 1] == pair + 1).float().mean().item(), 4),
            "num_test_objects": int(real.sum())}
