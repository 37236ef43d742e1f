"""The studio's player room (issue 21): shared streams, controls, recording, the command, and the page in a real
headless Chromium. Every model here has randomly initialised weights (untrained, step 0) of the tiny preset at
64 px: the watermark detector needs >= 32 px, and what is tested (sharing, ordering, marking) does not depend on
training. No timing is asserted except the page's frame rate against a floor of half its target."""
import asyncio
import math
import re
import signal
import socket
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from gan import watermark as wm
from gan.checkpoint import FORMAT_VERSION
from tests import browser
from gan.studio.broadcast import HEADER, Stream, Viewer
from gan.studio.record import Recorder, reserve
from gan.studio.playback import LIMITS, STILL_ANCHORS, Model, Scene, StudioError, slerp
from gan.video_io import read_video
from tests.browser import start_studio
from tests.conftest import ROOT, one_error_line


def _checkpoint(path: Path, c_dim: int = 0) -> Path:
    from gan.config import load_config
    from gan.networks import build_generator
    cfg = load_config(str(ROOT / "configs" / "tiny.yaml"), {"data": {"resolution": 64}})
    torch.manual_seed(0)
    G = build_generator(cfg, c_dim)
    torch.save({"format_version": FORMAT_VERSION, "config": cfg.to_dict(), "step": 0, "c_dim": c_dim,
                "class_names": [f"k{i}" for i in range(c_dim)], "G_ema": G.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("studio") / "g64.pt")


@pytest.fixture(scope="module")
def model(ckpt):
    return Model(ckpt, chunk=4)


def _settings(model, **kw):
    return model.defaults({"precision": "fp32", **kw})


def _play(scene, n):
    """n frames as a stream would show them: (uint8 [n, H, W, 3], times)."""
    frames, times = [], []
    while len(times) < n:
        plan = scene.plan()
        if plan is None:
            break
        for rgb, t in plan.render():
            frames.append(rgb)
            times.append(t)
            scene.shown(t)
    return np.stack(frames[:n]), times[:n]


# ---- the stream and its controls --------------------------------------------------------------------------------


def test_two_viewers_share_one_render(model):
    """Two tabs on one stream get the same frames, in order, and the generator renders each frame once."""
    async def main():
        got = {0: [], 1: []}

        def viewer(k):
            async def send_bytes(b):
                got[k].append(HEADER.unpack(b[:HEADER.size]) + (b[HEADER.size:],))

            async def send_text(_):
                pass
            return Viewer(send_bytes, send_text, max_frames=64)
        stream = Stream(Scene(model, _settings(model, fps=120)), asyncio.get_running_loop(), ahead=8).start()
        viewers = [viewer(0), viewer(1)]
        tasks = [asyncio.create_task(v.run()) for v in viewers]
        for v in viewers:
            stream.subscribe(v)
        try:
            for _ in range(600):
                if min(len(got[0]), len(got[1])) >= 24:
                    break
                await asyncio.sleep(0.05)
        finally:
            stream.close()
            for t in tasks:
                t.cancel()
        return stream, got
    stream, got = asyncio.run(main())
    n = min(len(got[0]), len(got[1]))
    assert n >= 24
    assert got[0][:n] == got[1][:n]                                   # same header and JPEG bytes
    assert [g[3] for g in got[0][:n]] == list(range(got[0][0][3], got[0][0][3] + n))   # in order, none skipped
    assert stream.shown <= stream.rendered <= stream.shown + stream.ahead + model.chunk    # once, not twice


def test_seed_change_is_the_next_frame_and_keeps_time(model):
    async def main():
        frames = []

        async def send_bytes(b):
            frames.append(HEADER.unpack(b[:HEADER.size]))

        async def send_text(_):
            pass
        scene = Scene(model, _settings(model, fps=60))
        stream = Stream(scene, asyncio.get_running_loop(), ahead=4).start()
        v = Viewer(send_bytes, send_text, max_frames=64)
        task = asyncio.create_task(v.run())
        stream.subscribe(v)
        while len(frames) < 6:
            await asyncio.sleep(0.02)
        before = stream.version
        t_shown = stream.read(lambda s: s.t_shown)
        version = stream.change(lambda s: s.update(_settings(model, fps=60, seed=9)))
        at_change = len(frames)                        # what was sent before the change returned
        while not any(f[1] == version for f in frames):
            await asyncio.sleep(0.02)
        stream.close()
        task.cancel()
        return frames[at_change:], before, version, t_shown
    frames, before, version, t_shown = asyncio.run(main())
    first_new = 0
    assert all(f[1] == version for f in frames)     # nothing rendered or queued before the change goes out after it
    assert version > before
    # The clock goes on from the last frame shown: the new picture starts one step later, not at 0.
    assert frames[first_new][2] == pytest.approx(t_shown + model.data_fps / 60, abs=1e-6)


def test_tabs_share_streams_by_settings(model, tmp_path):
    """Equal settings share a stream; one tab's change never changes another's picture; a tab alone changes its
    stream in place; a stream nobody watches stops."""
    from gan.studio.player import PlayerRoom, Session

    async def main():
        room = PlayerRoom(model, tmp_path, model.defaults({"precision": "fp32"}))
        await room.startup()

        async def nothing(_):
            pass
        a, b = (Session(Viewer(nothing, nothing), room.defaults) for _ in range(2))
        for s in (a, b):
            room._join(s, room._stream_for(s.settings))
        shared = a.stream
        assert b.stream is shared and len(room.streams) == 1
        room._change(a, model.validate(a.settings, {"seed": 5}))            # a leaves; b keeps seed 0
        assert a.stream is not shared and b.stream is shared and shared.source.settings.seed == 0
        room._change(b, model.validate(b.settings, {"seed": 5}))            # b joins a's stream; seed 0 stops
        assert b.stream is a.stream and len(room.streams) == 1 and shared.closed
        room._change(a, model.validate(a.settings, {"truncation": 0.5}))    # shared: a forks
        alone = a.stream
        assert alone is not b.stream
        room._change(a, model.validate(a.settings, {"truncation": 0.7}))    # alone: in place, new version
        assert a.stream is alone and alone.source.settings.truncation == 0.7 and len(room.streams) == 2
        await room.shutdown()
        assert not room.streams and not alone.alive and not shared.alive     # threads joined
    asyncio.run(main())


def test_seed_changes_the_frame(model):
    a = model.render(_settings(model, seed=0), [3.0])
    b = model.render(_settings(model, seed=1), [3.0])
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 1.0


def test_reverse_playback_is_forward_reversed(model):
    """Speed -1 from the last forward frame shows the forward frames in reverse order, down to t = 0, then
    stops; fps = the data's makes each step exactly one data frame, so the times match exactly."""
    fwd, t_fwd = _play(Scene(model, _settings(model, fps=model.data_fps)), 10)
    back_scene = Scene(model, _settings(model, fps=model.data_fps, speed=-1.0), t=t_fwd[-1])
    back, t_back = _play(back_scene, 20)
    assert t_fwd == [float(i) for i in range(10)]
    assert t_back == t_fwd[::-1]                                      # and nothing below 0
    assert back_scene.plan() is None
    assert np.abs(back.astype(int) - fwd[::-1].astype(int)).max() <= 1


def test_scrub_pause_and_speed(model):
    scene = Scene(model, _settings(model, fps=model.data_fps, speed=2.0))
    assert scene.plan().times == [0.0]                               # one frame first: a change shows soon
    assert scene.plan().times == [2.0, 4.0, 6.0, 8.0]
    scene.jump(100.5)
    scene.restart()
    assert scene.plan().times == [100.5]
    assert scene.plan().times == [102.5, 104.5, 106.5, 108.5]
    scene.shown(100.5)
    scene.update(_settings(model, fps=model.data_fps, speed=0.0))
    scene.restart()
    assert scene.plan().times == [100.5]                             # paused: the frame on screen, once
    assert scene.plan() is None


def test_interpolation_runs_from_one_seed_to_the_other(model):
    s = _settings(model, seed=4)
    ends = model.render(s, [5.0, 5.0], blend=(2, np.array([0.0, 1.0])))
    a, b = model.render(_settings(model, seed=2), [5.0]), model.render(s, [5.0])
    assert np.abs(ends[0].astype(int) - a[0].astype(int)).max() <= 1
    assert np.abs(ends[1].astype(int) - b[0].astype(int)).max() <= 1
    x, y = torch.randn(3, 8), torch.randn(3, 8)
    mid = slerp(x, y, torch.full((3, 1), 0.5))
    assert torch.allclose(slerp(x, y, torch.zeros(3, 1)), x, atol=1e-5)
    assert torch.allclose(mid.norm(dim=-1), (x.norm(dim=-1) + y.norm(dim=-1)) / 2, rtol=0.35)   # not through 0
    scene = Scene(model, s)
    scene.interpolate(2, seconds=5 / s.fps)                          # five frames: the first chunk and the next
    scene.plan()
    plan = scene.plan()
    assert plan.blend[0] == 2 and plan.blend[1][-1] == pytest.approx(1.0) and plan.blend[1][0] < 0.5


@pytest.mark.parametrize("changes, words", [
    ({"seed": -1}, "seed"), ({"seed": 1.5}, "whole"), ({"truncation": 5}, "truncation"),
    ({"speed": "fast"}, "number"), ({"fps": 0}, "fps"), ({"colour": 1}, "unknown control"),
    ({"class_id": 1}, "not class-conditional"), ({"prompt": "a dot"}, "prompt"), ({"image": "x"}, "stills"),
    ({"precision": "fp64"}, "precision"), ({"resolution": 48}, "resolution"), ({"compile": "yes"}, "compile"),
])
def test_bad_controls_are_one_clear_error(model, changes, words):
    with pytest.raises(StudioError, match=words):
        model.validate(model.defaults(), changes)


def test_class_conditional_controls(tmp_path):
    m = Model(_checkpoint(tmp_path / "c.pt", c_dim=3))
    caps = m.capabilities()
    assert caps["classes"] == ["k0", "k1", "k2"] and not caps["text"] and not caps["image"]
    s = m.validate(m.defaults({"precision": "fp32"}), {"class_id": "k2"})
    assert s.class_id == 2
    assert np.abs(m.render(s, [2.0]).astype(int) - m.render(m.validate(s, {"class_id": 0}), [2.0])).mean() > 0.5
    with pytest.raises(StudioError, match="0..2"):
        m.validate(s, {"class_id": 3})


def test_text_and_image_models(tmp_path):
    """A prompt changes a text model's frames; a still uploaded to an image model is animated; each model
    offers only its own controls."""
    import io

    from PIL import Image

    from tests.test_bad_input import _conditional_checkpoint
    from tests.test_conditional import _text_setup
    ct, G, *_ = _text_setup()
    torch.save({"format_version": FORMAT_VERSION, "config": ct.cfg.to_dict(), "step": 0, "c_dim": G.c_dim, "G_ema": G.state_dict(),
                **ct.state()}, tmp_path / "t2v.pt")
    m = Model(tmp_path / "t2v.pt")
    assert m.capabilities()["text"] and not m.capabilities()["classes"]
    s = m.defaults({"precision": "fp32"})
    other = m.validate(s, {"prompt": "a red circle moving left"})
    assert np.abs(m.render(s, [1.0]).astype(int) - m.render(other, [1.0])).mean() > 0.5
    with pytest.raises(StudioError, match="empty"):
        m.validate(s, {"prompt": "  "})

    _conditional_checkpoint(tmp_path / "i2v.pt", "image")
    m = Model(tmp_path / "i2v.pt")
    caps = m.capabilities()
    assert caps["image"] and caps["precisions"] == [] and not caps["interpolate"]
    with pytest.raises(StudioError, match="upload a still"):
        m.render(m.defaults(), [0.0])
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(buf, "PNG")
    s = m.validate(m.defaults(), {"image": m.add_still(buf.getvalue())})
    assert m.render(s, [0.0, 3.0, 300.0]).shape == (3, m.G.resolution, m.G.resolution, 3)   # motion codes grow
    # ... but only so far: its clock stops at STILL_ANCHORS' worth (one frame there, then nothing until a change)
    assert m.max_time == (STILL_ANCHORS - 2) * m.G.motion_period < LIMITS["time"][1] * m.data_fps
    end = Scene(m, s, t=1e12)
    assert end.plan().times == [m.max_time] and end.plan() is None
    with pytest.raises(StudioError, match="the uploaded file: not an image"):
        m.add_still(b"not an image")


# ---- recording ----------------------------------------------------------------------------------------------------


def _bit_error_bound(det, n: int, p_fail: float = 1e-6) -> int:
    """The most channel bit errors the detector's own estimate allows, except with probability p_fail.
    det.bit_confidence is the mean posterior that a channel bit's sign is right (watermark._decode_payload: v1 a
    Gaussian channel scaled by each bit's share of the band, v2 the logistic of each bit's log-likelihood ratio),
    so 1 - it is the expected bit error rate at this clip's size and content. The errors over the n channel bits
    are a Poisson-binomial count, whose upper tail is at most the binomial's of the same mean (Hoeffding 1956)."""
    q = 1.0 - det.bit_confidence
    tail = 1.0                                          # P(errors >= k), k = 0, 1, ...
    for k in range(n + 1):
        tail -= math.comb(n, k) * q ** k * (1 - q) ** (n - k)
        if tail < p_fail:
            return k
    return n


def test_recording_is_a_marked_mp4_and_never_replaces_a_file(model, tmp_path):
    theirs = tmp_path / "studio_take.mp4"
    theirs.write_bytes(b"the user's own file")
    frames, _ = _play(Scene(model, _settings(model, fps=model.data_fps)), 24)
    rec = Recorder(tmp_path, "studio_take", 16, watermark=model.mark)
    for f in frames:
        rec.add(f)
    path = rec.finish()
    assert path.name == "studio_take-1.mp4" and theirs.read_bytes() == b"the user's own file"
    video = read_video(path)
    assert video.shape == (24, 64, 64, 3)
    det = wm.detect(video)
    assert det.detected, det.reason
    assert det.version == wm.VERSION
    n = wm.channel_length(det.version)
    bound = _bit_error_bound(det, n)     # untrained textured frames leave a weak mark: channel bits may flip
    assert bound < n // 2, det           # ... but the mark must beat chance, or the check means nothing
    if det.payload_valid:                # the code corrects them; a payload that passes its CRC must be the right one
        assert int(det.payload, 16) == model.mark.payload, det
        assert det.channel_bit_errors <= bound, (det.channel_bit_errors, bound, det.bit_confidence)
    assert not list(tmp_path.glob(".*tmp*"))    # no temp file left
    empty = Recorder(tmp_path, "studio_none", 16)
    with pytest.raises(ValueError, match="nothing was recorded"):
        empty.finish()
    assert not (tmp_path / "studio_none.mp4").exists()
    assert reserve(tmp_path, "studio_take").name == "studio_take-2.mp4"


# ---- the command --------------------------------------------------------------------------------------------------


def _start(ckpt, outdir, *extra):
    """The real command in its own process; returns (process, its base URL, its token) once it printed its URL."""
    proc, base, token, _ = start_studio("--checkpoint", ckpt, "--outdir", outdir, *extra)
    return proc, base, token


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_command_serves_the_page_and_stops_cleanly(ckpt, tmp_path, sig):
    proc, url, token = _start(ckpt, tmp_path)
    try:
        page = urllib.request.urlopen(f"{url}?token={token}", timeout=30).read().decode()
        assert "reelgan studio" in page and "/static/player.js" in page
        js = urllib.request.urlopen(url + "static/player.js", timeout=30).read().decode()
        assert "window.studio" in js and not re.search(r"https?://", js + page)     # everything served here
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Error" not in err, err


def test_command_bad_inputs_are_one_line(ckpt, tmp_path):
    from gan.studio.cli import cli

    def run(*args):
        return one_error_line(cli, *args)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert "bad.pt" in run("--checkpoint", bad, "--port", 0)
    assert "does not exist" in run("--checkpoint", tmp_path / "missing.pt")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        assert "in use" in run("--checkpoint", ckpt, "--port", s.getsockname()[1])


# ---- the page in a real browser -----------------------------------------------------------------------------------


needs_browser = pytest.mark.skipif(browser.missing_reason() is not None, reason=str(browser.missing_reason()))


def _wait(driver, script, timeout=30.0):
    return browser.wait_for(driver, script, timeout)


def _pixels(driver) -> np.ndarray:
    data = driver.execute_script("const c = document.getElementById('view');"
                                 "return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);")
    return np.array(data, dtype=np.uint8)


@needs_browser
def test_page_plays_steers_and_records(ckpt, tmp_path):
    """Headless Chromium: frames arrive at >= half the target rate (tiny untrained model), a seed change changes
    the picture (and back), the record button writes a playable, marked mp4."""
    proc, url, token = _start(ckpt, tmp_path, "--fps", "30", "--precision", "fp32")
    driver = browser.open_browser()
    try:
        driver.get(f"{url}?token={token}")
        _wait(driver, "return window.studio.ready && window.studio.stats.shown > 10")
        n0, t0 = driver.execute_script("return window.studio.stats.shown"), time.time()
        time.sleep(3.0)
        rate = (driver.execute_script("return window.studio.stats.shown") - n0) / (time.time() - t0)
        assert rate >= 15, rate                        # target 30 frames/s

        driver.execute_script("document.getElementById('pause').click()")         # speed 0: a still picture
        _wait(driver, "return window.studio.settings.speed === 0 && window.studio.stats.latencyMs !== null")
        time.sleep(0.3)
        still = _pixels(driver)

        def set_seed(seed):
            n = driver.execute_script("return window.studio.stats.latencies.length")
            driver.execute_script(f"const s = document.getElementById('seed'); s.value = {seed};"
                                  "s.dispatchEvent(new Event('change'));")
            _wait(driver, f"return window.studio.stats.latencies.length > {n}")
            time.sleep(0.2)
            return _pixels(driver)
        other = set_seed(7)
        assert np.abs(other.astype(int) - still.astype(int)).mean() > 1.0
        assert np.array_equal(set_seed(0), still)      # the same seed and time draw the same picture

        driver.execute_script("document.getElementById('pause').click()")         # play again, then record
        _wait(driver, "return window.studio.settings.speed !== 0")
        driver.execute_script("document.getElementById('record').click()")
        time.sleep(1.5)
        driver.execute_script("document.getElementById('record').click()")
        rec = _wait(driver, "return window.studio.recordings[0]")
        assert not driver.execute_script("return window.studio.stats.errors.length"), \
            driver.execute_script("return window.studio.stats.errors")
        html = driver.execute_script("return document.getElementById('recordings').innerHTML")
        assert rec["name"] in html
        download = urllib.request.urlopen(f"{url}{rec['url'].lstrip('/')}?token={token}", timeout=30).read()
        driver.execute_script("const s = document.getElementById('seed'); s.value = -3;"
                              "s.dispatchEvent(new Event('change'));")             # a bad value: one line, shown
        assert "seed must be in" in _wait(driver, "return document.querySelector('#status.error')?.textContent")
        assert driver.execute_script("return document.getElementById('seed').value") == "0"   # put back
        # Stopped while the page watches and records: exit 0, and the recording in progress is kept.
        driver.execute_script("document.getElementById('record').click()")
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "Traceback" not in err, err
        _wait(driver, "return window.studio.status.startsWith('disconnected')")
    finally:
        browser.close_browser(driver)
        proc.kill()
    kept = [p for p in tmp_path.glob("studio_*.mp4") if p.name != rec["name"]]
    assert len(kept) == 1 and len(read_video(kept[0])) >= 10
    path = tmp_path / rec["name"]
    assert path.read_bytes() == download
    video = read_video(path)
    assert len(video) == rec["frames"] >= 20 and video.shape[1:] == (64, 64, 3)
    assert wm.detect(video).detected
