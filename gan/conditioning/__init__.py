"""Conditional generation: animate a still ('image'), continue a clip ('continue'), render a sentence
('text'). Conditions reach the networks as their one optional argument `c` (DESIGN.md):
- text: a sentence embedding [B, dim] from a `TextEncoder` (built-in, trained with the Ds; pretrained all-MiniLM-L6-v2,
  frozen: minilm.py, chosen by pretrained.py; or your own);
- image / continue: the frames themselves, encoded inside the frame-conditioned generators (gan/networks/
  conditional.py; `gan.networks.build_generator` builds the one a config asks for).
Here: the text encoders (text.py) and reading stills and clips (inputs.py); the training modes live in
gan/training/modes.py, sampling in `gan/sampling/`, projection in `gan/projector.py`, measuring whether clips follow
their condition in gan/analysis/measure.py.
"""
from gan.conditioning.inputs import ConditionError, load_image, load_video
from gan.conditioning.text import LearnedTextEncoder, TextEncoder, WordTokenizer, build_text_encoder

__all__ = ["ConditionError", "load_image", "load_video", "LearnedTextEncoder", "TextEncoder", "WordTokenizer",
           "build_text_encoder"]
