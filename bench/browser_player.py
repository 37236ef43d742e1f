"""The in-browser player (reelgan-studio --checkpoint G.onnx --in-browser) in headless Chromium: frames/s shown
(not a test).

The default config's G (64 px, random weights: speed does not depend on them) is exported to ONNX, the studio
serves it, and Debian's headless Chromium (selenium) plays it on onnxruntime-web's WebAssembly backend, or on its
WebGPU backend (`--backend webgpu`; Chromium started with --enable-unsafe-webgpu: on a machine without a GPU its
adapter is SwiftShader, WebGPU emulated on the CPU, which says nothing of a real GPU's speed). Measured
from the page's `window.webplayer.stats`: frames shown per `--window` s over `--repeats` windows after a warm-up
(min / median / max), and the page's own render time per frame. For scale, in the same run: ONNX Runtime Python
(native CPU kernels) rendering the same graph, same chunk, same threads.

    python bench/browser_player.py                 # targets 30 and 60 frames/s, WASM threads 2 and 1
    python bench/browser_player.py --cases wasm:30:2,webgpu:30:2      # backend:target frames/s:threads
    python bench/browser_player.py --cases wasm:60:1:one,wasm:60:1:split    # ...:graph (one, or the split halves)
Prints a markdown table and writes bench/results/browser_player-<date>.json.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def export_default(path: Path) -> None:
    import torch

    from gan.config import load_config
    from gan.networks import build_generator
    from gan.onnx_export import export_onnx
    cfg = load_config(str(ROOT / "configs" / "default.yaml"))
    torch.manual_seed(0)
    export_onnx(build_generator(cfg).eval(), cfg, path, step=0, split=True)


def native_fps(path: Path, chunk: int, threads: int, seconds: float = 3.0) -> float:
    import torch

    from gan.sampling.onnx_runtime import OnnxGenerator
    og = OnnxGenerator(path, threads=threads)
    feed = og.inputs([0], torch.arange(chunk, dtype=torch.float64))
    og.session.run(["frames"], feed)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        og.session.run(["frames"], feed)
        n += chunk
    return n / (time.perf_counter() - t0)


def page_case(model: Path, backend: str, fps: int, threads: int, graph: str, chunk: int, window: float, repeats: int,
              warmup: float) -> dict:
    from tests import browser
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "gan.studio.cli", "--checkpoint", str(model), "--in-browser",
                             "--port", "0", "--chunk", str(chunk), "--backend", backend], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    m = re.search(r"(http://127\.0\.0\.1:\d+/)\?token=(\S+)", proc.stdout.readline())
    driver = browser.open_browser(extra_args=("--enable-unsafe-webgpu",) if backend == "webgpu" else ())
    try:
        query = f"token={m.group(2)}&fps={fps}&threads={threads}&split={int(graph == 'split')}"
        driver.get(f"{m.group(1)}browser?{query}")
        browser.wait_for(driver, "return window.webplayer.stats.shown > 0 || window.webplayer.stats.errors.length", 120)
        time.sleep(warmup)
        rates, render = [], []
        for _ in range(repeats):
            n0, t0 = driver.execute_script("return window.webplayer.stats.shown"), time.perf_counter()
            time.sleep(window)
            s = driver.execute_script("return window.webplayer.stats")
            rates.append((s["shown"] - n0) / (time.perf_counter() - t0))
            render.append(s["renderMsPerFrame"])
        assert not s["errors"], s["errors"]
        shown = driver.execute_script("return window.webplayer.backend")
        assert shown == backend, f"asked for {backend}, the page runs {shown}"
        assert driver.execute_script("return window.webplayer.split") == (graph == "split")
        return {"backend": backend, "graph": graph, "target_fps": fps, "threads": threads, "chunk": chunk,
                "fps_shown": rates,
                "render_ms_per_frame": render}
    finally:
        browser.close_browser(driver)
        proc.kill()
        proc.communicate()


def machine() -> str:
    """The CPU as lscpu names it, with its core count (what every speed figure is stated beside)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        name = info.get("Model name", "?").strip()
        fam, model = info.get("CPU family", "?").strip(), info.get("Model", "?").strip()
        return f"{os.cpu_count()}-core {name} (family {fam}, model {model})"
    except (OSError, ValueError):
        return f"{os.cpu_count()}-core CPU"


def main():
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--window", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--chunk", type=int, default=4)
    ap.add_argument("--cases", default="wasm:30:2,wasm:60:2,wasm:60:1",
                    help="comma-separated backend:target frames/s:threads[:one|split] (graph; default one)")
    args = ap.parse_args()
    cases = [(b, int(f), int(t), (g or ["one"])[0]) for b, f, t, *g in (c.split(":") for c in args.cases.split(","))]
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "G_default64.onnx"
        export_default(model)
        load = os.getloadavg()
        cases = [page_case(model, backend, fps, threads, graph, args.chunk, args.window, args.repeats, args.warmup)
                 for backend, fps, threads, graph in cases]
        native = {t: native_fps(model, args.chunk, t) for t in sorted({c["threads"] for c in cases})}
    result = {"date": dt.datetime.utcnow().isoformat(timespec="seconds"), "load_before": load,
              "load_after": os.getloadavg(), "cases": cases, "native_fps_by_threads": native,
              "machine": machine()}
    out = ROOT / "bench" / "results" / f"browser_player-{dt.datetime.utcnow():%Y-%m-%d-%H%M}.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"{result['machine']}; load average before {load[0]:.2f}, after {result['load_after'][0]:.2f}; "
          f"chunk {args.chunk}")
    print("| backend | graph | target frames/s | WASM threads | frames/s shown min / median / max "
          "| page render ms/frame (median) | ONNX Runtime Python frames/s, same threads |")
    print("|---|---|---|---|---|---|---|")
    for c in cases:
        r = c["fps_shown"]
        print(f"| {c['backend']} | {c['graph']} | {c['target_fps']} | {c['threads']} | "
              f"{min(r):.1f} / {statistics.median(r):.1f} / {max(r):.1f} | "
              f"{statistics.median(c['render_ms_per_frame']):.1f} | {native[c['threads']]:.0f} |")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
