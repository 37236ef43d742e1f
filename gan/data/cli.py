"""`reelgan-dataset`: export the built-in datasets to disk and inspect datasets.

Examples:

    reelgan-dataset export --source digits --out data/digits --num 200
    reelgan-dataset export --source shapes --out data/shapes_frames --labels --format frames
    reelgan-dataset info data/digits
    reelgan-dataset prepare data/digits data/digits64 --resolution 64
    python -m gan.data.cli info data/shapes_frames --clip-frames 8
"""
from __future__ import annotations

import json
import statistics
import warnings
from pathlib import Path

import click
import numpy as np
from tqdm import tqdm

from gan.cli_utils import Group, FiniteFloat
from gan.config import DataConfig
from gan.errors import publish
from gan.data.builtin import BouncingShapes, MovingDigits, MovingDots
from gan.data.dataset import open_disk_source
from gan.data.prepared import DATASET_FILE, explain, open_prepared
from gan.data.prepared import prepare as prepare_dataset
from gan.video_io import write_mp4, write_png_frames

BUILTINS = {"digits": MovingDigits, "shapes": BouncingShapes, "dots": MovingDots}


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
@click.option("--num", type=click.IntRange(min=1, max=10 ** 7), default=200, show_default=True,
              help="Number of videos.")
@click.option("--frames", type=click.IntRange(min=1, max=10 ** 6), default=64, show_default=True,
              help="Frames per video.")
@click.option("--resolution", type=click.IntRange(min=8, max=4096), default=64, show_default=True,
              help="Frame size (px).")
@click.option("--fps", type=FiniteFloat(min=0.01, max=1000), default=16.0, show_default=True,
              help="Frame rate stored in the mp4 files.")
@click.option("--seed", type=int, default=0, show_default=True, help="Content seed.")
@click.option("--objects", type=click.IntRange(min=1, max=64), default=2, show_default=True, help="Objects per video.")
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
    from gan import limits
    limits.require_memory(4 * 3 * frames * resolution ** 2, f"one video of {frames} frames at {resolution}x"
                          f"{resolution}", "lower --frames or --resolution")
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
    with open(out_dir / DATASET_FILE, "w") as f:               # what captions can swap, for text-to-video
        json.dump({"source": source, "fps": fps, "caption_word_groups": data.caption_word_groups()}, f)
    click.echo(f"wrote {num} videos ({fmt}), metadata.jsonl and {DATASET_FILE} to {out_dir}")


@main.command()
@click.argument("src")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--resolution", type=click.IntRange(min=8, max=4096), default=DataConfig().resolution,
              show_default=True, help="Frame size to store (short side resized, centre crop); a power of two.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Decoding processes [default: all cores].")
@click.option("--force", is_flag=True, help="Replace OUT when it is a prepared dataset of another source.")
def prepare(src, out, resolution, workers, force):
    """Decode the videos of SRC once into OUT: uint8 frames in memory-mapped shards, with an index.

    `train.py --data OUT` then trains from it directly (`train.py --data SRC` does the same through a cache).

    \b
    Examples:
      reelgan-dataset prepare ~/clips data/clips64 --resolution 64
      python train.py --data data/clips64 --outdir runs/mine
    """
    from gan.data.prepared import is_prepared, list_source, cache_key
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        listing = list_source(src)
        if is_prepared(out):
            existing = open_prepared(out)
            if existing.index["key"] == cache_key(listing, resolution):
                click.echo(f"{out} is up to date ({existing.summary()})")
                return
            if not force:
                raise click.UsageError(f"{out} is a prepared dataset of another source or resolution; pass "
                                       f"--force to replace it, or choose another OUT")
        data = prepare_dataset(src, out, resolution, workers=workers, listing=listing)
    for w in dict.fromkeys(str(w.message) for w in caught):
        click.echo(f"warning: {w}", err=True)
    click.echo(f"{data.summary()}; {data.index['seconds']:.1f} s")
    _print_suggestions(data)


@main.command()
@click.argument("path")
@click.option("--clip-frames", type=click.IntRange(min=1), default=DataConfig().clip_frames, show_default=True,
              help="Clip length used to decide which videos are too short.")
@click.option("--stride", type=click.IntRange(min=1), default=min(DataConfig().strides), show_default=True,
              help="Smallest frame stride used in training.")
@click.option("--resolution", type=click.IntRange(min=8, max=4096), default=DataConfig().resolution,
              show_default=True, help="Training resolution to read the data at.")
@click.option("--cache", type=click.Path(file_okay=False), default=None,
              help="Dataset cache [default: $REELGAN_CACHE or ~/.cache/reelgan/datasets].")
def info(path, clip_frames, stride, resolution, cache):
    """Describe a dataset and the settings training would read off it.

    PATH is a folder of videos, a folder of frame folders, a .zip, a prepared folder, or a built-in. Every
    video is decoded once (into the cache that `train.py --data PATH` reuses, so training then starts at once).

    \b
    Examples:
      reelgan-dataset info data/digits
      reelgan-dataset info data/frames.zip --clip-frames 16
      reelgan-dataset info shapes
    """
    if path in BUILTINS:
        click.echo(BUILTINS[path]().summary())
        return
    with warnings.catch_warnings(record=True) as caught:     # the summary lists skipped files below
        warnings.simplefilter("always")
        source = open_disk_source(path, resolution, (clip_frames - 1) * stride + 1, cache or "",
                                  say=lambda msg: click.echo(msg, err=True))
    del caught
    videos = source.videos
    click.echo(source.summary())
    counts = [v.frames for v in videos]
    click.echo(f"frames per video: min {min(counts)}, median {statistics.median(counts):g}, max {max(counts)}")
    fps = sorted({round(v.fps, 3) for v in videos if v.fps})
    click.echo(f"frame rate: {', '.join(f'{f:g}' for f in fps[:5])}{' ...' if len(fps) > 5 else ''} fps" if fps
               else "frame rate: not stored (frame folders); data.fps applies")
    sizes = sorted({(v.width, v.height) for v in videos})
    click.echo(f"source frame size: {', '.join(f'{w}x{h}' for w, h in sizes[:4])}{' ...' if len(sizes) > 4 else ''}")
    grey = sum(v.grey for v in videos)
    click.echo(f"colour: {'grey' if grey == len(videos) else 'colour'} ({grey} of {len(videos)} videos grey)")
    if source.class_names:
        click.echo(f"{source.num_classes} classes: {', '.join(source.class_names)}")
    else:
        click.echo("unlabelled (no class subfolders, no labels in metadata)")
    captioned = sum(v.caption is not None for v in videos)
    click.echo(f"captions: {captioned} of {len(videos)} videos" +
               ("" if not captioned else f" (e.g. \"{next(v.caption for v in videos if v.caption)}\")"))
    for kind, files in source.skipped.items():
        for f in files:
            click.echo(f"skipped ({kind.replace('_', ' ')}): {f}" if kind != "truncated" else f"truncated: {f}")
    _print_suggestions(source)


def _print_suggestions(source) -> None:
    """What training will read off this data (and `--set` it with, unless the config says otherwise)."""
    for setting, why in explain(source.suggestions()).items():
        click.echo(f"training will use {setting} ({why})")
    if source.has_captions:
        click.echo("captions for every video: text-to-video trains on them (--config configs/t2v.yaml --data ...)")


if __name__ == "__main__":
    main()
