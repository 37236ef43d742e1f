"""Small helpers shared by the click commands."""
from __future__ import annotations

from typing import Any, Dict, Iterable

import click
import yaml


def parse_overrides(items: Iterable[str]) -> Dict[str, Any]:
    """['train.batch=8', 'loss.augment=[color]'] -> nested dict; values are parsed as YAML."""
    out: Dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE (e.g. train.batch=8)", param_hint="--set")
        key, value = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(value)
    return out


def pick_device(device: str) -> str:
    import torch
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise click.BadParameter(f"{device!r} requested but CUDA is not available; use --device cpu",
                                 param_hint="--device")
    return device
