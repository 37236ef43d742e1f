"""Bounds on every size a user can ask for, checked before anything is allocated (a leaf: imports only gan.errors).

A count, size, frame number or resolution is refused with one line when the memory it needs exceeds what this
machine has available now (psutil, else /proc/meminfo), or when the work it asks for would run for days.
Long work prints an estimate and a progress bar (`timed`). Floats that must be finite are checked by `finite`.
"""
from __future__ import annotations

import math
import os
import sys
import time
from typing import Callable, Iterable, Iterator, Optional, TypeVar

from gan.errors import ReelganError

T = TypeVar("T")

# A job that would run longer than this is a typo, not a request (an estimate above it is refused).
MAX_HOURS = 72.0
# Most of the available memory one allocation may take: the rest is for the model, the OS and other work.
MEMORY_SHARE = 0.5
# Class labels: ids in [0, MAX_CLASSES) (an embedding of c_dim rows is allocated; ImageNet-21k has 21841).
MAX_CLASSES = 100_000
# Any frame count / length a user gives (a day of video at 1000 fps is 8.6e7 frames).
MAX_FRAMES = 10 ** 8


class LimitError(ReelganError, ValueError):
    """A size, count or float outside what this machine can do, or not a finite number."""


def available_memory() -> int:
    """Bytes of memory available to a new allocation now (psutil, else /proc/meminfo's MemAvailable)."""
    try:
        import psutil
        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def human_seconds(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 3 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.0f} days"


def require_memory(nbytes: float, what: str, fix: str, share: float = MEMORY_SHARE) -> None:
    """Refuse `what` (one line naming `fix`) when it needs more than `share` of the memory available now."""
    avail = available_memory()
    if not math.isfinite(nbytes) or nbytes > share * avail:
        raise LimitError(f"{what} needs about {human_bytes(nbytes)} of memory; this machine has "
                         f"{human_bytes(avail)} available, so at most {human_bytes(share * avail)} is used for "
                         f"it: {fix}")


def require_int(value, name: str, lo: int, hi: int, fix: str = "") -> int:
    """An integer (not a bool, not a float) in [lo, hi], else a LimitError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer() and lo <= value <= hi:
            return int(value)
        raise LimitError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    if not lo <= value <= hi:
        raise LimitError(f"{name} must be in [{lo}, {hi}], got {value}" + (f": {fix}" if fix else ""))
    return value


def finite(value, name: str, lo: Optional[float] = None, hi: Optional[float] = None, lo_open: bool = False) -> float:
    """`value` as a finite float in [lo, hi] (lo excluded with lo_open), else a LimitError naming `name`."""
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise LimitError(f"{name} must be a number, got {value!r}") from None
    low_bad = lo is not None and (v <= lo if lo_open else v < lo)
    if not math.isfinite(v) or low_bad or (hi is not None and v > hi):
        lo_txt = "-inf" if lo is None else f"{lo:g}"
        hi_txt = "inf" if hi is None else f"{hi:g}"
        raise LimitError(f"{name} must be a finite number in {'(' if lo_open else '['}{lo_txt}, {hi_txt}], "
                         f"got {value!r}")
    return v


def timed(items: Iterable[T], total: int, what: str, log: Optional[Callable[[str], None]] = None,
          progress: bool = True, max_hours: float = MAX_HOURS) -> Iterator[T]:
    """Yield `items` (`total` of them) with a progress bar on stderr; after the second item (the first carries
    one-time costs), say how long the rest will take and refuse above max_hours (a LimitError raised into the
    caller's loop, so its writers clean up)."""
    bar = None
    if progress and total > 1:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, desc=what, unit="chunk", dynamic_ncols=True, file=sys.stderr, leave=False)
    t = time.perf_counter()
    try:
        for k, item in enumerate(items):
            yield item
            if bar is not None:
                bar.update(1)
            if k == 0:
                t = time.perf_counter()
            elif k == 1 and total > 2:
                per = time.perf_counter() - t
                eta = per * (total - 2)
                if eta > max_hours * 3600:
                    raise LimitError(f"{what} would take about {human_seconds(eta)} ({total} chunks at {per:.3f} s "
                                     f"each; at most {max_hours:g} h): ask for less (fewer frames or seeds)")
                if log is not None and eta > 10:
                    log(f"{what}: about {human_seconds(eta)} for the {total - 2} chunks left")
    finally:
        if bar is not None:
            bar.close()
