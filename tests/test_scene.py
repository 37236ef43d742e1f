"""Camera footage: the network-free scene scores on rendered cases with known answers, the footage kind read off
small rendered folders (static camera with walkers, a pan, sprites on a flat background), and the scene generator."""
import numpy as np
import pytest
import torch

from gan.config import ConfigError, load_config
from gan.data.footage_kind import camera_stats, count_cameras, kind_of, median_backgrounds, suggest
from gan.analysis.footage import phase_shift, scores
from gan.networks import SceneGenerator, build_generator
from gan.video_io import write_mp4
from tests.conftest import ROOT


def texture(size=96, seed=0, blur=3.0, low=90, high=170):
    """A smooth colour texture (a stand-in photograph): float32 [size, size, 3] in low..high."""
    from scipy import ndimage
    rng = np.random.default_rng(seed)
    x = ndimage.gaussian_filter(rng.random((size, size, 3)), (blur, blur, 0))
    x = (x - x.min()) / (x.max() - x.min())
    return (low + (high - low) * x).astype(np.float32)


def street(t=24, size=64, seed=0, walkers=3):
    """A static camera: dark 5x9 figures crossing a fixed texture at 1 px / frame; uint8 [t, size, size, 3]."""
    rng = np.random.default_rng(seed)
    bg = texture(size, seed=100, blur=1.5, low=60, high=200)
    v = np.repeat(bg[None], t, axis=0)
    for i in range(walkers):                                   # one lane each, apart
        y, x, d = 4 + i * (size - 12) // walkers, int(rng.integers(10, size - 30)), int(rng.choice([-1, 1]))
        for k in range(t):
            xx = int(np.clip(x + d * k, 0, size - 6))
            v[k, y:y + 9, xx:xx + 5] = (0, 0, 0)
    return v.round().astype(np.uint8), bg


def pan(t=24, size=64, seed=0, speed=1.5):
    """A camera panning right over a larger texture at `speed` px / frame; uint8 [t, size, size, 3]."""
    big = texture(size * 3, seed=200 + seed, blur=1.5, low=30, high=230)
    return np.stack([big[16:16 + size, int(8 + speed * k):int(8 + speed * k) + size] for k in range(t)]).astype(
        np.uint8)


def sprites(t=24, size=64, seed=0):
    """Two bright squares moving over flat black (the layered G's kind of data)."""
    rng = np.random.default_rng(seed)
    v = np.zeros((t, size, size, 3), np.uint8)
    for _ in range(2):
        y, x = rng.integers(0, size // 2, 2)
        for k in range(t):
            v[k, y:y + 12, x + k // 2:x + k // 2 + 12] = 220
    return v


# ---- scores ------------------------------------------------------------------------------------------------


def luma_of(bg):
    from gan.analysis.footage import luma
    return luma(bg.round().astype(np.uint8)[None, None])[0, 0]


def test_scores_of_a_static_camera_with_walkers():
    clips = np.stack([street(16, seed=s)[0] for s in range(4)])
    bg = luma_of(street(1)[1])
    s = scores([clips], bg)
    assert s["scene_error"] < 0.01                              # the median of a clip is the background
    assert 2.5 <= s["regions"] <= 3.0                           # three figures, merging at most rarely
    assert s["persistence"] > 0.95 and s["static_clips"] == 0   # each moves 1 px a frame
    assert 0.02 < s["foreground"] < 0.05                        # 3 x 45 px of 4096
    wrong = scores([np.ascontiguousarray(clips[:, :, ::-1])], bg)          # the scene upside down
    assert wrong["scene_error"] > 5 * s["scene_error"] + 0.02
    frozen = scores([np.repeat(clips[:, :1], 16, axis=1)], bg)
    assert frozen["static_clips"] == 1 and frozen["change"] == 0


def test_phase_correlation_reads_a_pan_and_melting_leaves_change_behind():
    for speed in (1.0, 2.5):
        s = scores([pan(12, speed=speed)[None]], None)
        assert abs(s["global_motion"] - speed) < 0.25
    slide = scores([pan(12, speed=2.0)[None]], None)
    rng = np.random.default_rng(0)
    melt = np.stack([pan(1, seed=k)[0] for k in range(12)])[None]          # a new scene every frame
    melted = scores([melt], None)
    assert melted["compensated_change"] > 4 * slide["compensated_change"]
    assert np.allclose(phase_shift(np.ones((64, 64)) * rng.random(), np.ones((64, 64))), 0, atol=0.5)


def test_identity_is_low_when_clips_keep_their_subject():
    faces = np.stack([np.repeat(texture(64, seed=k).astype(np.uint8)[None], 8, axis=0) for k in range(6)])
    assert scores([faces], None, faces=True)["identity"] < 0.05
    swapped = faces.copy()
    swapped[:, -1] = np.roll(faces[:, 0], 1, axis=0)                       # the last frame is another clip's
    assert scores([swapped], None, faces=True)["identity"] > 0.9


# ---- footage kind ----------------------------------------------------------------------------------------------


def test_footage_kind_of_a_static_camera_a_pan_and_sprites():
    st = [camera_stats(street(seed=s)[0]) for s in range(3)]
    assert [kind_of(s) for s in st] == ["static"] * 3
    found = suggest(st)
    assert found["G.camera"] == "static" and found["G.objects"] == 3 and found["G.backgrounds"] == 1
    assert 0.15 <= found["G.object_size"] <= 0.5
    pans = [camera_stats(pan(seed=s, speed=1.0 + s)) for s in range(3)]
    assert [kind_of(s) for s in pans] == ["moving"] * 3
    assert suggest(pans)["G.camera"] == "moving" and suggest(pans)["G.objects"] == 0
    other = camera_stats(street(seed=0)[0] // 2 + 100)                      # another camera's view
    assert count_cameras([st[0]["thumb"], st[1]["thumb"], other["thumb"]]) == 2


def _prepare(tmp_path, name, videos):
    from gan.data.prepared import prepare
    for i, v in enumerate(videos):
        write_mp4(tmp_path / name / f"v{i}.mp4", v, fps=12, crf=12)
    return prepare(str(tmp_path / name), str(tmp_path / f"{name}_64"), 64, workers=1, progress=False)


def test_prepared_folders_suggest_the_scene_G_or_the_layered_G(tmp_path):
    from gan.data.prepared import explain
    walkers = _prepare(tmp_path, "street", [street(seed=s)[0] for s in range(3)])
    hint = walkers.suggestions()
    assert hint["G.camera"] == "static" and hint["G.objects"] == 3
    assert "static camera" in " ".join(explain(hint).values())
    assert _prepare(tmp_path, "pan", [pan(seed=s) for s in range(3)]).suggestions()["G.camera"] == "moving"
    flat = _prepare(tmp_path, "sprites", [sprites(seed=s) for s in range(3)]).suggestions()
    assert "G.camera" not in flat and flat["G.objects"] == 2
    # camera footage with the scene G turned off gets the synthesis G, not the layered G with the scene's sprites
    from gan.data.dataset import ClipDataset, infer_settings
    cfg = load_config(str(ROOT / "configs" / "tiny.yaml"), {"data": {"source": str(tmp_path)}, "G": {"camera": "none"}})
    infer_settings(cfg, ClipDataset(walkers, cfg.data))
    assert cfg.G.camera == "none" and cfg.G.objects == 0
    bank = median_backgrounds(walkers, 2)                       # one camera: one background, the figures gone
    assert bank.shape == (1, 64, 64, 3)
    assert walkers.read(0, 0, 1).min() < 20 and bank.min() > 30      # black figures in the frames, not in the bank
    assert np.abs(bank[0].astype(np.float32) - street()[1]).mean() < 8      # the texture (through the codec)


# ---- the scene generator -------------------------------------------------------------------------------------


def scene_cfg(camera, **g):
    return load_config(str(ROOT / "configs" / "tiny.yaml"),
                       {"data": {"channels": 3}, "G": {"camera": camera, "objects": g.pop("objects", 0), **g}})


def test_a_fitted_bank_is_the_scene_from_the_first_step():
    G = build_generator(scene_cfg("static", backgrounds=2)).eval()
    assert isinstance(G, SceneGenerator) and G.backgrounds == 2
    bank = torch.rand(2, 3, 16, 16) * 2 - 1
    G.fit_backgrounds(bank)
    with torch.no_grad():
        G.residual_gain.zero_()
        out = G(torch.randn(3, G.z_dim), None, torch.arange(6.0)[None].repeat(3, 1))
    # every frame of every video is a blend of the two fitted backgrounds, the same blend in every frame
    assert torch.allclose(out[:, 1:], out[:, :1].expand_as(out[:, 1:]), atol=1e-6)
    lo, hi = bank.min(0).values, bank.max(0).values
    assert (out >= lo - 1e-5).all() and (out <= hi + 1e-5).all()
    with pytest.raises(ValueError, match="no background bank"):
        build_generator(scene_cfg("static", backgrounds=0)).fit_backgrounds(bank)


def test_the_bank_learns_at_its_multiplier_of_the_rate_and_old_checkpoints_load():
    torch.manual_seed(0)
    bank = torch.rand(1, 3, 16, 16) * 2 - 1
    moved = {}
    for lr in (1.0, 0.01, 0.0):
        G = build_generator(scene_cfg("static", backgrounds=1, background_lr=lr))
        G.fit_backgrounds(bank)
        assert torch.allclose(G.bank, bank, atol=1e-6)                     # image units whatever the multiplier
        G.requires_grad_(True)                                            # as the training loop does
        opt = torch.optim.Adam(G.parameters(), lr=0.002, betas=(0.0, 0.99))
        for _ in range(3):                                # Adam moves each stored pixel by about lr a step
            opt.zero_grad()
            G(torch.randn(2, G.z_dim), None, torch.arange(3.0)[None].repeat(2, 1)).square().mean().backward()
            opt.step()
        moved[lr] = float((G.bank.detach() - bank).abs().amax())
    # at most lr * sqrt((1 - b2^t) / (1 - b2)) at step t (beta1 = 0), so the bank by that times its gain
    bound = 0.002 * sum(((1 - 0.99 ** t) / 0.01) ** 0.5 for t in (1, 2, 3))
    assert moved[0.0] == 0 and 0 < moved[0.01] <= 0.01 * bound * (1 + 1e-3) and moved[1.0] > 0.01 * bound
    # a checkpoint from before the multiplier stored the bank in image units under 'bank'
    old = {k: v for k, v in G.state_dict().items() if k != "bank_weight"}
    old["bank"] = -bank
    G2 = build_generator(scene_cfg("static", backgrounds=1))
    G2.load_state_dict(old)
    assert torch.allclose(G2.bank, -bank, atol=1e-6)
    with pytest.raises(ConfigError, match="G.background_lr"):
        scene_cfg("static", background_lr=2)


def test_a_moving_camera_slides_across_one_canvas():
    G = build_generator(scene_cfg("moving", camera_speed=0.05)).eval()
    assert G.canvas == 1.5 and G.backgrounds == 0 and G.objects == 0
    with torch.no_grad():
        G.camera_head.weight.zero_()
        G.camera_head.bias.copy_(torch.tensor([0.0, 0.0, 1.5, 0.0, 0.0]))  # pan right, no zoom
        G.camera_jitter.weight.zero_()
        G.camera_jitter.bias.zero_()
        out = G(torch.randn(1, G.z_dim), None, torch.arange(8.0)[None])
    frames = out[0].mean(1).numpy()
    shifts = np.array([phase_shift(frames[k], frames[k + 1]) for k in range(7)])
    # the window moves 0.05 * tanh(1.5) frame widths a frame (16 px), whatever the canvas' size
    expected = 0.05 * np.tanh(1.5) * 16
    # from the centre the edge of the free span (4 px away) comes after 5.5 frames: there the window turns back
    assert np.abs(shifts[:4, 1] + expected).max() < 0.25 and np.abs(shifts[:, 0]).max() < 0.25
    assert shifts[6, 1] > 0.25


def test_a_subject_is_drawn_once_and_warped_a_little():
    G = build_generator(scene_cfg("subject")).eval()
    assert G.flow is not None and G.frame_modules() == [G.flow]
    with torch.no_grad():
        out = G(torch.randn(4, G.z_dim), None, torch.arange(12.0)[None].repeat(4, 1))
    from gan.analysis.footage import identity
    y = out.mean(2).numpy()                                                  # [B, T, 16, 16]
    assert identity(np.kron(y, np.ones((4, 4)))) < 0.5


def test_scene_G_trains_and_samples_from_its_checkpoint(tmp_path):
    from gan.sampling import load_generator, render
    from gan.training import train
    root = tmp_path / "cam"
    for s in range(3):
        write_mp4(root / f"v{s}.mp4", street(16, 64, seed=s)[0], fps=12, crf=12)
    cfg = load_config(str(ROOT / "configs" / "tiny.yaml"), {"data": {"source": str(root), "clip_frames": 3}})
    assert cfg.G.camera == "auto" and cfg.G.backgrounds == -1
    out = train(cfg, str(tmp_path / "run"), device="cpu", progress=False)
    assert out["step"] == cfg.train.steps
    G, info = load_generator(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert isinstance(G, SceneGenerator) and info["config"].G.camera == "static" and G.objects >= 1
    assert info["config"].G.backgrounds == 1 and G.bank.abs().sum() > 0  # started from the footage's median
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "inferred from the data: G.camera=static" in log and "background bank starts from 1" in log
    assert info["config"].loss.motion_weight > 0 and "loss.motion_weight=" in log     # motion matching is on
    assert "G/motion_match" in (tmp_path / "run" / "log.jsonl").read_text()
    clip = render(G, [0, 1], 5, fused=False)
    assert clip.shape == (2, 5, 3, 16, 16) and torch.isfinite(clip).all()


def test_a_static_scene_can_warp_in_place_when_asked():
    G = build_generator(scene_cfg("static", objects=1))
    assert G.flow is None and G.frame_modules() == []                     # auto: a static scene stands still
    G = build_generator(scene_cfg("static", objects=1, scene_warp=0.05)).eval()
    assert G.flow is not None and G.warp == 0.05
    torch.nn.init.normal_(G.flow.weight)
    with torch.no_grad():
        w = G.mapping_forward(torch.randn(2, G.z_dim))
        content = G.content(w)
        v = G.motion_embedding(torch.randn(2, 3, G.motion_dim), torch.arange(6.0)[None].repeat(2, 1), w=w)
        bg = G.view(content[1], v)                                          # [B, T, C, H, W]
    assert (bg[:, 1:] - bg[:, :1]).abs().amax() > 0                       # the scene moves in place
    # On a ramp equal to the x coordinate (bilinear sampling reads it exactly), the warped picture minus the ramp is
    # the x displacement itself: at most G.scene_warp half-frames, away from the border where sampling clamps.
    h = bg.shape[-1]
    ramp = ((torch.arange(h) + 0.5) * 2 / h - 1).expand(2, 3, h, h)
    with torch.no_grad():
        moved = G.view(ramp, v)[..., 2:-2, 2:-2]
    shift = (moved - ramp[:, None, :, 2:-2, 2:-2]).abs()
    assert 0.2 * 0.05 < shift.amax() <= 0.05 * (1 + 1e-5)
    assert build_generator(scene_cfg("subject")).warp > 0                # a subject always warps


def test_camera_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="G.camera"):
        scene_cfg("pan")
    with pytest.raises(ConfigError, match="G.scene_warp"):
        scene_cfg("static", scene_warp=0.9)
    with pytest.raises(ConfigError, match="G.canvas"):
        scene_cfg("moving", canvas=0.5)
    with pytest.raises(ConfigError, match="frame-conditioned"):
        load_config(str(ROOT / "configs" / "i2v.yaml"), {"G": {"camera": "static"}})
    assert isinstance(build_generator(scene_cfg("auto")), torch.nn.Module)   # auto without data: today's G
    assert not isinstance(build_generator(scene_cfg("auto")), SceneGenerator)


def test_sprites_cannot_turn_transparent():
    from gan.networks.scene import MIN_COVERAGE
    torch.manual_seed(0)
    G = build_generator(scene_cfg("static", objects=3)).eval()
    with torch.no_grad():
        G.sprite_blocks[-1].torgb.bias[-1] = -30.0                       # alpha logits far below zero
        sprites, _ = G.content(G.mapping_forward(torch.randn(4, G.z_dim)))
    alpha = sprites.reshape(4, 3, G.img_channels + 1, *sprites.shape[2:])[:, :, -1]
    # lifted to the floor (the clamp at 1 takes back up to ~16% of it from a peaked shape at this seed)
    assert (alpha.mean(dim=(2, 3)) >= 0.8 * MIN_COVERAGE).all() and alpha.max() <= 1
    assert alpha[..., 0, :].max() < 0.5 * alpha.max()                    # fading out at the box's edge
