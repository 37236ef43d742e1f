"""Which web framework the studio streams frames with: gradio against a small Starlette + uvicorn app (not a test).

Both serve the same pre-rendered 64 px JPEG frames (bouncing shapes) at a target rate; headless Chromium
(Debian's package, driven by selenium) counts the frames it displays. Each server is its own process; the CPU
time of the server and of the browser (chromedriver and every Chromium process) is read from /proc over the
same window.

- gradio (throwaway venv, `python -m venv /work/venv-gradio --system-site-packages && /work/venv-gradio/bin/pip
  install gradio`): a generator bound to `demo.load` yields the frames' file paths to a gr.Image, gradio's own
  way to stream images (server-sent events; the browser fetches each frame by URL). Files, not arrays, so
  gradio encodes nothing: its best case.
- Starlette + uvicorn: one WebSocket sends each JPEG as a binary message; the page decodes it
  (createImageBitmap) and draws the newest on a canvas per requestAnimationFrame.
- the `-fresh` variants make every frame new (a counter in its corner pixels), as a live generator does:
  Starlette JPEG-encodes each frame (PIL, quality 90); gradio gets arrays (gr.Image type numpy, format jpeg),
  which it encodes and writes into its file cache before the browser fetches them.

    python bench/studio_framework.py                    # 60 frames/s target, 10 s windows, 3 repeats
    python bench/studio_framework.py --px 128 --gradio-python /work/venv-gradio/bin/python
Writes bench/results/studio-framework-<px>px-<date>.json; bench/studio.py puts the result into BENCHMARKS.md "Studio".
"""
from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAGE = """<!doctype html><title>bench</title><canvas id=c width=256 height=256></canvas><script>
window.shown = 0; let latest = null;
const ws = new WebSocket(`ws://${location.host}/ws`); ws.binaryType = 'blob';
ws.onmessage = async (e) => { const b = await createImageBitmap(e.data); if (latest) latest.close(); latest = b; };
const ctx = document.getElementById('c').getContext('2d'); ctx.imageSmoothingEnabled = false;
function draw() {
  if (latest) { ctx.drawImage(latest, 0, 0, 256, 256); latest.close(); latest = null; window.shown++; }
  requestAnimationFrame(draw);
}
requestAnimationFrame(draw);
</script>"""

# gradio renders its own page: count every <img> that finishes loading (each streamed frame is a new URL).
GRADIO_COUNTER = """window.shown = 0;
document.addEventListener('load', (e) => {
  const img = e.target;
  if (img.tagName === 'IMG' && img.src.includes('file') && img.src !== window.lastSrc) {
    window.lastSrc = img.src; window.shown++; } }, true);"""


# ---- measuring ----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_tree(pid: int) -> list:
    """pid and all its descendants, from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids) -> float:
    """User + system CPU seconds of the live processes among `pids` (/proc/PID/stat, clock ticks)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:.0f} s")


def measure(driver, server_pid: int, browser_pid: int, warmup: float, window: float, repeats: int) -> dict:
    """Displayed frames/s and CPU (% of one core) of server and browser over `repeats` windows of `window` s."""
    time.sleep(warmup)
    fps, cpu_server, cpu_browser = [], [], []
    for _ in range(repeats):
        s_pids, b_pids = process_tree(server_pid), process_tree(browser_pid)
        n0, t0, cs0, cb0 = driver.execute_script("return window.shown"), time.perf_counter(), \
            cpu_seconds(s_pids), cpu_seconds(b_pids)
        time.sleep(window)
        n1, t1 = driver.execute_script("return window.shown"), time.perf_counter()
        fps.append((n1 - n0) / (t1 - t0))
        cpu_server.append(100 * (cpu_seconds(s_pids) - cs0) / (t1 - t0))
        cpu_browser.append(100 * (cpu_seconds(b_pids) - cb0) / (t1 - t0))
    return {"fps": _stats(fps), "cpu_server_pct": _stats(cpu_server), "cpu_browser_pct": _stats(cpu_browser)}


def _stats(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "all": xs}


def machine() -> dict:
    cpu = "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        cpu = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()
    return {"cpu": cpu, "cores": os.cpu_count(), "loadavg": [round(v, 2) for v in load]}


# ---- the two servers ------------------------------------------------------------------------------------------


def write_frames(folder: Path, n: int = 64, res: int = 64) -> list:
    """n JPEG frames (quality 90) of bouncing shapes, as files."""
    from PIL import Image

    from gan.data import BouncingShapes
    folder.mkdir(parents=True, exist_ok=True)
    video = BouncingShapes(resolution=res, num_videos=1, video_frames=n, num_objects=2).render(0, 0, n)
    paths = []
    for i, frame in enumerate(video):                       # [T, H, W, 3] uint8
        p = folder / f"f{i:03d}.jpg"
        Image.fromarray(frame).save(p, quality=90)
        paths.append(str(p))
    return paths


def fresh_frames(paths: list):
    """The frames as arrays, each made unique by a counter in its top-left pixels (a live generator never
    repeats a frame, so no cache may serve one)."""
    import numpy as np
    from PIL import Image
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    i = 0
    while True:
        f = frames[i % len(frames)].copy()
        f[0, :3] = np.frombuffer(i.to_bytes(9, "big"), np.uint8).reshape(3, 3)
        yield f
        i += 1


def jpeg(frame) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def serve_starlette(paths: list, port: int, fps: float, fresh: bool = False) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route, WebSocketRoute
    files = [Path(p).read_bytes() for p in paths]
    new = fresh_frames(paths)
    frame = (lambda i: jpeg(next(new))) if fresh else (lambda i: files[i % len(files)])  # noqa: E731

    async def page(request):
        return HTMLResponse(PAGE)

    async def ws(socket_):
        await socket_.accept()
        t0, i = time.perf_counter(), 0
        while True:
            await socket_.send_bytes(frame(i))
            i += 1
            await asyncio.sleep(max(0.0, t0 + i / fps - time.perf_counter()))

    app = Starlette(routes=[Route("/", page), WebSocketRoute("/ws", ws)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def serve_gradio(paths: list, port: int, fps: float, fresh: bool = False) -> None:
    import gradio as gr
    new = fresh_frames(paths)

    def stream():
        t0, i = time.perf_counter(), 0
        while True:
            yield next(new) if fresh else paths[i % len(paths)]
            i += 1
            time.sleep(max(0.0, t0 + i / fps - time.perf_counter()))

    with gr.Blocks() as demo:
        img = gr.Image(type="numpy" if fresh else "filepath", format="jpeg", label="frames")
        demo.load(stream, None, img)
    demo.queue().launch(server_name="127.0.0.1", server_port=port, share=False, show_error=True)


# ---- the run --------------------------------------------------------------------------------------------------


def run_one(name: str, python: str, frames_dir: Path, fps: float, warmup: float, window: float,
            repeats: int) -> dict:
    from tests.browser import open_browser
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([python, __file__, "serve", name, str(frames_dir), str(port), str(fps)], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    driver = None
    try:
        wait_for_port(port, proc)
        driver = open_browser(600, 600)
        if name.startswith("gradio"):                        # the counter must be in place before the page loads
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": GRADIO_COUNTER})
        driver.get(f"http://127.0.0.1:{port}/")
        result = measure(driver, proc.pid, driver.service.process.pid, warmup, window, repeats)
        result["framework"] = name
        return result
    finally:
        if driver is not None:
            driver.quit()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@click.group(invoke_without_command=True)
@click.option("--fps", type=float, default=60.0, show_default=True, help="Target frames/s the servers send.")
@click.option("--px", type=int, default=64, show_default=True, help="Frame size (square).")
@click.option("--warmup", type=float, default=4.0, show_default=True)
@click.option("--window", type=float, default=10.0, show_default=True, help="Seconds per measurement.")
@click.option("--repeats", type=int, default=3, show_default=True)
@click.option("--gradio-python", type=str, default="/work/venv-gradio/bin/python", show_default=True,
              help="A Python with gradio installed (kept out of the project's environment).")
@click.pass_context
def main(ctx, fps, px, warmup, window, repeats, gradio_python):
    if ctx.invoked_subcommand is not None:
        return
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        write_frames(Path(tmp), res=px)
        results = []
        for name in ("starlette", "gradio", "starlette-fresh", "gradio-fresh"):
            python = gradio_python if name.startswith("gradio") else sys.executable
            try:
                results.append(run_one(name, python, Path(tmp), fps, warmup, window, repeats))
            except Exception as e:                           # noqa: BLE001: record and go on to the other
                results.append({"framework": name, "error": f"{type(e).__name__}: {e}"[:500]})
            print(json.dumps(results[-1]), flush=True)
    doc = {"command": "python bench/studio_framework.py " + " ".join(sys.argv[1:]), "date": dt.datetime.now(
        dt.timezone.utc).isoformat(timespec="seconds"), "target_fps": fps, "frame_px": px, "window_s": window,
        "repeats": repeats, "machine": machine(), "results": results}
    doc["versions"] = _versions(gradio_python)
    out = ROOT / "bench" / "results" / f"studio-framework-{px}px-{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {out}")


def _versions(gradio_python: str) -> dict:
    code = ("import importlib.metadata as m\nfor n in ('gradio', 'starlette', 'uvicorn'):\n"
            "    try: print(n, m.version(n))\n    except Exception: print(n, '-')")
    try:
        out = subprocess.run([gradio_python, "-c", code], capture_output=True, text=True).stdout
        gv = dict(line.split() for line in out.splitlines() if line.strip())
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
        sv = dict(line.split() for line in out.splitlines() if line.strip())
        return {"gradio": gv.get("gradio"), "starlette": sv.get("starlette"), "uvicorn": sv.get("uvicorn")}
    except OSError:
        return {}


@main.command()
@click.argument("name")
@click.argument("frames_dir")
@click.argument("port", type=int)
@click.argument("fps", type=float)
def serve(name, frames_dir, port, fps):
    """(internal) run one server on the frames in FRAMES_DIR."""
    paths = sorted(str(p) for p in Path(frames_dir).glob("*.jpg"))
    (serve_gradio if name.startswith("gradio") else serve_starlette)(paths, port, fps, name.endswith("fresh"))


if __name__ == "__main__":
    main()
