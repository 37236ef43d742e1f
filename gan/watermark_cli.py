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
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import click
import numpy as np

from gan import watermark as wm
from gan.cli_utils import Group
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


def detect_any(frames: np.ndarray, keys, threshold: float) -> wm.Detection:
    """Search each key (threshold split between them: Bonferroni); the detection with the lowest p_false,
    its p_false scaled to cover all keys searched."""
    best = None
    for key in keys:
        det = wm.detect(frames, key=key, threshold=threshold / len(keys))
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
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file and line: detected, p_false, "
              "payload, payload_valid, bit_confidence, z, shift, scale, frames, version, key_fingerprint, "
              "key_public, proves, verdict.")
@click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help=f"Private key file [default: ${wm.KEY_ENV}]; the public key is always searched too.")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True), default=wm.P_THRESHOLD, show_default=True,
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
            frames = read_frames(path, max_frames)
        except (OSError, ValueError, RuntimeError) as e:
            click.echo(f"{path}: error: {e}", err=True)
            failed = True
            continue
        det = detect_any(frames, keys, threshold)
        if as_json:
            proves = PROVES[bool(det.key_public)] if det.detected else None
            click.echo(json.dumps({"file": path, **det.to_dict(), "proves": proves}))
        else:
            click.echo(_line(path, det, names))
    sys.exit(EXIT_USER_ERROR if failed else 0)


@cli.command(help="Mark any video (or png folder / image): OUT by extension (.mp4 H.264 CRF 18, .gif, or a folder "
                  "of png frames when OUT has no suffix).")
@click.argument("src")
@click.argument("out")
@click.option("--payload", type=str, default="0", show_default=True,
              help="48-bit payload as hex (12 digits: 8 of model id, 4 of user id).")
@click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help=f"Private key file [default: ${wm.KEY_ENV}, else the public key].")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Frame rate of OUT [default: the input's, else 16].")
def embed(src, out, payload, key_file, fps):
    from gan import video_io
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


def main():
    cli()


if __name__ == "__main__":
    main()
