"""Old import path of conditional sampling; it lives in gan/sampling (one loader, renderer and writer).
Kept only while tests/test_watermark.py imports generate_conditional from here."""
from gan.sampling import (animate, check_mode, checkpoint_mode, continue_clip, generate_conditional,  # noqa: F401
                          load_conditional, render_conditioned, text_clips)
