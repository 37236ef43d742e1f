"""Camera footage scores (gan/analysis/footage.py, no network) of real footage and of models trained on it (not a test).

For a footage folder: real 16-frame windows, and each checkpoint's clips, scored against the real per-pixel median
background. Writes bench/results/camera-<name>.json, a figure docs/camera_<name>.png (2 clips x 8 frames per row,
every second frame, rows in the table's order) and prints the table.
--untrained adds today's default G and the scene G as `train.py --data` starts them (step 0).

    python bench/camera_scores.py --data DIR --name street --ckpt default=runs/a/checkpoints/latest.pt \\
        --ckpt scene=runs/b/checkpoints/latest.pt --untrained
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COLUMNS = ["scene_error", "foreground", "regions", "persistence", "change", "static_clips", "global_motion",
           "compensated_change", "identity"]


def figure(rows, path: Path, clips: int = 2, frames: int = 8) -> None:
    """One small PNG: for each row (real, then each model) `clips` clips x `frames` frames (every second frame), rows
    of models separated by a white line, quantised to 128 colours."""
    from PIL import Image
    blocks = []
    for video in rows.values():
        blocks.append(np.concatenate([np.concatenate(list(c[:2 * frames:2]), axis=1) for c in video[:clips]], axis=0))
        blocks.append(np.full((2, blocks[-1].shape[1], 3), 255, np.uint8))
    Image.fromarray(np.concatenate(blocks[:-1], axis=0)).quantize(128).save(path, optimize=True)


def at_step_zero(data: str, camera: str):
    """The generator `python train.py --data DATA --set G.camera=CAMERA` starts from: the settings read off the
    data, random weights seeded as training seeds them, a scene G's background bank started from the footage."""
    import torch
    from gan.config import load_config
    from gan.data.dataset import build_dataset, infer_settings
    from gan.clip_sources import GeneratorClips
    from gan.networks import build_generator
    from gan.training.run import fit_backgrounds
    cfg = load_config(str(ROOT / "configs" / "default.yaml"), {"data": {"source": data}, "G": {"camera": camera}})
    dataset = build_dataset(cfg.data, seed=cfg.train.seed)
    infer_settings(cfg, dataset)
    torch.manual_seed(cfg.train.seed)
    G = build_generator(cfg)
    if G.backgrounds > 0:
        fit_backgrounds(G, dataset.source)
    return GeneratorClips.from_module(G.eval(), cfg)


@click.command()
@click.option("--data", type=click.Path(exists=True, file_okay=False), required=True, help="The real footage.")
@click.option("--name", required=True, help="Names the JSON and the strips.")
@click.option("--ckpt", multiple=True, help="ROW=CHECKPOINT, trained on --data (or on footage of its kind).")
@click.option("--untrained/--no-untrained", default=False, show_default=True,
              help="Also today's default G and the scene G as training starts them on --data (step 0).")
@click.option("--num", type=click.IntRange(min=4), default=32, show_default=True)
@click.option("--frames", type=click.IntRange(min=3), default=16, show_default=True)
@click.option("--faces", is_flag=True, help="Also the identity score.")
def main(data, name, ckpt, untrained, num, frames, faces):
    """Scores of real footage and of checkpoints; see the module docstring."""
    from gan.clip_sources import ClipSpec, DatasetClips, GeneratorClips
    from gan.analysis.footage import background, luma, scores
    spec = ClipSpec(frames, 64, 1)
    real = np.concatenate(list(DatasetClips(data).clips(num, spec, seed=0, batch=8)))
    bg = background(luma(real))
    rows = {"real": real}
    if untrained:
        for row, camera in (("default step 0", "none"), ("scene step 0", "auto")):
            rows[row] = np.concatenate(list(at_step_zero(data, camera).clips(num, spec, seed=0, batch=8)))
    for item in ckpt:
        row, path = item.split("=", 1)
        rows[row] = np.concatenate(list(GeneratorClips(path).clips(num, spec, seed=0, batch=8)))
    out = {row: scores([clips], bg, faces=faces) for row, clips in rows.items()}
    figure(rows, ROOT / "docs" / f"camera_{name}.png")
    doc = {"command": "python bench/camera_scores.py " + " ".join(sys.argv[1:]), "rows": out, "row_order": list(out)}
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / f"camera-{name}.json").write_text(json.dumps(doc, indent=1))
    cols = [c for c in COLUMNS if any(c in r for r in out.values())]
    click.echo("| row | " + " | ".join(cols) + " |\n|" + "---|" * (len(cols) + 1))
    for row, s in out.items():
        click.echo(f"| {row} | " + " | ".join(f"{s[c]:.4g}" if c in s else "" for c in cols) + " |")


if __name__ == "__main__":
    main()
