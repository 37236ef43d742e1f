"""What the player room draws: a loaded model (`Model`), the settings of one stream (`Settings`) and its clock
(`Scene`, the source a broadcast.Stream renders). Every frame goes through the project's one renderer
(gan/sampling/render.py `ClipRenderer`, its fast path chosen by the settings); nothing here draws pixels itself.

Time is continuous and counted in training-data frames, as G sees it: each shown frame advances the clock by
speed * data_fps / fps, so a negative speed plays backwards (down to t = 0, where motion anchors start).
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import math
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from gan import watermark as wm
from gan.conditioning.inputs import load_image
from gan.errors import ReelganError
from gan.sampling.fast import PRECISIONS, preview_resolutions
from gan.sampling.int8 import int8_available
from gan.sampling.load import MAX_SEED, load_generator, resolve_watermark, text_encoder_of
from gan.sampling.render import ClipRenderer, prompt_condition, seed_motion, seed_z
from gan.video_io import to_uint8


class StudioError(ReelganError, ValueError):
    """A bad control value or an unusable checkpoint: one line for the page or the command."""


# Control ranges: wide enough for any use, narrow enough that a typo cannot stall the server.
LIMITS = {"truncation": (0.0, 2.0), "speed": (-8.0, 8.0), "fps": (1.0, 120.0), "time": (0.0, 1e7),
          "duration": (0.1, 60.0), "prompt_chars": 500}
# An image-to-video model draws its motion codes from t = 0 to the time shown at once (G.prepare takes them all),
# so its clock stops at this many anchors: ~0.1 s and 1 MB per still on a CPU, hours of motion at 16 frames each.
STILL_ANCHORS = 4096
STILLS_KEPT = 64             # uploaded stills kept in memory (the oldest is forgotten first)
MAX_STILL_PIXELS = 4096 * 4096   # an upload's decoded size (~50 MB as RGB); a 4K photo is 8.3 megapixels


@dataclass(frozen=True)
class Settings:
    """Everything that decides a stream's pictures (not its clock): equal settings share one stream."""
    seed: int = 0
    truncation: float = 1.0
    speed: float = 1.0                 # x real time of the training data; negative plays backwards
    fps: float = 30.0                  # frames shown per second
    class_id: Optional[int] = None     # class-conditional models
    prompt: Optional[str] = None       # text-to-video models
    image: Optional[str] = None        # image-to-video models: id of an uploaded still
    precision: str = "auto"            # the fast path: auto / fp32 / bf16 (fp16 on CUDA) / int8 (CPU, torchao)
    compile: bool = False              # torch.compile the frame rendering (the first chunk waits for it)
    resolution: int = 0                # preview size of the synthesis G (0: the model's own)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def show(value, limit: int = 40) -> str:
    """repr(value), cut to `limit` characters: an error message never echoes a huge value back."""
    big = isinstance(value, int) and abs(value) >= 10 ** limit
    text = f"a {len(str(value))}-digit number" if big else repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _number(name: str, value, integer: bool = False) -> float:
    # JSON numbers arrive as int (any size) or float (finite unless NaN/Infinity got through): both bounded here
    # before anything converts them, so no OverflowError and no inf reaches a clock or a renderer.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (isinstance(value, int) and abs(value) >= 2 ** 64) or not math.isfinite(value):
        raise StudioError(f"{name} must be a number, got {show(value)}")
    if integer and int(value) != value:
        raise StudioError(f"{name} must be a whole number, got {show(value)}")
    return int(value) if integer else float(value)


def in_range(name: str, value, integer: bool = False) -> float:
    v = _number(name, value, integer)
    lo, hi = LIMITS[name]
    if not lo <= v <= hi:
        raise StudioError(f"{name} must be in [{lo:g}, {hi:g}], got {show(value)}")
    return v


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation along the last dim (Shoemake 1985), as StyleGAN interpolates Gaussian codes;
    t broadcasts against a[..., :1]. Nearly parallel vectors fall back to a straight line."""
    an, bn = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((an * bn).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    straight = (1 - t) * a + t * b
    curved = torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b
    return torch.where(so.abs() < 1e-4, straight, curved)


def ease(x: np.ndarray) -> np.ndarray:
    """Smoothstep: the interpolation starts and ends at rest."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


class Model:
    """A checkpoint loaded once for the whole server: the generator, what it supports, and the renderers of the
    fast-path settings in use (built on first use, each used by one thread at a time)."""

    def __init__(self, checkpoint, device: str = "cpu", chunk: int = 4):
        G, info = load_generator(checkpoint, device)
        self.mode = info["mode"]
        if self.mode == "continue":
            raise StudioError(f"{checkpoint} continues videos (cond.mode 'continue'); the studio plays "
                              f"unconditional, class, image-to-video and text-to-video models: use "
                              f"generate.py --video for this one")
        if self.mode == "text":
            text_encoder_of(info)                          # a clear error for an external encoder
        self.G, self.info, self.cfg = G, info, info["config"]
        self.device, self.chunk = torch.device(device), int(chunk)
        self.checkpoint = str(checkpoint)
        self.data_fps = float(self.cfg.data.fps)
        self.mark = resolve_watermark(wm.AUTO, G, info)   # the mark generate.py puts on this model's clips
        self._renderers: Dict[tuple, Tuple[ClipRenderer, threading.Lock]] = {}
        self._warm: set = set()                           # renderers that rendered once (compiled, if asked)
        self._build_lock = threading.Lock()
        self._stills: "collections.OrderedDict[str, torch.Tensor]" = collections.OrderedDict()
        self._prepared: "collections.OrderedDict[tuple, object]" = collections.OrderedDict()
        self._prep_lock = threading.Lock()

    # ---- what the page may offer ------------------------------------------------------------------------------
    @property
    def fast_path(self) -> bool:
        """Image models render through G.render_prepared, which the fast path does not cover."""
        return self.mode != "image"

    @property
    def max_time(self) -> float:
        """The latest time (data frames) the player shows: LIMITS' for most models, STILL_ANCHORS' motion codes for
        an image-to-video model."""
        t = LIMITS["time"][1] * self.data_fps
        if self.mode == "image":
            t = min(t, (STILL_ANCHORS - 2) * float(self.G.motion_period))
        return t

    def capabilities(self) -> dict:
        precisions = [p for p in PRECISIONS if (p != "fp16" or self.device.type == "cuda")
                      and (p != "int8" or (self.device.type == "cpu" and int8_available()))]
        names = self.info["class_names"] or [str(i) for i in range(self.info["c_dim"])]
        return {"name": self.cfg.name, "checkpoint": Path(self.checkpoint).name, "step": self.info["step"],
                "mode": self.mode, "resolution": self.G.resolution, "channels": self.G.img_channels,
                "data_fps": self.data_fps, "classes": names if self.mode == "none" and self.info["c_dim"] else [],
                "text": self.mode == "text", "image": self.mode == "image", "interpolate": self.mode != "image",
                "precisions": precisions if self.fast_path else [], "compile": self.fast_path,
                "resolutions": list(preview_resolutions(self.G)) if self.fast_path else [self.G.resolution],
                "limits": {**LIMITS, "time": (0.0, self.max_time / self.data_fps)}}

    def defaults(self, given: Optional[dict] = None) -> Settings:
        """The settings a new tab starts with: the model's own size, class 0, a prompt; then `given` (checked)."""
        s = Settings(resolution=self.G.resolution, class_id=0 if self.info["c_dim"] and self.mode == "none" else None,
                     prompt="a shape moving" if self.mode == "text" else None)
        return self.validate(s, given or {})

    # ---- controls ---------------------------------------------------------------------------------------------
    def validate(self, s: Settings, changes: dict) -> Settings:
        """`s` with `changes` (a control message's fields) applied, each checked; StudioError names a bad one."""
        out = {}
        for key, value in changes.items():
            if key == "seed":
                v = _number("seed", value, integer=True)
                if not 0 <= v <= MAX_SEED:
                    raise StudioError(f"seed must be in [0, 2**63), got {show(value)}")
                out[key] = int(v)
            elif key in ("truncation", "speed", "fps"):
                out[key] = in_range(key, value)
            elif key == "class_id":
                names = self.info["class_names"]
                if not self.info["c_dim"] or self.mode != "none":
                    raise StudioError("this model is not class-conditional")
                if isinstance(value, str) and value in names:
                    value = names.index(value)
                v = _number("class", value, integer=True)
                if not 0 <= v < self.info["c_dim"]:
                    raise StudioError(f"class must be in 0..{self.info['c_dim'] - 1}, got {show(value)}")
                out[key] = int(v)
            elif key == "prompt":
                if self.mode != "text":
                    raise StudioError("this model does not take a prompt (it is not a text-to-video model)")
                if not isinstance(value, str) or not value.strip():
                    raise StudioError("the prompt is empty: describe the clip, e.g. 'a red circle moving left'")
                if len(value) > LIMITS["prompt_chars"]:
                    raise StudioError(f"the prompt is longer than {LIMITS['prompt_chars']} characters")
                out[key] = value.strip()
            elif key == "image":
                if self.mode != "image":
                    raise StudioError("this model does not animate stills (it is not an image-to-video model)")
                if not isinstance(value, str) or value not in self._stills:
                    raise StudioError("unknown still: upload the image again")
                out[key] = value
            elif key == "precision":
                if not self.fast_path or value not in self.capabilities()["precisions"]:
                    raise StudioError(f"precision must be one of {self.capabilities()['precisions']}, "
                                      f"got {show(value)}")
                out[key] = value
            elif key == "compile":
                if not isinstance(value, bool) or (value and not self.fast_path):
                    raise StudioError(f"compile must be true or false{'' if self.fast_path else ' (false here)'}")
                out[key] = value
            elif key == "resolution":
                sizes = self.capabilities()["resolutions"]
                if isinstance(value, bool) or value not in sizes:
                    raise StudioError(f"resolution must be one of {sizes}, got {show(value)}")
                out[key] = int(value)
            else:
                raise StudioError(f"unknown control {show(key)}")
        return dataclasses.replace(s, **out)

    def add_still(self, data: bytes) -> str:
        """An uploaded image -> its id (the still at the model's size, kept in memory)."""
        if self.mode != "image":
            raise StudioError("this model does not animate stills (it is not an image-to-video model)")
        key = hashlib.sha1(data).hexdigest()[:16]
        if key not in self._stills:
            self._check_still_size(data)
            with tempfile.TemporaryDirectory() as tmp:        # load_image reads files; Pillow reads the format
                path = Path(tmp) / "upload"
                path.write_bytes(data)
                try:
                    still = load_image(path, self.G.resolution, self.G.img_channels)
                except ReelganError as e:                   # its message names our temp file: name the upload
                    raise StudioError(str(e).replace(repr(str(path)), "the uploaded file")) from None
            self._stills[key] = still
            while len(self._stills) > STILLS_KEPT:
                self._stills.popitem(last=False)
        return key

    @staticmethod
    def _check_still_size(data: bytes) -> None:
        """Refuse a picture too large to decode before decoding it: a 100 KB PNG can hold 10^8 pixels (GBs)."""
        from PIL import Image, UnidentifiedImageError

        def too_large(size: str) -> StudioError:
            return StudioError(f"the uploaded picture is {size}; the studio takes up to {MAX_STILL_PIXELS // 10 ** 6} "
                               f"megapixels (it shrinks it to the model's size anyway): resize it first")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data)) as im:          # reads the header only
                    w, h = im.size
        except Image.DecompressionBombError:                       # Pillow's own limit (~179 megapixels)
            raise too_large("larger than Pillow decodes") from None
        except (UnidentifiedImageError, OSError, ValueError):
            return                                                 # load_image names what is wrong with it
        if w * h > MAX_STILL_PIXELS:
            raise too_large(f"{w}x{h} px")

    # ---- rendering --------------------------------------------------------------------------------------------
    def renderer(self, s: Settings) -> Tuple[ClipRenderer, threading.Lock]:
        key = (s.precision, s.compile, s.resolution) if self.fast_path else ()
        with self._build_lock:
            if key not in self._renderers:
                if self.fast_path:
                    r = ClipRenderer(self.G, self.device, self.chunk, precision=s.precision, compile=s.compile,
                                     resolution=s.resolution)
                else:
                    r = ClipRenderer(self.G, self.device, self.chunk)
                self._renderers[key] = (r, threading.Lock())
            return self._renderers[key]

    def will_compile(self, s: Settings) -> bool:
        """True when the next frames of `s` wait for torch.compile (its first chunk)."""
        return (s.compile or s.precision == "int8") and (s.precision, s.compile, s.resolution) not in self._warm

    def condition(self, s: Settings, n: int) -> Optional[torch.Tensor]:
        """c for n videos: class ids, the prompt's embedding, or None."""
        if s.class_id is not None:
            return torch.full((n,), s.class_id, dtype=torch.long)
        if s.prompt is not None:
            return prompt_condition(self.info["text_encoder"], s.prompt, [0] * n, self.device)
        return None

    def _cached(self, key: tuple, make):
        with self._prep_lock:
            if key in self._prepared:
                self._prepared.move_to_end(key)
                return self._prepared[key]
        value = make()
        with self._prep_lock:
            self._prepared[key] = value
            while len(self._prepared) > 16:
                self._prepared.popitem(last=False)
        return value

    def render(self, s: Settings, times: List[float], blend: Optional[Tuple[int, np.ndarray]] = None) -> np.ndarray:
        """uint8 frames [n, H, W, 3] of settings `s` at `times` (data frames, >= 0). blend = (from_seed, alphas [n]):
        frame i is drawn from the codes slerped from from_seed's to s.seed's by alphas[i]."""
        r, lock = self.renderer(s)
        n = len(times)
        m = max(n, r.chunk) if r.compile else n           # compiled renderers keep one shape: pad with the last time
        t = torch.tensor(list(times) + [times[-1]] * (m - n), dtype=torch.float64)
        with lock:
            if self.mode == "image":
                out = self._render_image(r, s, t)
            elif blend is None:
                prep = self._cached((id(r), s.seed, s.truncation, s.class_id, s.prompt),
                                    lambda: r.prepare([s.seed], self.condition(s, 1), s.truncation))
                out = r.frames(prep, r.motion([s.seed], t, prep[0]))[0]
            else:
                out = self._render_blend(r, s, t, blend[0], np.concatenate([blend[1], [blend[1][-1]] * (m - n)]))
            self._warm.add((s.precision, s.compile, s.resolution))
        return to_uint8(out[:n].float().cpu())

    def _render_blend(self, r: ClipRenderer, s: Settings, t: torch.Tensor, from_seed: int, alphas) -> torch.Tensor:
        """One video per frame, each at its own point between the two seeds' codes: [m, C, H, W]."""
        a = torch.as_tensor(alphas, dtype=torch.float32)
        z = slerp(seed_z(self.G, [from_seed], "cpu"), seed_z(self.G, [s.seed], "cpu"), a[:, None])   # [m, z]
        prep = r.prepare_latents(z, self.condition(s, len(t)), s.truncation)
        k0, k1 = r.anchor_window(t)
        ca, cb = seed_motion(self.G, [from_seed], k0, k1, "cpu"), seed_motion(self.G, [s.seed], k0, k1, "cpu")
        codes = slerp(ca, cb, a[:, None, None])                                       # [m, anchors, motion_dim]
        v = r.motion_from_codes(codes, k0, t[:, None], prep[0])                        # [m, 1, motion_dim]
        return r.frames(prep, v)[:, 0]

    def _render_image(self, r: ClipRenderer, s: Settings, t: torch.Tensor) -> torch.Tensor:
        if s.image is None:                                # nothing uploaded yet: the model's own first frame
            raise StudioError("upload a still to animate (the 'still' control)")
        if s.image not in self._stills:
            raise StudioError(f"the still was forgotten (the studio keeps the last {STILLS_KEPT}): upload it again")
        # motion codes for [0, horizon]: powers of two (a cache hit while playing on), at most max_time's
        horizon = min(2 ** max(6, math.ceil(math.log2(float(t.max()) + 2))), max(self.max_time, float(t.max())))
        state = self._cached((id(r), s.seed, s.truncation, s.image, horizon),
                             lambda: r.prepare_conditioned([s.seed], self._stills[s.image][None], torch.zeros(1),
                                                           horizon, s.truncation))
        with r.grad_off():
            return r.G.render_prepared(state, t.float().to(self.device)[None]).clamp(-1, 1)[0]


class ScenePlan:
    def __init__(self, model: Model, settings: Settings, times: List[float], blend):
        self.model, self.settings, self.times, self.blend = model, settings, times, blend

    def render(self) -> list:
        frames = self.model.render(self.settings, self.times, self.blend)
        return list(zip(frames, self.times))


class Scene:
    """The source of one stream: its settings and its clock (all mutated under the stream's lock)."""

    def __init__(self, model: Model, settings: Settings, t: float = 0.0):
        self.model, self.settings = model, settings
        self.t_shown: Optional[float] = None     # time of the last frame shown
        self.t_next: Optional[float] = self._clamp(t)      # next time to render (None: nothing until a change)
        self._jump: Optional[float] = None
        self._blend: Optional[dict] = None       # an interpolation in progress: from_seed, frames, planned, shown
        self._first = True                       # the next chunk is the first after a change

    def _clamp(self, t: float) -> float:
        return min(max(0.0, float(t)), self.model.max_time)

    @property
    def fps(self) -> float:
        return self.settings.fps

    @property
    def step(self) -> float:
        """Data frames per shown frame."""
        return self.settings.speed * self.model.data_fps / self.settings.fps

    @property
    def time(self) -> float:
        return self.t_shown if self.t_shown is not None else (self.t_next or 0.0)

    # ---- changes (the stream calls restart() after each) --------------------------------------------------------
    def update(self, settings: Settings) -> None:
        self.settings = settings

    def jump(self, t: float) -> None:
        self._jump = self._clamp(t)
        self._blend = None

    def interpolate(self, from_seed: int, seconds: float) -> None:
        """Move from from_seed's codes to settings.seed's over `seconds` of shown frames."""
        self._blend = {"from": int(from_seed), "frames": max(1, round(seconds * self.fps)), "planned": 0, "shown": 0}

    def restart(self) -> None:
        if self._jump is not None:
            self.t_next, self._jump = self._jump, None
        elif self.t_shown is not None:
            self.t_next = self._clamp(self.t_shown + self.step) if self.step != 0 else self.t_shown
        elif self.t_next is None:
            self.t_next = 0.0
        if self._blend is not None:
            self._blend["planned"] = self._blend["shown"]
        self._first = True

    @property
    def _chunk(self) -> int:
        """Frames in the next chunk: one right after a change, so the change shows after one frame's render."""
        return 1 if self._first else self.model.chunk

    # ---- the stream's calls -------------------------------------------------------------------------------------
    def shown(self, t: float) -> None:
        self.t_shown = t
        if self._blend is not None:
            self._blend["shown"] += 1
            if self._blend["shown"] >= self._blend["frames"]:
                self._blend = None

    def plan(self) -> Optional[ScenePlan]:
        """The next chunk: up to model.chunk times from the clock; paused (speed 0), at t = 0 going backwards or at
        model.max_time going forwards, the one frame at that time and then nothing until a change."""
        if self.t_next is None:
            return None
        step, times, t = self.step, [], self.t_next
        n, self._first = self._chunk, False
        while len(times) < n and t is not None:
            times.append(t)
            if step == 0 or (step < 0 and t == 0.0) or (step > 0 and t >= self.model.max_time):
                t = None                                  # paused, or at either end of the clock
            else:
                t = self._clamp(t + step)
        self.t_next = t
        blend = None
        if self._blend is not None and self._blend["planned"] < self._blend["frames"]:
            b = self._blend
            k = b["planned"] + np.arange(1, len(times) + 1)
            blend = (b["from"], ease(k / b["frames"]))
            b["planned"] += len(times)
        return ScenePlan(self.model, self.settings, times, blend)
