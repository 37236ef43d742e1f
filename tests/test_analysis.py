"""Clip analysis (gan/analysis): real clips score clean; planted defects built from MovingDigits renders
(an object vanishes, a digit changes identity mid-track, objects teleport) are flagged; the detector is
pluggable; the tracker survives occlusions; reports, annotated mp4 and the CLI are deterministic."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from gan.data.builtin import MovingDigits
from gan.analysis.analyzer import AnalysisConfig, ClipAnalyzer, aggregate
from gan.analysis.classifier import ObjectLabeler
from gan.analysis.detect import CallableDetector, Detection, Detector, ThresholdDetector
from gan.analysis.track import Tracker

RES, T = 32, 16


@pytest.fixture(scope="module")
def labeler():
    return ObjectLabeler("digits", allow_train=False)          # the shipped weights; never trains in tests


@pytest.fixture(scope="module")
def digits():
    return MovingDigits(resolution=RES, num_videos=2000, video_frames=48, num_objects=2, seed=11)


def analyzer(labeler, **kw):
    return ClipAnalyzer(labeler, config=AnalysisConfig(expected_objects=2, **kw))


def boxes(ds, index, frames=range(T), start=0):
    """Per object: [T, 4] integer boxes (x0, y0, x1, y1) covering its sprite (size + 1 for sub-pixel)."""
    out = []
    for obj in ds.factors(index)["objects"]:
        p = np.floor(obj["position"][[start + k for k in frames]]).astype(int)
        out.append(np.concatenate([p, p + obj["size"] + 1], axis=1))
    return out


def separated(ds, index, start=0, gap=1):
    """True when the two objects never come within `gap` px of each other in frames start..start+T-1."""
    a, b = boxes(ds, index, start=start)
    dx = np.maximum(a[:, 0] - b[:, 2], b[:, 0] - a[:, 2])
    dy = np.maximum(a[:, 1] - b[:, 3], b[:, 1] - a[:, 3])
    return bool(np.all(np.maximum(dx, dy) >= gap))


def clean_indices(ds, n):
    """Videos whose two digits never touch (2% of them: digits are 42% of the frame), so an edit to one
    object leaves the other intact."""
    found = []
    for i in range(len(ds)):
        if separated(ds, i):
            found.append(i)
            if len(found) == n:
                break
    return found


# ----------------------------------------------------------------------------------------------------------
# Real data is clean


def test_real_clips_score_near_perfect(labeler, digits):
    a = analyzer(labeler)
    reports = [a.analyze(digits.render(i, 0, T)) for i in range(20)]   # crossing objects included
    agg = aggregate(reports)
    assert agg["clean_clips"] >= 0.85, [r["flags"] for r in reports]
    assert agg["persistence"] > 0.98 and agg["count_accuracy"] > 0.9
    assert agg["identity_consistency"] > 0.95 and agg["recognisability"] > 0.85
    assert agg["motion_plausibility"] > 0.95
    assert agg["rate_vanish"] == agg["rate_appear"] == agg["rate_teleport"] == 0


def test_clips_without_recognisable_objects_score_zero(labeler):
    # What an untrained generator draws: a static wash and a few specks. A blob that sits still must not
    # earn persistence or motion points; nothing in it is an object.
    yy, xx = np.mgrid[:RES, :RES]
    wash = np.exp(-((xx - 14) ** 2 + (yy - 17) ** 2) / (2 * 9.0 ** 2)) * 0.55 + 0.08 * np.sin(xx / 3.0)
    frames = np.repeat((np.clip(wash, 0, 1) * 255).astype(np.uint8)[None, :, :, None], T, 0).repeat(3, -1)
    report = analyzer(labeler).analyze(frames)
    assert report["num_tracks"] >= 1 and report["num_objects"] == 0, report["tracks"]
    assert report["persistence"] == 0.0 and report["motion_plausibility"] == 0.0
    assert report["identity_consistency"] == 0.0 and report["count_accuracy"] == 0.0 and not report["clean"]


def test_classifier_was_checked_on_the_held_out_split(labeler):
    held_out = labeler.describe()["held_out"]
    assert held_out["test_accuracy"] > 0.9 and held_out["num_test_objects"] > 200


# ----------------------------------------------------------------------------------------------------------
# Planted defects


def test_flags_a_vanishing_object(labeler, digits):
    i = clean_indices(digits, 1)[0]
    clip = digits.render(i, 0, T)
    box = boxes(digits, i)[0]
    for k in range(T // 2, T):                                 # object 0 is erased from frame 8 on
        x0, y0, x1, y1 = box[k]
        clip[k, max(0, y0):y1, max(0, x0):x1] = 0
    report = analyzer(labeler).analyze(clip)
    assert "vanish" in report["flags"] and not report["clean"]
    assert report["persistence"] < 0.9
    assert analyzer(labeler).analyze(digits.render(i, 0, T))["clean"]   # the untouched clip is clean


def _other_digit(ds, class_id):
    """(index, object) of a video whose first object shows another digit than `class_id`."""
    for j in range(len(ds)):
        obj = ds.factors(j)["objects"][0]
        if obj["class_id"] != class_id and separated(ds, j):
            return j, obj
    raise AssertionError("no other digit found")


def test_flags_a_digit_that_changes_identity(labeler, digits):
    i = clean_indices(digits, 1)[0]
    clip = digits.render(i, 0, T)
    target = digits.factors(i)["objects"][0]
    j, donor = _other_digit(digits, target["class_id"])
    donor_clip = digits.render(j, 0, T)
    a, d = boxes(digits, i)[0], boxes(digits, j)[0]
    for k in range(T // 2, T):                                 # swap the digit, keep the trajectory
        x0, y0, x1, y1 = a[k]
        sprite = donor_clip[k, d[k, 1]:d[k, 3], d[k, 0]:d[k, 2]].copy()
        region = clip[k, y0:y1, x0:x1]
        region[:] = 0
        h, w = min(region.shape[0], sprite.shape[0]), min(region.shape[1], sprite.shape[1])
        region[:h, :w] = sprite[:h, :w]
    report = analyzer(labeler).analyze(clip)
    assert "identity_switch" in report["flags"], report["tracks"][0]["points"]
    assert report["identity_consistency"] < 0.9
    assert "vanish" not in report["flags"]                     # the object itself stayed


def test_flags_teleporting_objects(labeler, digits):
    for i in clean_indices(digits, 40):
        first = boxes(digits, i, range(T // 2))
        later = boxes(digits, i, range(T // 2), start=30)
        jump = max(np.abs(f[-1, :2] - l[0, :2]).max() for f, l in zip(first, later))
        if jump > 0.4 * RES and separated(digits, i, start=30 - T // 2):
            break
    else:
        raise AssertionError("no clip with a long jump found")
    clip = np.concatenate([digits.render(i, 0, T // 2), digits.render(i, 30, T // 2)])   # jump at frame 8
    report = analyzer(labeler).analyze(clip)
    assert "teleport" in report["flags"], report["events"]
    assert analyzer(labeler).analyze(digits.render(i, 0, T))["clean"]


# ----------------------------------------------------------------------------------------------------------
# Detector interface, tracker


def test_pluggable_detector_with_its_own_labels(digits):
    i = clean_indices(digits, 1)[0]
    truth = boxes(digits, i)
    names = [o["class_name"] for o in digits.factors(i)["objects"]]
    frame_no = iter(range(T))

    def oracle(frame):                                         # a "perfect YOLO": boxes, scores, labels
        k = next(frame_no)
        return [(*b[k], 0.99, n) for b, n in zip(truth, names)]

    det = CallableDetector(oracle)
    assert isinstance(det, Detector) and isinstance(ThresholdDetector(), Detector)
    report = ClipAnalyzer(None, det, config=AnalysisConfig(expected_objects=2)).analyze(digits.render(i, 0, T))
    assert report["clean"] and report["num_tracks"] == 2
    assert sorted(t["label"] for t in report["tracks"]) == sorted(names)
    with pytest.raises(TypeError, match="detect"):
        ClipAnalyzer(None, detector=object())


def test_tracker_keeps_both_objects_through_a_crossing():
    """Two squares cross (one blob for a few frames) and separate: two full tracks, no events."""
    frames = np.zeros((T, RES, RES, 3), np.uint8)
    for k in range(T):
        for x in (2 + 1.5 * k, 26 - 1.5 * k):
            frames[k, 12:18, int(x):int(x) + 5] = 255
    dets = ThresholdDetector().detect(frames)
    assert min(len(d) for d in dets) == 1                      # they do merge
    tracks = Tracker().track(dets, RES)
    assert len(tracks) == 2 and all(len(t.points) == T for t in tracks)
    report = ClipAnalyzer(None, config=AnalysisConfig(expected_objects=2)).analyze(frames)
    assert not {"vanish", "appear", "teleport"} & set(report["flags"])


def test_detector_finds_objects_and_ignores_specks():
    frame = np.zeros((1, RES, RES, 3), np.uint8)
    frame[0, 4:10, 4:10] = 200
    frame[0, 20, 20] = 255                                     # a single-pixel speck
    (dets,) = ThresholdDetector().detect(frame)
    assert len(dets) == 1 and dets[0].box == (4, 4, 10, 10) and dets[0].center == pytest.approx((7.0, 7.0))
    assert isinstance(dets[0], Detection)


# ----------------------------------------------------------------------------------------------------------
# Reports, annotated video, CLI


def test_run_analysis_writes_report_and_annotated_mp4(tmp_path, labeler):
    from gan.clip_sources import DatasetClips
    from gan.analysis.run_analysis import run_analysis
    from gan.video_io import probe_video
    source = DatasetClips("digits", video_frames=32, num_videos=20)
    report = run_analysis(source, RES, dataset="digits", num=4, frames=T, expected_objects=2, outdir=str(tmp_path),
                          annotate=4, progress=False, labeler=labeler)
    saved = json.loads((tmp_path / "analysis.json").read_text())
    assert saved["aggregate"] == report["aggregate"] and len(saved["clips"]) == 4
    assert report["aggregate"]["clean_clips"] >= 0.75
    info = probe_video(tmp_path / "annotated.mp4")
    assert info["frames"] == T and info["width"] >= 2 * 192


def test_analyze_cli_on_checkpoint_and_folder_is_deterministic(tmp_path, tiny_cfg, tiny_G):
    from gan.analysis.cli import analyze_cli
    from gan.sampling import generate
    from gan.checkpoint import FORMAT_VERSION, save_atomic
    ckpt = tmp_path / "tiny.pt"
    save_atomic({"format_version": FORMAT_VERSION, "config": tiny_cfg.to_dict(), "G_ema": tiny_G.state_dict(),
                 "c_dim": 0}, ckpt)
    outputs = []
    for i in range(2):
        result = CliRunner().invoke(analyze_cli, ["--checkpoint", str(ckpt), "--num", "3", "--quiet",
                                                  "--out", str(tmp_path / f"a{i}")])
        assert result.exit_code == 0, result.output
        outputs.append(json.loads((tmp_path / f"a{i}" / "analysis.json").read_text())["aggregate"])
    assert outputs[0] == outputs[1]
    videos = tmp_path / "videos"
    generate(str(ckpt), str(videos), [0, 1, 2], frames=T)
    result = CliRunner().invoke(analyze_cli, ["--videos", str(videos), "--dataset", "shapes", "--num", "3",
                                              "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("3 clips: tracks/clip")
