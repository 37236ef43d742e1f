"""Watermark v2: the payload's convolutional code (round trips under bit errors and noisy soft values), v2 marks
read after a real H.264 re-encode, v1 marks still read, and keys that say what a detection proves."""
import itertools
import json

import numpy as np
import pytest
from click.testing import CliRunner

from gan import video_io
from gan import watermark as wm
from gan import watermark_ecc as ecc
from gan.data import BouncingShapes
from gan.watermark_cli import cli as wm_cli, read_frames
from tests.conftest import ROOT

PAYLOAD = wm.make_payload(0x1234ABCD, 7)
FREE_DISTANCE = {2: 10, 3: 15}       # of the K = 7 codes (133, 171) and (133, 171, 165): (d - 1) // 2 errors fixed


@pytest.fixture(scope="module")
def clip():
    return BouncingShapes(resolution=64, num_videos=4, video_frames=16, num_objects=2).render(1, 0, 16)


@pytest.mark.parametrize("inv_rate", [2, 3])
def test_code_corrects_every_error_pattern_within_its_power(inv_rate):
    rng = np.random.default_rng(inv_rate)
    t = (FREE_DISTANCE[inv_rate] - 1) // 2
    for trial in range(60):
        bits = rng.integers(0, 2, wm.CODED_BITS)
        code = ecc.encode(bits, inv_rate)
        assert len(code) == ecc.coded_length(wm.CODED_BITS, inv_rate)
        soft = 2.0 * code - 1.0
        flip = rng.choice(len(code), size=t, replace=False)
        if trial % 2:                                            # a burst instead of scattered errors
            flip = (int(rng.integers(0, len(code) - t)) + np.arange(t)) % len(code)
        soft[flip] *= -1
        assert np.array_equal(ecc.decode(soft, wm.CODED_BITS, inv_rate), bits)
    # Beyond the power it may fail, but the decoder still returns the codeword nearest to the soft values.
    soft = 2.0 * ecc.encode(bits, inv_rate) - 1.0 + rng.normal(0, 2.0, len(code))
    out = ecc.decode(soft, wm.CODED_BITS, inv_rate)
    best = np.dot(soft, 2.0 * ecc.encode(out, inv_rate) - 1)
    for other in [bits] + [rng.integers(0, 2, wm.CODED_BITS) for _ in range(50)]:
        assert best >= np.dot(soft, 2.0 * ecc.encode(other, inv_rate) - 1) - 1e-9


def test_viterbi_is_maximum_likelihood_on_a_short_code():
    # Exhaustive check on 6 info bits: no codeword correlates better with the soft values than the decoded one.
    rng = np.random.default_rng(0)
    words = [np.array(w) for w in itertools.product([0, 1], repeat=6)]
    for _ in range(20):
        soft = rng.normal(0, 1, ecc.coded_length(6, 2))
        out = ecc.decode(soft, 6, 2)
        scores = [np.dot(soft, 2.0 * ecc.encode(w, 2) - 1) for w in words]
        assert np.dot(soft, 2.0 * ecc.encode(out, 2) - 1) == pytest.approx(max(scores))


def test_soft_values_with_noise_decode_far_better_than_hard_bits():
    # Es/N0 of -1.9 dB per coded bit (sigma 0.9, rate 1/3: Eb/N0 2.9 dB): ~13% of raw bits wrong,
    # the code's BER there is ~1e-4 (so a few errors in 5600 bits would already be unusual).
    rng = np.random.default_rng(1)
    raw = wrong = 0
    for _ in range(100):
        bits = rng.integers(0, 2, wm.CODED_BITS)
        code = ecc.encode(bits, 3)
        soft = 2.0 * code - 1.0 + rng.normal(0, 0.9, len(code))
        raw += np.sum((soft > 0) != code)
        wrong += np.sum(ecc.decode(soft, wm.CODED_BITS, 3) != bits)
    assert raw / (100 * len(code)) > 0.1
    assert wrong / (100 * wm.CODED_BITS) < 0.005
    with pytest.raises(ValueError, match="soft values"):
        ecc.decode(np.zeros(10), wm.CODED_BITS, 3)


def test_v2_mark_read_after_h264_crf23_and_v1_marks_still_read(clip, tmp_path):
    mark = wm.Watermarker(payload=PAYLOAD)
    assert mark.keys.version == 2 == wm.VERSION
    video_io.write_mp4(tmp_path / "a.mp4", clip, 16, crf=23, watermark=mark)
    det = wm.detect(read_frames(str(tmp_path / "a.mp4")))
    assert det.detected and det.version == 2 and det.payload == f"{PAYLOAD:012x}" and det.payload_valid
    assert det.channel_bit_errors is not None and det.key_public is True
    old = wm.detect(wm.Watermarker(payload=PAYLOAD, version=1).embed(clip))
    assert old.detected and old.version == 1 and old.payload == f"{PAYLOAD:012x}"
    # The two layouts have independent patterns: a v2-only search does not find a v1 mark.
    assert not wm.detect(wm.Watermarker(payload=PAYLOAD, version=1).embed(clip), versions=(2,)).detected
    assert not wm.detect(clip).detected


def test_detect_names_the_key_and_what_it_proves(clip, tmp_path):
    key = tmp_path / "wm.key"
    key.write_bytes(bytes(range(100, 132)))
    video_io.write_mp4(tmp_path / "pub.mp4", clip, 16, watermark=wm.Watermarker(payload=PAYLOAD))
    video_io.write_mp4(tmp_path / "priv.mp4", clip, 16, watermark=wm.Watermarker(key.read_bytes(), PAYLOAD))
    video_io.write_mp4(tmp_path / "none.mp4", clip, 16)
    run = CliRunner().invoke
    res = run(wm_cli, ["detect", str(tmp_path / "pub.mp4"), str(tmp_path / "priv.mp4")])
    pub, priv = res.output.strip().splitlines()
    fp_pub, fp_priv = wm.key_fingerprint(wm.PUBLIC_KEY), wm.key_fingerprint(key.read_bytes())
    assert f"detected, public key {fp_pub}" in pub and "proves nothing about origin" in pub
    assert "priv.mp4: post-hoc mark not detected with public key" in priv
    assert "in-weights mark not found" in priv
    res = run(wm_cli, ["detect", str(tmp_path / "priv.mp4"), str(tmp_path / "pub.mp4"), str(tmp_path / "none.mp4"),
                       "--key", str(key)])
    priv, pub, none = res.output.strip().splitlines()
    assert f"detected, private key {fp_priv}" in priv and "provenance" in priv and "mark v2" in priv
    assert f"detected, public key {fp_pub}" in pub and "forgeable by anyone" in pub
    assert f"not detected with private key {fp_priv} and public key {fp_pub}" in none
    assert key.read_bytes().hex() not in res.output
    out = json.loads(run(wm_cli, ["detect", str(tmp_path / "priv.mp4"), "--json", "--key", str(key)]).output)
    assert out["key_public"] is False and out["key_fingerprint"] == fp_priv and out["version"] == 2
    assert out["proves"].startswith("private key: provenance")


def _forms(key: bytes):
    import base64
    return [key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key), key[:16]]


def test_private_key_is_in_no_checkpoint_or_exported_model(tmp_path, monkeypatch):
    # Train with a private key named by the config and by $REELGAN_WATERMARK_KEY, render with it, export the
    # model as .pt and safetensors (and a hub folder if huggingface_hub is installed): no saved file holds the
    # key's bytes, hex or base64, and an exported model does not even name the key file.
    from gan.config import load_config
    from gan.export import export_generator
    from gan.training import train
    key_file = tmp_path / "secret.key"
    key = np.random.default_rng(7).bytes(32)
    key_file.write_bytes(key)
    monkeypatch.setenv(wm.KEY_ENV, str(key_file))
    cfg = load_config(str(ROOT / "configs" / "tiny.yaml"), {"train": {"steps": 2}, "watermark": {"key": str(key_file)}})
    run_dir = tmp_path / "run"
    train(cfg, str(run_dir), progress=False)
    ckpt = run_dir / "checkpoints" / "latest.pt"
    export_generator(ckpt, tmp_path / "G.pt")
    export_generator(ckpt, tmp_path / "G.safetensors", fmt="safetensors")
    try:
        from gan.hub import ReelganGenerator
        ReelganGenerator.from_checkpoint(ckpt).save_pretrained(str(tmp_path / "hub"))
    except ImportError:
        pass
    from gan.sampling import checkpoint_watermarker
    assert checkpoint_watermarker(ckpt).keys.key == key            # the key did mark this run's clips
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p != key_file]
    assert any(p.suffix == ".safetensors" for p in files) and len(files) >= 3
    for p in files:
        data = p.read_bytes()
        for form in _forms(key):
            assert form not in data, f"{p} holds the private key"
    for exported in [tmp_path / "G.pt", tmp_path / "G.safetensors"] + list((tmp_path / "hub").glob("*")):
        assert str(key_file).encode() not in exported.read_bytes(), f"{exported} names the key file"
