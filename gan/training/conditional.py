"""The conditional training mode (cfg.cond.mode != 'none'): one object with the hooks the loop calls (as
gan/training/modes.py's PlainMode): build the discriminators, extend the batch, plug the mode's condition and terms
into the one loss (losses/conditional.py), add the text encoder to the discriminator side, draw sample grids,
and save/restore the extra state.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from gan.conditioning.pretrained import pretrained_text_encoder
from gan.conditioning.text import CaptionNegatives, LearnedTextEncoder, TextEncoder, build_text_encoder
from gan.config import Config
from gan.networks import build_discriminators
from gan.video_io import make_grid, to_uint8
from losses.conditional import (RANDOM_BACKBONE_WARNING, CondBatch, MatchingAwareTerm, ReconstructionTerm,
                                TextConditions, build_reconstruction, no_condition)

VOCAB_CAPTIONS = 2000     # 'text': dataset captions read to build the built-in encoder's word vocabulary


def caption_negatives(cond_cfg, source) -> CaptionNegatives:
    """The matching-aware loss's wrong-caption sampler: cfg.cond's word groups, or (both empty) the built-in
    dataset's own (`caption_word_groups()`); a source without groups gets other clips' captions only."""
    appearance, motion = cond_cfg.appearance_words, cond_cfg.motion_words
    if not appearance and not motion and hasattr(source, "caption_word_groups"):
        groups = source.caption_word_groups()
        appearance, motion = groups["appearance"], groups["motion"]
    return CaptionNegatives(appearance, motion, cond_cfg.mismatch_swap)


class ConditionalTraining:
    def __init__(self,
                 cfg: Config,
                 dataset,                                     # ClipDataset (items carry 'caption' for text)
                 device,
                 text_encoder: Optional[TextEncoder] = None):  # external encoder (kept frozen); None: built-in
        self.cfg, self.mode, self.device = cfg, cfg.cond.mode, torch.device(device)
        if self.mode not in ("image", "continue", "text"):
            raise ValueError(f"ConditionalTraining needs cond.mode 'image', 'continue' or 'text', got {self.mode!r}")
        self.recon = None
        self.text_encoder, self.external_text, self.negatives = None, False, None
        if self.mode in ("image", "continue"):
            self.recon = build_reconstruction(cfg.cond).to(self.device)   # warns if the backbone is random
        else:
            if text_encoder is None:                                  # cond.text_encoder 'minilm': pretrained, frozen
                text_encoder = pretrained_text_encoder(cfg.cond, device=self.device)
            if text_encoder is not None:
                if not isinstance(text_encoder, TextEncoder):
                    raise TypeError("text_encoder must follow gan.conditioning.text.TextEncoder (.dim and .encode)")
                if int(text_encoder.dim) != cfg.cond.text_dim:
                    raise ValueError(f"the text encoder gives {text_encoder.dim}-d embeddings but cond.text_dim is "
                                     f"{cfg.cond.text_dim}; set cond.text_dim={text_encoder.dim}")
                self.text_encoder, self.external_text = text_encoder, True
                if isinstance(text_encoder, torch.nn.Module):
                    text_encoder.requires_grad_(False)
            else:
                n = min(len(dataset), VOCAB_CAPTIONS)
                captions = (dataset.source.caption(i) for i in range(n))
                self.text_encoder = build_text_encoder(cfg.cond, captions).to(self.device)
            self.negatives = caption_negatives(cfg.cond, dataset.source)
        # Fixed items for the sample grids (epoch 0 clips of the first videos).
        self._samples = None

    def announce(self, log: Callable[[str], None]) -> None:
        """One line about the conditional setup for the run log; a random LPIPS backbone is shouted."""
        c = self.cfg.cond
        if self.mode == "text":
            kind = (f"external {type(self.text_encoder).__name__}" if self.external_text else
                    f"built-in {c.text_encoder} ({len(self.text_encoder.tokenizer)} words)")
            n = self.negatives
            wrong = (f"every one-word swap over {len(n.groups)} word groups and another clip's caption" if
                     c.mismatch_negatives == "swaps" else f"{c.mismatch_swap:.0%} one-word swaps over {len(n.groups)} "
                     "word groups, the rest other clips' captions")
            log(f"conditional mode 'text': {kind} text encoder, {c.text_dim}-d, matching-aware weight "
                f"{c.mismatch_weight} ({wrong})")
            return
        lp = self.recon.lpips
        backbone = "off" if lp is None else ("RANDOM (tests only)" if lp.random_backbone else
                                             f"{lp.lpips.net_name}, v0.1 weights from {lp.lpips.model.source}")
        log(f"conditional mode '{self.mode}': reconstruction x{c.recon_weight} (LPIPS {c.lpips_weight}, "
            f"L1 {c.l1_weight}, temporal {c.temporal_weight}; LPIPS backbone {backbone})")
        if lp is not None and lp.random_backbone:
            log("WARNING: " + RANDOM_BACKBONE_WARNING)

    def condition_words(self) -> str:
        return f"{self.c_dim}-d {self.mode} condition"

    # ---- networks ------------------------------------------------------------------------------
    @property
    def c_dim(self) -> int:
        """The generator's condition size (saved as the checkpoint's c_dim)."""
        if self.mode == "text":
            return self.cfg.cond.text_dim
        return self.cfg.cond.encoder_channels if self.cfg.G.objects > 0 else self.cfg.cond.encoder_dim

    def build_discriminators(self):
        """Text: projection on the sentence embedding in both Ds. Image/continue: unconditional Ds (the
        condition is part of the clip they judge)."""
        return build_discriminators(self.cfg, self.cfg.cond.text_dim if self.mode == "text" else 0)

    def d_parameters(self) -> List[torch.nn.Parameter]:
        """Extra parameters trained with the discriminators: the built-in text encoder."""
        if self.mode == "text" and not self.external_text:
            return list(self.text_encoder.parameters())
        return []

    def synced_modules(self) -> List[torch.nn.Module]:
        """Trained modules outside G and the Ds (ranks start from rank 0's copy)."""
        return [self.text_encoder] if self.d_parameters() else []

    def add_to_optimizer(self, opt_D: torch.optim.Optimizer) -> None:
        params = self.d_parameters()
        if params:
            opt_D.add_param_group({"params": params})

    def loss_hooks(self) -> Dict:
        """VideoGANLoss's `condition` and `terms` for this mode. Text: the Ds see the caption embeddings and the
        matching-aware term; image/continue: unconditional Ds and the reconstruction term."""
        if self.mode == "text":
            conditions = TextConditions(self.text_encoder, trainable=not self.external_text)
            return {"condition": conditions, "terms": [MatchingAwareTerm(conditions, self.cfg.cond.mismatch_weight)]}
        return {"condition": no_condition,
                "terms": [ReconstructionTerm(self.recon, self.cfg.cond.recon_weight, self.mode == "image")]}

    # ---- batches -------------------------------------------------------------------------------
    def make_batch(self, G, data: Dict, device, gen: torch.Generator) -> CondBatch:
        """Real clips + G's inputs. G renders the real clips' times from 0 (the condition is frame 0 /
        the context), with random motion codes from `gen` (the loop's per-step generator)."""
        real = data["video"].to(memory_format=torch.contiguous_format)    # [B, T, C, H, W]
        times = data["times"].float()                                     # [B, T]
        b = real.shape[0]
        z = torch.randn(b, G.z_dim, generator=gen).to(device)
        gen_times = times - times[:, :1]
        motion = G.sample_motion(b, float(gen_times.max()), generator=gen).to(device)
        batch = CondBatch(real=real, times=times, real_c=None, z=z, gen_c=None, gen_times=gen_times, motion=motion)
        if self.mode == "image":
            batch.gen_c = real[:, 0]                                      # the still: [B, C, H, W]
        elif self.mode == "continue":
            batch.gen_c = real[:, :self.cfg.cond.context_frames]          # [B, K, C, H, W]
        else:
            captions = list(data["caption"])
            perm = torch.randperm(b, generator=gen).tolist()
            batch.real_captions = captions
            batch.gen_captions = [captions[i] for i in perm]
            if self.cfg.cond.mismatch_negatives == "swaps":                # every one-word swap, per-D weights
                wrong, w_video, w_image = self.negatives.table(captions)
            else:                                                         # one per clip: a swap or another's
                wrong, differs, looks = self.negatives(captions, gen)
                w_video, w_image = differs[:, None], looks[:, None]
            batch.wrong_captions = wrong
            batch.mismatch_mask = w_video.to(device=device, dtype=torch.float32)
            batch.mismatch_mask_image = w_image.to(device=device, dtype=torch.float32)
            with torch.no_grad():
                batch.gen_c = self.text_encoder.encode(batch.gen_captions).to(device=device, dtype=torch.float32)
        return batch

    # ---- samples -------------------------------------------------------------------------------
    def _sample_items(self, dataset, count: int) -> List[Dict]:
        if self._samples is None:
            keep = dataset.epoch
            dataset.set_epoch(0)
            self._samples = [dataset[i % len(dataset)] for i in range(count)]
            dataset.set_epoch(keep)
        return self._samples

    @torch.no_grad()
    def sample_grid(self, G_ema, dataset, count: int, num_frames: int) -> np.ndarray:
        """uint8 [T, H', W', 3]. Text: one clip per caption (captions of the first videos), `num_frames`
        long. Image/continue: a row of real clips over a row of generated ones at the same times."""
        items = self._sample_items(dataset, count)
        dev = next(G_ema.parameters()).device
        gen = torch.Generator().manual_seed(12345)
        z = torch.randn(count, G_ema.z_dim, generator=gen).to(dev)
        if self.mode == "text":
            c = self.text_encoder.encode([it["caption"] for it in items]).to(dev, torch.float32)
            t = torch.arange(num_frames, dtype=torch.float32, device=dev)[None].expand(count, -1)
            motion = G_ema.sample_motion(count, float(t.max()), generator=gen).to(dev)
            video = G_ema(z, c, t, motion)
            return make_grid(to_uint8(video.float().clamp(-1, 1).cpu()), nrow=min(4, count))
        real = torch.stack([it["video"] for it in items]).to(dev)
        t = torch.stack([it["times"] for it in items]).to(dev)
        cond = real[:, 0] if self.mode == "image" else real[:, :self.cfg.cond.context_frames]
        motion = G_ema.sample_motion(count, float(t.max()), generator=gen).to(dev)
        fake = G_ema(z, cond, t, motion).clamp(-1, 1)
        return make_grid(to_uint8(torch.cat([real, fake]).float().cpu()), nrow=count)

    def sample_captions(self, dataset, count: int) -> Optional[List[List[str]]]:
        """Text: the prompt of each cell of `sample_grid`, by grid row; None for the other modes (their grid is a
        row of real clips over a row of generated ones)."""
        if self.mode != "text":
            return None
        cells = [it["caption"] for it in self._sample_items(dataset, count)]
        cols = min(4, count)
        return [cells[i:i + cols] for i in range(0, count, cols)]

    # ---- checkpoint state ----------------------------------------------------------------------
    def checkpoint_extra(self) -> Dict:
        """The checkpoint's 'cond' entry: text encoder weights and vocabulary."""
        return {"cond": self.state_dict()}

    def restore(self, state: Dict) -> None:
        if "cond" in state:
            self.load_state_dict(state["cond"])

    def state_dict(self) -> Dict:
        """Plain data for the checkpoint's 'cond' entry (weights_only-loadable)."""
        out = {"mode": self.mode, "text_encoder": None, "text_vocab": None, "external_text_encoder": None}
        if self.mode == "text":
            if self.external_text:
                out["external_text_encoder"] = type(self.text_encoder).__name__
                record = getattr(self.text_encoder, "record", None)   # a pretrained one: name + SHA-256, no weights
                out["pretrained_text_encoder"] = record() if callable(record) else None
            else:
                out["text_encoder"] = self.text_encoder.state_dict()
                out["text_vocab"] = list(self.text_encoder.tokenizer.vocab)
        return out

    def load_state_dict(self, state: Dict) -> None:
        if state.get("text_encoder") is not None and isinstance(self.text_encoder, LearnedTextEncoder):
            if list(state["text_vocab"]) != list(self.text_encoder.tokenizer.vocab):
                raise ValueError("the checkpoint's text vocabulary differs from this dataset's; resume with the "
                                 "same data settings")
            self.text_encoder.load_state_dict(state["text_encoder"])
