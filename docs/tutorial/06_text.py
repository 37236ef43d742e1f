"""Chapter 6: conditioning on text. Trains the text-to-video preset (configs/t2v.yaml: one bouncing shape per
clip, captioned "a red circle moving up-left quickly") for 1200 steps, renders six prompts with
generate.py --prompt, and measures how often a clip shows the prompt's colour and direction, with the same
measurement run on real clips and their captions as the reference.

\b
  python docs/tutorial/06_text.py            # about 3 minutes on 2 cores
  python docs/tutorial/06_text.py --short    # seconds: only checks that it runs
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

import _tutorial as tut
from gan.analysis.measure import direction_matches, dominant_colour, motion_vector
from gan.data.builtin import _DIRECTIONS, PALETTE
from gan.video_io import to_uint8, write_gif

STEPS = 1200
PROMPTS = ["a red circle moving left", "a blue square moving up", "a green triangle moving right",
           "a yellow circle moving down", "a magenta square moving up-left", "a cyan triangle moving down-right"]
SEEDS, FRAMES = 4, 16


def follows(clip: torch.Tensor, caption: str) -> Dict[str, bool]:
    """Does the clip [T, C, H, W] show the caption's colour and direction (centroid motion within 45 degrees)?"""
    words = caption.split()
    colour = next(w for w in words if w in PALETTE)
    direction = next(w for w in words if w in _DIRECTIONS)
    return {"colour": dominant_colour(clip) == colour, "direction": direction_matches(motion_vector(clip), direction)}


def rates(results) -> Dict[str, float]:
    return {k: round(float(np.mean([r[k] for r in results])), 3) for k in ("colour", "direction")}


def captioned_gif(path: Path, rows: Dict[str, torch.Tensor], fps: float, size: int = 48) -> Path:
    """An animated GIF with one row per prompt: its clips [S, T, C, H, W] side by side, the prompt beside them."""
    sep, text_w = 2, 290
    clips = {k: tut.upscale(to_uint8(v), size) for k, v in rows.items()}          # [S, T, size, size, 3]
    s, t = next(iter(clips.values())).shape[:2]
    width, height = s * (size + sep) + text_w, len(rows) * (size + sep)
    font = ImageFont.load_default(size=13)
    frames = []
    for k in range(t):
        canvas = Image.new("RGB", (width, height), (255, 255, 255))
        draw = ImageDraw.Draw(canvas)
        for r, (prompt, clip) in enumerate(clips.items()):
            y = r * (size + sep)
            for i in range(s):
                canvas.paste(Image.fromarray(clip[i, k]), (i * (size + sep), y))
            draw.text((s * (size + sep) + 6, y + size // 2 - 7), f'"{prompt}"', fill=(0, 0, 0), font=font)
        frames.append(np.asarray(canvas))
    write_gif(path, np.stack(frames), fps)
    print(f"wrote {path}")
    return path


@tut.chapter
def main(short, runs, figures):
    """Chapter 6: text-to-video (docs/tutorial/06_text.md)."""
    runs, figures = tut.folders(short, runs, figures)
    run = runs / "06_text"
    seconds = tut.train_run(run, "configs/t2v.yaml", short, *([] if short else ["--steps", STEPS]))
    ckpt = run / "checkpoints" / "latest.pt"
    clips = {}
    for i, prompt in enumerate(PROMPTS):
        tut.run("generate.py", "--checkpoint", ckpt, "--outdir", run / "prompts" / f"p{i}", "--prompt", prompt,
                "--seeds", f"0-{SEEDS - 1}", "--frames", FRAMES, "--format", "png")
        clips[prompt] = torch.stack([tut.read_frames(p) for p in sorted((run / "prompts" / f"p{i}").glob("seed*"))])
    captioned_gif(figures / "06_prompts.gif", clips, tut.run_config(run).data.fps)
    tut.strips(figures / "06_prompts.png", {f'"{p}"': c[0] for p, c in clips.items()}, size=64, every=2,
               title="seed 0 of each prompt, every 2nd frame of 16")

    cfg = tut.run_config(run)
    from gan.data import build_dataset
    dataset = build_dataset(cfg.data, seed=cfg.train.seed)
    real = [follows(dataset.preview(i, FRAMES)["video"], dataset.source.caption(i, 0)) for i in range(48)]
    generated = [follows(c, p) for p, cs in clips.items() for c in cs]
    colours = tut.colour_counts(torch.cat([*clips.values()]))              # one prompt per palette colour
    tut.save_numbers(figures, "06_text", {
        "steps": tut.log_records(run)[-1]["step"], "train_seconds": round(seconds, 1),
        "follows_prompt": {"generated": rates(generated), "real clips, own captions": rates(real),
                           "chance": {"colour": round(1 / len(PALETTE), 3), "direction": 0.25}},
        "clips_measured": {"generated": len(generated), "real": len(real)},
        "colours_one_prompt_per_colour": {"counts": colours, "effective": tut.effective_colours(colours)},
    })


if __name__ == "__main__":
    main()
