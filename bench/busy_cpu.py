"""Training and sampling speed while other programs keep cores busy: the automatic thread choice (gan/threads.py)
against fixed 1 and 2 threads and against today's default (the tree before gan/threads.py: torch's own thread
count and OpenMP wait policy), side by side.

    python bench/busy_cpu.py                     # ~10 minutes on 2 cores; JSON in bench/results/, BENCHMARKS.md
    python bench/busy_cpu.py --repeats 1 --states alone,busy1 --no-markdown     # a quick look
    python bench/busy_cpu.py --what studio       # the studio's frames shown in headless Chromium: ~12-15 min

A busy process is a pure-Python spin loop started before the runs of its state and killed after them. Each run
is a fresh `python train.py` (the default config, `train.max_minutes` bounding it, steps/s from step 1 on: the
first step's warm-up left out) or `python generate.py --stream` (steady frames/s, the first chunk left out) in
its own process, or `reelgan-studio` (at its highest --fps, STUDIO_FPS) with a fresh headless Chromium on its
page as bench/studio.py opens it (frames shown per second, from the page's own count, after a warm-up), each
with OMP_NUM_THREADS / MKL_NUM_THREADS / OMP_WAIT_POLICY removed from its environment so the
code under test decides. On a shared machine the 'alone' state is not alone: every run records the load average.
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
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.report import replace_section  # noqa: E402

START, END = "<!-- busy-cpu:start -->", "<!-- busy-cpu:end -->"
STATES = {"alone": 0, "busy1": 1, "busy2": 2, "late1": 1}
LATE = {"late1": 3.0}               # seconds after the command starts that the busy process of this state starts
KINDS = ("train", "generate", "studio")
MODES = {"today": None, "auto": [], "1 thread": ["--threads", "1"], "2 threads": ["--threads", "2"]}
SPIN = "while True:\n    pass\n"
STUDIO_FPS = 120.0                  # the studio's highest --fps: the page paces frames to it (and to its display)
STUDIO_WARMUP = 6                   # frames the page shows before the warm-up's seconds start
STUDIO_CAP = ("The page draws on requestAnimationFrame paced to --fps, so frames shown cannot exceed the lower of "
              "--fps and the display's rate: 60 frames/s in headless Chromium. Hence the second table: frames the "
              "page received per second, the server's output (at most --fps), of which it drops what it cannot "
              "show.")


def base_tree(dest: Path) -> str:
    """Unpack the commit before gan/threads.py was added (HEAD where it is not committed yet) into `dest`."""
    added = subprocess.run(["git", "log", "--diff-filter=A", "--format=%H", "--", "gan/threads.py"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    commit = f"{added[-1]}~1" if added else "HEAD"
    sha = subprocess.run(["git", "rev-parse", "--short", commit], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    archive = subprocess.run(["git", "archive", sha], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return sha


def clean_env(tree: Path) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")}
    env["PYTHONPATH"] = str(tree)                     # the tree's own gan/, not the installed one
    return env


def train_rate(tree: Path, extra: List[str], out: Path, minutes: float, steps: int, timeout: float) -> Dict:
    cmd = [sys.executable, "train.py", "--outdir", str(out), "--no-progress", "--steps", str(steps),
           "--set", "train.log_every=1", "--set", "train.sample_every=0", "--set", f"train.max_minutes={minutes}",
           "--set", f"train.checkpoint_every={steps}", *extra]
    t0 = time.time()
    try:
        proc = subprocess.run(cmd, cwd=tree, env=clean_env(tree), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:               # not one step in the time: the rate is below 1 / timeout
        return {"rate": None, "timeout_s": timeout, "wall_s": round(time.time() - t0, 1)}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:] or ["?"], "wall_s": time.time() - t0}
    recs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    first, last = recs[0], recs[-1]                 # the record after step 1, and the last one
    res = {"steps": last["step"], "wall_s": round(time.time() - t0, 1)}
    if last["step"] > first["step"]:
        res["rate"] = (last["step"] - first["step"]) / (last["time"] - first["time"])
    else:                                           # one step in the time budget: its rate, warm-up included
        res.update(rate=first["step"] / first["time"], estimate="one step, warm-up included")
    start = [line for line in (out / "log.txt").read_text().splitlines() if "reelgan:" in line][:1]
    res["threads"] = re.search(r"threads: .*", start[0]).group(0) if start and "threads:" in start[0] else \
        "torch default"
    return res


def generate_rate(tree: Path, extra: List[str], checkpoint: Path, out: Path, frames: int, timeout: float) -> Dict:
    cmd = [sys.executable, "generate.py", "--checkpoint", str(checkpoint), "--stream", "--frames", str(frames),
           "--stream-to", str(out / "clip.raw"), *extra]
    t0 = time.time()
    try:
        proc = subprocess.run(cmd, cwd=tree, env=clean_env(tree), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"rate": None, "timeout_s": timeout, "wall_s": round(time.time() - t0, 1)}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:] or ["?"], "wall_s": time.time() - t0}
    steady = re.search(r"steady ([0-9.]+) frames/s", proc.stderr)
    threads = re.search(r"^threads: .*$", proc.stderr, re.M)
    return {"rate": float(steady.group(1)) if steady else None, "wall_s": round(time.time() - t0, 1),
            "threads": threads.group(0) if threads else "torch default"}


def studio_rate(tree: Path, extra: List[str], checkpoint: Path, out: Path, windows: int, window: float,
                timeout: float) -> Dict:
    """Frames/s the studio's page shows: the page's count over `windows` windows of `window` s after a warm-up."""
    from bench.studio import start_server, stop_server, wait
    from tests.browser import close_browser, open_browser
    t0 = time.time()
    try:
        proc, url, line = start_server(checkpoint, out / "rec", "--fps", f"{STUDIO_FPS:g}", *extra, tree=tree,
                                       env=clean_env(tree))
    except RuntimeError as e:
        return {"error": str(e).splitlines()[-1:], "wall_s": round(time.time() - t0, 1)}
    driver = None
    try:
        driver = open_browser()
        driver.get(url)
        try:
            wait(driver, f"return window.studio.ready && window.studio.stats.shown >= {STUDIO_WARMUP}", timeout)
        except TimeoutError:
            return {"rate": None, "timeout_s": timeout, "wall_s": round(time.time() - t0, 1)}
        time.sleep(3.0)                             # as bench/studio.py: the page's buffer and pacing settle
        count = "const s = window.studio.stats; return [s.shown, s.received];"
        reads = [(driver.execute_script(count), time.perf_counter())]
        for _ in range(windows):
            time.sleep(window)
            reads.append((driver.execute_script(count), time.perf_counter()))
        errors = driver.execute_script("return window.studio.stats.errors")
    finally:
        if driver is not None:
            close_browser(driver)
        stop_server(proc)
    rate = lambda a, b, k=0: (b[0][k] - a[0][k]) / (b[1] - a[1])                                     # noqa: E731
    threads = re.search(r"threads: \d+ \([^)]*\)", line)
    return {"rate": rate(reads[0], reads[-1]), "windows": [round(rate(a, b), 1) for a, b in zip(reads, reads[1:])],
            "received_per_s": round(rate(reads[0], reads[-1], 1), 1),    # frames the server sent: up to --fps
            "wall_s": round(time.time() - t0, 1), "threads": threads.group(0) if threads else "torch default",
            **({"page_errors": errors[:3]} if errors else {})}


def spinners(n: int, settle: float = 1.0) -> List[subprocess.Popen]:
    procs = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(n)]
    time.sleep(settle if n else 0)                  # running before the next command reads the machine
    return procs


def summary(values: List[Optional[float]]) -> Dict:
    ok = [v for v in values if v is not None]
    if not ok:
        return {"n": 0}
    return {"n": len(ok), "min": min(ok), "median": statistics.median(ok), "max": max(ok)}


def cpu_model() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    name = re.search(r"Model name:\s*(.+)", out)
    return name.group(1).strip() if name else "unknown"


@click.command()
@click.option("--states", default="alone,busy1,busy2", show_default=True,
              help="Comma-separated: alone, busy1, busy2, late1 (one busy process from 3 s into each run).")
@click.option("--modes", default=",".join(MODES), show_default=True, help="Comma-separated: " + ", ".join(MODES))
@click.option("--repeats", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--timeout", type=float, default=90, show_default=True, help="Seconds before a run counts as too slow.")
@click.option("--train-minutes", type=float, default=0.1, show_default=True,
              help="train.max_minutes of each training run (it stops after the step that passes it).")
@click.option("--train-steps", type=click.IntRange(min=2), default=12, show_default=True)
@click.option("--frames", type=click.IntRange(min=32), default=1024, show_default=True,
              help="generate.py frames (the steady rate leaves out the first chunk of 16).")
@click.option("--studio-windows", type=click.IntRange(min=1), default=3, show_default=True,
              help="Studio: windows of frames shown per run, after the warm-up.")
@click.option("--studio-window", type=click.FloatRange(min=0.5), default=5.0, show_default=True,
              help="Studio: seconds per window.")
@click.option("--what", default="train,generate", show_default=True,
              help="Comma-separated: train, generate, studio (one alone writes its own JSON and BENCHMARKS.md table).")
@click.option("--markdown/--no-markdown", default=True, show_default=True, help="Refresh BENCHMARKS.md.")
def main(states, modes, repeats, timeout, train_minutes, train_steps, frames, studio_windows, studio_window, what,
         markdown):
    states, modes, whats = states.split(","), modes.split(","), what.split(",")
    for name, given, known in (("--states", states, STATES), ("--modes", modes, MODES), ("--what", whats, KINDS)):
        if set(given) - set(known):
            raise click.BadParameter(f"{', '.join(sorted(set(given) - set(known)))}: choose from {', '.join(known)}",
                                     param_hint=name)
    tag = "" if set(whats) == {"train", "generate"} else "-" + "-".join(whats)
    t_start = time.time()
    doc = {"command": "python bench/busy_cpu.py " + " ".join(sys.argv[1:]), "cpu": cpu_model(),
           "cores": os.cpu_count(), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "loadavg_start": list(os.getloadavg()), "repeats": repeats, "timeout_s": timeout,
           "train_minutes": train_minutes, "frames": frames, "runs": []}
    if "studio" in whats:
        doc.update(studio_fps=STUDIO_FPS, studio_windows=studio_windows, studio_window_s=studio_window)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "base").mkdir()
        doc["base_commit"] = base_tree(tmp / "base")
        trees = {m: (tmp / "base" if MODES[m] is None else ROOT) for m in modes}
        ck = tmp / "ck"             # a default-config checkpoint for generate.py and the studio (1 step), by the
                                    # tree both read
        subprocess.run([sys.executable, "train.py", "--outdir", str(ck), "--no-progress", "--steps", "1",
                        "--set", "train.sample_every=0"], cwd=tmp / "base",
                       env=dict(os.environ, PYTHONPATH=str(tmp / "base"), OMP_NUM_THREADS="1"), check=True,
                       capture_output=True)
        checkpoint = ck / "checkpoints" / "latest.pt"
        n = 0
        for state in states:
            procs = spinners(0 if state in LATE else STATES[state])
            try:
                for r in range(repeats):
                    order = modes[r % len(modes):] + modes[:r % len(modes)]     # rotate: no mode always first
                    for mode in order:
                        for what in whats:
                            n += 1
                            out = tmp / f"run{n}"
                            out.mkdir()
                            load = os.getloadavg()[0]
                            args = MODES[mode] or []
                            late = threading.Timer(LATE[state], lambda: procs.extend(spinners(STATES[state], 0))) \
                                if state in LATE else None
                            if late is not None:
                                late.start()
                            if what == "train":
                                res = train_rate(trees[mode], args, out, train_minutes, train_steps, timeout)
                            elif what == "generate":
                                res = generate_rate(trees[mode], args, checkpoint, out, frames, timeout)
                            else:
                                res = studio_rate(trees[mode], args, checkpoint, out, studio_windows, studio_window,
                                                  timeout)
                            if late is not None:
                                late.cancel()
                                late.join()
                                for p in procs:
                                    p.kill()
                                    p.wait()
                                procs.clear()
                            res.update(state=state, mode=mode, what=what, repeat=r, loadavg_1min=load)
                            doc["runs"].append(res)
                            print(json.dumps(res), flush=True)
            finally:
                for p in procs:
                    p.kill()
                    p.wait()
    doc["loadavg_end"] = list(os.getloadavg())
    doc["minutes"] = round((time.time() - t_start) / 60, 1)
    doc["table"] = {}
    for what in whats + (["studio received"] if "studio" in whats else []):
        key = "received_per_s" if what == "studio received" else "rate"
        for state in states:
            for mode in modes:
                runs = [r for r in doc["runs"] if (r["what"], r["state"], r["mode"]) == (what.split()[0], state, mode)]
                cell = summary([r.get(key) for r in runs])
                if any("timeout_s" in r for r in runs):
                    cell["timeouts"] = timeout
                cell["estimates"] = sum("estimate" in r for r in runs)
                doc["table"][f"{what}|{state}|{mode}"] = cell
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"busy_cpu{tag}-{doc['date'][:10]}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)} ({doc['minutes']} min)")
    if markdown:
        start, end = (START, END) if not tag else (START.replace("busy-cpu", "busy-cpu" + tag),
                                                   END.replace("busy-cpu", "busy-cpu" + tag))
        replace_section(ROOT / "BENCHMARKS.md", start, end, "Busy CPU", render(doc, path.relative_to(ROOT)))


def _cell(s: Dict, digits: int, first: int = 1, what: str = "no step") -> str:
    """Median (min-max); for runs that all timed out, the bound: fewer than `first` in the timeout."""
    if s.get("timeouts") and not s.get("n"):
        return f"< {first / s['timeouts']:.{digits + 1}f} ({what} in {s['timeouts']:g} s)"
    if not s.get("n"):
        return "-"
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def render(doc: Dict, path) -> str:
    states = list(dict.fromkeys(r["state"] for r in doc["runs"]))
    modes = list(dict.fromkeys(r["mode"] for r in doc["runs"]))
    out = [f"_Generated by `{doc['command'].strip()}` on {doc['date']} ({doc['minutes']} min). Machine: {doc['cpu']}, "
           f"{doc['cores']} cores, shared with other engineers' jobs: load average {doc['loadavg_start']} at the "
           f"start, {doc['loadavg_end']} at the end, so 'alone' means no busy process of the bench's own. Today = the "
           f"tree at {doc['base_commit']} (torch's default threads and OpenMP wait policy). Raw results: `{path}`._",
           ""]
    whats = {r["what"] for r in doc["runs"]}
    notes = [f"Median (min-max) of {doc.get('repeats', 2)} repeats; each run's own 1-minute load average is in the "
             f"JSON. A run not done in {doc.get('timeout_s', 90):g} s counts as too slow."]
    if "train" in whats:
        notes.append(f"Training: `train.max_minutes={doc.get('train_minutes', 0.1)}`; a run that finished one step "
                     "only in it counts that step, warm-up included (cells marked *).")
    if "generate" in whats:
        notes.append(f"Sampling: {doc.get('frames', 64)} frames of seed 0.")
    if "studio" in whats:
        notes.append(f"Studio: `reelgan-studio --fps {doc['studio_fps']:g}` (its highest) on a default-config "
                     f"checkpoint, a fresh headless Chromium on its page as `bench/studio.py` opens it; frames shown "
                     f"per second by the page's own count over {doc['studio_windows']} windows of "
                     f"{doc['studio_window_s']:g} s, after {STUDIO_WARMUP} frames and 3 s of warm-up (a run that did "
                     f"not show {STUDIO_WARMUP} in the time counts as too slow). {STUDIO_CAP}")
    out += [" ".join(notes), ""]
    for what, unit, digits in (("train", "`python train.py` steps/s", 3), ("generate", "`generate.py --stream` "
                                                                           "frames/s", 1),
                               ("studio", "studio frames shown/s", 1),
                               ("studio received", "studio frames received/s", 1)):
        if what.split()[0] not in whats:
            continue
        too_slow = (STUDIO_WARMUP, f"not {STUDIO_WARMUP} frames shown") if what != "train" else (1, "no step")
        out += [f"| {unit} | " + " | ".join(modes) + " | auto / best fixed | auto / today |",
                "|---" * (len(modes) + 3) + "|"]
        for state in states:
            cells = {m: doc["table"].get(f"{what}|{state}|{m}", {}) for m in modes}
            fixed = [cells[m]["median"] for m in ("1 thread", "2 threads") if cells.get(m, {}).get("n")]
            auto, today = (cells.get(m, {}).get("median") for m in ("auto", "today"))   # None: not measured
            ratio = f"{auto / max(fixed):.2f}" if fixed and auto else "-"
            vs_today = f"{auto / today:.2f}" if auto and today else "-"
            label = {"alone": "alone", "busy1": "beside 1 busy process", "busy2": "beside 2 busy processes",
                     "late1": f"1 busy process from {LATE['late1']:g} s in"}[state]
            row = [_cell(cells[m], digits, *too_slow) + ("*" if cells[m].get("estimates") else "") for m in modes]
            out.append(f"| {label} | " + " | ".join(row) + f" | {ratio} | {vs_today} |")
        out.append("")
    threads = {(r["state"], r["mode"]): r.get("threads") for r in doc["runs"] if r["what"] == doc["runs"][0]["what"]}
    out.append("Thread lines the automatic choice printed (the last run of each state): " + "; ".join(
        f"{s}/{m}: `{t}`" for (s, m), t in threads.items() if m == "auto") + ".")
    return "\n".join(out)


if __name__ == "__main__":
    main()
