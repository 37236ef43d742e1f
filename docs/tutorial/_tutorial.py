"""What the tutorial chapters share: run reelgan's commands as you would type them, measure clips, draw figures.

Every chapter script (`NN_name.py`) takes `--short` (a few steps at 16 px: seconds, what CI runs), `--runs DIR`
(run folders, default runs/tutorial) and `--figures DIR` (default docs/tutorial/figures; with --short,
DIR/figures under --runs, so a short run never replaces the committed figures).
"""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import click
import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:                   # run from a checkout: train.py / generate.py / gan import from here
    sys.path.insert(0, str(ROOT))

from gan.cli_utils import Command               # noqa: E402
from gan.config import Config                   # noqa: E402
from gan.video_io import make_grid, to_uint8, write_gif   # noqa: E402

SHORT = ["--steps", "4", "--set", "data.resolution=16", "--set", "train.batch=4", "--set", "train.log_every=1",
         "--set", "train.checkpoint_every=2", "--no-progress"]   # what --short adds to every training command


def chapter(func):
    """The chapter's command line: --short, --runs, --figures (see the module docstring)."""
    func = click.option("--figures", type=click.Path(file_okay=False), default=None,
                        help="Where figures and numbers go [default: docs/tutorial/figures; --short: "
                             "RUNS/figures].")(func)
    func = click.option("--runs", type=click.Path(file_okay=False), default="runs/tutorial", show_default=True,
                        help="Where the chapter's run folders go.")(func)
    func = click.option("--short", is_flag=True, help="A few training steps at 16 px (seconds): checks that the "
                                                      "chapter runs, nothing more.")(func)
    return click.command(cls=Command, help=func.__doc__)(func)


def folders(short: bool, runs: str, figures: Optional[str]):
    runs = Path(runs)
    figures = Path(figures) if figures else (runs / "figures" if short else HERE / "figures")
    figures.mkdir(parents=True, exist_ok=True)
    return runs, figures


def run(script: str, *args) -> object:
    """Print `$ python SCRIPT ARGS` and run that command (train.py, generate.py) in this process."""
    import generate
    import train
    args = [str(a) for a in args]
    if script == "generate.py" and "--stream" not in args:
        args.append("--force")                   # a chapter run again draws its own clips again (in its run folder)
    print("$ " + shlex.join(["python", script, *args]), flush=True)
    cli = {"train.py": train.cli, "generate.py": generate.cli}[script]
    return cli.main(args=args, prog_name=script, standalone_mode=False)


def train_run(outdir: Path, config: str, short: bool, *extra: str) -> float:
    """`python train.py --config CONFIG --outdir OUTDIR EXTRA` (plus the --short settings); returns the training
    time the run logged, in seconds. A finished run with the same settings is reused, an unfinished one resumed
    (`--resume`); a run with other settings in OUTDIR stops the chapter (it is never overwritten)."""
    config = config if Path(config).is_file() else str(ROOT / config)   # started outside the repository root
    args = ["--config", config, "--outdir", outdir, *extra, *(SHORT if short else [])]
    if (outdir / "config.json").is_file() and any((outdir / "checkpoints").glob("*.pt")):
        saved = json.loads((outdir / "config.json").read_text())
        saved.pop("_run", None)
        wanted = _resolved_config(args)
        for section, key, auto in INFERRED:              # read off the data at the start: the run holds the value
            if wanted.get(section, {}).get(key) == auto and key in saved.get(section, {}):
                wanted[section][key] = saved[section][key]
        if saved != wanted:
            raise click.ClickException(f"{outdir} holds a run with other settings (a --short run, or an older "
                                       f"version of this chapter); delete it or pass another --runs folder")
        if log_records(outdir)[-1]["step"] >= wanted["train"]["steps"]:
            print(f"(reusing the finished run in {outdir})")
            return float(log_records(outdir)[-1]["time"])
        args.append("--resume")
    run("train.py", *args)
    return float(log_records(outdir)[-1]["time"])


# Config fields left to the data ('auto' values) that a run saves resolved (gan.data.infer_settings).
INFERRED = (("data", "channels", 0), ("G", "objects", -1), ("G", "camera", "auto"), ("G", "backgrounds", -1),
            ("G", "scene_warp", -1), ("loss", "motion_weight", -1))


def _resolved_config(args) -> Dict:
    """The config `train.py ARGS` would train, as plain types (its --dry-run output)."""
    import contextlib
    import io
    import train
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        train.cli.main(args=[str(a) for a in args if a != "--no-progress"] + ["--dry-run"], prog_name="train.py",
                       standalone_mode=False)
    return json.loads(out.getvalue())


def run_config(outdir: Path) -> Config:
    return Config.from_dict({k: v for k, v in json.loads((outdir / "config.json").read_text()).items()
                             if k != "_run"})


def log_records(outdir: Path) -> List[Dict]:
    return [json.loads(line) for line in (outdir / "log.jsonl").read_text().splitlines() if line.strip()]


def generated(outdir: Path, seeds: Sequence[int], frames: int, time_step: float = 1.0) -> torch.Tensor:
    """Clips [S, T, C, H, W] in [-1, 1] of the run's G_ema at times 0, time_step, ... (data frames)."""
    from gan.sampling import ClipRenderer, load_generator
    G, _ = load_generator(outdir / "checkpoints" / "latest.pt")
    with torch.no_grad():
        return ClipRenderer(G).render(list(seeds), frames, time_step=time_step).float().clamp(-1, 1)


def real(cfg: Config, count: int, frames: int) -> torch.Tensor:
    """The first `count` training videos from frame 0 at stride 1: [N, T, C, H, W] in [-1, 1]."""
    from gan.data import build_dataset
    dataset = build_dataset(cfg.data, seed=cfg.train.seed)
    return torch.stack([dataset.preview(i, frames)["video"] for i in range(count)])


def read_frames(folder: Path) -> torch.Tensor:
    """One clip of generate.py --format png (a folder of frames) -> [T, C, H, W] in [-1, 1]."""
    from PIL import Image
    frames = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("frame_*.png"))])
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1


# ---- measurements ----------------------------------------------------------------------------------------


def flicker(clips: torch.Tensor) -> float:
    """Mean absolute change between consecutive frames, in grey levels (0..255): [N, T, C, H, W] in [-1, 1]."""
    return float((clips[:, 1:] - clips[:, :-1]).abs().mean() * 127.5)


def dot_found(clips: torch.Tensor) -> float:
    """Share of frames that show a bright blob at all (a dot): [N, T, C, H, W] in [-1, 1]."""
    from gan.analysis.measure import centroid_track
    return round(float(torch.stack([~torch.isnan(centroid_track(c)).any(dim=1) for c in clips]).float().mean()), 3)


def dot_steps(clips: torch.Tensor) -> torch.Tensor:
    """How far (px) the bright blob's centre moves from each frame to the next, for every clip and frame
    (frames without a blob left out): [N, T, C, H, W] in [-1, 1] -> 1-D."""
    from gan.analysis.measure import centroid_track
    steps = torch.cat([(centroid_track(c)[1:] - centroid_track(c)[:-1]).norm(dim=1) for c in clips])
    return steps[~torch.isnan(steps)]


def dot_step(clips: torch.Tensor) -> float:
    """Mean of `dot_steps`: about the dot's speed for smooth motion, larger when it jumps, 0 when it stands still."""
    steps = dot_steps(clips)
    return float(steps.mean()) if len(steps) else float("nan")


def colour_counts(clips: torch.Tensor) -> Dict[str, int]:
    """How many clips [N, T, C, H, W] show each of the built-in palette's colours (the hue of the moving object,
    gan.analysis.measure.dominant_colour); 'none': no object found."""
    import collections
    from gan.analysis.measure import dominant_colour
    from gan.data.builtin import PALETTE
    counts = collections.Counter(dominant_colour(c) or "none" for c in clips)
    return {name: counts.get(name, 0) for name in [*PALETTE, "none"]}


def effective_colours(counts: Dict[str, int]) -> float:
    """exp(entropy) of the colour shares: 6 when all six colours are equally common, 1 when one is drawn."""
    import math
    n = sum(v for k, v in counts.items() if k != "none")
    shares = [v / n for k, v in counts.items() if k != "none" and v > 0]
    return round(math.exp(-sum(p * math.log(p) for p in shares)), 2) if shares else 0.0


def diversity(clips: torch.Tensor) -> float:
    """Mean L1 distance (grey levels) between the first frames of different clips: how different the samples
    are from each other. A collapsed G draws (nearly) the same picture for every seed: near 0."""
    x = clips[:, 0].flatten(1) * 127.5                                   # [N, C*H*W]
    d = torch.cdist(x, x, p=1) / x.shape[1]
    n = x.shape[0]
    return float(d.sum() / (n * (n - 1)))


def save_numbers(figures: Path, name: str, numbers: Dict) -> Path:
    """The chapter's measured numbers as JSON (printed too): what the chapter text quotes."""
    path = figures / f"{name}.json"
    path.write_text(json.dumps(numbers, indent=2, sort_keys=True) + "\n")
    print(json.dumps(numbers, indent=2, sort_keys=True))
    print(f"wrote {path}")
    return path


# ---- figures ---------------------------------------------------------------------------------------------


def upscale(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 [..., H, W, 3] -> nearest-neighbour upscaled to `size` px, so small clips read on a page."""
    k = max(1, size // frames.shape[-2])
    return frames.repeat(k, axis=-3).repeat(k, axis=-2)


def grid_gif(path: Path, clips: torch.Tensor, fps: float, size: int = 96, nrow: Optional[int] = None) -> Path:
    """An animated grid of clips [N, T, C, H, W] (each upscaled to `size` px)."""
    write_gif(path, make_grid(upscale(to_uint8(clips), size), nrow=nrow), fps)
    print(f"wrote {path}")
    return path


def strips(path: Path, rows: Dict[str, torch.Tensor], size: int = 64, every: int = 1, title: str = "") -> Path:
    """A PNG with one labelled row of frames per clip ([T, C, H, W] in [-1, 1]), every `every`-th frame."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    images = [make_grid(upscale(to_uint8(clip[::every]), size)[:, None], nrow=clip[::every].shape[0])[0]
              for clip in rows.values()]
    width = max(im.shape[1] for im in images)
    fig, axes = plt.subplots(len(images), 1, figsize=(width / 80 + 1.8, 0.2 + len(images) * (size / 80 + 0.35)),
                             squeeze=False)
    for ax, label, im in zip(axes[:, 0], rows, images):
        ax.imshow(im, interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"wrote {path}")
    return path


def curves(path: Path, series: Dict[str, tuple], ylabel: str, title: str = "", xlabel: str = "step",
           logy: bool = False) -> Path:
    """A PNG line plot: series = {label: (x, y)}."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for label, (x, y) in series.items():
        ax.plot(x, y, label=label, marker="." if len(x) < 40 else None)
    ax.set_xlabel(xlabel), ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"wrote {path}")
    return path


def bars(path: Path, panels: Dict[str, Dict[str, float]]) -> Path:
    """A PNG of bar charts side by side: panels = {title: {label: value}}, each bar labelled with its value."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3), squeeze=False)
    colours = ["grey", "tab:green", "tab:red", "tab:blue"]
    for ax, (title, values) in zip(axes[0], panels.items()):
        ax.bar(list(values), list(values.values()), color=colours[:len(values)])
        ax.set_title(title, fontsize=9)
        for i, v in enumerate(values.values()):
            ax.text(i, v, f"{v:g}", ha="center", va="bottom", fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"wrote {path}")
    return path
