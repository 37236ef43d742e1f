"""Lazy torch.compile wrappers: importing a module compiles nothing and touches no device."""
from __future__ import annotations

import functools

import torch

IMPLS = ("ref", "compiled")


def check_impl(impl: str) -> None:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")


def cpu_compile_options() -> dict:
    """Inductor's CPU vector width, stated explicitly so that it enters the compile cache's key.

    Inductor picks the width from the CPU and ATEN_CPU_CAPABILITY, but its on-disk graph cache (torch 2.14) keys
    on neither: a graph compiled with AVX-512 loops (16 floats a step) is served to an AVX2 process (8-float
    vectors), whose kernel then writes half of each step and leaves the rest of the output uninitialised (NaN).
    Naming the width Inductor would pick anyway changes no kernel, only the key (docs/inductor_vec_isa_cache.md)."""
    from torch._inductor import config
    from torch._inductor.cpu_vec_isa import pick_vec_isa
    if config.cpp.simdlen is not None:                    # the caller chose one: it is in the key already
        return {}
    return {"cpp.simdlen": pick_vec_isa().bit_width()}   # 0 (scalar), 256 (AVX2), 512 (AVX-512 / AMX)


def compile_fn(fn, **compile_kwargs):
    """torch.compile(fn) with `cpu_compile_options` merged under the caller's options."""
    options = {**cpu_compile_options(), **(compile_kwargs.pop("options", None) or {})}
    if compile_kwargs.get("mode") is not None:            # a mode or options, not both (modes: CUDA here)
        return torch.compile(fn, **compile_kwargs)
    return torch.compile(fn, options=options, **compile_kwargs)


def frozen(compiled):
    """`compiled` (a torch.compile'd inference function) called with inductor's freezing on: the parameters become
    constants, so casts and weight-only math fold and conv / linear weights are pre-packed for oneDNN. Passed as a
    torch.compile option, freezing does not happen (torch 2.14; BENCHMARKS.md "The compiled sampler was not
    frozen"); set in the config while the graph compiles, it does. Frozen graphs are not kept in inductor's on-disk
    cache (oneDNN-packed weights do not pickle): gan/sampling/aot.py keeps the sampler's as packages."""
    from torch._inductor import config

    @functools.wraps(compiled)
    def call(*args, **kwargs):
        with config.patch(freezing=True):
            return compiled(*args, **kwargs)
    return call


def lazy_compile(fn, **compile_kwargs):
    """Return `fn` compiled on first call (automatic dynamic shapes: a second size recompiles once as dynamic)."""
    compiled = None

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        nonlocal compiled
        if compiled is None:
            compiled = compile_fn(fn, **compile_kwargs)
        return compiled(*args, **kwargs)

    wrapper.reference = fn
    return wrapper
