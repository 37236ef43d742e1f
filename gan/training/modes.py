"""Training modes: what differs between unconditional / class, text and frame-conditioned (image, continue)
training, as small classes behind one protocol (`TrainingMode`) that the loop calls at fixed points. None of
them asks which mode it is: `build_mode` picks the class from cfg.cond.mode once, by table."""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Protocol

import numpy as np
import torch

from gan.conditioning.pretrained import pretrained_text_encoder
from gan.conditioning.text import CaptionNegatives, LearnedTextEncoder, TextEncoder, build_text_encoder
from gan.config import Config
from gan.sampling.render import ClipRenderer
from gan.training.media import caption_rows, grid_columns
from gan.video_io import make_grid, to_uint8
from losses import Batch
from losses.conditional import (RANDOM_BACKBONE_WARNING, CondBatch, MatchingAwareTerm, ReconstructionTerm,
                                TextConditions, build_reconstruction, no_condition)

VOCAB_CAPTIONS = 2000     # text: dataset captions read to build the built-in encoder's word vocabulary


def step_seed(seed: int, rank: int, step: int, stream: int = 0) -> int:
    return int(np.random.SeedSequence([seed, rank, step, stream]).generate_state(1)[0])


class TrainingMode(Protocol):
    """The contract of a mode, in the order setup() and the loop use it.

    c_dim               the condition size G is built with and the Ds project on (0: none); the checkpoint's c_dim
                        is read from the built G (G.c_dim)
    describe(c_dim)     the condition in the run's first log line; announce(log): the mode's own lines
    d_parameters()      trained with the Ds (the built-in text encoder); synced_modules(): ranks start alike
    loss_hooks()        VideoGANLoss's `condition` and `terms` (losses/conditional.py)
    make_batch(G, data, device, gen)  the step's Batch: real clips and G's inputs, every draw from `gen`
    sample_grid(G_ema, dataset, count, frames)  uint8 [T, H', W', 3], rendered by ClipRenderer
    sample_captions(dataset, count)   each grid cell's prompt or class, by grid row (None: no words)
    state() / restore(state)          the checkpoint's extra entries ({} when none)
    """
    c_dim: int

    def describe(self, c_dim: int) -> str: ...
    def announce(self, log: Callable[[str], None]) -> None: ...
    def d_parameters(self) -> List[torch.nn.Parameter]: ...
    def synced_modules(self) -> List[torch.nn.Module]: ...
    def loss_hooks(self) -> Dict: ...
    def make_batch(self, G, data: Dict, device, gen: torch.Generator) -> Batch: ...
    def sample_grid(self, G_ema, dataset, count: int, num_frames: int) -> np.ndarray: ...
    def sample_captions(self, dataset, count: int) -> Optional[List[List[str]]]: ...
    def state(self) -> Dict: ...
    def restore(self, state: Dict) -> None: ...


def grid_of(videos: torch.Tensor, columns: int) -> np.ndarray:
    """Clips [N, T, C, H, W] in [-1, 1] -> one uint8 grid video [T, H', W', 3]."""
    return make_grid(to_uint8(videos.float().cpu()), nrow=columns)


def latent_batch(G, data: Dict, device, gen: torch.Generator, time_offset: float = 0.0, labels: bool = False,
                 kind=Batch) -> Batch:
    """Real clips [B, T, C, H, W] and times, and G's inputs drawn from `gen` (the step's stream), in this order:
    z, with `labels` the real class ids shuffled for the fakes, a random start in [0, time_offset) (0: G renders
    the real clips' times from 0), the motion codes."""
    real = data["video"].to(memory_format=torch.contiguous_format)        # [B, T, C, H, W]
    times = data["times"].float()                                          # [B, T]
    b = real.shape[0]
    z = torch.randn(b, G.z_dim, generator=gen).to(device)
    real_c = data["label"].long() if labels else None
    gen_c = real_c[torch.randperm(b, generator=gen).to(device)] if labels else None
    gen_times = times - times[:, :1]
    if time_offset > 0:                    # G must render any stretch of time, not only clips that start at t=0
        gen_times = torch.rand(b, 1, generator=gen).to(device) * time_offset + gen_times
    motion = G.sample_motion(b, float(gen_times.max()), generator=gen).to(device)
    return kind(real=real, times=times, real_c=real_c, z=z, gen_c=gen_c, gen_times=gen_times, motion=motion)


def first_items(dataset, count: int) -> List[Dict]:
    """The epoch-0 items of the first `count` videos (the sample grids' fixed clips and captions)."""
    keep = dataset.epoch
    dataset.set_epoch(0)
    items = [dataset[i % len(dataset)] for i in range(count)]
    dataset.set_epoch(keep)
    return items


class BaseMode:
    """The defaults: no extra parameters, modules, log lines or checkpoint state."""
    c_dim = 0

    def announce(self, log: Callable[[str], None]) -> None:
        pass

    def d_parameters(self) -> List[torch.nn.Parameter]:
        return []

    def synced_modules(self) -> List[torch.nn.Module]:
        return []

    def loss_hooks(self) -> Dict:
        return {}

    def sample_captions(self, dataset, count: int) -> Optional[List[List[str]]]:
        return None

    def state(self) -> Dict:
        """The checkpoint's 'cond' entry (plain data): the mode, and the text mode's encoder (see TextMode)."""
        return {"cond": {"mode": self.cfg.cond.mode, "text_encoder": None, "text_vocab": None,
                         "external_text_encoder": None}}

    def restore(self, state: Dict) -> None:
        pass


class PlainMode(BaseMode):
    """Unconditional training, or class-conditional with the data's labels (c_dim > 0)."""

    def __init__(self, cfg: Config, device, c_dim: int):
        self.cfg, self.device, self.c_dim = cfg, torch.device(device), c_dim

    def describe(self, c_dim: int) -> str:
        return f"{c_dim} classes"

    def make_batch(self, G, data: Dict, device, gen: torch.Generator) -> Batch:
        return latent_batch(G, data, device, gen, 2 * self.cfg.G.motion_period, labels=self.c_dim > 0)

    def _classes(self, count: int) -> Optional[torch.Tensor]:
        return torch.arange(count) % self.c_dim if self.c_dim > 0 else None       # cells cycle through the classes

    def sample_grid(self, G_ema, dataset, count: int, num_frames: int) -> np.ndarray:
        video = ClipRenderer(G_ema, self.device, fused=False).render(list(range(count)), num_frames,
                                                                     c=self._classes(count))
        return grid_of(video, grid_columns(count))

    def sample_captions(self, dataset, count: int) -> Optional[List[List[str]]]:
        if self.c_dim == 0:
            return None
        return caption_rows([dataset.class_names[int(i)] for i in self._classes(count)], grid_columns(count))


def caption_negatives(cond_cfg, source) -> CaptionNegatives:
    """The matching-aware loss's wrong-caption sampler: cfg.cond's word groups, or (both empty) the built-in
    dataset's own (`caption_word_groups()`); a source without groups gets other clips' captions only."""
    appearance, motion = cond_cfg.appearance_words, cond_cfg.motion_words
    if not appearance and not motion and hasattr(source, "caption_word_groups"):
        groups = source.caption_word_groups()
        appearance, motion = groups["appearance"], groups["motion"]
    return CaptionNegatives(appearance, motion, cond_cfg.mismatch_swap)


class TextMode(BaseMode):
    """Text-to-video: the Ds project on the caption's embedding and score mismatched captions (matching-aware
    term); the built-in text encoder learns with the Ds, an external one stays frozen."""

    def __init__(self,
                 cfg: Config,
                 dataset,                                     # ClipDataset whose items carry 'caption'
                 device,
                 text_encoder: Optional[TextEncoder] = None):  # external encoder (kept frozen); None: built-in
        self.cfg, self.device, self.c_dim = cfg, torch.device(device), cfg.cond.text_dim
        if text_encoder is None:                                      # cond.text_encoder 'minilm': pretrained, frozen
            text_encoder = pretrained_text_encoder(cfg.cond, device=self.device)
        self.external_text = text_encoder is not None
        if text_encoder is not None:
            if not isinstance(text_encoder, TextEncoder):
                raise TypeError("text_encoder must follow gan.conditioning.text.TextEncoder (.dim and .encode)")
            if int(text_encoder.dim) != cfg.cond.text_dim:
                raise ValueError(f"the text encoder gives {text_encoder.dim}-d embeddings but cond.text_dim is "
                                 f"{cfg.cond.text_dim}; set cond.text_dim={text_encoder.dim}")
            if isinstance(text_encoder, torch.nn.Module):
                text_encoder.requires_grad_(False)
            self.text_encoder = text_encoder
        else:
            captions = (dataset.source.caption(i) for i in range(min(len(dataset), VOCAB_CAPTIONS)))
            self.text_encoder = build_text_encoder(cfg.cond, captions).to(self.device)
        self.negatives = caption_negatives(cfg.cond, dataset.source)
        self._captions: Optional[List[str]] = None

    def describe(self, c_dim: int) -> str:
        return f"{c_dim}-d text condition"

    def announce(self, log: Callable[[str], None]) -> None:
        c, n = self.cfg.cond, self.negatives
        kind = (f"external {type(self.text_encoder).__name__}" if self.external_text else
                f"built-in {c.text_encoder} ({len(self.text_encoder.tokenizer)} words)")
        wrong = (f"every one-word swap over {len(n.groups)} word groups and another clip's caption" if
                 c.mismatch_negatives == "swaps" else f"{c.mismatch_swap:.0%} one-word swaps over {len(n.groups)} "
                 "word groups, the rest other clips' captions")
        log(f"conditional mode 'text': {kind} text encoder, {c.text_dim}-d, matching-aware weight "
            f"{c.mismatch_weight} ({wrong})")

    def d_parameters(self) -> List[torch.nn.Parameter]:
        return [] if self.external_text else list(self.text_encoder.parameters())

    def synced_modules(self) -> List[torch.nn.Module]:
        return [] if self.external_text else [self.text_encoder]

    def loss_hooks(self) -> Dict:
        conditions = TextConditions(self.text_encoder, trainable=not self.external_text)
        return {"condition": conditions, "terms": [MatchingAwareTerm(conditions, self.cfg.cond.mismatch_weight)]}

    def make_batch(self, G, data: Dict, device, gen: torch.Generator) -> CondBatch:
        """G renders the real clips' times from 0 for another clip's caption; the wrong captions of the matching-
        aware term: every one-word swap (per-D weights) or one per clip (a swap or another clip's caption)."""
        batch = latent_batch(G, data, device, gen, kind=CondBatch)
        captions = list(data["caption"])
        perm = torch.randperm(len(captions), generator=gen).tolist()
        batch.real_captions, batch.gen_captions = captions, [captions[i] for i in perm]
        if self.cfg.cond.mismatch_negatives == "swaps":
            wrong, w_video, w_image = self.negatives.table(captions)
        else:
            wrong, differs, looks = self.negatives(captions, gen)
            w_video, w_image = differs[:, None], looks[:, None]
        batch.wrong_captions = wrong
        batch.mismatch_mask = w_video.to(device=device, dtype=torch.float32)
        batch.mismatch_mask_image = w_image.to(device=device, dtype=torch.float32)
        with torch.no_grad():
            batch.gen_c = self.text_encoder.encode(batch.gen_captions).to(device=device, dtype=torch.float32)
        return batch

    def _sample_captions(self, dataset, count: int) -> List[str]:
        if self._captions is None:                              # the first videos' captions, fixed for the run
            self._captions = [it["caption"] for it in first_items(dataset, count)]
        return self._captions

    @torch.no_grad()
    def sample_grid(self, G_ema, dataset, count: int, num_frames: int) -> np.ndarray:
        """One clip per caption of the first videos, seeds 0..count-1 as the plain mode's grid."""
        c = self.text_encoder.encode(self._sample_captions(dataset, count)).float()
        video = ClipRenderer(G_ema, self.device, fused=False).render(list(range(count)), num_frames, c=c)
        return grid_of(video, grid_columns(count))

    def sample_captions(self, dataset, count: int) -> Optional[List[List[str]]]:
        return caption_rows(self._sample_captions(dataset, count), grid_columns(count))

    def state(self) -> Dict:
        """The checkpoint's 'cond' entry (plain data): the built-in encoder's weights and vocabulary, or the name
        of the external one (sampling asks for it)."""
        out = super().state()["cond"]
        if self.external_text:
            out["external_text_encoder"] = type(self.text_encoder).__name__
            record = getattr(self.text_encoder, "record", None)       # a pretrained one: name + SHA-256, no weights
            out["pretrained_text_encoder"] = record() if callable(record) else None
        else:
            out["text_encoder"] = self.text_encoder.state_dict()
            out["text_vocab"] = list(self.text_encoder.tokenizer.vocab)
        return {"cond": out}

    def restore(self, state: Dict) -> None:
        saved = state.get("cond") or {}
        if saved.get("text_encoder") is not None and isinstance(self.text_encoder, LearnedTextEncoder):
            if list(saved["text_vocab"]) != list(self.text_encoder.tokenizer.vocab):
                raise ValueError("the checkpoint's text vocabulary differs from this dataset's; resume with the "
                                 "same data settings")
            self.text_encoder.load_state_dict(saved["text_encoder"])


class FrameMode(BaseMode):
    """Image-to-video and continuation: G gets the clip's first K frames (K = G.context_frames) and a reconstruction
    term pulls its clip towards the real one (the first frame only, or all); the Ds are unconditional."""

    def __init__(self,
                 cfg: Config,
                 device,
                 first_frame_only: bool,              # image-to-video: only frame 0 has a target
                 recon=None):                         # a ReconstructionLoss (None: from cfg.cond; warns if random)
        self.cfg, self.device, self.first_frame_only = cfg, torch.device(device), first_frame_only
        self.recon = (build_reconstruction(cfg.cond) if recon is None else recon).to(self.device)
        self._items: Optional[List[Dict]] = None

    def describe(self, c_dim: int) -> str:
        return f"{c_dim}-d {'first-frame' if self.first_frame_only else 'context'} condition"

    def announce(self, log: Callable[[str], None]) -> None:
        c, lp = self.cfg.cond, self.recon.lpips
        backbone = "off" if lp is None else ("RANDOM (tests only)" if lp.random_backbone else
                                             f"{lp.lpips.net_name}, v0.1 weights from {lp.lpips.model.source}")
        log(f"conditional mode '{c.mode}': reconstruction x{c.recon_weight} (LPIPS {c.lpips_weight}, "
            f"L1 {c.l1_weight}, temporal {c.temporal_weight}; LPIPS backbone {backbone})")
        if lp is not None and lp.random_backbone:
            log("WARNING: " + RANDOM_BACKBONE_WARNING)

    def loss_hooks(self) -> Dict:
        return {"condition": no_condition,
                "terms": [ReconstructionTerm(self.recon, self.cfg.cond.recon_weight, self.first_frame_only)]}

    def make_batch(self, G, data: Dict, device, gen: torch.Generator) -> CondBatch:
        """G renders the real clips' times from 0, from their first K frames."""
        batch = latent_batch(G, data, device, gen, kind=CondBatch)
        batch.gen_c = batch.real[:, :G.context_frames]                     # [B, K, C, H, W]
        return batch

    @torch.no_grad()
    def sample_grid(self, G_ema, dataset, count: int, num_frames: int) -> np.ndarray:
        """A row of real clips (epoch-0 clips of the first videos) over a row of G's clips from their first K
        frames at the same times (seed i for cell i)."""
        if self._items is None:
            self._items = first_items(dataset, count)
        renderer, k = ClipRenderer(G_ema, self.device), G_ema.context_frames
        real = torch.stack([it["video"] for it in self._items])
        fakes = []
        for i, it in enumerate(self._items):
            t = (it["times"] - it["times"][0]).double()
            clips = renderer.conditioned_clips([i], it["video"][:k], t[:k], t)
            fakes.append(renderer.whole(clips).cpu())
        return grid_of(torch.cat([real, torch.cat(fakes)]), count)


MODES = {"none": lambda cfg, dataset, device, c_dim, text_encoder: PlainMode(cfg, device, c_dim),
         "text": lambda cfg, dataset, device, c_dim, text_encoder: TextMode(cfg, dataset, device, text_encoder),
         "image": lambda cfg, dataset, device, c_dim, text_encoder: FrameMode(cfg, device, first_frame_only=True),
         "continue": lambda cfg, dataset, device, c_dim, text_encoder: FrameMode(cfg, device, first_frame_only=False)}


def build_mode(cfg: Config, dataset, device, c_dim: int = 0, text_encoder=None) -> TrainingMode:
    """The mode cfg.cond.mode names (c_dim: the data's classes, for the plain mode)."""
    return MODES[cfg.cond.mode](cfg, dataset, device, c_dim, text_encoder)
