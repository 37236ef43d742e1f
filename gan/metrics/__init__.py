"""Video quality metrics and clip analysis (issue #3).

Standard metrics with published weights: FVD (I3D, 16 and 128 frames), per-frame FID and KID (Inception),
KVD; offline metrics for the built-in datasets with reelgan's own feature network (FVD-digits-offline, ...);
and an analysis of generated clips (object tracks, persistence, identity, recognisability, motion).
Command lines: `reelgan-metrics` / `python -m gan.metrics`, and `reelgan-analyze`.

Public API:
    compute_metrics(metric_ids, fake, real, resolution, MetricOptions(...)) -> report dict
    GeneratorClips(checkpoint) / FolderClips(folder) / DatasetClips('digits' | path)   clip sources
    frechet_distance(mu1, s1, mu2, s2), kernel_distance(real, fake), mmd2_unbiased(x, y), FeatureStats
    run_analysis(source, resolution, dataset='digits', ...) -> report dict (+ analysis.json, annotated.mp4)
    ClipAnalyzer(labeler, detector, tracker, AnalysisConfig(...)).analyze(frames) -> per-clip report
    Detector (protocol), ThresholdDetector, CallableDetector, Tracker, ObjectLabeler
    MissingWeightsError, resolve_weights, I3D_WEIGHTS, INCEPTION_WEIGHTS
"""
from gan.metrics.analysis import AnalysisConfig, ClipAnalyzer, aggregate
from gan.metrics.classifier import ObjectLabeler
from gan.metrics.clips import ClipSource, ClipSourceError, ClipSpec, DatasetClips, FolderClips, GeneratorClips
from gan.metrics.detect import CallableDetector, Detection, Detector, ThresholdDetector
from gan.metrics.distances import FeatureStats, frechet_distance, kernel_distance, mmd2_unbiased
from gan.metrics.evaluate import METRICS, MetricError, MetricOptions, compute_metrics
from gan.metrics.run_analysis import run_analysis
from gan.metrics.track import Tracker
from gan.metrics.weights import I3D_WEIGHTS, INCEPTION_WEIGHTS, MissingWeightsError, resolve_weights

__all__ = [
    "AnalysisConfig", "ClipAnalyzer", "aggregate", "ObjectLabeler", "ClipSource", "ClipSourceError", "ClipSpec",
    "DatasetClips", "FolderClips", "GeneratorClips", "CallableDetector", "Detection", "Detector",
    "ThresholdDetector", "FeatureStats", "frechet_distance", "kernel_distance", "mmd2_unbiased", "METRICS",
    "MetricError", "MetricOptions", "compute_metrics", "run_analysis", "Tracker", "I3D_WEIGHTS",
    "INCEPTION_WEIGHTS", "MissingWeightsError", "resolve_weights",
]
