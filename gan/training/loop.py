"""The training loop: owns optimizers, EMA, logging, samples and checkpoints.

Every random draw of step s (batch indices, clip starts, latents, augmentation) is a function of
(seed, rank, s), so `--resume` continues exactly where a run stopped.
"""
from __future__ import annotations

import contextlib
import copy
import os
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import numpy as np
import torch

from gan import checkpoint as ckpt_io
from gan.conditioning.training import ConditionalTraining
from gan.config import Config, is_builtin
from gan.data import build_dataset, infer_settings
from gan.errors import ReelganError
from gan.networks import build_generator
from gan.metrics.during_training import TrainingMetrics
from gan.training import distributed as dist_utils
from gan.training.logger import RunLogger
from gan.training.modes import PlainMode, step_seed
from losses import AdaptiveAugment, ClipAugment, VideoGANLoss


class TrainingError(ReelganError, RuntimeError):
    pass


class StepBatchSampler(torch.utils.data.Sampler):
    """Yields, for steps start..end-1, the list of (index, step) keys of that step's batch."""

    def __init__(self, num_items: int, batch: int, seed: int, rank: int, start: int, end: int):
        self.num_items, self.batch, self.seed, self.rank, self.start, self.end = num_items, batch, seed, rank, start, end

    def __iter__(self) -> Iterator[List[tuple]]:
        for s in range(self.start, self.end):
            rng = np.random.default_rng(step_seed(self.seed, self.rank, s, 1))
            yield [(int(i), s) for i in rng.integers(0, self.num_items, self.batch)]

    def __len__(self) -> int:
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


def ema_beta(cfg: Config, seen: int) -> float:
    half = cfg.train.ema_kimg * 1000
    if cfg.train.ema_rampup is not None:
        half = min(half, seen * cfg.train.ema_rampup)
    return 0.5 ** (cfg.train.batch / max(half, 1e-8))


@torch.no_grad()
def update_ema(G_ema: torch.nn.Module, G: torch.nn.Module, beta: float) -> None:
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def autocast_for(precision: str, device: torch.device):
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    if precision == "fp16" and device.type != "cuda":
        raise TrainingError("precision 'fp16' needs a CUDA device; use 'bf16' on the CPU")
    return lambda: torch.autocast(device.type, dtype=dtype)


def make_optimizers(cfg: Config, G, D_image, D_video):
    betas = tuple(cfg.train.betas)
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.train.g_lr, betas=betas, eps=1e-8)
    # Lazy R1: the D optimizer's lr and betas are adjusted for the regulariser's extra steps
    # (StyleGAN2, appendix B: c = interval / (interval + 1)).
    ratio = cfg.loss.r1_interval / (cfg.loss.r1_interval + 1) if cfg.loss.r1_gamma > 0 else 1.0
    opt_D = torch.optim.Adam(list(D_image.parameters()) + list(D_video.parameters()), lr=cfg.train.d_lr * ratio,
                             betas=(betas[0] ** ratio, betas[1] ** ratio), eps=1e-8)
    return opt_G, opt_D


def auto_workers(source: str, device: torch.device) -> int:
    """data.workers -1: the built-ins render clips (one worker keeps up); prepared data is a memory copy, done
    in the main process on CPU (a worker would take a core from the step) and by a few workers beside a GPU."""
    if is_builtin(source):
        return 1
    return 0 if device.type == "cpu" else min(4, max(1, (os.cpu_count() or 2) // 2))


def _to_device(batch: Dict, device) -> Dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def train(cfg: Config, outdir: str, resume: bool = False, device: str = "cpu", progress: bool = True,
          text_encoder=None) -> Dict:
    """Train from `cfg` into `outdir` (checkpoints/, samples/, logs). Returns a summary dict.

    `text_encoder`: for cond.mode 'text', an external encoder following gan.conditioning.TextEncoder
    (kept frozen) instead of the built-in one."""

    device = torch.device(device)
    rank, world = dist_utils.init_from_env(device)
    if cfg.train.batch % world:
        raise TrainingError(f"train.batch={cfg.train.batch} must be divisible by the number of processes ({world})")
    out = Path(outdir)
    ckpt_dir = out / "checkpoints"
    latest = ckpt_dir / "latest.pt"
    if resume and not out.is_dir():
        raise TrainingError(f"--resume: the run folder {out} does not exist (a typo?); drop --resume to start "
                            f"a new run there")
    if rank == 0 and not resume and (latest.exists() or any(ckpt_dir.glob("step_*.pt"))):
        raise TrainingError(f"{out} already holds a run ({ckpt_dir}); pass --resume to continue it or choose "
                            f"another --outdir")
    if rank == 0 and resume:  # leftovers of a write that a kill interrupted; the real files are intact
        for tmp in ckpt_dir.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
    resumed_from, state = None, None
    if resume:                                                      # the newest usable checkpoint, or an error
        try:
            resumed_from, state, skipped = ckpt_io.find_resumable(ckpt_dir, map_location=device)
        except ckpt_io.CheckpointError as e:
            raise TrainingError(f"--resume in {out}: {e}") from None
    torch.manual_seed(cfg.train.seed)
    notes = []
    dataset = build_dataset(cfg.data, seed=cfg.train.seed, progress=progress and rank == 0, say=notes.append)
    inferred = infer_settings(cfg, dataset)                  # data.channels / G.objects left to the data
    c_dim = dataset.num_classes if cfg.data.labels else 0

    # ---- the mode's hooks: plain (unconditional / classes) or a conditional mode (gan/conditioning) ----
    if cfg.cond.mode != "none":
        mode = ConditionalTraining(cfg, dataset, device, text_encoder=text_encoder)
    else:
        mode = PlainMode(cfg, device, c_dim)
    c_dim = mode.c_dim
    for m in mode.synced_modules():
        dist_utils.broadcast_module(m)
    G = build_generator(cfg, c_dim).to(device)
    D_image, D_video = (d.to(device) for d in mode.build_discriminators())
    for m in (G, D_image, D_video):
        m.to(memory_format=torch.channels_last)
        dist_utils.broadcast_module(m)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_G, opt_D = make_optimizers(cfg, G, D_image, D_video)
    mode.add_to_optimizer(opt_D)                                       # the built-in text encoder learns with D
    d_params = list(D_image.parameters()) + list(D_video.parameters()) + mode.d_parameters()
    start_step, seen = 0, 0
    modules = {"G": G, "G_ema": G_ema, "D_image": D_image, "D_video": D_video}
    optimizers = {"opt_G": opt_G, "opt_D": opt_D}
    if state is not None:
        try:
            start_step, seen = ckpt_io.restore_run(state, modules, optimizers, resumed_from)
        except ckpt_io.CheckpointError as e:
            raise TrainingError(str(e)) from None
        mode.restore(state)

    logger = RunLogger(out, enabled=rank == 0, resume=resume, resume_step=start_step)
    if resumed_from is not None:
        for path, reason in skipped:
            logger.text(f"--resume: skipped {path.name}: {reason}")
        logger.text(f"--resume: continuing from {resumed_from} (step {start_step})")
    logger.save_config(cfg, extra={"c_dim": c_dim, "class_names": list(dataset.class_names), "world_size": world})
    condition = mode.condition_words()
    logger.text(f"reelgan: {cfg.name} on {device} x{world}, data {cfg.data.source} ({len(dataset)} videos, "
                f"{condition}), G {_count(G) / 1e6:.2f}M params, D {(_count(D_image) + _count(D_video)) / 1e6:.2f}M, "
                f"precision {cfg.train.precision}, "
                f"{'compiled main phases (R1 eager)' if cfg.train.compile else 'eager'}, start step {start_step}")
    for line in notes + [f"inferred from the data: {x}" for x in inferred]:
        logger.text(line)
    mode.announce(logger.text)                                         # mode, encoders, LPIPS backbone kind

    compiled = (lambda m: torch.compile(m)) if cfg.train.compile else (lambda m: m)
    autocast = autocast_for(cfg.train.precision, device)
    # fp16 (CUDA) needs loss scaling; bf16 has float32's range and does not.
    scaler_G = torch.amp.GradScaler(device.type, enabled=cfg.train.precision == "fp16")
    scaler_D = torch.amp.GradScaler(device.type, enabled=cfg.train.precision == "fp16")
    augment = ClipAugment(cfg.loss.augment, cfg.loss.augment_prob)
    ada = None
    if cfg.loss.augment_target is not None:
        ada = AdaptiveAugment(augment, cfg.loss.augment_target, cfg.loss.augment_speed_kimg,
                              cfg.loss.augment_interval, cfg.train.batch)
        if state is not None and state.get("augment"):
            augment.prob = float(state["augment"]["p"])
            ada.signs = list(state["augment"]["signs"])
    main_G = VideoGANLoss(compiled(G), compiled(D_image), compiled(D_video), augment, cfg.D.image_frames,
                          cfg.loss.image_weight, cfg.loss.video_weight, cfg.loss.r1_gamma, autocast, scaler_G.scale)
    main_D = VideoGANLoss(main_G.G, main_G.D_image, main_G.D_video, augment, cfg.D.image_frames,
                          cfg.loss.image_weight, cfg.loss.video_weight, cfg.loss.r1_gamma, autocast, scaler_D.scale)
    reg_loss = VideoGANLoss(G, D_image, D_video, augment, cfg.D.image_frames, r1_gamma=cfg.loss.r1_gamma)
    main_G, main_D, reg_loss = mode.loss(main_G), mode.loss(main_D), mode.loss(reg_loss)   # + conditional terms

    per_rank = cfg.train.batch // world
    workers = cfg.data.workers if cfg.data.workers >= 0 else auto_workers(cfg.data.source, device)
    loader = torch.utils.data.DataLoader(
        KeyedDataset(dataset), num_workers=workers, pin_memory=device.type == "cuda",
        batch_sampler=StepBatchSampler(len(dataset), per_rank, cfg.train.seed, rank, start_step, cfg.train.steps),
        persistent_workers=False, prefetch_factor=4 if workers > 0 else None)

    # ---- quality-metrics hook (gan/metrics/during_training.py): off unless train.metrics_every > 0 ----
    quality = TrainingMetrics(cfg, ckpt_dir, device, rank, c_dim, dataset.class_names)

    def sample_grid():
        return mode.sample_grid(G_ema, dataset, cfg.train.sample_seeds, cfg.train.sample_frames)
    bar = _progress(progress and rank == 0, start_step, cfg.train.steps)
    acc: Dict[str, List[float]] = {}
    t_last, step = time.time(), start_step
    t_start, stopped_at = t_last, None
    budget_s = cfg.train.max_minutes * 60 if cfg.train.max_minutes else None
    last_ckpt: Optional[Path] = resumed_from
    try:
        for step, data in enumerate(loader, start=start_step):
            torch.manual_seed(step_seed(cfg.train.seed, rank, step, 2))
            gen = torch.Generator().manual_seed(step_seed(cfg.train.seed, rank, step, 3))
            batch = mode.make_batch(G, _to_device(data, device), device, gen)
            stats = {}
            # One G forward per step: the fakes D learns from are the ones G's loss is taken on (same z,
            # condition, motion and G weights), rendered once with the graph.
            _phase(G, True)
            with autocast():
                fake = main_G.generate(batch)
            # D phase: main loss every step, R1 every r1_interval steps. G's graph stays out of it (detach).
            _phase(D_image, True), _phase(D_video, True)
            opt_D.zero_grad(set_to_none=True)
            stats.update(main_D.accumulate_gradients("Dmain", batch, fake=fake.detach()))
            if ada is not None:
                ada.observe(stats)
            scaler_D.unscale_(opt_D)  # R1's float32 gradients join the unscaled ones
            if cfg.loss.r1_gamma > 0 and step % cfg.loss.r1_interval == 0:
                stats.update(reg_loss.accumulate_gradients("Dreg", batch, gain=cfg.loss.r1_interval))
            dist_utils.all_reduce_grads(d_params)
            scaler_D.step(opt_D)
            scaler_D.update()
            # G phase.
            _phase(G, True), _phase(D_image, False), _phase(D_video, False)
            opt_G.zero_grad(set_to_none=True)
            stats.update(main_G.accumulate_gradients("Gmain", batch, fake=fake))
            del fake
            scaler_G.unscale_(opt_G)
            dist_utils.all_reduce_grads(G.parameters())
            scaler_G.step(opt_G)
            scaler_G.update()
            with torch.no_grad():
                G.update_avg(batch.z, batch.gen_c, batch.motion, batch.gen_times)   # w_avg and what G centres on
            seen += cfg.train.batch
            update_ema(G_ema, G, ema_beta(cfg, seen))
            if ada is not None:
                stats["augment/p"] = augment.prob                       # the p this step trained with
                if (step + 1) % ada.interval == 0:
                    ada.adjust(lambda v: dist_utils.all_reduce_mean(v, device))
            for k, v in stats.items():
                acc.setdefault(k, []).append(v)
            done = step + 1
            bar.update(1)
            if done % cfg.train.log_every == 0 or done == cfg.train.steps:
                now = time.time()
                n = len(next(iter(acc.values())))
                scalars = {k: dist_utils.all_reduce_mean(float(np.mean(v)), device) for k, v in acc.items()}
                scalars["perf/steps_per_s"] = n / max(now - t_last, 1e-9)
                scalars["perf/clips_per_s"] = scalars["perf/steps_per_s"] * cfg.train.batch
                logger.scalars(done, seen, scalars)
                bar.set_postfix_str(f"G {scalars.get('G/loss', 0):.3f} D {scalars.get('D/loss', 0):.3f} "
                                    f"{scalars['perf/steps_per_s']:.2f} it/s")
                acc, t_last = {}, now
            if rank == 0 and cfg.train.sample_every and done % cfg.train.sample_every == 0 and done < cfg.train.steps:
                logger.video(done, sample_grid(), fps=cfg.data.fps)
            if done % cfg.train.checkpoint_every == 0 and done < cfg.train.steps:
                last_ckpt = _save(cfg, ckpt_dir, done, seen, modules, optimizers, c_dim, dataset, rank, mode,
                                  _augment_state(augment, ada))
            if quality.due(done):                                      # logs metrics/*, keeps checkpoints/best.pt
                quality.run(done, seen, G_ema, logger)
            if budget_s is not None and done < cfg.train.steps and \
                    dist_utils.all_reduce_mean(float(time.time() - t_start > budget_s), device) > 0:
                stopped_at = done                                      # every rank stops at the same step
                logger.text(f"time budget train.max_minutes={cfg.train.max_minutes} reached at step {done}; "
                            f"--resume continues towards {cfg.train.steps}")
                break
        final = stopped_at or cfg.train.steps
        if start_step < final or not latest.exists():
            last_ckpt = _save(cfg, ckpt_dir, final, seen, modules, optimizers, c_dim, dataset, rank, mode,
                              _augment_state(augment, ada))
    except (FloatingPointError, ckpt_io.NonFiniteError) as e:
        # Nothing non-finite is ever written: latest.pt and the snapshots stay as they were.
        where = f"the last good checkpoint is {last_ckpt}" if last_ckpt else "no checkpoint was written yet"
        msg = (f"stopped at step {step}: {e}; {where} (lower train.g_lr / train.d_lr, or raise loss.r1_gamma, "
               f"and --resume)")
        logger.text(msg)
        logger.close()
        raise TrainingError(msg) from None
    finally:
        bar.close()
    sample_path = None
    if rank == 0:
        sample_path = logger.video(final, sample_grid(), fps=cfg.data.fps)
    checksum = weights_checksum(G)
    if world > 1:  # every rank must end with rank 0's weights; say so in the log, fail loudly if not
        sums = dist_utils.all_gather_floats(checksum, device)
        if max(sums) - min(sums) > 1e-6 * max(1.0, abs(checksum)):
            raise TrainingError(f"ranks diverged: G weight checksums {sums}")
        logger.text(f"all {world} ranks hold identical G weights (checksum {checksum:.6f})")
    logger.close()
    dist_utils.barrier()
    return {"step": final, "seen": seen, "checkpoint": str(latest), "samples": str(sample_path), "rank": rank,
            "world_size": world, "g_checksum": checksum}


def weights_checksum(module: torch.nn.Module) -> float:
    """A float64 fingerprint of all parameters (sum of values and of squares, position-weighted)."""
    total = 0.0
    for i, p in enumerate(module.parameters()):
        v = p.detach().double().flatten()
        total += float(v.sum()) + float((v * v).sum()) * (i + 1) * 1e-3
    return total


def _augment_state(augment: ClipAugment, ada: Optional[AdaptiveAugment]) -> Dict:
    """The adaptive augmentation's state: its probability and the signs gathered since the last adjustment."""
    return {"p": augment.prob, "signs": list(ada.signs) if ada is not None else []}


def _count(m) -> int:
    return sum(p.numel() for p in m.parameters())


def _phase(module, on: bool):
    module.requires_grad_(on)


def _save(cfg, ckpt_dir: Path, step, seen, modules, optimizers, c_dim, dataset, rank, mode,
          augment_state: Optional[Dict] = None):
    # Every process checks its own weights, so a non-finite state stops all ranks together (not rank 0 alone,
    # which would leave the others waiting at the barrier below).
    weights = {k: ckpt_io.unwrap(m).state_dict() for k, m in modules.items()}
    device = next(modules["G"].parameters()).device
    if dist_utils.all_reduce_mean(float(bool(ckpt_io.nonfinite(weights))), device) > 0:
        ckpt_io.check_finite(weights, "the model")
        raise ckpt_io.NonFiniteError("another process's model holds non-finite (NaN/Inf) values")
    if rank == 0:
        extra = {"c_dim": c_dim, "class_names": list(dataset.class_names), "augment": augment_state,
                 **mode.checkpoint_extra()}                            # a conditional mode: text encoder + vocab
        state = ckpt_io.run_state(cfg.to_dict(), step, seen, modules, optimizers, **extra)
        ckpt_io.save_run(state, ckpt_dir, cfg.train.keep_checkpoints)
    dist_utils.barrier()
    return ckpt_dir / "latest.pt"


class _NullBar:
    def update(self, n):
        pass

    def set_postfix_str(self, s):
        pass

    def close(self):
        pass


def _progress(enabled: bool, start: int, total: int):
    if not enabled:
        return _NullBar()
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True)
