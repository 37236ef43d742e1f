"""The layered image-to-video / continuation generator (gan/networks/conditional.py): objects split off the
reference frame, exact layers, rigid moves, measured context velocity."""
import warnings

import pytest
import torch

from gan.conditioning.inputs import frames_to_tensor
from gan.networks import LayeredConditionalGenerator, ObjectSplitter, build_generator
from gan.networks.conditional import match_shifts
from gan.networks.encoders import connected_components
from gan.networks.layered import composite, peel_layers
from gan.analysis.measure import psnr
from gan.data import BouncingShapes
from tests.test_conditional import _cfg   # the mode's preset (the layered G), small data, random LPIPS

BG = torch.tensor([-0.6, -0.2, 0.2])          # a grey-blue flat background (not black: nothing assumes black)


def _scene():
    """[1, 3, 16, 16]: a 4x4 red square, a 3x3 green square with a half-covered column, a lone pixel."""
    frame = BG[None, :, None, None].repeat(1, 1, 16, 16)
    red, green = torch.tensor([1.0, -1.0, -1.0]), torch.tensor([-1.0, 1.0, -1.0])
    frame[0, :, 2:6, 2:6] = red[:, None, None]
    frame[0, :, 9:12, 8:11] = green[:, None, None]
    frame[0, :, 9:12, 11] = (0.5 * green + 0.5 * BG)[:, None]      # anti-aliased edge: half coverage
    frame[0, :, 14, 1] = red                                        # a third object: the smallest, stays put
    return frame


def test_connected_components_join_8_neighbours_only():
    m = torch.zeros(1, 6, 6, dtype=torch.bool)
    m[0, 0, 0] = m[0, 1, 1] = True                                   # diagonal: one region
    m[0, 4, 4] = m[0, 4, 5] = True                                   # another
    lab = connected_components(m)[0]
    assert lab[0, 0] == lab[1, 1] > 0 and lab[4, 4] == lab[4, 5] > 0 and lab[0, 0] != lab[4, 4]
    assert (lab[~m[0]] == 0).all() and len(lab.unique()) == 3


def test_splitter_finds_objects_background_and_coverage():
    alphas, bg = ObjectSplitter(2)(_scene())
    torch.testing.assert_close(bg[0, :, 0, 0], BG)
    a = alphas[0, :, 0]                                               # [2, H, W], the two largest objects
    assert a.shape == (2, 16, 16)
    red, green = (0, 1) if a[0, 3, 3] > 0 else (1, 0)
    assert (a[red, 2:6, 2:6] == 1).all() and (a[green, 9:12, 8:11] == 1).all()
    torch.testing.assert_close(a[green, 9:12, 11], torch.full((3,), 0.5))          # the edge's coverage
    assert a[red].sum() == 16 and a[green].sum() == 9 + 1.5             # nothing else in either layer
    assert a[:, 14, 1].sum() == 0                                      # the third object is not a layer


def test_peeled_layers_composite_back_exactly_and_move_as_one_piece():
    frame = _scene()
    alphas, bg = ObjectSplitter(2)(frame)
    layers, base = peel_layers(frame, alphas, bg.expand_as(frame))
    torch.testing.assert_close(composite(base, layers, alphas, torch.zeros(1, 1, 2, 2))[:, 0], frame)
    # Random alphas too: exactness does not depend on the split.
    rand_a = torch.rand(1, 2, 1, 16, 16)
    l2, b2 = peel_layers(frame, rand_a, bg.expand_as(frame))
    torch.testing.assert_close(composite(b2, l2, rand_a, torch.zeros(1, 1, 2, 2))[:, 0], frame)
    # The peeled frame is the background (only the third object stays in it).
    keep = torch.ones(16, 16, dtype=torch.bool)
    keep[14, 1] = False
    torch.testing.assert_close(base[0][:, keep], bg[0, :, 0].expand(3, int(keep.sum())).reshape(3, -1))
    # Move the red square 3 px right and 2 px down (frame units: 2/16 per pixel), the green one 1 px left.
    red = 0 if alphas[0, 0, 0, 3, 3] > 0 else 1
    shift = torch.zeros(1, 1, 2, 2)
    shift[0, 0, red] = torch.tensor([3.0, 2.0]) * 2 / 16
    shift[0, 0, 1 - red] = torch.tensor([-1.0, 0.0]) * 2 / 16
    out = composite(base, layers, alphas, shift)[0, 0]
    torch.testing.assert_close(out[:, 4:8, 5:9], frame[0, :, 2:6, 2:6])              # same pixels, new place
    torch.testing.assert_close(out[:, 9:12, 7:11], frame[0, :, 9:12, 8:12])          # edge column included
    torch.testing.assert_close(out[:, 2:4, 2:5], BG[:, None, None].expand(3, 2, 3))  # uncovered: background


def test_match_shifts_finds_integer_and_subpixel_moves():
    frame = _scene()
    alphas, bg = ObjectSplitter(2)(frame)
    layers, base = peel_layers(frame, alphas, bg.expand_as(frame))
    true = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[3.0, -2.0], [0.0, 1.0]], [[1.5, 0.0], [-2.0, -2.0]],
                         [[0.25, 0.625], [-0.375, 0.125]]])
    clip = composite(base, layers, alphas, true[None] * 2 / 16)
    found = match_shifts(layers, alphas, base, clip, radius=4)[0] * 16 / 2                  # back to pixels
    torch.testing.assert_close(found, true, atol=1e-4, rtol=0)                        # on the 1/8 px grid


def _clip(index, frames, stride, objects=2):
    ds = BouncingShapes(resolution=16, num_videos=64, video_frames=64, num_objects=objects, seed=1, split="test")
    return frames_to_tensor(ds.render(index, 0, frames, stride))


def test_image_to_video_first_frame_exact_objects_rigid_and_gradients():
    torch.manual_seed(0)
    G = build_generator(_cfg("image"))
    assert isinstance(G, LayeredConditionalGenerator) and G.context_frames == 1
    stills = torch.stack([_clip(i, 1, 1, objects=1 + i % 2)[0] for i in range(8)])
    z, t = torch.randn(8, G.z_dim), torch.arange(6.0)[None].expand(8, -1) * 3
    m1, m2 = G.sample_motion(8, 15.0), G.sample_motion(8, 15.0)
    out = G(z, stills, t, m1)
    assert out.shape == (8, 6, 3, 16, 16)
    torch.testing.assert_close(out[:, 0], stills, atol=1e-5, rtol=0)                 # the still itself
    assert (out[:, -1] - stills).abs().max() > 0.1                                   # and then it moves
    assert (G(z, stills, t, m2)[:, -1] - out[:, -1]).abs().max() > 1e-4              # motion codes matter
    assert (G(torch.randn(8, G.z_dim), stills, t, m1)[:, -1] - out[:, -1]).abs().max() > 1e-3   # so does z
    # Rigid: every frame holds the same amount of object (bilinear moves conserve it away from the borders), in
    # the clips of one object (two may pass in front of each other).
    diff = (out - out[:, :1, :, :1, :1]).abs()                                       # vs the background colour
    ink = diff.sum(dim=(2, 3, 4))
    inside = (diff[:, :, :, [0, -1]].amax(dim=(2, 3, 4)) < 0.01) & \
             (diff[..., [0, -1]].amax(dim=(2, 3, 4)) < 0.01)                       # nothing on the border
    inside[1::2] = False
    assert inside.sum() >= 8
    torch.testing.assert_close(ink[inside], ink[:, :1].expand_as(ink)[inside], rtol=0.01, atol=0)
    out.square().mean().backward()
    for prefix in ("encoder.", "mapping.", "motion.kinematics.", "motion.jitter.", "motion.net."):
        grads = [p.grad for n, p in G.named_parameters() if n.startswith(prefix)]
        assert grads and all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads), prefix


def test_continuation_carries_the_context_motion_on():
    torch.manual_seed(0)
    G = build_generator(_cfg("continue"))
    assert isinstance(G, LayeredConditionalGenerator) and G.context_frames == 2
    with torch.no_grad():
        G.motion.jitter.weight.zero_()                                # no wobble: the measured drift alone
        G.motion.jitter.bias.zero_()
    clips = torch.stack([_clip(i, 8, 2) for i in range(8)])          # 2 context frames + 6 to predict, 2 apart
    t = torch.arange(8.0)[None].expand(8, -1) * 2
    with torch.no_grad():
        out = G(torch.randn(8, G.z_dim), clips[:, :2], t, G.sample_motion(8, 14.0))
    torch.testing.assert_close(out[:, 1], clips[:, 1], atol=1e-5, rtol=0)            # the last context frame
    model = psnr(out[:, 2:5], clips[:, 2:5]).mean()
    copy = psnr(clips[:, 1:2].expand(-1, 3, -1, -1, -1), clips[:, 2:5]).mean()
    assert model > copy + 3, (float(model), float(copy))              # untrained: measured, not learned
    # The velocity head is not used: the context decides.
    assert all(p.grad is None for p in G.motion.kinematics.parameters())


def test_layered_generator_is_chosen_by_config_and_checkpoints_round_trip(tmp_path):
    from gan.sampling import ClipRenderer, load_conditional
    from gan.projector import project
    from gan.training.loop import train
    cfg = _cfg("image", train={"steps": 2, "batch": 2, "checkpoint_every": 2, "log_every": 1, "sample_every": 0},
               data={"num_videos": 8, "workers": 0})
    assert not isinstance(build_generator(_cfg("image", G={"objects": 0})), LayeredConditionalGenerator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(cfg, str(tmp_path), progress=False)
    G, info = load_conditional(tmp_path / "checkpoints" / "latest.pt")
    assert isinstance(G, LayeredConditionalGenerator) and info["mode"] == "image"
    still = _clip(0, 1, 1)[0]
    renderer, times = ClipRenderer(G), torch.arange(5, dtype=torch.float64)
    animate = lambda: renderer.whole(renderer.conditioned_clips([3], still[None], torch.zeros(1), times))  # noqa
    clip = animate()
    torch.testing.assert_close(clip[0, 0], still, atol=1e-5, rtol=0)
    torch.testing.assert_close(animate(), clip)                        # a seed is a clip
    with pytest.raises(ValueError, match="layered image/continuation"):
        project(G, clip[0], steps=1, lpips_weight=0)
