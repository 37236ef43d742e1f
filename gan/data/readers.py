"""Video sources on disk: a folder of video files, a folder of frame folders (StyleGAN-V layout), or a .zip of
frame folders.

Every source lists and checks its videos once at construction and then exposes the same small interface
(shared with the built-in datasets): `len(src)`, `num_frames(i)`, `read(i, start, count, stride, size)` ->
uint8 `[T, H, W, 3]`, `label(i)`, `class_names`, `num_classes`, `name(i)`, `skipped`, `summary()`.

Labels: when every video sits below a first-level subfolder (root/<class>/video.mp4 or
root/<class>/<video>/<frames>), the sorted subfolder names are the classes; otherwise there are none.
Unusable videos (unreadable, or shorter than `min_frames`) are skipped with a warning and listed in
`skipped = {'unreadable': [...], 'too_short': [...]}`.
"""
from __future__ import annotations

import io
import logging
import os
import re
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from gan.errors import ReelganError
from gan.video_io import VideoReadError, probe_video, read_video, resize_square

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".gif", ".mov", ".mkv")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_EXPECTED = (f"expected video files ({', '.join(VIDEO_EXTENSIONS)}) or one folder of frames "
             f"({', '.join(IMAGE_EXTENSIONS)}) per video, optionally inside one folder per class")


class DataError(ReelganError, ValueError):
    """A dataset that cannot be used: missing path, no usable videos, or an unreadable clip at train time."""


def natural_key(name: str) -> Tuple:
    """Sort key that orders 'frame_2' before 'frame_10'."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


def _has_ext(name: str, extensions: Sequence[str]) -> bool:
    return name.lower().endswith(tuple(extensions))


def _is_hidden(name: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in PurePosixPath(name).parts)


@dataclass
class _Video:
    key: object           # what read() needs: a file path, or the list of frame names
    name: str             # path relative to the dataset root (for messages and metadata)
    label: int            # class id (0 when unlabelled)
    frames: int           # number of frames


class _Source:
    """Shared bookkeeping of disk sources: listing, labels, skipping, the summary line."""

    def __init__(self,
                 root: str,           # dataset path, as given
                 min_frames: int):    # shortest usable video: (clip_frames - 1) * min(strides) + 1
        self.root = str(root)
        self.min_frames = max(1, int(min_frames))
        self.videos: List[_Video] = []
        self.class_names: List[str] = []
        self.skipped: Dict[str, List[str]] = {"unreadable": [], "too_short": []}
        self.truncated: List[str] = []   # used, but with fewer frames than the file declares

    # ----- construction helpers

    def _build(self, candidates: List[Tuple[str, object]], count: Callable[[object], int],
               folders: Sequence[str] = ()) -> None:
        """Check candidates `(relative name, key)` with `count(key) -> frames` (raises when unreadable).

        `folders`: first-level folder names, so that an empty class folder still gets its class id.
        """
        if not candidates:
            raise DataError(f"no videos found in {self.root}: {_EXPECTED}")
        labels = self._assign_labels([name for name, _ in candidates], folders)
        workers = min(8, os.cpu_count() or 1, len(candidates))
        with ThreadPoolExecutor(max_workers=workers) as pool:  # ffmpeg probes run in subprocesses
            counts = list(pool.map(lambda c: _try(count, c[1]), candidates))
        for (name, key), label, (frames, error) in zip(candidates, labels, counts):
            where = os.path.join(self.root, name)
            if error is not None:
                warnings.warn(f"skipping unreadable video {where}: {error}", stacklevel=3)
                self.skipped["unreadable"].append(where)
            elif frames < self.min_frames:
                warnings.warn(f"skipping video {where}: {frames} frames, shorter than one clip "
                              f"({self.min_frames} frames)", stacklevel=3)
                self.skipped["too_short"].append(where)
            else:
                self.videos.append(_Video(key, name, label, frames))
        logger.info(self.summary())
        if not self.videos:
            first = next(((os.path.join(self.root, n), e) for (n, _), (_, e) in zip(candidates, counts) if e), None)
            why = f"; first unreadable: {first[0]}: {first[1]}" if first else ""
            raise DataError(f"no usable videos in {self.root}: all {len(candidates)} were skipped "
                            f"({len(self.skipped['unreadable'])} unreadable, {len(self.skipped['too_short'])} "
                            f"shorter than {self.min_frames} frames){why}")

    def _assign_labels(self, names: List[str], folders: Sequence[str]) -> List[int]:
        self.class_names, labels = _assign_class_labels(names, folders)
        return labels

    # ----- the source interface

    def __len__(self) -> int:
        return len(self.videos)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def num_frames(self, i: int) -> int:
        return self.videos[i].frames

    def label(self, i: int) -> int:
        return self.videos[i].label

    def name(self, i: int) -> str:
        return self.videos[i].name

    def read(self, i: int, start: int, count: int, stride: int = 1, size: Optional[int] = None) -> np.ndarray:
        """Frames `start, start+stride, ...` (`count` of them) of video i -> uint8 `[count, H, W, 3]`."""
        raise NotImplementedError

    def summary(self) -> str:
        return (f"dataset {self.root}: {len(self.videos)} videos, skipped {len(self.skipped['unreadable'])} "
                f"unreadable, {len(self.skipped['too_short'])} too short")

    def _check_range(self, i: int, start: int, count: int, stride: int) -> None:
        last = start + (count - 1) * stride
        if start < 0 or stride < 1 or count < 1 or last >= self.videos[i].frames:
            raise ValueError(f"frames {start}..{last} (stride {stride}) are outside video "
                             f"{self.name(i)} with {self.videos[i].frames} frames")


def _assign_class_labels(names: List[str], folders: Sequence[str]) -> Tuple[List[str], List[int]]:
    """(class names, label per video): classes from first-level folders, only when every video sits below one."""
    parts = [PurePosixPath(n).parts for n in names]
    if not all(len(p) >= 2 for p in parts):
        return [], [0] * len(names)
    class_names = sorted({p[0] for p in parts} | set(folders), key=natural_key)
    ids = {c: i for i, c in enumerate(class_names)}
    return class_names, [ids[p[0]] for p in parts]


def _try(fn, arg):
    """(result, None) or (None, reason): lets worker threads report failures without raising."""
    try:
        return fn(arg), None
    except (VideoReadError, OSError, ValueError, zipfile.BadZipFile, EOFError, Image.DecompressionBombError) as e:
        return None, getattr(e, "reason", None) or str(e) or type(e).__name__


def _frames_from_images(images: List[np.ndarray], size: Optional[int]) -> np.ndarray:
    """Stack `[H, W, 3]` frames (resized one by one, so mixed sizes are fine when `size` is given)."""
    if size is not None:
        images = [resize_square(im, size)[0] for im in images]
    return np.stack(images)


def _decode_image(fileobj) -> np.ndarray:
    try:
        with Image.open(fileobj) as im:
            return np.asarray(im.convert("RGB"))
    except Image.DecompressionBombError as e:                # Pillow's guard against huge images
        raise DataError(f"frame {fileobj if isinstance(fileobj, str) else '(in a zip)'} is too large to decode "
                        f"safely ({e}); resize the frames first") from None


# ----------------------------------------------------------------------------------------------------------


class VideoFolder(_Source):
    """Video files (.mp4 .webm .avi .gif .mov .mkv, any case) found recursively below `root`."""

    def __init__(self,
                 root: str,                 # folder of videos, optionally root/<class>/<video>
                 min_frames: int = 1):      # videos with fewer frames are skipped
        super().__init__(root, min_frames)
        if not os.path.isdir(root):
            raise DataError(f"video folder {root} does not exist or is not a folder: {_EXPECTED}")
        files = find_video_files(root)
        self._build([(os.path.relpath(f, root).replace(os.sep, "/"), f) for f in files], self._count,
                    _subfolders(root))

    def _count(self, path: str) -> int:
        info = probe_video(path)
        declared = info.get("declared_frames")
        if declared and info["frames"] < 0.9 * declared - 1:      # truncated: use what decodes, and say so
            warnings.warn(f"video {path} is truncated: {info['frames']} of the {declared} frames its header "
                          f"declares decode; training uses those {info['frames']}", stacklevel=2)
            self.truncated.append(f"{path} ({info['frames']} of {declared} frames)")
        return info["frames"]

    def read(self, i, start, count, stride=1, size=None):
        self._check_range(i, start, count, stride)
        path = self.videos[i].key
        frames = read_video(path, max_frames=count, size=size, start=start, stride=stride)
        if len(frames) < count:
            raise VideoReadError(path, f"decoded {len(frames)} of {count} frames from frame {start} "
                                       f"(stride {stride}); the file may be truncated")
        return frames


def _regular(path: str) -> bool:
    """A regular file (through links); a FIFO, socket or device named like a video would block a reader: warned
    about and skipped."""
    if os.path.isfile(path):
        return True
    if os.path.exists(path):
        warnings.warn(f"skipped {path}: not a regular file (a pipe, socket or device)")
    return False


def find_video_files(root: str) -> List[str]:
    """All video files below `root` (hidden files and folders, and anything not a regular file, ignored), in
    natural order."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not _is_hidden(d)]
        found += [os.path.join(folder, f) for f in files if _has_ext(f, VIDEO_EXTENSIONS) and not _is_hidden(f)
                  and _regular(os.path.join(folder, f))]
    return sorted(found, key=lambda p: natural_key(os.path.relpath(p, root)))


def _subfolders(root: str) -> List[str]:
    return [e.name for e in os.scandir(root) if e.is_dir() and not _is_hidden(e.name)]


def _frame_dirs(names: List[str]) -> Dict[str, List[str]]:
    """Group image paths (posix, relative) by their folder -> {folder: frames in natural order}."""
    groups: Dict[str, List[str]] = {}
    for n in names:
        if _has_ext(n, IMAGE_EXTENSIONS) and not _is_hidden(n):
            groups.setdefault(str(PurePosixPath(n).parent), []).append(n)
    return {d: sorted(f, key=natural_key) for d, f in sorted(groups.items(), key=lambda kv: natural_key(kv[0]))
            if d != "."}                                      # loose images in the root are not a video


class FrameFolders(_Source):
    """StyleGAN-V layout: root/<video>/<frame>.png|jpg, or root/<class>/<video>/<frame>; natural frame order."""

    def __init__(self,
                 root: str,                 # folder of frame folders
                 min_frames: int = 1):      # videos with fewer frames are skipped
        super().__init__(root, min_frames)
        if not os.path.isdir(root):
            raise DataError(f"frame folder tree {root} does not exist or is not a folder: {_EXPECTED}")
        groups = _frame_dirs(relative_files(root))
        self._build(list(groups.items()), self._count, _subfolders(root))

    def _count(self, frames: List[str]) -> int:
        with Image.open(os.path.join(self.root, frames[0])):  # header only: proves the folder is images
            pass
        return len(frames)

    def read(self, i, start, count, stride=1, size=None):
        self._check_range(i, start, count, stride)
        names = self.videos[i].key[start:start + (count - 1) * stride + 1:stride]
        return _frames_from_images([_decode_image(os.path.join(self.root, n)) for n in names], size)


class ZipFrameFolders(_Source):
    """A .zip of the FrameFolders layout. One wrapping top-level folder (zip of `mydata/`) is looked through.

    The archive is opened lazily once per process, so the source can be pickled into DataLoader workers.
    """

    def __init__(self,
                 path: str,                 # the .zip file
                 min_frames: int = 1):      # videos with fewer frames are skipped
        super().__init__(path, min_frames)
        if not os.path.isfile(path):
            raise DataError(f"zip dataset {path} does not exist: expected a .zip of frame folders")
        self._zip: Optional[zipfile.ZipFile] = None
        self._zip_pid: Optional[int] = None
        try:
            names = self._archive().namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"cannot open zip dataset {path}: {e}; "
                            f"expected a valid .zip of frame folders") from None
        videos, folders = zip_videos(names)
        self._build(videos, self._count, folders)

    def _archive(self) -> zipfile.ZipFile:
        if self._zip is None or self._zip_pid != os.getpid():  # a forked worker needs its own handle
            self._zip = zipfile.ZipFile(self.root)
            self._zip_pid = os.getpid()
        return self._zip

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_zip"] = None
        state["_zip_pid"] = None
        return state

    def _count(self, frames: List[str]) -> int:
        with self._archive().open(frames[0]) as f:
            with Image.open(f):
                pass
        return len(frames)

    def read(self, i, start, count, stride=1, size=None):
        self._check_range(i, start, count, stride)
        archive = self._archive()
        names = self.videos[i].key[start:start + (count - 1) * stride + 1:stride]
        return _frames_from_images([_decode_image(io.BytesIO(archive.read(n))) for n in names], size)


def relative_files(root: str) -> List[str]:
    """Every file below `root` as a posix path relative to it (hidden folders skipped)."""
    names = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not _is_hidden(d)]
        rel = os.path.relpath(folder, root).replace(os.sep, "/")
        names += [f"{rel}/{f}" if rel != "." else f for f in files if _regular(os.path.join(folder, f))]
    return names


def zip_videos(names: List[str]) -> Tuple[List[Tuple[str, List[str]]], List[str]]:
    """A zip's member names -> ([(video folder, its frame names)], first-level folders): one wrapping top-level
    folder is looked through; empty class folders are listed so that they keep their class ids."""
    groups = _frame_dirs([n for n in names if not n.endswith("/")])
    prefix = _wrapper_prefix(list(groups))
    folders = {n[len(prefix):].split("/")[0] for n in names if n.startswith(prefix) and n.endswith("/")}
    return ([(d[len(prefix):], frames) for d, frames in groups.items()],
            [f for f in folders if f and not _is_hidden(f)])


def _wrapper_prefix(dirs: List[str]) -> str:
    """'mydata/' when every video folder sits below one common top-level folder that holds nothing else."""
    prefix = ""
    parts = [PurePosixPath(d).parts for d in dirs]
    while parts and all(len(p) >= 2 for p in parts) and len({p[0] for p in parts}) == 1:
        prefix += parts[0][0] + "/"
        parts = [p[1:] for p in parts]
    return prefix


# ----------------------------------------------------------------------------------------------------------


def open_source(path: str, min_frames: int = 1) -> _Source:
    """The right disk source for `path`: a .zip, a folder of videos, or a folder of frame folders."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"dataset path {path} does not exist: {_EXPECTED}, or a .zip of frame folders")
    if p.is_file():
        if p.suffix.lower() == ".zip":
            return ZipFrameFolders(str(p), min_frames)
        raise DataError(f"dataset path {path} is a file, not a dataset: expected a folder ({_EXPECTED}) "
                        f"or a .zip of frame folders")
    if find_video_files(str(p)):
        return VideoFolder(str(p), min_frames)
    return FrameFolders(str(p), min_frames)
