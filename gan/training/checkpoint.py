"""Checkpoints as plain data: state dicts of unwrapped, uncompiled modules, the config as plain
types, counters, RNG states and a format version. Written atomically (temp file + fsync + rename),
so a kill at any moment leaves the previous checkpoint intact. Loaded with weights_only=True. Exported generators
may also be safetensors files (the config as JSON in the header)."""
from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Dict, Union

import numpy as np
import torch

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    pass


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The plain module behind DDP / torch.compile wrappers."""
    while True:
        if hasattr(module, "_orig_mod"):
            module = module._orig_mod
        elif isinstance(module, torch.nn.parallel.DistributedDataParallel):
            module = module.module
        else:
            return module


def rng_state() -> Dict[str, Any]:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
            "numpy": torch.from_numpy(np_state[1].astype(np.int64)), "numpy_pos": int(np_state[2])}


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(int(v) for v in state["python"]), None))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"]))


def save_atomic(obj: Dict[str, Any], path: Union[str, Path]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


SAFETENSORS_META = ("format_version", "kind", "config", "c_dim", "class_names", "step", "weights_dtype")


def save_safetensors(payload: Dict[str, Any], path: Union[str, Path]) -> None:
    """A generator file as safetensors: payload['G_ema'] as the tensors, every other field of SAFETENSORS_META
    as JSON text in the header metadata (safetensors metadata is str -> str). Written atomically."""
    from safetensors.torch import save_file
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: json.dumps(payload[k]) for k in SAFETENSORS_META if k in payload}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in payload["G_ema"].items()}, tmp, metadata=meta)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _load_safetensors(path: Path) -> Dict[str, Any]:
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise CheckpointError(f"cannot read safetensors file {path}: {e}") from None
    if "config" not in meta or "format_version" not in meta:
        raise CheckpointError(f"{path} has no reelgan config in its metadata (export it with "
                              f"`reelgan-export CKPT OUT --format safetensors`)")
    ckpt = {k: json.loads(v) for k, v in meta.items() if k in SAFETENSORS_META}
    ckpt["G_ema"] = state
    return ckpt


def load(path: Union[str, Path], map_location="cpu") -> Dict[str, Any]:
    """A checkpoint or exported generator file (torch .pt, or .safetensors from reelgan-export) as a dict."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        ckpt = _load_safetensors(path)
        if ckpt["format_version"] > FORMAT_VERSION:
            raise CheckpointError(f"{path} has format {ckpt['format_version']}, newer than this reelgan "
                                  f"({FORMAT_VERSION}); upgrade reelgan")
        return ckpt
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated or foreign file
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from None
    if not isinstance(ckpt, dict) or "format_version" not in ckpt:
        raise CheckpointError(f"{path} is not a reelgan checkpoint (no format_version)")
    if ckpt["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{path} has format {ckpt['format_version']}, newer than this reelgan "
                              f"({FORMAT_VERSION}); upgrade reelgan")
    return ckpt
