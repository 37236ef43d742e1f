"""Sample clips from a trained generator (G_ema only; nothing else is loaded).

\b
Examples:
  python generate.py --checkpoint runs/default/checkpoints/latest.pt --outdir out --seeds 0-7
  python generate.py --checkpoint G.pt --outdir out --seeds 3 --frames 1024 --fps 30
  python generate.py --checkpoint G.pt --outdir out --seeds 0-15 --format grid --truncation 0.7
  python generate.py --checkpoint G.pt --outdir out --seeds 1 --class 7 --format gif
  python generate.py --checkpoint G.onnx --outdir out --seeds 0-7 --precision int8   # ONNX Runtime (reelgan-export)

\b
Conditional models (configs/i2v.yaml, continue.yaml, t2v.yaml):
  python generate.py --checkpoint runs/i2v/checkpoints/latest.pt --outdir out --image still.png --frames 32
  python generate.py --checkpoint runs/continue/checkpoints/latest.pt --outdir out --video in.mp4 --frames 64
  python generate.py --checkpoint runs/t2v/checkpoints/latest.pt --outdir out --prompt "a red circle moving left"

\b
Every clip carries an invisible watermark (model id + user id; check with `reelgan-watermark detect FILE`):
  python generate.py --checkpoint G.pt --outdir out --watermark-key my.key      # private key (else the public one)
  python generate.py --checkpoint G.pt --outdir out --no-watermark              # unmarked, said in the log

\b
Real-time mode (one endless clip of the first seed, chunk by chunk, constant memory; Ctrl-C stops):
  python generate.py --checkpoint G.pt --outdir out --stream --frames 600 --precision auto --compile
  python generate.py --checkpoint G.pt --stream --stream-to - --precision auto | \\
      ffplay -f rawvideo -pixel_format rgb24 -video_size 128x128 -framerate 16 -
"""
from __future__ import annotations

import sys

try:                                # Ctrl-C while Python imports: a quiet exit, not an import traceback
    from gan.writes import redeliver_swallowed_ctrl_c

    redeliver_swallowed_ctrl_c()       # one inside an import callback, too
    import click

    from gan.cli_utils import Command, FiniteFloat, threads_option, watermark_options
except KeyboardInterrupt:
    raise SystemExit(130) from None


@click.command(cls=Command, help=__doc__)
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Training checkpoint or exported generator file.")
@click.option("--outdir", type=click.Path(file_okay=False), default=None,
              help="Where to write the clips (required, except with --stream --stream-to).")
@click.option("--seeds", type=str, default="0-3", show_default=True, help="Seeds: list and ranges, e.g. 0-3,7.")
@click.option("--frames", type=click.IntRange(min=1, max=10 ** 8), default=64, show_default=True, help="Frames per clip.")
@click.option("--fps", type=FiniteFloat(min=0.01, max=1000), default=None,
              help="Output frame rate [default: the training data's]; other rates resample motion in time.")
@click.option("--format", "fmt", type=click.Choice(["mp4", "gif", "png", "grid"]), default="mp4",
              show_default=True, help="One file per seed (mp4/gif), PNG frame folders, or one grid mp4.")
@click.option("--truncation", type=FiniteFloat(min=0, max=2), default=1.0, show_default=True,
              help="Truncation psi (1: off; lower: typical, less varied content).")
@click.option("--class", "class_value", type=str, default=None, help="Class index or name (conditional models).")
@click.option("--device", type=str, default="cpu", show_default=True, help="cpu, cuda or auto.")
@threads_option()
@click.option("--chunk", type=click.IntRange(min=1), default=16, show_default=True,
              help="Frames rendered per step: memory stays constant however long the clip.")
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True, help="Seeds rendered together.")
@click.option("--stream", is_flag=True,
              help="Real-time mode: render one clip of the first seed chunk by chunk (endless unless --frames is "
                   "given) and print the achieved frames/s against --fps to stderr.")
@click.option("--stream-to", type=str, default=None,
              help="--stream output: '-' writes raw rgb24 frames to stdout (pipe into ffmpeg/ffplay), a path "
                   "writes an .mp4 (or raw frames for other suffixes) [default: OUTDIR/seedNNNN_stream.mp4].")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16", "auto", "int8"]), default="fp32",
              show_default=True,
              help="--stream: synthesis precision (bf16: CPUs with AMX/AVX512-BF16 and GPUs; fp16: CUDA; "
                   "int8: CPU, the convolutions quantized and compiled at the first chunk, needs torchao; "
                   "auto: bf16 where the hardware runs it natively, else fp32). An .onnx --checkpoint: fp32 (also "
                   "for auto) or int8 (ONNX Runtime static quantization, calibrated at load).")
@click.option("--compile", "compile_", is_flag=True,
              help="--stream: torch.compile the frame rendering (the first chunk waits for the compiler: "
                   "tens of seconds on a CPU, once: the compiled frames are kept in ~/.cache/reelgan/compiled "
                   "for later runs).")
@click.option("--image", type=str, default=None,
              help="Image-to-video models: the still to animate (frame 0 of every clip).")
@click.option("--video", type=str, default=None,
              help="Continuation models: continue this clip from its last K frames (K: the model's "
                   "cond.context_frames); output = those K frames + --frames predicted ones.")
@click.option("--context-stride", type=click.IntRange(min=1), default=1, show_default=True,
              help="--video: frames between the context frames taken from the clip.")
@click.option("--prompt", type=str, default=None, help="Text-to-video models: the sentence to render.")
@click.option("--no-watermark", is_flag=True,
              help="Write clips WITHOUT the invisible watermark (on by default; the log says when it is off).")
@watermark_options("Private watermark key file [default: $REELGAN_WATERMARK_KEY, else the checkpoint config's "
                   "watermark.key, else the public key that anyone can check].",
                   "16-bit user id carried in the watermark payload [default: the config's watermark.user_id].")
@click.option("--labels", type=click.Choice(["yolo", "coco", "mot"]), default=None,
              help="Layered models: write each object's box, track id and class in every frame beside each clip "
                   "(taken from the generator's own sprite placement and alpha).")
@click.option("--label-threshold", type=FiniteFloat(0, 1, min_open=True, max_open=True), default=0.5,
              show_default=True, help="--labels: a pixel belongs to an object's box where its visible alpha "
                                      "exceeds this.")
@click.option("--dataset", type=click.Path(file_okay=False), default=None,
              help="--labels: also write this folder in the ultralytics layout (images/, labels/, data.yaml; "
                   "every 5th clip in val).")
@click.option("--force", is_flag=True, help="Replace clips (seedNNNN.*) that OUTDIR already holds.")
@click.pass_context
def cli(ctx, checkpoint, outdir, seeds, frames, fps, fmt, truncation, class_value, device, threads, chunk, batch,
        stream, stream_to, precision, compile_, image, video, context_stride, prompt, no_watermark, watermark_key,
        watermark_user, labels, label_threshold, dataset, force):
    from gan.threads import configure
    choice = configure(threads)                                     # before torch loads (its OpenMP settings)
    said = []

    def log(message):                                               # the thread choice leads the first line said,
        if not said:                                                # so a bad checkpoint stays one line
            said.append(True)
            click.echo(choice.describe(), err=True)
        click.echo(message, err=True)

    from gan.sampling.onnx_runtime import is_onnx
    if is_onnx(checkpoint):                                          # reelgan-export --format onnx: ONNX Runtime
        from gan.sampling import parse_seeds
        from gan.sampling.onnx_runtime import onnx_cli
        others = dict(stream=stream, image=image, video=video, prompt=prompt, labels=labels, dataset=dataset,
                      compile=compile_, stream_to=stream_to, class_value=class_value)
        for p in onnx_cli(checkpoint, outdir, parse_seeds(seeds), frames, fps, fmt, truncation, chunk, batch,
                          precision, device, no_watermark, watermark_key, watermark_user, log, others):
            click.echo(str(p))
        return
    if precision == "int8":
        from gan.precision import cpu_flags, int8_note
        note = int8_note(cpu_flags())
        if note:
            log(note)
    from gan import watermark as wm
    from gan.cli_utils import pick_device
    from gan.sampling import generate, parse_seeds
    # --stream without an explicit --frames renders an endless clip
    explicit = ctx.get_parameter_source("frames") is not click.core.ParameterSource.DEFAULT
    result = generate(checkpoint, outdir, parse_seeds(seeds), frames if explicit or not stream else None, fps, fmt,
                      truncation, class_value=class_value, image=image, video=video, prompt=prompt,
                      context_stride=context_stride, device=pick_device(device), chunk=chunk, batch=batch,
                      stream=stream, stream_to=stream_to, precision=precision, compile=compile_,
                      stdout=sys.stdout.buffer, log=log,
                      watermark=None if no_watermark else wm.AUTO, watermark_key=watermark_key,
                      watermark_user=watermark_user, labels=labels, label_threshold=label_threshold, dataset=dataset,
                      overwrite=force)
    for p in ([] if stream else result):
        click.echo(str(p))


def main():
    cli()


if __name__ == "__main__":
    main()
