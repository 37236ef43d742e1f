"""Generator and discriminators: shapes, continuous time, conditioning, determinism."""
import pytest
import torch

from gan.networks import build_discriminators, build_generator, motion_codes_for_seed


def test_generator_renders_any_times_with_the_right_layout(tiny_G, tiny_cfg):
    r = tiny_cfg.data.resolution
    z = torch.randn(2, tiny_G.z_dim)
    t = torch.tensor([[0.0, 0.5, 7.25], [100.0, 100.1, 3.0]])     # any continuous, unordered times
    x = tiny_G(z, None, t)
    assert x.shape == (2, 3, 3, r, r)                              # [B, T, C, H, W]
    assert torch.isfinite(x).all()


def test_motion_is_continuous_in_time(tiny_G):
    # Enable the flow so motion moves content (it is zero-initialised for training).
    torch.nn.init.normal_(tiny_G.flow.weight)
    z = torch.randn(1, tiny_G.z_dim)
    codes = tiny_G.sample_motion(1, 40.0)
    t = torch.tensor([[10.0, 10.001, 30.0]])
    x = tiny_G(z, None, t, codes)
    near = (x[:, 0] - x[:, 1]).abs().max()
    far = (x[:, 0] - x[:, 2]).abs().max()
    assert near < 1e-2 < far


def test_motion_window_equals_full_codes(tiny_G):
    codes = tiny_G.sample_motion(2, 50.0)
    t = torch.tensor([[20.0, 21.5, 27.0], [22.0, 23.0, 24.0]])
    k0 = 3                                                          # period 4: anchors 5.. needed
    w = tiny_G.mapping_forward(torch.randn(2, tiny_G.z_dim))
    full = tiny_G.motion(codes, t, w=w)
    window = tiny_G.motion(codes[:, k0:], t, anchor_offset=k0, w=w)
    torch.testing.assert_close(full, window)
    with pytest.raises(ValueError, match="motion anchors"):
        tiny_G.motion(codes[:, 6:], t, anchor_offset=6, w=w)


def test_motion_depends_on_the_videos_latent(tiny_G):
    # Same motion codes, different w: the motion differs (content-aware motion; a caption or class that
    # reaches w can steer it). Without w the network says what it needs.
    codes = tiny_G.sample_motion(2, 20.0)
    t = torch.tensor([[1.0, 5.0, 9.0]] * 2)
    w = tiny_G.mapping_forward(torch.randn(2, tiny_G.z_dim))
    a = tiny_G.motion(codes, t, w=w)
    b = tiny_G.motion(codes, t, w=w.flip(0))
    assert (a - b).abs().max() > 1e-3
    torch.testing.assert_close(tiny_G.motion(codes, t, w=w), a)
    with pytest.raises(ValueError, match="pass w"):
        tiny_G.motion(codes, t)


def test_motion_drift_is_steady_bouncing_and_set_by_w(tiny_cfg):
    # G.motion_drift: reflect(phase + speed * t) features with speed and phase from w. Between bounces each
    # moves by the same step every frame (steady motion the sinusoids cannot make over a long clip).
    import dataclasses
    from gan.config import ConfigError, load_config
    from gan.networks.generator import MotionNetwork
    from gan.sampling import render
    from tests.conftest import ROOT
    torch.manual_seed(0)
    net = MotionNetwork(16, 4.0, 8, w_dim=16, drift=3)
    w = torch.randn(4, 16)
    t = torch.arange(0, 64.0)[None].expand(4, -1)
    d = net.drift_features(w, t)                                            # [4, 64, 3]
    assert d.shape == (4, 64, 3) and d.abs().max() <= 1
    step = (d[:, 1:] - d[:, :-1]).abs()
    speed = step.amax(dim=1, keepdim=True)
    assert (speed <= 2 * net.max_drift_speed + 1e-6).all() and (speed > 0).all()
    steady = (step - speed).abs() < 1e-4                                    # the full step: no wall in between
    assert steady.float().mean() > 0.8 and not steady.all()                 # mostly steady, and it does bounce
    torch.testing.assert_close(net.drift_features(w, t + 0.0), d)
    assert not torch.allclose(net.drift_features(w.flip(0), t), d)          # another w, another drift
    with pytest.raises(ValueError, match="w_dim > 0"):
        MotionNetwork(16, 4.0, 8, w_dim=0, drift=2)
    # In G: the motion embedding changes with it, and chunked rendering (windows of anchors) equals one pass.
    cfg = dataclasses.replace(tiny_cfg, G=dataclasses.replace(tiny_cfg.G, motion_drift=2))
    torch.manual_seed(0)
    G = build_generator(cfg).eval()
    torch.nn.init.normal_(G.flow.weight)
    torch.testing.assert_close(render(G, [3], 20, chunk=3), render(G, [3], 20, chunk=20), rtol=1e-4, atol=1e-4)
    assert "drift=2" in repr(G.motion)
    for over, match in (({"motion_drift": -1}, "motion_drift"), ({"motion_drift": 2, "objects": 1}, "layered")):
        with pytest.raises(ConfigError, match=match):
            load_config(str(ROOT / "configs" / "tiny.yaml"), {"G": over})


def test_motion_codes_per_seed_are_random_access():
    a = motion_codes_for_seed(5, 0, 10, 16)
    b = motion_codes_for_seed(5, 4, 7, 16)
    torch.testing.assert_close(a[4:7], b)
    assert not torch.equal(a, motion_codes_for_seed(6, 0, 10, 16))


@pytest.mark.parametrize("warp_max", [0.1, 0.4])
def test_flow_displacement_is_bounded_by_warp_max(tiny_cfg, warp_max):
    # However large the flow layer's output, the displacement stays within G.warp_max half-frames: the flow
    # can move content, never pull the whole frame in from the border. Warping a ramp that holds each pixel's
    # own x coordinate (grid units: half-frames) reads the horizontal displacement off every pixel.
    import dataclasses
    torch.manual_seed(0)
    G = build_generator(dataclasses.replace(tiny_cfg, G=dataclasses.replace(tiny_cfg.G, warp_max=warp_max)))
    v = torch.randn(6, G.motion_dim) * 100
    torch.nn.init.normal_(G.flow.weight, std=100.0)
    assert G.flow(v).abs().max() > 10 * warp_max
    r = tiny_cfg.data.resolution
    ramp = torch.linspace(-1 + 1 / r, 1 - 1 / r, r).expand(6, 1, r, r)      # pixel centres (align_corners=False)
    shift = (G.warp(ramp, v) - ramp).abs()
    assert shift.max() <= warp_max + 1e-5 and shift.max() > 0.5 * warp_max
    x = torch.zeros(6, 1, r, r)
    x[:, :, 6:10, 6:10] = 1.0                                       # a square in the middle
    assert G.warp(x, v).sum(dim=[1, 2, 3]).min() > 0                # the square is moved, not lost


def test_flow_is_centred_on_the_tracked_mean_motion(tiny_G):
    codes = tiny_G.sample_motion(4, 12.0)
    t = torch.rand(4, 3) * 8
    z = torch.randn(4, tiny_G.z_dim)
    before = tiny_G(z, None, t, codes)
    torch.testing.assert_close(tiny_G(z, None, t, codes), before)   # rendering does not touch v_avg
    assert torch.count_nonzero(tiny_G.v_avg) == 0
    w = tiny_G.mapping_forward(z)
    tiny_G.update_avg(z, None, codes, t)
    expected = tiny_G.motion(codes, t, w=w).mean(dim=(0, 1)) * (1 - tiny_G.v_avg_beta)
    torch.testing.assert_close(tiny_G.v_avg, expected.detach())
    torch.testing.assert_close(tiny_G.w_avg, w.mean(0) * (1 - tiny_G.mapping.w_avg_beta))   # and the truncation centre


def test_latent_input_makes_the_layout_depend_on_w(tiny_cfg):
    from gan.config import load_config
    from tests.conftest import ROOT
    cfg = load_config(str(ROOT / "configs" / "tiny.yaml"), {"G": {"input": "latent"}})
    torch.manual_seed(0)
    G = build_generator(cfg)
    first = G.blocks[0]
    assert first.input_fc is not None and build_generator(tiny_cfg).blocks[0].input_fc is None
    w = G.mapping_forward(torch.randn(2, G.z_dim))
    x = first.const.unsqueeze(0) + first.input_fc(w).reshape(2, *first.const.shape)
    assert not torch.allclose(x[0], x[1])                           # per-video 4x4 input


def test_projected_input_has_no_shared_constant(tiny_cfg):
    # G.input 'projected' (DCGAN's input): the 4x4 map is the projection of w alone, so a zero projection
    # gives a zero input, and the generator still renders clips of the usual layout.
    from gan.config import load_config
    from tests.conftest import ROOT
    cfg = load_config(str(ROOT / "configs" / "tiny.yaml"), {"G": {"input": "projected"}})
    torch.manual_seed(0)
    G = build_generator(cfg)
    first = G.blocks[0]
    assert first.const is None and "blocks.0.const" not in G.state_dict()
    z = torch.randn(2, G.z_dim)
    t = torch.arange(3.0)[None].expand(2, -1)
    out = G(z, None, t)
    assert out.shape == (2, 3, 3, cfg.data.resolution, cfg.data.resolution)
    seen = {}
    first.conv1.register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
    with torch.no_grad():
        first.input_fc.weight.zero_(), first.input_fc.bias.zero_()
    G(z, None, t)
    assert seen["x"].abs().max() == 0                               # nothing but the projection of w


def test_content_is_shared_by_all_frames_before_motion(tiny_G):
    # With the flow off and no motion in the styles, every frame would be identical: the low blocks
    # run once per video. Check the content path really is time-independent.
    w = tiny_G.mapping_forward(torch.randn(2, tiny_G.z_dim))
    x, img = tiny_G.content(w)
    assert x.shape[0] == 2 and x.shape[-1] == tiny_G.content_res and img.shape[1] == 3


def test_conditional_generator_needs_and_uses_labels(tiny_cfg):
    torch.manual_seed(0)
    G = build_generator(tiny_cfg, c_dim=3)
    z, t = torch.randn(2, G.z_dim), torch.zeros(2, 2)
    with pytest.raises(ValueError, match="conditional"):
        G(z, None, t)
    a = G(z, torch.tensor([0, 0]), t)
    b = G(z, torch.tensor([1, 1]), t)
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="out of range"):
        G(z, torch.tensor([0, 3]), t)


def test_discriminators_shapes_and_projection(tiny_cfg):
    torch.manual_seed(0)
    Di, Dv = build_discriminators(tiny_cfg, c_dim=4)
    r = tiny_cfg.data.resolution
    video = torch.randn(4, 3, 3, r, r)
    times = torch.tensor([[0.0, 1, 2]] * 2 + [[0.0, 2, 4]] * 2)
    c = torch.tensor([0, 1, 2, 3])
    assert Di(video[:, 0], c).shape == (4, 1)
    out = Dv(video, times, c)
    assert out.shape == (4, 1)
    assert not torch.allclose(out, Dv(video, times, torch.tensor([3, 2, 1, 0])))
    # The frame gap is an input: the same frames at another gap get another score.
    assert not torch.allclose(out, Dv(video, times * 2, c))


def test_video_discriminator_sees_frame_order(tiny_cfg):
    torch.manual_seed(0)
    _, Dv = build_discriminators(tiny_cfg)
    r = tiny_cfg.data.resolution
    video = torch.randn(2, 3, 3, r, r)
    times = torch.tensor([[0.0, 1, 2]] * 2)
    assert not torch.allclose(Dv(video, times), Dv(video.flip(1), times))


def test_video_discriminator_at_half_resolution(tiny_cfg):
    # D.video_resolution: the clip is box-downsampled, then judged by a video D built at that size; the same
    # weights on the pooled clip give the same logit, and full-size detail below a pooled cell cannot matter.
    import dataclasses
    from gan.config import ConfigError, load_config
    from gan.networks.discriminator import VideoDiscriminator
    from tests.conftest import ROOT
    r = tiny_cfg.data.resolution
    torch.manual_seed(0)
    half = VideoDiscriminator(dataclasses.replace(tiny_cfg.D, video_resolution=r // 2), r, 3)
    torch.manual_seed(0)
    small = VideoDiscriminator(dataclasses.replace(tiny_cfg.D, video_fuse_resolution=r // 2), r // 2, 3)
    video = torch.randn(2, 3, 3, r, r)
    times = torch.tensor([[0.0, 1, 2]] * 2)
    pooled = torch.nn.functional.avg_pool2d(video.flatten(0, 1), 2).unflatten(0, (2, 3))
    torch.testing.assert_close(half(video, times), small(pooled, times))
    checker = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(r // 2, r // 2)   # zero mean in every 2x2 cell
    torch.testing.assert_close(half(video + checker, times), half(video, times), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="video_resolution"):
        VideoDiscriminator(dataclasses.replace(tiny_cfg.D, video_resolution=12), r, 3)
    cfg = load_config(str(ROOT / "configs" / "tiny.yaml"), {"D": {"video_resolution": 8}})
    assert build_discriminators(cfg)[1].input_res == 8
    for size in (32, 0):                                            # at most: a 16 px clip stays 16 px
        cfg = load_config(str(ROOT / "configs" / "tiny.yaml"), {"D": {"video_resolution": size}})
        assert build_discriminators(cfg)[1].input_res == 16
    with pytest.raises(ConfigError, match="video_resolution"):
        load_config(str(ROOT / "configs" / "tiny.yaml"), {"D": {"video_resolution": 24}})


def test_video_discriminator_frame_differences(tiny_cfg):
    # D.video_diffs: each frame comes with its change to the next. Their weights in the first layer only see
    # change: a static clip scores the same whatever they are, a moving one does not.
    import dataclasses
    from gan.networks.discriminator import VideoDiscriminator
    r = tiny_cfg.data.resolution
    torch.manual_seed(0)
    Dv = VideoDiscriminator(dataclasses.replace(tiny_cfg.D, video_diffs=True), r, 3)
    assert Dv.fromrgb.weight.shape[1] == 6
    times = torch.tensor([[0.0, 1, 2]] * 2)
    static = torch.randn(2, 1, 3, r, r).expand(-1, 3, -1, -1, -1)
    moving = torch.randn(2, 3, 3, r, r)
    before_static, before_moving = Dv(static, times), Dv(moving, times)
    with torch.no_grad():
        Dv.fromrgb.weight[:, 3:].normal_()
    torch.testing.assert_close(Dv(static, times), before_static)
    assert not torch.allclose(Dv(moving, times), before_moving)
    # One frame: nothing to difference, and the D still runs.
    assert Dv(moving[:, :1], times[:, :1]).shape == (2, 1)


def test_modules_describe_themselves(tiny_G):
    text = repr(tiny_G)
    assert "content_res=8" in text and "period=4.0" in text and "act=lrelu" in text


def test_pooled_minibatch_std_sees_one_object_drawn_at_different_places():
    # Eight samples of one pattern at eight places: the per-pixel std is high (the places differ), the pooled
    # std is zero; eight different patterns have a pooled std well above zero.
    from gan.networks.discriminator import MinibatchStd
    torch.manual_seed(0)
    pattern = torch.randn(1, 6, 8, 8)
    moved = torch.cat([pattern.roll(shifts=(i, 2 * i), dims=(2, 3)) for i in range(8)])
    out = MinibatchStd(4)(moved)
    assert out.shape == (8, 8, 8, 8)
    pixel, pooled = out[:, 6], out[:, 7]
    assert pixel.min() > 0.5 and pooled.max() < 1e-3
    varied = MinibatchStd(4)(torch.randn(8, 6, 8, 8))
    assert varied[:, 7].min() > 0.05


def test_max_pool_downsampling_keeps_a_corner_that_averaging_blurs(tiny_cfg):
    # D.downsample: max. A layer reduces by 2x2 max pooling after its conv (exactly), so a single bright pixel
    # survives at full strength where average pooling quarters it; both Ds build with it and R1's double
    # backward runs through it.
    import dataclasses
    from gan.config import ConfigError, load_config
    from gan.networks.layers import Conv2dLayer
    from tests.conftest import ROOT
    torch.manual_seed(0)
    layer = Conv2dLayer(3, 4, 3, down=2, resample_filter=[1, 1], down_pool="max")
    x = torch.randn(2, 3, 8, 8)
    conv = torch.nn.functional.conv2d(x, layer.weight * layer.weight_gain, padding=1)
    torch.testing.assert_close(layer(x), torch.nn.functional.max_pool2d(conv, 2) + layer.bias[:, None, None])
    dot = torch.zeros(1, 1, 4, 4)
    dot[0, 0, 1, 2] = 1.0
    ident = lambda pool: Conv2dLayer(1, 1, 1, bias=False, down=2, resample_filter=[1, 1], down_pool=pool)
    for pool, peak in (("max", 1.0), ("filter", 0.25)):
        lay = ident(pool)
        with torch.no_grad():
            lay.weight.fill_(1.0 / lay.weight_gain)
        assert lay(dot).max().item() == pytest.approx(peak)
    assert "(max)" in repr(layer)
    with pytest.raises(ValueError, match="down_pool"):
        Conv2dLayer(3, 4, 3, down=2, down_pool="median")

    cfg = dataclasses.replace(tiny_cfg, D=dataclasses.replace(tiny_cfg.D, downsample="max"))
    Di, Dv = build_discriminators(cfg)
    for D in (Di, Dv):
        downs = [m for m in D.modules() if isinstance(m, Conv2dLayer) and m.down > 1]
        assert downs and all(m.max_down for m in downs)
    r = cfg.data.resolution
    frames = torch.randn(4, 3, r, r, requires_grad=True)
    (grad,) = torch.autograd.grad(Di(frames).sum(), frames, create_graph=True)
    grad.square().sum().backward()                                      # R1's double backward
    assert Di.fromrgb.weight.grad is not None and torch.isfinite(Di.fromrgb.weight.grad).all()
    with pytest.raises(ConfigError, match="D.downsample"):
        load_config(str(ROOT / "configs" / "tiny.yaml"), {"D": {"downsample": "median"}})


def _replace(cfg, **sections):
    """cfg with fields of its sections replaced: _replace(cfg, G={"impl": "compiled"})."""
    import dataclasses
    return dataclasses.replace(cfg, **{k: dataclasses.replace(getattr(cfg, k), **v) for k, v in sections.items()})


@pytest.mark.parametrize("objects", [0, 2])
def test_conv_clamp_bounds_every_clamped_layer_of_G_and_both_Ds(tiny_cfg, objects):
    # G.conv_clamp / D.conv_clamp (the fp16/bf16 overflow guard) reach every modulated conv and RGB layer of G and
    # every 3x3 conv of the Ds (their fromRGB, 1x1 skip and temporal convs are never clamped), and bound what
    # each one outputs; off (null), the same untrained layers go past the bound.
    def peaks(cfg, names=None):
        torch.manual_seed(0)
        nets = dict(zip(("G", "Di", "Dv"), (build_generator(cfg).eval(), *build_discriminators(cfg))))
        layers = {f"{n}.{k}": m for n, net in nets.items() for k, m in net.named_modules() if hasattr(m, "conv_clamp")
                  and (m.conv_clamp is not None if names is None else f"{n}.{k}" in names)}
        for name, m in layers.items():
            assert m.conv_clamp == getattr(cfg, name[0]).conv_clamp, name
        peak = {}
        hooks = [m.register_forward_hook(lambda m, i, out, name=name: peak.update({name: out.abs().max().item()}))
                 for name, m in layers.items()]
        times = torch.tensor([[0.0, 1.0, 2.0]] * 4)
        with torch.no_grad():
            clip = nets["G"](torch.randn(4, cfg.G.z_dim), None, times)
            nets["Di"](clip[:, 0])
            nets["Dv"](clip, times)
        for h in hooks:
            h.remove()
        assert set(peak) == set(layers) and len(peak) > 10
        return peak
    base = _replace(tiny_cfg, G={"objects": objects})
    clamped = peaks(_replace(base, G={"conv_clamp": 0.05}, D={"conv_clamp": 0.05}))
    assert max(clamped.values()) <= 0.05 + 1e-6
    free = peaks(_replace(base, G={"conv_clamp": None}, D={"conv_clamp": None}), names=set(clamped))
    assert max(free.values()) > 0.5


def test_impl_selects_the_op_path_of_every_layer(tiny_cfg):
    # G.impl / D.impl: 'compiled' reaches every layer that calls a fused op (tests/test_ops.py checks each op's
    # compiled path against its reference); the networks choose independently. Building compiles nothing.
    for objects in (0, 2):
        for g, d in (("ref", "ref"), ("compiled", "ref"), ("ref", "compiled")):
            cfg = _replace(tiny_cfg, G={"objects": objects, "impl": g}, D={"impl": d})
            G, (Di, Dv) = build_generator(cfg), build_discriminators(cfg)
            assert {m.impl for m in G.modules() if hasattr(m, "impl")} == {g}
            assert {m.impl for net in (Di, Dv) for m in net.modules() if hasattr(m, "impl")} == {d}
