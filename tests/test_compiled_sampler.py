"""The sampler's compiled path (--compile): it renders what eager renders, it really is frozen (the conv weights
pre-packed as constants, which torch.compile's freezing *option* silently skipped), and its compiled packages are
kept on disk and used again only where nothing that shaped them changed (gan/sampling/aot.py). Three tiny graphs
(~10 s each)."""
import logging
import os
import time
import zipfile

import pytest
import torch

from gan.sampling import FastSampler
from gan.sampling import aot
from gan.sampling.fast import FrameRenderer

T = torch.arange(4, dtype=torch.float64)


def _frames(sampler, seeds=(3, 5)):
    w, x, img = sampler.prepare(list(seeds))
    return sampler.frames((w, x, img), sampler.motion(list(seeds), T, w))


def _packages(folder):
    return sorted(p for p in folder.iterdir() if aot._NAME.match(p.name))


@pytest.mark.numerics
def test_compiled_frames_are_kept_and_loaded_again(tiny_G, caplog):
    folder = aot.compile_cache_dir()
    ref = _frames(FastSampler(tiny_G, chunk=4))
    first = FastSampler(tiny_G, chunk=4, compile=True)
    out = _frames(first)
    # float32 both ways; the compiled graph reorders sums (fused kernels, oneDNN's blocked convs)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    assert (first._fn.written, first._fn.loaded) == (1, 0)
    [package] = _packages(folder)
    with zipfile.ZipFile(package) as z:                   # frozen: the wrapper calls oneDNN's pre-packed convs
        wrapper = "".join(z.read(n).decode() for n in z.namelist() if n.endswith("wrapper.cpp"))
    assert "mkldnn__convolution_pointwise" in wrapper
    # A new process's sampler (a new object here) loads the package: no compile, the same kernels, the same frames.
    again = FastSampler(tiny_G, chunk=4, compile=True)
    torch.testing.assert_close(_frames(again), out, atol=0, rtol=0)
    assert (again._fn.written, again._fn.loaded) == (0, 1)
    # A torn package is said in one line and compiled again; the run goes on.
    package.write_bytes(package.read_bytes()[:1000])
    caplog.set_level(logging.WARNING, logger="gan.sampling.aot")
    torn = FastSampler(tiny_G, chunk=4, compile=True)
    torch.testing.assert_close(_frames(torn), ref, atol=1e-4, rtol=1e-4)
    assert (torn._fn.written, torn._fn.loaded) == (1, 0)
    assert [r.message for r in caplog.records if "do not load" in r.message and "compiling them again" in r.message]
    assert len(_packages(folder)) == 1 and not [p for p in folder.iterdir() if p.name.endswith(".tmp.pt2")]


@pytest.mark.numerics
def test_in_process_compile_without_the_cache_is_frozen(tiny_G, monkeypatch):
    monkeypatch.setenv("REELGAN_COMPILE_CACHE", "0")
    eager, compiled = FastSampler(tiny_G, chunk=4), FastSampler(tiny_G, chunk=4, compile=True)
    assert compiled._fn.cache is None
    outs = [_frames(s) for s in (eager, compiled)]
    with torch.profiler.profile() as prof:
        _frames(compiled)
    torch.testing.assert_close(outs[1], outs[0], atol=1e-4, rtol=1e-4)
    ops = {e.key for e in prof.key_averages()}
    assert "mkldnn::_convolution_pointwise" in ops, sorted(ops)          # frozen: weights pre-packed


def test_package_key_names_everything_that_shapes_the_kernels(tiny_G, monkeypatch):
    renderer = FrameRenderer(tiny_G)
    s = FastSampler(tiny_G, chunk=4)
    w, x, img = s.prepare([1])
    args = (renderer.video_state(w), x, img, s.motion([1], T, w))
    key = aot.package_key(renderer, args)
    assert aot.package_key(FrameRenderer(tiny_G), args) == key                   # deterministic
    assert aot.package_key(FrameRenderer(tiny_G, torch.bfloat16), args) != key   # precision
    assert aot.package_key(renderer, (args[0][:, :-1],) + args[1:]) != key      # input shapes
    changed = FrameRenderer(tiny_G)
    with torch.no_grad():
        next(p for p in changed.parameters() if p.numel() > 1).view(-1)[0] += 1e-3
    assert aot.package_key(changed, args) != key                                 # one weight
    n = torch.get_num_threads()
    torch.set_num_threads(1 if n > 1 else 2)
    try:
        assert aot.package_key(renderer, args) != key                            # threads (baked in)
    finally:
        torch.set_num_threads(n)
    aot._machine.cache_clear()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2" if os.environ.get("ONEDNN_MAX_CPU_ISA") != "AVX2" else "SSE41")
    try:
        assert aot.package_key(renderer, args) != key                            # kernel settings
    finally:
        monkeypatch.undo()
        aot._machine.cache_clear()
    assert aot.package_key(renderer, args) == key


def test_cache_folder_off_unwritable_and_pruned(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("REELGAN_COMPILE_CACHE", "0")
    assert aot.compile_cache_dir() is None
    monkeypatch.delenv("REELGAN_COMPILE_CACHE")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("REELGAN_CACHE", str(blocker))
    caplog.set_level(logging.WARNING, logger="gan.sampling.aot")
    assert aot.compile_cache_dir() is None
    [line] = [r.getMessage() for r in caplog.records]
    assert "cannot be made" in line and "REELGAN_CACHE" in line
    # The cache keeps the most recently used packages and drops writes abandoned an hour ago.
    folder = tmp_path / "compiled"
    folder.mkdir()
    now = time.time()
    names = [f"{i:064x}.pt2" for i in range(aot.KEEP_PACKAGES + 3)]
    for i, name in enumerate(names):
        (folder / name).write_bytes(b"x")
        os.utime(folder / name, (now - i, now - i))                          # names[0]: the newest
    stale, fresh = folder / f"{0:064x}.1.tmp.pt2", folder / f"{1:064x}.2.tmp.pt2"
    for p, age in ((stale, 7200), (fresh, 10)):
        p.write_bytes(b"x")
        os.utime(p, (now - age, now - age))
    aot._prune(folder)
    assert sorted(p.name for p in _packages(folder)) == sorted(names[:aot.KEEP_PACKAGES])
    assert not stale.exists() and fresh.exists()
