"""Conditional modes: the cond.* fields no preset sets, each shown to change what is built or trained."""
import warnings

import torch

from gan.networks import build_generator
from gan.conditioning.text import build_text_encoder
from gan.training.modes import caption_negatives
from gan.config import load_config
from gan.data import BouncingShapes
from tests.conftest import ROOT

PRESET = {"image": "i2v", "continue": "continue", "text": "t2v"}


def _cfg(mode, **over):
    base = {"cond": {"lpips_random_backbone": True}, "data": {"num_videos": 16}}
    for k, v in over.items():
        base.setdefault(k, {}).update(v)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                             # the random LPIPS backbone says so loudly
        return load_config(str(ROOT / "configs" / f"{PRESET[mode]}.yaml"), base)


def test_encoder_channels_set_the_width_of_the_conditioning_encoders():
    # cond.encoder_channels: the widest layer of the still / context encoders of both generators (the layered
    # one's per-object code is that wide too: its c_dim).
    for objects in (0, 2):
        for mode in ("image", "continue"):
            for width in (8, 16):
                G = build_generator(_cfg(mode, G={"objects": objects}, cond={"encoder_channels": width}))
                convs = [m.out_channels for m in G.modules() if type(m).__name__ == "Conv2dLayer"]
                assert convs and max(convs) == width, (objects, mode)
                assert objects == 0 or G.c_dim == width


def test_text_layers_and_max_tokens_shape_the_built_in_text_encoder():
    # cond.text_layers: the transformer's depth; cond.text_max_tokens: captions are cut to this many words, so two
    # captions that differ only after them embed alike.
    caps = ["a red circle moving left", "a red circle moving right"]
    for layers, tokens in ((1, 4), (2, 4), (2, 5)):
        cfg = _cfg("text", cond={"text_encoder": "transformer", "text_layers": layers, "text_max_tokens": tokens})
        torch.manual_seed(0)
        enc = build_text_encoder(cfg.cond, caps).eval()
        assert len(enc.body.layers) == layers and enc.tokenizer(caps).shape == (2, tokens)
        with torch.no_grad():
            a, b = enc.encode(caps)
        assert torch.equal(a, b) == (tokens == 4)


def test_motion_words_and_mismatch_swap_set_the_wrong_captions():
    # cond.motion_words: word groups only the video D is asked about (they replace the dataset's groups);
    # cond.mismatch_swap ('sampled' negatives): the share of one-word swaps, 0: other clips' captions only.
    shapes = BouncingShapes(resolution=16, num_videos=4)
    moves = caption_negatives(_cfg("text", cond={"motion_words": [["left", "right"]]}).cond, shapes)
    assert moves.groups == [["left", "right"]] and moves.motion == {"left", "right"}
    caps = ["a red circle moving left", "a blue square moving up", "a green circle moving down"]
    for share in (0.0, 1.0):
        n = caption_negatives(_cfg("text", cond={"mismatch_negatives": "sampled", "mismatch_swap": share}).cond,
                              shapes)
        wrong, differs, _ = n(caps)
        one_word = [sum(a != b for a, b in zip(w.split(), c.split())) == 1 for w, c in zip(wrong, caps)]
        assert differs.all() and one_word == [share == 1.0] * 3 and (wrong == caps[1:] + caps[:1]) == (share == 0)
