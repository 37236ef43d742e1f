"""The conditional generator a config asks for (cond.mode 'image' or 'continue')."""
from __future__ import annotations

from gan.conditioning.encoders import ConditionalGenerator
from gan.conditioning.layered import LayeredConditionalGenerator


def build_conditional_generator(cfg) -> ConditionalGenerator:
    """From a full Config whose cond.mode is 'image' or 'continue': G.objects > 0 gives the layered one
    (layered.py: the reference frame's objects move rigidly), 0 the synthesis one (encoders.py)."""
    if cfg.G.objects > 0:
        return LayeredConditionalGenerator(cfg.G, cfg.data.resolution, cfg.data.channels, cfg.cond, cfg.G.objects)
    return ConditionalGenerator(cfg.G, cfg.data.resolution, cfg.data.channels, cfg.cond)
