"""A training run's state and its setup: networks, EMA, optimizers, the one loss, data, augmentation, counters.

`setup(cfg, outdir, ...)` builds a `Run`; gan/training/loop.py's `step(run)` trains it one iteration and its
`train()` drives setup -> step -> hooks. Every random draw of step s (batch indices, clip starts, latents,
augmentation) is a function of (seed, rank, s), so `--resume` continues exactly where a run stopped.
"""
from __future__ import annotations

import contextlib
import copy
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch

from gan import checkpoint as ckpt_io
from gan import threads as cpu_threads
from gan.config import Config
from gan.config_auto import is_builtin, resolved_motion_weight
from gan.data import build_dataset, infer_settings
from gan.errors import ReelganError
from gan.networks import build_discriminators, build_generator
from gan.precision import auto_precision, native_bf16
from gan.writes import FolderLock, WriteError, refuse_existing
from gan.training import distributed as dist_utils
from gan.training.logger import RunLogger
from gan.training.media import real_grid
from gan.training.modes import TrainingMode, build_mode, step_seed
from losses import AdaptiveAugment, ClipAugment, VideoGANLoss
from losses.motion import MotionMatchTerm


class TrainingError(ReelganError, RuntimeError):
    pass


class KnobError(ReelganError, ValueError):
    pass


# name -> (what it sets, the config field that records it)
KNOBS = {
    "g_lr": ("G's learning rate (> 0)", ("train", "g_lr")),
    "d_lr": ("the Ds' learning rate (> 0; lazy R1 scales it as at setup)", ("train", "d_lr")),
    "r1_gamma": ("R1 weight (>= 0; 0: off)", ("loss", "r1_gamma")),
    "video_weight": ("the video D's weight in G's loss (>= 0; 0: the video D is off)", ("loss", "video_weight")),
    "augment_p": ("augmentation probability (0..1; ADA moves it when on)", ("loss", "augment_prob")),
    "augment_target": ("ADA's target for E[sign(D(real))] (0..1 exclusive; None: ADA off)", ("loss", "augment_target")),
}


@dataclass
class Run:
    """Everything one training run holds between steps. Contract for code that drives a run itself (the studio):

    - `run = setup(cfg, outdir, ...)`, then `stats = step(run)` (gan/training/loop.py) any number of times, from
      one thread at a time; `run.step` counts the steps done (the next step() trains step index `run.step`),
      `run.seen` the clips. `train()` stops at cfg.train.steps; step() itself has no end.
    - `step(run)` returns the step's stats, floats: 'G/loss', 'G/loss_image', 'G/loss_video', 'D/loss',
      'D/loss_image', 'D/loss_video'; the Ds' mean logits 'real/logit_image', 'real/logit_video',
      'fake/logit_image_d', 'fake/logit_video_d' (D phase) and 'fake/logit_image', 'fake/logit_video' (G phase);
      'real/sign_*'; on lazy-R1 steps 'D/r1_image', 'D/r1_video', 'D/loss_r1'; with ADA on 'augment/p'; a
      conditional mode adds 'G/recon_*' or 'mismatch/*'. With the video D off its '*video*' keys are absent.
      `run.window` holds each stat's values since the log hook last wrote (a driver without it clears it).
      A diverged step raises FloatingPointError (train() turns it into a TrainingError naming the last good
      checkpoint); the networks may then hold part of that step, so reload a checkpoint or stop.
    - Hooks (gan/training/hooks.py) are objects with `every` and `__call__(run, stats)`; `call_hooks(run, stats,
      hooks)` runs the ones due after a step; `default_hooks(run)` are train()'s (log, sample, checkpoint,
      metrics, time budget). Pass extra ones to `train(..., hooks=[...])`.
    - `run.set_knob(name, value)` changes one of KNOBS between steps (from any thread: it waits for a running
      step to finish); it updates the optimizers / loss / augmentation and `run.cfg`, so later checkpoints
      record it in their config and log.txt says when it changed (a resume takes the config it is given);
      `run.knobs()` reads them all. One process only: under torchrun every rank would have to make the same
      change at the same step.
    - `run.save()` writes a checkpoint of the current step; `run.sample_grid()` renders G_ema's sample grid
      (uint8 [T, H, W, 3]) and `run.log_samples()` logs it (samples/, TensorBoard); `run.close()` stops the data
      workers and the logger.
    """
    cfg: Config
    outdir: Path
    device: torch.device
    rank: int
    world: int
    dataset: Any
    mode: TrainingMode                          # plain, text or frame-conditioned (gan/training/modes.py)
    G: torch.nn.Module
    G_ema: torch.nn.Module
    D_image: torch.nn.Module
    D_video: torch.nn.Module
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    scaler_G: torch.amp.GradScaler
    scaler_D: torch.amp.GradScaler
    loss: VideoGANLoss
    augment: ClipAugment
    ada: Optional[AdaptiveAugment]
    loader: torch.utils.data.DataLoader
    logger: RunLogger
    step: int = 0                               # steps done
    seen: int = 0                               # clips seen (all ranks)
    start_step: int = 0
    resumed_from: Optional[Path] = None
    last_checkpoint: Optional[Path] = None
    saved_step: Optional[int] = None            # the step of the last checkpoint written or resumed from
    stop_reason: Optional[str] = None           # set by a hook (time budget) to end train()'s loop
    window: Dict[str, List[float]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    data: Optional[Iterator] = None             # the loader's iterator, started by the first step
    folder_lock: Optional[FolderLock] = None    # held from setup() to close(): one process per run folder

    @property
    def c_dim(self) -> int:
        """The condition size of the built G (the checkpoint's c_dim)."""
        return self.G.c_dim

    @property
    def ckpt_dir(self) -> Path:
        return self.outdir / "checkpoints"

    @property
    def modules(self) -> Dict[str, torch.nn.Module]:
        return {"G": self.G, "G_ema": self.G_ema, "D_image": self.D_image, "D_video": self.D_video}

    @property
    def optimizers(self) -> Dict[str, torch.optim.Optimizer]:
        return {"opt_G": self.opt_G, "opt_D": self.opt_D}

    def d_parameters(self) -> List[torch.nn.Parameter]:
        return list(self.D_image.parameters()) + list(self.D_video.parameters()) + self.mode.d_parameters()

    # ---- knobs -------------------------------------------------------------------------------------
    def knobs(self) -> Dict[str, Any]:
        return {"g_lr": self.cfg.train.g_lr, "d_lr": self.cfg.train.d_lr, "r1_gamma": self.loss.r1_gamma,
                "video_weight": self.loss.video_weight, "augment_p": self.augment.prob,
                "augment_target": None if self.ada is None else self.ada.target}

    def set_knob(self, name: str, value) -> None:
        """Set one of KNOBS from the next step on; a bad name or value raises KnobError (one line)."""
        if name not in KNOBS:
            raise KnobError(f"unknown knob {name!r}; choose from {', '.join(KNOBS)}")
        value = _check_knob(name, value)
        with self.lock:
            old = self.knobs()[name]
            section, key = KNOBS[name][1]
            setattr(getattr(self.cfg, section), key, value)
            if name == "g_lr":
                for group in self.opt_G.param_groups:
                    group["lr"] = value
            elif name in ("d_lr", "r1_gamma"):
                self.loss.r1_gamma = self.cfg.loss.r1_gamma
                lr, betas = d_optimizer_hparams(self.cfg)          # lazy R1's c changes when R1 turns on/off
                for group in self.opt_D.param_groups:
                    group["lr"], group["betas"] = lr, betas
            elif name == "video_weight":
                self.loss.video_weight = value
            elif name == "augment_p":
                self.augment.prob = value
            elif value is None:                                       # ADA off: p stays where ADA left it
                self.ada = None
                self.cfg.loss.augment_prob = self.augment.prob
            elif self.ada is None:
                self.ada = make_ada(self.cfg, self.augment)
            else:
                self.ada.target = value
            self.logger.text(f"step {self.step}: {name} {old} -> {value}")

    # ---- outputs -----------------------------------------------------------------------------------
    def save(self) -> Path:
        """Checkpoint the current step (every rank calls it: they check their weights together)."""
        # Every process checks its own weights, so a non-finite state stops all ranks together (not rank 0
        # alone, which would leave the others waiting at the barrier below).
        weights = {k: ckpt_io.unwrap(m).state_dict() for k, m in self.modules.items()}
        if dist_utils.all_reduce_mean(float(bool(ckpt_io.nonfinite(weights))), self.device) > 0:
            ckpt_io.check_finite(weights, "the model")
            raise ckpt_io.NonFiniteError("another process's model holds non-finite (NaN/Inf) values")
        if self.rank == 0:
            extra = {"c_dim": self.c_dim, "class_names": list(self.dataset.class_names),
                     "augment": augment_state(self.augment, self.ada),
                     **self.mode.state()}                               # the text mode: its encoder + vocabulary
            state = ckpt_io.run_state(self.cfg.to_dict(), self.step, self.seen, self.modules, self.optimizers,
                                      **extra)
            ckpt_io.save_run(state, self.ckpt_dir, self.cfg.train.keep_checkpoints)
        dist_utils.barrier()
        self.last_checkpoint, self.saved_step = self.ckpt_dir / "latest.pt", self.step
        return self.last_checkpoint

    def sample_grid(self) -> np.ndarray:
        t = self.cfg.train
        return self.mode.sample_grid(self.G_ema, self.dataset, t.sample_seeds, t.sample_frames)

    def log_samples(self) -> Optional[Path]:
        """This step's sample grid: a GIF in samples/, the animated grid and each cell's prompt or class in
        TensorBoard (rank 0 writes; the others get None)."""
        captions = self.mode.sample_captions(self.dataset, self.cfg.train.sample_seeds)
        return self.logger.video(self.step, self.sample_grid(), fps=self.cfg.data.fps, captions=captions)

    def close(self) -> None:
        self.data = None                                             # ends the loader's worker processes
        self.logger.close()
        self.release()

    def release(self) -> None:
        """Unlock the run folder (close() does it; a run that stops on an error calls it on the way out)."""
        if self.folder_lock is not None:
            self.folder_lock.release()
            self.folder_lock = None


def _check_knob(name: str, value):
    what = KNOBS[name][0]
    if name == "augment_target" and value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise KnobError(f"knob {name}: {value!r} is not a number; it sets {what}") from None
    ok = {"g_lr": v > 0, "d_lr": v > 0, "r1_gamma": v >= 0, "video_weight": v >= 0, "augment_p": 0 <= v <= 1,
          "augment_target": 0 < v < 1}[name]
    if not ok or not np.isfinite(v):
        raise KnobError(f"knob {name}: {value!r} is out of range; it sets {what}")
    return v


def d_optimizer_hparams(cfg: Config) -> Tuple[float, Tuple[float, float]]:
    """The D optimizer's lr and betas. Lazy R1 adjusts them for the regulariser's extra steps (StyleGAN2,
    appendix B: c = interval / (interval + 1))."""
    betas = tuple(cfg.train.betas)
    ratio = cfg.loss.r1_interval / (cfg.loss.r1_interval + 1) if cfg.loss.r1_gamma > 0 else 1.0
    return cfg.train.d_lr * ratio, (betas[0] ** ratio, betas[1] ** ratio)


def make_optimizers(cfg: Config, G, D_image, D_video):
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.train.g_lr, betas=tuple(cfg.train.betas), eps=1e-8)
    lr, betas = d_optimizer_hparams(cfg)
    opt_D = torch.optim.Adam(list(D_image.parameters()) + list(D_video.parameters()), lr=lr, betas=betas, eps=1e-8)
    return opt_G, opt_D


def make_ada(cfg: Config, augment: ClipAugment) -> AdaptiveAugment:
    return AdaptiveAugment(augment, cfg.loss.augment_target, cfg.loss.augment_speed_kimg, cfg.loss.augment_interval,
                           cfg.train.batch)


def augment_state(augment: ClipAugment, ada: Optional[AdaptiveAugment]) -> Dict:
    """The adaptive augmentation's state: its probability and the signs gathered since the last adjustment."""
    return {"p": augment.prob, "signs": list(ada.signs) if ada is not None else []}


def autocast_for(precision: str, device: torch.device):
    if precision == "auto":
        precision = auto_precision(device)
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    if precision == "fp16" and device.type != "cuda":
        raise TrainingError("precision 'fp16' needs a CUDA device; use 'bf16' on the CPU")
    return lambda: torch.autocast(device.type, dtype=dtype)


def auto_workers(source: str, device: torch.device) -> int:
    """data.workers -1: the built-ins render clips (one worker keeps up); prepared data is a memory copy, done
    in the main process on CPU (a worker would take a core from the step) and by a few workers beside a GPU."""
    if is_builtin(source):
        return 1
    return 0 if device.type == "cpu" else min(4, max(1, (os.cpu_count() or 2) // 2))


class StepBatchSampler(torch.utils.data.Sampler):
    """Yields, for steps start..end-1 (end None: without end), the list of (index, step) keys of that step's batch."""

    def __init__(self, num_items: int, batch: int, seed: int, rank: int, start: int, end: Optional[int]):
        self.num_items, self.batch, self.seed, self.rank = num_items, batch, seed, rank
        self.start, self.end = start, end

    def __iter__(self) -> Iterator[List[tuple]]:
        s = self.start
        while self.end is None or s < self.end:
            rng = np.random.default_rng(step_seed(self.seed, self.rank, s, 1))
            yield [(int(i), s) for i in rng.integers(0, self.num_items, self.batch)]
            s += 1

    def __len__(self) -> int:
        if self.end is None:
            raise TypeError("a StepBatchSampler without end has no length")
        return max(0, self.end - self.start)


class KeyedDataset(torch.utils.data.Dataset):
    """dataset[(index, step)]: the clip of `index` with clip randomness drawn for that step."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        index, step = key
        self.dataset.set_epoch(step)
        return self.dataset[index]


def fit_backgrounds(G, source) -> str:
    """Start a scene G's background bank from the per-camera medians of a prepared source; returns a log line."""
    from gan.data.footage_kind import median_backgrounds
    if not hasattr(source, "read") or not hasattr(source, "videos"):
        return "data: no frames to start the background bank from (a built-in source); it starts blank"
    found = median_backgrounds(source, G.backgrounds)                        # uint8 [N, H, W, C]
    images = torch.from_numpy(found).permute(0, 3, 1, 2).float() / 127.5 - 1
    if images.shape[1] != G.img_channels:
        images = images[:, :1] if G.img_channels == 1 else images.expand(-1, G.img_channels, -1, -1)
    G.fit_backgrounds(images.to(next(G.parameters()).device))
    return f"data: the background bank starts from {len(found)} per-camera median(s) of the footage"


RUN_FILES = ("config.json", "log.txt", "log.jsonl")          # what a run writes at its start, besides checkpoints


def claim_run_folder(outdir: str, resume: bool, force: bool) -> Optional[FolderLock]:
    """Lock `outdir` for this process (a second process on the same folder gets one line), after checking that a
    new run (no `resume`) replaces nothing there; `force` starts a new run over an old one (its checkpoints go)."""
    out = Path(outdir)
    if resume and not out.is_dir():
        return None                                                 # setup() says the folder does not exist
    lock = FolderLock(out)
    if not resume:
        ckpts = [out / "checkpoints" / n for n in ("latest.pt", "best.pt")] + \
            sorted((out / "checkpoints").glob("step_*.pt"))
        used = [out / n for n in RUN_FILES] + ckpts + [out / "samples", out / "tensorboard"]
        try:
            refuse_existing(used, force, flag="--resume to continue that run, or --force to start over there")
        except WriteError:
            lock.release()
            raise
        for path in ckpts:                                          # --force: the old run's checkpoints go
            path.unlink(missing_ok=True)
        if force:                                                   # and its TensorBoard events (a new run)
            shutil.rmtree(out / "tensorboard", ignore_errors=True)
    return lock


def setup(cfg: Config, outdir: str, resume: bool = False, device: str = "cpu", progress: bool = True,
          text_encoder=None, force: bool = False) -> Run:
    """Build a run from `cfg` in `outdir` (a new one, or with `resume` the newest usable checkpoint there).

    `text_encoder`: for cond.mode 'text', an external encoder following gan.conditioning.TextEncoder
    (kept frozen) instead of the built-in one. `progress`: show the dataset preparation's progress.
    The folder is locked for this process until run.close(); a new run refuses a used folder unless `force`."""
    lock = claim_run_folder(outdir, resume, force) if int(os.environ.get("RANK", "0")) == 0 else None
    try:
        run = _setup(cfg, outdir, resume, device, progress, text_encoder)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    run.folder_lock = lock
    return run


def _setup(cfg: Config, outdir: str, resume: bool, device: str, progress: bool, text_encoder) -> Run:
    device = torch.device(device)
    rank, world = dist_utils.init_from_env(device)
    if cfg.train.batch % world:
        raise TrainingError(f"train.batch={cfg.train.batch} must be divisible by the number of processes ({world})")
    out = Path(outdir)
    resumed_from, state, skipped = _run_folder(out, resume, rank, device)
    torch.manual_seed(cfg.train.seed)
    notes: List[str] = []
    _resolve_precision(cfg, device, notes)
    dataset = build_dataset(cfg.data, seed=cfg.train.seed, progress=progress and rank == 0, say=notes.append)
    notes += [f"inferred from the data: {x}" for x in infer_settings(cfg, dataset)]   # channels / objects
    mode = build_mode(cfg, dataset, device, dataset.num_classes if cfg.data.labels else 0, text_encoder)
    nets = _networks(cfg, mode, device, source=dataset.source if state is None else None, notes=notes)
    start_step, seen = _restore(state, resumed_from, nets, mode)
    logger = _logger(cfg, out, device, rank, world, resume, start_step, resumed_from, skipped, dataset, mode, nets, notes)
    augment, ada = _augmentation(cfg, state)
    scaler_G, scaler_D = (torch.amp.GradScaler(device.type, enabled=cfg.train.precision == "fp16") for _ in "GD")
    G, D_image, D_video = nets["G"], nets["D_image"], nets["D_video"]
    loss = VideoGANLoss(G, D_image, D_video, augment, cfg.D.image_frames, cfg.loss.image_weight,
                        cfg.loss.video_weight, cfg.loss.r1_gamma, autocast_for(cfg.train.precision, device),
                        grad_scale={"G": scaler_G.scale, "D": scaler_D.scale}, compile=cfg.train.compile,
                        **_loss_hooks(cfg, mode))
    return Run(cfg=cfg, outdir=out, device=device, rank=rank, world=world, dataset=dataset, mode=mode, G=G,
               G_ema=nets["G_ema"], D_image=D_image, D_video=D_video, opt_G=nets["opt_G"], opt_D=nets["opt_D"],
               scaler_G=scaler_G, scaler_D=scaler_D, loss=loss, augment=augment, ada=ada,
               loader=_loader(cfg, dataset, device, rank, world, start_step), logger=logger, step=start_step,
               seen=seen, start_step=start_step, resumed_from=resumed_from, last_checkpoint=resumed_from,
               saved_step=start_step if resumed_from is not None else None)


def _resolve_precision(cfg: Config, device: torch.device, notes: List[str]) -> None:
    """train.precision 'auto' -> bf16 where the device runs it natively, else fp32 (saved resolved, so a resumed
    run keeps its numerics); an explicit bf16 that the CPU only emulates is kept, with a note on its cost."""
    native = native_bf16(device)
    if cfg.train.precision == "auto":
        cfg.train.precision = auto_precision(device)
        notes.append(f"train.precision auto: {cfg.train.precision} "
                     f"({'native bf16' if native else 'no native bf16 on this ' + device.type})")
    elif cfg.train.precision == "bf16" and not native:
        notes.append(f"train.precision=bf16 runs emulated on this {device.type} (no AVX512-BF16 or AMX), several "
                     f"times slower than fp32: --set train.precision=auto picks fp32 here")


def _loss_hooks(cfg: Config, mode: TrainingMode) -> Dict[str, Any]:
    """VideoGANLoss's `condition` and `terms`: the mode's, plus motion matching where it is on."""
    hooks = dict(mode.loss_hooks())
    weight = resolved_motion_weight(cfg)
    if weight > 0:
        hooks["terms"] = list(hooks.get("terms", [])) + [MotionMatchTerm(weight)]
    return hooks


def _run_folder(out: Path, resume: bool, rank: int, device):
    """(path, state, skipped) of the checkpoint to resume from ((None, None, []) for a new run); a new run in a
    folder that holds one, or --resume of a folder that does not exist, is an error."""
    ckpt_dir = out / "checkpoints"
    if resume and not out.is_dir():
        raise TrainingError(f"--resume: the run folder {out} does not exist (a typo?); drop --resume to start "
                            f"a new run there")
    if rank == 0 and not resume and ((ckpt_dir / "latest.pt").exists() or any(ckpt_dir.glob("step_*.pt"))):
        raise TrainingError(f"{out} already holds a run ({ckpt_dir}); pass --resume to continue it or choose "
                            f"another --outdir")
    if not resume:
        return None, None, []
    if rank == 0:                  # leftovers of a write that a kill interrupted; the real files are intact
        for tmp in ckpt_dir.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
    try:
        return ckpt_io.find_resumable(ckpt_dir, map_location=device)
    except ckpt_io.CheckpointError as e:
        raise TrainingError(f"--resume in {out}: {e}") from None


def _networks(cfg: Config, mode: TrainingMode, device, source=None, notes: Optional[List[str]] = None) -> Dict[str, Any]:
    """G, G_ema, both Ds and their optimizers (the Ds' with the mode's own parameters), alike on every rank;
    `source`: a new run's data, which starts a scene G's background bank (its log line goes to `notes`)."""
    for m in mode.synced_modules():
        dist_utils.broadcast_module(m)
    G = build_generator(cfg, mode.c_dim).to(device)
    if G.backgrounds > 0 and source is not None:          # a new run: the scene G's bank starts from the footage's
        notes.append(fit_backgrounds(G, source))          # per-camera medians (before G_ema copies G)
    D_image, D_video = (d.to(device) for d in build_discriminators(cfg, mode.c_dim))
    for m in (G, D_image, D_video):
        m.to(memory_format=torch.channels_last)
        dist_utils.broadcast_module(m)
    opt_G, opt_D = make_optimizers(cfg, G, D_image, D_video)
    if mode.d_parameters():                                            # the built-in text encoder learns with D
        opt_D.add_param_group({"params": mode.d_parameters()})
    return {"G": G, "G_ema": copy.deepcopy(G).eval().requires_grad_(False), "D_image": D_image, "D_video": D_video,
            "opt_G": opt_G, "opt_D": opt_D}


def _restore(state: Optional[Dict], path: Optional[Path], nets: Dict[str, Any], mode: TrainingMode) -> Tuple[int, int]:
    """(step, seen) of the checkpoint loaded into the networks, optimizers and mode; (0, 0) for a new run."""
    if state is None:
        return 0, 0
    try:
        counters = ckpt_io.restore_run(state, {k: nets[k] for k in ("G", "G_ema", "D_image", "D_video")},
                                       {k: nets[k] for k in ("opt_G", "opt_D")}, path)
    except ckpt_io.CheckpointError as e:
        raise TrainingError(str(e)) from None
    mode.restore(state)
    return counters


def _logger(cfg: Config, out: Path, device, rank: int, world: int, resume: bool, start_step: int, resumed_from, skipped,
            dataset, mode: TrainingMode, nets: Dict[str, Any], notes: List[str]) -> RunLogger:
    """The run's logger, with its config saved and its first lines written (and the real clips, once)."""
    G, D = nets["G"], (nets["D_image"], nets["D_video"])
    logger = RunLogger(out, enabled=rank == 0, resume=resume, resume_step=start_step)
    if resumed_from is not None:
        for path, reason in skipped:
            logger.text(f"--resume: skipped {path.name}: {reason}")
        logger.text(f"--resume: continuing from {resumed_from} (step {start_step})")
    logger.save_config(cfg, extra={"c_dim": G.c_dim, "class_names": list(dataset.class_names), "world_size": world})
    logger.text(f"reelgan: {cfg.name} on {device} x{world}, data {cfg.data.source} "
                f"({len(dataset)} videos, {mode.describe(G.c_dim)}), G {_count(G) / 1e6:.2f}M params, "
                f"D {sum(map(_count, D)) / 1e6:.2f}M, precision {cfg.train.precision}, "
                f"{'compiled main phases (R1 eager)' if cfg.train.compile else 'eager'}, start step {start_step}, "
                f"{cpu_threads.describe()}")
    for line in notes:
        logger.text(line)
    mode.announce(logger.text)                                         # mode, encoders, LPIPS backbone kind
    if rank == 0 and start_step == 0:                                   # the real clips, once, beside the samples
        reals, captions = real_grid(dataset, cfg.train.sample_seeds, cfg.train.sample_frames)
        logger.reals(reals, cfg.data.fps, captions)
    return logger


def _augmentation(cfg: Config, state: Optional[Dict]) -> Tuple[ClipAugment, Optional[AdaptiveAugment]]:
    """The clip augmentation and, with loss.augment_target, ADA (its p and signs restored on resume)."""
    augment = ClipAugment(cfg.loss.augment, cfg.loss.augment_prob)
    ada = None
    if cfg.loss.augment_target is not None:
        ada = make_ada(cfg, augment)
        if state is not None and state.get("augment"):
            augment.prob = float(state["augment"]["p"])
            ada.signs = list(state["augment"]["signs"])
    return augment, ada


def _loader(cfg: Config, dataset, device, rank: int, world: int, start_step: int) -> torch.utils.data.DataLoader:
    """Batches keyed by step (StepBatchSampler), so a resumed run draws what the stopped one would have."""
    workers = cfg.data.workers if cfg.data.workers >= 0 else auto_workers(cfg.data.source, device)
    return torch.utils.data.DataLoader(
        KeyedDataset(dataset), num_workers=workers, pin_memory=device.type == "cuda",
        batch_sampler=StepBatchSampler(len(dataset), cfg.train.batch // world, cfg.train.seed, rank, start_step, None),
        persistent_workers=False, prefetch_factor=4 if workers > 0 else None)


def weights_checksum(module: torch.nn.Module) -> float:
    """A float64 fingerprint of all parameters (sum of values and of squares, position-weighted)."""
    total = 0.0
    for i, p in enumerate(module.parameters()):
        v = p.detach().double().flatten()
        total += float(v.sum()) + float((v * v).sum()) * (i + 1) * 1e-3
    return total


def _count(m) -> int:
    return sum(p.numel() for p in m.parameters())
