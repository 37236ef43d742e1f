"""The loop's three parts: setup() -> Run, step(run) driven by the caller, hooks, and the Run's live knobs."""
import threading

import pytest
import torch

from gan.checkpoint import load
from gan.config import load_config
from gan.training import KNOBS, KnobError, setup, step, train
from tests.conftest import ROOT

TINY = str(ROOT / "configs" / "tiny.yaml")


def _cfg(**over):
    return load_config(TINY, over or None)


def test_stepping_a_run_by_hand_is_the_loop(tmp_path):
    # train() is setup + step + hooks: three step() calls land on the weights train() checkpoints after 3 steps.
    train(_cfg(train={"steps": 3}), str(tmp_path / "a"), progress=False)
    run = setup(_cfg(train={"steps": 3}), str(tmp_path / "b"), progress=False)
    stats = [step(run) for _ in range(3)]
    run.close()
    assert run.step == 3 and run.seen == 12
    ckpt = load(tmp_path / "a" / "checkpoints" / "latest.pt")
    for key, module in run.modules.items():
        for name, tensor in module.state_dict().items():
            assert torch.equal(tensor, ckpt[key][name]), f"{key}.{name}"
    for key in ("G/loss", "D/loss", "real/logit_image", "real/logit_video", "fake/logit_image_d",
                "fake/logit_video_d", "fake/logit_image", "fake/logit_video"):
        assert all(key in s for s in stats), key
    assert [("D/r1_image" in s) for s in stats] == [True, False, True]     # lazy R1 every loss.r1_interval=2


def test_extra_hooks_run_when_due(tmp_path):
    calls = []

    class Every2:
        every = 2

        def __call__(self, run, stats):
            calls.append((run.step, "G/loss" in stats, len(run.window)))
    train(_cfg(train={"steps": 5, "log_every": 100}), str(tmp_path), progress=False, hooks=[Every2()])
    assert [c[0] for c in calls] == [2, 4] and all(c[1] and c[2] > 0 for c in calls)


def test_knobs_change_the_optimizers_the_loss_and_the_augmentation(tmp_path):
    run = setup(_cfg(train={"steps": 8}, loss={"augment_target": None, "r1_gamma": 0.5}), str(tmp_path),
                progress=False)
    assert set(run.knobs()) == set(KNOBS)
    run.set_knob("g_lr", 1e-3)
    assert all(g["lr"] == 1e-3 for g in run.opt_G.param_groups)
    c = 2 / 3                                                           # lazy R1 at r1_interval 2
    run.set_knob("d_lr", 3e-3)
    assert all(g["lr"] == pytest.approx(3e-3 * c) for g in run.opt_D.param_groups)
    run.set_knob("r1_gamma", 0)                                         # R1 off: the D's lr and betas unscaled
    assert run.loss.r1_gamma == 0 and all(g["lr"] == pytest.approx(3e-3) for g in run.opt_D.param_groups)
    assert run.opt_D.param_groups[0]["betas"] == tuple(run.cfg.train.betas)
    assert "D/r1_image" not in step(run)                                # step 0 would have had R1

    run.set_knob("video_weight", 0)                                     # the video D is off: not asked, not trained
    before = [p.clone() for p in run.D_video.parameters()]
    stats = step(run)
    assert not any("video" in k for k in stats) and "D/loss_image" in stats
    assert all(torch.equal(a, b) for a, b in zip(before, run.D_video.parameters()))
    run.set_knob("video_weight", 0.5)
    assert "G/loss_video" in step(run)
    assert not all(torch.equal(a, b) for a, b in zip(before, run.D_video.parameters()))

    run.set_knob("augment_p", 0.25)
    assert run.augment.prob == 0.25 and "augment/p" not in step(run)
    run.set_knob("augment_target", 0.6)                                 # ADA on: p is reported and moves
    assert run.ada is not None and step(run)["augment/p"] == 0.25
    run.set_knob("augment_target", None)                                # ADA off keeps its p
    assert run.ada is None and run.cfg.loss.augment_prob == run.augment.prob

    for name, value in (("g_lr", 0), ("augment_p", 1.5), ("augment_target", 1.0), ("r1_gamma", "x"),
                        ("d_lr", float("nan"))):
        with pytest.raises(KnobError, match=name):
            run.set_knob(name, value)
    with pytest.raises(KnobError, match="unknown knob 'lr'.*g_lr"):
        run.set_knob("lr", 1e-3)
    # A checkpoint's config records the knobs' values; the log says when they changed.
    saved = load(run.save())["config"]
    assert saved["train"]["g_lr"] == 1e-3 and saved["loss"]["r1_gamma"] == 0 and saved["loss"]["video_weight"] == 0.5
    assert "g_lr 0.0025 -> 0.001" in (tmp_path / "log.txt").read_text()
    run.close()


def test_a_knob_set_from_another_thread_waits_for_the_running_step(tmp_path):
    run = setup(_cfg(), str(tmp_path), progress=False)
    done = threading.Event()

    def change():
        run.set_knob("g_lr", 1e-4)
        done.set()
    with run.lock:                                                      # what step() holds while it runs
        t = threading.Thread(target=change)
        t.start()
        t.join(0.2)
        assert not done.is_set() and run.opt_G.param_groups[0]["lr"] == run.cfg.train.g_lr != 1e-4
    t.join()
    assert done.is_set() and run.opt_G.param_groups[0]["lr"] == 1e-4
    run.close()
