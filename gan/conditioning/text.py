"""Text conditioning: a word tokenizer and a small sentence encoder trained with the GAN (no download).

The generator and both discriminators only ever see a sentence embedding `[B, dim]` (their `c`), so
any encoder that follows the `TextEncoder` protocol can replace the built-in one. A pretrained one ships:
`cond.text_encoder: minilm` (all-MiniLM-L6-v2, gan/conditioning/minilm.py; configs/t2v_minilm.yaml), frozen,
recorded in checkpoints by name and SHA-256 and rebuilt from the weights cache by generate.py. Any other object
with .dim and .encode() fits too, passed by hand:

    train(cfg, outdir, text_encoder=MyEncoder())   # with cfg.cond.text_dim = MyEncoder.dim; kept frozen
    gan.sampling.generate(ckpt, out, seeds, prompt="...", text_encoder=MyEncoder())

An external encoder is used as it is (frozen, never saved in checkpoints); the built-in one is trained
with the discriminators (its embedding is what their projection heads compare clips against), and
is saved in the checkpoint with its vocabulary.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

import torch
import torch.nn as nn

from gan.config import CAPTION_WORD
from gan.data.builtin import indefinite_article
from gan.networks.layers import normalize_2nd_moment

PAD, UNK = "<pad>", "<unk>"
_WORD = CAPTION_WORD                                # the rule config.py checks word groups with


@runtime_checkable
class TextEncoder(Protocol):
    """What the training loop and the sampler need from a sentence encoder."""

    dim: int                                                   # embedding size (must equal cfg.cond.text_dim)

    def encode(self, captions: Sequence[str]) -> torch.Tensor:  # B captions -> float [B, dim]
        ...


def words(text: str) -> List[str]:
    """Lower-case word tokens: 'A red circle moving up-left.' -> ['a', 'red', 'circle', 'moving', 'up-left']."""
    return _WORD.findall(text.lower())


class WordTokenizer:
    """Words -> ids from a fixed vocabulary (plain list of strings, saved in checkpoints); 0 pads, 1 is unknown."""

    def __init__(self, vocab: Sequence[str], max_tokens: int = 24):
        vocab = list(vocab)
        if vocab[:2] != [PAD, UNK]:
            raise ValueError(f"vocabulary must start with {PAD!r}, {UNK!r}")
        self.vocab, self.max_tokens = vocab, int(max_tokens)
        self.index = {w: i for i, w in enumerate(vocab)}

    @classmethod
    def build(cls, captions: Iterable[str], max_tokens: int = 24, extra: Iterable[str] = ()) -> "WordTokenizer":
        """Vocabulary = every word of `captions` and `extra`, sorted (deterministic)."""
        seen = set(extra)
        for c in captions:
            seen.update(words(c))
        seen.discard(PAD)
        seen.discard(UNK)
        return cls([PAD, UNK] + sorted(seen), max_tokens)

    def __len__(self) -> int:
        return len(self.vocab)

    def unknown_words(self, text: str) -> List[str]:
        return [w for w in words(text) if w not in self.index]

    def __call__(self, captions: Sequence[str]) -> torch.Tensor:
        """B captions -> int64 [B, L] (L = longest caption, at most max_tokens; at least 1 token)."""
        if isinstance(captions, str):
            raise TypeError("pass a list of captions, not one string")
        ids = [[self.index.get(w, 1) for w in words(c)][:self.max_tokens] or [1] for c in captions]
        out = torch.zeros(len(ids), max(len(i) for i in ids) if ids else 1, dtype=torch.int64)
        for row, i in enumerate(ids):
            out[row, :len(i)] = torch.tensor(i)
        return out


class LearnedTextEncoder(nn.Module):
    """Built-in sentence encoder: word embeddings (+ positions) -> transformer layers (or a plain mean:
    'bag') -> masked mean -> linear -> unit-RMS embedding [B, dim]. Small enough to train with the GAN."""

    def __init__(self,
                 tokenizer: WordTokenizer,      # vocabulary and word limit
                 dim: int = 32,                 # output embedding size (the c_dim of G and both Ds)
                 kind: str = "transformer",     # 'transformer' (word order matters) or 'bag' (mean of words)
                 layers: int = 1,               # transformer layers (ignored for 'bag')
                 width: int = 64,               # token width inside the encoder
                 heads: int = 2):               # attention heads
        super().__init__()
        if kind not in ("transformer", "bag"):
            raise ValueError(f"kind must be 'transformer' or 'bag', got {kind!r}")
        self.tokenizer, self.dim, self.kind = tokenizer, int(dim), kind
        self.embed = nn.Embedding(len(tokenizer), width, padding_idx=0)
        # Random positions (not zeros): a zero start would make the encoder blind to word order at first.
        self.pos = nn.Parameter(0.5 * torch.randn(tokenizer.max_tokens, width)) if kind == "transformer" else None
        if kind == "transformer":
            layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, dropout=0.0,
                                               batch_first=True, norm_first=True)
            self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        else:
            self.body = None
        self.out = nn.Linear(width, dim)

    @property
    def device(self) -> torch.device:
        return self.embed.weight.device

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # tokens int64 [B, L] (0 = padding) -> [B, dim]
        assert tokens.ndim == 2, f"tokens must be [B, L], got {tuple(tokens.shape)}"
        pad = tokens == 0                                          # [B, L]
        x = self.embed(tokens)                                     # [B, L, width]
        if self.body is not None:
            x = self.body(x + self.pos[:tokens.shape[1]], src_key_padding_mask=pad)
        keep = (~pad).unsqueeze(-1).to(x.dtype)
        x = (x * keep).sum(1) / keep.sum(1).clamp(min=1)           # masked mean over words
        return normalize_2nd_moment(self.out(x))

    def encode(self, captions: Sequence[str]) -> torch.Tensor:
        return self(self.tokenizer(captions).to(self.device))

    def extra_repr(self) -> str:
        return f"kind={self.kind}, vocab={len(self.tokenizer)}, dim={self.dim}"


def _replaced(ws: List[str], k: int, new: str) -> str:
    """Words `ws` with word k replaced by `new`, joined; a preceding article follows the new word (a wrong "a 8"
    would give a swapped caption away)."""
    ws = list(ws)
    ws[k] = new
    if k > 0 and ws[k - 1] in ("a", "an"):
        ws[k - 1] = indefinite_article(new)
    return " ".join(ws)


class CaptionNegatives:
    """Wrong captions for the matching-aware loss. With probability `swap`, one word of the clip's own caption
    that belongs to a word group is replaced by another word of that group ('a red circle moving left' ->
    'a red SQUARE moving left'): a hard negative that differs in exactly one factor, so the discriminators
    (and the built-in text encoder that learns with them) must check every factor. Otherwise (or when no
    word of the caption is in a group) the negative is another clip's caption (GAN-CLS's choice), which
    differs mostly in whatever factor is easiest to see: with only those, D checks colour and ignores the rest
    (docs/notes.md, "Wrong captions").

    Groups are 'appearance' (what a single frame shows: colours, classes) or 'motion' (what only a clip shows:
    directions, speeds). For each negative it also reports whether it differs from the right caption at all,
    and whether it differs in appearance words (the image D sees single frames, so a motion-only difference
    is not wrong for it)."""

    def __init__(self, appearance: Sequence[Sequence[str]] = (), motion: Sequence[Sequence[str]] = (),
                 swap: float = 0.5):
        if not 0 <= swap <= 1:
            raise ValueError(f"swap must be in [0, 1], got {swap}")
        self.swap = float(swap)
        self.groups = [list(g) for g in appearance] + [list(g) for g in motion]
        self.motion = {w for g in motion for w in g}
        self.group_of = {}
        for i, g in enumerate(self.groups):
            for w in g:
                if w in self.group_of and self.group_of[w] != i:
                    raise ValueError(f"word {w!r} is in two caption word groups")
                self.group_of[w] = i

    def appearance_words(self, caption: str) -> List[str]:
        return [w for w in words(caption) if w not in self.motion]

    def swapped(self, caption: str, gen: Optional[torch.Generator] = None) -> Optional[str]:
        """`caption` with one grouped word replaced by another of its group (None: no word is in a group)."""
        ws = words(caption)
        slots = [k for k, w in enumerate(ws) if w in self.group_of]
        if not slots:
            return None
        k = slots[int(torch.randint(len(slots), (1,), generator=gen))]
        options = [w for w in self.groups[self.group_of[ws[k]]] if w != ws[k]]
        return _replaced(ws, k, options[int(torch.randint(len(options), (1,), generator=gen))])

    def variants(self, caption: str) -> List[Tuple[int, str]]:
        """Every one-word swap of `caption`: (group index, caption) for each grouped word and each other word of
        its group ('a red circle moving left' -> 'a blue circle moving left', ..., 'a red circle moving up')."""
        ws, out = words(caption), []
        for k, w in enumerate(ws):
            g = self.group_of.get(w)
            if g is None:
                continue
            out += [(g, _replaced(ws, k, other)) for other in self.groups[g] if other != w]
        return out

    def table(self, captions: Sequence[str]):
        """All the wrong captions of a batch, for scoring every one of them on one discriminator pass.

        -> (wrong [B * K] captions, row b's K at b*K.., weights_video [B, K], weights_image [B, K]).
        Row b holds every one-word swap of caption b, then another clip's caption, padded with caption b itself
        (weight 0). The Ds split the work: the video D is weighted over the swaps of motion words (directions,
        speeds: what it alone can see), the image D over the swaps of appearance words plus the other clip's
        caption when it looks different. Each group of swaps weighs the same, whatever its size, and each
        clip's weights sum to 1 (0 where it has no negative of that kind). Without motion groups the video D
        takes every negative. Why the video D is asked about motion words only: docs/notes.md, "Wrong captions"."""
        captions = list(captions)
        b = len(captions)
        rows, motion = [], {i for i, g in enumerate(self.groups) if g[0] in self.motion}
        for i, c in enumerate(captions):
            other = captions[(i + 1) % b]
            rows.append(self.variants(c) + [(-1, other)])
        k = max(len(r) for r in rows)
        wrong = []
        w_video, w_image = torch.zeros(b, k), torch.zeros(b, k)
        for i, (c, row) in enumerate(zip(captions, rows)):
            wrong += [s for _, s in row] + [c] * (k - len(row))
            looks = self.appearance_words(c)
            for weights, keep in (
                    (w_video, lambda g, s: (g in motion) if motion else words(s) != words(c)),
                    (w_image, lambda g, s: g not in motion and self.appearance_words(s) != looks)):
                picked = [(j, g) for j, (g, s) in enumerate(row) if keep(g, s)]
                sizes = Counter(g for _, g in picked)                     # negatives per group
                for j, g in picked:
                    weights[i, j] = 1.0 / (len(sizes) * sizes[g])
        return wrong, w_video, w_image

    def __call__(self, captions: Sequence[str], gen: Optional[torch.Generator] = None):
        """One wrong caption per clip (`swap` share one-word swaps, the rest another clip's caption)
        -> (wrong captions [B], differs bool [B], differs_in_appearance bool [B])."""
        captions = list(captions)
        wrong = captions[1:] + captions[:1]                         # roll: another clip's caption
        if self.swap > 0 and self.groups:
            pick = (torch.rand(len(captions), generator=gen) < self.swap).tolist()
            for i, c in enumerate(captions):
                if pick[i]:
                    s = self.swapped(c, gen)
                    wrong[i] = s if s is not None else wrong[i]
        differs = torch.tensor([words(w) != words(c) for w, c in zip(wrong, captions)])
        looks = torch.tensor([self.appearance_words(w) != self.appearance_words(c) for w, c in zip(wrong, captions)])
        return wrong, differs, looks


def builtin_vocabulary_words() -> List[str]:
    """Every word the built-in datasets can put in a caption (so no prompt word about them is unknown)."""
    from gan.data.builtin import _DIRECTIONS, PALETTE, BouncingShapes, MovingDigits
    out = ["a", "an", "and", "moving", "slowly", "quickly"] + list(_DIRECTIONS) + list(PALETTE)
    return out + list(BouncingShapes.class_names) + list(MovingDigits.class_names)


def build_text_encoder(cond_cfg, captions: Iterable[str], vocab: Optional[Sequence[str]] = None) -> LearnedTextEncoder:
    """The built-in encoder from cfg.cond: vocabulary from `vocab` (a checkpoint's) or built from `captions`."""
    tok = (WordTokenizer(vocab, cond_cfg.text_max_tokens) if vocab is not None else
           WordTokenizer.build(captions, cond_cfg.text_max_tokens, extra=builtin_vocabulary_words()))
    return LearnedTextEncoder(tok, cond_cfg.text_dim, cond_cfg.text_encoder, cond_cfg.text_layers)
