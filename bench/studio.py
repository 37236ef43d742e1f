"""The studio's player room in a real browser: frames/s shown and control -> display latency (not a test).

For each case, `reelgan-studio` runs as its own process on a checkpoint with randomly initialised weights of the
named config's architecture (speed does not depend on the weights), and headless Chromium (Debian's package,
selenium) opens the page on the same machine. Measured from the page's own `window.studio.stats`:
- frames/s shown at the case's target rate, over `--repeats` windows of `--window` s after a warm-up;
- latency: the time from sending a seed change to drawing the first frame of the new seed, over `--changes`
  changes spaced `--gap` s apart (median, min, max);
- CPU of the server and of the browser (% of one core, /proc) over the frame windows;
- on the server side, in this process: rendering and JPEG encoding per frame (where the time goes).

    python bench/studio.py                                  # lite 128 px @30, default 64 px @60; fp32 and bf16
    python bench/studio.py --compile                        # + compiled bf16 (the first frames wait for it)
    python bench/studio.py --screenshot runs/default/checkpoints/latest.pt    # docs/studio_player.png only
Writes bench/results/studio-<date>.json and the BENCHMARKS.md section "Studio" (with bench/studio_framework.py's
latest results).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.report import replace_section  # noqa: E402
from gan.checkpoint import FORMAT_VERSION  # noqa: E402
from bench.studio_framework import cpu_seconds, machine, process_tree  # noqa: E402

START, END = "<!-- studio:start -->", "<!-- studio:end -->"
CASES = [("lite", 128, 30.0), ("default", 64, 60.0)]
TARGETS = {"lite": 30.0, "default": 60.0, "latency_ms": 200.0}


def _stats(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def make_checkpoint(config: str, res: int, path: Path) -> Path:
    """Randomly initialised G of `config` at `res` px, saved as a checkpoint (step 0)."""
    import torch

    from gan.config import load_config
    from gan.networks import build_generator
    cfg = load_config(str(ROOT / "configs" / f"{config}.yaml"), {"data": {"resolution": res}})
    torch.manual_seed(0)
    G = build_generator(cfg)
    torch.save({"format_version": FORMAT_VERSION, "config": cfg.to_dict(), "step": 0, "c_dim": 0, "G_ema": G.state_dict()}, path)
    return path


def start_server(ckpt: Path, outdir: Path, *extra, tree: Path = ROOT, env: Optional[dict] = None) -> tuple:
    """`reelgan-studio` of `tree` (its own gan/ first on the path, in `env`) on `ckpt`: (process, URL, start line)."""
    from tests.browser import start_studio
    env = dict(os.environ, PYTHONPATH=str(tree)) if env is None else env
    # the URL with its token (none in a tree from before the studio's guard: bench/busy_cpu.py's baseline)
    proc, base, token, line = start_studio("--checkpoint", ckpt, "--outdir", outdir, *extra, cwd=tree, env=env)
    return proc, base + (f"?token={token}" if token else ""), line


def stop_server(proc) -> None:
    proc.terminate()
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait(driver, script: str, timeout: float = 120.0):
    from tests.browser import wait_for
    return wait_for(driver, script, timeout, poll=0.05)


def server_side(ckpt: Path, precision: str, compile_: bool, chunk: int, frames: int = 48) -> dict:
    """ms per frame of rendering (Model.render, chunks of `chunk`) and of JPEG encoding, in this process."""
    import numpy as np

    from gan.studio.broadcast import encode_jpeg
    from gan.studio.playback import Model
    model = Model(ckpt, chunk=chunk)
    s = model.defaults({"precision": precision, "compile": compile_})
    model.render(s, [0.0] * chunk)                                     # warm-up (and compilation)
    t0 = time.perf_counter()
    out = [model.render(s, [float(i + k) for k in range(chunk)]) for i in range(0, frames, chunk)]
    render_ms = 1000 * (time.perf_counter() - t0) / frames
    rgb = np.concatenate(out)
    t0 = time.perf_counter()
    sizes = [len(encode_jpeg(f)) for f in rgb]
    jpeg_ms = 1000 * (time.perf_counter() - t0) / len(rgb)
    return {"render_ms_per_frame": render_ms, "jpeg_ms_per_frame": jpeg_ms, "jpeg_bytes": statistics.mean(sizes)}


def run_case(config: str, res: int, fps: float, precision: str, compile_: bool, tmp: Path, window: float,
             repeats: int, changes: int, gap: float, chunk: int) -> dict:
    from tests.browser import close_browser, open_browser
    ckpt = make_checkpoint(config, res, tmp / f"{config}{res}.pt")
    result = {"config": config, "res": res, "target_fps": fps, "precision": precision, "compile": compile_,
              "chunk": chunk, **server_side(ckpt, precision, compile_, chunk)}
    proc, url, _ = start_server(ckpt, tmp / "rec", "--fps", str(fps), "--precision", precision, "--chunk", str(chunk),
                             *(["--compile"] if compile_ else []))
    driver = open_browser()
    try:
        driver.get(url)
        wait(driver, "return window.studio.ready && window.studio.stats.shown > 5", timeout=300)
        time.sleep(3.0)
        rates, cpu_s, cpu_b = [], [], []
        for _ in range(repeats):
            sp, bp = process_tree(proc.pid), process_tree(driver.service.process.pid)
            n0, t0, c0, b0 = driver.execute_script("return window.studio.stats.shown"), time.perf_counter(), \
                cpu_seconds(sp), cpu_seconds(bp)
            time.sleep(window)
            n1, t1 = driver.execute_script("return window.studio.stats.shown"), time.perf_counter()
            rates.append((n1 - n0) / (t1 - t0))
            cpu_s.append(100 * (cpu_seconds(sp) - c0) / (t1 - t0))
            cpu_b.append(100 * (cpu_seconds(bp) - b0) / (t1 - t0))
        counts = driver.execute_script("const s = window.studio.stats; return [s.received, s.shown, s.dropped];")
        result["received_shown_dropped"] = counts
        lat = []
        for k in range(changes):
            n = driver.execute_script("return window.studio.stats.latencies.length")
            driver.execute_script(f"window.studio.send({{type: 'set', seed: {k + 1}}})")
            lat.append(wait(driver, f"const l = window.studio.stats.latencies; return l.length > {n} && l[l.length-1]",
                            timeout=30))
            time.sleep(gap)
        result.update(fps=_stats(rates), cpu_server_pct=_stats(cpu_s), cpu_browser_pct=_stats(cpu_b),
                      latency_ms=_stats(lat), errors=driver.execute_script("return window.studio.stats.errors"))
    finally:
        close_browser(driver)
        stop_server(proc)
    return result


def screenshot(ckpt: str, out: Path) -> None:
    """The player room on `ckpt` after a few seconds of play: docs/studio_player.png."""
    from tests.browser import close_browser, open_browser
    with tempfile.TemporaryDirectory() as tmp:
        proc, url, _ = start_server(Path(ckpt), Path(tmp), "--seed", "3")
        driver = open_browser(1000, 720)
        try:
            driver.get(url)
            wait(driver, "return window.studio.ready && window.studio.stats.shown > 60")
            driver.save_screenshot(str(out))
        finally:
            close_browser(driver)
            stop_server(proc)
    print(f"wrote {out}")


# ---- the BENCHMARKS.md section --------------------------------------------------------------------------------


def _r(s, digits=1):
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def framework_lines() -> list:
    docs = sorted((ROOT / "bench" / "results").glob("studio-framework-*px-*.json"))
    if not docs:
        return ["Framework choice: not measured yet (`python bench/studio_framework.py`)."]
    lines = ["#### Framework choice (`bench/studio_framework.py`)", "",
             "Both frameworks serve the same JPEG frames of bouncing shapes, each server its own process, to headless "
             "Chromium on the same machine; frames/s displayed in the page, CPU in % of one core (server, browser), "
             "medians of 3 windows of 10 s (min-max). `-fresh`: every frame new, as a live generator's are "
             "(Starlette JPEG-encodes it; gradio gets an array, encodes it and writes it to its file cache).", "",
             "| frames | framework | frames/s shown | CPU server % | CPU browser % | CPU total % |",
             "|---|---|---|---|---|---|"]
    notes = []
    for p in docs:
        d = json.loads(p.read_text())
        for r in d["results"]:
            if "fps" not in r:
                lines.append(f"| {d['frame_px']} px @ {d['target_fps']:g} | {r['framework']} | failed: "
                             f"{r.get('error', '?')[:80]} | | | |")
                continue
            total = r["cpu_server_pct"]["median"] + r["cpu_browser_pct"]["median"]
            lines.append(f"| {d['frame_px']} px @ {d['target_fps']:g} | {r['framework']} | {_r(r['fps'])} | "
                         f"{_r(r['cpu_server_pct'], 0)} | {_r(r['cpu_browser_pct'], 0)} | {total:.0f} |")
        by = {r["framework"]: r for r in d["results"] if "fps" in r}
        for kind in ("", "-fresh"):
            g, st = by.get("gradio" + kind), by.get("starlette" + kind)
            if g and st:
                cpu = lambda r: r["cpu_server_pct"]["median"] + r["cpu_browser_pct"]["median"]   # noqa: E731
                server = g["cpu_server_pct"]["median"] / max(st["cpu_server_pct"]["median"], 0.1)
                notes.append(f"{d['frame_px']} px{' fresh frames' if kind else ' files'}: gradio / Starlette = "
                             f"{g['fps']['median'] / st['fps']['median']:.2f}x the frames/s for "
                             f"{cpu(g) / cpu(st):.1f}x the CPU (server alone {server:.1f}x)")
        v = d.get("versions", {})
        notes.append(f"{d['frame_px']} px: `{d['command']}` on {d['date']}, {d['machine']['cpu']}, "
                     f"{d['machine']['cores']} cores, load average at the end {d['machine']['loadavg']}; gradio "
                     f"{v.get('gradio')}, starlette {v.get('starlette')}, uvicorn {v.get('uvicorn')}")
    lines += [""] + [f"- {n}" for n in notes]
    return lines + ["", "Decision: both sustain the target, but gradio spends several times the CPU per frame, and on "
                    "2 cores that CPU is taken from the generator; its per-session generator would also render "
                    "once per tab. The studio is a small Starlette + uvicorn app streaming over a WebSocket."]


def render_section(doc: dict) -> str:
    m = doc["machine"]
    out = [f"_Generated by `{doc['command']}` on {doc['date']}. Machine: {m['cpu']}, {m['cores']} cores, load "
           f"average {m['loadavg']} at the start, {m.get('loadavg_end')} at the end (server and browser share the "
           f"machine with whatever else runs); torch {doc.get('torch')}, {doc.get('torch_threads')} torch "
           f"thread(s) in the server. Raw results: `{doc['json']}`._", "",
           "`reelgan-studio` on a checkpoint with **randomly initialised weights** of each config (speed does not "
           "depend on the weights), headless Chromium on the same cores, the page's own `window.studio.stats`. "
           f"frames/s shown: {doc['repeats']} windows of {doc['window']:g} s after a warm-up, median (min-max). "
           f"Latency: {doc['changes']} seed changes {doc['gap']:g} s apart, from sending the change to drawing the "
           "first frame of the new seed. Render and JPEG: ms per frame in the bench process (chunks as served).", "",
           "| config | px | target | renderer | frames/s shown | latency ms | CPU server % | CPU browser % | "
           "render ms/frame | JPEG ms/frame | JPEG bytes |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["results"]:
        mode = f"{'compiled' if r['compile'] else 'eager'} {r['precision']}, chunk {r['chunk']}"
        if "error" in r:
            out.append(f"| {r['config']} | {r['res']} | {r['target_fps']:g} | {mode} | failed: {r['error'][:100]} "
                       "| | | | | | |")
            continue
        out.append(f"| {r['config']} | {r['res']} | {r['target_fps']:g} | {mode} | {_r(r['fps'])} | "
                   f"{_r(r['latency_ms'], 0)} | {_r(r['cpu_server_pct'], 0)} | {_r(r['cpu_browser_pct'], 0)} | "
                   f"{r['render_ms_per_frame']:.1f} | {r['jpeg_ms_per_frame']:.2f} | {r['jpeg_bytes']:.0f} |")
    out += ["", "#### Targets", "", "The page paces frames to the target, so frames/s shown cannot exceed it; 'met' "
            "allows 2% for the page's and the server's clocks. The issue's targets are on 2 cores with server and "
            "browser together: rerun on a quiet machine for numbers without other load.", "",
            "| target | goal | best measured | status |", "|---|---|---|---|"]
    for config, goal in (("lite", TARGETS["lite"]), ("default", TARGETS["default"])):
        rows = [r for r in doc["results"] if r["config"] == config and "fps" in r]
        if not rows:
            out.append(f"| {config} frames/s shown | >= {goal:g} | not measured | - |")
            continue
        best = max(rows, key=lambda r: r["fps"]["median"])
        px = best["res"]
        out.append(f"| {config}, {px} px, frames/s shown | >= {goal:g} | {best['fps']['median']:.1f} "
                   f"({'compiled ' if best['compile'] else ''}{best['precision']}) | "
                   f"{'met' if best['fps']['median'] >= goal * 0.98 else 'not met'} |")
    rows = [r for r in doc["results"] if "latency_ms" in r]
    if rows:
        worst = max(r["latency_ms"]["median"] for r in rows)
        out.append(f"| control -> display, median | <= {TARGETS['latency_ms']:g} ms | {worst:.0f} ms (worst case's "
                   f"median) | {'met' if worst <= TARGETS['latency_ms'] else 'not met'} |")
    out += [""] + framework_lines()
    return "\n".join(out)


@click.command()
@click.option("--window", type=float, default=5.0, show_default=True)
@click.option("--repeats", type=int, default=3, show_default=True)
@click.option("--changes", type=int, default=20, show_default=True)
@click.option("--gap", type=float, default=0.4, show_default=True, help="Seconds between seed changes.")
@click.option("--chunk", type=int, default=4, show_default=True)
@click.option("--precisions", type=str, default="fp32,bf16", show_default=True)
@click.option("--compile", "compile_", is_flag=True, help="Also run compiled bf16.")
@click.option("--only", type=click.Choice(["lite", "default"]), default=None)
@click.option("--screenshot", "shot", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Only take docs/studio_player.png of the player on this checkpoint.")
@click.option("--no-markdown", is_flag=True)
def main(window, repeats, changes, gap, chunk, precisions, compile_, only, shot, no_markdown):
    if shot:
        screenshot(shot, ROOT / "docs" / "studio_player.png")
        return
    runs = [(c, r, f, p, False) for c, r, f in CASES for p in precisions.split(",")]
    if compile_:
        runs += [(c, r, f, "bf16", True) for c, r, f in CASES]
    runs = [x for x in runs if only is None or x[0] == only]
    import torch
    doc = {"command": "python bench/studio.py " + " ".join(sys.argv[1:]), "machine": machine(), "window": window,
           "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
           "repeats": repeats, "changes": changes, "gap": gap, "results": [],
           "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory() as tmp:
        for config, res, fps, precision, comp in runs:
            try:
                r = run_case(config, res, fps, precision, comp, Path(tmp), window, repeats, changes, gap, chunk)
            except Exception as e:                            # noqa: BLE001: recorded, the other cases go on
                r = {"config": config, "res": res, "target_fps": fps, "precision": precision, "compile": comp,
                     "chunk": chunk, "error": f"{type(e).__name__}: {e}"}
            doc["results"].append(r)
            print(json.dumps(r), flush=True)
    doc["machine"]["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    out = ROOT / "bench" / "results" / f"studio-{dt.date.today().isoformat()}.json"
    doc["json"] = str(out.relative_to(ROOT))
    out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {out}")
    if not no_markdown:
        replace_section(ROOT / "BENCHMARKS.md", START, END, "Studio", render_section(doc))


def rerender(json_path: str) -> None:
    """The BENCHMARKS.md section again from a results file: python -c 'from bench.studio import rerender; ...'."""
    doc = json.loads(Path(json_path).read_text())
    replace_section(ROOT / "BENCHMARKS.md", START, END, "Studio", render_section(doc))


if __name__ == "__main__":
    main()
