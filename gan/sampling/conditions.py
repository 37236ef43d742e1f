"""What generate() renders: the output options, checked once (`Output`), and what the clips are conditioned on, one
object per mode (none, class, text, still, context), resolved once from the options and checked in its constructor.

A condition prepares a group of seeds once (`prepare` -> a render.Prepared: the frames' times chunk by chunk and how
to render them), so every mode renders through one ClipRenderer in constant memory, and every sink (the writer, the
labels) is fed by the same chunks. Every bad option is one line naming the fix (SamplingError / ConditionError).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import torch

from gan.conditioning.inputs import ConditionError, last_frames, load_image, load_video
from gan.sampling.load import SamplingError, check_mode, resolve_class, text_encoder_of
from gan.sampling.render import ClipRenderer, Prepared, prompt_condition
from gan.sampling.write import FORMATS


@dataclass
class Output:
    """What to write and how: checked in the constructor, before any file is read."""
    outdir: Optional[str]
    fmt: str = "mp4"
    frames: Optional[int] = 64                  # per clip; None: endless (stream only)
    fps: Optional[float] = None                 # None: the training data's
    batch: int = 4                              # seeds rendered together
    stream: bool = False                        # one clip of the first seed, chunk by chunk, to stream_to
    stream_to: Optional[str] = None
    precision: str = "fp32"                     # stream only: the renderer's fast path
    compile: bool = False
    labels: Optional[str] = None                # yolo / coco / mot beside each clip (layered models)
    label_threshold: float = 0.5
    dataset: Optional[str] = None               # with labels: the ultralytics folder

    def __post_init__(self):
        if self.fmt not in FORMATS:
            raise SamplingError(f"unknown format {self.fmt!r}: use mp4, gif, png or grid")
        if (self.frames is not None and self.frames < 1) or (self.fps is not None and self.fps <= 0) \
                or self.batch < 1 or (self.frames is None and not self.stream):
            raise SamplingError("--fps must be > 0 and --frames, --batch >= 1")
        if not self.stream and self.precision == "int8":
            raise SamplingError("--precision int8 on a PyTorch checkpoint applies to --stream; for int8 clip files "
                                "export it (reelgan-export CKPT G.onnx --format onnx) and pass --checkpoint G.onnx")
        if not self.stream and (self.stream_to is not None or self.compile or self.precision != "fp32"):
            raise SamplingError("--stream-to, --precision and --compile apply to --stream only")
        if not self.stream and self.outdir is None:
            raise SamplingError("pass an output folder (--outdir)")
        if (self.labels is not None or self.dataset is not None) and (self.stream or self.fmt == "grid"):
            raise SamplingError("--labels / --dataset are written per clip file: not with --stream or --format grid")
        if self.dataset is not None and self.labels is None:
            raise SamplingError("--dataset goes with --labels (yolo, coco or mot)")

    def groups(self, seeds: Sequence[int]) -> List[List[int]]:
        """Seeds rendered together: all of them for a grid, else batches."""
        seeds = list(seeds)
        step = len(seeds) if self.fmt == "grid" else self.batch
        return [seeds[i:i + step] for i in range(0, len(seeds), step)]

    def renderer_options(self) -> Dict:
        return {"precision": self.precision, "compile": self.compile} if self.stream else {}


class Condition:
    """The interface: `prepare(renderer, seeds, frames, time_step, truncation)` -> render.Prepared. Class attributes
    say what a mode supports; `names` / `label_class` are the classes its object labels carry."""
    fused: bool = True                          # G's own path: fused modulated convs (False: grouped reference)
    streams: bool = True                        # --stream renders it
    names: Sequence[str] = ("object",)
    label_class: int = 0

    @classmethod
    def check(cls, out: Output) -> None:
        """Refuse the output options this mode does not support (before any input is read)."""
        if out.stream and not cls.streams:
            raise ConditionError("--stream renders unconditional, class and text models only (not --image/--video)")

    def c(self, count: int, device) -> Optional[torch.Tensor]:
        return None

    def prepare(self, renderer: ClipRenderer, seeds: Sequence[int], frames: Optional[int], time_step: float,
                truncation: float) -> Prepared:
        return renderer.latent_clips(seeds, frames, time_step=time_step, c=self.c(len(seeds), renderer.device),
                                     truncation=truncation)


class NoCondition(Condition):
    def __init__(self, info: Dict):
        resolve_class(None, info)                                  # a class-conditional model asks for --class


class ClassCondition(Condition):
    def __init__(self, value: str, info: Dict):
        self.label_class = resolve_class(value, info)
        self.names = info["class_names"] or [str(i) for i in range(info["c_dim"])]

    def c(self, count: int, device) -> torch.Tensor:
        return torch.full((count,), self.label_class, dtype=torch.long)


class TextCondition(Condition):
    fused = False

    def __init__(self, prompt: str, info: Dict, log: Optional[Callable[[str], None]] = None):
        self.encoder = text_encoder_of(info)
        tok = getattr(self.encoder, "tokenizer", None)
        unknown = tok.unknown_words(prompt) if tok is not None else []
        if unknown and log is not None:
            log(f"warning: words the model never saw in a caption are ignored: {', '.join(unknown)}")
        self.embedding = prompt_condition(self.encoder, prompt, [0], "cpu")        # [1, text_dim]; checks it

    def c(self, count: int, device) -> torch.Tensor:
        return self.embedding.to(device).expand(count, -1)


class StillCondition(Condition):
    """Image-to-video: frame 0 of every clip is the still; later frames move it."""
    fused, streams = False, False

    def __init__(self, path: str, G):
        self.still = load_image(path, G.resolution, G.img_channels)               # [C, H, W]

    def prepare(self, renderer, seeds, frames, time_step, truncation) -> Prepared:
        times = torch.arange(frames, dtype=torch.float64) * time_step
        return renderer.conditioned_clips(seeds, self.still[None], torch.zeros(1), times, truncation)


class ContextCondition(Condition):
    """Continuation: the clip's last K frames (`stride` data frames apart), then `frames` predicted ones,
    `time_step` apart; the written clips start with those K frames."""
    fused, streams = False, False

    def __init__(self, path: str, stride: int, G):
        if stride < 1:
            raise SamplingError("--context-stride must be >= 1")
        self.context = last_frames(load_video(path, G.resolution, G.img_channels), G.context_frames, stride)
        self.times = torch.arange(self.context.shape[0], dtype=torch.float64) * stride

    @classmethod
    def check(cls, out: Output) -> None:
        if out.labels is not None:
            raise ConditionError("--labels covers --image and --prompt, not --video (its first frames are the "
                                 "input clip's)")
        super().check(out)

    def prepare(self, renderer, seeds, frames, time_step, truncation) -> Prepared:
        future = float(self.times[-1]) + torch.arange(1, frames + 1, dtype=torch.float64) * time_step
        return renderer.conditioned_clips(seeds, self.context, self.times, future, truncation, lead=True)


def condition_for(G, info: Dict, out: Output, *, class_value: Optional[str] = None, image: Optional[str] = None,
                  video: Optional[str] = None, prompt: Optional[str] = None, context_stride: int = 1,
                  log: Optional[Callable[[str], None]] = None) -> Condition:
    """The one condition the options give (at most one of image / video / prompt, and class only without them),
    checked against the loaded model `G` and the output."""
    given = [m for m, v in (("image", image), ("continue", video), ("text", prompt)) if v is not None]
    if len(given) > 1:
        raise ConditionError("give exactly one of --image, --video, --prompt")
    check_mode(info["mode"], (given or ["none"])[0])
    if given and class_value is not None:
        raise ConditionError("--class does not combine with --image/--video/--prompt")
    if image is not None:
        kind, args = StillCondition, (image, G)
    elif video is not None:
        kind, args = ContextCondition, (video, context_stride, G)
    elif prompt is not None:
        kind, args = TextCondition, (prompt, info, log)
    else:
        kind, args = (NoCondition, (info,)) if class_value is None else (ClassCondition, (class_value, info))
    kind.check(out)
    return kind(*args)
