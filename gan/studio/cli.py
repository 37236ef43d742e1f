"""Watch and steer a generator live in the browser, or train one live (works offline; tabs share one render).

\b
Examples:
  reelgan-studio --checkpoint runs/default/checkpoints/latest.pt              # then open the printed URL
  reelgan-studio --checkpoint G.pt --port 8765 --precision auto --fps 30
  reelgan-studio --checkpoint G.pt --outdir my_clips --watermark-key wm.key   # where the record button writes
  reelgan-studio --train --config configs/tiny.yaml --outdir runs/room         # the training room
  reelgan-studio --train --outdir runs/room --resume                          # continue that run
  reelgan-studio --checkpoint G.onnx --in-browser     # the page runs G.onnx itself (reelgan-export --format onnx)

The page's controls act within a frame or two: seed, truncation, speed and direction, scrub, a glide to
another seed, class / prompt / still (models that take them), precision, compile and preview size of the
renderer, fps. Recordings are watermarked mp4s (check with `reelgan-watermark detect FILE`). Ctrl-C stops.

With --train the page is a training room: the same loop as train.py into an ordinary run folder (--outdir),
real and fake clips with each D's score, frame differences, a diversity gauge, the curves, pause / one step /
slow motion and knobs (learning rates, R1, the video D's weight, augmentation). Ctrl-C stops after the current
step and writes a checkpoint.

Open the printed URL: it carries this launch's secret token (?token=...), which the page keeps in a cookie;
without it, and from any other web page or host name, the studio refuses every request (as Jupyter does).
--host other than 127.0.0.1 serves the network (plain http): it warns, and the token is still required.
"""
from __future__ import annotations

import click

from gan.cli_utils import Command, threads_option, watermark_options


@click.command(cls=Command, help=__doc__)
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Training checkpoint or exported generator file (the player).")
@click.option("--train", "train_", is_flag=True, help="Open the training room instead of the player.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="--train: YAML preset (configs/*.yaml); defaults: the CPU-sized digits config.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="--train: override a config field, e.g. --set train.steps=2000 (repeatable).")
@click.option("--resume", is_flag=True, help="--train: continue the run in --outdir from its newest checkpoint.")
@click.option("--in-browser", "in_browser", is_flag=True,
              help="Play an exported G.onnx in the page itself (onnxruntime-web, WebAssembly): no Python rendering.")
@click.option("--backend", type=click.Choice(["auto", "wasm", "webgpu"]), default="auto", show_default=True,
              help="--in-browser: the page's runtime. webgpu fetches onnxruntime-web's WebGPU build once (22 MB, "
                   "npm registry) and falls back to WebAssembly in a browser without WebGPU; auto uses WebGPU "
                   "where that build is cached and the browser has it.")
@click.option("--paused", is_flag=True, help="--train: start paused (the page's button starts it).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to serve on (0: any free one).")
@click.option("--host", type=str, default="127.0.0.1", show_default=True,
              help="Address to listen on (127.0.0.1: this machine only; another one warns: the network sees it).")
@click.option("--outdir", type=click.Path(file_okay=False), default=None,
              help="Where the record button writes its mp4s (never replacing a file) [default: studio_recordings]; "
                   "--train: the run folder [default: runs/<config name>].")
@click.option("--device", type=str, default="cpu", show_default=True, help="cpu, cuda or auto.")
@threads_option(default=None, extra=" [default: 0; --train: train.threads]")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16", "int8"]), default="auto",
              show_default=True,
              help="A new tab's renderer precision (the page can change it): auto picks bf16 where the CPU/GPU "
                   "runs it natively; int8 (CPU, needs torchao) quantizes the convolutions at the first frames.")
@click.option("--compile", "compile_", is_flag=True,
              help="Start with a torch.compiled renderer (on a CPU the first frames wait tens of seconds the "
                   "first time; the compiled frames are kept for later runs).")
@click.option("--fps", type=click.FloatRange(1, 120), default=30.0, show_default=True,
              help="A new tab's frame rate (the page can change it).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="A new tab's seed.")
@click.option("--chunk", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Frames rendered per call: more is faster per frame, fewer reacts sooner to a control.")
@click.option("--quality", type=click.IntRange(10, 100), default=90, show_default=True,
              help="JPEG quality of the stream (recordings take the rendered frames, not the JPEGs).")
@watermark_options("Private watermark key for recordings [default: as generate.py: $REELGAN_WATERMARK_KEY, the "
                   "config's, else the public key].", "16-bit user id carried in the recordings' watermark.")
def cli(checkpoint, train_, config_path, overrides, resume, paused, port, host, outdir, device, threads, precision,
        compile_, fps, seed, chunk, quality, watermark_key, watermark_user, in_browser, backend):
    from pathlib import Path

    from gan.cli_utils import fail
    from gan.threads import configure
    if train_ == (checkpoint is not None):
        fail("choose one: --checkpoint CKPT (the player) or --train (the training room)")
    if train_:
        return _train_room(config_path, overrides, resume, paused, outdir, device, threads, host, port)
    if config_path is not None or overrides or resume or paused:
        fail("--config, --set, --resume and --paused belong to --train")
    from click.core import ParameterSource
    ctx = click.get_current_context()
    if not in_browser and ctx.get_parameter_source("backend") == ParameterSource.COMMANDLINE:
        fail("--backend belongs to --in-browser (the page's runtime)")
    if in_browser:
        unused = ("outdir", "device", "threads", "precision", "compile_", "quality", "watermark_key", "watermark_user")
        given = [f"--{n.rstrip('_').replace('_', '-')}" for n in unused
                 if ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE]
        if given:
            fail(f"--in-browser renders in the page, which records nothing: drop {', '.join(given)}")
        from gan.studio.browser_player import BrowserRoom
        room = BrowserRoom(checkpoint, {"seed": seed, "chunk": chunk, "display_fps": fps}, backend,
                           say=lambda text: click.echo(text, err=True))
        info = room.info
        return _serve([room], host, port, lambda url: f"reelgan studio: {info['name']} ({info['resolution']} px) "
                      f"rendered in the browser at {url} (Ctrl-C stops)")
    choice = configure(threads or 0)                # before torch loads (its OpenMP settings)
    from gan.cli_utils import pick_device
    outdir = outdir or "studio_recordings"
    from gan.studio.player import PlayerRoom
    from gan.studio.playback import Model
    model = Model(checkpoint, pick_device(device), chunk)
    if watermark_key is not None or watermark_user is not None:
        from gan.sampling import checkpoint_watermarker
        model.mark = checkpoint_watermarker(checkpoint, key_file=watermark_key, user_id=watermark_user)
    settings = {"seed": seed, "fps": fps}
    if model.fast_path:
        settings.update(precision=precision, compile=compile_)
    room = PlayerRoom(model, Path(outdir), model.defaults(settings), quality=quality)
    caps = model.capabilities()
    _serve([room], host, port, lambda url: f"reelgan studio: {caps['name']} ({caps['resolution']} px, step "
                                          f"{caps['step']}) at {url} (recordings -> {outdir}; {choice.describe()}; "
                                          f"Ctrl-C stops)")


def _serve(rooms, host, port, line, sock=None):
    """Bind (unless given a socket), guard with a fresh token, print `line(url)` once listening, serve."""
    from gan.studio.app import bind, build_app, serve
    from gan.studio.guard import Access
    sock = sock or bind(host, port)
    access = Access(host, sock.getsockname()[1])
    if not access.loopback:
        click.echo(f"warning: --host {host} serves the network over plain http: anyone who can reach this machine "
                   f"and learns the token (in the URL below) can steer the studio and write into its folder; "
                   f"use 127.0.0.1 unless you mean it", err=True)

    def ready():
        click.echo(line(access.open_url()))

    serve(build_app(rooms, access), sock, on_ready=ready)


def _train_room(config_path, overrides, resume, paused, outdir, device, threads, host, port):
    from gan.cli_utils import parse_overrides, pick_device
    from gan.config import load_config
    from gan.threads import configure
    over = parse_overrides(overrides)
    if threads is not None:
        over.setdefault("train", {})["threads"] = threads
    cfg = load_config(config_path, over)
    choice = configure(cfg.train.threads)           # before torch loads (its OpenMP settings)
    device = pick_device(device)
    from gan.studio.app import bind
    from gan.studio.trainroom import Trainer, TrainRoom
    outdir = outdir or f"runs/{cfg.name}"
    trainer = Trainer(cfg, outdir, resume=resume, device=device, paused=paused)
    sock = bind(host, port)
    try:
        trainer.prepare()                 # a bad config or run folder is one line here, before serving
    except BaseException:
        sock.close()
        raise
    _serve([TrainRoom(trainer)], host, port, lambda url: f"reelgan studio: training room, {cfg.name} into "
           f"{outdir} at {url} ({choice.describe()}; Ctrl-C stops after the current step and writes a checkpoint)", sock=sock)
    if trainer.status == "error":
        from gan.studio.playback import StudioError
        raise StudioError(trainer.message)
    click.echo(trainer.message)


def main():
    cli()


if __name__ == "__main__":
    main()
