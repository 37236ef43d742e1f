"""Text probe: which way of turning all-MiniLM-L6-v2's outputs into one condition vector lets a read-out learned
from the plain captions alone read the held-out paraphrases? No GAN: a linear read-out of each factor (colour,
shape, direction; ridge onto one-hot targets, lambda 1, as bench/text_encoder.py) is fitted on the 432 plain
shapes captions' condition vectors and applied to the two held-out paraphrase sets (gan/conditioning/paraphrase.py,
checked here to share no word with the captions). Everything fitted (read-outs, centring, whitening, anchors)
sees the plain captions or their vocabulary only.

\b
  python bench/text_probe.py                    # ~1.5 min on one core; prints the tables, writes JSON
Writes bench/results/text_probe-<date>.json.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import click
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan.config import CAPTION_WORD  # noqa: E402

KEYS = ("colour", "class", "direction")


def ridge_readouts(X: torch.Tensor, facts: List[tuple], lam: float = 1.0):
    """One ridge read-out per factor fitted on X [N, D] (plain captions): a list of W [D + 1, values]."""
    X1 = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], 1)
    out = []
    for k in range(3):
        values = sorted({f[k] for f in facts})
        Y = torch.tensor([[float(f[k] == v) for v in values] for f in facts], dtype=X.dtype)
        out.append(torch.linalg.solve(X1.T @ X1 + lam * torch.eye(X1.shape[1], dtype=X.dtype), X1.T @ Y))
    return out


def readout_accuracy(readouts, X: torch.Tensor, facts: List[tuple]) -> Dict[str, float]:
    X1 = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], 1)
    out = {}
    for k, (name, W) in enumerate(zip(KEYS, readouts)):
        values = sorted({f[k] for f in facts})
        y = torch.tensor([values.index(f[k]) for f in facts])
        out[name] = float(((X1 @ W).argmax(1) == y).float().mean())
    return out


def word_groups() -> List[List[str]]:
    """The shapes dataset's caption word groups (what the matching-aware loss swaps): colours, shapes, directions,
    speeds."""
    from gan.data.builtin import _DIRECTIONS, PALETTE, BouncingShapes
    return [list(PALETTE), list(BouncingShapes.class_names), list(_DIRECTIONS), ["slowly", "quickly"]]


class WordVectors:
    """MiniLM's vector of each word alone ("[CLS] word [SEP]", mean-pooled, unit norm), memoised."""

    def __init__(self, enc):
        self.enc, self._memo = enc, {}

    def __call__(self, ws: List[str]) -> torch.Tensor:
        new = [w for w in dict.fromkeys(ws) if w not in self._memo]
        if new:
            self._memo.update(zip(new, self.enc.embed(new).double()))
        return torch.stack([self._memo[w] for w in ws])


@torch.no_grad()
def layer_means(enc, texts: List[str]) -> List[torch.Tensor]:
    """Per layer (0: the embedding layer, 6: the output), the mean over the caption's tokens ([CLS]/[SEP] left
    out), unit norm: 7 x [B, 384]."""
    ids, mask = enc.tokenizer(texts)
    x = enc.net.embeddings(ids)
    bias = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
    outs = [x]
    for layer in enc.net.layers:
        x = layer(x, bias)
        outs.append(x)
    m = mask.clone().double()
    m[:, 0] = 0
    m[torch.arange(len(texts)), mask.sum(1) - 1] = 0
    return [F.normalize((o.double() * m[..., None]).sum(1) / m.sum(1, keepdim=True), dim=1) for o in outs]


def slot_features(words: WordVectors, groups: List[List[str]], texts: List[str], tau: float = 0.05) -> torch.Tensor:
    """Per caption word group (colours, shapes, directions, speeds), a softmax over the group's words (hyphenated
    ones by their parts: 'up-right' -> up, right) of the best cosine any word of the text has with each: [B, F]."""
    parts = [sorted({p for w in g for p in w.split("-")}) for g in groups]
    anchors = [words(p) for p in parts]
    rows = []
    for t in texts:
        U = words([p for w in CAPTION_WORD.findall(t.lower()) for p in w.split("-")])
        rows.append(torch.cat([((U @ A.T).max(0).values / tau).softmax(0) for A in anchors]))
    return torch.stack(rows)


def candidates(enc, vocab: List[str], plain: List[str]) -> Dict[str, Callable[[List[str]], torch.Tensor]]:
    """name -> texts -> condition vectors [N, D]. `vocab`: the plain captions' words; `plain`: the plain captions
    (what centring / whitening statistics come from). Nothing here sees a paraphrase."""
    words = WordVectors(enc)
    mean = lambda texts: enc.embed(texts).double()
    E = mean(plain)                                    # (d): statistics of the plain captions' sentence vectors
    mu = E.mean(0)
    C = torch.cov((E - mu).T)
    C = C + 1e-3 * float(torch.trace(C)) / C.shape[0] * torch.eye(C.shape[0], dtype=C.dtype)   # shrinkage
    evals, evecs = torch.linalg.eigh(C)
    whiten = evecs @ torch.diag(evals.rsqrt()) @ evecs.T
    V = words(vocab)                                   # [A, 384] the training words, each alone
    Q = torch.linalg.qr(V.T)[0]                        # orthonormal basis of their span

    def word_mean(texts):                              # (c) mean of each word's own vector
        return torch.stack([F.normalize(words(CAPTION_WORD.findall(t.lower())).mean(0), dim=0) for t in texts])

    def anchored(texts, tau):                          # (c) each word -> (soft) nearest training word
        out = []
        for t in texts:
            S = words(CAPTION_WORD.findall(t.lower())) @ V.T
            w = (S / tau).softmax(1) if tau > 0 else F.one_hot(S.argmax(1), len(vocab)).double()
            out.append(F.normalize((w @ V).mean(0), dim=0))
        return torch.stack(out)

    def contextual(texts):                             # (b) last hidden state, tokens pooled per word, then mean
        tok, out = enc.tokenizer.tok, []
        for t in texts:
            e = tok.encode(t.lower())
            with torch.no_grad():
                x = enc.net(torch.tensor([e.ids]), torch.tensor([e.attention_mask]))[0].double()
            rows = [x[[i for i, (a, b) in enumerate(e.offsets) if b > a and a >= m.start() and b <= m.end()]].mean(0)
                    for m in CAPTION_WORD.finditer(t.lower())]
            out.append(F.normalize(torch.stack([F.normalize(r, dim=0) for r in rows]).mean(0), dim=0))
        return torch.stack(out)

    groups = word_groups()
    grouped = {w for g in groups for w in g}

    def retemplate(texts):                             # (d) words nearest a non-group training word become it
        out = []
        for t in texts:
            ws = CAPTION_WORD.findall(t.lower())
            near = [vocab[i] for i in (words(ws) @ V.T).argmax(1).tolist()]
            out.append(" ".join(n if n not in grouped else w for w, n in zip(ws, near)))
        return mean(out)

    plain_words = word_mean(plain).mean(0)
    layer = lambda k: (lambda t: layer_means(enc, t)[k])
    return {
        "(a) mean pool (today)": mean,
        "(d) mean pool, centred": lambda t: mean(t) - mu,
        "(d) mean pool, centred + whitened": lambda t: (mean(t) - mu) @ whiten,
        "(d) mean pool onto the training words' span": lambda t: mean(t) @ Q,
        "(d) template words -> the training word they are nearest, then mean pool": retemplate,
        "(b) contextual tokens pooled per word, mean over words": contextual,
        **{f"(b) mean pool of layer {k} (0: token embeddings)": layer(k) for k in (0, 1, 3)},
        "(c) each word alone, mean": word_mean,
        "(c) each word alone, mean, centred": lambda t: word_mean(t) - plain_words,
        "(c+d) each word alone, mean, onto the training words' span": lambda t: word_mean(t) @ Q,
        "(c) each word -> nearest training word": lambda t: anchored(t, 0.0),
        "(c) each word -> training words, soft (tau 0.05)": lambda t: anchored(t, 0.05),
        "(c) word-group slots (tau 0.05)": lambda t: slot_features(words, groups, t),
        "(e) [layer 0 ; layer 6] mean pools": lambda t: torch.cat(layer_means(enc, t)[::6], 1),
        "(e) [layer 0 ; layer 6 ; word-group slots]": lambda t: torch.cat(
            layer_means(enc, t)[::6] + [slot_features(words, groups, t)], 1),
    }


def ceilings(enc, plain: List[str], facts: List[tuple]) -> Dict:
    """Two upper bounds that tell the encoder's limit from the pooling's. 'word': each factor word's paraphrase
    (e.g. "crimson", "upwards and rightwards") embedded alone, nearest of its own group's words embedded alone (an
    oracle that knows which word is the colour). 'one factor': captions with only that factor's word paraphrased
    ("a crimson circle moving left"), read by today's mean-pool read-out fitted on the plain captions."""
    from gan.conditioning.paraphrase import PARAPHRASES, VARIANTS, caption_words
    groups = word_groups()[:3]
    W = ridge_readouts(enc.embed(plain).double(), facts)
    out = {}
    for k, (name, group) in enumerate(zip(KEYS, groups)):
        A = enc.embed(group)
        for v in range(VARIANTS):
            P = enc.embed([PARAPHRASES[w][v] for w in group])
            hits = int(((P @ A.T).argmax(1) == torch.arange(len(group))).sum())
            swapped = [" ".join(PARAPHRASES[w][v] if w == f[k] else w for w in caption_words(c))
                       for c, f in zip(plain, facts)]
            acc = readout_accuracy(W, enc.embed(swapped).double(), facts)[name]
            out[f"{name}, paraphrase {v}"] = {"word": f"{hits}/{len(group)}", "one factor": acc}
    return out


def readout_sweep(enc, plain: List[str], paras: List[List[str]], facts: List[tuple]) -> Dict:
    """Today's mean pool under other read-outs fitted on the plain captions: ridge with lambda 0.01 / 1 / 10 / 100
    and nearest class mean by cosine (after removing the plain captions' mean): does a simpler read-out carry
    over better?"""
    E, P = enc.embed(plain).double(), [enc.embed(p).double() for p in paras]
    out = {}
    for lam in (0.01, 1.0, 10.0, 100.0):
        W = ridge_readouts(E, facts, lam)
        out[f"ridge, lambda {lam:g}"] = [readout_accuracy(W, X, facts) for X in [E] + P]
    mu, rows = E.mean(0), [{} for _ in range(1 + len(P))]
    for k, name in enumerate(KEYS):
        values = sorted({f[k] for f in facts})
        y = torch.tensor([values.index(f[k]) for f in facts])
        C = F.normalize(torch.stack([(E[y == j] - mu).mean(0) for j in range(len(values))]), dim=1)
        for r, X in zip(rows, [E] + P):
            r[name] = float(((F.normalize(X - mu, dim=1) @ C.T).argmax(1) == y).float().mean())
    out["nearest class mean"] = rows
    return out


@click.command(help=__doc__)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="JSON path (default bench/results/...).")
def cli(out):
    from bench.text_encoder import all_captions, caption_factors
    from gan.conditioning.minilm import MiniLMTextEncoder
    from gan.conditioning.paraphrase import VARIANTS, caption_words, held_out_violations, paraphrase
    from gan.weights import weights_path
    torch.set_num_threads(1)
    t0 = time.time()
    plain, facts = all_captions(), caption_factors()
    paras = [[paraphrase(c, v) for c in plain] for v in range(VARIANTS)]
    shared = held_out_violations([p for ps in paras for p in ps], plain)
    if shared:
        raise SystemExit(f"paraphrases share words with the plain captions: {shared}")
    vocab = sorted({w for c in plain for w in caption_words(c)})
    enc = MiniLMTextEncoder(weights_path("minilm"))
    rows = {}
    for name, fn in candidates(enc, vocab, plain).items():
        X = fn(plain)
        W = ridge_readouts(X, facts)
        r = {"plain": readout_accuracy(W, X, facts)}
        for v in range(VARIANTS):
            r[f"paraphrase {v}"] = readout_accuracy(W, fn(paras[v]), facts)
        r["dim"] = X.shape[1]
        r["worst share"] = min(r[f"paraphrase {v}"][k] / max(r["plain"][k], 1e-9)
                               for v in range(VARIANTS) for k in KEYS)
        rows[name] = r
        click.echo(f"{name:58s} " + "  ".join(
            f"{k[:3]} {r['plain'][k]:.0%} {r['paraphrase 0'][k]:.0%}/{r['paraphrase 1'][k]:.0%}" for k in KEYS)
            + f"  worst {r['worst share']:.0%}")
    sweep = readout_sweep(enc, plain, paras, facts)
    for name, rs in sweep.items():
        click.echo(f"mean pool, {name:22s} " + "  ".join(
            f"{k[:3]} {rs[0][k]:.0%} {rs[1][k]:.0%}/{rs[2][k]:.0%}" for k in KEYS))
    ceiling = ceilings(enc, plain, facts)
    for name, r in ceiling.items():
        click.echo(f"ceiling {name:24s} word alone -> nearest of its group {r['word']:5s}  "
                   f"one-factor captions, mean-pool read-out {r['one factor']:.0%}")
    doc = {"date": dt.date.today().isoformat(), "command": "python bench/text_probe.py " + " ".join(sys.argv[1:]),
           "anchors": vocab, "held_out_shared": shared, "rows": rows, "readout_sweep": sweep, "ceilings": ceiling,
           "total_s": time.time() - t0}
    save(doc, "text_probe", out)


def save(doc: Dict, name: str, out=None) -> Path:
    """Write a probe's results (with the machine) to OUT or bench/results/NAME-DATE.json and say where."""
    doc["machine"] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                      "torch": torch.__version__}
    path = Path(out) if out else ROOT / "bench" / "results" / f"{name}-{doc['date']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    click.echo(f"wrote {path} in {doc['total_s']:.0f} s")
    return path


if __name__ == "__main__":
    cli()
