"""Analysis of clips: what is in them, read off the pixels (apart from the distances of gan/metrics).

Detect the objects (a threshold detector, any `Detector`, or YOLO through ultralytics), track them, name them with
a small classifier trained on the built-in data, and score what a viewer would notice: tracks, persistence,
identity, recognisability, motion. Also: camera footage scores that need no network (footage.py) and simple
measurements against the built-ins' known factors (measure.py: PSNR, dominant colour, motion direction).
Command line: `reelgan-analyze`.

Public API:
    run_analysis(source, resolution, dataset='digits', ...) -> report dict (+ analysis.json, annotated.mp4)
    ClipAnalyzer(labeler, detector, tracker, AnalysisConfig(...)).analyze(frames) -> per-clip report
    Detector (protocol), ThresholdDetector, CallableDetector, Tracker, ObjectLabeler
"""
from gan.analysis.analyzer import AnalysisConfig, ClipAnalyzer, aggregate
from gan.analysis.classifier import ObjectLabeler
from gan.analysis.detect import CallableDetector, Detection, Detector, ThresholdDetector
from gan.analysis.run_analysis import run_analysis
from gan.analysis.track import Tracker

__all__ = ["AnalysisConfig", "ClipAnalyzer", "aggregate", "ObjectLabeler", "CallableDetector", "Detection",
           "Detector", "ThresholdDetector", "run_analysis", "Tracker"]
