"""The training room's cost: steps/s of train.py's loop vs the same run driven by the room (not a test).

Both sides train the same config from scratch into fresh run folders, in this process, one after the other, for
`--rounds` rounds (alternating which goes first). train.py's side is `gan.training.train()` (the loop train.py
calls) with a hook that notes each step's end; the room's side is `gan.studio.trainroom.Trainer` (its default
visuals cadence) while a poller thread asks for the page's state every 0.5 s and JSON-encodes it, as the page
does. Steps/s is taken from the end of step `--warmup` to the last step (setup and the first steps left out).

    python bench/trainroom.py                                   # configs/tiny.yaml, 60 steps, 3 rounds
    python bench/trainroom.py --config none --steps 30          # the CPU default (digits, 64 px)
    python bench/trainroom.py --screenshot docs/studio_train.png    # the README's picture only (CPU default)
Writes bench/results/trainroom-<date>.json and the BENCHMARKS.md block "trainroom" in the Studio section.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.report import replace_section  # noqa: E402
from bench.studio_framework import machine  # noqa: E402

MARKERS = "<!-- trainroom-{}:start -->", "<!-- trainroom-{}:end -->"     # one block per config


class _Clock:
    every = 1

    def __init__(self):
        self.times = []

    def __call__(self, run, stats):
        self.times.append(time.perf_counter())


def rate(times, warmup):
    t = times[warmup - 1:]
    return (len(t) - 1) / (t[-1] - t[0])


def time_train(cfg, outdir, warmup):
    from gan.training import train
    clock = _Clock()
    train(cfg, outdir, progress=False, hooks=[clock])
    return rate(clock.times, warmup)


def time_room(cfg, outdir, warmup):
    from gan.studio.trainroom import Trainer
    t = Trainer(cfg, outdir).start()
    done = threading.Event()

    def poll():                          # what the page asks for, as often as the page asks
        since, visual = 0, -1
        while not done.is_set():
            state = t.state(since, visual)
            json.dumps(state)
            since += len(state["history"])
            visual = state["visual_version"]
            time.sleep(0.5)
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    while t.status != "finished" and t.status != "error":
        time.sleep(0.05)
    done.set()
    visuals = t.visual_version
    t.stop()
    t.join()
    if t.status == "error":
        raise RuntimeError(t.message)
    ends = [h["t"] for h in t.history]
    return rate(ends, warmup), visuals


def take_screenshot(path: Path, config, steps: int) -> None:
    import re
    import subprocess

    from tests import browser
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-m", "gan.studio.cli", "--train", "--port", "0", "--outdir", str(Path(d) / "run")]
        cmd += ["--config", config] if config else []
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        url = None
        for line in proc.stdout:
            m = re.search(r"http://127\.0\.0\.1:\d+/\?token=[\w-]+", line)   # the URL with its token
            if m:
                url = m.group(0)
                break
        driver = browser.open_browser(1280, 1000)
        try:
            driver.get(url)
            while not driver.execute_script(f"return window.studio.points >= {steps} && "
                                            "window.studio.visualVersion >= 2"):
                time.sleep(0.5)
            time.sleep(1.0)
            driver.save_screenshot(str(path))
        finally:
            driver.quit()
            proc.terminate()
            proc.communicate(timeout=120)
    print(f"wrote {path}")


@click.command()
@click.option("--config", default=str(ROOT / "configs" / "tiny.yaml"), show_default=True,
              help="YAML preset; 'none': the CPU default.")
@click.option("--steps", default=60, show_default=True)
@click.option("--warmup", default=5, show_default=True)
@click.option("--rounds", default=3, show_default=True)
@click.option("--screenshot", type=click.Path(dir_okay=False), default=None,
              help="Only take a screenshot of the room's page (headless Chromium) after --steps steps.")
def main(config, steps, warmup, rounds, screenshot):
    import torch
    if screenshot:
        return take_screenshot(Path(screenshot), None if config == "none" else config, steps)

    from gan.config import load_config
    cfg_path = None if config == "none" else config
    over = {"train": {"steps": steps, "checkpoint_every": max(1, steps // 2), "sample_every": 0,
                      "max_minutes": None}}
    mach = machine()
    result = {"train": [], "room": [], "visuals": []}
    for r in range(rounds):
        for side in (("train", "room") if r % 2 == 0 else ("room", "train")):
            with tempfile.TemporaryDirectory() as d:
                cfg = load_config(cfg_path, over)
                if side == "train":
                    result["train"].append(time_train(cfg, Path(d) / "run", warmup))
                else:
                    v, n = time_room(cfg, Path(d) / "run", warmup)
                    result["room"].append(v)
                    result["visuals"].append(n)
            print(side, f"{result[side][-1]:.3f} steps/s", flush=True)
    med = {k: statistics.median(result[k]) for k in ("train", "room")}
    ratio = med["room"] / med["train"]
    load_end = [round(v, 2) for v in os.getloadavg()]
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    name = cfg.name
    doc = {"date": now, "machine": mach, "load_end": load_end, "config": name, "steps": steps, "warmup": warmup,
           "torch": torch.__version__, "threads": torch.get_num_threads(), **result, "ratio": ratio}
    out = ROOT / "bench" / "results" / f"trainroom-{name}-{now[:10]}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))

    shown = config if config == "none" else os.path.relpath(config, ROOT)

    def fmt(v):
        return f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})"
    body = (f"#### Training room vs train.py, config {name} (`bench/trainroom.py`)\n\n"
            f"_Generated by `python bench/trainroom.py --config {shown} "
            f"--steps {steps} --rounds {rounds}` on {now}. Machine: {mach['cpu']}, {mach['cores']} cores, load "
            f"average {mach['loadavg']} at the start, {load_end} at the end (shared machine); torch {torch.__version__},"
            f" {torch.get_num_threads()} torch thread(s). Raw results: `{out.relative_to(ROOT)}`._\n\n"
            f"Config `{name}`, {steps} steps from scratch per round, steps/s from step {warmup} to the last, "
            f"median (min-max) of {rounds} rounds; the room with its default visuals cadence and a poller asking "
            f"for the page's state every 0.5 s (no browser).\n\n"
            f"| loop | steps/s | visual updates per run |\n|---|---|---|\n"
            f"| `train()` (train.py) | {fmt(result['train'])} | - |\n"
            f"| training room | {fmt(result['room'])} | {statistics.median(result['visuals'])} |\n\n"
            f"Room / train.py (medians): **{ratio:.3f}** (target >= 0.85: "
            f"{'met' if ratio >= 0.85 else 'not met'}). Both sides run the same step and hooks; the room adds its "
            f"visuals (within 3% of its time) and the page's polls, so a difference inside the rounds' min-max "
            f"spread is the shared machine's noise, not the room.")
    start, end = (m.format(name) for m in MARKERS)
    md = ROOT / "BENCHMARKS.md"
    text = md.read_text()
    if start not in text:                              # a new config's block goes after the room's others
        after = text.find("\n## ", text.find("<!-- studio:end -->"))       # the next section's heading
        cut = text.rfind(":end -->", 0, after if after >= 0 else len(text)) + len(":end -->")
        md.write_text(text[:cut] + f"\n\n{start}\n{end}" + text[cut:])
    replace_section(md, start, end, "Studio", body)
    print(f"ratio {ratio:.3f}")


if __name__ == "__main__":
    main()
