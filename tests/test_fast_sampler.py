"""Generator export, the fast sampler (precision, static shapes), real-time streaming, config budgets.

No compilation here: the CPU compiler needs tens of seconds per graph (bench/run.py measures it)."""
import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from gan.config import load_config
from gan.export import cli as export_cli
from gan.export import export_generator
from gan.sampling import FastSampler, flops_per_frame, param_count, stream_clip
from gan.networks import build_discriminators, build_generator
from gan.sampling import load_generator, render
from gan import checkpoint as ckpt_io
from gan.video_io import RawWriter, to_uint8

ROOT = Path(__file__).resolve().parents[1]


def make_checkpoint(cfg, path: Path) -> Path:
    """A full training checkpoint: G and G_ema with different weights, both Ds, optimizer states."""
    torch.manual_seed(0)
    G = build_generator(cfg)
    G_ema = build_generator(cfg)               # another init: exporting G instead of G_ema shows
    D_image, D_video = build_discriminators(cfg)
    opts = {}
    for name, mods in (("opt_G", [G]), ("opt_D", [D_image, D_video])):
        opt = torch.optim.Adam([p for m in mods for p in m.parameters()])
        for p in opt.param_groups[0]["params"]:
            p.grad = torch.zeros_like(p)
        opt.step()                             # materialise Adam's moment buffers
        opts[name] = opt.state_dict()
    state = {"format_version": ckpt_io.FORMAT_VERSION, "config": cfg.to_dict(), "step": 7, "seen": 28,
             "c_dim": 0, "class_names": [], "G": G.state_dict(), "G_ema": G_ema.state_dict(),
             "D_image": D_image.state_dict(), "D_video": D_video.state_dict(), "rng": ckpt_io.rng_state(), **opts}
    ckpt_io.save_atomic(state, path)
    return path


@pytest.fixture
def tiny_ckpt(tiny_cfg, tmp_path):
    return make_checkpoint(tiny_cfg, tmp_path / "latest.pt")


def test_export_round_trip_is_small_plain_and_renders_g_ema(tiny_ckpt, tmp_path):
    out = tmp_path / "G.pt"
    info = export_generator(tiny_ckpt, out)
    assert out.is_file() and info["bytes"] == out.stat().st_size
    assert info["bytes"] < 0.4 * tiny_ckpt.stat().st_size     # no D, no optimizer moments
    raw = torch.load(out, map_location="cpu", weights_only=True)
    assert set(raw) >= {"format_version", "config", "c_dim", "class_names", "G_ema"}
    assert not {"G", "D_image", "D_video", "opt_G", "opt_D", "rng"} & set(raw)
    assert isinstance(raw["config"], dict) and raw["config"]["G"]["z_dim"] == 16

    G_exp, info_exp = load_generator(out)
    G_ckpt, _ = load_generator(tiny_ckpt)                      # load_generator takes G_ema
    assert info_exp["step"] == 7 and info_exp["c_dim"] == 0
    a, b = render(G_exp, [1, 2], 6, chunk=4), render(G_ckpt, [1, 2], 6, chunk=4)
    assert torch.equal(a, b)
    G_train = build_generator(load_config(str(ROOT / "configs" / "tiny.yaml")))
    G_train.load_state_dict(torch.load(tiny_ckpt, weights_only=True)["G"])
    assert not torch.allclose(render(G_train.eval(), [1, 2], 6, chunk=4), a)   # it was G_ema, not G

    with pytest.raises(ckpt_io.CheckpointError, match="exists"):
        export_generator(tiny_ckpt, out)
    half = export_generator(tiny_ckpt, tmp_path / "G16.pt", dtype="bf16")
    assert half["bytes"] < 0.7 * info["bytes"]
    G_half, _ = load_generator(tmp_path / "G16.pt")
    assert (render(G_half, [1], 4) - render(G_ckpt, [1], 4)).abs().max() < 0.1


def test_export_cli(tiny_ckpt, tmp_path):
    res = CliRunner().invoke(export_cli, [str(tiny_ckpt), str(tmp_path / "G.pt")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "G.pt").is_file() and "MiB" in res.output
    res = CliRunner().invoke(export_cli, [str(tiny_ckpt), str(tmp_path / "G.pt")])
    assert res.exit_code == 2 and "--force" in res.output


@pytest.mark.numerics
def test_fast_sampler_fp32_matches_reference_and_bf16_is_close(tiny_G):
    ref = render(tiny_G, [3, 5], 10, chunk=4)
    fast = FastSampler(tiny_G, chunk=4).render([3, 5], 10)
    assert fast.shape == ref.shape == (2, 10, 3, 16, 16)
    torch.testing.assert_close(fast, ref, atol=1e-4, rtol=1e-4)    # fused vs unfused modconv only
    bf16 = FastSampler(tiny_G, precision="bf16", chunk=4).render([3, 5], 10)
    err = (bf16 - ref).abs()
    assert 0 < err.max() < 0.1 and err.mean() < 0.01               # it ran in bf16, and stayed close
    # The per-seed RNG holds in the fast sampler too: a seed renders the same alone or in a batch.
    torch.testing.assert_close(FastSampler(tiny_G, chunk=3).render([5], 10)[0], fast[1], atol=1e-4, rtol=1e-4)


@pytest.mark.numerics
def test_style_affines_split_their_per_video_half(tiny_G):
    # Each per-frame style affine over cat(w, v) keeps only its v half per frame; the w half and the biases of all
    # of them are one product per video, made once for a whole clip.
    from gan.sampling.fast import FrameAffine
    sampler = FastSampler(tiny_G, chunk=4)
    G = sampler.renderer.G
    layers = [m for b in G.blocks if b.resolution > G.content_res for m in b.modules() if hasattr(m, "affine")]
    assert layers and all(isinstance(m.affine, FrameAffine) for m in layers)
    assert sum(m.affine.weight_v.shape[0] for m in layers) == sampler.renderer.per_video.weight.shape[0]
    calls = []
    sampler.renderer.per_video.register_forward_hook(lambda *a: calls.append(1))
    fast = sampler.render([3, 5], 10)                                # three chunks
    assert len(calls) == 1
    # float32 sums reordered (fused vs unfused modconv, the affine in two parts): 3e-6 measured on frames in [-1, 1];
    # the v half dropped is 1.9 off
    torch.testing.assert_close(fast, render(tiny_G, [3, 5], 10, chunk=4), atol=1e-4, rtol=1e-4)
    assert all(not isinstance(m.affine, FrameAffine) for b in tiny_G.blocks for m in b.modules()
               if hasattr(m, "affine"))                               # the caller's G is untouched


def test_separable_G_renders_the_same_fused_and_unfused(tiny_cfg):
    # G.separable_from: fused, the styles and demodulation go into per-sample 1x1 weights (G's own renderer); unfused,
    # they scale the activations (training and the fast sampler, whose compiler pre-packs the shared weights).
    tiny_cfg.G.separable_from = 8
    torch.manual_seed(0)
    G = build_generator(tiny_cfg).eval()
    assert [b.conv1.separable for b in G.blocks] == [r >= 8 for r in G.resolutions]
    gen = torch.Generator().manual_seed(1)
    t = torch.arange(5.0).expand(2, 5)
    z = torch.randn(2, G.z_dim, generator=gen)
    codes = torch.randn(2, G.motion.num_anchors(4.0), G.motion_dim, generator=gen)

    def frames(fused):
        w = G.mapping_forward(z)
        return G.frames(w, G.content(w, fused), G.motion_embedding(codes, t, w=w), fused=fused)
    with torch.no_grad():
        fused, unfused = frames(True), frames(False)
    # float32 sums reordered: measured 1.4e-6 on frames up to |3.5|; a wrong fold is O(0.1) off
    torch.testing.assert_close(fused, unfused, atol=1e-4, rtol=1e-4)
    assert (fused[:, 1:] - fused[:, :1]).abs().max() > 1e-2      # motion reaches the separable blocks
    torch.testing.assert_close(FastSampler(G, chunk=4).render([3], 6), render(G, [3], 6, chunk=4),
                               atol=1e-4, rtol=1e-4)


def test_precision_errors(tiny_G):
    with pytest.raises(ValueError, match="CUDA"):
        FastSampler(tiny_G, precision="fp16")
    with pytest.raises(ValueError, match="precision"):
        FastSampler(tiny_G, precision="int4")


@pytest.mark.numerics
def test_preview_resolution_is_the_skip_sum_at_that_block(tiny_G):
    """A preview renders the blocks up to its size: exactly the RGB sum that the full render has at that block."""
    from gan.sampling import ClipRenderer
    from gan.sampling.fast import preview_resolutions
    assert preview_resolutions(tiny_G) == (16,)                        # tiny: content at 8 px, one block above
    cfg = load_config(str(ROOT / "configs" / "tiny.yaml"), {"data": {"resolution": 32}})
    torch.manual_seed(0)
    G = build_generator(cfg).eval()
    assert preview_resolutions(G) == (16, 32)
    seen = {}
    block16 = next(b for b in G.blocks if b.resolution == 16)
    hook = block16.register_forward_hook(lambda m, i, out: seen.update(img=out[1].clone()))
    full = ClipRenderer(G, chunk=5, precision="fp32").render([2], 5)
    hook.remove()
    preview = ClipRenderer(G, chunk=5, precision="fp32", resolution=16).render([2], 5)
    assert full.shape[-1] == 32 and preview.shape == (1, 5, 3, 16, 16)
    torch.testing.assert_close(preview[0], seen["img"].float().clamp(-1, 1), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="16, 32"):
        ClipRenderer(G, precision="fp32", resolution=8)
    with pytest.raises(ValueError, match="fast path"):
        ClipRenderer(G, resolution=16)


@pytest.mark.numerics
def test_motion_window_matches_the_networks_float32_times(tiny_G):
    """Times just below an anchor boundary in float64 round onto it in float32, as the motion network sees them."""
    from gan.sampling import ClipRenderer
    r = ClipRenderer(tiny_G)
    t = torch.tensor([6.4, 7.0, 7.5, 2 * tiny_G.motion.period - 1e-9], dtype=torch.float64)
    w = r.prepare([0])[0]
    assert r.motion([0], t, w).shape == (1, 4, tiny_G.motion_dim)
    back = r.motion([0], t.flip(0), w)                                 # any order: the window covers min..max
    torch.testing.assert_close(back, r.motion([0], t, w).flip(1))


class SpyWriter(RawWriter):
    def __init__(self, fileobj, stop_after=None):
        super().__init__(fileobj)
        self.sizes, self.stop_after = [], stop_after

    def write(self, frames):
        if self.stop_after is not None and len(self.sizes) == self.stop_after:
            raise KeyboardInterrupt                     # what Ctrl-C does to an endless stream
        self.sizes.append(len(frames))
        super().write(frames)


@pytest.mark.parametrize("static_shapes", [False, True])
def test_stream_writes_n_frames_in_constant_size_chunks(tiny_G, static_shapes):
    sampler = FastSampler(tiny_G, chunk=4, static_shapes=static_shapes)
    calls = []
    render_fn = sampler._fn
    sampler._fn = lambda *a: calls.append(a[3].shape[1]) or render_fn(*a)    # frames per render call
    buf, lines = io.BytesIO(), []
    writer = SpyWriter(buf)
    stats = stream_clip(sampler, 7, writer, 11, fps=16.0, log=lines.append)
    assert writer.sizes == [4, 4, 3] and stats["frames"] == 11
    assert calls == ([4, 4, 4] if static_shapes else [4, 4, 3])             # never the whole clip at once
    data = buf.getvalue()
    assert len(data) == 11 * 16 * 16 * 3
    frames = np.frombuffer(data, np.uint8).reshape(11, 16, 16, 3)
    expect = to_uint8(render(tiny_G, [7], 11, chunk=5)[0])
    assert np.abs(frames.astype(int) - expect.astype(int)).max() <= 1
    assert "frames/s" in lines[-1] and "target 16" in lines[-1]


def test_endless_stream_runs_until_interrupted(tiny_G):
    writer = SpyWriter(io.BytesIO(), stop_after=3)
    stats = stream_clip(FastSampler(tiny_G, chunk=4), 0, writer, None, fps=16.0)
    assert writer.sizes == [4, 4, 4] and stats["frames"] == 12 and stats["stopped"] == "interrupted"
    assert len(writer.fileobj.getvalue()) == 12 * 16 * 16 * 3


def test_generate_stream_to_stdout(tiny_ckpt, tmp_path):
    from generate import cli
    args = ["--checkpoint", str(tiny_ckpt), "--stream", "--frames", "8", "--stream-to", "-", "--chunk", "3"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.stderr
    assert len(res.stdout_bytes) == 8 * 16 * 16 * 3
    assert "frames/s" in res.stderr and "target 16" in res.stderr
    G, _ = load_generator(tiny_ckpt)
    frames = np.frombuffer(res.stdout_bytes, np.uint8).reshape(8, 16, 16, 3)
    # The stream is watermarked by default: compare with the whole render marked the same way.
    from gan.sampling import checkpoint_watermarker
    whole = checkpoint_watermarker(tiny_ckpt).embed(to_uint8(render(G, [0], 8)[0]))
    assert np.abs(frames.astype(int) - whole.astype(int)).max() <= 1
    # Stream to an mp4 in --outdir; stream-only options without --stream are refused.
    res = CliRunner().invoke(cli, ["--checkpoint", str(tiny_ckpt), "--stream", "--frames", "5", "--outdir",
                                   str(tmp_path / "out"), "--seeds", "4"])
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "out" / "seed0004_stream.mp4").stat().st_size > 0
    res = CliRunner().invoke(cli, ["--checkpoint", str(tiny_ckpt), "--outdir", str(tmp_path), "--compile"])
    assert res.exit_code == 2 and "--stream only" in res.stderr
    res = CliRunner().invoke(cli, ["--checkpoint", str(tiny_ckpt), "--stream", "--frames", "2"])
    assert res.exit_code == 2 and "--outdir" in res.stderr


def test_lite_config_fits_its_flop_budget():
    G = build_generator(load_config(str(ROOT / "configs" / "lite.yaml"))).eval()
    assert G.resolution == 128
    cost = flops_per_frame(G, frames=1)
    assert 0.5e9 < cost["frame"] <= 2.0e9            # the budget promised in configs/lite.yaml
    assert cost["content"] < 2.0e9                    # once per video


def test_stylegan_v_shaped_configs():
    for name, res in (("stylegan_v128", 128), ("stylegan_v256", 256)):
        cfg = load_config(str(ROOT / "configs" / f"{name}.yaml"))
        assert cfg.data.resolution == res and cfg.G.warp_grid == 0 and cfg.G.content_resolution == 4
        assert (cfg.G.z_dim, cfg.G.w_dim, cfg.G.mapping_layers) == (512, 512, 8)
        if res == 128:  # StyleGAN-V's channel layout (16384 / res, max 512); see the config's comment
            G = build_generator(cfg)
            assert [b.conv1.weight.shape[0] for b in G.blocks] == [512, 512, 512, 512, 256, 128]
            assert math.isclose(param_count(G), 26.6e6, rel_tol=0.02)
            # StyleGAN2's transposed up-convs, as StyleGAN-V's: its 22.7 GFLOPs per frame (FlopCounterMode on its
            # code, bench/stylegan_v_peer.py); the dense form's 41.9 (the up-convs at 4x the positions) would fail
            assert cfg.G.up_conv == "transposed"
            sgv = flops_per_frame(G, frames=1)["frame"]
            assert math.isclose(sgv, 22.7e9, rel_tol=0.05)
            # The fast preset: the same channels, the blocks up to 32 px once per video, a warp per frame
            fast_cfg = load_config(str(ROOT / "configs" / "stylegan_v128_fast.yaml"))
            assert (fast_cfg.G.content_resolution, fast_cfg.G.warp_grid, fast_cfg.G.up_conv) == (32, 8, "transposed")
            fast = build_generator(fast_cfg)
            assert [b.conv1.weight.shape[0] for b in fast.blocks] == [512, 512, 512, 512, 256, 128]
            cost = flops_per_frame(fast, frames=1)
            # per frame: the 64 and 128 px blocks (2 x 7.2 GFLOPs) and the warp; the 4-32 px blocks once per video
            assert cost["frame"] < 0.7 * sgv and cost["content"] > 0.3 * sgv
            # The separable preset: the same channels, 1x1 + depthwise kernels from 8 px up (2.8 GFLOPs per frame)
            sep_cfg = load_config(str(ROOT / "configs" / "stylegan_v128_separable.yaml"))
            sep = build_generator(sep_cfg)
            assert [b.conv1.out_channels for b in sep.blocks] == [512, 512, 512, 512, 256, 128]
            assert [b.conv1.separable for b in sep.blocks] == [False, True, True, True, True, True]
            assert flops_per_frame(sep, frames=1)["frame"] < 0.15 * sgv
