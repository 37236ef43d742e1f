"""The offline video feature network (offline.py's metric features), apart from its training (offline_train.py)
and its loading (offline.py), which both build on it."""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F

INPUT_SIZE = 32                        # frames are resized to 32 x 32
CLIP_FRAMES = 16                       # clips the metric uses (every 2nd frame is seen -> 8 steps)
EMBED_DIM = 64                         # feature size of the Fréchet distance


def num_targets(dataset: str) -> int:
    """Joint identity classes: 10 digits, or 3 shapes x 6 colours."""
    return 10 if dataset == "digits" else 18


class OfflineVideoNet(nn.Module):
    """`[B, T', 3, 32, 32]` in [-1, 1] (T' = 8 sampled frames) -> embedding `[B, 64]`.

    Per frame (2D, cheap): RGB + difference to the next sampled frame -> 8 x 8 feature maps with coordinate
    channels, trained densely (identity and velocity of the object centred in each cell), which teaches
    identity in a few hundred steps where clip-level labels alone do not. Each frame is summarised by the
    max and mean of its map and by soft object slots (per identity: probability mass, centre, velocity);
    two temporal convolutions and mean / max over time give the 64-d embedding, whose heads predict the
    clip's factors (which identities are present, how many objects, where, how fast).
    """

    def __init__(self,
                 num_classes: int,              # joint identity classes (presence is multi-label)
                 width: int = 16):              # channels of the first layer (then 2x, then 64)
        super().__init__()
        self.num_classes = num_classes
        self.width = width
        norm = lambda c: nn.GroupNorm(8, c)     # per frame and sample: no train / eval difference
        self.stem = nn.Sequential(              # 32 -> 16 -> 8
            nn.Conv2d(6, width, 3, 2, 1), norm(width), nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, 1, 1), norm(2 * width), nn.SiLU(), nn.MaxPool2d(2))
        self.cells = nn.Sequential(                # + (x, y) coordinate channels; receptive field 25 px
            nn.Conv2d(2 * width + 2, 64, 3, 1, 1), norm(64), nn.SiLU(),
            nn.Conv2d(64, 64, 3, 1, 1), norm(64), nn.SiLU())
        self.dense = nn.Conv2d(64, num_classes + 1 + 2, 1)      # per cell: background/identity, velocity
        self.temporal = nn.Sequential(
            nn.Conv1d(2 * 64 + 5 * num_classes, 96, 3, 1, 1), nn.SiLU(),
            nn.Conv1d(96, 96, 3, 1, 1), nn.SiLU())
        self.embed = nn.Linear(2 * 96, EMBED_DIM)
        self.presence = nn.Linear(EMBED_DIM, num_classes)      # which identities are in the clip
        self.count = nn.Linear(EMBED_DIM, 3)                   # 1, 2 or 3 objects
        self.motion = nn.Linear(EMBED_DIM, num_classes * 4)    # per identity: centre (x, y), velocity (x, y)
        coords = torch.linspace(-1, 1, INPUT_SIZE // 4)
        self.register_buffer("coords", torch.stack(torch.meshgrid(coords, coords, indexing="xy")), persistent=False)
        # Standardisation of the features (set after training from held-out real clips): every dimension
        # counts alike in the Fréchet distance and the KID kernel (x.y / D + 1)^3 stays in its usual range.
        self.register_buffer("feature_mean", torch.zeros(EMBED_DIM))
        self.register_buffer("feature_std", torch.ones(EMBED_DIM))

    @staticmethod
    def prepare(clips: torch.Tensor) -> torch.Tensor:
        """uint8 `[B, T, H, W, 3]` -> float `[B, T//2, 3, 32, 32]` in [-1, 1] (every second frame)."""
        assert clips.dim() == 5 and clips.shape[-1] == 3, f"expected [B, T, H, W, 3], got {tuple(clips.shape)}"
        x = clips[:, ::2].permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0     # [B, T', 3, H, W]
        b, t = x.shape[:2]
        x = x.flatten(0, 1)
        if x.shape[-1] != INPUT_SIZE or x.shape[-2] != INPUT_SIZE:
            mode = "area" if x.shape[-1] > INPUT_SIZE else "bilinear"
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode=mode,
                              **({} if mode == "area" else {"align_corners": False}))
        return x.view(b, t, 3, INPUT_SIZE, INPUT_SIZE)

    def trunk(self, x: torch.Tensor):
        """-> (embedding [B, 64], dense per-cell outputs [B, T', K+3, 8, 8])."""
        assert x.dim() == 5 and x.shape[2:] == (3, INPUT_SIZE, INPUT_SIZE), f"bad input {tuple(x.shape)}"
        b, t = x.shape[:2]
        diff = torch.cat([x[:, 1:] - x[:, :-1], torch.zeros_like(x[:, :1])], dim=1)
        h = self.stem(torch.cat([x, diff], dim=2).flatten(0, 1))      # [B*T', 2w, 8, 8]
        h = torch.cat([h, self.coords.expand(len(h), -1, -1, -1)], dim=1)
        h = self.cells(h)                                             # [B*T', 64, 8, 8]
        dense = self.dense(h)                                         # [B*T', K+3, 8, 8]
        per_frame = torch.cat([h.amax(dim=(2, 3)), h.mean(dim=(2, 3)), self.soft_objects(dense)], dim=1)
        per_frame = per_frame.view(b, t, -1)                          # [B, T', 128 + 5K]
        s = self.temporal(per_frame.transpose(1, 2))                  # [B, 96, T']
        e = self.embed(torch.cat([s.mean(dim=2), s.amax(dim=2)], dim=1))
        return e, dense.view(b, t, *dense.shape[1:])

    def soft_objects(self, dense: torch.Tensor) -> torch.Tensor:
        """Per identity: mass, centre and velocity pooled over cells, weighted by its probability.

        dense [N, K+3, 8, 8] -> [N, 5K]: each identity acts as a soft object slot, so the embedding sees
        where each digit / shape is and how it moves, not only that it is there.
        """
        k = self.num_classes
        p = torch.softmax(dense[:, :k + 1], dim=1)[:, 1:]            # [N, K, 8, 8] identity probabilities
        mass = p.sum(dim=(2, 3)) + 1e-4                               # [N, K]
        centre = torch.einsum("nkhw,chw->nkc", p, self.coords) / mass[..., None]          # [N, K, 2]
        velocity = torch.einsum("nkhw,nchw->nkc", p, dense[:, k + 1:]) / mass[..., None]  # [N, K, 2]
        return torch.cat([torch.log(mass)[..., None], centre, velocity], dim=2).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The metric features: the standardised embedding `[B, 64]`."""
        return (self.trunk(x)[0] - self.feature_mean) / self.feature_std

    def heads(self, e: torch.Tensor) -> Dict[str, torch.Tensor]:
        a = F.silu(e)
        return {"presence": self.presence(a), "count": self.count(a),
                "motion": self.motion(a).view(len(e), self.num_classes, 4)}

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, input={INPUT_SIZE}px x 8 frames, embed={EMBED_DIM}"
