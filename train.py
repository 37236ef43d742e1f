"""Train a reelgan video GAN.

\b
Examples:
  python train.py                                   # default CPU config: moving digits, 64 px
  python train.py --config configs/shapes.yaml --outdir runs/shapes
  python train.py --data ~/clips --outdir runs/mine --steps 20000 --device cuda
  python train.py --outdir runs/mine --resume      # continue a stopped run
  torchrun --nproc_per_node 2 train.py --outdir runs/ddp --steps 100
  python train.py --config configs/tiny.yaml --set train.batch=8 --dry-run
  python train.py --threads 1                       # one torch thread (default: auto, from the idle cores)
"""
from __future__ import annotations

try:                                # Ctrl-C while Python imports: a quiet exit, not an import traceback
    from gan.writes import redeliver_swallowed_ctrl_c

    redeliver_swallowed_ctrl_c()       # one inside an import callback, too
    import click

    from gan.cli_utils import Command, threads_option
except KeyboardInterrupt:
    raise SystemExit(130) from None


@click.command(cls=Command, help=__doc__)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="YAML preset (configs/*.yaml); defaults: the CPU-sized digits config.")
@click.option("--data", type=str, default=None, show_default=True,
              help="'digits', 'shapes', 'dots', a folder of videos or frame folders, or a .zip "
                   "(overrides data.source).")
@click.option("--outdir", type=click.Path(file_okay=False), default=None,
              help="Run folder [default: runs/<config name>].")
@click.option("--steps", type=click.IntRange(min=0), default=None, help="Generator updates (overrides train.steps).")
@click.option("--batch", type=click.IntRange(min=1), default=None, help="Clips per step (overrides train.batch).")
@click.option("--resume", is_flag=True,
              help="Continue the run in OUTDIR from its newest checkpoint that loads and is finite.")
@click.option("--force", is_flag=True,
              help="Start a new run in an OUTDIR that holds one (its checkpoints are deleted, its logs rewritten).")
@click.option("--device", type=str, default="cpu", show_default=True, help="cpu, cuda, cuda:1 or auto.")
@threads_option(default=None, extra=" [default: train.threads, 0]")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override any config field, e.g. --set train.precision=bf16 (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print the resolved config as JSON and exit.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def cli(config_path, data, outdir, steps, batch, resume, force, device, threads, overrides, dry_run, progress):
    from gan.cli_utils import parse_overrides, pick_device
    from gan.config import load_config
    over = parse_overrides(overrides)
    if data is not None:
        over.setdefault("data", {})["source"] = data
    if steps is not None:
        over.setdefault("train", {})["steps"] = steps
    if batch is not None:
        over.setdefault("train", {})["batch"] = batch
    if threads is not None:
        over.setdefault("train", {})["threads"] = threads
    cfg = None
    if resume and config_path is None and outdir is not None:      # the run's own config, read-off values included
        from gan.config import run_config
        cfg = run_config(outdir, over)
    cfg = cfg or load_config(config_path, over)
    outdir = outdir or f"runs/{cfg.name}"
    if dry_run:
        click.echo(cfg.to_json())
        click.echo(f"# outdir: {outdir}", err=True)
        return
    if resume and force:
        raise click.UsageError("--resume continues a run, --force replaces it: pass one of them")
    from gan.cli_utils import fail
    from gan.threads import configure
    configure(cfg.train.threads)                 # before torch loads: its line is in the run's start line
    from gan.training import train
    from losses.perceptual import MissingWeightsError
    try:
        summary = train(cfg, outdir, resume=resume, device=pick_device(device), progress=progress, force=force)
    except MissingWeightsError as e:
        fail(f"{e} Here: --set cond.lpips_backbone=PATH, or --set cond.lpips_weight=0 for L1 only.")
    if summary["rank"] == 0:
        click.echo(f"done: {summary['step']} steps; checkpoint {summary['checkpoint']}; samples {summary['samples']}")


def main():
    cli()


if __name__ == "__main__":
    main()
