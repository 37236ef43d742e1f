"""Bad input gives one clear line and exit status 2, never a traceback, and never changes a user's file;
a run whose weights go non-finite keeps its last good checkpoint byte-identical (issue 18)."""
import hashlib
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import generate
import train
from gan.analysis.cli import analyze_cli
from gan.checkpoint import FORMAT_VERSION, save_atomic, save_safetensors
from gan.data.cli import main as dataset_cli
from gan.export import cli as export_cli
from gan.metrics.cli import metrics_cli
from gan.projector import cli as project_cli
from tests.conftest import ROOT

TINY = str(ROOT / "configs" / "tiny.yaml")


def _hashes(*roots):
    """sha256 of every file below `roots` (what the user had)."""
    out = {}
    for root in roots:
        for dirpath, _, files in os.walk(root):
            for f in files:
                p = os.path.join(dirpath, f)
                out[p] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def _invoke(cmd, args, env=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CliRunner().invoke(cmd, [str(a) for a in args], env=env)


def _assert_clear(res, words):
    """Exit 2, exactly one 'error:' line naming the problem, no traceback."""
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.output and "weights_only=False" not in res.output
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])


def _train(outdir, *extra):
    return _invoke(train.cli, ["--config", TINY, "--outdir", outdir, "--no-progress", *extra])


def _conditional_checkpoint(path, mode):
    """What train() writes for an untrained image/continue model (no training needed to test inputs)."""
    from gan.config import load_config
    from gan.networks import build_generator
    cfg = load_config(str(ROOT / "configs" / ("i2v.yaml" if mode == "image" else "continue.yaml")),
                      {"cond": {"lpips_random_backbone": True}, "data": {"num_videos": 16}})
    torch.manual_seed(0)
    G = build_generator(cfg)
    torch.save({"format_version": FORMAT_VERSION, "config": cfg.to_dict(), "step": 0, "c_dim": cfg.cond.encoder_dim,
                "G_ema": G.state_dict()}, path)


def _old_format(state):
    """`state` as reelgan 0.1.0 wrote it: checkpoint format 1, a config with the fields that release had."""
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in state["config"].items()}
    config["G"].update(architecture="skip", motion_from_w=True)
    config["D"]["mbstd_pooled"] = True
    config["cond"]["text_vocab_captions"] = 2000
    return {**state, "format_version": 1, "config": config}


OLD = ["format 1", "the last release that reads it is reelgan 0.1.0", "pip install reelgan==0.1.0"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny trained run plus a gallery of broken files, all under `user/` (hashed by every test)."""
    user = tmp_path_factory.mktemp("bad") / "user"
    user.mkdir()
    return build_world(user)


def build_world(user):
    res = _train(user / "run")
    assert res.exit_code == 0, res.output
    good = user / "run" / "checkpoints" / "latest.pt"
    raw = good.read_bytes()
    (user / "empty.pt").write_bytes(b"")
    (user / "random.pt").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (user / "trunc.pt").write_bytes(raw[: len(raw) // 2])
    state = torch.load(good, weights_only=True)
    next(iter(v for v in state["G_ema"].values() if v.is_floating_point())).fill_(float("nan"))
    torch.save(state, user / "nan.pt")
    for mode in ("image", "continue"):
        _conditional_checkpoint(user / f"{mode}.pt", mode)
    old = _old_format(torch.load(good, weights_only=True))
    for name in ("latest.pt", "step_0000004.pt"):
        save_atomic(old, user / "old" / "checkpoints" / name)
    save_safetensors(old, user / "old.safetensors")
    from gan.video_io import write_mp4
    rng = np.random.default_rng(1)
    clip = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    (user / "clips").mkdir()
    for k in range(5):
        write_mp4(user / "clips" / f"seed{k:04d}.mp4", clip, 16)
    mp4 = (user / "clips" / "seed0000.mp4").read_bytes()
    (user / "trunc.mp4").write_bytes(mp4[:2000])                  # header, no decodable frame
    (user / "half.mp4").write_bytes(mp4[: len(mp4) // 2])         # decodes fewer frames than declared
    Image.fromarray(clip[0]).save(user / "still.png")
    (user / "frames" / "v0").mkdir(parents=True)
    for k in range(4):
        Image.fromarray(clip[k]).save(user / "frames" / "v0" / f"{k:03d}.png")
    (user / "afile").write_text("not a folder")
    (user / "config_1e.yaml").write_text(f"base: {TINY}\ntrain:\n  g_lr: 1e-4\n")
    return user


# (id, command, arguments with {u} for the user folder, words the one error line must hold)
CASES = [
    ("lr-negative", train.cli, ["--config", TINY, "--set", "train.g_lr=-0.01", "--dry-run"], ["train.g_lr"]),
    ("lr-overflow", train.cli, ["--config", TINY, "--set", "train.d_lr=1e39", "--dry-run"], ["train.d_lr", "(0, 1]"]),
    ("lr-nan", train.cli, ["--config", TINY, "--set", "train.g_lr=.nan", "--dry-run"], ["finite"]),
    ("num-videos-0", train.cli, ["--config", TINY, "--set", "data.num_videos=0", "--dry-run"], ["data.num_videos"]),
    ("resolution-absurd", train.cli, ["--config", TINY, "--set", "data.resolution=1048576", "--dry-run"],
     ["data.resolution", "power of two"]),
    ("resolution-vs-channels", train.cli, ["--set", "data.resolution=2048", "--dry-run"], ["G.channel_base"]),
    ("seed-negative", train.cli, ["--config", TINY, "--set", "train.seed=-1", "--dry-run"], ["train.seed"]),
    ("betas", train.cli, ["--config", TINY, "--set", "train.betas=[0.5,1.5]", "--dry-run"], ["train.betas"]),
    ("unknown-key", train.cli, ["--config", TINY, "--set", "G.widht=3", "--dry-run"], ["G.widht"]),
    ("set-no-equals", train.cli, ["--config", TINY, "--set", "train.batch", "--dry-run"], ["KEY=VALUE"]),
    ("config-missing", train.cli, ["--config", "{u}/nope.yaml", "--dry-run"], ["not found"]),
    ("steps-negative", train.cli, ["--config", TINY, "--steps", "-5", "--dry-run"], ["--steps"]),
    ("device-tpu", train.cli, ["--config", TINY, "--outdir", "{u}/o_tpu", "--device", "tpu"], ["tpu"]),
    ("device-cuda-9", generate.cli, ["--checkpoint", "{u}/run/checkpoints/latest.pt", "--outdir", "{u}/o",
                                     "--device", "cuda:9"], ["cuda:9"]),
    ("resume-no-outdir", train.cli, ["--config", TINY, "--outdir", "{u}/typo", "--resume"], ["does not exist"]),
    ("resume-nothing", train.cli, ["--config", TINY, "--outdir", "{u}/clips", "--resume"], ["nothing to resume"]),
    ("resume-config-changed", train.cli, ["--config", TINY, "--outdir", "{u}/run", "--resume", "--steps", "6",
                                          "--set", "G.z_dim=8"], ["do not fit", "config"]),
    ("outdir-exists", train.cli, ["--config", TINY, "--outdir", "{u}/run"], ["--resume"]),
    ("outdir-under-a-file", train.cli, ["--config", TINY, "--outdir", "{u}/afile/run"], ["afile"]),
    ("data-missing", train.cli, ["--config", TINY, "--outdir", "{u}/o_data", "--data", "{u}/nowhere"],
     ["nowhere"]),
    ("data-a-file", train.cli, ["--config", TINY, "--outdir", "{u}/o_data", "--data", "{u}/still.png"],
     ["is a file"]),
    ("ckpt-empty", generate.cli, ["--checkpoint", "{u}/empty.pt", "--outdir", "{u}/o"], ["empty", "0 bytes"]),
    ("ckpt-random", generate.cli, ["--checkpoint", "{u}/random.pt", "--outdir", "{u}/o"], ["corrupt"]),
    ("ckpt-truncated", generate.cli, ["--checkpoint", "{u}/trunc.pt", "--outdir", "{u}/o"], ["truncated"]),
    ("ckpt-nonfinite", generate.cli, ["--checkpoint", "{u}/nan.pt", "--outdir", "{u}/o"], ["non-finite"]),
    ("ckpt-a-folder", generate.cli, ["--checkpoint", "{u}/run", "--outdir", "{u}/o"], ["directory"]),
    ("seeds-huge", generate.cli, ["--checkpoint", "{u}/run/checkpoints/latest.pt", "--outdir", "{u}/o",
                                  "--seeds", "0-99999999999"], ["--seeds", "at most"]),
    ("seeds-garbage", generate.cli, ["--checkpoint", "{u}/run/checkpoints/latest.pt", "--outdir", "{u}/o",
                                     "--seeds", "3-1"], ["seed"]),
    ("image-a-folder", generate.cli, ["--checkpoint", "{u}/image.pt", "--outdir", "{u}/o", "--image", "{u}/clips"],
     ["folder"]),
    ("video-truncated", generate.cli, ["--checkpoint", "{u}/continue.pt", "--outdir", "{u}/o", "--video",
                                       "{u}/trunc.mp4"], ["truncated"]),
    ("video-half", generate.cli, ["--checkpoint", "{u}/continue.pt", "--outdir", "{u}/o", "--video",
                                  "{u}/half.mp4"], ["truncated"]),
    ("ckpt-old-format", generate.cli, ["--checkpoint", "{u}/old/checkpoints/latest.pt", "--outdir", "{u}/o"], OLD),
    ("ckpt-old-safetensors", generate.cli, ["--checkpoint", "{u}/old.safetensors", "--outdir", "{u}/o"], OLD),
    ("resume-old-format", train.cli, ["--config", TINY, "--outdir", "{u}/old", "--resume", "--steps", "6"],
     ["--resume", *OLD]),
    ("export-old-format", export_cli, ["{u}/old/checkpoints/latest.pt", "{u}/o/G.pt"], OLD),
    ("project-old-format", project_cli, ["{u}/clips/seed0000.mp4", "--checkpoint", "{u}/old/checkpoints/latest.pt",
                                         "--outdir", "{u}/o", "--lpips-weight", "0"], OLD),
    ("metrics-old-format", metrics_cli, ["--checkpoint", "{u}/old/checkpoints/latest.pt", "--data", "digits",
                                         "--resolution", "16", "--metrics", "fvd-offline", "--num", "4",
                                         "--quiet"], OLD),
    ("export-nonfinite", export_cli, ["{u}/nan.pt", "{u}/o/G.pt"], ["non-finite"]),
    ("export-onto-existing", export_cli, ["{u}/run/checkpoints/latest.pt", "{u}/still.png"], ["--force"]),
    ("export-random", export_cli, ["{u}/random.pt", "{u}/o/G.pt"], ["corrupt"]),
    ("dataset-info-missing", dataset_cli, ["info", "{u}/nowhere"], ["nowhere"]),
    ("dataset-export-nonempty", dataset_cli, ["export", "--out", "{u}/clips", "--num", "1"], ["not empty"]),
    ("metrics-5-clips", metrics_cli, ["--videos", "{u}/clips", "--data", "digits", "--resolution", "16",
                                      "--metrics", "fvd-offline", "--quiet"], ["--num-fake"]),
    ("metrics-unknown", metrics_cli, ["--data", "digits", "--resolution", "16", "--metrics", "fvd9", "--num", "4",
                                      "--quiet"], ["fvd9"]),
    ("analyze-two-sources", analyze_cli, ["--videos", "{u}/clips", "--data", "digits"], ["exactly one"]),
    ("project-nonfinite", project_cli, ["{u}/clips/seed0000.mp4", "--checkpoint", "{u}/nan.pt", "--outdir",
                                        "{u}/o", "--lpips-weight", "0"], ["non-finite"]),
    ("project-no-checkpoint", project_cli, ["{u}/clips/seed0000.mp4", "--outdir", "{u}/o"], ["--checkpoint"]),
]


@pytest.mark.parametrize("name, cmd, args, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(world, name, cmd, args, words):
    before = _hashes(world)
    res = _invoke(cmd, [a.replace("{u}", str(world)) for a in args])
    _assert_clear(res, words)
    assert _hashes(world) == before


def test_an_old_format_is_not_damage_resume_stops_at_it(world):
    # A damaged latest.pt sends --resume to the previous snapshot; an older format does not (every snapshot of
    # that run has it): the format error itself, not "nothing to resume".
    from gan.checkpoint import OldFormatError, find_resumable
    with pytest.raises(OldFormatError) as e:
        find_resumable(world / "old" / "checkpoints")
    assert "latest.pt has checkpoint format 1" in str(e.value) and "nothing to resume" not in str(e.value)


def test_decompression_bombs_are_one_line(world, monkeypatch):
    """Pillow's guard against huge images: frames in training and `reelgan-dataset info`, and --image."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)         # the 32 px test frames now count as bombs
    before = _hashes(world)
    _assert_clear(_invoke(dataset_cli, ["info", world / "frames"]), ["unreadable", "exceeds limit"])
    _assert_clear(_train(world.parent / "o_bomb", "--data", world / "frames"), ["unreadable", "exceeds limit"])
    _assert_clear(_invoke(generate.cli, ["--checkpoint", world / "image.pt", "--outdir", world.parent / "o",
                                         "--image", world / "still.png"]), ["too large"])
    assert _hashes(world) == before


def test_lpips_weights_missing_in_train_is_one_line(world, tmp_path):
    res = _invoke(train.cli, ["--config", ROOT / "configs" / "i2v.yaml", "--set", "data.num_videos=8",
                              "--outdir", tmp_path / "o", "--no-progress"],
                  env={"REELGAN_WEIGHTS_DIR": str(tmp_path / "empty"), "REELGAN_WEIGHTS_FETCH": "0"})
    _assert_clear(res, ["LPIPS", "reelgan-weights fetch lpips-alex", "cond.lpips_weight=0"])


def test_lpips_weight_0_trains_without_the_backbone(tmp_path, monkeypatch):
    """L1 only: the temporal term compares frame changes in L1 instead of needing LPIPS."""
    from gan.config import load_config
    from losses.conditional import build_reconstruction
    monkeypatch.setenv("REELGAN_WEIGHTS_DIR", str(tmp_path))     # no LPIPS weights anywhere, none fetched
    monkeypatch.setenv("REELGAN_WEIGHTS_FETCH", "0")
    cfg = load_config(str(ROOT / "configs" / "continue.yaml"), {"cond": {"lpips_weight": 0}})
    assert cfg.cond.temporal_weight > 0
    recon = build_reconstruction(cfg.cond)
    target = torch.rand(2, 3, 1, 8, 8) * 2 - 1
    out = target.clone().requires_grad_()
    assert float(recon(out, target)["total"].detach().sum()) == 0
    moved = (target + torch.linspace(0, 0.5, 3)[None, :, None, None, None]).requires_grad_()
    terms = recon(moved, target)
    assert set(terms) == {"l1", "temporal", "total"} and float(terms["temporal"].detach().min()) > 0
    terms["total"].sum().backward()
    assert moved.grad.abs().sum() > 0


def test_yaml_numbers_in_any_notation(world):
    import json
    for args in (["--config", world / "config_1e.yaml"], ["--config", TINY, "--set", "train.g_lr=1e-4"]):
        res = _invoke(train.cli, [*args, "--dry-run"])
        assert res.exit_code == 0, res.output
        cfg = json.loads(res.stdout[res.stdout.index("{"):])
        assert cfg["train"]["g_lr"] == 1e-4


def test_debug_shows_the_traceback(world):
    args = ["--config", TINY, "--set", "train.g_lr=-1", "--dry-run"]
    for extra, env in ((["--debug"], None), ([], {"REELGAN_DEBUG": "1"})):
        res = _invoke(train.cli, args + extra, env=env)
        assert res.exit_code != 0 and type(res.exception).__name__ == "ConfigError"


def test_a_real_process_exits_2_with_one_line(world):
    res = subprocess.run([sys.executable, str(ROOT / "generate.py"), "--checkpoint", str(world / "empty.pt"),
                          "--outdir", str(world.parent / "o")], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().count("\n") == 0 and res.stderr.startswith("error: ")


def test_analyze_and_metrics_readme_examples_on_5_clips(world, tmp_path):
    res = _invoke(analyze_cli, ["--videos", world / "clips", "--dataset", "digits", "--objects", "2",
                                "--out", tmp_path / "a", "--quiet", "--annotate", "0"])
    assert res.exit_code == 0, res.output
    assert "analysing all of them" in res.stderr and (tmp_path / "a" / "analysis.json").is_file()


def test_outputs_are_readable_by_the_umask(world, tmp_path):
    old = os.umask(0o022)
    try:
        res = _invoke(generate.cli, ["--checkpoint", world / "run" / "checkpoints" / "latest.pt", "--outdir",
                                     tmp_path / "o", "--seeds", "0", "--frames", "2", "--format", "gif"])
        assert res.exit_code == 0, res.output
        res = _invoke(export_cli, [world / "run" / "checkpoints" / "latest.pt", tmp_path / "G.pt"])
        assert res.exit_code == 0, res.output
    finally:
        os.umask(old)
    for p in (tmp_path / "o" / "seed0000.gif", tmp_path / "G.pt", world / "run" / "checkpoints" / "latest.pt"):
        assert p.stat().st_mode & 0o777 == 0o644, p


def test_resume_skips_unusable_checkpoints_and_never_relogs_a_step(world, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(world / "run", run)
    ckpts = run / "checkpoints"
    (ckpts / "latest.pt").write_bytes(b"")                      # newest two unusable: an empty latest.pt and
    state = torch.load(ckpts / "step_0000004.pt", weights_only=True)   # a step-4 snapshot with NaN weights
    next(iter(state["G"].values())).fill_(float("inf"))
    torch.save(state, ckpts / "step_0000004.pt")
    res = _train(run, "--resume", "--steps", "6")
    assert res.exit_code == 0, res.output
    log = (run / "log.txt").read_text()
    assert "skipped latest.pt" in log and "skipped step_0000004.pt" in log and "step_0000002.pt (step 2)" in log
    import json
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 6


@pytest.mark.parametrize("where, words", [
    ("G_ema", ["non-finite", "last good checkpoint", "latest.pt"]),   # losses stay finite: caught at the save
    ("G", ["nan", "last good checkpoint", "latest.pt"]),              # the losses go NaN at once
])
def test_non_finite_weights_keep_the_last_good_checkpoint(world, tmp_path, monkeypatch, where, words):
    """End to end: weights turn to Inf mid-run; the run stops with one line and every checkpoint it had,
    latest.pt included, stays byte-identical (nothing is written, nothing rotated away)."""
    import gan.training.loop as loop
    run = tmp_path / "run"
    shutil.copytree(world / "run", run)                         # steps 0..4, checkpoints at 2 and 4
    before = _hashes(run / "checkpoints")
    real_update = loop.update_ema

    def poisoned(G_ema, G, beta):                                # a diverged step: weights overflow
        real_update(G_ema, G, beta)
        with torch.no_grad():
            next((G_ema if where == "G_ema" else G).parameters()).fill_(float("inf"))
    monkeypatch.setattr(loop, "update_ema", poisoned)
    res = _train(run, "--resume", "--steps", "8")
    _assert_clear(res, words)
    assert _hashes(run / "checkpoints") == before
    monkeypatch.setattr(loop, "update_ema", real_update)
    res = _invoke(generate.cli, ["--checkpoint", run / "checkpoints" / "latest.pt", "--outdir", tmp_path / "o",
                                 "--seeds", "0", "--frames", "2", "--format", "gif"])
    assert res.exit_code == 0, res.output                       # the kept checkpoint still samples
