"""Compiled frame renderers kept on disk, so that `--compile` on a CPU costs its compile time once per model and
machine instead of at every launch.

Inductor's own on-disk cache skips frozen graphs (their oneDNN-packed weights cannot be pickled), so every process
used to compile the sampler anew (10-20 s before the first frame). Here the frozen FrameRenderer is compiled ahead
of time (AOTInductor: torch.export, then one .pt2 package holding the kernels and the weights) per input shape and
kept under $REELGAN_CACHE/compiled (~/.cache/reelgan/compiled); REELGAN_COMPILE_CACHE=0 turns the cache off.

A package is used only where everything that shaped it is unchanged: the renderer's weights and settings, the
generator's config, reelgan's source, torch's version, the CPU, its kernel settings (ATEN_CPU_CAPABILITY,
ONEDNN_MAX_CPU_ISA: kernels built for one abort under another), torch's thread count (inductor plans its parallel
loops for it) and the input shapes. Where the ahead-of-time path fails (an older torch, a full disk), the renderer
compiles in the process as before and says so in one line. int8 (gan/sampling/int8.py) still compiles in the
process: as packages its graphs started sooner but rendered slower, and int8 exists for speed. Speed and start
time: BENCHMARKS.md, "Compiled frames kept on disk".
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn as nn

from gan.errors import one_line
from gan.ops import compile_fn, cpu_compile_options, frozen

log = logging.getLogger(__name__)

KEEP_PACKAGES = 64                      # the cache keeps the most recently used ones
KEEP_BYTES = 4 << 30
_NAME = re.compile(r"^[0-9a-f]{64}\.pt2$")


def compile_cache_dir() -> Optional[Path]:
    """Where compiled packages are kept; None when REELGAN_COMPILE_CACHE=0 or the folder cannot be made (said)."""
    if os.environ.get("REELGAN_COMPILE_CACHE", "1").strip().lower() in ("0", "off", "false", "no"):
        return None
    from gan.weights import cache_root
    path = cache_root() / "compiled"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        log.warning("compiled-frames cache %s cannot be made (%s): compiling in this process; set REELGAN_CACHE "
                    "to a writable folder to keep compiled frames between runs", path, e.strerror or e)
        return None
    return path


@functools.lru_cache(maxsize=1)
def _source_digest() -> str:
    """reelgan's own Python source: a changed layer or op makes a new graph."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _machine() -> str:
    from gan.precision import cpu_flags
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    env = ",".join(f"{k}={os.environ.get(k, '')}" for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA"))
    # the CPU's flags and the kernel settings decide inductor's vector width (asking it costs a test compile)
    return "|".join([torch.__version__, model, " ".join(sorted(cpu_flags())), torch.backends.cpu.get_cpu_capability(),
                     env])


def package_key(renderer: nn.Module, args: Tuple[torch.Tensor, ...]) -> str:
    """The name (SHA-256) of `renderer`'s compiled package for inputs shaped like `args` on this machine."""
    h = hashlib.sha256()
    cfg = getattr(getattr(renderer, "G", None), "cfg", None)
    for part in ("reelgan-frames-aoti-1", _source_digest(), _machine(), f"threads={torch.get_num_threads()}",
                 renderer.extra_repr(), repr(cfg),
                 repr([(tuple(a.shape), str(a.dtype)) for a in args])):
        h.update(part.encode())
        h.update(b"\0")
    for name, t in renderer.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _prune(folder: Path) -> None:
    """Keep the KEEP_PACKAGES most recently used packages within KEEP_BYTES; drop unfinished writes of an hour ago."""
    now, entries = time.time(), []
    for p in folder.iterdir():
        try:
            st = p.stat()
        except OSError:
            continue
        if _NAME.match(p.name):
            entries.append((st.st_mtime, st.st_size, p))
        elif p.name.endswith(".tmp.pt2") and now - st.st_mtime > 3600:
            p.unlink(missing_ok=True)
    entries.sort(reverse=True)
    total = 0
    for i, (_, size, p) in enumerate(entries):
        total += size
        if i >= KEEP_PACKAGES or total > KEEP_BYTES:
            p.unlink(missing_ok=True)


def _said(e: BaseException) -> str:
    return f"{type(e).__name__}: {one_line(e)[:200]}"       # a compiler's message can run to pages


class CompiledFrames:
    """A FrameRenderer, frozen and compiled per input shape: from the package cache when `cache` holds it, else
    compiled ahead of time and kept there; with `cache` None (or where that path fails), torch.compile'd in the
    process (gan.ops.frozen)."""

    def __init__(self, renderer: nn.Module, cache: Optional[Path]):
        self.renderer, self.cache = renderer, cache
        self.loaded = self.written = 0          # packages read from / added to the cache by this renderer
        self._fns: Dict[Tuple, Callable] = {}
        self._jit: Optional[Callable] = None

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        args = tuple(a.contiguous() for a in args)             # a package takes the layouts it was exported with
        key = tuple((tuple(a.shape), a.dtype) for a in args)
        fn = self._fns.get(key)
        if fn is None:
            fn = self._fns[key] = self._build(args)
        return fn(*args)

    def _in_process(self) -> Callable:
        if self._jit is None:
            self._jit = frozen(compile_fn(self.renderer))
        return self._jit

    def _build(self, args) -> Callable:
        if self.cache is None:
            return self._in_process()
        path = self.cache / f"{package_key(self.renderer, args)}.pt2"
        if path.exists():
            try:
                fn = torch._inductor.aoti_load_package(str(path))
                os.utime(path)                                   # most recently used: kept longest
                self.loaded += 1
                return fn
            except Exception as e:                               # a torn or foreign file: build it again
                log.warning("compiled frames %s do not load (%s): compiling them again", path, _said(e))
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.pt2")
        try:
            from torch._inductor import config
            with torch.inference_mode(False), torch.no_grad():       # inductor freezes only with grad off
                exported = torch.export.export(self.renderer, args)
                with config.patch(freezing=True, **cpu_compile_options()):
                    torch._inductor.aoti_compile_and_package(exported, package_path=str(tmp))
            fn = torch._inductor.aoti_load_package(str(tmp))
            os.replace(tmp, path)                                # whole or not at all; a parallel run may race us
            self.written += 1
            _prune(self.cache)
            return fn
        except Exception as e:
            tmp.unlink(missing_ok=True)
            log.warning("compiling the frames ahead of time failed (%s): compiling them in this process, not kept "
                        "between runs", _said(e))
            return self._in_process()


__all__ = ["CompiledFrames", "compile_cache_dir", "package_key"]
