"""Quality metrics during training: every `train.metrics_every` steps (0: off, the default), measure
`train.metrics` on the EMA generator, log them through the run logger (TensorBoard + log.jsonl, as
`metrics/<name>`), and keep `checkpoints/best.pt` for the best value of `train.best_metric` so far.

Metric names: any id of gan.metrics.evaluate.METRICS (e.g. 'fvd-offline'; the published ones need their
weights in the cache, random features are never used here) and the analysis scores (gan/analysis) 'persistence',
'count', 'identity', 'recognisability', 'motion', 'clean' (higher is better). Distances use
`TRAINING_CLIPS` clips per side; the real statistics are computed once and then come from the cache.

best.pt is data only (format_version, config, step, G_ema state, the metric values), loadable by
gan.sampling.load_generator / generate.py / reelgan-metrics.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Optional

from gan import checkpoint as ckpt_io
from gan.metrics.evaluate import METRICS, MetricOptions, compute_metrics

TRAINING_CLIPS = 256                   # clips per side for distances during training
ANALYSIS_CLIPS = 32                    # clips for the analysis scores
ANALYSIS_SCORES = {"persistence": "persistence", "count": "count_accuracy", "identity": "identity_consistency",
                   "recognisability": "recognisability", "motion": "motion_plausibility", "clean": "clean_clips"}


def check_metric_names(names: List[str], best: Optional[str]) -> None:
    """Raise ValueError naming the bad entry (called before the first training step)."""
    known = list(METRICS) + list(ANALYSIS_SCORES)
    for n in names:
        if n not in known:
            raise ValueError(f"unknown metric '{n}' in train.metrics; choose from {', '.join(known)}")
    if best is not None and best not in names:
        raise ValueError(f"train.best_metric '{best}' must be one of train.metrics {names}")


class TrainingMetrics:
    """Created once by the training loop; `due(step)` says when, `run(...)` measures, logs and keeps the best."""

    def __init__(self, cfg, ckpt_dir: Path, device, rank: int, c_dim: int = 0, class_names=()):
        self.cfg, self.ckpt_dir, self.device, self.c_dim = cfg, Path(ckpt_dir), str(device), c_dim
        self.class_names = list(class_names)
        self.every = int(cfg.train.metrics_every)
        self.enabled = self.every > 0 and rank == 0
        self.names = list(cfg.train.metrics)
        self.best_metric = cfg.train.best_metric
        if self.every > 0:
            check_metric_names(self.names, self.best_metric)
            if getattr(getattr(cfg, "cond", None), "mode", "none") != "none":
                raise ValueError("train.metrics_every > 0 works for unconditional and class-conditional models; "
                                 f"cond.mode '{cfg.cond.mode}' needs its conditions to render: set metrics_every: 0")
        self.best_value = self._previous_best()

    def due(self, step: int) -> bool:
        return self.enabled and step % self.every == 0

    def run(self, step: int, seen: int, G_ema, logger) -> Dict[str, float]:
        values = self.measure(G_ema)
        logger.scalars(step, seen, {f"metrics/{k}": v for k, v in values.items()})
        logger.text(f"metrics at step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in values.items()))
        if self.best_metric is not None and self._better(values[self.best_metric]):
            self.best_value = values[self.best_metric]
            self._save_best(step, seen, G_ema, values)
            logger.text(f"new best {self.best_metric} {self.best_value:.4f}: saved {self.ckpt_dir / 'best.pt'}")
        return values

    def measure(self, G_ema) -> Dict[str, float]:
        from gan.clip_sources import DatasetClips, GeneratorClips
        cfg = self.cfg
        fake = GeneratorClips.from_module(G_ema, cfg, self.c_dim, name="training G_ema", device=self.device)
        real = DatasetClips.from_config(cfg.data, content_seed=cfg.train.seed)
        values: Dict[str, float] = {}
        distances = [n for n in self.names if n in METRICS]
        if distances:
            options = MetricOptions(num_real=TRAINING_CLIPS, num_fake=TRAINING_CLIPS, device=self.device,
                                    progress=False)
            report = compute_metrics(distances, fake, real, cfg.data.resolution, options)
            values.update({k: float(r["value"]) for k, r in report["results"].items()})
        scores = [n for n in self.names if n in ANALYSIS_SCORES]
        if scores:
            from gan.analysis.run_analysis import run_analysis
            report = run_analysis(fake, cfg.data.resolution, dataset=real.builtin, num=ANALYSIS_CLIPS,
                                  expected_objects=cfg.data.num_objects if real.builtin else None, progress=False,
                                  annotate=0)
            for n in scores:
                v = report["aggregate"][ANALYSIS_SCORES[n]]
                values[n] = float("nan") if v is None else float(v)
        return values

    def _better(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best_value is None:
            return True
        lower = self.best_metric in METRICS                         # distances: lower is better
        return value < self.best_value if lower else value > self.best_value

    def _save_best(self, step: int, seen: int, G_ema, values: Dict[str, float]) -> None:
        state = ckpt_io.generator_file({"config": self.cfg.to_dict(), "step": step, "c_dim": self.c_dim,
                                        "class_names": self.class_names, "G_ema": ckpt_io.unwrap(G_ema).state_dict()},
                                       self.ckpt_dir / "best.pt", seen=seen, metrics=dict(values),
                                       best_metric=self.best_metric)
        ckpt_io.save_atomic(state, self.ckpt_dir / "best.pt")
        (self.ckpt_dir / "best.json").write_text(json.dumps({"step": step, "metric": self.best_metric,
                                                             "value": self.best_value, "values": values}) + "\n")

    def _previous_best(self) -> Optional[float]:
        """On --resume, the best value so far comes from best.json (same metric only)."""
        path = self.ckpt_dir / "best.json"
        if self.best_metric is None or not path.is_file():
            return None
        try:
            saved = json.loads(path.read_text())
        except ValueError:
            return None
        return float(saved["value"]) if saved.get("metric") == self.best_metric else None
