"""YOLO interop: ultralytics trains on the folder `generate.py --labels yolo --dataset` writes, and
`reelgan-analyze --detector ultralytics` runs end to end with its tracker. Untrained nano models built from
their YAML: nothing is downloaded (YOLO_OFFLINE; plots off, so no font either)."""
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="reelgan-yolo-cfg-"))   # not the user's ~/.config

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from gan.config import load_config  # noqa: E402
from gan.analysis.detect import Detection  # noqa: E402
from gan.analysis.yolo import DetectorTracks, UltralyticsDetector  # noqa: E402
from gan.networks import build_generator  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# ByteTrack with every threshold at 0: an untrained model's boxes are all low-confidence, and the test is about
# the plumbing (boxes -> ultralytics' tracker -> track ids -> the analysis), not the model.
LOW_TRACKER = {"tracker_type": "bytetrack", "track_high_thresh": 0.0, "track_low_thresh": 0.0,
               "new_track_thresh": 0.0, "track_buffer": 30, "match_thresh": 0.8, "fuse_score": True}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Clips + labels + the ultralytics folder from generate.py (a tiny layered G with opaque sprites), and a
    nano YOLO trained on that folder for one epoch on CPU."""
    import generate
    from gan.export import KIND
    from gan import checkpoint as ckpt_io
    tmp = tmp_path_factory.mktemp("yolo")
    cfg = load_config(str(ROOT / "configs" / "tiny.yaml"), {"G": {"objects": 2}, "data": {"channels": 1}})
    torch.manual_seed(0)
    G = build_generator(cfg)
    with torch.no_grad():
        G.sprite_blocks[-1].torgb.bias[-1] = 8.0
    ckpt_io.save_atomic({"format_version": ckpt_io.FORMAT_VERSION, "kind": KIND, "config": cfg.to_dict(),
                         "c_dim": 0, "class_names": [], "step": 0, "G_ema": G.state_dict()}, tmp / "G.pt")
    res = CliRunner().invoke(generate.cli, ["--checkpoint", str(tmp / "G.pt"), "--outdir", str(tmp / "clips"),
                                            "--seeds", "0-4", "--frames", "8", "--labels", "yolo",
                                            "--dataset", str(tmp / "ds")])
    assert res.exit_code == 0, res.output
    from ultralytics import YOLO
    model = YOLO("yolov8n.yaml")                              # untrained, from the packaged model YAML
    metrics = model.train(data=str(tmp / "ds" / "data.yaml"), epochs=1, imgsz=32, batch=8, workers=0,
                          device="cpu", plots=False, amp=False, project=str(tmp / "runs"), name="smoke",
                          exist_ok=True, verbose=False)
    tracker = tmp / "low_bytetrack.yaml"
    tracker.write_text(yaml.safe_dump(LOW_TRACKER))
    return {"tmp": tmp, "metrics": metrics, "weights": tmp / "runs" / "smoke" / "weights" / "last.pt",
            "tracker": tracker}


def test_ultralytics_trains_one_epoch_on_the_exported_folder(exported):
    # The 1-epoch smoke train (about 3 s on 2 CPU cores): the folder, its data.yaml and its labels are accepted.
    assert exported["weights"].is_file()
    assert "metrics/mAP50(B)" in exported["metrics"].results_dict
    assert not list(Path(os.environ["YOLO_CONFIG_DIR"]).rglob("*.ttf")), "a font was fetched: a plotting path ran"


def test_detector_tracks_keep_the_detectors_ids():
    def det(x, tid):
        return Detection(box=(x, 0, x + 4, 4), center=(x + 2, 2), area=16, track_id=tid)
    tracks = DetectorTracks().track([[det(0, 7), det(10, 3)], [det(1, 7), det(20, None)], [det(11, 3)]], 32)
    assert [t.id for t in tracks] == [3, 7]
    assert [p.frame for p in tracks[0].points] == [0, 2] and [p.frame for p in tracks[1].points] == [0, 1]
    assert tracks[0].points[1].detection == 0


def test_ultralytics_detector_tracks_a_clip(exported):
    det = UltralyticsDetector(exported["weights"], conf=0.0, tracker=str(exported["tracker"]))
    frames = np.zeros((5, 32, 32, 3), np.uint8)
    frames[:, 8:20, 8:16] = 255
    out = det.detect(frames)
    assert len(out) == 5 and all(isinstance(d, Detection) for f in out for d in f)
    ids = {d.track_id for f in out for d in f} - {None}
    assert ids, "ultralytics' tracker gave no track ids"
    # a new clip starts a new tracker: ids restart rather than carry on from the previous clip
    again = {d.track_id for f in det.detect(frames) for d in f} - {None}
    assert min(again) == min(ids)


def test_analyze_runs_end_to_end_with_the_ultralytics_detector(exported):
    from gan.analysis.cli import analyze_cli
    out = exported["tmp"] / "analysis"
    res = CliRunner().invoke(analyze_cli, ["--videos", str(exported["tmp"] / "clips"), "--detector", "ultralytics",
                                           "--weights", str(exported["weights"]), "--conf", "0",
                                           "--tracker", str(exported["tracker"]), "--num", "2", "--frames", "6",
                                           "--annotate", "1", "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "analysis.json").read_text())
    assert report["detector"].startswith("UltralyticsDetector(") and report["tracker"] == "DetectorTracks()"
    assert len(report["clips"]) == 2 and report["aggregate"]["tracks_per_clip"] > 0
    assert (out / "annotated.mp4").is_file()


def test_missing_weights_fail_in_one_line_naming_the_file(tmp_path):
    from gan.analysis.cli import analyze_cli
    missing = tmp_path / "nowhere" / "best.pt"
    res = CliRunner().invoke(analyze_cli, ["--data", "digits", "--resolution", "32", "--num", "1",
                                           "--detector", "ultralytics", "--weights", str(missing)])
    assert res.exit_code == 2
    assert len(res.output.strip().splitlines()) == 1 and str(missing) in res.output
    res = CliRunner().invoke(analyze_cli, ["--data", "digits", "--resolution", "32", "--detector", "ultralytics"])
    assert res.exit_code == 2 and "--weights" in res.output
