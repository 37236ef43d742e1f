"""Losses: signs, R1 on a known function, augmentation consistency, and each phase's gradients."""
import pytest
import torch

from gan.networks import build_discriminators, build_generator
from losses import (AdaptiveAugment, Batch, ClipAugment, LossTerm, VideoGANLoss, d_logistic, g_nonsaturating,
                    r1_penalty)


def test_loss_signs():
    lo, hi = torch.tensor([-3.0]), torch.tensor([3.0])
    assert g_nonsaturating(hi) < g_nonsaturating(lo)               # G wants high fake logits
    assert d_logistic(hi, lo) < d_logistic(lo, hi)                 # D wants real high, fake low
    torch.testing.assert_close(d_logistic(torch.zeros(4), torch.zeros(4)), torch.tensor(2 * 0.6931472))


def test_r1_on_a_known_function():
    # D(x) = sum_i a_i x_i^2  ->  dD/dx = 2 a x  ->  R1 = sum (2 a x)^2, per sample.
    a = torch.tensor([1.0, -2.0, 0.5])
    x = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 2.0]], requires_grad=True)
    r1 = r1_penalty((a * x * x).sum(1), x)
    expected = ((2 * a * x.detach()) ** 2).sum(1)
    torch.testing.assert_close(r1, expected)
    r1.sum().backward()                                            # differentiable (double backward)
    torch.testing.assert_close(x.grad, 8 * a * a * x.detach() * 2 / 2)


def test_augmentation_is_shared_by_the_frames_of_a_clip():
    aug = ClipAugment(["translation", "color", "cutout", "flip"], prob=1.0)
    frame = torch.rand(4, 1, 3, 16, 16) * 2 - 1
    video = frame.expand(-1, 5, -1, -1, -1).contiguous()            # static clips
    out = aug(video, generator=torch.Generator().manual_seed(0))
    assert out.shape == video.shape
    torch.testing.assert_close(out, out[:, :1].expand_as(out))      # no fake motion
    assert not torch.allclose(out, video)
    assert not torch.allclose(out[0], out[1])                       # per-clip parameters
    with pytest.raises(ValueError, match="unknown augmentation"):
        ClipAugment(["zoom"])


def _setup(cfg):
    torch.manual_seed(0)
    G = build_generator(cfg)
    Di, Dv = build_discriminators(cfg)
    loss = VideoGANLoss(G, Di, Dv, ClipAugment(["translation"], 0.5), cfg.D.image_frames, r1_gamma=1.0)
    r, b, t = cfg.data.resolution, 4, cfg.data.clip_frames
    times = torch.arange(t, dtype=torch.float32)[None].repeat(b, 1)
    batch = Batch(real=torch.rand(b, t, 3, r, r) * 2 - 1, times=times, real_c=None, z=torch.randn(b, G.z_dim),
                  gen_c=None, gen_times=times + 1.5, motion=G.sample_motion(b, 10.0))
    return G, Di, Dv, loss, batch


def _grads(module):
    return [p.grad for p in module.parameters()]


@pytest.mark.parametrize("phase", ["Gmain", "Dmain", "Dreg"])
def test_each_phase_reaches_only_its_network(tiny_cfg, phase):
    G, Di, Dv, loss, batch = _setup(tiny_cfg)
    train_G = phase == "Gmain"
    G.requires_grad_(train_G), Di.requires_grad_(not train_G), Dv.requires_grad_(not train_G)
    stats = loss.accumulate_gradients(phase, batch)
    trained, frozen = ([G], [Di, Dv]) if train_G else ([Di, Dv], [G])
    for m in trained:
        grads = _grads(m)
        assert sum(g is not None and g.abs().sum() > 0 for g in grads) > len(grads) // 2
    for m in frozen:
        assert all(g is None for g in _grads(m))
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
    if phase == "Dreg":
        assert stats["D/r1_image"] > 0 and stats["D/r1_video"] > 0


def test_gain_scales_the_gradient(tiny_cfg):
    G, Di, Dv, loss, batch = _setup(tiny_cfg)
    G.requires_grad_(False)
    torch.manual_seed(1)
    loss.accumulate_gradients("Dreg", batch, gain=1.0)
    g1 = Di.fromrgb.weight.grad.clone()
    Di.zero_grad(), Dv.zero_grad()
    torch.manual_seed(1)
    loss.accumulate_gradients("Dreg", batch, gain=4.0)
    torch.testing.assert_close(Di.fromrgb.weight.grad, 4 * g1)


def test_nan_stops_with_a_clear_error(tiny_cfg):
    G, Di, Dv, loss, batch = _setup(tiny_cfg)
    batch.real[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="diverged"):
        loss.accumulate_gradients("Dmain", batch)
    with pytest.raises(ValueError, match="unknown phase"):
        loss.accumulate_gradients("Greg", batch)


@pytest.mark.parametrize("phase", ["Gmain", "Dmain"])
def test_a_handed_in_fake_gives_the_same_gradients_as_rendering(tiny_cfg, phase):
    # The loop renders once per step and hands the fakes to both main phases; that must be the same maths.
    results = []
    for reuse in (False, True):
        G, Di, Dv, loss, batch = _setup(tiny_cfg)
        train_G = phase == "Gmain"
        G.requires_grad_(True), Di.requires_grad_(not train_G), Dv.requires_grad_(not train_G)
        kwargs = {}
        if reuse:
            fake = loss.generate(batch)
            kwargs["fake"] = fake if train_G else fake.detach()
        torch.manual_seed(3)                                           # same augmentation draws
        stats = loss.accumulate_gradients(phase, batch, **kwargs)
        results.append((stats, [p.grad for p in (G if train_G else Di).parameters()]))
    (s0, g0), (s1, g1) = results
    assert s0 == pytest.approx(s1, rel=1e-6, abs=1e-7)
    for a, b in zip(g0, g1):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)


def test_adaptive_augmentation_follows_the_real_sign_heuristic():
    aug = ClipAugment(["translation"], prob=0.5)
    ada = AdaptiveAugment(aug, target=0.6, speed_kimg=1.0, interval=4, batch=25)   # steps of 0.1
    for _ in range(4):                                                 # D too sure of the reals: more
        ada.observe({"real/sign_image": 0.2, "real/sign_video": 0.9})  # the surer D counts
    ada.adjust()
    assert ada.rt == pytest.approx(0.9) and aug.prob == pytest.approx(0.6)
    for _ in range(4):
        ada.observe({"real/sign_image": 0.1, "real/sign_video": 0.3})
    ada.adjust()
    assert aug.prob == pytest.approx(0.5)
    for _ in range(20):                                                # clamped at 0
        ada.observe({"real/sign_image": -1.0, "real/sign_video": -1.0})
        ada.adjust()
    assert aug.prob == 0.0
    with pytest.raises(ValueError, match="augment_target"):
        AdaptiveAugment(aug, target=1.5, speed_kimg=1.0, interval=4, batch=8)

    # The surer D is chosen on the interval means, not per step: per-step signs that take turns being high
    # (noisy batches) average 0.5 for both Ds, below the target, so p goes down. A per-step max read 0.9.
    aug.prob = 0.5
    for k in range(4):
        ada.observe({"real/sign_image": 0.9 if k % 2 else 0.1, "real/sign_video": 0.1 if k % 2 else 0.9})
    ada.adjust()
    assert ada.rt == pytest.approx(0.5) and aug.prob == pytest.approx(0.4)
    ada.signs = [0.9, 0.8]                                          # an older checkpoint's pending signs
    ada.adjust()
    assert ada.rt == pytest.approx(0.85) and aug.prob == pytest.approx(0.5)



def test_a_loss_term_joins_its_phase_through_the_hook_points(tiny_cfg):
    # One VideoGANLoss, extra terms plugged in: a G term adds to G's loss and logs its value (the D-side hooks
    # carry the text mode's matching-aware term: tests/test_conditional.py).
    class Extra(LossTerm):
        def g_terms(self, loss, batch, fake):
            extra = 0.5 * fake.square().mean()
            return extra, {"G/extra": extra}

    G, Di, Dv, plain, batch = _setup(tiny_cfg)
    hooked = VideoGANLoss(G, Di, Dv, plain.augment, tiny_cfg.D.image_frames, r1_gamma=1.0, terms=[Extra()])
    fake = plain.generate(batch).detach()
    torch.manual_seed(3)
    base = plain.accumulate_gradients("Gmain", batch, fake=fake.clone().requires_grad_(True))
    torch.manual_seed(3)
    stats = hooked.accumulate_gradients("Gmain", batch, fake=fake.clone().requires_grad_(True))
    assert stats["G/extra"] == pytest.approx(0.5 * float(fake.square().mean()))
    assert stats["G/loss"] == pytest.approx(base["G/loss"] + stats["G/extra"], rel=1e-6)
    assert stats["G/loss_image"] == pytest.approx(base["G/loss_image"], rel=1e-6)


def test_video_weight_zero_turns_the_video_D_off(tiny_cfg):
    G, Di, Dv, loss, batch = _setup(tiny_cfg)
    loss.video_weight = 0.0
    G.requires_grad_(False), Di.requires_grad_(True), Dv.requires_grad_(True)
    d_main, d_reg = loss.accumulate_gradients("Dmain", batch), loss.accumulate_gradients("Dreg", batch)
    assert not any("video" in k for k in {**d_main, **d_reg}) and d_reg["D/r1_image"] > 0
    assert all(p.grad is None for p in Dv.parameters()) and Di.fromrgb.weight.grad.abs().sum() > 0
    ada = AdaptiveAugment(loss.augment, target=0.6, speed_kimg=1.0, interval=1, batch=4)
    ada.observe(d_main)
    assert ada.signs[0][0] == ada.signs[0][1]                          # the image D's sign stands for both
    G.requires_grad_(True), Di.requires_grad_(False), Dv.requires_grad_(False)
    stats = loss.accumulate_gradients("Gmain", batch)
    assert stats["G/loss"] == stats["G/loss_image"] and "G/loss_video" not in stats
