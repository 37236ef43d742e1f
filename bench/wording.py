"""Shapes captions written with varied wording, and a second set of held-out paraphrases.

A one-object shapes caption ("a red circle moving left quickly") names four factors in one fixed word each. A text
read-out trained on those words alone learns each word's quirks in the encoder's space; trained on captions that
draw each factor from many wordings ("one ruby sphere sliding to its left hastily") it may learn a direction shared
by all of them, which a held-out synonym can also reach (BENCHMARKS.md, "Training captions with varied wording").

SYNONYMS were written once from general English before any measurement. None of their words may share a stem with a
held-out paraphrase word (gan/conditioning/paraphrase.py's PARAPHRASES, and HELD_OUT_2 below): `stem_clashes`
checks that, stricter than an exact-word test ('gold' clashes with 'golden', 'east' with 'eastwards'). HELD_OUT_2 is
a fresh held-out set (words absent from every plain and varied training caption), written in the same commit as
SYNONYMS and before any score was seen, for an honest number should SYNONYMS ever be revised after measuring.
"""
from __future__ import annotations

import re
from typing import Dict, Iterable, List, Sequence, Set, Tuple

import numpy as np

# Slot phrases. '{verb}' is filled from VERBS; a phrase without it is a motion verb of its own ("rising").
# '{a}' is 'a' or 'an' as the next word needs.
ARTICLES: List[str] = ["{a}", "one", "a single", "some", "just one", "a lone"]
COLOURS: Dict[str, List[str]] = {
    "red": ["red", "ruby", "carmine", "maroon", "reddish", "blood-red", "brick-red", "cardinal", "rust-coloured",
            "tomato-red"],
    "green": ["green", "olive", "mint", "leafy", "greenish", "verdant", "forest-green", "pea-green", "moss-green",
              "bottle-green"],
    "blue": ["blue", "indigo", "cerulean", "ultramarine", "bluish", "royal-blue", "denim", "cornflower", "ocean-blue",
             "midnight-blue"],
    "yellow": ["yellow", "amber", "saffron", "butter-yellow", "banana", "sunflower", "yellowish", "daffodil",
               "buttercup", "straw-coloured"],
    "cyan": ["cyan", "greenish-blue", "blue-green", "sea-blue", "ice-blue", "seafoam", "cyanish", "electric-cyan",
             "glacier-blue", "pool-blue"],
    "magenta": ["magenta", "purple", "mauve", "plum", "lavender", "lilac", "amethyst", "cerise", "purplish",
                "raspberry"],
}
SHAPES: Dict[str, List[str]] = {
    "circle": ["circle", "round shape", "sphere", "spot", "coin", "circular blob", "round token", "bead"],
    "square": ["square", "quadrilateral", "rectangle", "four-sided shape", "square shape", "panel", "plate", "cube",
               "quad"],
    "triangle": ["triangle", "three-sided shape", "triangular shape", "trigon", "spike", "cone", "spearhead",
                 "tent shape"],
}
VERBS: List[str] = ["moving", "travelling", "heading", "going", "sliding", "floating", "sailing", "coasting",
                    "cruising", "shifting", "passing", "rolling"]
_HORIZONTAL: Dict[str, List[str]] = {
    "right": ["right", "to its right", "right-hand", "sideways right", "horizontally right", "across to its right"],
    "left": ["left", "to its left", "left-hand", "sideways left", "horizontally left", "across to its left"],
}
_VERTICAL: Dict[str, Tuple[List[str], List[str], List[str]]] = {
    # (phrases after a verb, motion verbs of their own, the word a diagonal puts before 'right'/'left')
    "up": (["up", "higher", "toward its top", "vertically up", "straight up"],
           ["rising", "climbing", "ascending", "lifting"], ["up", "upper", "top"]),
    "down": (["down", "lower", "toward its bottom", "vertically down", "straight down"],
             ["falling", "sinking", "descending", "dropping", "plunging"], ["down", "lower", "bottom"]),
}
SPEEDS: Dict[str, List[str]] = {
    "": [""],
    "slowly": ["slowly", "lazily", "calmly", "at a crawl", "at a low pace", "slow", "languidly"],
    "quickly": ["quickly", "fast", "hastily", "hurriedly", "at a high pace", "quick", "in a hurry"],
}

# A second held-out set: caption word -> (variant 0, variant 1), used like PARAPHRASES (articles and 'moving'
# included). Written with SYNONYMS, before any measurement.
HELD_OUT_2: Dict[str, Tuple[str, str]] = {
    "a": ("this", "that"), "an": ("this", "that"),
    "red": ("cherry", "vermilion"), "green": ("lime", "jade"), "blue": ("cobalt", "sapphire"),
    "yellow": ("canary", "mustard"), "cyan": ("teal", "aquamarine"), "magenta": ("violet", "orchid"),
    "circle": ("orb", "dot"), "square": ("block", "slab"), "triangle": ("arrowhead", "delta"),
    "moving": ("roaming", "wandering"),
    "right": ("starboard", "eastward"), "left": ("portside", "westward"),
    "up": ("aloft", "northward"), "down": ("groundward", "southward"),
    "up-right": ("aloft starboard", "northeastward"), "up-left": ("aloft portside", "northwestward"),
    "down-right": ("groundward starboard", "southeastward"), "down-left": ("groundward portside", "southwestward"),
    "slowly": ("leisurely", "unhurriedly"), "quickly": ("briskly", "speedily"),
}

_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_SUFFIXES = ("wards", "ward", "ingly", "ing", "ily", "ly", "ness", "ish", "ed", "en", "es", "s", "y", "e")
_SPELLINGS = {"disk": "disc", "colour": "color", "grey": "gray", "travelling": "traveling"}


def direction_phrases(direction: str) -> List[str]:
    """Every wording of one of the 8 caption directions ('up-left', 'right', ...), a '{verb}' slot where one goes."""
    if direction in _HORIZONTAL:
        return ["{verb} " + h for h in _HORIZONTAL[direction]]
    if direction in _VERTICAL:
        after, verbs, _ = _VERTICAL[direction]
        return ["{verb} " + p for p in after] + verbs
    v, h = direction.split("-")
    after, verbs, before = _VERTICAL[v]
    return (["{verb} " + direction, f"{{verb}} {v} {h}"] + [f"{{verb}} {b} {h}" for b in before[1:]]
            + [f"{{verb}} {b}-{h}" for b in before[1:]] + [f"{m} {h}" for m in verbs]
            + [f"{m} to its {h}" for m in verbs]
            + [f"{{verb}} {adv} {v} {h}" for adv in ("obliquely", "aslant", "slantwise", "at an angle")])


def _article(next_word: str) -> str:
    return "an" if next_word[0] in "aeiou8" else "a"


def reword(colour: str, shape: str, direction: str, speed: str, rng: np.random.Generator) -> str:
    """One caption of these factors in wording drawn from SYNONYMS ('' speed: none said, as the plain captions)."""
    pick = lambda xs: xs[int(rng.integers(len(xs)))]
    body = f"{pick(COLOURS[colour])} {pick(SHAPES[shape])}"
    motion = pick(direction_phrases(direction)).replace("{verb}", pick(VERBS))
    art = pick(ARTICLES).replace("{a}", _article(body))
    return " ".join(p for p in (art, body, motion, pick(SPEEDS[speed])) if p)


def training_vocabulary() -> Set[str]:
    """Every word (and hyphen part) any varied caption can contain."""
    texts = [a.replace("{a}", "a an") for a in ARTICLES] + VERBS
    texts += [p for d in COLOURS.values() for p in d] + [p for d in SHAPES.values() for p in d]
    texts += [p.replace("{verb}", "") for d in ("right", "up", "up-right", "down-left") for p in direction_phrases(d)]
    texts += [p.replace("{verb}", "") for d in ("left", "down", "up-left", "down-right") for p in direction_phrases(d)]
    texts += [p for d in SPEEDS.values() for p in d]
    return word_parts(texts)


def word_parts(texts: Iterable[str]) -> Set[str]:
    out: Set[str] = set()
    for t in texts:
        for w in _WORD.findall(t.lower()):
            out.add(w)
            out.update(w.split("-"))
    return out


def stem(word: str) -> str:
    """A crude stem: spelling variants unified, then one common suffix stripped ('eastwards' -> 'east')."""
    word = _SPELLINGS.get(word, word)
    for s in _SUFFIXES:
        if word.endswith(s) and len(word) - len(s) >= 3:
            return word[: -len(s)]
    return word


def stem_clashes(training: Iterable[str], held_out: Iterable[str], allowed: Sequence[str] = ()) -> List[str]:
    """'train~held' pairs where a training word (hyphen parts too) equals a held-out word, shares its stem, or one
    starts the other (3+ letters: 'sky' / 'skywards'). Words in `allowed` (the plain captions' own words, which
    the held-out sets were checked against exactly) are not tested."""
    train = word_parts(training) - set(allowed)
    held = word_parts(held_out)
    out = []
    for t in sorted(train):
        for h in sorted(held):
            short = min(t, h, key=len)
            if t == h or stem(t) == stem(h) or (len(short) >= 3 and (t.startswith(h) or h.startswith(t))):
                out.append(f"{t}~{h}")
    return out


def held_out_2(caption: str, variant: int = 0) -> str:
    """`caption` (a plain one-object shapes caption) in the words of HELD_OUT_2's `variant`."""
    return " ".join(HELD_OUT_2[w][variant] for w in _WORD.findall(caption.lower()))
