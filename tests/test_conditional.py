"""Conditional generation: image-to-video, continuation, text-to-video, projection (issue #4)."""
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from gan.checkpoint import FORMAT_VERSION
from gan.conditioning import ConditionError, load_image, load_video
from gan.config import Config, ConfigError, load_config
from gan.networks import ConditionalGenerator, build_discriminators, build_generator
from tests.conftest import ROOT
from tests.test_text_conditioning import CONFIGS, _cfg, _text_setup


def _G(mode, seed=0):
    torch.manual_seed(seed)
    G = build_generator(_cfg(mode, G={"objects": 0})).eval()   # the synthesis G (the presets' is layered:
    # tests/test_layered_conditional.py). At 16 px it draws content once and moves it by the flow, which starts at
    # zero (static); give it random weights, as training would, so that motion codes act.
    with torch.no_grad():
        G.G.flow.weight.normal_()                                    # the composed synthesis G's flow
    return G


@pytest.fixture(scope="module")
def lpips_random():
    from losses.conditional import build_perceptual
    with pytest.warns(UserWarning, match="RANDOM BACKBONE"):           # never silent
        return build_perceptual(random_backbone=True)


# ---- config -----------------------------------------------------------------------------------------------


def test_config_defaults_stay_unconditional_and_bad_keys_fail():
    assert Config().cond.mode == "none" and Config().data.captions is False
    assert load_config().to_dict()["cond"]["lpips_random_backbone"] is False
    with pytest.raises(ConfigError, match=r"'cond\.bogus'"):
        load_config(overrides={"cond": {"bogus": 1}})
    with pytest.raises(ConfigError, match="cond.mode"):
        load_config(overrides={"cond": {"mode": "video"}})
    with pytest.raises(ConfigError, match="data.captions"):
        load_config(overrides={"cond": {"mode": "text"}})
    with pytest.raises(ConfigError, match="context_frames"):
        load_config(CONFIGS["continue"], {"cond": {"context_frames": 5}})
    for mode, path in CONFIGS.items():
        cfg = load_config(path)
        assert cfg.cond.mode == mode and cfg.data.resolution == 16 and not cfg.cond.lpips_random_backbone



# ---- image-to-video ---------------------------------------------------------------------------------------


def test_image_to_video_shapes_reference_frame_and_gradients():
    G = _G("image")
    b, t = 2, 5
    still = torch.rand(b, 3, 16, 16) * 2 - 1
    z = torch.randn(b, G.z_dim)
    times = torch.arange(t, dtype=torch.float32)[None].expand(b, -1) * 2
    m1, m2 = (G.sample_motion(b, float(times.max())) for _ in range(2))
    out1, out2 = G(z, still, times, m1), G(z, still, times, m2)
    assert out1.shape == (b, t, 3, 16, 16)
    # Motion is relative to the still: frame 0 does not depend on the motion codes, later frames do. The
    # tolerance covers float32 rounding on any x86 kernel (motion(t) - motion(t_ref) is exact only in exact
    # arithmetic); the motion codes move later frames by O(1), five orders more.
    torch.testing.assert_close(out1[:, 0], out2[:, 0], atol=1e-3, rtol=0)
    assert (out1[:, -1] - out2[:, -1]).abs().max() > 0.1
    assert (G(z, still.flip(0), times, m1)[:, 0] - out1[:, 0]).abs().max() > 1e-3    # the still matters
    G.train().requires_grad_(True)
    (G(z, still, times, m1)[:, 0] - still).abs().mean().backward()
    enc = {n: p.grad for n, p in G.named_parameters() if n.startswith("encoder.")}
    assert enc and all(g is not None and g.abs().sum() > 0 for g in enc.values())
    with pytest.raises(ValueError, match="pass c"):
        G(z, None, times)
    with pytest.raises(ValueError, match=r"\[B, 1, 3, 16, 16\]"):
        G(z, torch.zeros(b, 3, 8, 8), times)


# ---- continuation -----------------------------------------------------------------------------------------


def test_continuation_reads_motion_from_the_context_and_has_gradients():
    G = _G("continue")
    b, k = 2, G.context_frames
    assert isinstance(G, ConditionalGenerator) and G.motion_encoder is not None and k == 2
    context = torch.rand(b, k, 3, 16, 16) * 2 - 1
    z = torch.randn(b, G.z_dim)
    times = torch.tensor([0.0, 2, 4, 6, 8])[None].expand(b, -1)
    motion = G.sample_motion(b, 8.0)
    out = G(z, context, times, motion)
    assert out.shape == (b, 5, 3, 16, 16)
    anchors = G.motion_encoder.anchors
    # The first `anchors` motion codes come from the context: random codes there are ignored...
    other = motion.clone()
    other[:, :anchors] = torch.randn_like(other[:, :anchors])
    torch.testing.assert_close(G(z, context, times, other), out)
    # ...and a different second context frame (different motion) changes the predicted future.
    moved = context.clone()
    moved[:, 1] = context[:, 1].roll(2, dims=-1)
    assert (G(z, moved, times, motion)[:, 2:] - out[:, 2:]).abs().max() > 1e-4
    G.train().requires_grad_(True)
    G(z, context, times, motion)[:, k:].square().mean().backward()
    grads = [p.grad for n, p in G.named_parameters() if n.startswith("motion_encoder.")]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


# ---- text -------------------------------------------------------------------------------------------------


def _recon_setup(mode, lpips_model):
    """Like _text_setup for 'image' / 'continue', with the session's shared LPIPS model (fast)."""
    from gan.training.modes import FrameMode
    from gan.data import build_dataset
    from losses import ClipAugment, VideoGANLoss
    from losses.perceptual import ReconstructionLoss
    cfg = _cfg(mode, G={"objects": 0})          # the synthesis G: its first frame is reconstructed, not exact
    ds = build_dataset(cfg.data, seed=0)
    ct = FrameMode(cfg, "cpu", first_frame_only=mode == "image",
                   recon=ReconstructionLoss(lpips_model, 1.0, 1.0, cfg.cond.temporal_weight))
    torch.manual_seed(0)
    G = build_generator(cfg)
    D_image, D_video = build_discriminators(cfg)
    loss = VideoGANLoss(G, D_image, D_video, ClipAugment([]), cfg.D.image_frames, r1_gamma=0.1, **ct.loss_hooks())
    data = torch.utils.data.default_collate([ds[i] for i in range(2)])
    batch = ct.make_batch(G, data, "cpu", torch.Generator().manual_seed(0))
    return ct, G, D_image, D_video, loss, batch


@pytest.mark.parametrize("mode", ["image", "continue"])
def test_conditional_loss_phases_with_reconstruction(mode, lpips_random):
    ct, G, D_image, D_video, loss, batch = _recon_setup(mode, lpips_random)
    cfg = ct.cfg
    assert D_image.c_dim == D_video.c_dim == 0                          # the condition is inside the clip
    k = 1 if mode == "image" else cfg.cond.context_frames
    torch.testing.assert_close(batch.gen_c.reshape(2, k, 3, 16, 16), batch.real[:, :k])
    stats = loss.accumulate_gradients("Gmain", batch)
    assert stats["G/recon_l1"] > 0 and stats["G/recon_lpips"] > 0
    assert ("G/recon_temporal" in stats) == (mode == "continue")
    assert all(p.grad is not None for n, p in G.named_parameters() if n.startswith("encoder."))
    assert {"D/loss"} <= set(loss.accumulate_gradients("Dmain", batch))
    assert loss.accumulate_gradients("Dreg", batch)["D/loss_r1"] >= 0
    out, target = loss.terms[0].targets(batch.real + 1, batch.real)
    assert out.shape[1] == (1 if mode == "image" else batch.real.shape[1])


@pytest.mark.parametrize("mode", ["text", "image"])
@pytest.mark.parametrize("phase", ["Gmain", "Dmain"])
def test_a_handed_in_fake_gives_the_same_conditional_gradients(mode, phase, lpips_random):
    # The loop renders once per step for the conditional modes too; the loss must give the same maths.
    results = []
    for reuse in (False, True):
        _, G, Di, Dv, loss, batch = _text_setup() if mode == "text" else _recon_setup(mode, lpips_random)
        train_G = phase == "Gmain"
        G.requires_grad_(True), Di.requires_grad_(not train_G), Dv.requires_grad_(not train_G)
        kwargs = {}
        if reuse:
            fake = loss.generate(batch)
            fake.retain_grad()
            kwargs["fake"] = fake if train_G else fake.detach()
        torch.manual_seed(3)                                             # same frame picks
        stats = loss.accumulate_gradients(phase, batch, **kwargs)
        grads = [None if p.grad is None else p.grad.clone() for p in (G if train_G else Di).parameters()]
        results.append((stats, grads))
    assert (fake.grad is not None) == train_G                           # the handed-in clips are the ones used
    if not train_G:
        torch.manual_seed(3)
        assert loss.accumulate_gradients(phase, batch, fake=fake.detach() * 0)["D/loss"] != results[1][0]["D/loss"]
    (s0, g0), (s1, g1) = results
    assert s0 == pytest.approx(s1, rel=1e-6, abs=1e-7)
    assert any(a is not None for a in g0)
    for a, b in zip(g0, g1):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)


def test_lpips_needs_weights_unless_explicitly_random(tmp_path, monkeypatch):
    from losses.conditional import build_reconstruction
    from losses.perceptual import MissingWeightsError
    monkeypatch.setenv("REELGAN_WEIGHTS_DIR", str(tmp_path / "empty"))     # no cache, and no fetching allowed
    monkeypatch.setenv("REELGAN_WEIGHTS_FETCH", "0")
    cfg = load_config(CONFIGS["image"])
    with pytest.raises(MissingWeightsError, match="reelgan-weights fetch lpips-alex"):
        build_reconstruction(cfg.cond)
    with pytest.raises(MissingWeightsError, match="nope.pt"):
        build_reconstruction(load_config(CONFIGS["image"], {"cond": {"lpips_backbone": str(tmp_path / "nope.pt")}}).cond)
    l1_only = build_reconstruction(load_config(CONFIGS["image"], {"cond": {"lpips_weight": 0.0}}).cond)
    assert l1_only.lpips is None


# ---- projection -------------------------------------------------------------------------------------------


def test_projection_lowers_its_loss_and_saves_weights_only(tmp_path, tiny_G, lpips_random):
    from gan.projector import load_projection, project, rerender, save_projection
    G = tiny_G
    with torch.no_grad():                                          # a clip G can make: another latent, other motion
        torch.manual_seed(5)
        target = G(torch.randn(1, G.z_dim), None, torch.arange(4.0)[None])[0]
    res = project(G, target, steps=25, lr=0.1, lpips_model=lpips_random, seed=0)
    first, best = res["loss"][0], min(res["loss"])
    assert best < 0.6 * first, (first, best)
    save_projection(tmp_path / "p.pt", res, "ckpt.pt", "in.mp4", 16.0, "random", 0)
    proj = load_projection(tmp_path / "p.pt")                      # torch.load(weights_only=True) inside
    assert proj["w"].shape == (G.cfg.w_dim,) and proj["motion"].ndim == 2
    again = rerender(G, proj, 4)
    mse_proj = float((again - target).square().mean())
    mse_start = float((rerender(G, {**proj, "w": G.mapping(torch.randn(1, G.z_dim))[0]}, 4) - target).square().mean())
    assert mse_proj < mse_start
    assert rerender(G, proj, 24, time_step=0.5).shape == (24, 3, 16, 16)      # 2x frame rate, past the span


# ---- inputs, CLIs -----------------------------------------------------------------------------------------


def _fake_checkpoint(path, mode, **over):
    """A checkpoint of an untrained conditional model (what train() writes, without training); `over`: config
    sections to change, as _cfg takes them."""
    from gan.conditioning.text import build_text_encoder
    from gan.networks import build_generator
    cfg = _cfg(mode, **over)
    torch.manual_seed(0)
    state = {"format_version": FORMAT_VERSION, "config": cfg.to_dict(), "step": 0}
    if mode == "text":
        G = build_generator(cfg, cfg.cond.text_dim)
        enc = build_text_encoder(cfg.cond, ["a red circle moving left"])
        state["cond"] = {"mode": "text", "text_encoder": enc.state_dict(), "text_vocab": enc.tokenizer.vocab,
                         "external_text_encoder": None}
        state["c_dim"] = cfg.cond.text_dim
    else:
        G = build_generator(cfg)
        state["c_dim"] = cfg.cond.encoder_dim
    state["G_ema"] = G.state_dict()
    torch.save(state, path)
    return path


@pytest.fixture
def still_and_clip(tmp_path):
    from PIL import Image

    from gan import video_io
    from gan.data import BouncingShapes
    frames = BouncingShapes(resolution=32, num_videos=2, video_frames=8, num_objects=1).render(0, 0, 6)
    Image.fromarray(frames[0]).save(tmp_path / "still.png")
    video_io.write_mp4(tmp_path / "in.mp4", frames, 16)
    (tmp_path / "bad.png").write_text("not an image")
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 64)
    return tmp_path


def test_bad_image_or_video_paths_give_clear_errors(still_and_clip):
    d = still_and_clip
    assert load_image(d / "still.png", 16).shape == (3, 16, 16)                 # resized 32 -> 16
    assert load_video(d / "in.mp4", 16).shape == (6, 3, 16, 16)
    with pytest.raises(ConditionError, match="cannot read image .*nope.png.*file not found"):
        load_image(d / "nope.png", 16)
    with pytest.raises(ConditionError, match="cannot read image .*bad.png.*not an image"):
        load_image(d / "bad.png", 16)
    with pytest.raises(ConditionError, match="cannot read video .*nope.mp4.*file not found"):
        load_video(d / "nope.mp4", 16)
    with pytest.raises(ConditionError, match="cannot read video .*bad.mp4"):
        load_video(d / "bad.mp4", 16)


def test_generate_cli_image_video_prompt(still_and_clip):
    import generate
    d = still_and_clip
    run = lambda *a: CliRunner().invoke(generate.cli, [str(x) for x in a])
    i2v, cont, t2v = (_fake_checkpoint(d / f"{m}.pt", m) for m in ("image", "continue", "text"))
    r = run("--checkpoint", i2v, "--outdir", d / "o1", "--image", d / "still.png", "--frames", 5, "--seeds", "0-1",
            "--format", "png")
    assert r.exit_code == 0, r.output
    assert len(list((d / "o1" / "seed0001").glob("*.png"))) == 5
    r = run("--checkpoint", cont, "--outdir", d / "o2", "--video", d / "in.mp4", "--frames", 4, "--seeds", 3,
            "--format", "png")
    assert r.exit_code == 0, r.output
    assert len(list((d / "o2" / "seed0003").glob("*.png"))) == 2 + 4       # context + predicted frames
    r = run("--checkpoint", t2v, "--outdir", d / "o3", "--prompt", "a red circle moving left", "--frames", 3,
            "--seeds", 0, "--format", "png")
    assert r.exit_code == 0, r.output
    # Clear errors: bad paths, wrong condition for the checkpoint, missing condition.
    r = run("--checkpoint", i2v, "--outdir", d / "o4", "--image", d / "nope.png")
    assert r.exit_code == 2 and "cannot read image" in r.output and "file not found" in r.output
    r = run("--checkpoint", cont, "--outdir", d / "o4", "--video", d / "bad.mp4")
    assert r.exit_code == 2 and "cannot read video" in r.output
    r = run("--checkpoint", t2v, "--outdir", d / "o4", "--image", d / "still.png")
    assert r.exit_code == 2 and "use --prompt" in r.output
    r = run("--checkpoint", i2v, "--outdir", d / "o4")
    assert r.exit_code == 2 and "pass --image" in r.output


def test_project_cli_bad_path_and_mse_run(tmp_path, still_and_clip):
    from gan.projector import cli
    from gan.checkpoint import save_atomic
    from gan.networks import build_generator
    cfg = load_config(str(ROOT / "configs" / "tiny.yaml"))
    torch.manual_seed(0)
    G = build_generator(cfg)
    save_atomic({"format_version": FORMAT_VERSION, "config": cfg.to_dict(), "G_ema": G.state_dict(), "c_dim": 0},
                tmp_path / "g.pt")
    r = CliRunner().invoke(cli, [str(tmp_path / "nope.mp4"), "--checkpoint", str(tmp_path / "g.pt"),
                                 "--outdir", str(tmp_path / "p")])
    assert r.exit_code == 2 and "cannot read video" in r.output and "file not found" in r.output
    r = CliRunner().invoke(cli, [str(still_and_clip / "in.mp4"), "--checkpoint", str(tmp_path / "g.pt"), "--outdir",
                                 str(tmp_path / "p"), "--steps", "8", "--lpips-weight", "0", "--fps", "32"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "p" / "projection.pt").is_file() and (tmp_path / "p" / "rerender_32fps_12f.mp4").is_file()


# ---- data hook and end-to-end training --------------------------------------------------------------------


def test_dataset_items_carry_captions_only_when_asked(tmp_path):
    from gan import video_io
    from gan.data import DataError, build_dataset
    cfg = _cfg("text")
    ds = build_dataset(cfg.data, seed=0)
    item = ds[3]
    start, _ = ds.clip_position(3)
    assert item["caption"] == ds.source.caption(3, start) and "moving" in item["caption"]   # words of the clip
    assert "caption" not in build_dataset(load_config(str(ROOT / "configs" / "tiny.yaml")).data)[0]
    video_io.write_mp4(tmp_path / "v" / "a.mp4", np.zeros((24, 16, 16, 3), np.uint8), 16)
    data_cfg = _cfg("text", data={"source": str(tmp_path / "v")}).data
    with pytest.raises(DataError, match="no caption for every video.*metadata.jsonl"):
        build_dataset(data_cfg)


@pytest.mark.parametrize("mode", ["image", "continue", "text"])
def test_each_mode_trains_from_its_config(tmp_path, mode):
    from gan.training import train
    from gan.checkpoint import load
    cfg = _cfg(mode, train={"steps": 1, "batch": 2, "checkpoint_every": 100, "log_every": 1, "sample_seeds": 2},
               loss={"r1_interval": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = train(cfg, str(tmp_path / "run"), progress=False)
    ckpt = load(summary["checkpoint"])
    assert ckpt["config"]["cond"]["mode"] == mode
    assert (ckpt["cond"]["text_encoder"] is not None) == (mode == "text")
    log = (tmp_path / "run" / "log.txt").read_text()
    assert f"conditional mode '{mode}'" in log
    assert ("RANDOM BACKBONE" in log) == (mode != "text")           # a random LPIPS backbone is in the run log


def test_prompt_agreement_reads_real_clips_through_the_analysis():
    # The text-to-video measurement: reelgan-analyze's tracker + shapes classifier on a clip, compared with the
    # caption's factors. Real clips agree with their own caption and disagree with another object's.
    from gan.conditioning.inputs import frames_to_tensor
    from gan.analysis.measure import analysed_object, prompt_agreement
    from gan.data import BouncingShapes
    from gan.analysis.analyzer import AnalysisConfig, ClipAnalyzer
    from gan.analysis.classifier import ObjectLabeler
    from gan.video_io import to_uint8
    ds = BouncingShapes(resolution=32, num_videos=12, video_frames=8, num_objects=1, seed=3, split="test")
    analyzer = ClipAnalyzer(ObjectLabeler("shapes", allow_train=False), config=AnalysisConfig(expected_objects=1))
    own, other = [], []
    for i in range(len(ds)):
        report = analyzer.analyze(to_uint8(frames_to_tensor(ds.render(i, 0, 8))))
        obj = ds.factors(i)["objects"][0]
        own.append(prompt_agreement(report, obj))
        wrong = dict(obj, color="green" if obj["color"] != "green" else "red",
                     class_name="circle" if obj["class_name"] != "circle" else "square")
        other.append(prompt_agreement(report, wrong))
        assert analysed_object(report)["label"].endswith(("circle", "square", "triangle"))
    assert np.mean([a["colour"] for a in own]) >= 0.9 and np.mean([a["class"] for a in own]) >= 0.8
    assert np.mean([a["direction"] for a in own]) >= 0.6      # misses only where the object bounces early
    assert not any(a["colour"] or a["class"] for a in other)
    empty = analyzer.analyze(np.zeros((8, 32, 32, 3), np.uint8))              # nothing in the clip: all miss
    assert prompt_agreement(empty, obj) == {"colour": False, "class": False, "direction": False, "all": False}
    # A digit's caption names no colour: not a miss, found or not (a bench mean over digits would read 0%).
    assert prompt_agreement(empty, obj, named_colour=False) == {"colour": None, "class": False, "direction": False,
                                                                "all": False}
    found = analyzer.analyze(to_uint8(frames_to_tensor(ds.render(0, 0, 8))))
    assert prompt_agreement(found, ds.factors(0)["objects"][0], named_colour=False)["colour"] is None
