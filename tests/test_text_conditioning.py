"""Text-to-video conditioning: tokenizer and encoders, the condition reaching G and both Ds, the matching-aware
loss and its caption negatives (split from tests/test_conditional.py)."""
import warnings

import pytest
import torch

from gan.checkpoint import FORMAT_VERSION
from gan.conditioning import ConditionError, LearnedTextEncoder, TextEncoder, WordTokenizer
from gan.config import ConfigError, load_config
from gan.networks import build_discriminators, build_generator
from losses.adversarial import d_logistic
from losses.conditional import d_matching_aware
from tests.conftest import ROOT

CONFIGS = {m: str(ROOT / "configs" / f"{n}.yaml") for m, n in (("image", "i2v"), ("continue", "continue"),
                                                              ("text", "t2v"))}


def _cfg(mode, **over):
    base = {"cond": {"lpips_random_backbone": True}, "data": {"num_videos": 16}}
    for k, v in over.items():
        base.setdefault(k, {}).update(v)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_config(CONFIGS[mode], base)



def test_tokenizer_and_text_encoders_follow_the_protocol():
    tok = WordTokenizer.build(["a red circle moving up-left", "a blue square moving right quickly"], max_tokens=6)
    ids = tok(["A red circle moving up-left.", "a zorbly square"])
    assert ids.shape == (2, 5) and ids[1, 1] == 1 and ids[1, 3] == 0          # unknown -> 1, padding -> 0
    assert tok.unknown_words("a zorbly square") == ["zorbly"]
    assert tok.vocab[ids[0, 4]] == "up-left"
    for kind in ("transformer", "bag"):
        torch.manual_seed(0)
        enc = LearnedTextEncoder(tok, dim=8, kind=kind)
        assert isinstance(enc, TextEncoder)
        e = enc.encode(["a red circle moving up-left", "a blue square moving right"])
        assert e.shape == (2, 8) and (e[0] - e[1]).abs().max() > 1e-3
    order = LearnedTextEncoder(tok, dim=8).encode(["a red circle moving right", "a right circle moving red"])
    assert (order[0] - order[1]).abs().max() > 1e-4                           # the transformer sees word order


def _text_setup(objects=None, **cond):
    from gan.training.modes import TextMode
    from gan.data import build_dataset
    from losses import ClipAugment, VideoGANLoss
    cfg = _cfg("text", cond=cond, **({"G": {"objects": objects}} if objects is not None else {}))
    torch.manual_seed(0)
    ds = build_dataset(cfg.data, seed=0)
    ct = TextMode(cfg, ds, "cpu")
    G = build_generator(cfg, ct.c_dim)
    D_image, D_video = build_discriminators(cfg, ct.c_dim)
    loss = VideoGANLoss(G, D_image, D_video, ClipAugment([]), cfg.D.image_frames, r1_gamma=0.1, **ct.loss_hooks())
    data = torch.utils.data.default_collate([ds[i] for i in range(4)])
    batch = ct.make_batch(G, data, "cpu", torch.Generator().manual_seed(0))
    return ct, G, D_image, D_video, loss, batch


@pytest.mark.parametrize("objects", [1, 0])        # the preset's layered G, and the synthesis G
def test_text_condition_reaches_G_and_both_Ds_with_gradients(objects):
    ct, G, D_image, D_video, loss, batch = _text_setup(objects=objects)
    assert G.objects == objects and G.context_frames == 0
    assert G.c_dim == D_image.c_dim == D_video.c_dim == ct.cfg.cond.text_dim
    assert len(batch.real_captions) == 4 and batch.gen_c.shape == (4, ct.cfg.cond.text_dim)
    enc = ct.text_encoder
    stats = loss.accumulate_gradients("Dmain", batch)
    assert {"mismatch/logit_image", "mismatch/logit_video"} <= set(stats)
    assert {"real/sign_image", "real/sign_video"} <= set(stats)              # what adaptive augmentation reads
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.out.parameters())   # trained with D
    assert D_video.epilogue.embed.weight.grad.abs().sum() > 0 and D_image.epilogue.embed.weight.grad.abs().sum() > 0
    enc.zero_grad(set_to_none=True)
    loss.accumulate_gradients("Gmain", batch)
    mapping, motion = (G.mapping.net, G.motion.net) if objects else (G.mapping, G.motion)
    assert mapping.embed.weight.grad.abs().sum() > 0                          # the caption reaches G
    assert motion.w_embed.weight.grad.abs().sum() > 0                         # ... and its motion ("moving left")
    if objects:
        assert G.motion.kinematics.weight.grad.abs().sum() > 0                # ... and the sprite's velocity
    assert all(p.grad is None for p in enc.parameters())                      # G's phase leaves the encoder alone
    assert loss.accumulate_gradients("Dreg", batch)["D/loss_r1"] >= 0
    # Different captions give different generated clips and different D scores for the same clip.
    t = torch.arange(3.0)[None].expand(2, -1)
    c = enc.encode(["a red circle moving left", "a blue square moving up"]).detach()
    z = torch.randn(1, G.z_dim).expand(2, -1)
    out = G(z, c, t, G.sample_motion(1, 2.0).expand(2, -1, -1))
    assert (out[0] - out[1]).abs().max() > 1e-4
    clip = batch.real[:1].expand(2, -1, -1, -1, -1)
    assert (D_video(clip, batch.times[:1].expand(2, -1), c)[0] - D_video(clip, batch.times[:1].expand(2, -1), c)[1]
            ).abs() > 1e-6


def test_external_text_encoder_is_used_frozen_and_required_at_sampling(tmp_path):
    from gan.sampling import load_conditional
    from gan.training.modes import TextMode
    from gan.data import build_dataset

    class Hashing:                                          # any object with .dim and .encode fits the protocol
        dim = 32

        def encode(self, captions):
            return torch.stack([torch.randn(32, generator=torch.Generator().manual_seed(hash(c) % 2 ** 31))
                                for c in captions])
    cfg = _cfg("text")
    ct = TextMode(cfg, build_dataset(cfg.data, seed=0), "cpu", text_encoder=Hashing())
    assert ct.external_text and ct.d_parameters() == [] and ct.state()["cond"]["external_text_encoder"] == "Hashing"
    with pytest.raises(ValueError, match="text_dim"):
        TextMode(_cfg("text", cond={"text_dim": 16}), build_dataset(cfg.data, seed=0), "cpu",
                            text_encoder=Hashing())
    torch.save({"format_version": FORMAT_VERSION, "config": cfg.to_dict(), "G_ema": build_generator(cfg, ct.c_dim).state_dict(),
                "c_dim": 32, **ct.state()}, tmp_path / "ext.pt")
    with pytest.raises(ConditionError, match="external text encoder"):
        load_conditional(tmp_path / "ext.pt")
    assert load_conditional(tmp_path / "ext.pt", text_encoder=Hashing())[1]["text_encoder"] is not None


def test_matching_aware_loss_sign():
    real, fake = torch.tensor([1.0, 2.0]), torch.tensor([-1.0, 0.5])
    low, high = torch.tensor([-3.0, -2.0]), torch.tensor([3.0, 2.0])
    # A D that calls (real clip, wrong caption) real pays more; weight 0 is the plain logistic loss.
    assert d_matching_aware(real, fake, high) > d_matching_aware(real, fake, low)
    torch.testing.assert_close(d_matching_aware(real, fake, high, weight=0.0), d_logistic(real, fake))
    m = low.clone().requires_grad_(True)
    d_matching_aware(real, fake, m).backward()
    assert (m.grad > 0).all()                       # descent pushes D(real, wrong caption) down, i.e. towards fake
    # A "wrong" caption identical to the right one is not counted.
    masked = d_matching_aware(real, fake, torch.tensor([5.0, -2.0]), torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(masked, d_logistic(real, fake) + torch.nn.functional.softplus(torch.tensor(-2.0)))
    # In the loss object: the mismatch term adds to the D loss (same batch, same networks).
    _, _, _, _, loss, batch = _text_setup()
    torch.manual_seed(1)
    with_term = loss.accumulate_gradients("Dmain", batch)["D/loss"]
    loss.terms[0].weight = 0.0
    torch.manual_seed(1)
    assert loss.accumulate_gradients("Dmain", batch)["D/loss"] < with_term


def test_caption_negatives_swap_one_factor_and_flag_what_a_frame_shows():
    from gan.conditioning.text import CaptionNegatives, words
    neg = CaptionNegatives(appearance=[["red", "blue"], ["1", "8"]], motion=[["left", "right"]], swap=1.0)
    caps = ["a 1 moving left", "a red 8 moving right"]
    kinds = set()
    for seed in range(30):
        wrong, differs, looks = neg(caps, torch.Generator().manual_seed(seed))
        assert differs.all()
        for c, w, lk in zip(caps, wrong, looks.tolist()):
            a, b = words(c), words(w)
            changed = [k for k in range(len(a)) if a[k] != b[k] and a[k] not in ("a", "an")]
            assert len(a) == len(b) and len(changed) == 1                 # exactly one factor word differs
            old, new = a[changed[0]], b[changed[0]]
            assert neg.group_of[old] == neg.group_of[new]                 # ... for another of its group
            assert lk == (old not in ("left", "right"))                   # a motion-only swap: a frame looks right
            if b[changed[0] - 1] in ("a", "an"):
                assert b[changed[0] - 1] == ("an" if new == "8" else "a")  # the article follows the new word
            kinds.add(old)
    assert kinds == {"1", "red", "8", "left", "right"}                    # every grouped word gets swapped
    again = neg(caps, torch.Generator().manual_seed(3))[0]
    assert again == neg(caps, torch.Generator().manual_seed(3))[0]        # the loop's generator decides
    # swap 0, or a caption without grouped words: another clip's caption (the roll), flagged when it differs.
    for n, cs in ((CaptionNegatives([["red", "blue"]], swap=0.0), ["a red dot", "a blue dot", "a red dot"]),
                  (CaptionNegatives([["red", "blue"]], swap=1.0), ["one dot", "two dots", "one dot"])):
        wrong, differs, looks = n(cs)
        assert wrong == cs[1:] + cs[:1] and differs.tolist() == [True, True, False] == looks.tolist()
    with pytest.raises(ValueError, match="two caption word groups"):
        CaptionNegatives([["red", "blue"]], [["red", "left"]])


def test_text_training_uses_the_datasets_word_groups_and_config_checks_them():
    from gan.training.modes import caption_negatives
    from gan.data import BouncingShapes, MovingDigits
    from gan.data.builtin import PALETTE
    cfg = _cfg("text")
    assert cfg.cond.mismatch_swap == 0.5
    shapes = caption_negatives(cfg.cond, BouncingShapes(resolution=16, num_videos=4))
    assert shapes.groups[0] == list(PALETTE) and "up-left" in shapes.motion and "circle" not in shapes.motion
    digits = caption_negatives(cfg.cond, MovingDigits(resolution=16, num_videos=4))
    assert "red" not in digits.group_of and "7" in digits.group_of
    own = caption_negatives(_cfg("text", cond={"appearance_words": [["cat", "dog"]]}).cond,
                            BouncingShapes(resolution=16, num_videos=4))
    assert own.groups == [["cat", "dog"]] and not own.motion             # the config's groups replace the dataset's
    with pytest.raises(ConfigError, match=r"cond.motion_words\[0\].*'Left'"):
        _cfg("text", cond={"motion_words": [["Left", "right"]]})
    with pytest.raises(ConfigError, match="at least two different words"):
        _cfg("text", cond={"appearance_words": [["red"]]})
    with pytest.raises(ConfigError, match="mismatch_swap"):
        _cfg("text", cond={"mismatch_swap": 1.5})
    with pytest.raises(ConfigError, match="mismatch_negatives must be 'swaps'.*got 'all'"):
        _cfg("text", cond={"mismatch_negatives": "all"})


@pytest.mark.parametrize("negatives", ["swaps", "sampled"])
def test_image_D_ignores_wrong_captions_that_differ_only_in_motion(negatives):
    _, _, D_image, _, loss, batch = _text_setup(mismatch_negatives=negatives)
    k = len(batch.wrong_captions) // 4
    assert batch.mismatch_mask.shape == batch.mismatch_mask_image.shape == (4, k)
    assert (k > 10) == (negatives == "swaps")                   # every swap of a shapes caption, or one negative

    def d_losses(weight, mask_image):
        loss.terms[0].weight = weight
        batch.mismatch_mask = torch.ones(4, k)
        batch.mismatch_mask_image = mask_image
        torch.manual_seed(1)
        stats = loss.accumulate_gradients("Dmain", batch)
        return stats["D/loss_image"], stats["D/loss_video"]
    plain_i, plain_v = d_losses(0.0, torch.ones(4, k))
    motion_i, motion_v = d_losses(1.0, torch.zeros(4, k))       # every negative a motion-only swap
    looks_i, looks_v = d_losses(1.0, torch.ones(4, k))
    assert motion_i == pytest.approx(plain_i, abs=1e-6)         # the image D is not asked to see motion
    assert motion_v > plain_v and looks_i > plain_i             # ... the video D is; appearance counts for both


def test_discriminators_score_several_captions_per_clip_on_one_pass():
    # c [N, K, dim] -> logits [N, K], each equal to scoring that caption alone (the matching-aware loss relies on it).
    _, _, D_image, D_video, _, batch = _text_setup()
    torch.manual_seed(0)
    c = torch.randn(4, 3, D_video.c_dim)
    times = batch.times - batch.times[:, :1]
    with torch.no_grad():
        many_v = D_video(batch.real, times, c)
        many_i = D_image(batch.real[:, 0], c)
        assert many_v.shape == many_i.shape == (4, 3)
        for j in range(3):
            assert torch.allclose(many_v[:, j:j + 1], D_video(batch.real, times, c[:, j]), atol=1e-4, rtol=1e-4)
            assert torch.allclose(many_i[:, j:j + 1], D_image(batch.real[:, 0], c[:, j]), atol=1e-4, rtol=1e-4)
        assert not torch.allclose(many_v[:, 0], many_v[:, 1])             # ... and the caption matters
    with pytest.raises(ValueError, match="N = 4"):
        D_video(batch.real, times, c[:2])


def test_every_one_word_swap_weighted_for_the_D_that_can_see_it():
    from gan.conditioning.text import CaptionNegatives, words
    neg = CaptionNegatives(appearance=[["red", "blue", "green"], ["1", "8"]], motion=[["left", "right"]])
    caps = ["a red 1 moving left", "an 8 moving right", "a dot"]
    wrong, w_video, w_image = neg.table(caps)
    k = w_video.shape[1]
    assert len(wrong) == 3 * k and k == 2 + 1 + 1 + 1                    # 2 colours, 1 digit, 1 direction, other
    row = wrong[:k]
    assert row[:4] == ["a blue 1 moving left", "a green 1 moving left", "a red 8 moving left",
                       "a red 1 moving right"] and row[4] == caps[1]      # every swap, then another clip's caption
    # The video D weighs motion swaps only, the image D appearance swaps and the other clip's caption; each
    # group weighs the same (colour's two swaps 1/6 each, the digit swap 1/3, the other caption 1/3).
    assert w_video[0].tolist() == [0, 0, 0, 1, 0]
    assert w_image[0].tolist() == pytest.approx([1 / 6, 1 / 6, 1 / 3, 0, 1 / 3])
    assert wrong[k:2 * k] == ["a 1 moving right", "an 8 moving left", caps[2], caps[1], caps[1]]  # the article
    assert w_video[1].tolist() == [0, 1, 0, 0, 0]                        # follows the new word; padding weighs 0
    assert w_image[1].tolist() == [0.5, 0, 0.5, 0, 0]
    for b, n in ((0, 4), (1, 2)):
        assert w_video[b].sum() == pytest.approx(1) and w_image[b].sum() == pytest.approx(1)
        for j in range(n):                                               # swaps differ in exactly one word
            a, w = words(caps[b]), words(wrong[b * k + j])
            assert sum(x != y for x, y in zip(a, w) if x not in ("a", "an")) == 1
    # A caption without grouped words has only the other clip's caption, which the video D ignores here
    # (it has motion groups to read), and padding (itself) weighs nothing.
    assert wrong[2 * k:] == [caps[0]] + [caps[2]] * (k - 1)
    assert w_video[2].sum() == 0 and w_image[2].tolist() == [1, 0, 0, 0, 0]
    # Without motion groups the video D takes every negative that differs.
    _, wv, _ = CaptionNegatives([["red", "blue"]]).table(["a red dot", "a blue dot"])
    assert wv.tolist() == [[0.5, 0.5], [0.5, 0.5]]


# ---- reconstruction losses of image / continue ------------------------------------------------------------


