"""Built-in synthetic video datasets that need no download: Moving Digits, Bouncing Shapes and Moving Dots.

Every video is a pure function of (seed, split, index): its objects, sizes, start positions and velocities are
drawn from `numpy.random.default_rng([seed, split_id, index])`, and positions are an analytic function of
time (the unbounded straight-line trajectory reflected into the box), so any frame k is rendered directly
without simulating frames 0..k-1. Objects are always fully inside the frame.

Positions in `factors()` are the TOP-LEFT corner (x, y) of each object's size x size box, in pixels
(float, sub-pixel); x grows to the right, y grows downwards. Rendering is sub-pixel accurate (bilinear for
digits, 4x4 supersampled coverage for shapes), so slow motion is smooth rather than jumping whole pixels.
"""
from __future__ import annotations

import functools
import math
from typing import Dict, List, Optional

import numpy as np
from PIL import Image

from gan.video_io import resize_square

SPLITS = {"train": 0, "test": 1}
SPEED_RANGE = (0.01, 0.03)            # speed per frame as a fraction of the frame width
_DIRECTIONS = ["right", "down-right", "down", "down-left", "left", "up-left", "up", "up-right"]
PALETTE: Dict[str, tuple] = {         # named colours of BouncingShapes (RGB)
    "red": (230, 40, 40),
    "green": (40, 200, 70),
    "blue": (50, 100, 240),
    "yellow": (240, 220, 40),
    "cyan": (40, 215, 225),
    "magenta": (220, 50, 215),
}


def reflect(p: np.ndarray, length: float) -> np.ndarray:
    """Fold an unbounded coordinate into [0, length] as a ball bouncing between walls (a triangle wave)."""
    if length <= 0:
        return np.zeros_like(p)
    return length - np.abs(np.mod(p, 2 * length) - length)


def direction_name(velocity) -> str:
    """One of 8 compass-like names for a velocity (image axes: +y is down)."""
    angle = math.atan2(float(velocity[1]), float(velocity[0]))
    return _DIRECTIONS[round(angle / (math.pi / 4)) % 8]


def speed_word(speed_fraction: float) -> str:
    """'slowly' / '' / 'quickly' for the lower / middle / upper third of SPEED_RANGE."""
    lo, hi = SPEED_RANGE
    third = (hi - lo) / 3
    if speed_fraction < lo + third:
        return "slowly"
    if speed_fraction > hi - third:
        return "quickly"
    return ""


def indefinite_article(word: str) -> str:
    """'a' or 'an' before `word` as the captions write it ('an 8', 'a red')."""
    return "an" if word[0] in "aeiou8" else "a"


def _join(phrases: List[str]) -> str:
    if len(phrases) <= 1:
        return "".join(phrases)
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


class _BouncingSprites:
    """Shared mechanics: per-video parameters, analytic trajectories, sub-pixel compositing, captions."""

    class_names: List[str] = []

    def __init__(self,
                 resolution: int = 64,      # square frame size in pixels
                 num_videos: int = 20000,   # number of distinct videos (indices 0..num_videos-1)
                 video_frames: int = 64,    # nominal video length; render() may go past it (motion continues)
                 num_objects: int = 2,      # moving objects per video
                 seed: int = 0,             # content seed: same (seed, split, index) -> same video
                 split: str = "train"):     # 'train' or 'test' (MovingDigits: disjoint digit images)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got '{split}'")
        if resolution < 8 or num_videos < 1 or video_frames < 1 or num_objects < 1:
            raise ValueError(f"{type(self).__name__} needs resolution >= 8 and num_videos, video_frames, "
                             f"num_objects >= 1; got {resolution}, {num_videos}, {video_frames}, {num_objects}")
        self.resolution = int(resolution)
        self.num_videos = int(num_videos)
        self.video_frames = int(video_frames)
        self.num_objects = int(num_objects)
        self.seed = int(seed)
        self.split = split
        self.skipped = {"unreadable": [], "too_short": []}   # same shape as disk sources; always empty

    # ----- subclass hooks

    def _draw_object(self, rng: np.random.Generator) -> dict:
        """Class-specific parameters of one object: class_id, size, and whatever _coverage needs."""
        raise NotImplementedError

    def _coverage(self, obj: dict, fx: float, fy: float) -> np.ndarray:
        """Alpha `[s+1, s+1]` in [0, 1] of the object placed at sub-pixel offset (fx, fy) in [0, 1)."""
        raise NotImplementedError

    def _composite(self, region: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
        """Blend `colour` with coverage `alpha` [h, w] into `region` [h, w, 3] (float, in place)."""
        a = alpha[..., None]
        region *= 1.0 - a
        region += a * colour

    def _phrase(self, obj: dict, frame: float = 0) -> str:
        raise NotImplementedError

    # ----- per-video parameters

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return self.num_videos

    def _objects(self, index: int) -> List[dict]:
        if not 0 <= index < self.num_videos:
            raise IndexError(f"video index {index} out of range for {type(self).__name__} "
                             f"with {self.num_videos} videos")
        rng = np.random.default_rng([self.seed, SPLITS[self.split], int(index)])
        objects = []
        for _ in range(self.num_objects):
            obj = self._draw_object(rng)
            travel = self.resolution - obj["size"]              # top-left moves within [0, travel]
            speed = rng.uniform(*SPEED_RANGE) * self.resolution  # px / frame
            angle = rng.uniform(0, 2 * math.pi)
            obj["travel"] = travel
            obj["start"] = rng.uniform(0, travel, size=2)       # (x, y) at frame 0
            obj["velocity"] = speed * np.array([math.cos(angle), math.sin(angle)])
            obj["speed_fraction"] = speed / self.resolution
            objects.append(obj)
        return objects

    @staticmethod
    def _positions(obj: dict, times: np.ndarray) -> np.ndarray:
        """Top-left (x, y) at float frame times `[K]` -> `[K, 2]`."""
        unbounded = obj["start"][None, :] + times[:, None] * obj["velocity"][None, :]
        return reflect(unbounded, obj["travel"])

    @staticmethod
    def _velocity_at(obj: dict, frame: float) -> np.ndarray:
        """Velocity (px / frame) at `frame`: the frame-0 velocity with each axis flipped once per wall hit."""
        if obj["travel"] <= 0:
            return obj["velocity"].copy()
        unbounded = obj["start"] + frame * obj["velocity"]
        flips = np.floor(unbounded / obj["travel"]) % 2              # odd fold: moving back
        return np.where(flips == 1, -obj["velocity"], obj["velocity"])

    @staticmethod
    def _bounce_frames(obj: dict, frames: int) -> List[int]:
        """Frames k whose motion direction differs from frame k-1 (a wall was hit in between)."""
        if obj["travel"] <= 0:
            return []
        t = np.arange(frames, dtype=np.float64)
        unbounded = obj["start"][None, :] + t[:, None] * obj["velocity"][None, :]
        fold = np.floor(unbounded / obj["travel"])              # parity of the fold = direction
        changed = np.any(fold[1:] != fold[:-1], axis=1)
        return [int(k) + 1 for k in np.nonzero(changed)[0]]

    # ----- public API

    def render(self, index: int, start: int = 0, frames: Optional[int] = None, stride: int = 1) -> np.ndarray:
        """Frames `start, start+stride, ...` of video `index` -> uint8 `[T, H, W, 3]`.

        `frames=None` renders up to the end of the nominal video (`video_frames`).
        """
        if start < 0 or stride < 1:
            raise ValueError(f"render needs start >= 0 and stride >= 1, got start={start}, stride={stride}")
        if frames is None:
            frames = max(0, math.ceil((self.video_frames - start) / stride))
        objects = self._objects(index)
        times = start + stride * np.arange(frames, dtype=np.float64)    # [T]
        r = self.resolution
        out = np.zeros((frames, r, r, 3), np.uint8)
        tracks = [self._positions(obj, times) for obj in objects]       # per object [T, 2]
        for k in range(frames):
            canvas = np.zeros((r, r, 3), np.float32)                    # [H, W, 3] in [0, 255]
            for obj, track in zip(objects, tracks):
                self._draw(canvas, obj, *track[k])
            out[k] = np.clip(np.rint(canvas), 0, 255)
        return out

    def _draw(self, canvas: np.ndarray, obj: dict, x: float, y: float) -> None:
        ix, iy = int(math.floor(x)), int(math.floor(y))
        alpha = self._coverage(obj, x - ix, y - iy)                     # [s+1, s+1]
        r = self.resolution
        h, w = min(alpha.shape[0], r - iy), min(alpha.shape[1], r - ix)  # the spare row/col may fall outside
        self._composite(canvas[iy:iy + h, ix:ix + w], alpha[:h, :w], obj["rgb"])

    def factors(self, index: int) -> dict:
        """Ground-truth generative factors of video `index` (positions are top-left corners, see module doc)."""
        t = np.arange(self.video_frames, dtype=np.float64)
        objects = []
        for obj in self._objects(index):
            info = {
                "class_id": int(obj["class_id"]),
                "class_name": self.class_names[obj["class_id"]],
                "color": obj["color"],
                "size": int(obj["size"]),
                "position": self._positions(obj, t).astype(np.float32),   # [video_frames, 2] top-left (x, y)
                "velocity": obj["velocity"].astype(np.float32),          # [2] px / frame at frame 0
                "speed": float(obj["speed_fraction"]),                    # fraction of the width per frame
                "direction": direction_name(obj["velocity"]),
                "bounces": self._bounce_frames(obj, self.video_frames),
            }
            info.update(obj.get("extra", {}))
            objects.append(info)
        return {"resolution": self.resolution, "video_frames": self.video_frames, "objects": objects}

    def boxes(self, index: int, start: int = 0, frames: Optional[int] = None, stride: int = 1,
              threshold: float = 0.5) -> List[List[tuple]]:
        """Ground-truth boxes of the frames `render` draws: per frame, (object index, class_id, x0, y0, x1, y1) of
        each object's pixels with coverage > threshold (x1/y1 exclusive; objects never leave the frame). Objects
        are drawn alone, so an overlapped object keeps its whole box (digits combine with max: both show)."""
        if frames is None:
            frames = max(0, math.ceil((self.video_frames - start) / stride))
        objects = self._objects(index)
        times = start + stride * np.arange(frames, dtype=np.float64)
        tracks = [self._positions(obj, times) for obj in objects]
        r = self.resolution
        out = []
        for k in range(frames):
            row = []
            for i, (obj, track) in enumerate(zip(objects, tracks)):
                canvas = np.zeros((r, r, 3), np.float32)
                self._draw(canvas, dict(obj, rgb=np.full(3, 1.0, np.float32)), *track[k])
                ys, xs = np.nonzero(canvas[..., 0] > threshold)
                if len(xs):
                    row.append((i, int(obj["class_id"]), int(xs.min()), int(ys.min()), int(xs.max()) + 1,
                                int(ys.max()) + 1))
            out.append(row)
        return out

    def caption(self, index: int, frame: float = 0) -> str:
        """E.g. 'a 3 moving up-left and a 7 moving right quickly': the directions are those at `frame`
        (after any bounce before it), so a training clip starting at `frame` gets the words it shows."""
        return _join([self._phrase(obj, frame) for obj in self._objects(index)])

    @classmethod
    def caption_word_groups(cls) -> Dict[str, List[List[str]]]:
        """The interchangeable words of this dataset's captions: {'appearance': groups, 'motion': groups}. A
        caption with one of them swapped for another of its group describes a different video (text-to-video's
        hard negatives; gan.conditioning.text.CaptionNegatives)."""
        return {"appearance": [list(cls.class_names)], "motion": [list(_DIRECTIONS), ["slowly", "quickly"]]}

    def label(self, index: int) -> int:
        """Class id of the first object (the video's label when training class-conditionally)."""
        return int(self._objects(index)[0]["class_id"])

    # ----- the source interface shared with gan.data.readers

    def num_frames(self, index: int) -> int:
        return self.video_frames

    def read(self, index: int, start: int, count: int, stride: int = 1, size: Optional[int] = None) -> np.ndarray:
        frames = self.render(index, start, count, stride)
        return frames if size is None else resize_square(frames, size)

    def summary(self) -> str:
        return (f"dataset {type(self).__name__}(split={self.split}, seed={self.seed}): {self.num_videos} videos "
                f"of {self.video_frames} frames at {self.resolution}px, {self.num_classes} classes")

    def _motion_words(self, obj: dict, frame: float = 0) -> str:
        words = ["moving", direction_name(self._velocity_at(obj, frame)), speed_word(obj["speed_fraction"])]
        return " ".join(w for w in words if w)


# ----------------------------------------------------------------------------------------------------------
# Moving digits


@functools.lru_cache(maxsize=1)
def _digits():
    """sklearn's 1797 handwritten 8x8 digits (values 0..16) and their fixed train/test split."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download
    data = load_digits()
    order = np.random.default_rng(20240607).permutation(len(data.target))  # fixed: independent of `seed`
    cut = int(round(0.8 * len(order)))
    pools = {"train": order[:cut], "test": order[cut:]}
    return data.images.astype(np.float32), data.target.astype(np.int64), pools


@functools.lru_cache(maxsize=4096)
def _digit_sprite(image_index: int, size: int) -> np.ndarray:
    """Digit image upscaled to `[size, size]` in [0, 1] with a contrast curve that sharpens blurry edges."""
    images, _, _ = _digits()
    small = np.pad(images[image_index] / 16.0, 1)             # [10, 10]; one blank pixel of margin
    big = np.asarray(Image.fromarray(small.astype(np.float32)).resize((size, size), Image.BICUBIC))
    v = np.clip((big - 0.2) / 0.5, 0.0, 1.0)                  # lift strokes, cut the bicubic halo
    return (v * v * (3 - 2 * v)).astype(np.float32)           # smoothstep: firm strokes, soft edges


def _shift_bilinear(sprite: np.ndarray, fx: float, fy: float) -> np.ndarray:
    """Place `[s, s]` at a sub-pixel offset inside an `[s+1, s+1]` window (bilinear splat)."""
    s = sprite.shape[0]
    out = np.zeros((s + 1, s + 1), np.float32)
    out[:s, :s] += (1 - fx) * (1 - fy) * sprite
    out[:s, 1:] += fx * (1 - fy) * sprite
    out[1:, :s] += (1 - fx) * fy * sprite
    out[1:, 1:] += fx * fy * sprite
    return out


class MovingDigits(_BouncingSprites):
    """Moving-MNIST analogue: white handwritten digits (sklearn `load_digits`) bouncing on black.

    Digit images of split 'train' (80%) and 'test' (20%) are disjoint, so a digit classifier trained on one
    can be checked on the other. Overlapping digits combine with `max`, as in Moving MNIST.
    """

    class_names = [str(d) for d in range(10)]

    def _draw_object(self, rng: np.random.Generator) -> dict:
        _, targets, pools = _digits()
        image_index = int(rng.choice(pools[self.split]))
        return {
            "class_id": int(targets[image_index]),
            "size": int(round(0.42 * self.resolution)),
            "color": "white",
            "rgb": np.full(3, 255.0, np.float32),
            "image_index": image_index,
            "extra": {"image_index": image_index},            # index into load_digits(), for reference
        }

    def _coverage(self, obj: dict, fx: float, fy: float) -> np.ndarray:
        return _shift_bilinear(_digit_sprite(obj["image_index"], obj["size"]), fx, fy)

    def _composite(self, region: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
        np.maximum(region, alpha[..., None] * colour, out=region)

    def _phrase(self, obj: dict, frame: float = 0) -> str:
        name = self.class_names[obj["class_id"]]
        return f"{indefinite_article(name)} {name} {self._motion_words(obj, frame)}"


# ----------------------------------------------------------------------------------------------------------
# Bouncing shapes

_SUPERSAMPLE = 4                      # coverage samples per pixel and axis


def _inside(shape: str, u: np.ndarray, v: np.ndarray, s: float) -> np.ndarray:
    """Membership of points (u, v), relative to the box's top-left, in a shape of box size s."""
    if shape == "circle":
        return (u - s / 2) ** 2 + (v - s / 2) ** 2 <= (s / 2) ** 2
    if shape == "square":                                     # inset so its area looks like the circle's
        m = 0.08 * s
        return (u >= m) & (u <= s - m) & (v >= m) & (v <= s - m)
    if shape == "triangle":                                   # apex at top centre, base along the bottom
        return (v >= 0) & (v <= s) & (np.abs(u - s / 2) <= v / 2)
    raise ValueError(f"unknown shape '{shape}'")


def _shape_coverage(shape: str, s: int, fx: float, fy: float) -> np.ndarray:
    """Alpha `[s+1, s+1]` of a shape of box size s at sub-pixel offset (fx, fy): supersampled coverage."""
    n = (s + 1) * _SUPERSAMPLE
    offsets = (np.arange(n, dtype=np.float32) + 0.5) / _SUPERSAMPLE   # sample centres in window pixels
    u = offsets[None, :] - fx                                         # [1, n] relative to the box
    v = offsets[:, None] - fy                                         # [n, 1]
    hits = _inside(shape, u, v, s).astype(np.float32)                 # [n, n]
    return hits.reshape(s + 1, _SUPERSAMPLE, s + 1, _SUPERSAMPLE).mean(axis=(1, 3))


class BouncingShapes(_BouncingSprites):
    """Coloured filled circles, squares and triangles (anti-aliased) bouncing on black; later objects are
    drawn over earlier ones. Colours come from PALETTE; sizes are 22-34% of the frame."""

    class_names = ["circle", "square", "triangle"]            # sorted, so exported class folders keep ids

    def _draw_object(self, rng: np.random.Generator) -> dict:
        class_id = int(rng.integers(len(self.class_names)))
        color = list(PALETTE)[int(rng.integers(len(PALETTE)))]
        lo, hi = round(0.22 * self.resolution), round(0.34 * self.resolution)
        return {
            "class_id": class_id,
            "size": int(rng.integers(lo, hi + 1)),
            "color": color,
            "rgb": np.array(PALETTE[color], np.float32),
        }

    def _coverage(self, obj: dict, fx: float, fy: float) -> np.ndarray:
        return _shape_coverage(self.class_names[obj["class_id"]], obj["size"], fx, fy)

    @classmethod
    def caption_word_groups(cls) -> Dict[str, List[List[str]]]:
        groups = super().caption_word_groups()
        return {"appearance": [list(PALETTE)] + groups["appearance"], "motion": groups["motion"]}

    def _phrase(self, obj: dict, frame: float = 0) -> str:
        return f"{indefinite_article(obj['color'])} {obj['color']} {self.class_names[obj['class_id']]} " \
               f"{self._motion_words(obj, frame)}"


# ----------------------------------------------------------------------------------------------------------
# Moving dots


class MovingDots(_BouncingSprites):
    """The simplest moving scene, for first experiments (docs/tutorial): white anti-aliased discs of one size
    (a quarter of the frame) bouncing on black. Grey, one class ('dot'); later dots are drawn over earlier ones."""

    class_names = ["dot"]

    def _draw_object(self, rng: np.random.Generator) -> dict:
        return {
            "class_id": 0,
            "size": max(2, round(0.25 * self.resolution)),
            "color": "white",
            "rgb": np.full(3, 255.0, np.float32),
        }

    def _coverage(self, obj: dict, fx: float, fy: float) -> np.ndarray:
        return _shape_coverage("circle", obj["size"], fx, fy)

    def _phrase(self, obj: dict, frame: float = 0) -> str:
        return f"a dot {self._motion_words(obj, frame)}"
