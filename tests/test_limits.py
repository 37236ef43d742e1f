"""One rule for every size and float: counts, sizes, frame numbers and resolutions from the CLI, a config, a
checkpoint's stored config or a metadata file are checked against this machine's memory (and the time the work
would take) before anything is allocated, and floats are finite; each bad one is one line, no traceback."""
import json
import time

import numpy as np
import pytest
import torch

import generate
import train
from gan import limits
from gan.checkpoint import load, save_safetensors
from gan.data.cli import main as dataset_cli
from gan.export import cli as export_cli
from gan.analysis.cli import analyze_cli
from gan.metrics.cli import metrics_cli
from tests.test_bad_input import TINY, _assert_clear, _hashes, _invoke, _train


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("limits") / "run"
    res = _train(out)
    assert res.exit_code == 0, res.output
    return out / "checkpoints" / "latest.pt"


@pytest.mark.parametrize("override, words", [
    ("train.batch=1000000000", ["train.batch", "memory", "available"]),
    ("G.channel_max=1000000", ["G.channel_max", "16384"]),
    ("train.sample_frames=1000000000", ["train.sample_frames"]),
    ("data.video_frames=1000000000", ["data.video_frames"]),
    ("data.num_videos=1000000000000", ["data.num_videos"]),
    ("data.fps=1e-300", ["data.fps"]),
    ("data.fps=.inf", ["data.fps", "finite"]),
])
def test_config_sizes_are_bounded_before_allocating(override, words):
    t0 = time.perf_counter()
    _assert_clear(_invoke(train.cli, ["--config", TINY, "--set", override, "--dry-run"]), words)
    assert time.perf_counter() - t0 < 60                              # refused, not allocated (was 30 s, 14 GB)


def test_require_memory_compares_with_what_is_available():
    avail = limits.available_memory()
    assert 0 < avail < 1 << 50
    limits.require_memory(avail * 0.1, "a small thing", "n/a")
    with pytest.raises(limits.LimitError, match="needs about"):
        limits.require_memory(avail * 2, "a big thing", "ask for less")
    with pytest.raises(limits.LimitError):
        limits.require_memory(float("inf"), "an infinite thing", "ask for less")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, "x", None])
def test_finite_refuses_what_is_not_a_finite_number_in_range(value):
    with pytest.raises(limits.LimitError, match="--fps"):
        limits.finite(value, "--fps", 0, 1000, lo_open=True)
    assert limits.finite("2.5", "--fps", 0, 1000, lo_open=True) == 2.5


def test_a_long_job_gets_an_estimate_and_days_of_work_are_refused():
    said = []

    def slow(n, dt):
        for k in range(n):
            time.sleep(dt)
            yield k
    assert list(limits.timed(slow(4, 0.01), 4, "job", said.append, progress=False)) == [0, 1, 2, 3]
    got = []
    with pytest.raises(limits.LimitError, match="would take about"):
        for k in limits.timed(slow(10 ** 9, 0.01), 10 ** 9, "huge", said.append, progress=False, max_hours=1):
            got.append(k)
    assert got == [0, 1]                                               # refused after two items, not at the end


@pytest.mark.parametrize("args, words", [
    (["--fps", "1e-300"], ["--fps"]), (["--fps", "nan"], ["--fps", "finite"]), (["--fps", "1e308"], ["--fps"]),
    (["--truncation", "nan"], ["--truncation", "finite"]), (["--frames", "1000000000"], ["--frames"]),
])
def test_generate_floats_and_frames_at_the_door(ckpt, tmp_path, args, words):
    _assert_clear(_invoke(generate.cli, ["--checkpoint", ckpt, "--outdir", tmp_path / "o", "--seeds", "0", *args]),
                  words)
    assert not (tmp_path / "o").exists()


def test_generate_refuses_a_clip_held_whole_that_does_not_fit_memory(ckpt, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "available_memory", lambda: 64 << 20)     # a 64 MiB machine
    _assert_clear(_invoke(generate.cli, ["--checkpoint", ckpt, "--outdir", tmp_path / "o", "--seeds", "0-3",
                                         "--frames", "100000", "--format", "gif"]), ["memory", "--format mp4"])


def _edited(ckpt, path, section, key, value):
    state = load(ckpt)
    state["config"][section][key] = value
    torch.save(state, path)
    return path


@pytest.mark.parametrize("section, key, value, words", [
    ("G", "channel_max", 10 ** 7, ["stored config", "G.channel_max"]),
    ("data", "fps", 0, ["stored config", "data.fps"]),
    ("data", "fps", float("nan"), ["stored config", "data.fps", "finite"]),
    ("data", "resolution", 1 << 20, ["stored config", "data.resolution"]),
])
def test_a_checkpoints_stored_config_is_checked(ckpt, tmp_path, section, key, value, words):
    bad = _edited(ckpt, tmp_path / "bad.pt", section, key, value)
    before = _hashes(tmp_path)
    _assert_clear(_invoke(generate.cli, ["--checkpoint", bad, "--outdir", tmp_path / "o"]), words)
    _assert_clear(_invoke(export_cli, [bad, tmp_path / "G.pt"]), words)
    assert _hashes(tmp_path) == before


def test_safetensors_metadata_that_is_not_json_is_one_line(ckpt, tmp_path):
    from safetensors.torch import save_file
    state = load(ckpt)
    path = tmp_path / "G.safetensors"
    save_file({k: v.contiguous() for k, v in state["G_ema"].items()}, str(path),
              metadata={"format_version": "2", "config": "{not json"})
    _assert_clear(_invoke(generate.cli, ["--checkpoint", path, "--outdir", tmp_path / "o"]), ["metadata", "JSON"])


def test_fp16_safetensors_export_refuses_weights_beyond_fp16(ckpt, tmp_path):
    state = load(ckpt)
    name = next(k for k, v in state["G_ema"].items() if v.is_floating_point() and v.numel() > 1)
    state["G_ema"][name].view(-1)[0] = 1e6                           # finite in fp32, Inf in fp16
    torch.save(state, tmp_path / "big.pt")
    for out in ("G.safetensors", "G.pt"):
        _assert_clear(_invoke(export_cli, [tmp_path / "big.pt", tmp_path / out, "--dtype", "fp16"]),
                      ["fp16", name, "bf16"])
        assert not (tmp_path / out).exists()
    assert _invoke(export_cli, [tmp_path / "big.pt", tmp_path / "G.safetensors", "--dtype", "bf16"]).exit_code == 0
    with pytest.raises(Exception, match="non-finite"):               # the writer itself never writes Inf
        save_safetensors({"format_version": 2, "config": {}, "G_ema": {"w": torch.tensor([float("inf")])}},
                         tmp_path / "inf.safetensors")


def test_metadata_labels_out_of_range_are_one_line(tmp_path):
    from gan.video_io import write_mp4
    src = tmp_path / "src"
    src.mkdir()
    for k in range(2):
        write_mp4(src / f"v{k}.mp4", np.zeros((6, 16, 16, 3), np.uint8), 8)
    for label in (10 ** 9, -3):
        (src / "metadata.jsonl").write_text("\n".join(json.dumps({"file": f"v{k}.mp4", "caption": "x",
                                                                  "label": label if k else 0}) for k in range(2)))
        _assert_clear(_invoke(dataset_cli, ["prepare", src, tmp_path / "out", "--resolution", "16"]),
                      ["label", str(label), "0.."])


@pytest.mark.parametrize("cmd, args, words", [
    (metrics_cli, ["--data", "digits", "--resolution", "16", "--metrics", "fvd-offline", "--num", "1000000000"],
     ["--num"]),
    (analyze_cli, ["--data", "digits", "--resolution", "16", "--num", "1000000000"], ["--num"]),
    (dataset_cli, ["export", "--out", "{t}/o", "--resolution", "100000"], ["--resolution"]),
    (dataset_cli, ["export", "--out", "{t}/o", "--frames", "1000000000"], ["--frames"]),
])
def test_cli_counts_are_bounded(tmp_path, cmd, args, words):
    t0 = time.perf_counter()
    _assert_clear(_invoke(cmd, [a.replace("{t}", str(tmp_path)) for a in args]), words)
    assert time.perf_counter() - t0 < 60 and not (tmp_path / "o").exists()


@pytest.mark.numerics
def test_watermark_detect_reads_a_large_clip_in_bounded_pieces(tmp_path, monkeypatch):
    """Large frames are read as a tile-aligned centre crop, a few frames at a time; the mark is still found
    (here the crop is made small, so a small clip stands in for a 4K one)."""
    from gan import watermark as wm
    from gan import watermark_cli as cli
    from gan.video_io import write_mp4
    rng = np.random.default_rng(0)
    frames = np.clip(rng.normal(128, 20, (6, 320, 384, 3)), 0, 255).astype(np.uint8)
    mark = wm.Watermarker(wm.PUBLIC_KEY, wm.parse_payload("1234abcd0007"))
    write_mp4(tmp_path / "big.mp4", frames, 8, watermark=mark)
    monkeypatch.setattr(cli, "MAX_SIDE", 128)
    monkeypatch.setattr(cli, "MAX_PIXELS", 128 * 128 * 4)
    parts = list(cli.frame_batches(str(tmp_path / "big.mp4"), 512, batch_pixels=128 * 128 * 2))
    assert [p.shape for p in parts] == [(2, 128, 128, 3), (2, 128, 128, 3)]
    det = cli.detect_file(str(tmp_path / "big.mp4"), wm.PUBLIC_KEY, wm.P_THRESHOLD, 512)
    assert det.detected and det.payload == "1234abcd0007" and det.frames == 4
