"""bench/wording.py: varied shapes captions keep their factors, and no training wording shares a stem with either
held-out paraphrase set (the property that makes bench/text_probe_varied.py's held-out numbers honest)."""
import itertools

import numpy as np

from gan.conditioning.paraphrase import PARAPHRASES, held_out_violations, paraphrase
from gan.data.builtin import _DIRECTIONS, PALETTE, BouncingShapes
from bench.wording import (COLOURS, HELD_OUT_2, SHAPES, SPEEDS, direction_phrases, held_out_2, reword, stem,
                              stem_clashes, training_vocabulary, word_parts)

PLAIN = [f"a {c} {s} moving {d}" + (f" {sp}" if sp else "")
         for c, s, d, sp in itertools.product(PALETTE, BouncingShapes.class_names, _DIRECTIONS, SPEEDS)]


def test_every_factor_value_has_wordings_and_both_held_out_sets_cover_it():
    assert set(COLOURS) == set(PALETTE) and set(SHAPES) == set(BouncingShapes.class_names)
    for d in _DIRECTIONS:
        assert len(direction_phrases(d)) >= 5 and d in HELD_OUT_2 and d in PARAPHRASES
    for w in list(PALETTE) + BouncingShapes.class_names + ["slowly", "quickly", "moving", "a", "an"]:
        assert w in HELD_OUT_2 and w in PARAPHRASES
    assert held_out_2("a red circle moving up-left quickly") == "this cherry orb roaming aloft portside briskly"


def test_reword_is_seeded_and_names_its_factors_in_synonyms():
    a = [reword("red", "circle", "up-left", "quickly", np.random.default_rng(3)) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(0)
    texts = [reword("cyan", "triangle", "down", "", rng) for _ in range(200)]
    assert len(set(texts)) > 100                                     # varied, not one template
    for t in texts:
        assert any(c in t for c in COLOURS["cyan"]) and any(s in t for s in SHAPES["triangle"])
        assert not any(w in t.split() for w in ("slowly", "quickly", "the", "and"))


def test_no_training_wording_shares_a_stem_with_a_held_out_word():
    vocab = training_vocabulary()
    plain_words = word_parts(PLAIN)
    for held in ([paraphrase(c, v) for c in PLAIN for v in (0, 1)], [held_out_2(c, v) for c in PLAIN for v in (0, 1)]):
        assert stem_clashes(vocab, held, allowed=plain_words) == []
        assert held_out_violations(held, sorted(vocab) + PLAIN) == []
    # the check can fail: an inflection, a compound part and a spelling variant of held-out words
    assert stem_clashes(["crimsons", "sky-blue", "disk", "red"], ["the crimson disc drifting skywards"],
                        allowed=["red"]) == ["crimsons~crimson", "disk~disc", "sky~skywards"]
    assert stem("eastwards") == "east" and stem("golden") == "gold"
