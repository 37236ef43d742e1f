"""Models shared as the field shares them: a Hugging Face Hub folder (model.safetensors, config.json, a model card)
through huggingface_hub's PyTorchModelHubMixin. Optional: `pip install "reelgan[hub]"`.

    from gan.hub import ReelganGenerator
    model = ReelganGenerator.from_checkpoint("runs/default/checkpoints/latest.pt")
    model.save_pretrained("hub/reelgan-digits")          # a local folder: weights, config, README.md card
    model.push_to_hub("you/reelgan-digits")              # the same folder, uploaded (needs a token)
    model = ReelganGenerator.from_pretrained("hub/reelgan-digits")    # or "you/reelgan-digits"
    clip = model.render(seeds=[0], frames=32)             # [1, 32, C, H, W] in [-1, 1]

The wrapper is thin: `G` is the same generator `gan.sampling.load_generator` builds, rebuilt from the config that
the mixin keeps in config.json (plain types, no pickled code), and its weights load strictly.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn

from gan.config import Config
from gan.config_auto import resolved_objects
from gan.networks import build_generator
from gan.checkpoint import FORMAT_VERSION, check_format, generator_file, load, no_cond, shareable_config
from gan.conditioning.text import build_text_encoder

INSTALL_HINT = 'pip install "reelgan[hub]"'
try:
    from huggingface_hub import ModelCard, PyTorchModelHubMixin
except ImportError as e:                                  # the hub extra is optional
    raise ImportError(f"gan.hub needs huggingface_hub: {INSTALL_HINT}") from e

CARD = """---
{{ card_data }}
---

# {{ title }}

A reelgan video generator ({{ kind }}): {{ resolution }} px, {{ channels }}-channel frames at {{ fps }} fps,
rendered at any continuous time, so clips have any length and frame rate.

## Use

```python
from gan.hub import ReelganGenerator          # pip install "reelgan[hub]"
model = ReelganGenerator.from_pretrained("{{ repo_id }}")
clip = model.render(seeds=[0], frames=64)      # [1, 64, C, H, W] in [-1, 1]
```

or `python generate.py --checkpoint model.safetensors --outdir out --seeds 0-7` in a reelgan checkout.

## Training

- Data: {{ data }}
- Steps: {{ steps }}
- Conditioning: {{ conditioning }}

## Metrics

{{ metrics }}

## Config

```json
{{ config_json }}
```

## Synthetic content

Every clip this model makes is synthetic. reelgan's writers embed an invisible watermark in every clip by default
(check one with `reelgan-watermark detect CLIP`); the mark does not survive every re-encode, so label the clips as
generated wherever you publish them, and keep this card with the weights.
"""


def _describe_data(cfg: Config) -> str:
    d = cfg.data
    if d.source in ("digits", "shapes"):
        what = {"digits": "reelgan's built-in moving handwritten digits (scikit-learn's bundled 8x8 digits, "
                          "moving and bouncing on black)",
                "shapes": "reelgan's built-in bouncing coloured shapes"}[d.source]
        return f"{what}, {d.num_objects} objects per clip, {d.resolution} px"
    return f"the user's clips at `{d.source}`, resized to {d.resolution} px"


def run_metrics(checkpoint: Union[str, Path]) -> Dict[str, float]:
    """The last logged value of each `metrics/...` scalar of the run a training checkpoint belongs to
    (OUTDIR/log.jsonl beside OUTDIR/checkpoints/), or {} when there is none."""
    log = Path(checkpoint).resolve().parent.parent / "log.jsonl"
    found: Dict[str, float] = {}
    if not log.is_file():
        return found
    for line in log.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        for k, v in rec.items():
            if k.startswith("metrics/") and isinstance(v, (int, float)):
                found[k[len("metrics/"):]] = float(v)
        if found and "step" in rec:
            found["at step"] = rec["step"]
    return found


class ReelganGenerator(nn.Module, PyTorchModelHubMixin, library_name="reelgan",
                       tags=["reelgan", "gan", "video-generation", "unconditional-video-generation"]):
    """G_ema plus what rebuilds it. The __init__ arguments are what the mixin saves as config.json."""

    def __init__(self,
                 reelgan_config: dict,                  # the run's Config as plain types (Config.to_dict());
                                                        # not named `config`, which the mixin treats specially
                 c_dim: int = 0,                        # condition size (classes); 0: unconditional
                 class_names: Optional[List[str]] = None,
                 step: Optional[int] = None,            # training steps behind these weights
                 metrics: Optional[Dict[str, float]] = None,    # measured numbers for the card
                 format_version: int = FORMAT_VERSION,  # the checkpoint format of reelgan_config and weights
                 cond: Optional[dict] = None):          # the 'cond' entry without weights: mode, a text model's
                                                        # vocabulary (its encoder is the module `text_encoder`)
        super().__init__()
        check_format(format_version, "this reelgan generator")
        self.config, self.c_dim = dict(reelgan_config), int(c_dim)
        self.class_names, self.step, self.metrics = list(class_names or []), step, dict(metrics or {})
        self.cfg = Config.from_checkpoint(self.config, "this reelgan generator")
        self.cond = {**no_cond(self.cfg.cond.mode), **(cond or {}), "text_encoder": None}
        self.G = build_generator(self.cfg, self.c_dim).eval().requires_grad_(False)
        if self.cond["text_vocab"] is not None:                # a text model's built-in encoder, saved beside G
            self.text_encoder = build_text_encoder(self.cfg.cond, (), vocab=self.cond["text_vocab"]).eval()

    @classmethod
    def from_checkpoint(cls, checkpoint: Union[str, Path]) -> "ReelganGenerator":
        """From a training checkpoint or an exported .pt / .safetensors generator; the run's logged metrics
        (log.jsonl beside checkpoints/) go on the card."""
        f = generator_file(load(checkpoint), checkpoint)
        f["config"] = shareable_config(f["config"])
        text = f["cond"].get("text_encoder")
        model = cls(f["config"], f["c_dim"], f["class_names"], f["step"], run_metrics(checkpoint), f["format_version"],
                    {k: v for k, v in f["cond"].items() if k != "text_encoder"})
        model.G.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in f["G_ema"].items()})
        if text is not None:
            model.text_encoder.load_state_dict(text)
        return model

    @classmethod
    def _from_pretrained(cls, *, model_id: str, **kwargs):
        # The mixin passes config.json's fields as kwargs; folders written by reelgan 0.1.0 (format 1) carry
        # no format_version, and their config would not build.
        check_format(kwargs.get("format_version", 1), f"the hub model {model_id}")
        return super()._from_pretrained(model_id=model_id, **kwargs)

    @torch.no_grad()
    def render(self, seeds: Sequence[int], frames: int = 32, c: Optional[torch.Tensor] = None,
               truncation: float = 1.0) -> torch.Tensor:
        """Clips [S, T, C, H, W] in [-1, 1], the same as generate.py makes for these seeds."""
        from gan.sampling import render
        return render(self.G, list(seeds), frames, c=c, truncation=truncation, device=next(self.parameters()).device)

    def forward(self, seeds: Sequence[int], frames: int = 32) -> torch.Tensor:
        return self.render(seeds, frames)

    def generate_model_card(self, *args, **kwargs) -> "ModelCard":
        cfg = self.cfg
        objects = resolved_objects(cfg)
        kind = f"layered, {objects} object sprites" if objects > 0 else "synthesis"
        metrics = "\n".join(f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}"
                            for k, v in self.metrics.items()) or \
            "None recorded with these weights (run `reelgan-metrics --checkpoint ...`)."
        cond = {"none": f"class-conditional ({', '.join(self.class_names) or self.c_dim} classes)" if self.c_dim
                else "none", "text": "text-to-video (a sentence)", "image": "image-to-video (a still)",
                "continue": "video continuation (a clip's last frames)"}[self.cfg.cond.mode]
        card_data = self._hub_mixin_info.model_card_data
        card_data.license = card_data.license or "mit"
        return ModelCard.from_template(
            card_data, template_str=CARD, title=f"reelgan: {cfg.name}", kind=kind, resolution=cfg.data.resolution,
            channels=cfg.data.channels or "?", fps=cfg.data.fps, data=_describe_data(cfg),
            steps=self.step if self.step is not None else "unknown", conditioning=cond, metrics=metrics,
            config_json=json.dumps(self.config, indent=1, default=str),
            repo_id=kwargs.get("repo_id") or "PATH_OR_REPO_ID")

    def push_to_hub(self, repo_id: str, *, model_card_kwargs: Optional[dict] = None, **kwargs):
        """The save_pretrained folder uploaded to `repo_id` (huggingface_hub's push; the card names the repo)."""
        card = {"repo_id": repo_id, **(model_card_kwargs or {})}
        return super().push_to_hub(repo_id, model_card_kwargs=card, **kwargs)
