"""Lazy torch.compile wrappers: importing a module compiles nothing and touches no device."""
from __future__ import annotations

import functools

import torch

IMPLS = ("ref", "compiled")


def check_impl(impl: str) -> None:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")


def lazy_compile(fn, **compile_kwargs):
    """Return `fn` compiled on first call (automatic dynamic shapes: a second size recompiles once as dynamic)."""
    compiled = None

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        nonlocal compiled
        if compiled is None:
            compiled = torch.compile(fn, **compile_kwargs)
        return compiled(*args, **kwargs)

    wrapper.reference = fn
    return wrapper
