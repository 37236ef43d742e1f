"""Perceptual (LPIPS) losses for clips, with L1 and a temporal term, for conditional modes where a
generated clip has a target (first frame, future frames, projection).

LPIPS (Zhang et al. 2018) = calibrated linear layers (shipped inside the `lpips` package) over a
pretrained ImageNet backbone (torchvision weights, downloaded into the torch hub cache). The backbone
cannot be fetched on every machine, so it is loaded here explicitly from the hub cache or a file the
user names, its hash is checked, and a missing file stops with the exact name and place. A randomly
initialised backbone exists only for tests, by explicit request, and says so in its repr.
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn

# torchvision's published backbone files: the name embeds the first 8 hex digits of the SHA-256.
BACKBONES = {
    "alex": ("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
    "vgg": ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
    "squeeze": ("squeezenet1_1-b8a52dc0.pth", "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth"),
}


class MissingWeightsError(FileNotFoundError):
    pass


def backbone_path(net: str, path: Optional[str] = None) -> Path:
    """Where the backbone weights must be: `path` if given, else the torch hub cache."""
    if net not in BACKBONES:
        raise ValueError(f"unknown LPIPS backbone {net!r}; choose from {sorted(BACKBONES)}")
    name, url = BACKBONES[net]
    p = Path(path) if path else Path(torch.hub.get_dir()) / "checkpoints" / name
    if not p.is_file():
        raise MissingWeightsError(
            f"LPIPS needs the pretrained {net} backbone, which is not on this machine: put {name} "
            f"(from {url}) at {p}" + ("" if path else " (the torch hub cache; set TORCH_HOME to move it)")
            + ", or name another copy with the lpips_backbone option.")
    return p


def check_hash(path: Path, expected_prefix: str) -> None:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if not h.hexdigest().startswith(expected_prefix):
        raise ValueError(f"{path} has SHA-256 {h.hexdigest()[:16]}..., expected {expected_prefix}...: "
                         f"the file is corrupt or not the published weights; download it again")


class ClipLPIPS(nn.Module):
    """LPIPS between clips [B, T, C, H, W] in [-1, 1] -> [B] (mean over frames and space), or
    [B, T, 1, H, W] with spatial=True. Frozen: no parameter requires grad, so it never enters an
    optimizer or a gradient all-reduce; keep it outside the trained modules."""

    def __init__(self,
                 net: str = "alex",                   # backbone: 'alex' (LPIPS default), 'vgg', 'squeeze'
                 backbone: Optional[str] = None,      # weights file; None: the torch hub cache
                 spatial: bool = False,               # return per-pixel distances
                 random_backbone: bool = False):      # TESTS ONLY: random backbone weights, not LPIPS
        super().__init__()
        import lpips
        self.net_name, self.spatial, self.random_backbone = net, spatial, random_backbone
        if not random_backbone:
            path = backbone_path(net, backbone)
            check_hash(path, BACKBONES[net][0].rsplit("-", 1)[1].split(".")[0])
        # pnet_rand=True: build the architecture without torchvision downloading anything; the
        # calibrated linear layers come from the lpips package itself.
        with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=` argument
            warnings.simplefilter("ignore", UserWarning)
            self.model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, spatial=spatial, verbose=False)
        if not random_backbone:
            self._load_backbone(path)
        self.model.eval().requires_grad_(False)

    def _load_backbone(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        mapped = {}
        for slice_name, module in self.model.net.named_children():
            for idx, _ in module.named_children():
                for pname in ("weight", "bias"):
                    key = f"{idx}.{pname}"
                    if key in features:
                        mapped[f"{slice_name}.{idx}.{pname}"] = features[key]
        missing = [k for k, _ in self.model.net.named_parameters() if k not in mapped]
        if missing:
            raise ValueError(f"{path} does not hold {self.net_name} backbone weights (missing {missing[:3]})")
        self.model.net.load_state_dict(mapped, strict=True)

    def train(self, mode: bool = True):  # always eval: dropout off, frozen statistics
        return super().train(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        assert x.shape == y.shape and x.ndim == 5, f"expected two [B, T, C, H, W] clips, got {x.shape}, {y.shape}"
        b, t = x.shape[:2]
        d = self.model(x.reshape(b * t, *x.shape[2:]).float(), y.reshape(b * t, *y.shape[2:]).float())
        if self.spatial:
            return d.reshape(b, t, *d.shape[1:])
        return d.reshape(b, t).mean(dim=1)

    def extra_repr(self) -> str:
        kind = "RANDOM backbone (tests only, not LPIPS)" if self.random_backbone else "pretrained backbone"
        return f"net={self.net_name}, {kind}, spatial={self.spatial}"


class ReconstructionLoss(nn.Module):
    """Weighted LPIPS + L1 + temporal term for a generated clip against its target, per sample [B].

    The temporal term compares how consecutive frames change: LPIPS(out_t, out_{t+1}) against
    LPIPS(target_t, target_{t+1}), so motion is matched as well as appearance. Without an LPIPS model
    (lpips_weight 0: L1-only training) it compares the changes in L1: |(out_{t+1} - out_t) - (target_{t+1} -
    target_t)|, so no term needs the pretrained backbone."""

    def __init__(self, lpips_model: Optional[ClipLPIPS], lpips_weight: float = 1.0, l1_weight: float = 1.0,
                 temporal_weight: float = 0.0):
        super().__init__()
        if lpips_model is None and lpips_weight > 0:
            raise ValueError("lpips_weight > 0 needs an LPIPS model")
        self.lpips = lpips_model
        self.lpips_weight, self.l1_weight, self.temporal_weight = lpips_weight, l1_weight, temporal_weight

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> dict:
        # out, target [B, T, C, H, W] -> dict of per-sample terms [B] and their weighted 'total'
        terms = {"l1": (out - target).abs().flatten(1).mean(1)}
        total = self.l1_weight * terms["l1"]
        if self.lpips_weight > 0:
            terms["lpips"] = self.lpips(out, target)
            total = total + self.lpips_weight * terms["lpips"]
        if self.temporal_weight > 0 and out.shape[1] > 1:
            if self.lpips is not None:
                d_out = self.lpips(out[:, :-1], out[:, 1:])
                d_tgt = self.lpips(target[:, :-1], target[:, 1:])
                terms["temporal"] = (d_out - d_tgt).abs()
            else:
                change = out.diff(dim=1) - target.diff(dim=1)        # [B, T-1, C, H, W]
                terms["temporal"] = change.abs().flatten(1).mean(1)
            total = total + self.temporal_weight * terms["temporal"]
        terms["total"] = total
        return terms
