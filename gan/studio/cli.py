"""Watch and steer a generator live in the browser (works offline; several tabs share one render).

\b
Examples:
  reelgan-studio --checkpoint runs/default/checkpoints/latest.pt              # then open the printed URL
  reelgan-studio --checkpoint G.pt --port 8765 --precision bf16 --fps 30
  reelgan-studio --checkpoint G.pt --outdir my_clips --watermark-key wm.key   # where the record button writes

The page's controls act within a frame or two: seed, truncation, speed and direction, scrub, a glide to
another seed, class / prompt / still (models that take them), precision, compile and preview size of the
renderer, fps. Recordings are watermarked mp4s (check with `reelgan-watermark detect FILE`). Ctrl-C stops.
"""
from __future__ import annotations

import click

from gan.cli_utils import Command


@click.command(cls=Command, help=__doc__)
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Training checkpoint or exported generator file.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to serve on (0: any free one).")
@click.option("--host", type=str, default="127.0.0.1", show_default=True,
              help="Address to listen on (127.0.0.1: this machine only).")
@click.option("--outdir", type=click.Path(file_okay=False), default="studio_recordings", show_default=True,
              help="Where the record button writes its mp4s (never replacing a file).")
@click.option("--device", type=str, default="cpu", show_default=True, help="cpu, cuda or auto.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True,
              help="A new tab's renderer precision (the page can change it): auto picks bf16 where the CPU/GPU "
                   "runs it natively.")
@click.option("--compile", "compile_", is_flag=True,
              help="Start with a torch.compiled renderer (the first frames wait tens of seconds on a CPU).")
@click.option("--fps", type=click.FloatRange(1, 120), default=30.0, show_default=True,
              help="A new tab's frame rate (the page can change it).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="A new tab's seed.")
@click.option("--chunk", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Frames rendered per call: more is faster per frame, fewer reacts sooner to a control.")
@click.option("--quality", type=click.IntRange(10, 100), default=90, show_default=True,
              help="JPEG quality of the stream (recordings take the rendered frames, not the JPEGs).")
@click.option("--watermark-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Private watermark key for recordings [default: as generate.py: $REELGAN_WATERMARK_KEY, the "
                   "config's, else the public key].")
@click.option("--watermark-user", type=click.IntRange(0, 65535), default=None,
              help="16-bit user id carried in the recordings' watermark.")
def cli(checkpoint, port, host, outdir, device, precision, compile_, fps, seed, chunk, quality, watermark_key,
        watermark_user):
    from pathlib import Path

    from gan.cli_utils import pick_device
    from gan.studio.app import bind, build_app, serve, url_of
    from gan.studio.player import PlayerRoom
    from gan.studio.scene import Model
    model = Model(checkpoint, pick_device(device), chunk)
    if watermark_key is not None or watermark_user is not None:
        from gan.sampling import checkpoint_watermarker
        model.mark = checkpoint_watermarker(checkpoint, key_file=watermark_key, user_id=watermark_user)
    settings = {"seed": seed, "fps": fps}
    if model.fast_path:
        settings.update(precision=precision, compile=compile_)
    room = PlayerRoom(model, Path(outdir), model.defaults(settings), quality=quality)
    sock = bind(host, port)
    url = url_of(sock)
    caps = model.capabilities()

    def ready():
        click.echo(f"reelgan studio: {caps['name']} ({caps['resolution']} px, step {caps['step']}) at {url} "
                   f"(recordings -> {outdir}; Ctrl-C stops)")

    serve(build_app([room]), sock, on_ready=ready)


def main():
    cli()


if __name__ == "__main__":
    main()
