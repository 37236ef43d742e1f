"""Training clips: `ClipDataset` draws one random clip (start frame and stride) per video and item.

Randomness comes from `numpy.random.default_rng([seed, epoch, index])`, so an item is the same clip in any
worker process and any run with the same seed; call `set_epoch(e)` to draw new clips each epoch.
"""
from __future__ import annotations

import dataclasses

import logging
import warnings
import zipfile
from typing import Dict, List

import numpy as np
import torch

from gan.config import DataConfig
from gan.config_auto import resolved_channels
from gan.data.builtin import BouncingShapes, MovingDigits, MovingDots
from gan.data.prepared import PreparedDataset, cached_prepare, explain, is_prepared, open_prepared
from gan.data.readers import DataError
from gan.video_io import VideoReadError

logger = logging.getLogger(__name__)

BUILTIN_SOURCES = {"digits": MovingDigits, "shapes": BouncingShapes, "dots": MovingDots}
MAX_CONSECUTIVE_FAILURES = 10         # a broken disk or dataset should stop training, not loop forever
_READ_ERRORS = (VideoReadError, OSError, ValueError, zipfile.BadZipFile, EOFError)
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # RGB -> grey for channels=1


def min_clip_frames(cfg: DataConfig) -> int:
    """Shortest video that still holds one clip at the smallest stride."""
    return (cfg.clip_frames - 1) * min(cfg.strides) + 1


class ClipDataset(torch.utils.data.Dataset):
    """Clips `[T, C, H, W]` in [-1, 1] from a built-in or disk source (see gan.data.readers for the interface).

    Item: `dict(video=float32 [T, C, H, W], times=float32 [T] (k * stride, frames from the clip start),
    label=int64 0-dim (0 when unlabelled), index=int (the video actually read; differs from the requested
    index only after a failed read fell back to the next video))`, plus `caption=str` when `cfg.captions`
    (the source's `caption(index, start)`: its motion words describe the clip, not the video's frame 0).
    """

    def __init__(self,
                 source,                    # MovingDigits / BouncingShapes / VideoFolder / FrameFolders / Zip...
                 cfg: DataConfig,           # clip_frames, strides, channels, resolution, labels
                 seed: int = 0):            # clip sampling seed
        if cfg.channels == 0:                                 # auto: a prepared source knows whether it is grey
            cfg = dataclasses.replace(cfg, channels=getattr(source, "channels", None) or resolved_channels(cfg))
        if cfg.channels not in (1, 3):
            raise DataError(f"data.channels must be 1, 3 or 0 (auto), got {cfg.channels}")
        if cfg.labels and source.num_classes == 0:
            raise DataError(f"data.labels is true but {getattr(source, 'root', cfg.source)} has no classes: "
                            f"expected one subfolder per class (root/<class>/<video>), or set data.labels: false")
        # Conditional hook (text-to-video): built-ins know each clip's caption; disk data reads them from files.
        if cfg.captions and not getattr(source, "has_captions", hasattr(source, "caption")):
            where = getattr(source, "source_path", getattr(source, "root", cfg.source))
            raise DataError(f"data.captions is true but {where} has no caption for every video; put a metadata.jsonl "
                            f"beside the videos (one {{\"file\": ..., \"caption\": ...}} per line) or a .txt "
                            f"beside each video")
        self.source = source
        self.cfg = cfg
        self.seed = int(seed)
        self.epoch = 0
        self.clip_frames = cfg.clip_frames
        self.strides = sorted(set(int(s) for s in cfg.strides))
        self.skipped = {"unreadable": list(source.skipped["unreadable"]),
                        "too_short": list(source.skipped["too_short"]),
                        "failed_reads": []}                   # filled at train time (per worker process)
        self._bad = set()                                     # indices that failed to read in this process
        # Built-ins render at the target size directly; disk videos are resized and centre-cropped.
        direct = (MovingDigits, BouncingShapes, MovingDots, PreparedDataset)
        self._read_size = None if isinstance(source, direct) else cfg.resolution

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def num_classes(self) -> int:
        return self.source.num_classes if self.cfg.labels else 0

    @property
    def class_names(self) -> List[str]:
        return list(self.source.class_names) if self.cfg.labels else []

    @property
    def resolution(self) -> int:
        return self.cfg.resolution

    @property
    def channels(self) -> int:
        return self.cfg.channels

    def clip_position(self, index: int):
        """(start, stride) of the clip drawn for `index` this epoch; the stride shrinks to fit short videos."""
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        stride = int(rng.choice(self.strides))
        n = self.source.num_frames(index)
        span = self.clip_frames - 1
        stride = max(1, min(stride, (n - 1) // span))
        start = int(rng.integers(0, n - span * stride))
        return start, stride

    def _load(self, index: int) -> dict:
        start, stride = self.clip_position(index)
        return self._item(index, start, self.clip_frames, stride)

    def _item(self, index: int, start: int, count: int, stride: int) -> dict:
        frames = self.source.read(index, start, count, stride, self._read_size)  # [T, H, W, 3 or 1]
        if frames.shape[:3] != (count, self.resolution, self.resolution) or frames.shape[3] not in (1, 3):
            raise ValueError(f"video {index} gave frames of shape {frames.shape}, expected "
                             f"{(count, self.resolution, self.resolution, 3)}")
        video = frames.astype(np.float32)
        if self.channels == 1 and video.shape[-1] == 3:
            video = video @ _LUMA[:, None]                    # [T, H, W, 1]
        elif self.channels == 3 and video.shape[-1] == 1:     # grey data, colour model (data.channels: 3)
            video = np.repeat(video, 3, axis=-1)
        video = torch.from_numpy(video).permute(0, 3, 1, 2) / 127.5 - 1.0  # [T, C, H, W]
        label = self.source.label(index) if self.cfg.labels else 0
        item = {
            "video": video.contiguous(),
            "times": torch.arange(count, dtype=torch.float32) * stride,  # [T]
            "label": torch.tensor(label, dtype=torch.int64),
            "index": int(index),
        }
        if self.cfg.captions:                                 # conditional hook: str (collates to a list)
            item["caption"] = self.source.caption(index, start)   # motion words as of the clip's first frame
        return item

    def preview(self, index: int, frames: int) -> dict:
        """Video `index` from its first frame at stride 1, `frames` long (less for a shorter video), as an item
        (no clip sampling): the real clips shown beside the samples."""
        count = max(1, min(int(frames), self.source.num_frames(index)))
        return self._item(index, 0, count, 1)

    def __getitem__(self, index: int) -> dict:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"clip index {index} out of range for a dataset of {n} videos")
        index %= n
        errors = []
        for attempt in range(MAX_CONSECUTIVE_FAILURES):
            j = (index + attempt) % n                         # deterministic fallback: the next video
            if j in self._bad:
                errors.append(f"{self._name(j)}: failed before")
                continue
            try:
                return self._load(j)
            except _READ_ERRORS as e:
                self._bad.add(j)
                self.skipped["failed_reads"].append(self._name(j))
                errors.append(f"{self._name(j)}: {e}")
                warnings.warn(f"could not read video {self._name(j)} ({e}); using the next video instead")
        raise DataError(f"{MAX_CONSECUTIVE_FAILURES} consecutive videos failed to read, starting at index "
                        f"{index} of {self._where()}; last error: {errors[-1]}. Check the files (they may have "
                        f"changed since the dataset was listed) or run `reelgan-dataset info {self._where()}`")

    def _name(self, index: int) -> str:
        if hasattr(self.source, "name"):
            return f"{getattr(self.source, 'source_path', self.source.root)}/{self.source.name(index)}"
        return f"{self.cfg.source}[{index}]"

    def _where(self) -> str:
        return getattr(self.source, "root", self.cfg.source)

    def summary(self) -> str:
        return self.source.summary()


def build_dataset(cfg: DataConfig, seed: int = 0, split: str = "train", progress: bool = False,
                  say=logger.info) -> ClipDataset:
    """Clip dataset for `cfg.source`: 'digits', 'shapes', 'dots', or a path (video folder, frame folders, .zip).

    `seed` drives both the clip sampling and, for built-ins, the video content; `split` ('train'/'test')
    only applies to built-ins (disk datasets are used as they are). Disk data is read through its prepared form
    (gan.data.prepared): decoded once, then memory-mapped.
    """
    min_frames = min_clip_frames(cfg)
    if cfg.source in BUILTIN_SOURCES:
        if cfg.video_frames < min_frames:
            raise DataError(f"built-in '{cfg.source}' videos have data.video_frames={cfg.video_frames} frames, "
                            f"fewer than one clip needs ({min_frames} = (clip_frames - 1) * min(strides) + 1); "
                            f"raise data.video_frames or lower data.clip_frames")
        source = BUILTIN_SOURCES[cfg.source](resolution=cfg.resolution, num_videos=cfg.num_videos,
                                             video_frames=cfg.video_frames, num_objects=cfg.num_objects,
                                             seed=seed, split=split)
        logger.info(source.summary())
    else:
        source = open_disk_source(cfg.source, cfg.resolution, min_frames, cfg.cache, progress=progress, say=say)
        say(source.summary())
    return ClipDataset(source, cfg, seed=seed)


def open_disk_source(path: str, resolution: int, min_frames: int = 1, cache: str = "", progress: bool = True,
                     say=logger.info) -> PreparedDataset:
    """A prepared dataset for `path`: the folder itself when it is one (it must match `resolution`), else the
    cached preparation of the videos, frame folders or .zip at `path` (made on first use)."""
    if is_prepared(path):
        source = open_prepared(path, min_frames)
        if source.resolution != resolution:
            raise DataError(f"{path} was prepared at {source.resolution} px but data.resolution is {resolution}; set "
                            f"--set data.resolution={source.resolution} or prepare the source again with "
                            f"`reelgan-dataset prepare {source.source_path} NEW_FOLDER --resolution {resolution}`")
        return source
    return cached_prepare(path, resolution, cache or None, min_frames, progress=progress, say=say)


def infer_settings(cfg, dataset: ClipDataset) -> List[str]:
    """Fill the config fields left to the data (data.channels 0, G.objects -1, G.camera 'auto' with the scene G's
    sizes, G.backgrounds -1) in place; returns what was inferred as 'key=value (why)' lines, for the run's log. The
    config saved with the run then holds concrete values."""
    from gan.config import validate_camera, validate_objects
    from gan.config_auto import resolved_backgrounds, resolved_motion_weight, resolved_objects
    source = dataset.source
    hint: Dict[str, object] = {}
    if cfg.data.channels == 0:
        cfg.data.channels = hint["data.channels"] = dataset.channels
    camera_auto = cfg.G.camera == "auto"
    if cfg.G.objects == -1 or camera_auto:
        reads = isinstance(source, PreparedDataset) and cfg.cond.mode in ("none", "text")
        found = source.suggestions() if reads else {}
        if camera_auto:                                    # a set G.objects keeps the G it names
            cfg.G.camera = str(found.get("G.camera", "none")) if cfg.G.objects == -1 else "none"
            if cfg.G.camera != "none":
                hint["G.camera"] = cfg.G.camera
                for key in ("G.objects", "G.object_size", "G.object_speed", "G.object_jitter", "G.backgrounds",
                            "G.camera_speed"):
                    if key in found and (key != "G.backgrounds" or cfg.G.backgrounds == -1):
                        setattr(cfg.G, key[2:], found[key])
                        hint[key] = found[key]
        if cfg.G.objects == -1:
            if reads:                                      # camera footage with G.camera=none: no sprites for
                footage = "G.camera" in found and cfg.G.camera == "none"      # the layered G (the synthesis G)
                cfg.G.objects = hint["G.objects"] = 0 if footage else int(found["G.objects"])
                if cfg.G.objects > 0:
                    cfg.G.object_size = hint["G.object_size"] = float(found["G.object_size"])
            else:
                cfg.G.objects = resolved_objects(cfg)
    said = [f"{k} ({why})" for k, why in explain(hint).items()]
    if cfg.G.backgrounds == -1:
        cfg.G.backgrounds = resolved_backgrounds(cfg)
    if cfg.loss.motion_weight == -1:
        cfg.loss.motion_weight = resolved_motion_weight(cfg)
        if cfg.loss.motion_weight > 0:
            said.append(f"loss.motion_weight={cfg.loss.motion_weight:g} (the scene G pays for clips that move less "
                        f"or more than real ones: losses/motion.py)")
    validate_objects(cfg)                                     # the inferred G meets the same checks as a set one
    validate_camera(cfg)
    return said
