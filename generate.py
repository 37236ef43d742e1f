"""Sample clips from a trained generator (G_ema only; nothing else is loaded).

\b
Examples:
  python generate.py --checkpoint runs/default/checkpoints/latest.pt --outdir out --seeds 0-7
  python generate.py --checkpoint G.pt --outdir out --seeds 3 --frames 1024 --fps 30
  python generate.py --checkpoint G.pt --outdir out --seeds 0-15 --format grid --truncation 0.7
  python generate.py --checkpoint G.pt --outdir out --seeds 1 --class 7 --format gif
"""
from __future__ import annotations

import sys

import click


@click.command(help=__doc__)
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Training checkpoint or exported generator file.")
@click.option("--outdir", type=click.Path(file_okay=False), required=True, help="Where to write the clips.")
@click.option("--seeds", type=str, default="0-3", show_default=True, help="Seeds: list and ranges, e.g. 0-3,7.")
@click.option("--frames", type=click.IntRange(min=1), default=64, show_default=True, help="Frames per clip.")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Output frame rate [default: the training data's]; other rates resample motion in time.")
@click.option("--format", "fmt", type=click.Choice(["mp4", "gif", "png", "grid"]), default="mp4",
              show_default=True, help="One file per seed (mp4/gif), PNG frame folders, or one grid mp4.")
@click.option("--truncation", type=click.FloatRange(min=0, max=2), default=1.0, show_default=True,
              help="Truncation psi (1: off; lower: typical, less varied content).")
@click.option("--class", "class_value", type=str, default=None, help="Class index or name (conditional models).")
@click.option("--device", type=str, default="cpu", show_default=True, help="cpu, cuda or auto.")
@click.option("--chunk", type=click.IntRange(min=1), default=16, show_default=True,
              help="Frames rendered per step: memory stays constant however long the clip.")
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True, help="Seeds rendered together.")
def cli(checkpoint, outdir, seeds, frames, fps, fmt, truncation, class_value, device, chunk, batch):
    from gan.cli_utils import pick_device
    from gan.sampling import SamplingError, generate_videos, parse_seeds
    from gan.training.checkpoint import CheckpointError
    try:
        paths = generate_videos(checkpoint, outdir, parse_seeds(seeds), frames=frames, fps=fps, fmt=fmt,
                                truncation=truncation, class_value=class_value, device=pick_device(device),
                                chunk=chunk, batch=batch)
    except (SamplingError, CheckpointError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    for p in paths:
        click.echo(str(p))


def main():
    cli()


if __name__ == "__main__":
    main()
