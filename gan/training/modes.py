"""Training modes: what differs between unconditional / class-conditional training and a conditional mode
(gan/training/conditional.py `ConditionalTraining`), as one object the loop calls at fixed hook points:
build the discriminators, extend the optimizer, the loss and the batch, draw sample grids, save/restore state."""
from __future__ import annotations

from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from gan.config import Config
from gan.networks import build_discriminators
from gan.sampling import render_grid_video
from losses import Batch


def step_seed(seed: int, rank: int, step: int, stream: int = 0) -> int:
    return int(np.random.SeedSequence([seed, rank, step, stream]).generate_state(1)[0])


class PlainMode:
    """Unconditional training, or class-conditional with the data's labels (c_dim > 0): the default hooks."""

    def __init__(self, cfg: Config, device, c_dim: int):
        self.cfg, self.device, self.c_dim = cfg, torch.device(device), c_dim

    def condition_words(self) -> str:
        return f"{self.c_dim} classes"

    def synced_modules(self) -> List[torch.nn.Module]:
        return []

    def build_discriminators(self):
        return build_discriminators(self.cfg, self.c_dim)

    def add_to_optimizer(self, opt_D: torch.optim.Optimizer) -> None:
        pass

    def d_parameters(self) -> List[torch.nn.Parameter]:
        return []

    def announce(self, log: Callable[[str], None]) -> None:
        pass

    def loss_hooks(self) -> Dict:
        """VideoGANLoss's `condition` and `terms`: the defaults (the batch's class ids, no extra terms)."""
        return {}

    def make_batch(self, G, data: Dict, device, gen: torch.Generator) -> Batch:
        """Real clips [B, T, C, H, W] and times, and G's inputs drawn from `gen` (the step's stream)."""
        cfg = self.cfg
        real = data["video"].to(memory_format=torch.contiguous_format)        # [B, T, C, H, W]
        times = data["times"].float()                                          # [B, T]
        b = real.shape[0]
        z = torch.randn(b, G.z_dim, generator=gen).to(device)
        real_c = data["label"].long() if self.c_dim > 0 else None
        gen_c = real_c[torch.randperm(b, generator=gen).to(device)] if real_c is not None else None
        # Random time offset: G must render any stretch of time, not only clips that start at t=0.
        offset = torch.rand(b, 1, generator=gen).to(device) * 2 * cfg.G.motion_period
        gen_times = offset + (times - times[:, :1])
        motion = G.sample_motion(b, float(gen_times.max()), generator=gen).to(device)
        return Batch(real=real, times=times, real_c=real_c, z=z, gen_c=gen_c, gen_times=gen_times, motion=motion)

    def sample_grid(self, G_ema, dataset, count: int, num_frames: int) -> np.ndarray:
        return render_grid_video(G_ema, list(range(count)), num_frames, self.device, c_dim=self.c_dim,
                                 nrow=min(4, count))

    def sample_captions(self, dataset, count: int) -> Optional[List[List[str]]]:
        """The class of each cell of `sample_grid`, by grid row (classes cycle over the cells); None without."""
        if self.c_dim == 0:
            return None
        cells = [dataset.class_names[i % self.c_dim] for i in range(count)]
        cols = min(4, count)
        return [cells[i:i + cols] for i in range(0, count, cols)]

    def checkpoint_extra(self) -> Dict:
        return {}

    def restore(self, state: Dict) -> None:
        pass
