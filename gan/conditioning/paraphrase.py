"""Held-out paraphrases of the built-in shapes captions, in words no training caption uses: "a red circle
moving left" -> "the crimson disc drifting leftwards". They test whether a text-to-video model follows the
meaning of a prompt or only the words it was trained on (bench/text_encoder.py): a pretrained sentence
encoder (MiniLM) should carry the meaning over, a word-level encoder trained from scratch cannot.

Every attribute value the captions use (6 colours, 3 shapes, 8 directions, 2 speed adverbs) has two
paraphrases; `held_out_violations` checks programmatically that none of their words, nor any part of a
hyphenated one, occurs in the training captions.
"""
from __future__ import annotations

import re
from typing import Dict, Iterable, List, Sequence, Set, Tuple

# caption word -> (variant 0, variant 1). Articles become "the"; an empty speed word stays empty.
PARAPHRASES: Dict[str, Tuple[str, str]] = {
    "a": ("the", "the"), "an": ("the", "the"),
    "red": ("crimson", "scarlet"), "green": ("emerald", "grassy"), "blue": ("azure", "navy"),
    "yellow": ("golden", "lemon"), "cyan": ("turquoise", "aqua"), "magenta": ("fuchsia", "pink"),
    "circle": ("disc", "ball"), "square": ("box", "tile"), "triangle": ("wedge", "pyramid"),
    "moving": ("drifting", "gliding"),
    "right": ("rightwards", "eastwards"), "left": ("leftwards", "westwards"),
    "up": ("upwards", "skywards"), "down": ("downwards", "earthwards"),
    "up-right": ("upwards and rightwards", "diagonally northeast"),
    "up-left": ("upwards and leftwards", "diagonally northwest"),
    "down-right": ("downwards and rightwards", "diagonally southeast"),
    "down-left": ("downwards and leftwards", "diagonally southwest"),
    "slowly": ("sluggishly", "gently"), "quickly": ("rapidly", "swiftly"),
}
VARIANTS = 2
_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def caption_words(text: str) -> List[str]:
    return _WORD.findall(text.lower())


def word_parts(texts: Iterable[str]) -> Set[str]:
    """Every word of `texts` and every part of a hyphenated one ('up-left' -> 'up-left', 'up', 'left')."""
    out: Set[str] = set()
    for t in texts:
        for w in caption_words(t):
            out.add(w)
            out.update(w.split("-"))
    return out


def paraphrase(caption: str, variant: int = 0) -> str:
    """`caption` (a built-in shapes caption) in held-out words; every word must have a paraphrase."""
    if not 0 <= variant < VARIANTS:
        raise ValueError(f"variant must be in [0, {VARIANTS}), got {variant}")
    out = []
    for w in caption_words(caption):
        if w not in PARAPHRASES:
            raise KeyError(f"no paraphrase for caption word {w!r}")
        out.append(PARAPHRASES[w][variant])
    return " ".join(out)


def held_out_violations(paraphrases: Sequence[str], training_captions: Iterable[str]) -> List[str]:
    """Words (or hyphen parts) of `paraphrases` that also occur in a training caption; [] when held out."""
    seen = word_parts(training_captions)
    return sorted(word_parts(paraphrases) & seen)
