"""reelgan speed benchmarks (not tests): sampler frames/s, achieved GFLOP/s against the machine's matmul
ceilings, training steps/s eager vs compiled, compile times, peak memory, and the int8 (PT2E) attempt.

\b
  python bench/run.py --quick        # a subset, ~5 minutes on 2 cores
  python bench/run.py                # the full table, < 25 minutes on 2 quiet cores
Writes bench/results/<date>-<full|quick>.json and refreshes the Speed section of BENCHMARKS.md (between
<!-- speed:start --> and <!-- speed:end -->). Each cell runs in its own process (bench/cells.py) with a
fresh inductor cache per run of this script, so compile times are cold-cache times.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.report import update_markdown  # noqa: E402

# Batch = frames rendered per generator call (one video, chunk = batch); targets are for 2 CPU cores.
TARGETS = {"sgv128_b1_fps": 7.2, "sgv128_b4_fps": 7.8, "sgv_ref_b1_fps": 2.4, "sgv_ref_b4_fps": 2.6,
           "lite128_stream_fps": 30.0, "train_speedup": 1.3}


def plan(quick: bool) -> List[Dict]:
    """The cells, most important first (a time budget cuts from the end)."""
    S = lambda config, res, prec, comp, batch: dict(kind="sampler", config=config, res=res, precision=prec,
                                                     compile=comp, batch=batch)
    cells: List[Dict] = [dict(kind="matmul")]
    if quick:
        cells += [S("stylegan_v128", 128, "fp32", False, 1), S("stylegan_v128", 128, "bf16", False, 1),
                  S("stylegan_v128", 128, "bf16", True, 1),
                  S("lite", 128, "fp32", False, 1), S("lite", 128, "bf16", False, 1),
                  S("lite", 128, "bf16", False, 4),
                  dict(kind="stream", config="lite", res=128, precision="bf16", compile=False, batch=1, frames=48),
                  dict(kind="train", config="default", compile=False),
                  S("default", 64, "fp32", False, 1), S("default", 64, "fp32", False, 16),
                  dict(kind="int8", config="lite", res=128, batch=1)]
        return cells
    # Targets first: StyleGAN-V-shaped G at 128 px, lite streamed, training eager vs compiled. Compiles cost
    # ~40-90 s per sampler graph and minutes for the training step, so the grid compiles sparingly.
    for b in (1, 4):
        cells += [S("stylegan_v128", 128, "fp32", False, b), S("stylegan_v128", 128, "bf16", False, b),
                  S("stylegan_v128", 128, "bf16", True, b)]
    cells += [dict(kind="stream", config="lite", res=128, precision=p, compile=c, batch=1, frames=96)
              for p, c in (("fp32", False), ("bf16", False), ("bf16", True))]
    cells += [dict(kind="train", config="default", compile=False), dict(kind="train", config="default", compile=True)]
    # The CPU default's layered G (sprites composited per frame: no convolutions per frame).
    cells += [S("default", 64, "fp32", False, 1), S("default", 64, "bf16", False, 1),
              S("default", 64, "fp32", False, 16),
              dict(kind="stream", config="default", res=64, precision="fp32", compile=False, batch=16, frames=256)]
    # The grid: lite and StyleGAN-V-shaped at 64 / 128 / 256 px; eager fp32 / bf16 over batches; compiled.
    for res in (64, 128, 256):
        for b in (1, 8):
            cells += [S("lite", res, "fp32", False, b), S("lite", res, "bf16", False, b)]
        cells += [S("lite", res, "bf16", True, 1)]
    cells += [S("lite", 128, "fp32", True, 1), S("lite", 128, "bf16", True, 8)]
    cells += [dict(kind="int8", config="lite", res=128, batch=1)]
    for config, res in (("stylegan_v128", 64), ("stylegan_v256", 256)):
        cells += [S(config, res, "fp32", False, 1), S(config, res, "bf16", False, 1), S(config, res, "bf16", True, 1)]
    cells += [S("stylegan_v128", 128, "fp32", True, 1)]
    return cells


def machine_info() -> Dict:
    model = platform.processor() or "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
        flags = next((l for l in out.splitlines() if l.startswith("Flags:")), "")
        isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f" {f}" in flags]
    except (OSError, subprocess.SubprocessError):
        isa = []
    import torch
    return {"cpu": model, "cores": os.cpu_count(), "isa": isa, "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


def run_cell(spec: Dict, env: Dict, timeout: float) -> Dict:
    cmd = [sys.executable, str(ROOT / "bench" / "cells.py"), json.dumps(spec)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=str(ROOT))
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s", "spec": spec,
                "wall_s": time.perf_counter() - t0}
    for line in proc.stdout.splitlines():
        if line.startswith("CELL_RESULT "):
            return json.loads(line[len("CELL_RESULT "):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
    return {"ok": False, "error": f"cell process failed: {tail[0][:300]}", "spec": spec,
            "wall_s": time.perf_counter() - t0}


def label(spec: Dict) -> str:
    if spec["kind"] in ("sampler", "stream"):
        return (f"{spec['kind']} {spec['config']} {spec['res']}px {spec['precision']} "
                f"{'compiled' if spec['compile'] else 'eager'} b{spec['batch']}")
    if spec["kind"] == "train":
        return f"train {spec['config']} {'compiled' if spec['compile'] else 'eager'}"
    if spec["kind"] == "int8":
        return f"int8 {spec['config']} {spec['res']}px b{spec['batch']}"
    return spec["kind"]


@click.command(help=__doc__)
@click.option("--quick", is_flag=True, help="A fast subset (smoke test of the bench; ~5 minutes on 2 cores; "
              "no compiled training step).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch threads [default: all cores].")
@click.option("--budget-min", type=click.FloatRange(min=1), default=24.0, show_default=True,
              help="Stop starting new cells after this many minutes (the rest are listed as skipped).")
@click.option("--outdir", type=click.Path(file_okay=False), default=str(ROOT / "bench" / "results"),
              show_default=True, help="Where the JSON results go.")
@click.option("--markdown", type=click.Path(dir_okay=False), default=str(ROOT / "BENCHMARKS.md"), show_default=True,
              help="Markdown file whose Speed section is refreshed ('' to skip).")
@click.option("--only", type=str, default=None, help="Run only cells whose label contains this text.")
def main(quick: bool, threads: Optional[int], budget_min: float, outdir: str, markdown: str, only: Optional[str]):
    started = dt.datetime.now().astimezone()
    repeats, min_time = (3, 0.5) if quick else (5, 1.0)
    cells = plan(quick)
    if only:
        cells = [c for c in cells if only in label(c)]
    env = dict(os.environ)
    cache = tempfile.TemporaryDirectory(prefix="reelgan-bench-inductor-")
    env["TORCHINDUCTOR_CACHE_DIR"] = cache.name        # cold compiles: honest compile times
    env.setdefault("PYTHONWARNINGS", "ignore")
    results, t_start = [], time.perf_counter()
    for i, spec in enumerate(cells):
        spec = {**spec, "repeats": repeats, "min_time": min_time, "threads": threads}
        elapsed = time.perf_counter() - t_start
        if elapsed > budget_min * 60:
            results.append({"ok": False, "skipped": True, "error": "time budget spent", "spec": spec})
            continue
        res = run_cell(spec, env, timeout=max(60.0, budget_min * 60 - elapsed + 30))
        results.append(res)
        click.echo(f"[{i + 1}/{len(cells)} {(time.perf_counter() - t_start) / 60:5.1f} min] {label(spec):48s} "
                   f"{_brief(res)}", err=True)
    cache.cleanup()
    command = "python bench/run.py" + (" --quick" if quick else "") + (f" --threads {threads}" if threads else "")
    doc = {"command": command,
           "date": started.isoformat(timespec="seconds"), "mode": "quick" if quick else "full",
           "machine": machine_info(), "targets": TARGETS, "total_min": (time.perf_counter() - t_start) / 60,
           "repeats": repeats, "min_run_s": min_time, "results": results}
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{started.strftime('%Y%m%d-%H%M%S')}-{doc['mode']}.json"
    path.write_text(json.dumps(doc, indent=1))
    click.echo(f"wrote {path} ({doc['total_min']:.1f} min)", err=True)
    if markdown:
        update_markdown(Path(markdown), doc, path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
        click.echo(f"refreshed the Speed section of {markdown}", err=True)


def _brief(res: Dict) -> str:
    if not res.get("ok"):
        return "FAILED: " + res.get("error", "?")
    if "stage" in res:                      # the int8 cell
        ratios = ", ".join(f"{k} {v['median']:.2f}x" for k, v in res.get("ratio_to_best_float", {}).items())
        return f"int8 stage {res['stage']} {ratios or res.get('compile_error', res.get('error', ''))[:80]}"
    if "fps" in res:
        f = res["fps"]
        return f"{f['median']:.2f} frames/s ({f['min']:.2f}-{f['max']:.2f}), load {res.get('loadavg_end', 0):.1f}"
    if "steps_per_s" in res:
        return f"{res['steps_per_s']['median']:.2f} steps/s, first step {res['first_step_s']:.1f} s"
    if "gflops" in res:
        return ", ".join(f"{k} {v['median']:.0f} GFLOP/s" for k, v in res["gflops"].items())
    return "ok"


if __name__ == "__main__":
    main()
