"""Train on synthetic, test on real (TSTR): the same small detector (an untrained YOLOv8n, 1 class 'digit', from
its YAML, nothing downloaded) trained on (a) real built-in clips with their true boxes, (b) clips of a trained
layered G with the free labels of `generate.py --labels` (gan/labels.py), (c) a few real clips plus the
generated ones, (d) the same few real clips alone (what (c) adds to), each tested on held-out real clips (the
digits 'test' split: digit images disjoint from training, another content seed). The gap between (a) and (b) is
a quality number: how well the generated clips stand in for real ones as training data for a detector.

\b
  python bench/tstr.py --checkpoint runs/default/checkpoints/latest.pt
  python bench/tstr.py --checkpoint G.pt --real 40 --generated 40 --epochs 3 --no-write     # quick look
Writes bench/results/tstr-<date>.json and (unless --no-write) the table between <!-- tstr:start --> and
<!-- tstr:end --> in BENCHMARKS.md. Needs reelgan[yolo]. FVD-offline of the checkpoint is measured beside it.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("YOLO_OFFLINE", "1")


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def real_clips(split: str, seed: int, num: int, frames: int, stride: int, resolution: int):
    """(uint8 frames [T, H, W, 3], ObjectBoxes) of `num` built-in digit clips with their true boxes (class 0)."""
    from gan.data.builtin import MovingDigits
    from gan.labels import ObjectBox
    ds = MovingDigits(resolution, num_videos=max(num, 1), video_frames=frames * stride, seed=seed, split=split)
    for i in range(num):
        boxes = [ObjectBox(t, k + 1, 0, (x0, y0, x1, y1), 1.0)
                 for t, row in enumerate(ds.boxes(i, 0, frames, stride)) for k, _c, x0, y0, x1, y1 in row]
        yield ds.render(i, 0, frames, stride), boxes


def generated_clips(checkpoint: str, num: int, frames: int, stride: int, batch: int = 8):
    """(uint8 frames, ObjectBoxes) of seeds 0..num-1 of a layered checkpoint: its free labels, class 0."""
    from gan.sampling import layered_labels
    from gan.sampling import load_generator
    from gan.video_io import to_uint8
    G, _ = load_generator(checkpoint)
    for i in range(0, num, batch):
        seeds = list(range(i, min(num, i + batch)))
        labels, clips = layered_labels(G, seeds, frames, time_step=float(stride), return_frames=True, fused=False)
        for boxes, clip in zip(labels, clips):
            yield to_uint8(clip.float()), boxes


def write_pool(root: Path, name: str, clips) -> List[str]:
    """Frames as images/<name>/*.png + labels/<name>/*.txt (the ultralytics layout); returns the image paths."""
    from gan.labels import YoloDataset
    ds = YoloDataset(root / name, ["digit"])
    paths = []
    for i, (frames, boxes) in enumerate(clips):
        ds.add_clip(f"{name}{i:04d}", frames, boxes)
    paths = sorted(str(p) for p in (root / name / "images" / "train").glob("*.png"))
    return paths


def train_and_test(work: Path, arm: str, train_images: List[str], test_images: List[str], epochs: int,
                   imgsz: int, batch: int, seed: int) -> Dict:
    import yaml
    from ultralytics import YOLO
    (work / f"{arm}_train.txt").write_text("\n".join(train_images) + "\n")
    (work / "test.txt").write_text("\n".join(test_images) + "\n")
    data = work / f"{arm}.yaml"
    data.write_text(yaml.safe_dump({"path": str(work), "train": f"{arm}_train.txt", "val": "test.txt",
                                    "names": {0: "digit"}}))
    t0 = time.time()
    model = YOLO("yolov8n.yaml")                               # untrained: every arm starts from the same init
    # close_mosaic=0: mosaic for the whole run. ultralytics' default turns it off for the last 10 EPOCHS, which is
    # most of a 15-epoch run but little of a 150-epoch one; at 64 px mosaic mattered (one arm read 0.26 or 0.12
    # mAP50-95 with 15 or 14 epochs), so the default made arms of different sizes incomparable.
    model.train(data=str(data), epochs=epochs, imgsz=imgsz, batch=batch, workers=0, device="cpu", plots=False,
                amp=False, val=False, seed=seed, deterministic=True, close_mosaic=0, project=str(work / "runs"),
                name=arm, exist_ok=True, verbose=False)
    trained = YOLO(str(work / "runs" / arm / "weights" / "last.pt"))
    m = trained.val(data=str(data), split="val", imgsz=imgsz, batch=batch, device="cpu", plots=False,
                    verbose=False, project=str(work / "runs"), name=f"{arm}_val", exist_ok=True)
    return {"arm": arm, "train_images": len(train_images), "test_images": len(test_images),
            "mAP50": float(m.box.map50), "mAP50-95": float(m.box.map), "precision": float(m.box.mp),
            "recall": float(m.box.mr), "seconds": round(time.time() - t0, 1)}


def fvd_offline(checkpoint: str, num: int) -> float:
    from gan.clip_sources import DatasetClips, GeneratorClips
    from gan.metrics.evaluate import MetricOptions, compute_metrics
    fake = GeneratorClips(checkpoint)
    cfg = fake.config
    real = DatasetClips.from_config(cfg.data, content_seed=cfg.train.seed)
    out = compute_metrics(["fvd-offline"], fake, real, cfg.data.resolution,
                          MetricOptions(num_real=num, num_fake=num, progress=False))
    return float(out["results"]["fvd-offline"]["value"])


def markdown(doc: Dict) -> str:
    a = doc["args"]
    rows = {r["arm"]: r for r in doc["results"]}
    lines = [f"_Generated by `{doc['command']}` on {doc['date']} ({doc['minutes']:.1f} min). Machine: {doc['cpu']}, "
             f"torch {doc['torch']}, ultralytics {doc['ultralytics']}, {doc['threads']} thread(s). "
             f"Raw results: `{doc['json']}`._", "",
             f"Detector: YOLOv8n from its YAML (untrained, no download), one class 'digit', at {a['imgsz']} px, the "
             f"same seed and the same number of optimizer steps for every arm ({a['epochs']} epochs of (a); smaller "
             f"sets get proportionally more epochs; mosaic augmentation throughout). Clips: {a['frames']} frames, "
             f"{a['stride']} data frames "
             f"apart. Tested on {rows['a']['test_images']} frames of {a['test']} held-out real clips (digits 'test' "
             f"split, content seed 1). Generated: {doc['checkpoint']} (step {doc['step']}), FVD-offline "
             f"{doc['fvd_offline']:.2f} ({a['fvd_num']} clips per side).", "",
             "| arm | trained on | images | epochs | mAP50 ↑ | mAP50-95 ↑ | precision | recall |",
             "|---|---|---|---|---|---|---|---|"]
    what = {"a": f"(a) {a['real']} real clips", "b": f"(b) {a['generated']} generated clips (free labels)",
            "c": f"(c) {a['few']} real + {a['generated']} generated", "d": f"(d) {a['few']} real clips alone"}
    for k in ("a", "b", "c", "d"):
        r = rows[k]
        lines.append(f"| {k} | {what[k]} | {r['train_images']} | {r['epochs']} | {r['mAP50']:.3f} | "
                     f"{r['mAP50-95']:.3f} | "
                     f"{r['precision']:.3f} | {r['recall']:.3f} |")
    gap = rows["a"]["mAP50-95"] - rows["b"]["mAP50-95"]
    lines += ["", f"TSTR gap (a) - (b), mAP50-95: {gap:+.3f} (0: the generated clips train the detector as well as "
                  f"real ones)."]
    return "\n".join(lines)


def write_section(text: str, path: Path = ROOT / "BENCHMARKS.md") -> None:
    """Replace only what lies between this benchmark's markers (other sections belong to other benchmarks)."""
    from bench.report import replace_section
    replace_section(path, "<!-- tstr:start -->", "<!-- tstr:end -->", "Train on synthetic, test on real", text)


@click.command(help=__doc__)
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False), required=True,
              help="A layered digits generator (training checkpoint or exported file).")
@click.option("--real", type=click.IntRange(min=1), default=100, show_default=True, help="Real training clips, (a).")
@click.option("--generated", type=click.IntRange(min=1), default=100, show_default=True,
              help="Generated training clips, (b) and (c).")
@click.option("--few", type=click.IntRange(min=1), default=10, show_default=True, help="Real clips in (c) and (d).")
@click.option("--test", type=click.IntRange(min=1), default=40, show_default=True, help="Held-out real test clips.")
@click.option("--frames", type=click.IntRange(min=1), default=8, show_default=True, help="Frames per clip.")
@click.option("--stride", type=click.IntRange(min=1), default=4, show_default=True, help="Data frames between frames.")
@click.option("--epochs", type=click.IntRange(min=1), default=15, show_default=True)
@click.option("--imgsz", type=click.IntRange(min=32), default=64, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--fvd-num", type=click.IntRange(min=0), default=256, show_default=True,
              help="Clips per side for FVD-offline beside the table (0: skip).")
@click.option("--write/--no-write", default=True, show_default=True, help="Update BENCHMARKS.md.")
def main(checkpoint, real, generated, few, test, frames, stride, epochs, imgsz, batch, fvd_num, write):
    import torch
    import ultralytics
    from gan.checkpoint import load
    t0 = time.time()
    cfg = load(checkpoint)
    if cfg["config"]["data"]["source"] != "digits":
        raise click.UsageError("the TSTR bench is for a digits model (its real clips are the built-in digits)")
    res = int(cfg["config"]["data"]["resolution"])
    with tempfile.TemporaryDirectory(prefix="reelgan-tstr-") as tmp:
        work = Path(tmp)
        pools = {
            "real": write_pool(work, "real", real_clips("train", 0, real, frames, stride, res)),
            "gen": write_pool(work, "gen", generated_clips(checkpoint, generated, frames, stride)),
            "test": write_pool(work, "test", real_clips("test", 1, test, frames, stride, res)),
        }
        few_images = pools["real"][:few * frames]                  # the first `few` clips (names sort by clip)
        arms = {"a": pools["real"], "b": pools["gen"], "c": few_images + pools["gen"], "d": few_images}
        results = []
        for arm, images in arms.items():
            # The same number of optimizer steps for every arm: a small set gets more epochs (with 15 epochs of 80
            # images, 45 steps, the few-real arm had not started to detect anything: mAP 0).
            arm_epochs = max(1, round(epochs * len(arms["a"]) / len(images)))
            r = train_and_test(work, arm, images, pools["test"], arm_epochs, imgsz, batch, seed=0)
            r["epochs"] = arm_epochs
            click.echo(f"({arm}) {r['train_images']} images: mAP50 {r['mAP50']:.3f}, mAP50-95 {r['mAP50-95']:.3f} "
                       f"({r['seconds']:.0f} s)")
            results.append(r)
    fvd = fvd_offline(checkpoint, fvd_num) if fvd_num else float("nan")
    stamp = dt.datetime.now(dt.timezone.utc)
    out = ROOT / "bench" / "results" / f"tstr-{stamp:%Y%m%d-%H%M%S}.json"
    doc = {"command": "python bench/tstr.py " + " ".join(sys.argv[1:]), "date": stamp.isoformat(timespec="seconds"),
           "minutes": (time.time() - t0) / 60, "cpu": _cpu(), "torch": torch.__version__,
           "ultralytics": ultralytics.__version__, "threads": torch.get_num_threads(), "checkpoint": checkpoint,
           "step": cfg.get("step"), "fvd_offline": fvd, "json": str(out.relative_to(ROOT)),
           "args": {"real": real, "generated": generated, "few": few, "test": test, "frames": frames,
                    "stride": stride, "epochs": epochs, "imgsz": imgsz, "batch": batch, "fvd_num": fvd_num},
           "results": results}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    text = markdown(doc)
    click.echo(text)
    if write:
        write_section(text)


if __name__ == "__main__":
    main()
