"""Invisible watermark (issue 20): detection, payload, keys, every output path, --no-watermark, CRF 28."""
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from gan import video_io
from gan import watermark as wm
from gan.checkpoint import FORMAT_VERSION
from gan.data import BouncingShapes
from gan.watermark_cli import cli as wm_cli, read_frames
from tests.conftest import ROOT

PAYLOAD = wm.make_payload(0x1234ABCD, 7)


@pytest.fixture(scope="module")
def clip():
    return BouncingShapes(resolution=64, num_videos=4, video_frames=16, num_objects=2).render(1, 0, 16)


@pytest.fixture(scope="module")
def mark():
    return wm.Watermarker(payload=PAYLOAD)


def _ckpt(path: Path, cfg, c_dim=0, extra=None) -> Path:
    """An untrained checkpoint at 64 px (the detector needs >= 32 px; the tiny preset is 16 px)."""
    from gan.networks import build_generator
    torch.manual_seed(0)
    G = build_generator(cfg, c_dim)
    torch.save({"format_version": FORMAT_VERSION, "config": cfg.to_dict(), "step": 0, "c_dim": c_dim, "G_ema": G.state_dict(),
                **(extra or {})}, path)
    return path


@pytest.fixture(scope="module")
def ckpt64(tmp_path_factory):
    from gan.config import load_config
    cfg = load_config(str(ROOT / "configs" / "tiny.yaml"), {"data": {"resolution": 64}})
    return _ckpt(tmp_path_factory.mktemp("wm") / "g64.pt", cfg)


def _expected_payload(ckpt, **kw) -> str:
    from gan.sampling import checkpoint_watermarker
    return f"{checkpoint_watermarker(ckpt, **kw).payload:012x}"


def _bits_agree(det, payload_hex: str) -> float:
    """Share of the 48 payload bits decoded right. On an untrained G's textured 64 px frames a few of the 56
    coded bits can flip even without compression (BENCHMARKS.md, "Watermark"); the exact round trip is
    tested on a clean clip above."""
    return float(np.mean(wm.decoded_bits(det) == wm.coded_bits(int(payload_hex, 16))[:wm.PAYLOAD_BITS]))


def _detect(path, key=wm.PUBLIC_KEY):
    return wm.detect(read_frames(str(path)), key=key)


# ---- the method ------------------------------------------------------------------------------------


@pytest.mark.numerics
def test_marked_detects_unmarked_does_not_and_payload_round_trips(clip, mark):
    marked = mark.embed(clip)
    assert marked.dtype == np.uint8 and marked.shape == clip.shape
    psnr = 10 * np.log10(255 ** 2 / np.mean((marked.astype(float) - clip) ** 2))
    assert psnr >= 40
    # Static mark: frames that were equal stay equal (no added flicker).
    assert np.array_equal(mark.embed(np.repeat(clip[:1], 3, 0))[1], mark.embed(clip[:1])[0])
    det = wm.detect(marked)
    assert det.detected and det.p_false < 1e-9 and det.verdict == "detected"
    assert det.payload == f"{PAYLOAD:012x}" and det.payload_valid and det.bit_confidence > 0.9
    assert det.shift == (0, 0) and det.scale == 1.0
    clean = wm.detect(clip)
    assert clean.detected is False and clean.p_false > 1e-3 and clean.payload is None


@pytest.mark.numerics
def test_wrong_key_does_not_detect(clip, mark):
    det = wm.detect(mark.embed(clip), key=b"somebody else's private key 123")
    assert det.detected is False and det.p_false > 1e-3


@pytest.mark.numerics
def test_crop_and_partial_clips_still_detect(clip, mark):
    marked = mark.embed(clip)
    cropped = wm.detect(marked[:, 6:-6, 6:-6])                  # 10% off each side: a cyclic shift of the tile
    assert cropped.detected and cropped.shift == (wm.TILE - 6, wm.TILE - 6)
    assert wm.detect(marked[::2]).detected and wm.detect(marked[:8]).detected


def test_too_small_or_empty_clips_are_undetermined(clip, mark):
    small = wm.detect(mark.embed(clip)[:, :20, :20])
    assert small.detected is None and small.verdict == "undetermined" and "at least 32x32" in small.reason
    assert wm.detect(np.zeros((0, 64, 64, 3), np.uint8)).verdict == "undetermined"


@pytest.mark.numerics
def test_crf28_reencode_of_a_small_clip_still_detects(clip, mark, tmp_path):
    video_io.write_mp4(tmp_path / "a.mp4", clip, 16, crf=28, watermark=mark)
    det = _detect(tmp_path / "a.mp4")
    assert det.detected and det.p_false < 1e-4
    video_io.write_mp4(tmp_path / "b.mp4", clip, 16, crf=28)
    assert not _detect(tmp_path / "b.mp4").detected


def test_keys_payloads_and_model_ids(tmp_path, monkeypatch):
    assert wm.parse_payload("0x1234abcd0007") == PAYLOAD
    for bad in ("xyz", "1" * 13):
        with pytest.raises(wm.WatermarkError):
            wm.parse_payload(bad)
    sd = {"a": torch.ones(2), "b": torch.zeros(3)}
    assert wm.model_id(sd, {"x": 1}) == wm.model_id(dict(sd), {"x": 1}) != wm.model_id(sd, {"x": 2})
    assert wm.model_id(sd) != wm.model_id({"a": torch.ones(2) * 2, "b": torch.zeros(3)})
    # A config field added in a later release, at its default, leaves an old model's id as it was; a set one counts.
    from gan.config import Config, load_config
    full, defaults = load_config(str(ROOT / "configs" / "tiny.yaml")).to_dict(), Config().to_dict()
    older = {k: dict(v) if isinstance(v, dict) else v for k, v in full.items()}
    del older["loss"]["motion_weight"], older["G"]["scene_warp"]
    assert wm.model_id(sd, full, defaults) == wm.model_id(sd, older, defaults)
    full["loss"]["motion_weight"] = 0.5
    assert wm.model_id(sd, full, defaults) != wm.model_id(sd, older, defaults)
    assert wm.resolve_key() == (wm.PUBLIC_KEY, "public default key")
    (tmp_path / "k").write_bytes(b"k" * 32)
    monkeypatch.setenv(wm.KEY_ENV, str(tmp_path / "k"))
    assert wm.resolve_key()[0] == b"k" * 32
    with pytest.raises(wm.WatermarkError, match="not found"):
        wm.read_key(tmp_path / "missing")


# ---- every output path ---------------------------------------------------------------------------------


def test_every_sampler_output_carries_the_models_mark(ckpt64, tmp_path):
    from gan.sampling import generate
    expected = _expected_payload(ckpt64)
    for fmt in ("mp4", "gif", "png", "grid"):
        paths = generate(str(ckpt64), str(tmp_path / fmt), [0, 1] if fmt == "grid" else [0], frames=16,
                                fmt=fmt, chunk=5)
        det = _detect(paths[0])
        assert det.detected, (fmt, det)
        assert _bits_agree(det, expected) >= 0.85, fmt
    off = generate(str(ckpt64), str(tmp_path / "off"), [0], frames=16, fmt="gif", watermark=None)[0]
    assert _detect(off).detected is False


def test_generate_cli_default_stream_no_watermark_and_private_key(ckpt64, tmp_path, monkeypatch):
    from generate import cli
    res = CliRunner().invoke(cli, ["--checkpoint", str(ckpt64), "--outdir", str(tmp_path / "on"), "--seeds", "0",
                                   "--frames", "16", "--format", "png"])
    assert res.exit_code == 0, res.output
    assert "watermark on" in res.stderr and _detect(tmp_path / "on" / "seed0000").detected
    res = CliRunner().invoke(cli, ["--checkpoint", str(ckpt64), "--outdir", str(tmp_path / "off"), "--seeds", "0",
                                   "--frames", "16", "--format", "png", "--no-watermark"])
    assert res.exit_code == 0 and "watermark OFF (--no-watermark)" in res.stderr
    assert _detect(tmp_path / "off" / "seed0000").detected is False
    # Stream (raw stdout), chunked: marked like the whole clip.
    res = CliRunner().invoke(cli, ["--checkpoint", str(ckpt64), "--stream", "--frames", "16", "--stream-to", "-",
                                   "--chunk", "3"])
    assert res.exit_code == 0, res.stderr
    frames = np.frombuffer(res.stdout_bytes, np.uint8).reshape(16, 64, 64, 3)
    det = wm.detect(frames)
    assert det.detected and _bits_agree(det, _expected_payload(ckpt64)) >= 0.85
    # A private key from the environment: the public key no longer finds it, the private one does.
    key = tmp_path / "wm.key"
    key.write_bytes(bytes(range(32)))
    monkeypatch.setenv(wm.KEY_ENV, str(key))
    res = CliRunner().invoke(cli, ["--checkpoint", str(ckpt64), "--outdir", str(tmp_path / "priv"), "--seeds", "0",
                                   "--frames", "16", "--format", "png", "--watermark-user", "9"])
    assert res.exit_code == 0 and "private key" in res.stderr
    assert _detect(tmp_path / "priv" / "seed0000").detected is False
    det = _detect(tmp_path / "priv" / "seed0000", key=key.read_bytes())
    assert det.detected and _bits_agree(det, _expected_payload(ckpt64, user_id=9)) >= 0.85


def test_conditional_sampling_is_marked(tmp_path):
    from gan.sampling import generate
    from gan.conditioning.text import build_text_encoder
    from gan.config import load_config
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = load_config(str(ROOT / "configs" / "t2v.yaml"),
                          {"cond": {"lpips_random_backbone": True}, "data": {"num_videos": 16, "resolution": 64}})
    enc = build_text_encoder(cfg.cond, ["a red circle moving left"])
    extra = {"cond": {"mode": "text", "text_encoder": enc.state_dict(), "text_vocab": enc.tokenizer.vocab,
                      "external_text_encoder": None}}
    ckpt = _ckpt(tmp_path / "t2v.pt", cfg, cfg.cond.text_dim, extra)
    path = generate(str(ckpt), str(tmp_path / "out"), [0], frames=16, fmt="png",
                                prompt="a red circle moving left")[0]
    det = _detect(path)
    assert det.detected and _bits_agree(det, _expected_payload(ckpt)) >= 0.85


def test_projection_rerender_is_marked(ckpt64, tmp_path, clip):
    from gan.projector import cli as project_cli
    video_io.write_mp4(tmp_path / "in.mp4", clip, 16)
    res = CliRunner().invoke(project_cli, [str(tmp_path / "in.mp4"), "--checkpoint", str(ckpt64),
                                           "--outdir", str(tmp_path / "p"), "--steps", "1", "--lpips-weight", "0",
                                           "--max-frames", "4", "--frames", "16"])
    assert res.exit_code == 0, res.output
    rerender = next((tmp_path / "p").glob("rerender_*.mp4"))
    assert _detect(rerender).detected
    assert _detect(tmp_path / "p" / "target.mp4").detected is False        # the user's input stays unmarked


# ---- the reelgan-watermark command ---------------------------------------------------------------------


@pytest.mark.numerics
def test_watermark_cli_embed_and_detect(clip, tmp_path):
    video_io.write_gif(tmp_path / "in.gif", clip, 16)
    res = CliRunner().invoke(wm_cli, ["embed", str(tmp_path / "in.gif"), str(tmp_path / "out.mp4"),
                                      "--payload", "1234abcd0007"])
    assert res.exit_code == 0, res.output
    video_io.write_png_frames(tmp_path / "tiny", clip[:, :16, :16])
    res = CliRunner().invoke(wm_cli, ["detect", str(tmp_path / "out.mp4"), str(tmp_path / "in.gif"),
                                      str(tmp_path / "tiny")])
    assert res.exit_code == 0
    lines = res.output.strip().splitlines()
    assert "out.mp4: post-hoc mark detected" in lines[0] and "1234abcd0007" in lines[0]
    assert "in.gif: post-hoc mark not detected" in lines[1] and "tiny: undetermined" in lines[2]
    res = CliRunner().invoke(wm_cli, ["detect", str(tmp_path / "out.mp4"), "--json"])
    out = json.loads(res.output)
    assert res.exit_code == 0 and out["detected"] is True and out["payload"] == "1234abcd0007"
    assert out["p_false"] < 1e-6 and 0.5 < out["bit_confidence"] <= 1


def test_config_watermark_section_sets_the_key_and_the_user_id(tmp_path, monkeypatch):
    # watermark.key / watermark.user_id: a model whose config names a key file and a user id is marked with them
    # (unless --watermark-key / $REELGAN_WATERMARK_KEY / --watermark-user say otherwise); the model id does not
    # depend on the section.
    from gan.config import load_config
    from gan.sampling import checkpoint_watermarker
    monkeypatch.delenv(wm.KEY_ENV, raising=False)
    key = tmp_path / "wm.key"
    key.write_bytes(bytes(range(32)))
    tiny = str(ROOT / "configs" / "tiny.yaml")
    plain = checkpoint_watermarker(_ckpt(tmp_path / "plain.pt", load_config(tiny)))
    own = checkpoint_watermarker(_ckpt(tmp_path / "own.pt", load_config(
        tiny, {"watermark": {"key": str(key), "user_id": 9}})))
    assert (plain.payload & 0xFFFF, own.payload & 0xFFFF) == (0, 9) and own.payload >> 16 == plain.payload >> 16
    assert plain.keys.key == wm.PUBLIC_KEY and own.keys.key == key.read_bytes() and "config" in own.origin
