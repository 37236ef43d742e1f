"""The generator family: every generator build_generator makes answers the one interface (gan/networks/interface.py)
the same way."""
import warnings

import pytest
import torch

from gan.config import load_config
from gan.networks import VideoGenerator, build_generator
from tests.conftest import ROOT

# preset, overrides, c_dim, class, context_frames, objects
FAMILY = [("tiny", {}, 0, "Generator", 0, 0),
          ("tiny", {"G": {"objects": 2}}, 3, "LayeredGenerator", 0, 2),
          ("t2v", {}, 0, "LayeredGenerator", 0, 1),
          ("tiny", {"G": {"camera": "static", "objects": 2}}, 0, "SceneGenerator", 0, 2),
          ("tiny", {"G": {"camera": "moving"}}, 3, "SceneGenerator", 0, 0),
          ("tiny", {"G": {"camera": "subject", "backgrounds": 2}}, 0, "SceneGenerator", 0, 0),
          ("i2v", {"G": {"objects": 0}}, 0, "ConditionalGenerator", 1, 0),
          ("i2v", {}, 0, "LayeredConditionalGenerator", 1, 2),
          ("continue", {"G": {"objects": 0}}, 0, "ConditionalGenerator", 2, 0),
          ("continue", {}, 0, "LayeredConditionalGenerator", 2, 2)]


def _cfg(preset, over):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_config(str(ROOT / "configs" / f"{preset}.yaml"), {"cond": {"lpips_random_backbone": True}, **over})


def _frames(b, k, ch, r):
    """[B, K, C, H, W]: two flat squares on a grey-blue background, the first moving right by a pixel a frame."""
    x = torch.full((b, k, ch, r, r), -0.6)
    for i in range(k):
        x[:, i, :, 3:7, 2 + i:6 + i] = 0.9
        x[:, i, 0, 9:12, 8:11] = -1.0
    return x


def _condition(G, cfg, b):
    if G.context_frames:
        c = _frames(b, G.context_frames, G.img_channels, G.resolution)
        return c[:, 0] if G.context_frames == 1 else c
    if cfg.cond.mode == "text":
        return torch.randn(b, G.c_dim)
    return torch.arange(b) % G.c_dim if G.c_dim else None


@pytest.mark.parametrize("preset,over,c_dim,name,k,objects", FAMILY)
def test_every_generator_answers_the_one_interface(preset, over, c_dim, name, k, objects):
    cfg = _cfg(preset, over)
    torch.manual_seed(0)
    G = build_generator(cfg, c_dim)
    assert isinstance(G, VideoGenerator) and type(G).__name__ == name
    assert (G.context_frames, G.objects, G.resolution, G.img_channels) == (k, objects, cfg.data.resolution,
                                                                           cfg.data.channels)
    b = 2
    c, z = _condition(G, cfg, b), torch.randn(b, G.z_dim)
    t = torch.arange(5.0)[None].repeat(b, 1) * 1.5
    motion = G.sample_motion(b, 6.0)
    assert motion.shape == (b, G.num_anchors(6.0), G.motion_dim) and G.num_anchors(6.0) == int(6 // G.motion_period) + 2
    with torch.no_grad():
        out = G(z, c, t, motion)
    assert out.shape == (b, 5, G.img_channels, G.resolution, G.resolution) and torch.isfinite(out).all()
    # The one training hook moves the truncation centre (and whatever else G centres on); rendering stays a
    # function of the weights and buffers.
    before = G.w_avg.clone()
    G.update_avg(z, c, motion, t)
    assert not torch.equal(G.w_avg, before)
    # Truncation means the same for every family: psi = 0 renders the mean latent, whatever z.
    with torch.no_grad():
        a = G(z, c, t, motion, truncation_psi=0.0)
        other = G(torch.randn(b, G.z_dim), c, t, motion, truncation_psi=0.0)
    torch.testing.assert_close(a, other)
    # The generator that renders frames from a latent (what projection searches): none for the layered
    # image/continue G, whose frames are the condition's own pixels.
    latent = G.latent_generator
    assert (latent is None) == (k > 0 and objects > 0)
    assert latent is None or (latent.context_frames == 0 and (latent is G) == (k == 0))


def test_the_fast_path_refuses_frame_conditioned_generators():
    from gan.sampling import ClipRenderer, SamplingError
    G = build_generator(_cfg("i2v", {"G": {"objects": 0}}))
    with pytest.raises(SamplingError, match="leave them unset"):
        ClipRenderer(G, precision="fp32")
    ClipRenderer(G)                                                         # G itself renders them


def test_projection_searches_the_image_generators_inner_synthesis_G(tmp_path):
    from gan.projector import load_projection, project, rerender, save_projection
    cfg = _cfg("i2v", {"G": {"objects": 0}})
    torch.manual_seed(0)
    G = build_generator(cfg).eval()
    with torch.no_grad():
        G.latent_generator.flow.weight.normal_()                            # untrained flows are still
        target = G(torch.randn(1, G.z_dim), _condition(G, cfg, 1), torch.arange(4.0)[None] * 2)[0].clamp(-1, 1)
    res = project(G, target, torch.arange(4.0) * 2, steps=30, lr=0.1, lpips_weight=0, seed=0)
    assert res["relative"] and res["residual"] is not None and min(res["loss"]) < res["loss"][0]
    save_projection(tmp_path / "p.pt", res, "ckpt", "in.mp4", 8.0, "off", 0)
    clip = rerender(G, load_projection(tmp_path / "p.pt"), 6, time_step=0.5)
    assert clip.shape == (6, G.img_channels, G.resolution, G.resolution) and torch.isfinite(clip).all()
