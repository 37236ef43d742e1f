"""The in-browser player (reelgan-studio --checkpoint G.onnx --in-browser; gan/studio/browser_player.py): the page
runs the exported tiny G on onnxruntime-web (WebAssembly, vendored) in Debian's headless Chromium. Its frames for
given inputs equal ONNX Runtime Python's, it plays, and a bad model is one clear line (command or page)."""
import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

pytest.importorskip("onnxruntime")

from gan import checkpoint as ckpt_io  # noqa: E402
from gan.config import load_config  # noqa: E402
from tests import browser  # noqa: E402
from tests.browser import start_studio  # noqa: E402
from tests.conftest import ROOT, one_error_line  # noqa: E402

ORT_DIR = ROOT / "gan" / "studio" / "static" / "browser" / "ort"
# Same float32 bound as tests/test_onnx.py (runtime vs PyTorch): the WASM kernels (128-bit SIMD) and the native
# ones (AVX2 / AVX-512) sum each convolution's products in different orders, ~ sqrt(n) * eps32 per layer over the
# few layers of the tiny G; 1e-4 (~840 eps32 for outputs in [-1, 1]) is far above that and far below a wrong
# input (a wrong time, anchor or latent moves frames by > 1e-2, checked below); measured 4.4e-6 on AMD EPYC.
F32_BOUND = 1e-4
# WebGPU: WGSL specifies f32 sin and cos only to 2^-11 absolute (measured 1.9e-4 on SwiftShader; every other op of
# the graph agreed to ~1e-6), and the tiny G carries its motion features' error about 5x into the frames (measured
# 9.2e-4 at most): 5 * 2^-11 = 2.4e-3. 4e-3 (half a level of the 8-bit frame shown) leaves 1.6x over that, and the
# frames must move by 10x the bound between times (below) so a wrong input cannot pass.
WEBGPU_BOUND = 4e-3
needs_browser = pytest.mark.skipif(browser.missing_reason() is not None, reason=str(browser.missing_reason()))


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    """The tiny G (16 px, random weights, visible motion) exported to ONNX by the real command."""
    from gan.export import cli
    from gan.networks import build_generator
    cfg = load_config(str(ROOT / "configs" / "tiny.yaml"))
    torch.manual_seed(0)
    G = build_generator(cfg).eval()
    torch.nn.init.normal_(G.flow.weight)
    d = tmp_path_factory.mktemp("webplayer")
    ckpt_io.save_atomic({"format_version": ckpt_io.FORMAT_VERSION, "kind": "reelgan-generator",
                         "config": cfg.to_dict(), "c_dim": 0, "class_names": [], "step": 3,
                         "G_ema": G.state_dict()}, d / "G.pt")
    res = CliRunner().invoke(cli, [str(d / "G.pt"), str(d / "G.onnx")])
    assert res.exit_code == 0, res.output
    return d / "G.onnx"


@pytest.fixture(scope="module")
def split_model(onnx_model, tmp_path_factory):
    """The same tiny G exported with --split: G.onnx plus G.video.onnx and G.frames.onnx beside it."""
    from gan.export import cli
    d = tmp_path_factory.mktemp("webplayer_split")
    res = CliRunner().invoke(cli, [str(onnx_model.parent / "G.pt"), str(d / "G.onnx"), "--split"])
    assert res.exit_code == 0, res.output
    assert (d / "G.video.onnx").is_file() and (d / "G.frames.onnx").is_file()
    return d / "G.onnx"


def test_vendored_runtime_matches_its_manifest():
    rows = [line.split() for line in (ORT_DIR / "MANIFEST").read_text().splitlines() if not line.startswith("#")]
    assert {name for _, name in rows} == {p.name for p in ORT_DIR.iterdir()} - {"MANIFEST", "LICENSE"}
    for digest, name in rows:
        assert hashlib.sha256((ORT_DIR / name).read_bytes()).hexdigest() == digest, name


def _start(model: Path, *extra):
    proc, base, token, _ = start_studio("--checkpoint", model, "--in-browser", *extra)
    return proc, base, token


# Chromium offers WebGPU to a page only with this switch when it has no GPU; here its adapter is SwiftShader
# (Vulkan on the CPU), which runs the WebGPU kernels exactly as a GPU would, only slower.
WEBGPU_ARGS = ("--enable-unsafe-webgpu",)


class Page:
    """The studio serving `model` in the browser room, and a headless Chromium on its page."""

    def __init__(self, model, query="", before_open=None, studio_args=(), browser_args=()):
        self.proc, url, token = _start(model, *studio_args)
        if before_open is not None:
            before_open()
        self.driver = browser.open_browser(extra_args=browser_args)
        self.driver.get(f"{url}browser?token={token}{query}")

    def wait(self, script, timeout=60.0):
        return browser.wait_for(self.driver, script, timeout)

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def close(self):
        browser.close_browser(self.driver)
        self.proc.kill()
        self.proc.communicate(timeout=30)


def _wait_ready(page):
    page.wait("return window.webplayer.ready || window.webplayer.stats.errors.length")
    assert page.js("return window.webplayer.stats.errors") == []


@pytest.fixture(scope="module")
def webgpu_build():
    """onnxruntime-web's WebGPU build, fetched once from the npm registry (as --backend webgpu does) and cached."""
    from gan.studio import ort_web
    return ort_web.fetch_build()


@needs_browser
@pytest.mark.parametrize("backend", ["wasm", "webgpu"])
def test_page_frames_match_onnx_runtime_python(onnx_model, backend, request):
    from gan.sampling.onnx_runtime import OnnxGenerator
    og = OnnxGenerator(onnx_model)
    if backend == "webgpu":
        request.getfixturevalue("webgpu_build")
        page = Page(onnx_model, "&play=0", studio_args=("--backend", "webgpu"), browser_args=WEBGPU_ARGS)
    else:
        page = Page(onnx_model, "&play=0")
    bound = WEBGPU_BOUND if backend == "webgpu" else F32_BOUND
    try:
        _wait_ready(page)
        assert page.js("return window.webplayer.backend") == backend
        # cross-origin isolated, so the runtime's WebAssembly threads run (one per core, up to 8)
        assert page.js("return [crossOriginIsolated, window.webplayer.threads === "
                       "Math.min(navigator.hardwareConcurrency, 8)]") == [True, True]
        gen = torch.Generator().manual_seed(5)
        b, k, t, k0, psi = 2, 3, 5, 1, 0.7
        z, codes = torch.randn(b, og.z_dim, generator=gen), torch.randn(b, k, og.motion_dim, generator=gen)
        times = (k0 + torch.rand(b, t, generator=gen) * (k - 1) * 0.99) * og.motion_period
        feed = {"B": b, "T": t, "K": k, "z": z.flatten().tolist(), "psi": psi, "codes": codes.flatten().tolist(),
                "anchorOffset": k0, "t": times.flatten().tolist()}
        got = page.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "window.webplayer.run(arguments[0]).then(o => done([o.dims, Array.from(o.data)]), e => done(String(e)));",
            feed)
        assert isinstance(got, list), got
        ref = og.run(z.numpy(), psi, codes.numpy(), k0, times.numpy())
        assert got[0] == list(ref.shape) == [b, t, 3, 16, 16]
        out = np.array(got[1], np.float32).reshape(ref.shape)
        assert np.abs(out - ref).max() < bound
        assert np.abs(ref[:, 1:] - ref[:, :1]).max() > 10 * bound     # frames move: the bound is not vacuous

        # The page's clips: chunks join seamlessly (each anchor's code depends on the seed and anchor only, and
        # the window covers the chunk's times as the Python renderer picks it), and seeds differ.
        clip = page.driver.execute_async_script(
            "const done = arguments[arguments.length - 1], p = window.webplayer;"
            "const f = (s, ts) => p.renderClip(s, 1, ts).then(o => Array.from(o.data));"
            "const r = (a, n) => Array.from({length: n}, (_, i) => a + 1.5 * i);"
            "Promise.all([f(3, r(0, 12)), f(3, r(0, 5)), f(3, r(7.5, 7)), f(4, r(0, 12))])"
            ".then(done, e => done(String(e)));")
        assert isinstance(clip, list), clip
        whole, first, second, other = (np.array(c, np.float32) for c in clip)
        assert np.abs(np.concatenate([first, second]) - whole).max() < bound
        assert np.abs(other - whole).mean() > 1e-2
    finally:
        page.close()


@needs_browser
def test_page_plays_and_counts_frames_shown(onnx_model):
    page = Page(onnx_model)
    try:
        _wait_ready(page)
        page.wait("return window.webplayer.stats.shown > 5")
        grab = ("const c = document.getElementById('view');"
                "return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);")
        a = np.array(page.js(grab), np.uint8)
        time.sleep(0.5)
        b = np.array(page.js(grab), np.uint8)
        assert a.size == 16 * 16 * 4 and np.abs(a.astype(int) - b.astype(int)).mean() > 0.5   # the clip moves
        stats = page.js("return window.webplayer.stats")
        assert stats["shown"] > 5 and stats["fps"] > 0 and stats["errors"] == []
        assert "frames/s shown" in page.js("return document.getElementById('stats').textContent")
        # everything the page loaded (runtime, its .wasm, the model) came from the studio itself: no CDN
        urls = page.js("return performance.getEntriesByType('resource').map(e => e.name)")
        origin = page.js("return location.origin")
        assert any(u.endswith(".wasm") for u in urls) and all(u.startswith(origin + "/") for u in urls), urls
    finally:
        page.close()


@needs_browser
def test_page_runs_the_split_halves_once_per_video(split_model, onnx_model, tmp_path):
    """With G.video.onnx and G.frames.onnx beside G.onnx the page runs the per-video half once per seed, and its
    frames equal the one graph's (ONNX Runtime Python) within float32 rounding; a pair from another export is not
    used."""
    from gan.sampling.onnx_runtime import OnnxGenerator
    og = OnnxGenerator(onnx_model)
    page = Page(split_model, "&play=0")
    try:
        _wait_ready(page)
        assert page.js("return window.webplayer.split") is True
        clip = page.driver.execute_async_script(
            "const done = arguments[arguments.length - 1], p = window.webplayer;"
            "const r = (a, n) => Array.from({length: n}, (_, i) => a + 1.5 * i);"
            "(async () => {"
            "  const calls0 = p.stats.videoCalls, out = [];"
            "  for (const ts of [r(0, 4), r(6, 4), r(12, 4)])"
            "    out.push(Array.from((await p.renderClip(7, 0.8, ts)).data));"
            "  return [p.stats.videoCalls - calls0, out];"
            "})().then(done, e => done(String(e)));")
        assert isinstance(clip, list), clip
        calls, chunks = clip
        assert calls == 1                                     # three chunks, one per-video call
        times = np.array([0 + 1.5 * i for i in range(12)], np.float32)
        # the same clip from the one graph in Python, fed the page's latents (read back from the page's PRNG)
        feed = page.driver.execute_async_script(
            "const done = arguments[arguments.length - 1], p = window.webplayer;"
            "p.renderClipInputs(7, 0.8, arguments[0]).then(done, e => done(String(e)));", times.tolist())
        assert isinstance(feed, dict), feed
        ref = og.run(np.array(feed["z"], np.float32).reshape(1, -1), 0.8,
                     np.array(feed["codes"], np.float32).reshape(1, feed["K"], -1), feed["anchorOffset"],
                     times[None])
        got = np.concatenate([np.array(c, np.float32).reshape(1, 4, *ref.shape[2:]) for c in chunks], axis=1)
        assert np.abs(got - ref).max() < F32_BOUND
        assert np.abs(ref[:, 1:] - ref[:, :1]).max() > 1e-2
    finally:
        page.close()
    # halves from another export (another model) beside this G.onnx: the page runs G.onnx alone
    import shutil
    other = tmp_path / "G.onnx"
    shutil.copy(onnx_model, other)
    for part in ("video", "frames"):
        data = (split_model.parent / f"G.{part}.onnx").read_bytes()
        (tmp_path / f"G.{part}.onnx").write_bytes(data)
    _restamp_model_id(tmp_path / "G.video.onnx")
    page = Page(other, "&play=0")
    try:
        _wait_ready(page)
        assert page.js("return window.webplayer.split") is False
    finally:
        page.close()


def _restamp_model_id(path):
    """Give an exported half another model id (as a half from another model's export would have)."""
    import json
    import onnx
    m = onnx.load(str(path))
    for prop in m.metadata_props:
        if prop.key == "reelgan":
            meta = json.loads(prop.value)
            meta["model_id"] = int(meta["model_id"]) ^ 1
            prop.value = json.dumps(meta)
    onnx.save(m, str(path))


def test_command_bad_model_is_one_line(onnx_model, tmp_path):
    from gan.studio.cli import cli

    def run(*args):
        return one_error_line(cli, *args)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    assert "bad.onnx is not a readable ONNX file" in run("--checkpoint", bad, "--in-browser", "--port", 0)
    pt = tmp_path / "G.pt"
    pt.write_bytes(b"x")
    assert "reelgan-export CKPT G.onnx --format onnx" in run("--checkpoint", pt, "--in-browser", "--port", 0)
    assert "records nothing: drop --outdir, --precision" in run("--checkpoint", onnx_model, "--in-browser",
                                                                "--precision", "bf16", "--outdir", tmp_path)
    assert "--backend belongs to --in-browser" in run("--checkpoint", onnx_model, "--backend", "wasm")


def test_webgpu_build_not_cached_and_fetching_off_is_one_line(onnx_model, tmp_path, monkeypatch):
    from gan.studio.cli import cli
    monkeypatch.setenv("REELGAN_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("REELGAN_WEIGHTS_FETCH", "0")
    line = one_error_line(cli, "--checkpoint", onnx_model, "--in-browser", "--backend", "webgpu", "--port", 0)
    assert "WebGPU build is not cached and fetching is off" in line and "--backend wasm" in line, line


def test_webgpu_build_with_a_wrong_file_is_refused(tmp_path, monkeypatch, webgpu_build):
    """A cached file that is not the pinned one (tampered with, or cut short) is never served."""
    import shutil
    from gan.studio import ort_web
    monkeypatch.setenv("REELGAN_CACHE", str(tmp_path))
    shutil.copytree(webgpu_build, ort_web.build_dir())
    assert ort_web.cached_build() == ort_web.build_dir()
    (ort_web.build_dir() / ort_web.ENTRY).write_text("// not the published file\n")
    with pytest.raises(ort_web.OrtWebError, match="wrong SHA-256"):
        ort_web.cached_build()


@needs_browser
def test_webgpu_asked_for_in_a_browser_without_it_plays_on_webassembly(onnx_model, webgpu_build):
    page = Page(onnx_model, studio_args=("--backend", "webgpu"))       # the default browser: --disable-gpu
    try:
        _wait_ready(page)
        assert page.js("return window.webplayer.backend") == "wasm"
        assert "no WebGPU adapter" in page.js("return document.getElementById('model').textContent")
        page.wait("return window.webplayer.stats.shown > 3")
    finally:
        page.close()


@needs_browser
def test_page_bad_model_is_one_line(onnx_model, tmp_path):
    """A model file that breaks after the command checked it (cut short on disk): the page says so in one line."""
    model = tmp_path / "cut.onnx"
    data = onnx_model.read_bytes()
    model.write_bytes(data)
    page = Page(model, before_open=lambda: model.write_bytes(data[: len(data) // 2]))
    try:
        page.wait("return window.webplayer.stats.errors.length")
        status = page.js("return document.querySelector('#status.error').textContent")
        assert status.startswith("cannot load cut.onnx in the browser: ") and "\n" not in status, status
        assert page.js("return window.webplayer.ready") is False
    finally:
        page.close()

