"""generate()'s one path: G built once (labels included), every mode rendered chunk by chunk in constant memory, and
the chunked path equal to the whole render."""
import importlib
import os
import shlex
import subprocess
import sys
import warnings

import pytest
import torch
from click.testing import CliRunner

from gan.config import load_config
from gan.networks import build_generator
from tests.conftest import ROOT
from tests.test_conditional import _fake_checkpoint, still_and_clip  # noqa: F401  (fixture)
from tests.test_labels import _save_G

PROMPT = "a red circle moving left"
gen_mod = importlib.import_module("gan.sampling.generate")     # the module (gan.sampling.generate is the function)
load_mod = importlib.import_module("gan.sampling.load")


def _counting_builds(monkeypatch):
    builds = []
    real = load_mod.build_generator

    def counted(*a, **k):
        builds.append(1)
        return real(*a, **k)
    monkeypatch.setattr(load_mod, "build_generator", counted)
    return builds


def test_labels_build_the_generator_once_and_render_each_clip_once(tmp_path, monkeypatch):
    import generate
    cfg = load_config(str(ROOT / "configs" / "tiny.yaml"), {"G": {"objects": 2}, "data": {"channels": 1}})
    torch.manual_seed(0)
    _save_G(build_generator(cfg), cfg, tmp_path / "G.pt")
    builds = _counting_builds(monkeypatch)
    rendered = []
    real_chunks = gen_mod.ClipRenderer.clip_chunks

    def counted_chunks(self, clips):
        for chunk in real_chunks(self, clips):
            rendered.append(chunk.frames.shape[:2])
            yield chunk
    monkeypatch.setattr(gen_mod.ClipRenderer, "clip_chunks", counted_chunks)
    res = CliRunner().invoke(generate.cli, ["--checkpoint", str(tmp_path / "G.pt"), "--outdir", str(tmp_path / "o"),
                                            "--seeds", "0-2", "--frames", "5", "--batch", "2", "--labels", "mot",
                                            "--dataset", str(tmp_path / "ds")])
    assert res.exit_code == 0, res.output
    assert len(builds) == 1
    assert sum(b * t for b, t in rendered) == 3 * 5                  # every frame of every clip rendered once
    assert len(list((tmp_path / "ds" / "images" / "train").glob("*.png"))) == 3 * 5


@pytest.mark.parametrize("mode", ["text", "image", "continue"])
def test_conditioned_clips_stream_to_the_writer_in_constant_memory(still_and_clip, monkeypatch, mode):  # noqa: F811
    # The writer gets the clips as an iterator of chunks; the largest tensor it is handed is one chunk, the same
    # for 4096 frames as for 64 (no whole clip is ever concatenated).
    d = still_and_clip
    ckpt = _fake_checkpoint(d / f"{mode}.pt", mode)
    option = {"text": {"prompt": "a red circle moving left"}, "image": {"image": str(d / "still.png")},
              "continue": {"video": str(d / "in.mp4")}}[mode]
    seen = {}

    def writer(clips, outdir, seeds, fps, fmt, watermark=None):
        assert not torch.is_tensor(clips)
        sizes = [part.numel() for part in clips]
        seen[len(sizes)] = (max(sizes), sum(sizes))
        return []
    monkeypatch.setattr(gen_mod, "write_clips", writer)
    for frames in (64, 4096):
        gen_mod.generate(str(ckpt), str(d / "o"), [0], frames, chunk=32, watermark=None, **option)
    (short, long_) = sorted(seen)
    assert seen[long_][0] == seen[short][0]                           # the largest chunk: the same
    context = 2 if mode == "continue" else 0
    assert seen[long_][1] == seen[short][1] * (4096 + context) // (64 + context)   # every frame came through


# generate.py's own command line in this process, then this process's peak resident memory (ru_maxrss: a
# high-water mark, in KiB on Linux; ffmpeg is a child process and not counted). Each argument is one run.
PEAK_RSS = """
import resource, runpy, shlex, sys
for args in sys.argv[1:]:
    sys.argv = ["generate.py"] + shlex.split(args)
    try:
        runpy.run_path("generate.py", run_name="__main__")
    except SystemExit as e:
        assert not e.code, e.code
    print("peak", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, flush=True)
"""


@pytest.mark.parametrize("mode", ["text", "image"])
def test_conditioned_clips_of_4096_frames_render_in_the_peak_memory_of_64(still_and_clip, mode):  # noqa: F811
    # The real path (generate.py, the renderer, the mp4 writer), no mocks: a 64-frame clip first, which sets the
    # peak (imports, G, one chunk's buffers), then a 4096-frame clip in the same process, so what the long clip
    # adds to the peak is what grows with the length. The whole 4096-frame clip at 64 px is 4096 * 3 * 64 * 64 =
    # 50 MB as uint8 (201 MB as the renderer's float32): holding even the uint8 clip adds most of that (a writer
    # that kept its frames: +40-60 MB; a renderer that concatenated: +560 MB); chunk by chunk (16 frames, 0.8 MB)
    # adds only allocator noise (a few MB). The bound, half the uint8 clip, lies between the two.
    res, frames = 64, 4096
    d = still_and_clip
    ckpt = _fake_checkpoint(d / f"{mode}.pt", mode, data={"resolution": res})
    option = ["--prompt", PROMPT] if mode == "text" else ["--image", str(d / "still.png")]
    runs = [shlex.join(["--checkpoint", str(ckpt), "--outdir", str(d / f"o{n}"), "--seeds", "0", "--frames", str(n),
                        "--chunk", "16", "--threads", "1", *option]) for n in (64, frames)]
    r = subprocess.run([sys.executable, "-c", PEAK_RSS, *runs], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert r.returncode == 0, r.stderr
    short, long_ = (int(line.split()[1]) for line in r.stdout.splitlines() if line.startswith("peak "))
    whole = frames * 3 * res * res
    assert long_ - short < whole / 2, f"peak {short / 2**20:.1f} MiB at 64 frames, {long_ / 2**20:.1f} MiB at {frames}"
    from gan.video_io import probe_video
    assert probe_video(d / "o4096" / "seed0000.mp4")["frames"] == frames        # the whole clip was written


@pytest.mark.parametrize("mode", ["text", "continue"])
def test_chunked_clips_equal_the_whole_render(still_and_clip, mode):  # noqa: F811
    from gan.sampling import ClipRenderer, load_generator
    from gan.sampling.conditions import Output, condition_for
    d = still_and_clip
    G, info = load_generator(_fake_checkpoint(d / f"{mode}.pt", mode))
    option = {"prompt": "a red circle moving left"} if mode == "text" else {"video": str(d / "in.mp4")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cond = condition_for(G, info, Output(str(d)), **option)
    whole = ClipRenderer(G, chunk=64).whole(cond.prepare(ClipRenderer(G, chunk=64), [3, 4], 12, 1.0, 1.0))
    r = ClipRenderer(G, chunk=5)
    chunked = r.whole(cond.prepare(r, [3, 4], 12, 1.0, 1.0))
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)
