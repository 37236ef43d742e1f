"""`reelgan-dataset`: export the built-in datasets to disk and inspect datasets.

Examples:

    reelgan-dataset export --source digits --out data/digits --num 200
    reelgan-dataset export --source shapes --out data/shapes_frames --labels --format frames
    reelgan-dataset info data/digits
    python -m gan.data.cli info data/shapes_frames --clip-frames 8
"""
from __future__ import annotations

import json
import os
import statistics
import warnings
from pathlib import Path

import click
import numpy as np
from tqdm import tqdm

from gan.cli_utils import Group
from gan.config import DataConfig
from gan.errors import publish
from gan.data.builtin import BouncingShapes, MovingDigits
from gan.data.readers import open_source
from gan.video_io import write_mp4, write_png_frames

BUILTINS = {"digits": MovingDigits, "shapes": BouncingShapes}


def _jsonable(x):
    """numpy arrays/scalars -> plain lists/numbers (floats rounded to 3 decimals to keep the file small)."""
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (float, np.floating)):
        return round(float(x), 3)
    if isinstance(x, np.integer):
        return int(x)
    return x


@click.group(cls=Group)
def main():
    """Create and inspect reelgan video datasets."""


@main.command()
@click.option("--source", type=click.Choice(sorted(BUILTINS)), default="digits", show_default=True,
              help="Built-in dataset to render.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--num", type=click.IntRange(min=1), default=200, show_default=True, help="Number of videos.")
@click.option("--frames", type=click.IntRange(min=1), default=64, show_default=True, help="Frames per video.")
@click.option("--resolution", type=click.IntRange(min=8), default=64, show_default=True, help="Frame size (px).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=16.0, show_default=True,
              help="Frame rate stored in the mp4 files.")
@click.option("--seed", type=int, default=0, show_default=True, help="Content seed.")
@click.option("--objects", type=click.IntRange(min=1), default=2, show_default=True, help="Objects per video.")
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True,
              help="Digit images to draw from (train and test images are disjoint).")
@click.option("--labels/--no-labels", default=False, show_default=True,
              help="Put each video in a folder named after the class of its first object.")
@click.option("--format", "fmt", type=click.Choice(["mp4", "frames"]), default="mp4", show_default=True,
              help="One H.264 mp4 per video, or one folder of PNG frames per video.")
@click.option("--force", is_flag=True, help="Write into a non-empty output folder.")
def export(source, out, num, frames, resolution, fps, seed, objects, split, labels, fmt, force):
    """Render a built-in dataset to OUT, with metadata.jsonl (index, file, caption, label, factors).

    \b
    Examples:
      reelgan-dataset export --source digits --out data/digits --num 200
      reelgan-dataset export --source shapes --out data/shapes --labels --format frames --resolution 32
    """
    out_dir = Path(out)
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise click.UsageError(f"output folder {out_dir} is not empty; choose a new --out or pass --force")
    out_dir.mkdir(parents=True, exist_ok=True)
    data = BUILTINS[source](resolution=resolution, num_videos=num, video_frames=frames, num_objects=objects,
                            seed=seed, split=split)
    if labels:                                                # every class gets a folder (and so an id)
        for name in data.class_names:
            (out_dir / name).mkdir(exist_ok=True)
    rows = []
    for index in tqdm(range(num), desc=f"export {source}", unit="video"):
        rel = f"{index:06d}" if fmt == "frames" else f"{index:06d}.mp4"
        if labels:
            rel = f"{data.class_names[data.label(index)]}/{rel}"
        video = data.render(index)                            # [T, H, W, 3]
        if fmt == "mp4":
            write_mp4(out_dir / rel, video, fps)
        else:
            write_png_frames(out_dir / rel, video)
        rows.append({"index": index, "file": rel, "caption": data.caption(index), "label": data.label(index),
                     "factors": _jsonable(data.factors(index))})
    tmp = out_dir / "metadata.jsonl.tmp"
    with open(tmp, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    publish(tmp, out_dir / "metadata.jsonl")
    click.echo(f"wrote {num} videos ({fmt}) and metadata.jsonl to {out_dir}")


@main.command()
@click.argument("path")
@click.option("--clip-frames", type=click.IntRange(min=1), default=DataConfig().clip_frames, show_default=True,
              help="Clip length used to decide which videos are too short.")
@click.option("--stride", type=click.IntRange(min=1), default=min(DataConfig().strides), show_default=True,
              help="Smallest frame stride used in training.")
def info(path, clip_frames, stride):
    """Print the summary of a dataset: a folder of videos, a folder of frame folders, a .zip, or a built-in.

    \b
    Examples:
      reelgan-dataset info data/digits
      reelgan-dataset info data/frames.zip --clip-frames 16
      reelgan-dataset info shapes
    """
    if path in BUILTINS:
        click.echo(BUILTINS[path]().summary())
        return
    with warnings.catch_warnings(record=True):                # the summary lists skipped files below
        warnings.simplefilter("always")
        source = open_source(path, (clip_frames - 1) * stride + 1)
    click.echo(source.summary())
    counts = [source.num_frames(i) for i in range(len(source))]
    click.echo(f"frames per video: min {min(counts)}, median {statistics.median(counts):g}, max {max(counts)}")
    if source.class_names:
        click.echo(f"{source.num_classes} classes: {', '.join(source.class_names)}")
    else:
        click.echo("unlabelled (no class subfolders)")
    for kind, files in source.skipped.items():
        for f in files:
            click.echo(f"skipped ({kind.replace('_', ' ')}): {f}")
    for f in getattr(source, "truncated", []):
        click.echo(f"truncated (used with the frames that decode): {f}")


if __name__ == "__main__":
    main()
