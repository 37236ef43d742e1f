"""`reelgan-analyze` (object tracks, identity, motion): a thin click command that parses options and calls one
plain function (gan.analysis.run_analysis.run_analysis).
"""
from __future__ import annotations

from pathlib import Path

import click

from gan.cli_utils import MAX_CLIPS, Command, FiniteFloat, UsageFailure, clip_source_options
from gan.errors import one_line
from gan.writes import refuse_existing


ANALYZE_HELP = """Detect and track objects in clips and score them: tracks, persistence, identity consistency,
recognisability, motion plausibility; writes analysis.json and annotated.mp4 to --out.

\b
Examples:
  reelgan-analyze --checkpoint runs/default/checkpoints/latest.pt --num 64 --out analysis/
  reelgan-analyze --videos out/ --dataset digits --objects 2 --out analysis/
  reelgan-analyze --data digits --resolution 64 --num 32 --out analysis_real/     # real data: the ceiling
  reelgan-analyze --videos out/ --detector ultralytics --weights best.pt --out analysis_yolo/   # reelgan[yolo]
"""


@click.command(cls=Command, help=ANALYZE_HELP)
@clip_source_options
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
    from gan.threads import configure
    choice = configure(threads)          # said once the inputs are read, so that a bad input stays one line
    from gan.clip_sources import DatasetClips, FolderClips, GeneratorClips
    from gan.analysis.run_analysis import run_analysis
    if sum(x is not None for x in (checkpoint, videos, data)) != 1:
        raise click.UsageError("pass exactly one of --checkpoint, --videos or --data (the clips to analyse)")
    refuse_existing([Path(out) / n for n in ("analysis.json", "annotated.mp4")] if out else [], force)
    if (weights is not None) != (detector_name == "ultralytics"):
        raise click.UsageError("--weights goes with --detector ultralytics, and that detector needs it")
    try:
        detector = tracker = None
        if detector_name == "ultralytics":
            from gan.analysis.yolo import DetectorTracks, UltralyticsDetector
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
        if not quiet:
            click.echo(choice.describe(), err=True)
        report = run_analysis(source, resolution, dataset=dataset or source.builtin, num=num, frames=frames,
                              seed=seed, expected_objects=expected if objects is None else (objects or None),
                              outdir=out, annotate=annotate, progress=not quiet, detector=detector,
                              tracker=tracker)
    except click.UsageError:
        raise
    except (ValueError, FileNotFoundError, RuntimeError) as e:    # a failure of the analysis code: one line
        raise UsageFailure(one_line(e)) from e
    click.echo(report["summary"])


def analyze_main():
    analyze_cli()
