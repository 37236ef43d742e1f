"""Sinks fed by the renderer's chunks beside the writer: object labels of the layered generators (gan/labels.py's
boxes and file formats), read from G's own placement at the times of the frames written, chunk by chunk."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence

import torch

from gan.labels import FORMATS, LabelError, ObjectBox, YoloDataset, clip_boxes, require_layered, split_of, write_labels
from gan.sampling.render import Chunk, ClipRenderer, Prepared
from gan.video_io import to_uint8


class LabelSink:
    """--labels: each clip's object boxes beside it and, with `dataset`, its frames and boxes in the ultralytics
    layout. `feed` passes a group's chunks through (to the writer) while it reads their boxes; `write` then puts
    the group's label files beside the clip files the writer returned; `finish` closes the dataset folder."""

    def __init__(self, G, fmt: str, threshold: float = 0.5, names: Sequence[str] = ("object",), cls: int = 0,
                 dataset: Optional[str] = None):
        if fmt not in FORMATS:
            raise LabelError(f"unknown label format {fmt!r}: use one of {', '.join(FORMATS)}")
        require_layered(G)
        self.fmt, self.threshold, self.names, self.cls = fmt, threshold, list(names), int(cls)
        self.resolution = G.resolution
        self.ds = YoloDataset(dataset, self.names) if dataset else None
        self.clips = 0                               # clips fed so far (which go to val)
        self._group: tuple = ((), [], 0)

    def feed(self, clips: Prepared, seeds: Sequence[int], chunks: Iterable[Chunk]) -> Iterator[torch.Tensor]:
        boxes: List[List[ObjectBox]] = [[] for _ in seeds]
        k = 0
        for chunk in chunks:
            n = chunk.frames.shape[1]
            with torch.no_grad():
                alphas = clips.alphas_at(chunk.t)                   # [B, n, K, H, W]
            for i, seed in enumerate(seeds):
                found = clip_boxes(alphas[i], self.cls, k, self.threshold)
                boxes[i] += found
                if self.ds is not None:
                    self.ds.add_clip(f"seed{seed:04d}", to_uint8(chunk.frames[i].float().cpu()), found,
                                     split_of(self.clips + i), first=k)
            k += n
            yield chunk.frames
        self._group = (list(seeds), boxes, k)

    def write(self, clip_paths: Sequence[Path]) -> List[Path]:
        """The last fed group's label files, beside its clip files."""
        seeds, boxes, frames = self._group
        self.clips += len(seeds)
        return [write_labels(self.fmt, Path(p), b, frames, self.resolution, self.resolution, self.names)
                for p, b in zip(clip_paths, boxes)]

    def finish(self) -> List[Path]:
        return [self.ds.finish()] if self.ds is not None else []


@torch.no_grad()
def layered_labels(G, seeds: Sequence[int], num_frames: int, *, c: Optional[torch.Tensor] = None,
                   classes: Optional[Sequence[int]] = None, threshold: float = 0.5, return_frames: bool = False,
                   time_step: float = 1.0, truncation: float = 1.0, chunk: int = 16, device="cpu", fused: bool = True):
    """Labels of the clips that ClipRenderer(G).render_chunks(seeds, num_frames, c=c, ...) renders: a list of
    ObjectBoxes per seed, plus those frames [B, T, C, H, W] in [-1, 1] with return_frames."""
    require_layered(G)
    renderer = ClipRenderer(G, device, chunk, fused)
    clips = renderer.latent_clips(seeds, num_frames, time_step=time_step, c=c, truncation=truncation)
    labels: List[List[ObjectBox]] = [[] for _ in seeds]
    frames, k = [], 0
    for part in renderer.clip_chunks(clips):
        alphas = clips.alphas_at(part.t)
        for i in range(len(seeds)):
            labels[i] += clip_boxes(alphas[i], 0 if classes is None else classes[i], k, threshold)
        if return_frames:
            frames.append(part.frames)
        k += part.frames.shape[1]
    return (labels, torch.cat(frames, dim=1)) if return_frames else labels
