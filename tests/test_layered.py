"""Layered generator: sprites that persist and move rigidly, bounded trajectories, streaming, config rules."""
from pathlib import Path

import pytest
import torch

from gan.config import ConfigError, load_config
from gan.networks import LayeredGenerator, build_generator
from gan.networks.layered import reflect_unit

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def layered_cfg():
    return load_config(str(ROOT / "configs" / "tiny.yaml"), {"G": {"objects": 2}, "data": {"channels": 1}})


@pytest.fixture
def layered_G(layered_cfg):
    torch.manual_seed(0)
    return build_generator(layered_cfg).eval()


def test_auto_objects_pick_the_layered_G_for_digits_only():
    assert load_config(None).G.objects == 2                                   # the CPU default: 2 digits
    assert load_config(None, {"data": {"num_objects": 3}}).G.objects == 3
    assert load_config(None, {"data": {"source": "shapes"}}).G.objects == 0
    assert load_config(None, {"data": {"source": "/some/clips"}}).G.objects == -1   # read off the frames later
    #                                                                              (tests/test_prepared.py)
    assert load_config(None, {"G": {"objects": 0}}).G.objects == 0
    assert isinstance(build_generator(load_config(None)), LayeredGenerator)
    assert not isinstance(build_generator(load_config(None, {"G": {"objects": 0}})), LayeredGenerator)


def test_layered_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="G.object_size"):
        load_config(None, {"G": {"object_size": 1.5}})
    with pytest.raises(ConfigError, match="G.object_resolution"):
        load_config(None, {"G": {"object_resolution": 48}})
    with pytest.raises(ConfigError, match="G.z_dim .* G.objects"):
        load_config(None, {"G": {"objects": 4, "z_dim": 3}})
    with pytest.raises(ConfigError, match="G.background"):
        load_config(None, {"G": {"background": "video"}})


def test_reflect_unit_bounces_between_the_walls():
    p = torch.tensor([0.3, 1.2, -0.2, 2.3, -1.7, 0.0, 1.0])
    torch.testing.assert_close(reflect_unit(p), torch.tensor([0.3, 0.8, 0.2, 0.3, 0.3, 0.0, 1.0]))


def test_positions_stay_in_frame_and_drift_at_bounded_speed(layered_G):
    g = layered_G
    b, k = 3, g.objects
    t = torch.arange(0, 400, 0.5)[None].expand(b, -1)
    w = g.mapping_forward(torch.randn(b, g.z_dim))
    v = g.motion(g.sample_motion(b, 400.0), t, w=w)
    assert v.shape == (b, t.shape[1], g.motion_dim + 2 * k) and v.dtype == torch.float32
    pos = v[..., g.motion_dim:]
    assert pos.min() >= 0 and pos.max() <= 1
    # Between samples 0.5 frames apart an object moves at most speed * 0.5 plus what the (bounded) jitter
    # changes: continuous motion, no jumps.
    step = (pos[:, 1:] - pos[:, :-1]).abs().max()
    assert step <= g.cfg.object_speed * 0.5 + 2 * g.cfg.object_jitter
    assert step > 0


def test_object_speed_and_jitter_set_how_far_objects_move(layered_cfg):
    # G.object_speed scales every object's drift and G.object_jitter bounds the motion embedding's offset: with
    # both 0 the objects stand still; without jitter no step exceeds speed * dt, and a 4x speed moves ~4x as far.
    def largest_step(speed, jitter):
        g = layered_cfg.G
        torch.manual_seed(0)
        G = build_generator(load_config(str(ROOT / "configs" / "tiny.yaml"), {
            "data": {"channels": 1}, "G": {"objects": g.objects, "object_speed": speed, "object_jitter": jitter}}))
        t = torch.arange(0, 100, 0.5)[None].expand(3, -1)
        w = G.mapping_forward(torch.randn(3, G.z_dim))
        pos = G.motion(G.sample_motion(3, 100.0), t, w=w)[..., G.motion_dim:]
        return (pos[:, 1:] - pos[:, :-1]).abs().max().item()
    assert largest_step(0.0, 0.0) == 0
    slow = largest_step(0.02, 0.0)
    assert 0 < slow <= 0.02 * 0.5 + 1e-6 and largest_step(0.08, 0.0) > 3 * slow
    assert largest_step(0.0, 0.05) > 0                              # the jitter alone moves them a little


def test_object_resolution_sets_the_sprite_size(layered_cfg):
    # G.object_resolution: the sprites' render size (0: the box's size in pixels, 8 at 16 px with size 0.5).
    auto = build_generator(layered_cfg)
    layered_cfg.G.object_resolution = 4
    small = build_generator(layered_cfg)
    assert (auto.sprite_res, small.sprite_res) == (8, 4)
    assert [b.resolution for b in small.sprite_blocks] == [4]
    clip = small(torch.randn(2, small.z_dim), None, torch.tensor([[0.0, 2.0]] * 2))
    assert clip.shape == (2, 2, 1, 16, 16) and torch.isfinite(clip).all()


def test_a_sprite_moves_rigidly(layered_G, layered_cfg):
    # Two frames whose object positions differ by exactly two pixels along x are the same picture shifted by
    # two pixels: objects keep their shape (no redrawing per frame).
    g = layered_G
    h, s = layered_cfg.data.resolution, layered_cfg.G.object_size
    w = g.mapping_forward(torch.randn(1, g.z_dim))
    content = g.content(w)
    d = 2 / (h * (1 - s))                                            # position units per pixel: 2 px
    pos = torch.tensor([[[0.2, 0.4, 0.6, 0.3]], [[0.2 + d, 0.4, 0.6 + d, 0.3]]]).reshape(1, 2, 4)
    v = torch.cat([torch.zeros(1, 2, g.motion_dim), pos], dim=2)
    x = g.frames(w, content, v)[0]                                    # [2, C, H, W]
    torch.testing.assert_close(x[1, :, :, 2:], x[0, :, :, :-2])
    assert (x[1] - x[0]).abs().max() > 1e-3                           # it did move


def test_background_shows_where_no_sprite_is(layered_G):
    g = layered_G
    w = g.mapping_forward(torch.randn(2, g.z_dim))
    sprites, bg = g.content(w)
    k, c = g.objects, g.img_channels
    assert sprites.shape == (2, k * (c + 1), g.sprite_res, g.sprite_res) and bg.shape == (2, c, 1, 1)
    alpha = sprites.reshape(2, k, c + 1, g.sprite_res, g.sprite_res)[:, :, c]
    assert alpha.min() >= 0 and alpha.max() <= 1
    # Both objects pushed into the top-left corner: the bottom-right corner is pure background.
    v = torch.cat([torch.zeros(2, 1, g.motion_dim), torch.zeros(2, 1, 2 * k)], dim=2)
    x = g.frames(w, (sprites, bg), v)
    torch.testing.assert_close(x[:, 0, :, -2:, -2:], bg.expand(-1, -1, 2, 2))


def test_layered_G_gradients_reach_every_part(layered_G):
    g = layered_G.train()
    z = torch.randn(2, g.z_dim)
    t = torch.tensor([[3.0, 4.0, 6.0]] * 2)
    g(z, None, t).square().mean().backward()
    missing = [n for n, p in g.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    # The motion network reaches frames only through the jitter offsets; every parameter must get gradient.
    assert not missing, missing


def test_layered_G_streams_in_windows_like_a_whole_render(layered_G):
    from gan.sampling import ClipRenderer, render
    whole = render(layered_G, [3, 4], 20, fused=False)
    chunks = torch.cat(list(ClipRenderer(layered_G, chunk=6, fused=False).render_chunks([3, 4], 20)), dim=1)
    torch.testing.assert_close(chunks, whole)
    late = torch.cat(list(ClipRenderer(layered_G, fused=False).render_chunks([3, 4], 4, start=16)), dim=1)
    torch.testing.assert_close(late, whole[:, 16:20])


def test_fast_sampler_renders_the_layered_G(layered_G):
    from gan.sampling import FastSampler
    from gan.sampling import render
    ref = render(layered_G, [1, 2], 8, fused=False)
    fast = torch.cat(list(FastSampler(layered_G, precision="fp32").render_chunks([1, 2], 8)), dim=1)
    torch.testing.assert_close(fast, ref, atol=1e-4, rtol=1e-4)
    bf16 = torch.cat(list(FastSampler(layered_G, precision="bf16").render_chunks([1, 2], 8)), dim=1)
    assert (bf16 - ref).abs().mean() < 0.05


@pytest.mark.parametrize("background", ["flat", "static"])
def test_layered_G_trains_and_samples_from_its_checkpoint(tmp_path, layered_cfg, background):
    # (Exact resume of a layered run: tests/test_training.py::test_resume_continues_exactly.)
    from gan.sampling import load_generator, render
    from gan.training import train
    layered_cfg.G.background = background
    out = train(layered_cfg, str(tmp_path / "run"), device="cpu", progress=False)
    assert out["step"] == layered_cfg.train.steps
    G, info = load_generator(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert isinstance(G, LayeredGenerator) and info["config"].G.objects == 2
    assert (G.background_colour is None) == (background == "static")
    clip = render(G, [0, 1], 5, fused=False)
    assert clip.shape == (2, 5, 1, 16, 16) and torch.isfinite(clip).all()



def test_objects_are_independent_draws(layered_G):
    # Object k's latent is the k-th slice of z: changing the other slices leaves its sprite and its trajectory
    # alone. Truncation to psi = 0 turns every object into the one average object.
    g = layered_G
    z = torch.randn(1, g.z_dim)
    z2 = z.clone()
    half = g.z_dim // g.objects
    z2[:, half:] = torch.randn(1, g.z_dim - half)                      # a new object 1, the same object 0
    t = torch.tensor([[0.0, 3.0, 7.5]])
    codes = g.sample_motion(1, 8.0)
    (s1, _), (s2, _) = g.content(g.mapping_forward(z)), g.content(g.mapping_forward(z2))
    c1 = g.img_channels + 1
    torch.testing.assert_close(s1[:, :c1], s2[:, :c1])
    assert (s1[:, c1:] - s2[:, c1:]).abs().max() > 1e-4
    # Start and drift come from the object's own w_k (the jitter reads the video's motion embedding, which sees
    # the whole w: switched off here to compare the kinematics alone).
    torch.nn.init.zeros_(g.motion.jitter.weight)
    w1, w2 = g.mapping_forward(z), g.mapping_forward(z2)
    p1 = g.motion(codes, t, w=w1)[..., g.motion_dim:].reshape(1, 3, g.objects, 2)
    p2 = g.motion(codes, t, w=w2)[..., g.motion_dim:].reshape(1, 3, g.objects, 2)
    torch.testing.assert_close(p1[:, :, 0], p2[:, :, 0])
    assert (p1[:, :, 1] - p2[:, :, 1]).abs().max() > 1e-4
    g.mapping.net.w_avg.normal_()
    w0 = g.mapping_forward(torch.randn(3, g.z_dim), truncation_psi=0.0)
    torch.testing.assert_close(w0, g.mapping.w_avg.expand(3, -1))


def test_drift_is_the_pixel_velocity_of_the_rendered_trajectory(layered_G):
    # G.drift(w): each object's velocity in px/frame. With the motion embedding's offset switched off, the
    # object's box centre (frames() maps position p in [0, 1] to centre pixel ((2p - 1)(1 - s) + 1) * res / 2)
    # moves by exactly drift * dt between two times, away from the walls.
    g = layered_G
    torch.nn.init.zeros_(g.motion.jitter.weight)
    torch.nn.init.zeros_(g.motion.jitter.bias)
    b, dt = 16, 0.25
    w = g.mapping_forward(torch.randn(b, g.z_dim))
    t = torch.tensor([[3.0, 3.0 + dt]]).expand(b, -1)
    pos = g.motion(g.sample_motion(b, 8.0), t, w=w)[..., g.motion_dim:].reshape(b, 2, g.objects, 2)
    s, res = g.cfg.object_size, g.resolution
    centre_px = ((2 * pos - 1) * (1 - s) + 1) * res / 2
    drift = g.drift(w)
    assert drift.shape == (b, g.objects, 2)
    start, vel = g.motion.start_and_drift(w)
    inside = lambda p: ((p > 0.01) & (p < 0.99)).all(-1)                # no bounce between the two times
    unbounced = inside(start + vel * 3.0) & inside(start + vel * (3.0 + dt))
    assert unbounced.sum() >= 8
    torch.testing.assert_close((centre_px[:, 1] - centre_px[:, 0])[unbounced], (drift * dt)[unbounced])
    assert drift.abs().max() <= g.cfg.object_speed * (1 - s) * res + 1e-6
