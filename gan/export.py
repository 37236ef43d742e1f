"""Export the EMA generator of a training checkpoint to a small generator-only file.

The file holds plain data only: G_ema's state dict, the config as plain types, c_dim, class_names, the
training step and a format version. No discriminators, no optimizer states, no RNG states. It loads with
`torch.load(weights_only=True)` through `gan.sampling.load_generator`, like a full checkpoint, so every
sampling entry point (generate.py, FastSampler) accepts either.

\b
Examples:
  python -m gan.export runs/default/checkpoints/latest.pt G.pt
  python -m gan.export runs/default/checkpoints/latest.pt G_half.pt --dtype bf16
  reelgan-export runs/default/checkpoints/latest.pt G.pt
  reelgan-export runs/default/checkpoints/latest.pt G.safetensors --format safetensors

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

KIND = "reelgan-generator"
STORE_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


FORMATS = ("pt", "safetensors")


def export_generator(checkpoint: Union[str, Path], out: Union[str, Path], dtype: str = "fp32",
                     overwrite: bool = False, fmt: str = "pt") -> Dict:
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
    if out.exists() and not overwrite:
        raise ckpt_io.CheckpointError(f"{out} exists; pass --force to overwrite it")
    ckpt = ckpt_io.load(checkpoint, map_location="cpu")
    key = ckpt_io.generator_key(ckpt, checkpoint)
    cfg = Config.from_checkpoint(ckpt["config"], checkpoint)
    c_dim = ckpt_io.c_dim_of(ckpt, checkpoint)
    # Rebuild G from the checkpoint's own config and load strictly: a file that would not load later
    # is never written.
    G = build_generator(cfg, c_dim)
    ckpt_io.load_modules(ckpt, {key: G}, checkpoint)
    store = STORE_DTYPES[dtype]
    if store.is_floating_point:                            # a weight beyond the dtype's range would become Inf
        top = torch.finfo(store).max
        big = [k for k, v in G.state_dict().items() if v.is_floating_point() and v.abs().max() > top]
        if big:
            raise ckpt_io.CheckpointError(f"{checkpoint}: weight '{big[0]}' exceeds {dtype}'s range "
                                          f"(|w| > {top:g}); export with --dtype bf16 or fp32")
    state = {k: (v.to(store) if v.is_floating_point() else v).clone()
             for k, v in G.state_dict().items()}
    payload = {
        "format_version": ckpt_io.FORMAT_VERSION,
        "kind": KIND,
        "config": cfg.to_dict(),
        "c_dim": c_dim,
        "class_names": [str(n) for n in ckpt.get("class_names", [])],
        "step": ckpt.get("step"),
        "weights_dtype": dtype,
        "G_ema": state,
    }
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
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
def cli(checkpoint, out, dtype, fmt, force):
    fmt = fmt or ("safetensors" if str(out).endswith(".safetensors") else "pt")
    info = export_generator(checkpoint, out, dtype=dtype, overwrite=force, fmt=fmt)
    click.echo(f"{info['path']}: {info['params'] / 1e6:.2f}M values, {info['bytes'] / 2**20:.2f} MiB "
               f"(from {info['source_bytes'] / 2**20:.2f} MiB), step {info['step']}")


def main():
    cli()


if __name__ == "__main__":
    main()
