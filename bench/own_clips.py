"""Quality on clips reelgan has never seen, beside the built-in default (not a test).

The footage comes from bench/footage.py (held-out digits drawn by another renderer: other sprite size, speed,
background level and noise, stored as RGB mp4 at 96 px). A model trained with `train.py --data FOLDER` is
measured against that folder, a model trained on the built-in digits against the built-in digits, each with
the real data's own floor (an independent draw of real clips, and the analysis of real clips):

    python bench/own_clips.py --footage data/footage_digits --held-out data/footage_digits_test \\
        --own runs/q_unseen/checkpoints/latest.pt --own runs/q_unseen_synth/checkpoints/latest.pt \\
        --builtin runs/q_builtin/checkpoints/latest.pt
Writes bench/results/own-clips-<date>.json, a frame strip per checkpoint in docs/ (own_clips_<run>.png), and
the table between <!-- ownclips:start --> and <!-- ownclips:end --> of BENCHMARKS.md.
"""
from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.quality import COLUMNS, _fmt, evaluate_row  # noqa: E402
from bench.report import replace_section  # noqa: E402

START, END = "<!-- ownclips:start -->", "<!-- ownclips:end -->"


def strip(clips, path: Path, videos: int = 6, frames: int = 8) -> None:
    """A PNG of `videos` rows x `frames` columns (every second frame) from a ClipSource at 64 px."""
    from PIL import Image
    from gan.clip_sources import ClipSpec
    batch = next(clips.clips(videos, ClipSpec(frames * 2, 64, 1), seed=0, batch=videos))   # [V, T, H, W, 3]
    rows = [np.concatenate(list(v[::2]), axis=1) for v in batch]
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def table(rows) -> str:
    head = "| data | row | steps | " + " | ".join(name for _, name in COLUMNS) + " |"
    out = [head, "|" + "---|" * (3 + len(COLUMNS))]
    for r in rows:
        out.append(f"| {r['dataset']} | {r['row']} | {r.get('step', '')} | "
                   + " | ".join(_fmt(k, r.get(k)) for k, _ in COLUMNS) + " |")
    return "\n".join(out)


@click.command()
@click.option("--footage", type=click.Path(exists=True, file_okay=False), required=True,
              help="The folder the --own models trained on.")
@click.option("--held-out", type=click.Path(exists=True, file_okay=False), required=True,
              help="Other clips of the same kind (bench/footage.py --offset): the real floor.")
@click.option("--own", multiple=True, type=click.Path(exists=True, dir_okay=False), help="Trained on --footage.")
@click.option("--builtin", multiple=True, type=click.Path(exists=True, dir_okay=False), help="Trained on digits.")
@click.option("--num", type=click.IntRange(min=16), default=256, show_default=True)
@click.option("--analysis-num", type=click.IntRange(min=4), default=64, show_default=True)
@click.option("--note", default="", help="Printed under the table (how the runs were made).")
@click.option("--markdown/--no-markdown", default=True, show_default=True)
def main(footage, held_out, own, builtin, num, analysis_num, note, markdown):
    """Own-clips quality table; see the module docstring."""
    import torch
    from gan.clip_sources import DatasetClips, GeneratorClips
    torch.manual_seed(0)
    rows = []
    real = DatasetClips(footage)
    rows.append(evaluate_row("(a) held-out real clips (floor)", DatasetClips(held_out), real, 64, "digits", num,
                             analysis_num, 2, analyse_real=True, offline_dataset="digits"))
    rows[-1]["dataset"] = "footage digits"
    docs = ROOT / "docs"
    strip(real, docs / "own_clips_real.png")
    for ckpt in own:
        g = GeneratorClips(ckpt)
        cfg = g.config
        kind = f"layered G, {cfg.G.objects} sprites" if cfg.G.objects > 0 else "synthesis G"
        rows.append(evaluate_row(f"(c) trained on the folder ({kind})", g, real, 64, "digits", num, analysis_num, 2,
                                 offline_dataset="digits"))
        rows[-1].update(dataset="footage digits", step=g.info.get("step"), checkpoint=ckpt)
        strip(g, docs / f"own_clips_{Path(ckpt).parents[1].name}.png")
    for ckpt in builtin:
        g = GeneratorClips(ckpt)
        real_b = DatasetClips.from_config(g.config.data, content_seed=g.config.train.seed)
        other = DatasetClips.from_config(g.config.data, content_seed=g.config.train.seed + 1)
        rows.append(evaluate_row("(a) real vs real (floor)", other, real_b, 64, "digits", num, analysis_num, 2,
                                 analyse_real=True))
        rows[-1]["dataset"] = "built-in digits"
        rows.append(evaluate_row("(c) built-in default", g, real_b, 64, "digits", num, analysis_num, 2))
        rows[-1].update(dataset="built-in digits", step=g.info.get("step"), checkpoint=ckpt)
        strip(g, docs / f"own_clips_{Path(ckpt).parents[1].name}.png")
    date = dt.date.today().isoformat()
    doc = {"date": date, "command": "python bench/own_clips.py " + " ".join(sys.argv[1:]), "note": note,
           "rows": [{k: v for k, v in r.items() if k not in ("metrics_report",)} for r in rows]}
    out = ROOT / "bench" / "results" / f"own-clips-{date}.json"
    out.write_text(json.dumps(doc, indent=1, default=str))
    text = table(rows)
    click.echo(text)
    if markdown:
        replace_section(ROOT / "BENCHMARKS.md", START, END, "Quality on clips reelgan has never seen",
                        f"`{doc['command']}` ({date}). {note}\n\n{text}")


if __name__ == "__main__":
    main()
