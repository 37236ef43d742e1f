"""Small networks that reelgan trains itself (the metrics' offline video feature net, the analysis' object
classifier): where their weights live and how they are made on first use. Below both gan/metrics and gan/analysis,
which each define their network and its recipe; `python -m gan.trained_nets_cli` trains them ahead of time.

A network is defined by a *recipe* (a plain dict: dataset, sizes, steps, seed, code version). Lookup order:

1. the shipped file `gan/assets/<kind>_<dataset>.pt`, when its stored recipe equals the current one;
2. the cache `<cache>/trained/<kind>_<dataset>_<recipe hash>.pt` (gan.weights.cache_root);
3. otherwise train now with the fixed seed (a few minutes on 2 CPU cores, logged) and save into the cache.

So a changed recipe never reuses stale weights, and results name the sha256 of the weights they used.
Files are data only (state dict + recipe + held-out scores), loaded with weights_only=True.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import torch

from gan.checkpoint import save_atomic
from gan.errors import ReelganError
from gan.weights import cache_root

logger = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "assets"
FORMAT_VERSION = 1


class TrainedNetError(ReelganError, RuntimeError):
    """A self-trained network that is missing and may not be trained here, or a broken weights file."""


@contextlib.contextmanager
def threads(n: int):
    """Train with a fixed thread count: CPU results depend on it (reduction order), and one thread also
    avoids OpenMP barrier stalls on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def recipe_hash(recipe: Dict) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def state_sha256(state: Dict[str, torch.Tensor]) -> str:
    """Hash of the weights themselves (independent of the container file)."""
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        buf = io.BytesIO()
        torch.save(state[key].detach().cpu().contiguous(), buf)
        h.update(buf.getvalue())
    return h.hexdigest()


def asset_path(kind: str, dataset: str) -> Path:
    return ASSETS / f"{kind}_{dataset}.pt"


def cache_path(kind: str, dataset: str, recipe: Dict) -> Path:
    return cache_root() / "trained" / f"{kind}_{dataset}_{recipe_hash(recipe)}.pt"


def _read(path: Path) -> Optional[Dict]:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:   # a truncated or foreign file: say which, then fall through to the next source
        logger.warning(f"ignoring unreadable weights file {path}: {e}")
        return None
    return blob if isinstance(blob, dict) and blob.get("format_version") == FORMAT_VERSION else None


def load_or_train(kind: str, dataset: str, recipe: Dict,
                  train_fn: Callable[[Dict], Tuple[Dict[str, torch.Tensor], Dict]],
                  allow_train: bool = True, path: Optional[str] = None) -> Tuple[Dict[str, torch.Tensor], Dict]:
    """(state_dict, info) for network `kind` on `dataset`; info has recipe, source file, sha256, scores.

    `train_fn(recipe) -> (state_dict, scores)` runs only when no stored weights match the recipe.
    `path` forces one file (its recipe must still match).
    """
    candidates = [Path(path)] if path else [asset_path(kind, dataset), cache_path(kind, dataset, recipe)]
    for p in candidates:
        if not p.is_file():
            continue
        blob = _read(p)
        if blob is None:
            continue
        if blob.get("recipe") != recipe:
            if path:
                raise TrainedNetError(f"{p} was trained with another recipe ({blob.get('recipe')}) than this "
                                      f"reelgan uses ({recipe}); delete it or drop the explicit path")
            continue
        return blob["state_dict"], _info(blob, p)
    if path:
        raise TrainedNetError(f"weights file {path} for the {kind} network does not exist")
    target = cache_path(kind, dataset, recipe)
    if not allow_train:
        raise TrainedNetError(f"no {kind} weights for '{dataset}' matching this recipe: expected "
                              f"{asset_path(kind, dataset)} or {target}; run `python -m gan.trained_nets_cli "
                              f"--dataset {dataset}` once to create them")
    logger.warning(f"training the {kind} network for '{dataset}' once (fixed seed {recipe.get('seed')}; "
                   f"a few minutes on a CPU); it is cached at {target}")
    blob = _blob(kind, dataset, recipe, *train_fn(recipe))
    save_atomic(blob, target)
    return blob["state_dict"], _info(blob, target)


def _blob(kind: str, dataset: str, recipe: Dict, state: Dict[str, torch.Tensor], scores: Dict) -> Dict:
    return {"format_version": FORMAT_VERSION, "kind": kind, "dataset": dataset, "recipe": recipe,
            "state_dict": {k: v.detach().cpu().contiguous() for k, v in state.items()}, "scores": scores}


def _info(blob: Dict, path: Path) -> Dict:
    return {"file": str(path), "recipe": blob["recipe"], "scores": blob.get("scores", {}),
            "sha256": state_sha256(blob["state_dict"])}


def export_asset(kind: str, dataset: str, recipe: Dict, state: Dict[str, torch.Tensor], scores: Dict) -> Path:
    """Write the shipped weights file (`python -m gan.trained_nets_cli --ship`)."""
    target = asset_path(kind, dataset)
    save_atomic(_blob(kind, dataset, recipe, state, scores), target)
    return target
