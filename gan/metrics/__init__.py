"""Video quality metrics: distances between generated and real clips.

Standard metrics with published weights: FVD (I3D, 16 and 128 frames), per-frame FID and KID (Inception),
KVD; offline metrics for the built-in datasets with reelgan's own feature network (FVD-digits-offline, ...).
Command line: `reelgan-metrics` / `python -m gan.metrics`. What is in a clip (objects, tracks, identity,
motion) is the analysis, apart from these: gan/analysis.

Public API:
    compute_metrics(metric_ids, fake, real, resolution, MetricOptions(...)) -> report dict
    GeneratorClips(checkpoint) / FolderClips(folder) / DatasetClips('digits' | path)   clip sources
        (gan/clip_sources.py, shared with the analysis)
    frechet_distance(mu1, s1, mu2, s2), kernel_distance(real, fake), mmd2_unbiased(x, y), FeatureStats
    MissingWeightsError, resolve_weights, I3D_WEIGHTS, INCEPTION_WEIGHTS
"""
from gan.clip_sources import ClipSource, ClipSourceError, ClipSpec, DatasetClips, FolderClips, GeneratorClips
from gan.metrics.distances import FeatureStats, frechet_distance, kernel_distance, mmd2_unbiased
from gan.metrics.evaluate import METRICS, MetricError, MetricOptions, compute_metrics
from gan.metrics.published_weights import I3D_WEIGHTS, INCEPTION_WEIGHTS, MissingWeightsError, resolve_weights

__all__ = [
    "ClipSource", "ClipSourceError", "ClipSpec", "DatasetClips", "FolderClips", "GeneratorClips", "FeatureStats",
    "frechet_distance", "kernel_distance", "mmd2_unbiased", "METRICS", "MetricError", "MetricOptions",
    "compute_metrics", "I3D_WEIGHTS", "INCEPTION_WEIGHTS", "MissingWeightsError", "resolve_weights",
]
