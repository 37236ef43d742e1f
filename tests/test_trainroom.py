"""The training room: its trainer thread (steps, pause, single step, knobs), the page in headless Chromium, and the
command's clean stop with a checkpoint."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
import torch

from gan.config import load_config
from tests import browser
from gan.studio.playback import StudioError
from gan.studio.trainroom import Trainer, frame_differences, mean_pairwise_distance, sheet, to_uint8
from gan.training.run import KnobError
from tests.conftest import ROOT

TINY = ROOT / "configs" / "tiny.yaml"


def _until(cond, timeout=30.0, what=""):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_sheet_and_measures():
    video = torch.linspace(-1, 1, 2 * 3 * 1 * 2 * 2).reshape(2, 3, 1, 2, 2)
    clips = to_uint8(video)
    assert clips.shape == (2, 3, 2, 2, 3) and clips[0, 0, 0, 0, 0] == 0 and clips[1, 2, 1, 1, 2] == 255
    s = sheet(clips)
    assert s.shape == (4, 6, 3) and (s[2:4, 4:6] == clips[1, 2]).all()        # row = clip, column = frame
    still = torch.zeros(1, 4, 3, 2, 2)
    assert torch.equal(frame_differences(still), -torch.ones(1, 3, 3, 2, 2))  # no motion: black
    same = torch.ones(3, 2, 1, 2, 2)
    assert mean_pairwise_distance(same) == 0.0 and mean_pairwise_distance(video) > 0


@pytest.fixture
def one_thread():
    """One torch thread: the trainer's thread shares the 2 cores with the test's and any other process here."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_trainer_steps_pauses_single_steps_and_turns_knobs(tmp_path, one_thread):
    cfg = load_config(str(TINY), {"train": {"steps": 1000, "checkpoint_every": 1000}})
    t = Trainer(cfg, tmp_path / "run", visual_every=1)
    with pytest.raises(StudioError, match="starting"):
        t.set_knob("g_lr", 0.001)
    t.start()
    try:
        _until(lambda: len(t.history) >= 3 and t.visual is not None, what="three steps and the visuals")
        v = t.visual
        assert v["clips"] == 4 and v["real"].startswith("data:image/jpeg;base64,") and v["fake"] != v["real"]
        assert len(v["scores"]["real"]["image"]) == 4 and len(v["scores"]["fake"]["video"]) == 4
        assert v["diversity"] > 0
        t.pause()
        _until(lambda: t.status == "paused", what="the pause")
        n = len(t.history)
        time.sleep(0.5)
        assert len(t.history) == n and t.run.step == t.history[-1]["step"]
        t.single_step()
        _until(lambda: len(t.history) == n + 1 and t.status == "paused", what="one step")
        time.sleep(0.3)
        assert len(t.history) == n + 1
        t.set_knob("video_weight", 0)
        t.set_knob("g_lr", "0.001")
        with pytest.raises(KnobError, match="out of range"):
            t.set_knob("augment_p", 2)
        assert t.run.loss.video_weight == 0 and t.run.opt_G.param_groups[0]["lr"] == 0.001
        t.single_step()
        _until(lambda: len(t.history) == n + 2, what="a step after the knobs")
        assert "G/loss" in t.history[-1] and "real/logit_video" not in t.history[-1]     # the video D is off
        assert "video_weight 1.0 -> 0" in (tmp_path / "run" / "log.txt").read_text()
        t.set_delay(0.2)
        with pytest.raises(StudioError, match="out of range"):
            t.set_delay(-1)
        t.pause(False)
        _until(lambda: len(t.history) >= n + 4, what="training on in slow motion")
    finally:
        t.stop()
        t.join(30)
    assert not t.alive and t.status == "stopped", t.message
    state = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", map_location="cpu", weights_only=False)
    assert state["step"] == t.run.step == t.history[-1]["step"]
    assert state["config"]["loss"]["video_weight"] == 0

    # --resume continues that run and, at train.steps, ends as train() does (last samples and checkpoint)
    done = state["step"] + 1
    cfg2 = load_config(str(TINY), {"train": {"steps": done, "checkpoint_every": 1000}})
    t2 = Trainer(cfg2, tmp_path / "run", resume=True).prepare()
    assert t2.run.step == state["step"]
    t2.start()
    try:
        _until(lambda: t2.status == "finished", what="the end of train.steps")
    finally:
        t2.stop()
        t2.join(30)
    assert t2.status == "stopped" and len(t2.history) == 1
    assert torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", weights_only=False)["step"] == done
    assert any((tmp_path / "run" / "samples").iterdir())


def _start(tmp_path, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "gan.studio.cli", "--train", "--config", str(TINY), "--port", "0",
                             "--outdir", str(tmp_path / "run"), "--set", "train.steps=100000", *extra], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:                           # the run's own lines first, then the URL once it listens
        lines.append(line)
        m = re.search(r"(http://127\.0\.0\.1:\d+/)\?token=([\w-]{40,})", line)
        if m is not None:
            return proc, m.group(1), m.group(2)
    proc.kill()
    raise AssertionError(f"no URL printed: {lines!r} {proc.stderr.read()}")


def _state(url, token):
    return json.loads(urllib.request.urlopen(f"{url}train/state?visual=1000000&token={token}", timeout=30).read())


def test_command_stops_on_sigterm_with_a_checkpoint(tmp_path):
    proc, url, token = _start(tmp_path)
    try:
        _until(lambda: _state(url, token)["step"] >= 2, what="two steps")
        page = urllib.request.urlopen(f"{url}?token={token}", timeout=30).read().decode()
        assert "training room" in page and "/static/train.js" in page and not re.search(r"https?://", page)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    m = re.search(r"stopped at step (\d+)", out)
    assert m, out
    state = torch.load(tmp_path / "run" / "checkpoints" / "latest.pt", map_location="cpu", weights_only=False)
    assert state["step"] == int(m.group(1)) >= 2


def test_command_bad_inputs_are_one_line(tmp_path):
    from click.testing import CliRunner

    from gan.studio.cli import cli

    def run(*args):
        res = CliRunner().invoke(cli, [str(a) for a in args])
        lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert res.exit_code == 2 and len(lines) == 1 and "Traceback" not in res.output, res.output
        return lines[0]
    assert "choose one" in run("--port", 0)
    assert "does not exist" in run("--train", "--config", TINY, "--outdir", tmp_path / "nope", "--resume", "--port", 0)


needs_browser = pytest.mark.skipif(browser.missing_reason() is not None, reason=str(browser.missing_reason()))


@needs_browser
def test_page_shows_clips_and_the_loss_curve_moves(tmp_path):
    proc, url, token = _start(tmp_path)
    driver = browser.open_browser(1200, 900)
    try:
        driver.get(f"{url}?token={token}")

        def js(script):
            return driver.execute_script(script)
        _until(lambda: js("return window.studio.ready && window.studio.visualVersion >= 1"), 60, "the first visuals")
        _until(lambda: js("return window.studio.plotted >= 2"), 60, "two plotted points")
        n = js("return window.studio.plotted")
        _until(lambda: js("return window.studio.plotted") > n, 60, "the loss curve to move")
        shown = js("return window.studio.clipsShown")
        assert shown["real"] >= 1 and shown["fake"] >= 1

        def lit(grid):   # pixels drawn on the first clip's canvas of a grid
            return js(f"const c = document.querySelector('#{grid} canvas'); const d = c.getContext('2d')"
                      ".getImageData(0, 0, c.width, c.height).data; let s = 0; for (let i = 0; i < d.length; i += 4)"
                      " s += d[i] + d[i + 1] + d[i + 2]; return [c.width, s];")
        _until(lambda: lit("reals")[0] > 1 and lit("reals")[1] > 0 and lit("fakes")[1] > 0, 30, "clips drawn")
        js("document.getElementById('pause').click()")
        _until(lambda: js("return window.studio.runStatus") == "paused", 30, "the pause from the page")
        js("const k = document.getElementById('video_weight'); k.value = 0; k.dispatchEvent(new Event('change'));")
        _until(lambda: _state(url, token)["knobs"]["video_weight"] == 0, 30, "the knob from the page")
        js("const k = document.getElementById('augment_p'); k.value = 7; k.dispatchEvent(new Event('change'));")
        _until(lambda: "out of range" in js("return window.studio.status"), 30, "a bad knob's message")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    finally:
        browser.close_browser(driver)
        proc.kill()
