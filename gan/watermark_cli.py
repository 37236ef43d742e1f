"""reelgan-watermark: check clips for reelgan's invisible watermark, or mark any video.

\b
Examples:
  reelgan-watermark detect out/seed0000.mp4 out/seed0001.gif out/seed0002/      # mp4/webm/gif/png folder
  reelgan-watermark detect clip.mp4 --json                     # one JSON object per file and line
  reelgan-watermark detect clip.mp4 --key my.key               # a private key (else $REELGAN_WATERMARK_KEY)

A detection names the key that matched. The public key (the default, a constant in the source) lets anyone
check a clip and equally lets anyone put the mark on any video: it proves nothing about origin. Only a
private key mark says "made by whoever holds the key" (a static pattern can still be estimated from many
clips marked with the same key and payload: BENCHMARKS.md, "Watermark attacks and payload coding").
  reelgan-watermark embed in.mp4 marked.mp4 --payload 1234abcd0007
  reelgan-watermark mark-weights CKPT marked.pt                # the mark in the model's weights (both are read)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import click
import numpy as np

from gan import watermark as wm
from gan import watermark_weights as ww
from gan.cli_utils import Group, FiniteFloat
from gan.errors import EXIT_USER_ERROR, one_line

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def read_frames(path: str, max_frames: Optional[int] = None) -> np.ndarray:
    """uint8 [T, H, W, 3] from a video file (anything ffmpeg reads), an image, or a folder of frame images."""
    from PIL import Image

    from gan.video_io import read_video
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)[:max_frames]
        if not files:
            raise wm.WatermarkError(f"{p} holds no frame images ({', '.join(IMAGE_SUFFIXES)})")
        return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
        return np.asarray(Image.open(p).convert("RGB"))[None]
    return read_video(p, max_frames=max_frames)


PROVES = {True: "public mark: checkable and forgeable by anyone; proves nothing about origin",
          False: "private key: provenance, only holders of the key (or whoever estimated its pattern from many "
                 "marked clips) can make this mark"}


def key_name(det: wm.Detection) -> str:
    return f"{'public' if det.key_public else 'private'} key {det.key_fingerprint}"


MAX_SIDE = 1024            # detection reads at most this square of each frame, at a multiple of the mark's tile
MAX_PIXELS = 2 ** 24       # ... and at most this many pixels over all frames: bounded memory and time on 4K clips


def _crop_box(h: int, w: int):
    """(top, left, height, width): the central MAX_SIDE square (or less), its corner on the tile grid so the
    detector sees the pattern at the same shift as in the whole frame."""
    ch, cw = min(h, MAX_SIDE), min(w, MAX_SIDE)
    top, left = (h - ch) // 2 // wm.TILE * wm.TILE, (w - cw) // 2 // wm.TILE * wm.TILE
    return top, left, ch, cw


def frame_batches(path: str, max_frames: int, batch_pixels: int = 2 ** 23):
    """uint8 [b, h, w, 3] batches of a file's frames, each cropped to _crop_box, at most MAX_PIXELS in all.
    Videos are decoded by ffmpeg one frame at a time: memory holds one batch, not the clip."""
    p = Path(path)
    if p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES:
        frames = read_frames(path, max_frames)
        top, left, ch, cw = _crop_box(*frames.shape[1:3])
        n = max(1, min(len(frames), MAX_PIXELS // (ch * cw)))
        yield frames[:n, top:top + ch, left:left + cw]
        return
    from gan.video_io import VideoReadError, _last_line, probe_size
    h, w = probe_size(path)
    top, left, ch, cw = _crop_box(h, w)
    n = max(1, min(max_frames, MAX_PIXELS // (ch * cw)))
    per = max(1, batch_pixels // (ch * cw))
    import imageio_ffmpeg
    params = ["-fps_mode", "passthrough", "-vf", f"crop={cw}:{ch}:{left}:{top}", "-frames:v", str(n)]
    got = []
    try:
        gen = imageio_ffmpeg.read_frames(path, output_params=params)
        try:
            next(gen)
            for buf in gen:
                got.append(np.frombuffer(buf, np.uint8).reshape(ch, cw, 3))
                if len(got) == per:
                    yield np.stack(got)
                    got = []
        finally:
            gen.close()
    except (OSError, RuntimeError, ValueError, IndexError, AttributeError) as e:
        raise VideoReadError(path, _last_line(e)) from e
    if got:
        yield np.stack(got)


def detect_file(path: str, keys, threshold: float, max_frames: int) -> wm.Detection:
    """detect_any over a file's frames read in batches (frame_batches): the views of the batches are averaged.
    `keys`: one key or several (see detect_any)."""
    return detect_file_both(path, keys, threshold, max_frames, weights=False)[0]


def detect_file_both(path: str, keys, threshold: float, max_frames: int, weights: bool = True):
    """(post-hoc Detection, in-weights WeightMarkReading or None) of a file, its frames decoded once. With
    `weights`, each mark is tested at threshold / 2 and its p_false doubled (Bonferroni: the file's false-positive
    rate stays under `threshold`)."""
    keys = [keys] if isinstance(keys, bytes) else list(keys)
    marks = 2 if weights else 1
    total, spec, frames, size = None, None, 0, (0, 0)
    for part in frame_batches(path, max_frames):
        if part.shape[1] < wm.MIN_SIZE or part.shape[2] < wm.MIN_SIZE:
            det = wm.detect(part, key=keys[0], threshold=threshold)      # says "undetermined: too small"
            return det, (ww.read(part, keys[0]) if weights else None)
        view = wm.prepare(part) * len(part)
        total = view if total is None else total + view
        if weights:
            s, _ = ww.log_spectrum_sum(part)
            spec = s if spec is None else spec + s
        frames, size = frames + len(part), part.shape[1:3]
    if total is None:
        raise ValueError(f"{path}: no frames decoded")
    view, base = total / frames, dict(frames=frames, size=size)
    det = _best_of(lambda key, thr: wm.detect_view(view, base, key=key, threshold=thr), keys, threshold / marks)
    if det.p_false is not None:
        det.p_false = min(1.0, det.p_false * marks)
    if not weights:
        return det, None
    reading = _best_of(lambda key, thr: ww.read_spectrum(spec / frames, frames, key, thr), keys, threshold / marks)
    if reading.p_false is not None:
        reading.p_false = min(1.0, reading.p_false * marks)
    return det, reading


def _line(path: str, det: wm.Detection, keys: str) -> str:
    if det.detected is None:
        return f"{path}: undetermined ({det.reason})"
    if not det.detected:
        return f"{path}: not detected with {keys} (p_false {det.p_false:.2g}, z {det.z:.1f}, {det.frames} frames)"
    valid = "CRC ok" if det.payload_valid else "CRC mismatch: payload unreliable"
    return (f"{path}: detected, {key_name(det)}, mark v{det.version} (p_false {det.p_false:.2g}, z {det.z:.1f}, "
            f"payload {det.payload} = model id {det.payload[:8]} user id {int(det.payload[8:], 16)}, {valid}, "
            f"bit confidence {det.bit_confidence:.3f}, scale {det.scale:g}, shift {det.shift}) -- "
            f"{PROVES[bool(det.key_public)]}")


def _weights_line(r: ww.WeightMarkReading) -> str:
    if r.detected is None:
        return f"in-weights mark undetermined ({r.reason})"
    key = f"{'public' if r.key_public else 'private'} key {r.key_fingerprint}"
    if not r.detected:
        return f"in-weights mark not found (best p_false {r.p_false:.2g}, z {r.z:.1f})"
    return (f"in-weights mark {ww.SCHEME} detected, {key} (p_false {r.p_false:.2g}, z {r.z:.1f}): the model that "
            f"made it was marked with this key -- {PROVES[bool(r.key_public)]}")


def _both_line(path: str, det: wm.Detection, weights: ww.WeightMarkReading, keys: str) -> str:
    """One line per file: the post-hoc mark's reading (as _line) and the in-weights mark's."""
    first = _line(path, det, keys)
    if det.detected is not None:
        head, sep, rest = first.partition(": ")
        first = f"{head}: post-hoc mark {rest}"
    return f"{first}; {_weights_line(weights)}"


def detect_any(frames: np.ndarray, keys, threshold: float) -> wm.Detection:
    """Search each key (threshold split between them: Bonferroni); the detection with the lowest p_false,
    its p_false scaled to cover all keys searched."""
    return _best_of(lambda key, thr: wm.detect(frames, key=key, threshold=thr), keys, threshold)


def _best_of(detect_with, keys, threshold: float) -> wm.Detection:
    best = None
    for key in keys:
        det = detect_with(key, threshold / len(keys))
        if det.p_false is not None:
            det.p_false = min(1.0, det.p_false * len(keys))
        if best is None or (det.p_false is not None and (best.p_false is None or det.p_false < best.p_false)):
            best = det
        if det.detected:
            break
    return best


@click.group(cls=Group, help=__doc__)
def cli():
    pass


@cli.command(help="Say per file whether it carries the mark: detected / not detected / undetermined (always exit 0 "
                  "once the files are read).")
@click.argument("files", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file and line: the post-hoc mark's "
              "detected, p_false, payload, payload_valid, bit_confidence, z, shift, scale, frames, version, "
              "key_fingerprint, key_public, proves, verdict; weights: the in-weights mark's reading; marks: which "
              "were found.")
@click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help=f"Private key file [default: ${wm.KEY_ENV}]; the public key is always searched too.")
@click.option("--threshold", type=FiniteFloat(0, 1, min_open=True), default=wm.P_THRESHOLD, show_default=True,
              help="Detected when the false-positive probability is below this.")
@click.option("--max-frames", type=click.IntRange(min=1), default=512, show_default=True,
              help="Frames read from the start of each file.")
def detect(files, as_json, key_file, threshold, max_frames):
    try:
        key, _ = wm.resolve_key(key_file)
    except wm.WatermarkError as e:
        raise click.UsageError(str(e))
    keys = [key] if wm.is_public(key) else [key, wm.PUBLIC_KEY]
    names = " and ".join(f"{'public' if wm.is_public(k) else 'private'} key {wm.key_fingerprint(k)}" for k in keys)
    failed = False
    for path in files:
        try:
            det, weights = detect_file_both(path, keys, threshold, max_frames)
        except (OSError, ValueError, RuntimeError) as e:
            click.echo(f"{path}: error: {e}", err=True)
            failed = True
            continue
        if as_json:
            proves = PROVES[bool(det.key_public)] if det.detected else None
            marks = [m for m, r in (("post-hoc", det), ("in-weights", weights)) if r.detected]
            click.echo(json.dumps({"file": path, **det.to_dict(), "proves": proves, "marks": marks,
                                   "weights": {**weights.to_dict(), "proves": PROVES[bool(weights.key_public)]
                                               if weights.detected else None}}))
        else:
            click.echo(_both_line(path, det, weights, names))
    sys.exit(EXIT_USER_ERROR if failed else 0)


@cli.command(help="Mark any video (or png folder / image): OUT by extension (.mp4 H.264 CRF 18, .gif, or a folder "
                  "of png frames when OUT has no suffix).")
@click.argument("src")
@click.argument("out")
@click.option("--payload", type=str, default="0", show_default=True,
              help="48-bit payload as hex (12 digits: 8 of model id, 4 of user id).")
@click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help=f"Private key file [default: ${wm.KEY_ENV}, else the public key].")
@click.option("--fps", type=FiniteFloat(min=0.01, max=1000), default=None,
              help="Frame rate of OUT [default: the input's, else 16].")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
def embed(src, out, payload, key_file, fps, force):
    from gan import video_io
    from gan.writes import refuse_existing
    refuse_existing([out], force)
    if Path(out).resolve() == Path(src).resolve():
        raise wm.WatermarkError(f"{out} is the input: write the marked copy to another file")
    try:
        key, origin = wm.resolve_key(key_file)
        mark = wm.Watermarker(key, wm.parse_payload(payload), origin=origin)
        frames = read_frames(src)
        if fps is None:
            fps = 16.0
            if Path(src).is_file() and Path(src).suffix.lower() not in IMAGE_SUFFIXES:
                fps = video_io.probe_video(src)["fps"] or 16.0
        suffix = Path(out).suffix.lower()
        if suffix in (".mp4", ".gif"):
            video_io.write_video(out, frames, fps, watermark=mark)
        elif suffix == "":
            video_io.write_png_frames(out, frames, watermark=mark)
        else:
            raise wm.WatermarkError(f"cannot write {out}: use .mp4, .gif or a folder name (png frames)")
    except (OSError, ValueError, RuntimeError) as e:
        click.echo(f"error: {one_line(e)}", err=True)
        sys.exit(EXIT_USER_ERROR)
    click.echo(f"{out}: {mark.describe()}, {len(frames)} frames of {frames.shape[2]}x{frames.shape[1]}")


@cli.command("mark-weights", help="Put the in-weights mark into a model: fine-tune its last synthesis blocks so "
                  "every clip it renders carries a keyed echo of its texture, with no step after rendering. OUT is a "
                  "generator file (.pt, or .safetensors) for sampling and sharing; CKPT is left as it was. The "
                  "fine-tune is checked on 8 clips of seeds it never drew: when fewer than 6 carry the mark "
                  "(--min-detected), nothing is written (generators that draw flat colour, such as the sprite "
                  "models, cannot carry it: their clips keep the post-hoc mark).")
@click.argument("checkpoint", type=click.Path(exists=True))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help=f"Private key file [default: ${wm.KEY_ENV}, else the public key]; only its fingerprint is "
                   f"written to OUT.")
@click.option("--steps", type=click.IntRange(min=1, max=1_000_000), default=3000, show_default=True,
              help="Fine-tuning steps (4 clips of 8 frames each; about 3 min on 2 CPU cores for a 64 px scene "
                   "model).")
@click.option("--layers", default=None, help="Regex of the parameter names to fine-tune [default: the last two "
              "synthesis blocks].")
@click.option("--psnr", type=FiniteFloat(min=20, max=80), default=41.0, show_default=True,
              help="PSNR (dB) against the unmarked model's clips that the fine-tune holds.")
@click.option("--lr", type=FiniteFloat(min=0, max=1, min_open=True), default=1e-3, show_default=True,
              help="Adam step size.")
@click.option("--min-detected", type=FiniteFloat(0, 1), default=ww.MIN_FRESH, show_default=True,
              help="Write OUT only when at least this share of the 8 check clips carry the mark (0: always).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch CPU threads [default: torch's].")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
def mark_weights(checkpoint, out, key_file, steps, layers, psnr, lr, min_detected, threads, force):
    import torch

    from gan import checkpoint as ckpt_io
    from gan.sampling.load import load_generator
    from gan.writes import refuse_existing
    refuse_existing([out], force)
    if Path(out).resolve() == Path(checkpoint).resolve():
        raise wm.WatermarkError(f"{out} is the input: write the marked model to another file")
    key, origin = wm.resolve_key(key_file)
    if threads:
        torch.set_num_threads(threads)
    state = ckpt_io.load(checkpoint, map_location="cpu")
    G, info = load_generator(checkpoint, state=state)
    if info["mode"] != "none" or info["c_dim"]:
        raise ww.WeightMarkError(f"{checkpoint} is a conditional model (cond.mode '{info['mode']}', "
                                 f"{info['c_dim']} classes); mark-weights takes unconditional models")
    who = f"{'public' if wm.is_public(key) else 'private'} key {wm.key_fingerprint(key)} ({origin})"
    click.echo(f"marking {checkpoint} with {who}: {steps} steps")

    def progress(step, z, db):
        if step % 250 == 0 or step == steps - 1:
            click.echo(f"  step {step}: mark z {z:.2f}, PSNR {db:.1f} dB", err=True)
    marked, report = ww.mark_weights(G, key, steps=steps, layers=layers, lr=lr, psnr=psnr, progress=progress)
    found = sum(bool(r.detected) for r in report.fresh)
    zs = [r.z for r in report.fresh if r.z is not None]
    summary = (f"{found} of {len(report.fresh)} fresh clips carry it (z median {np.median(zs):.1f}), PSNR to the "
               f"unmarked model median {np.median(report.psnr):.1f} dB (min {np.min(report.psnr):.1f})")
    if found < min_detected * len(report.fresh):
        raise ww.WeightMarkError(f"the mark did not take: {summary}; nothing written. Try more --steps; a "
                                 f"generator that draws flat colour cannot carry it (its clips keep the post-hoc "
                                 f"mark)")
    key_of = ckpt_io.generator_key(state, checkpoint)
    state = {**state, key_of: {k: v.detach().clone() for k, v in marked.state_dict().items()}}
    payload = ckpt_io.generator_file(state, checkpoint, weightmark=ww.record(key, report, psnr))
    payload["config"] = ckpt_io.shareable_config(payload["config"])
    if Path(out).suffix.lower() == ".safetensors":
        ckpt_io.save_safetensors(payload, out)
    else:
        ckpt_io.save_atomic(payload, out)
    click.echo(f"{out}: marked in its weights ({ww.SCHEME}, {who}; {report.params} of {report.total_params} "
               f"parameters fine-tuned in {report.seconds:.0f} s): {summary}")


def main():
    cli()


if __name__ == "__main__":
    main()
