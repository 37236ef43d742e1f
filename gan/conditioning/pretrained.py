"""Pretrained, frozen text encoders chosen by cfg.cond.text_encoder ('minilm'), built the same way by training and
by sampling: a checkpoint keeps only their name and SHA-256 (`record()`), never their weights."""
from __future__ import annotations

from typing import Dict, Optional

from gan.conditioning.inputs import ConditionError
from gan.conditioning.text import TextEncoder
from gan.weights import weights_path

PRETRAINED = ("minilm",)


def pretrained_text_encoder(cond_cfg, record: Optional[Dict] = None, device="cpu") -> Optional[TextEncoder]:
    """The frozen encoder cond.text_encoder names, or None for the built-in ones ('transformer', 'bag').
    `record`: what the checkpoint saved of the encoder it was trained with; its SHA-256 must match."""
    if cond_cfg.text_encoder not in PRETRAINED:
        return None
    from gan.conditioning.minilm import MiniLMTextEncoder
    enc = MiniLMTextEncoder(weights_path("minilm"), device)
    want = (record or {}).get("sha256")
    if want is not None and want != enc.sha256:
        raise ConditionError(f"this model was trained with MiniLM weights of SHA-256 {want}, but "
                             f"{enc.folder} holds {enc.sha256}; fetch the weights it was trained with")
    return enc
