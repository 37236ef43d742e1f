"""Training loop: outputs, exact resume, kill -9 safety, divergence handling, bad data."""
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from gan.config import load_config
from gan.training import TrainingError, train
from gan.checkpoint import FORMAT_VERSION, load
from tests.conftest import ROOT

TINY = str(ROOT / "configs" / "tiny.yaml")


def _cfg(**train_over):
    return load_config(TINY, {"train": train_over} if train_over else None)


def test_tiny_run_writes_checkpoint_logs_and_samples(tmp_path):
    out = tmp_path / "run"
    summary = train(_cfg(), str(out), progress=False)
    assert summary["step"] == 4
    ckpt = load(out / "checkpoints" / "latest.pt")
    assert ckpt["step"] == 4 and ckpt["seen"] == 16 and ckpt["format_version"] == FORMAT_VERSION
    assert set(ckpt) >= {"G", "G_ema", "D_image", "D_video", "opt_G", "opt_D", "config", "rng"}
    assert ckpt["config"]["data"]["resolution"] == 16                 # config stored as plain types
    assert json.loads((out / "config.json").read_text())["name"] == "tiny"
    logs = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logs] == [2, 4]
    for key in ("G/loss", "D/loss", "D/r1_image", "real/logit_video", "fake/logit_image", "perf/steps_per_s"):
        assert any(key in r for r in logs), key
    assert (out / "samples" / "step_0000004.gif").stat().st_size > 0
    assert any((out / "tensorboard").iterdir())
    from gan.writes import WriteError
    with pytest.raises(WriteError, match="--resume"):                 # never overwrite a run
        train(_cfg(), str(out), progress=False)


@pytest.mark.parametrize("adaptive,objects", [(False, 0), (True, 0), (False, 2)])
def test_resume_continues_exactly(tmp_path, adaptive, objects):
    # Adaptive augmentation: adjusted every 3 steps, so the split at step 2 falls inside an interval and
    # its pending signs must travel through the checkpoint too. objects=2: the layered generator.
    loss = {"augment_target": 0.6, "augment_interval": 3, "augment_speed_kimg": 0.01} if adaptive else {}

    def cfg(steps):
        return load_config(TINY, {"train": {"steps": steps}, "loss": loss, "G": {"objects": objects}})
    straight = tmp_path / "a"
    train(cfg(4), str(straight), progress=False)
    split = tmp_path / "b"
    train(cfg(2), str(split), progress=False)
    train(cfg(4), str(split), resume=True, progress=False)
    a, b = load(straight / "checkpoints" / "latest.pt"), load(split / "checkpoints" / "latest.pt")
    assert a["augment"] == b["augment"]
    if adaptive:
        assert a["augment"]["p"] != 0.5 and len(a["augment"]["signs"]) == 1   # it moved; one step pending
    for key in ("G", "G_ema", "D_image", "D_video"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs after resume"


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    out = tmp_path / "run"
    train(_cfg(steps=2), str(out), progress=False)
    bad = load_config(TINY, {"train": {"steps": 8, "checkpoint_every": 100}})
    bad.train.g_lr = bad.train.d_lr = 1e30        # past the config's range check: the loop's own guard
    with pytest.raises(TrainingError, match="latest.pt"):
        train(bad, str(out), resume=True, progress=False)
    assert load(out / "checkpoints" / "latest.pt")["step"] == 2


def test_kill_9_then_resume(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "train.py"), "--config", TINY, "--outdir", str(out), "--steps", "400",
           "--set", "train.checkpoint_every=1", "--set", "train.log_every=1", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "checkpoints").glob("step_*.pt"))) < 2:
        time.sleep(0.2)
    time.sleep(0.3)                        # land the kill anywhere, also inside a checkpoint write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = load(out / "checkpoints" / "latest.pt")["step"]   # the previous checkpoint is intact
    assert 1 <= step < 400
    done = subprocess.run(cmd[:-1] + ["--resume", "--steps", str(step + 2)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert load(out / "checkpoints" / "latest.pt")["step"] == step + 2
    assert not list((out / "checkpoints").glob("*.tmp"))


def test_missing_dataset_fails_with_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    res = subprocess.run([sys.executable, str(ROOT / "train.py"), "--config", TINY, "--data", str(missing),
                          "--outdir", str(tmp_path / "o"), "--no-progress"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 2
    assert str(missing) in res.stderr and "Traceback" not in res.stderr


def test_exported_mp4_folder_trains_and_resumes(tmp_path):
    from click.testing import CliRunner
    from gan.data.cli import main as dataset_cli
    data = tmp_path / "mp4s"
    res = CliRunner().invoke(dataset_cli, ["export", "--source", "shapes", "--out", str(data), "--num", "6",
                                           "--frames", "12", "--resolution", "32"])
    assert res.exit_code == 0, res.output
    assert len(list(data.glob("*.mp4"))) == 6
    over = {"data": {"source": str(data), "workers": 1}, "train": {"steps": 2}}
    out = tmp_path / "run"
    train(load_config(TINY, over), str(out), progress=False)
    over["train"]["steps"] = 4
    summary = train(load_config(TINY, over), str(out), resume=True, progress=False)
    assert summary["step"] == 4 and load(out / "checkpoints" / "latest.pt")["step"] == 4


def test_time_budget_stops_with_a_checkpoint_and_resume_finishes(tmp_path):
    out = tmp_path / "run"
    summary = train(_cfg(steps=4, max_minutes=1e-6), str(out), progress=False)
    assert summary["step"] == 1                                       # stopped after the first step
    assert load(out / "checkpoints" / "latest.pt")["step"] == 1
    assert "time budget" in (out / "log.txt").read_text()
    summary = train(_cfg(steps=4), str(out), resume=True, progress=False)
    assert summary["step"] == 4 and load(out / "checkpoints" / "latest.pt")["step"] == 4


def test_loss_weights_betas_and_checkpoint_pruning_follow_the_config(tmp_path):
    # loss.image_weight / loss.video_weight weigh the two D terms of G's loss (video_weight 0: the video D is off,
    # neither trained nor asked, so only the image D trains G); train.betas reach both Adam optimizers (D's adjusted for lazy R1, StyleGAN2 appendix B);
    # train.keep_checkpoints keeps that many step snapshots.
    out = tmp_path / "run"
    cfg = load_config(TINY, {"loss": {"image_weight": 0.5, "video_weight": 0.0},
                             "train": {"betas": [0.5, 0.9], "keep_checkpoints": 1, "checkpoint_every": 1}})
    train(cfg, str(out), progress=False)
    logs = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    assert len(logs) == 2
    for r in logs:
        assert r["G/loss"] == pytest.approx(0.5 * r["G/loss_image"], rel=1e-5)
        assert "G/loss_video" not in r and "D/loss_video" not in r
    ckpt = load(out / "checkpoints" / "latest.pt")
    c = cfg.loss.r1_interval / (cfg.loss.r1_interval + 1)
    assert list(ckpt["opt_G"]["param_groups"][0]["betas"]) == pytest.approx([0.5, 0.9])
    assert list(ckpt["opt_D"]["param_groups"][0]["betas"]) == pytest.approx([0.5 ** c, 0.9 ** c])
    assert [p.name for p in (out / "checkpoints").glob("step_*.pt")] == ["step_0000004.pt"]


def test_seed_sets_the_initial_weights(tmp_path):
    # train.seed: the same seed builds the same networks, another seed other ones (exact resume of a seeded run:
    # test_resume_continues_exactly).
    sums = [train(_cfg(steps=0, seed=seed), str(tmp_path / f"{k}"), progress=False)["g_checksum"]
            for k, seed in enumerate((0, 0, 1))]
    assert sums[0] == sums[1] != sums[2]


def test_ema_rampup_shortens_the_early_half_life():
    # train.ema_rampup: the EMA half-life is at most ema_rampup x the clips seen so far (the average does not
    # hold on to the random init early on); null: train.ema_kimg from the first step.
    from gan.training.loop import ema_beta
    cfg = _cfg()                                                       # batch 4, ema_kimg 2, ema_rampup 0.05
    assert ema_beta(cfg, seen=100) == pytest.approx(0.5 ** (4 / 5))            # half-life 0.05 x 100 clips
    assert ema_beta(cfg, seen=10 ** 6) == pytest.approx(0.5 ** (4 / 2000))     # later: 2 kimg
    cfg.train.ema_rampup = None
    assert ema_beta(cfg, seen=100) == pytest.approx(0.5 ** (4 / 2000))


def test_compile_trains_through_torch_compile_with_the_eager_losses(tmp_path, monkeypatch):
    # train.compile: the loop runs G and both Ds through torch.compile, and the losses equal an eager run's. The
    # test compiles with dynamo's 'eager' backend (graph capture without C++ code generation: seconds, where
    # inductor needs minutes on a CPU); inductor's compiled step is measured in bench/run.py.
    import functools

    import torch._dynamo
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    logs = {}
    try:
        for compiled in (False, True):
            out = tmp_path / f"compiled_{compiled}"
            train(_cfg(steps=2, log_every=1, compile=compiled), str(out), progress=False)
            logs[compiled] = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
            if not compiled:
                assert not torch._dynamo.utils.counters["stats"]["unique_graphs"]
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0
    finally:
        torch._dynamo.reset()
    assert len(logs[True]) == len(logs[False]) == 2
    for eager, comp in zip(logs[False], logs[True]):
        assert set(comp) == set(eager)
        for key in ("G/loss", "D/loss", "fake/logit_video", "real/logit_image"):
            assert comp[key] == pytest.approx(eager[key], rel=1e-4, abs=1e-5), key
    assert "compiled main phases" in (tmp_path / "compiled_True" / "log.txt").read_text()
