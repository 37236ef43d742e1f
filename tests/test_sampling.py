"""Generator-only sampling: per-seed determinism, chunking, frame rates, files, errors."""
import subprocess

import imageio_ffmpeg
import pytest
import torch

from gan.sampling import ClipRenderer, SamplingError, generate, load_generator, parse_seeds, render
from gan.training import train
from gan.video_io import probe_video


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from gan.config import load_config
    from tests.conftest import ROOT
    out = tmp_path_factory.mktemp("run")
    train(load_config(str(ROOT / "configs" / "tiny.yaml")), str(out), progress=False)
    return str(out / "checkpoints" / "latest.pt")


@pytest.fixture
def G(tiny_G):
    torch.nn.init.normal_(tiny_G.flow.weight)          # make motion visible in an untrained model
    return tiny_G


def test_a_seed_gives_the_same_clip_in_any_batch(G):
    alone = render(G, [7], 6)
    together = render(G, [3, 7, 11], 6)
    torch.testing.assert_close(alone[0], together[1], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(together[0], together[1])


def test_chunk_size_and_length_do_not_change_frames(G):
    a = render(G, [1], 20, chunk=3)
    b = render(G, [1], 20, chunk=16)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(render(G, [1], 8)[0], a[0, :8], rtol=1e-4, atol=1e-4)


def test_frame_rate_resamples_time(G):
    slow = render(G, [2], 10, time_step=0.5)          # twice the frame rate
    normal = render(G, [2], 5)
    torch.testing.assert_close(slow[:, ::2], normal, rtol=1e-4, atol=1e-4)


def test_long_clips_render_in_constant_memory_without_looping(G):
    chunks = ClipRenderer(G, chunk=8).render_chunks([0], None)      # endless
    frames = [next(chunks) for _ in range(130)]        # 1040 frames
    assert all(c.shape == (1, 8, 3, 16, 16) for c in frames)
    first, late = frames[0][0, 0], frames[-1][0, -1]
    assert torch.isfinite(late).all() and late.std() > 0.01          # not collapsed to noise-free flat
    assert (first - late).abs().mean() > 1e-3                         # not a loop back to the start


def test_generate_writes_playable_files(checkpoint, tmp_path):
    paths = generate(checkpoint, str(tmp_path / "mp4"), [0, 1, 2], frames=9, fps=10, batch=2, chunk=4)
    assert [p.name for p in paths] == ["seed0000.mp4", "seed0001.mp4", "seed0002.mp4"]
    info = probe_video(paths[0])
    assert info["frames"] == 9 and abs(info["fps"] - 10) < 1e-6
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(paths[0])],
                           capture_output=True, text=True).stderr
    assert "h264" in probe and "yuv420p" in probe
    gif = generate(checkpoint, str(tmp_path / "gif"), [4], frames=5, fmt="gif")[0]
    assert gif.suffix == ".gif" and gif.stat().st_size > 0
    png = generate(checkpoint, str(tmp_path / "png"), [4], frames=5, fmt="png")[0]
    assert len(list(png.glob("*.png"))) == 5
    grid = generate(checkpoint, str(tmp_path / "grid"), [0, 1, 2, 3], frames=4, fmt="grid")[0]
    assert probe_video(grid)["width"] > 2 * 16


def test_loading_rebuilds_from_the_checkpoint_config(checkpoint):
    G, info = load_generator(checkpoint)
    assert info["config"].name == "tiny" and info["step"] == 4
    assert not any(p.requires_grad for p in G.parameters()) and not G.training


def test_bad_requests_fail_clearly(checkpoint, tmp_path):
    assert parse_seeds("0-2,7") == [0, 1, 2, 7]
    for bad in ("", "a", "3-1", "-4"):
        with pytest.raises(SamplingError, match="seed"):
            parse_seeds(bad)
    with pytest.raises(SamplingError, match="unconditional"):
        generate(checkpoint, str(tmp_path), [0], frames=2, class_value="1")
    with pytest.raises(SamplingError, match="format"):
        generate(checkpoint, str(tmp_path), [0], frames=2, fmt="avi")


@pytest.mark.parametrize("extra", [[], ["--format", "gif", "--no-watermark"]])
def test_generate_reads_the_checkpoint_file_once(checkpoint, tmp_path, monkeypatch, extra):
    from click.testing import CliRunner

    import generate
    reads = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    res = CliRunner().invoke(generate.cli, ["--checkpoint", checkpoint, "--outdir", str(tmp_path), "--seeds", "0",
                                            "--frames", "2", *extra])
    assert res.exit_code == 0, res.output
    assert len(reads) == 1


def test_data_fps_sets_the_default_rate_and_the_time_step(checkpoint, tmp_path):
    # data.fps, the training data's frame rate: clips play at it unless --fps says otherwise, and --fps F renders
    # frames data.fps / F training frames apart (8 fps data at 16 fps: half-frame steps, every other one new).
    import numpy as np
    from PIL import Image

    from gan import checkpoint as ckpt_io
    state = ckpt_io.load(checkpoint)
    state["config"]["data"]["fps"] = 8.0
    eight = tmp_path / "eight.pt"
    ckpt_io.save_atomic(state, eight)
    assert probe_video(generate(str(eight), str(tmp_path / "mp4"), [2], frames=4)[0])["fps"] == 8

    def frames(fps):
        folder = generate(str(eight), str(tmp_path / f"png{fps}"), [2], frames=6, fps=fps, fmt="png",
                                 watermark=None)[0]
        return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))])
    at_8, at_16 = frames(None), frames(16)
    np.testing.assert_array_equal(at_16[::2], at_8[:3])
    assert np.abs(at_16[1].astype(int) - at_8[1]).max() > 0
