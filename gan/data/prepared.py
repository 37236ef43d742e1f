"""Prepared datasets: every video decoded once, resized to the training resolution and stored as uint8 frames
in a few large memory-mapped shards, with an index (videos, frame counts, labels, captions, fps, layout).

Training then reads clips as slices of memory maps: no decoder, no subprocess, nothing loaded whole (a dataset
larger than RAM works; the page cache keeps what is hot). Layout of a prepared folder:

    index.json          format version, source signature, resolution, channels, videos, skipped files, stats
    shard_000.u8 ...    raw uint8 frames [N, H, W, C] back to back (C = 1 when every video is grey)

`prepare()` writes one; `open_prepared()` reads one; `cached_prepare()` keeps one per (source, resolution)
under a cache folder and reuses it while the source's file list, sizes and mtimes are unchanged.
"""
from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from gan.data.footage_kind import camera_stats, explain_kind, suggest
from gan.data.readers import (IMAGE_EXTENSIONS, DataError, _assign_class_labels, _decode_image, _frame_dirs,
                              _Source, _subfolders, find_video_files, relative_files, zip_videos)
from gan.video_io import resize_square

logger = logging.getLogger(__name__)

FORMAT = "reelgan-prepared"
VERSION = 2                            # 2: per-video camera statistics (footage_kind.camera_stats)
INDEX = "index.json"
MAX_CLASSES = 100_000                  # gan.limits.MAX_CLASSES (data imports nothing but errors and video_io)
SHARD_NAME = re.compile(r"shard_\d{3}\.(u8|grey)")         # the files a prepared dataset holds besides INDEX
SHARD_BYTES = 1 << 30                  # a new shard after ~1 GiB, so no single file is unwieldy
GREY_TOLERANCE = 6                     # a frame is grey when its channels differ by at most this (uint8) ...
GREY_OUTLIERS = 1e-3                   # ... for all but this fraction of its pixels (codec ringing, dither)
CAPTION_FILES = ("metadata.jsonl", "metadata.csv")
OBJECT_MARGIN = 1.1                    # sprite box / measured object extent (the built-in digits: 0.5 / 0.46)
DATASET_FILE = "reelgan_dataset.json"  # written by `reelgan-dataset export`: caption word groups, fps


@dataclass
class PreparedVideo:
    name: str                          # path relative to the source root
    shard: int
    offset: int                        # first frame in the shard
    frames: int
    label: int = 0
    caption: Optional[str] = None
    fps: Optional[float] = None
    width: int = 0                     # source frame size
    height: int = 0
    grey: bool = False
    objects: int = 0                   # separate objects over a flat background (median over sampled frames; 0: no
    #                                    flat background)
    extent: float = 0.0                # median object box side / frame side in the sampled frames
    camera: Dict = field(default_factory=dict)  # camera footage (no flat background): footage_kind.camera_stats


# ----------------------------------------------------------------------------------------------------------
# The source: what to decode, and the signature that keys the cache


@dataclass
class _Listing:
    kind: str                          # 'videos', 'frames' or 'zip'
    root: str
    items: List[Tuple[str, object]]    # (relative name, key) with key = file path or list of frame names
    class_names: List[str]
    labels: List[int]
    signature: List                    # [(relative path, size, mtime_ns)] of everything the data depends on
    captions: Dict[str, str] = field(default_factory=dict)
    caption_labels: Dict[str, int] = field(default_factory=dict)
    word_groups: Optional[dict] = None
    fps: Optional[float] = None


def _stat_row(root: str, rel: str) -> List:
    st = os.stat(os.path.join(root, rel))
    return [rel, st.st_size, st.st_mtime_ns]


def list_source(path: str) -> _Listing:
    """What `path` holds (a folder of videos, a folder of frame folders, or a .zip of frame folders), without
    decoding anything: cheap enough to run at every start to check a cache."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"dataset path {path} does not exist: expected a folder of videos, a folder of frame "
                        f"folders or a .zip of frame folders")
    root = str(p)
    if p.is_file():
        if p.suffix.lower() != ".zip":
            raise DataError(f"dataset path {path} is a file, not a dataset: expected a folder of videos, a "
                            f"folder of frame folders, or a .zip of frame folders")
        import zipfile
        try:
            with zipfile.ZipFile(root) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"cannot open zip dataset {path}: {e}; expected a valid .zip of frame folders") from None
        items, folders = zip_videos(names)
        listing = _Listing("zip", root, items, [], [], [[p.name, p.stat().st_size, p.stat().st_mtime_ns]])
    else:
        files = find_video_files(root)
        if files:
            items = [(os.path.relpath(f, root).replace(os.sep, "/"), f) for f in files]
            listing = _Listing("videos", root, items, [], [], [_stat_row(root, n) for n, _ in items])
        else:
            groups = _frame_dirs(relative_files(root))
            items = list(groups.items())
            listing = _Listing("frames", root, items, [], [],
                               [_stat_row(root, n) for frames in groups.values() for n in frames])
        folders = _subfolders(root)
    if not listing.items:
        raise DataError(f"no videos found in {path}: expected video files (.mp4 .webm .avi .gif .mov .mkv) or one "
                        f"folder of frames ({', '.join(IMAGE_EXTENSIONS)}) per video, optionally inside one folder "
                        f"per class")
    listing.class_names, listing.labels = _assign_class_labels([n for n, _ in listing.items], folders)
    if listing.kind != "zip":
        _read_captions(listing)
    return listing


def _read_captions(listing: _Listing) -> None:
    """Captions (and optional labels) from metadata.jsonl / metadata.csv beside the videos (`file`, `caption`,
    `label`; the format `reelgan-dataset export` writes), or from a `<video>.txt` beside each video."""
    root = listing.root
    for name in CAPTION_FILES:
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            continue
        listing.signature.append(_stat_row(root, name))
        try:
            with open(path, newline="") as f:
                rows = ([json.loads(line) for line in f if line.strip()] if name.endswith(".jsonl")
                        else list(csv.DictReader(f)))
        except (json.JSONDecodeError, csv.Error, UnicodeDecodeError) as e:
            raise DataError(f"cannot read captions from {path}: {e}; expected one JSON object per line "
                            f"with 'file' and 'caption' (CSV: a header row with file,caption)") from None
        for k, row in enumerate(rows):
            if not isinstance(row, dict) or "file" not in row:
                raise DataError(f"{path} row {k + 1} has no 'file' field; each row needs 'file' and 'caption'")
            key = str(row["file"]).strip("/")
            if row.get("caption") is not None:
                listing.captions[key] = str(row["caption"])
            if row.get("label") not in (None, ""):
                try:
                    label = row["label"]
                    if isinstance(label, float) and not label.is_integer():
                        raise ValueError
                    label = int(label)
                except (ValueError, TypeError, OverflowError):
                    raise DataError(f"{path} row {k + 1}: label {row['label']!r} is not an integer") from None
                if not 0 <= label < MAX_CLASSES:                # c_dim = largest label + 1 is allocated
                    raise DataError(f"{path} row {k + 1}: label {label} is out of range: labels are class ids "
                                    f"0..{MAX_CLASSES - 1}, numbered from 0")
                listing.caption_labels[key] = label
        break
    for name, key in listing.items:
        if name in listing.captions:
            continue
        stem = os.path.splitext(name)[0] if listing.kind == "videos" else name
        txt = os.path.join(root, stem + ".txt")
        if os.path.isfile(txt):
            listing.signature.append(_stat_row(root, stem + ".txt"))
            with open(txt, encoding="utf-8", errors="replace") as f:
                listing.captions[name] = " ".join(f.read().split())
    meta = os.path.join(root, DATASET_FILE)
    if os.path.isfile(meta):
        listing.signature.append(_stat_row(root, DATASET_FILE))
        try:
            with open(meta) as f:
                d = json.load(f)
            listing.word_groups = d.get("caption_word_groups")
            listing.fps = d.get("fps")
        except (json.JSONDecodeError, AttributeError):
            warnings.warn(f"ignoring unreadable {meta}")


def cache_key(listing: _Listing, resolution: int) -> str:
    blob = json.dumps([FORMAT, VERSION, listing.kind, int(resolution), sorted(listing.signature)])
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


# ----------------------------------------------------------------------------------------------------------
# Decoding (in worker processes) and the statistics read off the frames


def _decode_video_file(path: str, size: int) -> dict:
    """Every frame of a video file, short side resized to `size` (area filter) and centre-cropped ->
    uint8 [T, size, size, 3], with its frame rate and size. PyAV decodes in-process: no ffmpeg subprocess per
    clip. A stream that ends before the frame count in its header is reported (a truncated file)."""
    import av
    frames = []
    note = None
    with av.open(path) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1          # parallelism is over files
        fps = float(stream.average_rate) if stream.average_rate else None
        width = height = 0
        try:
            for frame in container.decode(stream):
                width, height = frame.width, frame.height
                scale = size / min(width, height)
                nw, nh = max(size, round(width * scale)), max(size, round(height * scale))
                img = frame.to_ndarray(format="rgb24", width=nw, height=nh, interpolation="AREA")
                top, left = (nh - size) // 2, (nw - size) // 2
                frames.append(img[top:top + size, left:left + size])
        except av.error.FFmpegError as e:
            if not frames:
                raise
            note = f"decoding stopped after {len(frames)} frames ({e}); the file may be truncated"
        if note is None and stream.frames and len(frames) < stream.frames:
            note = f"decoded {len(frames)} of the {stream.frames} frames its header lists; the file may be truncated"
    if not frames:
        raise ValueError("contains no decodable video frames")
    return {"video": np.stack(frames), "fps": fps, "width": width, "height": height, "note": note}


def _decode(job) -> dict:
    kind, root, key, size = job
    try:
        if kind == "videos":
            return _decode_video_file(key, size)
        if kind == "frames":
            images = [_decode_image(os.path.join(root, n)) for n in key]
        else:
            import io
            import zipfile
            with zipfile.ZipFile(root) as z:
                images = [_decode_image(io.BytesIO(z.read(n))) for n in key]
        h, w = images[0].shape[:2]
        video = np.stack([resize_square(im, size)[0] for im in images])
        return {"video": video, "fps": None, "width": w, "height": h, "note": None}
    except Exception as e:  # noqa: BLE001 - any decoder failure makes this one file unusable, not the dataset
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        return {"error": msg}


def is_grey(video: np.ndarray) -> bool:
    """uint8 [T, H, W, 3]: R = G = B within GREY_TOLERANCE for all but GREY_OUTLIERS of the pixels."""
    v = video.astype(np.int16)
    spread = np.maximum(np.abs(v[..., 0] - v[..., 1]), np.abs(v[..., 1] - v[..., 2]))
    return float((spread > GREY_TOLERANCE).mean()) <= GREY_OUTLIERS


def layout(video: np.ndarray, samples: int = 4) -> Tuple[int, float]:
    """(objects, extent) of separate objects over a flat background, read off a few frames: the background is
    the frame's median colour; a flat one covers most of the frame; objects are the connected regions that
    differ from it. (0, 0.0) when the background is not flat (general footage)."""
    from scipy import ndimage
    counts, extents = [], []
    res = video.shape[1]
    for t in np.linspace(0, len(video) - 1, min(samples, len(video))).round().astype(int):
        frame = video[t].astype(np.int16)
        bg = np.median(frame.reshape(-1, 3), axis=0)
        diff = np.abs(frame - bg).max(-1)
        if (diff <= 16).mean() < 0.6:
            return 0, 0.0
        mask = ndimage.binary_dilation(diff > 48, iterations=max(1, res // 32))  # join a glyph's strokes
        labels, n = ndimage.label(mask)
        boxes = [s for s in ndimage.find_objects(labels) if s is not None]
        boxes = [b for b in boxes if (b[0].stop - b[0].start) * (b[1].stop - b[1].start) >= 0.004 * res * res]
        counts.append(len(boxes))
        extents += [max(b[0].stop - b[0].start, b[1].stop - b[1].start) / res for b in boxes]
    return int(np.median(counts)), float(np.median(extents)) if extents else 0.0


# ----------------------------------------------------------------------------------------------------------
# Writing


def prepare(src: str, out: str, resolution: int, workers: Optional[int] = None, progress: bool = True,
            listing: Optional[_Listing] = None) -> "PreparedDataset":
    """Decode every video of `src` once into a prepared dataset at `out` (written to a temp folder, then
    renamed: an interrupted prepare leaves nothing half-written under `out`). Returns it opened."""
    if resolution < 8 or resolution & (resolution - 1):
        raise DataError(f"--resolution must be a power of two >= 8, got {resolution}")
    listing = listing or list_source(src)
    out_path = Path(out)
    if out_path.exists() and not (out_path / INDEX).is_file() and any(out_path.iterdir()):
        raise DataError(f"{out} exists and is not a prepared dataset; choose a new output folder")
    if out_path.exists() and (out_path / INDEX).is_file():           # replaced below: only if all of it is ours
        foreign = sorted(n for n in os.listdir(out_path) if n != INDEX and not SHARD_NAME.fullmatch(n))
        if foreign:
            raise DataError(f"{out} is a prepared dataset of another source and also holds {foreign[0]!r}"
                            f"{f' (and {len(foreign) - 1} more)' if len(foreign) > 1 else ''}, which reelgan did "
                            f"not write: move it out or choose a new output folder")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(f"{out_path}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    t0 = time.time()
    try:
        index = _write_shards(listing, tmp, resolution, workers, progress)
        index["seconds"] = round(time.time() - t0, 2)
        with open(tmp / INDEX, "w") as f:
            json.dump(index, f)
        if out_path.exists():                                 # a stale prepared dataset (its index says so)
            shutil.rmtree(out_path)
        os.replace(tmp, out_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return open_prepared(out)


def _write_shards(listing: _Listing, folder: Path, size: int, workers: Optional[int], progress: bool) -> dict:
    from tqdm import tqdm
    workers = workers or min(os.cpu_count() or 1, 8)
    jobs = [(listing.kind, listing.root, key, size) for _, key in listing.items]
    videos: List[PreparedVideo] = []
    skipped: Dict[str, List[str]] = {"unreadable": [], "too_short": [], "truncated": []}
    shard, offset, handle = 0, 0, None
    first_error = None
    frame_bytes = size * size * 3
    pool = ProcessPoolExecutor(workers) if workers > 1 and len(jobs) > 1 else None
    try:
        results = pool.map(_decode, jobs, chunksize=8) if pool else map(_decode, jobs)
        bar = tqdm(results, total=len(jobs), desc=f"prepare {Path(listing.root).name} @ {size}px", unit="video",
                   disable=not progress)
        handle = open(folder / f"shard_{shard:03d}.u8", "wb")
        for (name, _), label, got in zip(listing.items, listing.labels, bar):
            where = os.path.join(listing.root, name)
            if "error" in got:
                warnings.warn(f"skipping unreadable video {where}: {got['error']}")
                skipped["unreadable"].append(where)
                first_error = first_error or f"{where}: {got['error']}"
                continue
            if got["note"]:
                warnings.warn(f"video {where}: {got['note']}")
                skipped["truncated"].append(where)
            video = got["video"]
            if offset and (offset + len(video)) * frame_bytes > SHARD_BYTES:
                handle.close()
                shard, offset = shard + 1, 0
                handle = open(folder / f"shard_{shard:03d}.u8", "wb")
            handle.write(np.ascontiguousarray(video).tobytes())
            objects, extent = layout(video)
            camera = camera_stats(video) if objects == 0 else {}
            videos.append(PreparedVideo(name, shard, offset, len(video),
                                        label=listing.caption_labels.get(name, label) if not listing.class_names
                                        else label,
                                        caption=listing.captions.get(name), fps=got["fps"] or listing.fps,
                                        width=got["width"], height=got["height"],
                                        grey=is_grey(video), objects=objects, extent=extent, camera=camera))
            offset += len(video)
        handle.close()
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
        if handle and not handle.closed:
            handle.close()
    if not videos:
        raise DataError(f"no usable videos in {listing.root}: all {len(jobs)} were unreadable; first: {first_error}")
    channels = 1 if all(v.grey for v in videos) else 3
    if channels == 1:                                          # keep one channel: a third of the bytes to read
        _squeeze_to_grey(folder, shard + 1, size)
    labels_from = "folders" if listing.class_names else ("metadata" if listing.caption_labels else None)
    class_names = listing.class_names or ([str(c) for c in range(max(listing.caption_labels.values()) + 1)]
                                          if listing.caption_labels else [])
    return {"format": FORMAT, "version": VERSION, "source": os.path.abspath(listing.root), "kind": listing.kind,
            "key": cache_key(listing, size), "resolution": size, "channels": channels,
            "class_names": class_names, "labels_from": labels_from, "word_groups": listing.word_groups,
            "shards": shard + 1, "videos": [asdict(v) for v in videos], "skipped": skipped}


def _squeeze_to_grey(folder: Path, shards: int, size: int) -> None:
    for s in range(shards):
        path = folder / f"shard_{s:03d}.u8"
        rgb = np.memmap(path, np.uint8, "r").reshape(-1, size, size, 3)
        grey = folder / f"shard_{s:03d}.grey"
        chunk = 4096
        with open(grey, "wb") as f:
            for k in range(0, len(rgb), chunk):
                f.write(np.ascontiguousarray(rgb[k:k + chunk, ..., 1]).tobytes())
        del rgb
        os.replace(grey, path)


# ----------------------------------------------------------------------------------------------------------
# Reading


class PreparedDataset(_Source):
    """A prepared folder as a source (the interface of gan.data.readers): `read()` slices memory maps, which are
    opened lazily in each process (so the object pickles into DataLoader workers without copying frames)."""

    def __init__(self, root: str, index: dict, min_frames: int = 1):
        super().__init__(root, min_frames)
        self.index = index
        self.resolution = int(index["resolution"])
        self.channels = int(index["channels"])
        self.class_names = list(index["class_names"])
        self.source_path = index["source"]
        all_videos = [PreparedVideo(**v) for v in index["videos"]]
        self.skipped = {"unreadable": list(index["skipped"]["unreadable"]), "too_short": [],
                        "truncated": list(index["skipped"].get("truncated", []))}  # kept, with the frames it has
        for v in all_videos:
            if v.frames < self.min_frames:
                self.skipped["too_short"].append(os.path.join(self.source_path, v.name))
            else:
                self.videos.append(v)
        for where in self.skipped["too_short"]:
            warnings.warn(f"skipping video {where}: shorter than one clip ({self.min_frames} frames)")
        if not self.videos:
            raise DataError(f"no usable videos in {self.source_path}: all {len(all_videos)} are shorter than one clip "
                            f"({self.min_frames} frames); lower data.clip_frames or data.strides")
        self.has_captions = all(v.caption is not None for v in self.videos)
        self._maps: Optional[List[np.memmap]] = None
        self._pid: Optional[int] = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_maps"], state["_pid"] = None, None
        return state

    def _shards(self) -> List[np.memmap]:
        if self._maps is None or self._pid != os.getpid():
            shape = (self.resolution, self.resolution, self.channels)
            self._maps = [np.memmap(os.path.join(self.root, f"shard_{s:03d}.u8"), np.uint8, "r").reshape(-1, *shape)
                          for s in range(int(self.index["shards"]))]
            self._pid = os.getpid()
        return self._maps

    def caption(self, i: int, start: float = 0) -> str:
        """The video's caption from disk (one per video: `start` is accepted for the built-ins' interface)."""
        text = self.videos[i].caption
        if text is None:
            raise DataError(f"video {self.name(i)} of {self.source_path} has no caption; add it to metadata.jsonl")
        return text

    def caption_word_groups(self) -> Dict[str, List[List[str]]]:
        return self.index.get("word_groups") or {"appearance": [], "motion": []}

    def read(self, i: int, start: int, count: int, stride: int = 1, size: Optional[int] = None) -> np.ndarray:
        """Frames `start, start+stride, ...` of video i -> uint8 [count, H, W, C] (C = self.channels), a copy."""
        v = self.videos[i]
        last = start + (count - 1) * stride
        if start < 0 or stride < 1 or count < 1 or last >= v.frames:
            raise ValueError(f"frames {start}..{last} (stride {stride}) are outside video {v.name} "
                             f"with {v.frames} frames")
        if size is not None and size != self.resolution:
            raise DataError(f"{self.root} was prepared at {self.resolution} px, not {size} px")
        shard = self._shards()[v.shard]
        return np.array(shard[v.offset + start:v.offset + last + 1:stride])

    def summary(self) -> str:
        return (f"prepared dataset {self.root} (from {self.source_path}): {len(self.videos)} videos at "
                f"{self.resolution} px, {'grey' if self.channels == 1 else 'colour'}, skipped "
                f"{len(self.skipped['unreadable'])} unreadable, {len(self.skipped['too_short'])} too short"
                + (f"; {len(self.skipped['truncated'])} truncated (kept with the frames they have)"
                   if self.skipped["truncated"] else ""))

    def suggestions(self) -> Dict[str, object]:
        """Settings read off the data: channels; the layered G for separate objects over a flat background; the scene G
        for camera footage, with the camera kind, its moving things and backgrounds (footage_kind.suggest)."""
        out: Dict[str, object] = {"data.channels": self.channels}
        objects = [v.objects for v in self.videos]
        flat = float(np.mean([o > 0 for o in objects]))
        if flat >= 0.9:
            out["G.objects"] = int(np.clip(round(float(np.percentile(objects, 90))), 1, 4))
            ext = float(np.median([v.extent for v in self.videos if v.objects > 0]))
            out["G.object_size"] = round(float(np.clip(OBJECT_MARGIN * ext, 0.15, 0.75)), 2)
        else:
            out.update(suggest([v.camera for v in self.videos if v.camera]) if any(v.camera for v in self.videos)
                       else {"G.objects": 0})
        fps = [v.fps for v in self.videos if v.fps]
        if fps:
            out["data.fps"] = float(np.median(fps))
        return out


def explain(hint: Dict[str, object]) -> Dict[str, str]:
    """'key=value' -> why, for the settings of `PreparedDataset.suggestions()` (printed by info and training)."""
    out = {}
    if "data.channels" in hint:
        out[f"data.channels={hint['data.channels']}"] = "every frame is grey" if hint["data.channels"] == 1 else "colour"
    if "G.camera" in hint:
        out.update(explain_kind(hint))
    elif hint.get("G.objects"):
        out[f"G.objects={hint['G.objects']}, G.object_size={hint['G.object_size']}"] = \
            "separate objects over a flat background: the layered generator"
    elif "G.objects" in hint:
        out["G.objects=0"] = "no flat background: the synthesis generator"
    return out


def is_prepared(path: str) -> bool:
    return os.path.isfile(os.path.join(path, INDEX))


def open_prepared(path: str, min_frames: int = 1) -> PreparedDataset:
    try:
        with open(os.path.join(path, INDEX)) as f:
            index = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read prepared dataset {path}: {e}; prepare it again with "
                        f"`reelgan-dataset prepare SRC {path} --resolution N`") from None
    if index.get("format") != FORMAT or index.get("version") != VERSION:
        raise DataError(f"{path} is not a prepared dataset of this reelgan (format {index.get('format')} version "
                        f"{index.get('version')}); prepare it again with `reelgan-dataset prepare`")
    frame_bytes = index["resolution"] ** 2 * index["channels"]
    for s in range(index["shards"]):                       # a short shard would fault (SIGBUS) when mapped
        need = sum(v["frames"] for v in index["videos"] if v["shard"] == s) * frame_bytes
        shard = os.path.join(path, f"shard_{s:03d}.u8")
        have = os.path.getsize(shard) if os.path.isfile(shard) else -1
        if have != need:
            raise DataError(f"prepared dataset {path} is damaged ({os.path.basename(shard)} has {max(have, 0)} bytes, "
                            f"its index needs {need}); delete the folder and prepare it again")
    return PreparedDataset(path, index, min_frames)


def default_cache_dir() -> str:
    return os.environ.get("REELGAN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "reelgan", "datasets")


def cached_prepare(src: str, resolution: int, cache_dir: Optional[str] = None, min_frames: int = 1,
                   progress: bool = True, say=logger.info) -> PreparedDataset:
    """The prepared form of `src` at `resolution` from the cache, made on first use. Keyed by the source's file
    list, sizes and mtimes and by the resolution: a changed source or size is prepared anew. A file lock makes
    concurrent processes (torchrun ranks) wait for the one that prepares."""
    listing = list_source(src)
    key = cache_key(listing, resolution)
    cache = Path(cache_dir or default_cache_dir())
    out = cache / f"{Path(os.path.abspath(src)).name}-{resolution}px-{key}"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        lock = open(cache / f".{key}.lock", "w")
    except OSError as e:
        raise DataError(f"cannot use the dataset cache {cache}: {e.strerror}; set data.cache to a writable "
                        f"folder (or REELGAN_CACHE)") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            found = open_prepared(str(out), min_frames) if is_prepared(str(out)) else None
        except DataError as e:                             # damaged: the cache is ours to rebuild
            say(f"data: {e}; preparing it again")
            found = None
        if found is not None:
            say(f"data: prepared {src} at {resolution} px found in the cache: {out}")
            return found
        else:
            say(f"data: preparing {src} at {resolution} px (once; decoded frames go to {out})")
            prepare(src, str(out), resolution, progress=progress, listing=listing)
            _drop_stale(cache, os.path.abspath(src), resolution, keep=out)
    return open_prepared(str(out), min_frames)


def _drop_stale(cache: Path, source: str, resolution: int, keep: Path) -> None:
    """Earlier preparations of the same source folder at the same resolution: the source has changed since."""
    for old in cache.glob(f"{Path(source).name}-{resolution}px-*"):
        try:
            with open(old / INDEX) as f:
                same = json.load(f).get("source") == source
        except (OSError, json.JSONDecodeError):
            continue
        if old != keep and same:
            shutil.rmtree(old, ignore_errors=True)
