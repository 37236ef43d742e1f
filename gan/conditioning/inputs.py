"""Reading the conditions a user gives: a still image or a video, resized and centre-cropped to the
model's size, as float tensors in [-1, 1]. Every failure names the path and what went wrong."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from gan.errors import ReelganError


class ConditionError(ReelganError, ValueError):
    """A condition (image, video, prompt) that cannot be used: missing or unreadable file, wrong mode."""


def frames_to_tensor(frames: np.ndarray, channels: int = 3) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> float [T, C, H, W] in [-1, 1] (C = 1: luma)."""
    x = torch.from_numpy(np.array(frames, dtype=np.float32, copy=True)).permute(0, 3, 1, 2) / 127.5 - 1.0
    if channels == 1:
        x = (x * torch.tensor([0.299, 0.587, 0.114])[None, :, None, None]).sum(1, keepdim=True)
    return x


def load_image(path, resolution: int, channels: int = 3) -> torch.Tensor:
    """A still (PNG, JPEG, ... or the first frame of a GIF) -> [C, R, R] in [-1, 1]."""
    from PIL import Image, UnidentifiedImageError

    from gan.video_io import resize_square
    p = Path(path)
    if p.is_dir():
        raise ConditionError(f"cannot read image {str(path)!r}: it is a folder; give one image file (e.g. "
                             f"{p / 'frame_000000.png'})")
    if not p.is_file():
        raise ConditionError(f"cannot read image {str(path)!r}: file not found")
    try:
        with Image.open(p) as im:
            rgb = np.asarray(im.convert("RGB"))
    except Image.DecompressionBombError as e:
        raise ConditionError(f"cannot read image {str(path)!r}: too large to decode safely ({e}); resize it "
                             f"first") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ConditionError(f"cannot read image {str(path)!r}: not an image file Pillow can decode ({e})") from None
    return frames_to_tensor(resize_square(rgb[None], resolution), channels)[0]


def load_video(path, resolution: int, channels: int = 3, max_frames: Optional[int] = None) -> torch.Tensor:
    """A video file -> [T, C, R, R] in [-1, 1] (every stored frame, or the first `max_frames`)."""
    from gan.video_io import VideoReadError, read_video
    if os.path.isdir(str(path)):
        raise ConditionError(f"cannot read video {str(path)!r}: it is a folder; give one video file")
    if not os.path.isfile(str(path)):
        raise ConditionError(f"cannot read video {str(path)!r}: file not found")
    try:
        frames = read_video(path, max_frames=max_frames, size=resolution)
    except VideoReadError as e:
        raise ConditionError(f"cannot read video {str(path)!r}: {e.reason}") from None
    return frames_to_tensor(frames, channels)


def last_frames(video: torch.Tensor, count: int, stride: int = 1) -> torch.Tensor:
    """The last `count` frames `stride` apart of [T, C, H, W] -> [count, C, H, W]."""
    need = (count - 1) * stride + 1
    if video.shape[0] < need:
        raise ConditionError(f"the video has {video.shape[0]} frames; continuing it needs {need} "
                             f"({count} context frames, stride {stride})")
    idx = torch.arange(video.shape[0] - need, video.shape[0], stride)
    return video[idx]
