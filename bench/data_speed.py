"""Training from your own clips against the built-in data, side by side in one run (not a test).

Measures, on a folder of >= 1000 mp4 clips drawn by another renderer (bench/footage.py):
- preparing it (decode once into memory-mapped frames) from a cold cache;
- a second start: seconds spent on the data before the first step (cache found, index read, first batch);
- training steps/s of the default config from the folder and from the built-in digits, alternating the two
  (each run its own process) so that load on the machine falls on both alike; reported as a ratio.

    python bench/data_speed.py                       # 2000 clips, 3 repeats, ~10 minutes on 2 cores
    python bench/data_speed.py --clips 1000 --steps 40 --repeats 2 --no-markdown
Writes bench/results/data-<date>.json and the section between <!-- data:start --> and <!-- data:end --> of
BENCHMARKS.md.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.report import replace_section  # noqa: E402

START, END = "<!-- data:start -->", "<!-- data:end -->"


def _stats(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs), "all": xs}


def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _py(code: str, env) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return out.stdout


def prepare_seconds(folder: Path, cache: Path, resolution: int) -> float:
    shutil.rmtree(cache, ignore_errors=True)
    env = dict(os.environ, REELGAN_CACHE=str(cache))
    code = ("import time; t=time.perf_counter(); from gan.data.prepared import cached_prepare; "
            f"cached_prepare({str(folder)!r}, {resolution}, progress=False); print(time.perf_counter()-t)")
    return float(_py(code, env).strip().splitlines()[-1])


def second_start_seconds(folder: Path, cache: Path) -> float:
    """What a restarted train.py spends on data before step 0 (after Python has imported torch): list and check
    the source against the cache, open the prepared frames, infer the settings, load the default's first batch."""
    env = dict(os.environ, REELGAN_CACHE=str(cache))
    code = ("import time\n"
            "from gan.config import load_config\n"
            "from gan.data import build_dataset, infer_settings\n"
            "t = time.perf_counter()\n"
            f"cfg = load_config('configs/default.yaml', {{'data': {{'source': {str(folder)!r}}}}})\n"
            "ds = build_dataset(cfg.data, seed=0); infer_settings(cfg, ds)\n"
            "import torch; batch = [ds[i] for i in range(cfg.train.batch)]\n"
            "print(time.perf_counter()-t)")
    return float(_py(code, env).strip().splitlines()[-1])


def steps_per_s(source: str, steps: int, cache: Path, threads: int, workdir: Path) -> float:
    """Median logged steps/s of one default-config run, the first logging interval (warm-up) left out."""
    out = workdir / f"run-{time.time_ns()}"
    env = dict(os.environ, REELGAN_CACHE=str(cache), OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, "train.py", "--data", source, "--outdir", str(out), "--steps", str(steps), "--no-progress",
           "--set", "train.log_every=10", "--set", "train.sample_every=0", "--set", f"train.checkpoint_every={steps}",
           "--set", "train.max_minutes=null"]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(res.stderr[-2000:])
    rates = [json.loads(l)["perf/steps_per_s"] for l in (out / "log.jsonl").read_text().splitlines()
             if "perf/steps_per_s" in l]
    shutil.rmtree(out, ignore_errors=True)
    return statistics.median(rates[1:] or rates)


def decoder_ms(folder: Path, clips: int, repeats: int) -> dict:
    """Milliseconds to decode and resize one clip to 64 px: PyAV in-process (what prepare uses) against one
    ffmpeg subprocess per clip (imageio-ffmpeg, the reader before) and torchcodec (where it loads)."""
    from gan.data.prepared import _decode_video_file
    from gan.video_io import read_video
    files = sorted(folder.glob("*.mp4"))[:clips]
    arms = {"pyav (in-process)": lambda p: _decode_video_file(str(p), 64),
            "imageio-ffmpeg (subprocess)": lambda p: read_video(p, size=64)}
    try:
        from torchcodec.decoders import VideoDecoder
        arms["torchcodec"] = lambda p: VideoDecoder(str(p)).get_frames_in_range(0, 16)
    except Exception as e:  # noqa: BLE001 - reported, not fatal: it needs FFmpeg's shared libraries on the system
        arms["torchcodec"] = str(e).strip().splitlines()[0][:120]
    out = {}
    for _ in range(repeats):
        for name, fn in arms.items():
            if isinstance(fn, str):
                out[name] = fn
                continue
            t = time.perf_counter()
            for p in files:
                fn(p)
            out.setdefault(name, []).append((time.perf_counter() - t) / len(files) * 1000)
    return {k: (_stats(v) if isinstance(v, list) else {"unavailable": v}) for k, v in out.items()}


def render_section(doc) -> str:
    r = doc["results"]
    ratio = r["steps_per_s_folder"]["median"] / r["steps_per_s_builtin"]["median"]
    fmt = lambda s, d=2: f"{s['median']:.{d}f} ({s['min']:.{d}f}-{s['max']:.{d}f})"
    lines = [
        f"`{doc['command']}` on {doc['date']}, {doc['machine']} ({doc['cpu']}, {doc['cores']} cores, torch "
        f"{doc['torch']}). Folder: {doc['clips']} mp4 clips from `bench/footage.py --kind digits` (another renderer: "
        f"96 px RGB, grey content, 16 frames), trained at 64 px. Median (min-max) of {doc['repeats']} runs; the two "
        f"data sources alternate, each run its own process, {doc['steps']} steps of `configs/default.yaml`.",
        "",
        "| what | value | target |",
        "|---|---|---|",
        f"| steps/s, built-in digits | {fmt(r['steps_per_s_builtin'])} | |",
        f"| steps/s, mp4 folder (prepared, memory-mapped) | {fmt(r['steps_per_s_folder'])} | |",
        f"| ratio folder / built-in (medians) | **{ratio:.2f}x** | >= 0.9x |",
        f"| preparing the folder, cold cache (s) | {fmt(r['prepare_s'], 1)} | <= 60 s |",
        f"| second start: data time before the first step (s) | {fmt(r['second_start_s'], 2)} | <= 5 s |",
    ]
    dec = r.get("decoder_ms", {})
    if dec:
        lines += ["", "Decoding one clip (16 frames, 96 px -> 64 px), ms, same files, same run:", "",
                  "| decoder | ms per clip |", "|---|---|"]
        for name, st in dec.items():
            lines.append(f"| {name} | {fmt(st, 1) if 'median' in st else 'not usable here: ' + st['unavailable']} |")
    if doc.get("note"):
        lines += ["", doc["note"]]
    return "\n".join(lines)


@click.command()
@click.option("--clips", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--steps", type=click.IntRange(min=20), default=60, show_default=True, help="Steps per training run.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=os.cpu_count() or 1, show_default=True)
@click.option("--folder", type=click.Path(file_okay=False), default=None,
              help="Existing footage folder [default: made in a temp folder].")
@click.option("--note", default="", help="A line to print under the table (e.g. what else ran on the machine).")
@click.option("--markdown/--no-markdown", default=True, show_default=True)
def main(clips, steps, repeats, threads, folder, note, markdown):
    """Own-clips data path against the built-in data; see the module docstring."""
    import torch
    work = Path(tempfile.mkdtemp(prefix="reelgan-data-bench-"))
    try:
        src = Path(folder) if folder else work / "footage"
        if not folder:
            subprocess.run([sys.executable, "bench/footage.py", "--kind", "digits", "--out", str(src),
                            "--num", str(clips)], cwd=ROOT, check=True)
        n = len(list(src.glob("*.mp4")))
        cache = work / "cache"
        decoders = decoder_ms(src, 100, repeats)
        prep = [prepare_seconds(src, cache, 64) for _ in range(repeats)]        # leaves a warm cache behind
        second = [second_start_seconds(src, cache) for _ in range(repeats)]
        builtin, own = [], []
        for _ in range(repeats):
            builtin.append(steps_per_s("digits", steps, cache, threads, work))
            own.append(steps_per_s(str(src), steps, cache, threads, work))
        doc = {
            "date": dt.date.today().isoformat(), "machine": platform.node() or "this machine", "cpu": _cpu(),
            "cores": os.cpu_count(), "torch": torch.__version__, "clips": n, "steps": steps, "repeats": repeats,
            "command": "python bench/data_speed.py " + " ".join(sys.argv[1:]), "note": note,
            "results": {"prepare_s": _stats(prep), "second_start_s": _stats(second),
                        "steps_per_s_builtin": _stats(builtin), "steps_per_s_folder": _stats(own),
                        "decoder_ms": decoders},
        }
        out = ROOT / "bench" / "results" / f"data-{dt.date.today().isoformat()}.json"
        out.write_text(json.dumps(doc, indent=1))
        click.echo(render_section(doc))
        if markdown:
            replace_section(ROOT / "BENCHMARKS.md", START, END, "Training from your own clips", render_section(doc))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
