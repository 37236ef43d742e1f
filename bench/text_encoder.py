"""Text encoder benchmark: does a text-to-video model follow prompts in words no training caption uses?

Two t2v models on the built-in shapes (configs/t2v.yaml: built-in bag-of-words encoder trained with the Ds;
configs/t2v_minilm.yaml: frozen all-MiniLM-L6-v2) are asked for test-split clips three ways: with the plain
caption ("a red circle moving left"), and with its two held-out paraphrases (gan/conditioning/paraphrase.py:
"the crimson disc drifting leftwards", "the scarlet ball gliding westwards"; checked here to share no word with
any training caption). Each clip goes through bench/conditional.py's measurement (reelgan-analyze's detector,
tracker and shapes classifier: colour, shape, direction within 45 degrees); attribute accuracy is the mean of
the three. Also: the layered G's sprite drift read off G, and how near each paraphrase embeds to its own plain
caption among all 432 captions (rank 0 = nearest; chance 215.5).

\b
  python bench/text_encoder.py --steps 1500              # trains both, then measures: ~40 min on a shared CPU
  python bench/text_encoder.py --reuse --clips 64        # measure runs already in --workdir
Writes bench/results/text_encoder-<date>.json and BENCHMARKS.md's "Text encoder" section (between
<!-- text_encoder:start --> and <!-- text_encoder:end -->).
"""
from __future__ import annotations

import datetime as dt
import itertools
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import Dict, List

import click
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

START, END = "<!-- text_encoder:start -->", "<!-- text_encoder:end -->"
MODELS = {"built-in bag of words": "configs/t2v.yaml", "MiniLM (frozen)": "configs/t2v_minilm.yaml"}
RUN_DIR = {"built-in bag of words": "builtin", "MiniLM (frozen)": "minilm"}
KEYS = ("colour", "class", "direction")


def all_captions() -> List[str]:
    """Every one-object shapes caption: 6 colours x 3 shapes x 8 directions x 3 speeds."""
    from gan.data.builtin import _DIRECTIONS, PALETTE, BouncingShapes, indefinite_article
    return [f"{indefinite_article(c)} {c} {s} moving {d}" + (f" {sp}" if sp else "")
            for c, s, d, sp in itertools.product(PALETTE, BouncingShapes.class_names, _DIRECTIONS,
                                                 ["", "slowly", "quickly"])]


def training_captions(cfg) -> List[str]:
    """The captions the models trained on (every video, every frame a clip may start at) and every caption the
    dataset could write: the vocabulary the paraphrases must avoid."""
    from gan.data import build_dataset
    src = build_dataset(cfg.data, seed=cfg.train.seed).source
    return sorted({src.caption(i, f) for i in range(len(src)) for f in range(0, cfg.data.video_frames, 4)}
                  | set(all_captions()))


def caption_factors() -> List[tuple]:
    """(colour, shape, direction) of each of all_captions(), in the same order."""
    from gan.data.builtin import _DIRECTIONS, PALETTE, BouncingShapes
    return [(c, s, d) for c, s, d, _ in itertools.product(PALETTE, BouncingShapes.class_names, _DIRECTIONS, range(3))]


@torch.no_grad()
def embedding_ranks(enc) -> Dict:
    """Where paraphrases embed. Rank of each paraphrase's own plain caption among all captions by cosine (0:
    nearest), and a linear read-out of each factor (ridge regression onto one-hot targets, lambda 1) fitted on the
    plain captions' embeddings and applied to the paraphrases': the best a read-out like G's first layer can do
    when it learns from the training captions only."""
    from gan.conditioning.paraphrase import VARIANTS, paraphrase
    caps, facts = all_captions(), caption_factors()
    E = torch.nn.functional.normalize(enc.encode(caps).float(), dim=1)
    X = torch.cat([E, torch.ones(len(E), 1)], 1)
    readouts = []
    for k in range(3):
        values = sorted({f[k] for f in facts})
        Y = torch.tensor([[float(f[k] == v) for v in values] for f in facts])
        readouts.append((torch.linalg.solve(X.T @ X + torch.eye(X.shape[1]), X.T @ Y), Y.argmax(1)))
    out = {}
    for v in range(VARIANTS):
        P = torch.nn.functional.normalize(enc.encode([paraphrase(c, v) for c in caps]).float(), dim=1)
        S = P @ E.T
        rank = (S > S.diagonal()[:, None]).sum(1).float()
        Xp = torch.cat([P, torch.ones(len(P), 1)], 1)
        probe = {name: float(((Xp @ W).argmax(1) == y).float().mean())
                 for name, (W, y) in zip(KEYS, readouts)}
        out[f"variant {v}"] = {"top1": float((rank == 0).float().mean()), "mean_rank": float(rank.mean()),
                               "readout": probe}
    return out


@torch.no_grad()
def evaluate(ckpt: Path, clips: int, frames: int = 8) -> Dict:
    from bench.conditional import builtin_of, test_set
    from gan.analysis.measure import direction_matches, prompt_agreement
    from gan.conditioning.paraphrase import VARIANTS, paraphrase
    from gan.analysis.analyzer import AnalysisConfig, ClipAnalyzer
    from gan.analysis.classifier import ObjectLabeler
    from gan.sampling import ClipRenderer, load_conditional, prompt_condition, seed_z
    from gan.video_io import to_uint8
    G, info = load_conditional(ckpt)
    cfg, enc = info["config"], info["text_encoder"]
    ds = test_set(cfg, clips)
    analyzer = ClipAnalyzer(ObjectLabeler(builtin_of(cfg)), config=AnalysisConfig(expected_objects=1))
    prompts = {"plain": lambda c: c, **{f"paraphrase {v}": (lambda c, v=v: paraphrase(c, v)) for v in range(VARIANTS)}}
    rows: Dict[str, List[Dict]] = {k: [] for k in prompts}
    drift: Dict[str, List[bool]] = {k: [] for k in prompts}
    for i in range(clips):
        obj, caption = ds.factors(i)["objects"][0], ds.caption(i)
        for name, make in prompts.items():
            p = make(caption)
            clip = ClipRenderer(G, fused=False).render([i], frames, c=prompt_condition(enc, p, [i]))[0]
            rows[name].append(prompt_agreement(analyzer.analyze(to_uint8(clip.float())), obj))
            if G.objects > 0:                # the layered G's sprite velocity for this prompt, no tracking
                vel = G.drift(G.mapping_forward(seed_z(G, [i], "cpu"), enc.encode([p]).float()))[0, 0]
                drift[name].append(direction_matches(vel, obj["direction"]))
    out = {"steps": info["step"], "example": {k: make(ds.caption(0)) for k, make in prompts.items()}}
    for name, r in rows.items():
        acc = {k: float(np.mean([bool(x[k]) for x in r])) for k in KEYS}
        acc["attributes"] = float(np.mean([acc[k] for k in KEYS]))
        acc["all"] = float(np.mean([bool(x["all"]) for x in r]))
        if drift[name]:
            acc["drift direction"] = float(np.mean(drift[name]))
        out[name] = acc
    para = np.mean([out[f"paraphrase {v}"]["attributes"] for v in range(VARIANTS)])
    out["paraphrase mean"] = {k: float(np.mean([out[f"paraphrase {v}"][k] for v in range(VARIANTS)]))
                              for k in out["plain"]}
    out["ratio"] = float(para / max(out["plain"]["attributes"], 1e-9))
    out["embedding_ranks"] = embedding_ranks(enc)
    return out


def render_section(doc: Dict, json_path: str) -> str:
    m = doc["machine"]
    pct = lambda v: f"{v:.0%}"
    out = [f"_`{doc['command']}` on {doc['date']}: {m['cpu']} ({m['cores']} cores, shared with other jobs; torch "
           f"threads 1), torch {m['torch']}. Both models trained {doc['steps']} steps x batch {doc['batch']} from "
           f"their presets (16 px shapes, one object), then asked for {doc['clips']} test-split clips (seeds 0..), "
           f"8 frames each. Raw results: `{json_path}`. Total time {doc['total_s'] / 60:.0f} min._", "",
           f"Held-out check: the paraphrases' words (and parts of hyphenated ones) against the words of "
           f"{doc['held_out']['training_captions']} distinct captions (all the training data has or can have): "
           f"{'no word shared' if not doc['held_out']['shared'] else 'SHARED: ' + ', '.join(doc['held_out']['shared'])}."
           , "",
           "| encoder | prompts | colour | shape | direction | attribute accuracy | all three | sprite drift |",
           "|---|---|---|---|---|---|---|---|"]
    for model, r in doc["results"].items():
        for name in ("plain", "paraphrase 0", "paraphrase 1"):
            v = r[name]
            label = {"plain": f"plain (\"{r['example']['plain']}\")",
                     "paraphrase 0": f"held-out paraphrase (\"{r['example']['paraphrase 0']}\")",
                     "paraphrase 1": f"held-out paraphrase (\"{r['example']['paraphrase 1']}\")"}[name]
            out.append(f"| {model} | {label} | {pct(v['colour'])} | {pct(v['class'])} | {pct(v['direction'])} | "
                       f"{pct(v['attributes'])} | {pct(v['all'])} | {pct(v.get('drift direction', float('nan')))} |")
    out += ["", "Chance: colour 17%, shape 33%, direction 25%. Paraphrase attribute accuracy as a share of the same "
            "model's plain-caption accuracy (the target is >= 80%): "
            + "; ".join(f"{model} **{r['ratio']:.0%}**" for model, r in doc["results"].items()) + ".", "",
            "Where each paraphrase embeds: rank of its own plain caption among all 432 captions by cosine (0: "
            "nearest; chance 215.5), mean over the 432 paraphrases of each kind:", "",
            "| encoder | paraphrase 0: mean rank | top-1 | paraphrase 1: mean rank | top-1 |", "|---|---|---|---|---|"]
    for model, r in doc["results"].items():
        e = r["embedding_ranks"]
        out.append(f"| {model} | {e['variant 0']['mean_rank']:.0f} | {pct(e['variant 0']['top1'])} | "
                   f"{e['variant 1']['mean_rank']:.0f} | {pct(e['variant 1']['top1'])} |")
    out += ["", "A linear read-out of each factor fitted on the 432 plain captions' embeddings (ridge, lambda 1), "
            "applied to the paraphrases' embeddings (paraphrase 0 / 1; what a first layer that learned from the "
            "training captions alone can read from a paraphrase):", "",
            "| encoder | colour | shape | direction |", "|---|---|---|---|"]
    for model, r in doc["results"].items():
        e = [r["embedding_ranks"][f"variant {v}"]["readout"] for v in (0, 1)]
        out.append(f"| {model} | " + " | ".join(f"{pct(e[0][k])} / {pct(e[1][k])}" for k in KEYS) + " |")
    return "\n".join(out)


def update_markdown(path: Path, doc: Dict, json_path: str) -> None:
    body = f"{START}\n{render_section(doc, json_path)}\n{END}"
    text = path.read_text() if path.exists() else "# reelgan benchmarks\n"
    if START in text and END in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: body, text, count=1, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n## Text encoder\n" + body + "\n"
    path.write_text(text)


@click.command(help=__doc__)
@click.option("--steps", type=click.IntRange(min=1), default=1500, show_default=True, help="Training steps per model.")
@click.option("--clips", type=click.IntRange(min=2), default=64, show_default=True, help="Test clips per prompt kind.")
@click.option("--workdir", type=click.Path(file_okay=False), default=str(ROOT / "runs" / "bench_text_encoder"),
              show_default=True, help="Run folders <workdir>/builtin and <workdir>/minilm.")
@click.option("--reuse", is_flag=True, help="Measure the checkpoints already in --workdir instead of training.")
@click.option("--markdown/--no-markdown", default=True, show_default=True, help="Refresh BENCHMARKS.md.")
def cli(steps, clips, workdir, reuse, markdown):
    from bench.conditional import train_steps
    from gan.conditioning.paraphrase import VARIANTS, held_out_violations, paraphrase
    from gan.config import load_config
    torch.set_num_threads(1)
    t0 = time.time()
    log = lambda m: click.echo(m, err=True)
    cfg = load_config(str(ROOT / MODELS["MiniLM (frozen)"]))
    seen = training_captions(cfg)
    shared = held_out_violations([paraphrase(c, v) for c in all_captions() for v in range(VARIANTS)], seen)
    if shared:
        raise SystemExit(f"paraphrases share words with training captions: {shared}")
    work = Path(workdir)
    results, batch, trained_steps = {}, None, set()
    for model, config in MODELS.items():
        run = work / RUN_DIR[model]
        if not reuse:
            log(f"training {model} from {config} for {steps} steps")
            batch = train_steps(config, {}, run, steps)["batch"]
        log(f"measuring {model}")
        results[model] = evaluate(run / "checkpoints" / "latest.pt", clips)
        trained_steps.add(results[model]["steps"])
    batch = batch or load_config(str(ROOT / MODELS["MiniLM (frozen)"])).train.batch
    doc = {"date": dt.date.today().isoformat(), "command": "python bench/text_encoder.py " + " ".join(sys.argv[1:]),
           "steps": "/".join(str(s) for s in sorted(trained_steps)), "batch": batch, "clips": clips,
           "held_out": {"training_captions": len(seen), "shared": shared},
           "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                       "torch": torch.__version__, "python": platform.python_version()},
           "results": results, "total_s": time.time() - t0}
    from bench.report import save_results
    path = save_results(doc, f"text_encoder-{doc['date']}", ROOT, render_section,
                        update_markdown if markdown else None)
    log(f"done in {(time.time() - t0) / 60:.1f} min; wrote {path}")


if __name__ == "__main__":
    cli()
