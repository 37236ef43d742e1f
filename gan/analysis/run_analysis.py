"""Analyse N clips from any clip source: the plain function behind `reelgan-analyze` and bench/quality.py.

Writes `analysis.json` (per-clip reports with every track, the aggregate, what was used) and
`annotated.mp4` (the first clips with boxes, track ids and labels) when an output folder is given.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Dict, Optional

from gan.analysis.analyzer import AnalysisConfig, ClipAnalyzer, aggregate
from gan.clip_sources import ClipSource, ClipSpec


def run_analysis(source: ClipSource, resolution: int, dataset: Optional[str] = None, num: int = 64,
                 frames: int = 16, seed: int = 0, expected_objects: Optional[int] = None, stride: int = 1,
                 outdir: Optional[str] = None, annotate: int = 16, progress: bool = True, detector=None,
                 labeler=None, batch: int = 8, tracker=None) -> Dict:
    """Report dict with 'aggregate', 'clips' and a one-line 'summary'.

    dataset: 'digits' / 'shapes' selects the object classifier (None and no `labeler`: identity and
    recognisability are not scored unless the detector labels its boxes itself).
    """
    from tqdm.auto import tqdm
    t0 = time.time()
    if labeler is None and dataset is not None:
        from gan.analysis.classifier import ObjectLabeler
        labeler = ObjectLabeler(dataset)
    config = AnalysisConfig(expected_objects=expected_objects, stride=stride)
    analyzer = ClipAnalyzer(labeler, detector, tracker, config=config)
    spec = ClipSpec(frames=frames, resolution=resolution, stride=stride)
    reports, kept = [], []
    with tqdm(total=num, desc="analyse clips", unit="clip", disable=not progress, leave=False) as bar:
        for batch_clips in source.clips(num, spec, seed=seed, batch=batch):      # [B, T, H, W, 3] uint8
            for clip in batch_clips:
                reports.append(analyzer.analyze(clip))
                if len(kept) < annotate:
                    kept.append(clip)
            bar.update(len(batch_clips))
    agg = aggregate(reports)
    report = {
        "reelgan_analysis": 1,
        "source": source.describe(),
        "dataset": dataset,
        "clips_spec": asdict(spec),
        "seed": seed,
        "config": asdict(config),
        "detector": repr(analyzer.detector),
        "tracker": repr(analyzer.tracker),
        "classifier": labeler.describe() if hasattr(labeler, "describe") else None,
        "aggregate": agg,
        "clips": reports,
        "seconds": round(time.time() - t0, 1),
    }
    report["summary"] = summary_line(agg)
    if outdir:
        out = Path(outdir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "analysis.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
        if kept:
            from gan.analysis.annotate import write_annotated
            write_annotated(out / "annotated.mp4", kept, reports, max_clips=annotate)
    return report


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def summary_line(agg: Dict) -> str:
    return (f"{agg['clips']} clips: tracks/clip {agg['tracks_per_clip']:.2f} "
            f"({agg['objects_per_clip']:.2f} recognised objects), persistence {_fmt(agg['persistence'])}, "
            f"count {_fmt(agg['count_accuracy'])}, identity {_fmt(agg['identity_consistency'])}, "
            f"recognisability {_fmt(agg['recognisability'])}, motion {_fmt(agg['motion_plausibility'])}, "
            f"clean {agg['clean_clips']:.0%} (vanish {agg['rate_vanish']:.0%}, appear {agg['rate_appear']:.0%}, "
            f"teleport {agg['rate_teleport']:.0%}, identity switch {agg['rate_identity_switch']:.0%})")
