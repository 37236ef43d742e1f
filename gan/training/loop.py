"""The training loop in three parts: `setup` (gan/training/run.py) builds a Run, `step(run)` trains one
iteration, hooks (gan/training/hooks.py) log, sample, measure and checkpoint every so many steps.
`train()` is the three put together, with the end of the run: last checkpoint, last samples, rank check.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch

from gan import checkpoint as ckpt_io
from gan import threads as cpu_threads
from gan.config import Config
from gan.training import distributed as dist_utils
from gan.training.hooks import Hook, call_hooks, default_hooks
from gan.training.modes import step_seed
from gan.training.run import Run, TrainingError, setup, weights_checksum


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


def step(run: Run) -> Dict[str, float]:
    """One training iteration, step index `run.step`: G renders once; D main loss (+ lazy R1 every
    loss.r1_interval steps) and its optimizer step; G main loss and its step; G's running averages, EMA,
    adaptive augmentation. Returns the step's stats (see Run) and adds them to `run.window`."""
    with run.lock:
        cfg, loss, s = run.cfg, run.loss, run.step
        if run.data is None:
            run.data = iter(run.loader)
        data = next(run.data)
        torch.manual_seed(step_seed(cfg.train.seed, run.rank, s, 2))
        gen = torch.Generator().manual_seed(step_seed(cfg.train.seed, run.rank, s, 3))
        batch = run.mode.make_batch(run.G, _to_device(data, run.device), run.device, gen)
        stats = {}
        # One G forward per step: the fakes D learns from are the ones G's loss is taken on (same z,
        # condition, motion and G weights), rendered once with the graph.
        run.G.requires_grad_(True)
        with loss.autocast():
            fake = loss.generate(batch)
        # D phase: main loss every step, R1 every r1_interval steps. G's graph stays out of it (detach).
        run.D_image.requires_grad_(True), run.D_video.requires_grad_(loss.video_on)
        run.opt_D.zero_grad(set_to_none=True)
        stats.update(loss.accumulate_gradients("Dmain", batch, fake=fake.detach()))
        if run.ada is not None:
            run.ada.observe(stats)
        run.scaler_D.unscale_(run.opt_D)  # R1's float32 gradients join the unscaled ones
        if loss.r1_gamma > 0 and s % cfg.loss.r1_interval == 0:
            stats.update(loss.accumulate_gradients("Dreg", batch, gain=cfg.loss.r1_interval))
        dist_utils.all_reduce_grads(run.d_parameters())
        run.scaler_D.step(run.opt_D)
        run.scaler_D.update()
        # G phase.
        run.G.requires_grad_(True), run.D_image.requires_grad_(False), run.D_video.requires_grad_(False)
        run.opt_G.zero_grad(set_to_none=True)
        stats.update(loss.accumulate_gradients("Gmain", batch, fake=fake))
        del fake
        run.scaler_G.unscale_(run.opt_G)
        dist_utils.all_reduce_grads(run.G.parameters())
        run.scaler_G.step(run.opt_G)
        run.scaler_G.update()
        with torch.no_grad():
            run.G.update_avg(batch.z, batch.gen_c, batch.motion, batch.gen_times)   # w_avg and what G centres on
        run.seen += cfg.train.batch
        update_ema(run.G_ema, run.G, ema_beta(cfg, run.seen))
        if run.ada is not None:
            stats["augment/p"] = run.augment.prob                      # the p this step trained with
            if (s + 1) % run.ada.interval == 0:
                run.ada.adjust(lambda v: dist_utils.all_reduce_mean(v, run.device))
        run.step = s + 1
        for k, v in stats.items():
            run.window.setdefault(k, []).append(v)
        return stats


def train(cfg: Config, outdir: str, resume: bool = False, device: str = "cpu", progress: bool = True,
          text_encoder=None, hooks: Optional[Sequence[Hook]] = None, force: bool = False) -> Dict:
    """Train from `cfg` into `outdir` (checkpoints/, samples/, logs) up to cfg.train.steps. Returns a summary.

    `text_encoder`: for cond.mode 'text', an external encoder following gan.conditioning.TextEncoder
    (kept frozen) instead of the built-in one. `hooks`: more hooks, called after the built-in ones
    (log, sample, checkpoint, metrics) and before the time budget's check. `force`: a new run may start in a
    folder that holds an old one (its checkpoints are deleted, its logs rewritten)."""
    run = setup(cfg, outdir, resume=resume, device=device, progress=progress, text_encoder=text_encoder, force=force)
    try:
        return _train(run, progress, hooks)
    finally:
        run.release()                                   # whatever ends the run (an error, Ctrl-C) frees the folder


def _train(run: Run, progress: bool, hooks: Optional[Sequence[Hook]]) -> Dict:
    cfg = run.cfg
    bar = _progress(progress and run.rank == 0, run.step, cfg.train.steps)
    all_hooks = default_hooks(run, bar, extra=hooks)
    try:
        while run.step < cfg.train.steps and run.stop_reason is None:
            moved = cpu_threads.follow()            # a core another program took (or gave back) since the last step
            if moved and run.rank == 0:
                run.logger.text(f"step {run.step}: {moved}")
            stats = step(run)
            bar.update(1)
            call_hooks(run, stats, all_hooks)
        summary = finish(run)
    except (FloatingPointError, ckpt_io.NonFiniteError) as e:
        # Nothing non-finite is ever written: latest.pt and the snapshots stay as they were.
        where = f"the last good checkpoint is {run.last_checkpoint}" if run.last_checkpoint else \
            "no checkpoint was written yet"
        msg = (f"stopped at step {run.step}: {e}; {where} (lower train.g_lr / train.d_lr, or raise loss.r1_gamma, "
               f"and --resume)")
        run.logger.text(msg)
        run.close()
        raise TrainingError(msg) from None
    finally:
        bar.close()
    run.close()
    dist_utils.barrier()
    return summary


def finish(run: Run) -> Dict:
    """The end of a run, as train() and the training room end it: the last checkpoint (unless this step's is
    written), the last sample grid, and with several ranks the check that they hold the same weights. Returns
    train()'s summary; the run stays open (run.close() ends it)."""
    if run.saved_step != run.step or not (run.ckpt_dir / "latest.pt").exists():
        run.save()
    sample_path = run.log_samples() if run.rank == 0 else None
    checksum = weights_checksum(run.G)
    if run.world > 1:  # every rank must end with rank 0's weights; say so in the log, fail loudly if not
        sums = dist_utils.all_gather_floats(checksum, run.device)
        if max(sums) - min(sums) > 1e-6 * max(1.0, abs(checksum)):
            raise TrainingError(f"ranks diverged: G weight checksums {sums}")
        run.logger.text(f"all {run.world} ranks hold identical G weights (checksum {checksum:.6f})")
    return {"step": run.step, "seen": run.seen, "checkpoint": str(run.ckpt_dir / "latest.pt"),
            "samples": str(sample_path), "rank": run.rank, "world_size": run.world, "g_checksum": checksum}


def _to_device(batch: Dict, device) -> Dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


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
