"""Where the clips that the metrics (gan/metrics) and the analysis (gan/analysis) read come from: a generator
checkpoint, a folder of generated videos, or a dataset.

Every source yields batches of uint8 clips `[B, T, H, W, 3]` at the requested square resolution, clip by
clip in a fixed order, so the same arguments always give the same clips.

Real-clip selection (protocol "reelgan-v1", used for the cached real statistics):
1. videos shorter than one clip, `(T - 1) * stride + 1` frames, are discarded (as StyleGAN-V's
   `discard_short_videos`); built-in datasets never are: their motion continues past `video_frames`;
2. the usable videos are put in a random order drawn from `default_rng(seed)`, and clip k comes from
   video `order[k % num_videos]` (videos are reused, with new start frames, only when N > num_videos);
3. the start frame of clip k is uniform over the valid starts, drawn from `default_rng([seed, k])`.
Generated videos (a folder) are read from their first frame, video k for clip k, in natural file order;
a generator renders seed `seed + k` from time 0 (class `k % classes` for conditional models).
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import asdict, dataclass
from typing import Dict, Iterator, Optional

import numpy as np

from gan.errors import ReelganError
from gan.video_io import resize_square

logger = logging.getLogger(__name__)
PROTOCOL = "reelgan-v1"
BUILTINS = ("digits", "shapes")


class ClipSourceError(ReelganError, ValueError):
    """A clip source that cannot deliver the requested clips (too few videos, bad path, ...)."""


@dataclass(frozen=True)
class ClipSpec:
    frames: int                 # clip length T
    resolution: int             # square frame size the clips are delivered at
    stride: int = 1             # data frames between consecutive clip frames

    @property
    def span(self) -> int:
        return (self.frames - 1) * self.stride + 1


class ClipSource:
    """Base: `describe()` says what the clips are (cache keys, JSON); `clips()` yields them."""

    def describe(self) -> Dict:
        raise NotImplementedError

    def clips(self, num: int, spec: ClipSpec, seed: int = 0, batch: int = 8) -> Iterator[np.ndarray]:
        raise NotImplementedError

    @property
    def builtin(self) -> Optional[str]:
        """'digits' / 'shapes' when the clips come from (or imitate) a built-in dataset."""
        return None


def _batches(num: int, batch: int):
    for i in range(0, num, batch):
        yield range(i, min(i + batch, num))


class DatasetClips(ClipSource):
    """Real clips: a built-in dataset ('digits', 'shapes') or a dataset path (video folder, frame folders, zip)."""

    def __init__(self,
                 source: str,                    # 'digits', 'shapes' or a path
                 content_seed: int = 0,          # built-ins: the dataset seed (training uses train.seed)
                 split: str = "train",           # built-ins: 'train' or 'test'
                 num_videos: int = 20000,        # built-ins: as DataConfig
                 video_frames: int = 64,
                 num_objects: int = 2,
                 seed_offset: int = 0):          # added to the selection seed: an independent draw of clips
        self.source = str(source)
        self.seed_offset = int(seed_offset)
        self.content_seed, self.split = int(content_seed), split
        self.num_videos, self.video_frames, self.num_objects = int(num_videos), int(video_frames), int(num_objects)
        self._disk = {}                                                # (span, resolution) -> prepared source
        if self.source not in BUILTINS and not os.path.exists(self.source):
            raise ClipSourceError(f"dataset {self.source} does not exist: pass 'digits', 'shapes', a video "
                                  f"folder, a folder of frame folders or a .zip")

    @classmethod
    def from_config(cls, data_cfg, content_seed: int = 0, split: str = "train") -> "DatasetClips":
        return cls(data_cfg.source, content_seed, split, data_cfg.num_videos, data_cfg.video_frames,
                   data_cfg.num_objects)

    @property
    def builtin(self) -> Optional[str]:
        return self.source if self.source in BUILTINS else None

    def _open(self, spec: ClipSpec):
        if self.builtin:
            from gan.data.dataset import BUILTIN_SOURCES
            return BUILTIN_SOURCES[self.source](resolution=spec.resolution, num_videos=self.num_videos,
                                                video_frames=self.video_frames, num_objects=self.num_objects,
                                                seed=self.content_seed, split=self.split)
        key = (spec.span, spec.resolution)
        if key not in self._disk:                 # the prepared (memory-mapped) form training uses, from its cache
            from gan.data.dataset import open_disk_source
            self._disk[key] = open_disk_source(self.source, spec.resolution, spec.span, progress=False)
        return self._disk[key]                    # drops videos shorter than a clip

    def describe(self) -> Dict:
        d = {"kind": "path", "path": os.path.abspath(self.source), "listing": _listing_hash(self.source)}
        if self.builtin:
            d = {"kind": "builtin", "name": self.source, "content_seed": self.content_seed, "split": self.split,
                 "num_videos": self.num_videos, "video_frames": self.video_frames, "num_objects": self.num_objects}
        if self.seed_offset:
            d["seed_offset"] = self.seed_offset
        return d

    def clips(self, num: int, spec: ClipSpec, seed: int = 0, batch: int = 8) -> Iterator[np.ndarray]:
        src = self._open(spec)
        n = len(src)
        if num > n:
            logger.warning(f"{self.source} has {n} usable videos for {num} clips: videos are reused with other "
                           f"start frames")
        seed += self.seed_offset
        order = np.random.default_rng(seed).permutation(n)
        for ks in _batches(num, batch):
            out = []
            for k in ks:
                index = int(order[k % n])
                frames = src.num_frames(index)
                start = int(np.random.default_rng([seed, k]).integers(0, max(1, frames - spec.span + 1)))
                if self.builtin:
                    clip = src.render(index, start, spec.frames, spec.stride)    # rendered at spec.resolution
                else:
                    clip = src.read(index, start, spec.frames, spec.stride)
                    if clip.shape[-1] == 1:                                   # stored grey
                        clip = np.repeat(clip, 3, axis=-1)
                out.append(clip)
            yield np.stack(out)


class FolderClips(ClipSource):
    """Generated videos on disk: clip k is the first frames of video k (natural file order)."""

    def __init__(self,
                 root: str,                       # folder of video files
                 imitates: Optional[str] = None):  # built-in dataset the videos imitate (for offline metrics)
        from gan.data.readers import find_video_files
        if not os.path.isdir(root):
            raise ClipSourceError(f"video folder {root} does not exist")
        self.root = root
        self.imitates = imitates
        self.files = find_video_files(root)
        if not self.files:
            raise ClipSourceError(f"no video files in {root} (expected .mp4, .webm, .gif, ...)")
        self._frames: Dict[str, int] = {}

    @property
    def builtin(self) -> Optional[str]:
        return self.imitates

    def native_resolution(self) -> int:
        """Short side of the first video (clips are centre-cropped squares of that size)."""
        from gan.video_io import probe_video
        info = probe_video(self.files[0])
        return min(info["width"], info["height"])

    def describe(self) -> Dict:
        return {"kind": "folder", "path": os.path.abspath(self.root), "videos": len(self.files),
                "listing": _listing_hash(self.root)}

    def clips(self, num: int, spec: ClipSpec, seed: int = 0, batch: int = 8) -> Iterator[np.ndarray]:
        from gan.video_io import read_video
        if num > len(self.files):
            raise ClipSourceError(f"{self.root} holds {len(self.files)} videos, fewer than the {num} clips asked "
                                  f"for: generate more videos or lower the number of fake clips")
        for ks in _batches(num, batch):
            out = []
            for k in ks:
                clip = read_video(self.files[k], max_frames=spec.span, size=spec.resolution)[::spec.stride]
                if len(clip) < spec.frames:
                    raise ClipSourceError(f"{self.files[k]} has {len(clip) * spec.stride} frames, fewer than one "
                                          f"{spec.frames}-frame clip at stride {spec.stride} needs ({spec.span})")
                out.append(clip[:spec.frames])
            yield np.stack(out)


class GeneratorClips(ClipSource):
    """Clips rendered by a generator: clip k is seed `seed + k` from time 0."""

    def __init__(self,
                 checkpoint: str,                 # training checkpoint or exported generator
                 device: str = "cpu"):
        from gan.sampling import load_generator
        self.checkpoint = checkpoint
        self.device = device
        self.G, self.info = load_generator(checkpoint, device)
        self.config = self.info["config"]

    @classmethod
    def from_module(cls, G, config, c_dim: int = 0, name: str = "<in memory>", device: str = "cpu"):
        self = cls.__new__(cls)
        self.checkpoint, self.device, self.G, self.config = name, device, G, config
        self.info = {"config": config, "c_dim": c_dim, "step": None}
        return self

    @property
    def builtin(self) -> Optional[str]:
        return self.config.data.source if self.config.data.source in BUILTINS else None

    @property
    def resolution(self) -> int:
        return self.config.data.resolution

    def describe(self) -> Dict:
        return {"kind": "checkpoint", "path": str(self.checkpoint), "step": self.info.get("step"),
                "resolution": self.resolution}

    def clips(self, num: int, spec: ClipSpec, seed: int = 0, batch: int = 8) -> Iterator[np.ndarray]:
        import torch
        from gan.sampling import render
        from gan.video_io import to_uint8
        c_dim = self.info.get("c_dim", 0)
        for ks in _batches(num, batch):
            seeds = [seed + k for k in ks]
            c = torch.tensor([k % c_dim for k in ks]) if c_dim else None
            video = render(self.G, seeds, spec.frames, time_step=float(spec.stride), c=c, device=self.device,
                           fused=False)                                    # [B, T, C, H, W] in [-1, 1]
            clips = to_uint8(video.float().cpu())                          # [B, T, H, W, 3]
            if clips.shape[2] != spec.resolution:
                clips = np.stack([resize_square(c_, spec.resolution) for c_ in clips])
            yield clips


def _listing_hash(root: str) -> str:
    """Names, sizes and modification times of every file below `root` (or of the file): changes on edits."""
    h = hashlib.sha256()
    if os.path.isfile(root):
        st = os.stat(root)
        h.update(f"{os.path.basename(root)}:{st.st_size}:{st.st_mtime_ns}".encode())
        return h.hexdigest()[:16]
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for f in sorted(files):
            st = os.stat(os.path.join(folder, f))
            h.update(f"{os.path.relpath(os.path.join(folder, f), root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def spec_dict(spec: ClipSpec) -> Dict:
    return asdict(spec)
