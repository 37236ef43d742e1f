"""Export the EMA generator of a training checkpoint to a small generator-only file.

The file holds plain data only (gan.checkpoint.generator_file, the one layout of generator files): G_ema's state
dict, the config as plain types, c_dim, class_names, the training step, the 'cond' entry (a text model's
built-in encoder and vocabulary) and a format version. No discriminators, no optimizer states, no RNG states. It loads with
`torch.load(weights_only=True)` through `gan.sampling.load_generator`, like a full checkpoint, so every
sampling entry point (generate.py, FastSampler) accepts either.

\b
Examples:
  python -m gan.export runs/default/checkpoints/latest.pt G.pt
  python -m gan.export runs/default/checkpoints/latest.pt G_half.pt --dtype bf16
  reelgan-export runs/default/checkpoints/latest.pt G.pt
  reelgan-export runs/default/checkpoints/latest.pt G.safetensors --format safetensors
  reelgan-export runs/default/checkpoints/latest.pt G.onnx --format onnx
  reelgan-export runs/default/checkpoints/latest.pt G.onnx --format onnx --split   # + per-video / per-frame graphs

\b
onnx (unconditional models): one ONNX graph (opset 18) for ONNX Runtime, dynamic batch and frame count:
z, truncation psi, motion anchor codes, anchor offset, times -> frames; the config in its metadata. --split adds
G.video.onnx (z, psi -> w and the content, once per clip) and G.frames.onnx (w, content, codes, anchor offset,
times -> frames, per chunk) beside it, which generate.py uses for fp32 when they are there.
`python generate.py --checkpoint G.onnx` renders the same clips as the checkpoint (gan/onnx_export.py).

\b
safetensors: the same weights and fields, the config as JSON in the file's metadata; generate.py and every
other reelgan command read it like the .pt file. For the Hugging Face Hub layout (a folder with a model card):
gan.hub.ReelganGenerator.from_checkpoint(CKPT).save_pretrained(DIR).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Union

import click
import torch

from gan.cli_utils import Command
from gan.config import Config
from gan.networks import build_generator
from gan import checkpoint as ckpt_io

KIND = ckpt_io.GENERATOR_KIND
STORE_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


FORMATS = ("pt", "safetensors", "onnx")


def export_generator(checkpoint: Union[str, Path], out: Union[str, Path], dtype: str = "fp32",
                     overwrite: bool = False, fmt: str = "pt", split: bool = False) -> Dict:
    """Write the generator-only file `out` from `checkpoint` (a training checkpoint or an exported file),
    as torch .pt or safetensors (fmt). dtype 'bf16'/'fp16' stores floating-point weights at half the size
    (they load back into float32). Returns a summary: path, bytes, params, step."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    checkpoint, out = Path(checkpoint), Path(out)
    if dtype not in STORE_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(STORE_DTYPES)}, got {dtype!r}")
    if out.exists() and out.resolve() == checkpoint.resolve():
        raise ckpt_io.CheckpointError(f"refusing to export {checkpoint} onto itself")
    if split and fmt != "onnx":
        raise ckpt_io.CheckpointError("--split makes the per-video and per-frame ONNX graphs: use it with "
                                      "--format onnx")
    if split:
        from gan.onnx_export import split_paths
        taken = [p for p in split_paths(out) if p.exists()]
        if taken and not overwrite:
            raise ckpt_io.CheckpointError(f"{taken[0]} exists; pass --force to overwrite it")
    if out.exists() and not overwrite:
        raise ckpt_io.CheckpointError(f"{out} exists; pass --force to overwrite it")
    if fmt == "onnx":                   # one ONNX Runtime graph, float32 (gan/onnx_export.py)
        if dtype != "fp32":
            raise ckpt_io.CheckpointError("--format onnx stores float32 weights: leave out --dtype "
                                          "(int8: generate.py --precision int8)")
        from gan.onnx_export import export_checkpoint_onnx
        info = export_checkpoint_onnx(checkpoint, out, split=split)
        return {**info, "params": None, "source_bytes": checkpoint.stat().st_size}
    ckpt = ckpt_io.load(checkpoint, map_location="cpu")
    Config.from_checkpoint(ckpt["config"], checkpoint)             # a stored config out of range: one line
    ckpt_io.c_dim_of(ckpt, checkpoint)
    store = STORE_DTYPES[dtype]
    if store.is_floating_point:                            # a weight beyond the dtype's range would become Inf
        top = torch.finfo(store).max
        weights = ckpt[ckpt_io.generator_key(ckpt, checkpoint)]
        big = [k for k, v in weights.items() if v.is_floating_point() and v.float().abs().max() > top]
        if big:
            raise ckpt_io.CheckpointError(f"{checkpoint}: weight '{big[0]}' exceeds {dtype}'s range "
                                          f"(|w| > {top:g}); export with --dtype bf16 or fp32")
    payload = ckpt_io.generator_file(ckpt, checkpoint, STORE_DTYPES[dtype], weights_dtype=dtype)
    payload["config"] = ckpt_io.shareable_config(payload["config"])
    # Rebuild G from the checkpoint's own config and load strictly: a file that would not load later
    # is never written.
    G = build_generator(Config.from_dict(payload["config"]), payload["c_dim"])
    ckpt_io.load_modules({"G": {k: v.float() if v.is_floating_point() else v for k, v in payload["G_ema"].items()}},
                         {"G": G}, checkpoint)
    state = payload["G_ema"]
    if fmt == "safetensors":
        ckpt_io.save_safetensors(payload, out)
    else:
        ckpt_io.save_atomic(payload, out)
    return {"path": str(out), "bytes": out.stat().st_size, "params": sum(v.numel() for v in state.values()),
            "step": ckpt.get("step"), "source_bytes": checkpoint.stat().st_size}


@click.command(cls=Command, help=__doc__)
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--dtype", type=click.Choice(sorted(STORE_DTYPES)), default="fp32", show_default=True,
              help="Storage precision of the weights (bf16/fp16 halve the file; they load as float32).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="File format [default: safetensors when OUT ends in .safetensors, else pt].")
@click.option("--split", is_flag=True, help="onnx: also write OUT's per-video and per-frame halves (G.video.onnx, "
              "G.frames.onnx) beside it; ONNX Runtime sampling then computes a clip's per-video work once.")
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
def cli(checkpoint, out, dtype, fmt, split, force):
    fmt = fmt or {".safetensors": "safetensors", ".onnx": "onnx"}.get(Path(out).suffix.lower(), "pt")
    info = export_generator(checkpoint, out, dtype=dtype, overwrite=force, fmt=fmt, split=split)
    if fmt == "onnx":
        also = f"; with {', '.join(Path(p).name for p in info['files'][1:])}" if split else ""
        click.echo(f"{info['path']}: ONNX opset {info['opset']}, {info['bytes'] / 2**20:.2f} MiB "
                   f"(from {info['source_bytes'] / 2**20:.2f} MiB), step {info['step']}{also}")
        return
    click.echo(f"{info['path']}: {info['params'] / 1e6:.2f}M values, {info['bytes'] / 2**20:.2f} MiB "
               f"(from {info['source_bytes'] / 2**20:.2f} MiB), step {info['step']}")


def main():
    cli()


if __name__ == "__main__":
    main()
