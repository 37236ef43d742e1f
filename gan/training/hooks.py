"""Periodic hooks of the training loop: log, sample, checkpoint, metrics, time budget.

A hook is any object with `every` (steps; 0: never) and `__call__(run, stats)`; `call_hooks` runs it after the
steps that are multiples of `every`, or when its own `due(run)` says so. The built-in ones are created by
`default_hooks`; more can be passed to `train(..., hooks=[...])` or called by code that drives `step()` itself.
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from gan.training.quality import TrainingMetrics
from gan.training import distributed as dist_utils
from gan.training.run import Run


class Hook:
    every: int = 0                                   # run after every `every`-th step (0: never)

    def due(self, run: Run) -> bool:
        return self.every > 0 and run.step % self.every == 0

    def __call__(self, run: Run, stats: Dict[str, float]) -> None:
        raise NotImplementedError


def call_hooks(run: Run, stats: Dict[str, float], hooks: Sequence) -> None:
    """After a step: run each hook that is due, in order."""
    for hook in hooks:
        due = hook.due(run) if hasattr(hook, "due") else hook.every > 0 and run.step % hook.every == 0
        if due:
            hook(run, stats)


class LogHook(Hook):
    """Means of the stats since the last write (over ranks), plus steps/s and clips/s, into the run's logs
    (log.jsonl, TensorBoard) every train.log_every steps and at the last step; the progress bar's summary."""

    def __init__(self, run: Run, bar=None):
        self.every, self.bar = run.cfg.train.log_every, bar
        self.t_last, self.step_last = time.time(), run.step

    def due(self, run: Run) -> bool:
        return super().due(run) or run.step == run.cfg.train.steps

    def __call__(self, run: Run, stats: Dict[str, float]) -> None:
        now = time.time()
        scalars = {k: dist_utils.all_reduce_mean(float(np.mean(v)), run.device) for k, v in run.window.items()}
        scalars["perf/steps_per_s"] = (run.step - self.step_last) / max(now - self.t_last, 1e-9)
        scalars["perf/clips_per_s"] = scalars["perf/steps_per_s"] * run.cfg.train.batch
        run.logger.scalars(run.step, run.seen, scalars)
        if self.bar is not None:
            self.bar.set_postfix_str(f"G {scalars.get('G/loss', 0):.3f} D {scalars.get('D/loss', 0):.3f} "
                                     f"{scalars['perf/steps_per_s']:.2f} it/s")
        run.window = {}
        self.t_last, self.step_last = now, run.step


class SampleHook(Hook):
    """G_ema's sample grid into samples/ every train.sample_every steps (the last step's: train() draws it)."""

    def __init__(self, run: Run):
        self.every = run.cfg.train.sample_every

    def due(self, run: Run) -> bool:
        return run.rank == 0 and super().due(run) and run.step < run.cfg.train.steps

    def __call__(self, run: Run, stats: Dict[str, float]) -> None:
        run.log_samples()


class CheckpointHook(Hook):
    """A checkpoint every train.checkpoint_every steps (the last step's: train() writes it)."""

    def __init__(self, run: Run):
        self.every = run.cfg.train.checkpoint_every

    def due(self, run: Run) -> bool:
        return super().due(run) and run.step < run.cfg.train.steps

    def __call__(self, run: Run, stats: Dict[str, float]) -> None:
        run.save()


class MetricsHook(Hook):
    """Quality metrics of G_ema every train.metrics_every steps (gan/training/quality.py): logged as
    metrics/*, the best so far kept as checkpoints/best.pt."""

    def __init__(self, run: Run):
        self.metrics = TrainingMetrics(run.cfg, run.ckpt_dir, run.device, run.rank, run.c_dim,
                                       run.dataset.class_names)
        self.every = self.metrics.every

    def due(self, run: Run) -> bool:
        return self.metrics.due(run.step)

    def __call__(self, run: Run, stats: Dict[str, float]) -> None:
        self.metrics.run(run.step, run.seen, run.G_ema, run.logger)


class TimeBudget(Hook):
    """Ends the run after train.max_minutes (every rank at the same step); --resume continues it."""

    def __init__(self, run: Run):
        self.every = 1 if run.cfg.train.max_minutes else 0
        self.t_start = time.time()

    def due(self, run: Run) -> bool:
        return super().due(run) and run.step < run.cfg.train.steps

    def __call__(self, run: Run, stats: Dict[str, float]) -> None:
        over = float(time.time() - self.t_start > run.cfg.train.max_minutes * 60)
        if dist_utils.all_reduce_mean(over, run.device) > 0:
            run.stop_reason = "time budget"
            run.logger.text(f"time budget train.max_minutes={run.cfg.train.max_minutes} reached at step "
                            f"{run.step}; --resume continues towards {run.cfg.train.steps}")


def default_hooks(run: Run, bar=None, extra: Optional[Sequence] = None) -> List:
    """train()'s hooks, in order: log, sample, checkpoint, metrics, then `extra`, then the time budget."""
    return [LogHook(run, bar), SampleHook(run), CheckpointHook(run), MetricsHook(run), *(extra or []),
            TimeBudget(run)]
