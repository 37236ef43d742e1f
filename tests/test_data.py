"""Data: built-in synthetic datasets, disk sources, the clip dataset, the export/info CLI, bad inputs."""
import json
from pathlib import Path
import pickle
import shutil
import warnings
import zipfile

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from gan.config import DataConfig
from gan.data import BouncingShapes, ClipDataset, DataError, MovingDigits, MovingDots, build_dataset
from gan.data.builtin import PALETTE, _digits
from gan.data.cli import main as cli
from gan.data.prepared import PreparedDataset, open_prepared
from gan.data.readers import FrameFolders, VideoFolder, ZipFrameFolders, open_source
from gan.video_io import write_gif, write_mp4, write_png_frames

BUILTINS = [MovingDigits, BouncingShapes, MovingDots]


def cfg(**kw):
    base = dict(source="digits", resolution=32, clip_frames=4, strides=[1, 2], num_videos=8, video_frames=16,
                num_objects=2, workers=0, channels=3)
    base.update(kw)
    return DataConfig(**base)


def export(tmp_path, *args, name="out"):
    out = tmp_path / name
    result = CliRunner().invoke(cli, ["export", "--out", str(out), "--resolution", "32", "--frames", "12",
                                      "--num", "4", *args])
    assert result.exit_code == 0, result.output
    return out


def moving_video(t, size=32, value=200):
    """uint8 [T, H, W, 3]: a bar whose brightness encodes the frame number."""
    frames = np.zeros((t, size, size, 3), np.uint8)
    for k in range(t):
        frames[k, :, 2 * k:2 * k + 6] = value - 5 * k
    return frames


# ----------------------------------------------------------------------------------------------------------
# Built-in datasets


@pytest.mark.parametrize("cls", BUILTINS)
def test_builtin_shapes_determinism_and_direct_frames(cls):
    ds = cls(resolution=32, num_videos=5, video_frames=20, seed=3)
    video = ds.render(2)
    assert video.shape == (20, 32, 32, 3) and video.dtype == np.uint8
    assert video.max() > 100                                   # something is drawn
    np.testing.assert_array_equal(video, cls(resolution=32, num_videos=5, video_frames=20, seed=3).render(2))
    assert not np.array_equal(video, cls(resolution=32, num_videos=5, video_frames=20, seed=4).render(2))
    assert not np.array_equal(video, ds.render(3))
    np.testing.assert_array_equal(ds.render(2, start=5, frames=3), video[5:8])
    np.testing.assert_array_equal(ds.render(2, start=2, frames=4, stride=4), video[2:18:4])
    assert ds.render(2, start=18).shape[0] == 2                # frames=None: to the end of the video
    with pytest.raises(IndexError, match="out of range"):
        ds.render(5)


@pytest.mark.parametrize("cls", BUILTINS)
def test_bouncing_keeps_objects_inside_and_reports_bounces(cls):
    ds = cls(resolution=32, num_videos=6, video_frames=120, num_objects=2)
    bounced = 0
    for index in range(6):
        video = ds.render(index)
        for obj in ds.factors(index)["objects"]:
            pos, size = obj["position"], obj["size"]
            assert pos.shape == (120, 2)
            assert pos.min() >= 0 and pos.max() <= 32 - size + 1e-4
            step = np.sign(np.diff(pos, axis=0))               # [119, 2] direction of motion k -> k+1
            np.testing.assert_allclose(np.abs(np.diff(pos, axis=0)).max(0), np.abs(obj["velocity"]), atol=1e-3)
            # A bounce at frame k means a wall was hit between frames k-1 and k: the motion before k-1
            # and after k differ; and every change of direction is explained by a reported bounce.
            bounces = obj["bounces"]
            for k in bounces:
                if 2 <= k <= 118:
                    assert np.any(step[k - 2] != step[k])
            for j in range(118):
                if np.any(step[j] != step[j + 1]):
                    assert j + 1 in bounces or j + 2 in bounces
            bounced += len(bounces)
        # Nothing is drawn outside the union of the object boxes (sub-pixel: one spare pixel).
        mask = np.zeros((120, 32, 32), bool)
        for obj in ds.factors(index)["objects"]:
            for k, (x, y) in enumerate(obj["position"]):
                x0, y0 = int(np.floor(x)), int(np.floor(y))
                mask[k, y0:y0 + obj["size"] + 1, x0:x0 + obj["size"] + 1] = True
        assert video.max(-1)[~mask].max(initial=0) == 0
    assert bounced > 0


def test_digit_captions_mention_factors_and_splits_are_disjoint():
    ds = MovingDigits(resolution=32, num_videos=10, video_frames=8)
    assert ds.num_classes == 10 and ds.class_names[3] == "3"
    for index in range(10):
        caption = ds.caption(index)
        objects = ds.factors(index)["objects"]
        for obj in objects:
            assert f" {obj['class_name']} moving {obj['direction']}" in f" {caption}"
        assert caption.count("moving") == 2
        assert ds.label(index) == objects[0]["class_id"]
    _, targets, pools = _digits()
    assert not set(pools["train"]) & set(pools["test"])
    assert 0.75 < len(pools["train"]) / len(targets) < 0.85
    test = MovingDigits(resolution=32, num_videos=10, video_frames=8, split="test")
    used = {o["image_index"] for i in range(10) for o in test.factors(i)["objects"]}
    assert used <= set(pools["test"])


def test_captions_describe_the_motion_at_the_asked_frame():
    from gan.data.builtin import direction_name
    ds = BouncingShapes(resolution=16, num_videos=40, video_frames=64, num_objects=1)
    checked = changed = 0
    for index in range(40):
        obj = ds.factors(index)["objects"][0]
        pos, bounces = obj["position"].astype(np.float64), set(obj["bounces"])
        for f in range(0, 63, 7):
            if f + 1 in bounces:                              # the step f -> f+1 hits a wall
                continue
            seen = direction_name(pos[f + 1] - pos[f])        # the direction the rendered track shows
            assert f" moving {seen}" in ds.caption(index, f), (index, f)
            checked += 1
        changed += ds.caption(index, 0) != ds.caption(index, 63)
    assert checked > 200 and changed > 5                      # bounces do change later clips' words
    assert ds.caption(3) == ds.caption(3, 0)


def test_shape_captions_name_colour_and_shape():
    ds = BouncingShapes(resolution=32, num_videos=10, video_frames=8, num_objects=3)
    assert ds.class_names == ["circle", "square", "triangle"]
    for index in range(10):
        caption = ds.caption(index)
        for obj in ds.factors(index)["objects"]:
            assert obj["color"] in PALETTE
            assert f"{obj['color']} {obj['class_name']} moving {obj['direction']}" in caption


def test_dots_are_grey_discs_of_one_size_and_train_as_a_grey_source():
    ds = MovingDots(resolution=32, num_videos=6, video_frames=4, num_objects=1)
    assert ds.class_names == ["dot"] and ds.caption(0).startswith("a dot moving ")
    for index in range(6):
        frame = ds.render(index, frames=1)[0].astype(np.float64)             # [32, 32, 3]
        assert np.array_equal(frame[..., 0], frame[..., 1]) and np.array_equal(frame[..., 0], frame[..., 2])
        (obj,) = ds.factors(index)["objects"]
        assert obj["size"] == 8
        np.testing.assert_allclose(frame[..., 0].sum() / 255, np.pi * 4 ** 2, rtol=0.03)   # a disc, anti-aliased
        x, y = obj["position"][0]
        ys, xs = np.mgrid[:32, :32] + 0.5
        cx, cy = (frame[..., 0] * xs).sum() / frame[..., 0].sum(), (frame[..., 0] * ys).sum() / frame[..., 0].sum()
        np.testing.assert_allclose([cx, cy], [x + 4, y + 4], atol=0.05)              # centred in its box
    item = build_dataset(cfg(source="dots", channels=0))[0]                      # channels auto: grey
    assert item["video"].shape == (4, 1, 32, 32)


# ----------------------------------------------------------------------------------------------------------
# Clip dataset


def test_clip_items_shapes_ranges_and_determinism():
    ds = build_dataset(cfg(labels=True), seed=1)
    assert isinstance(ds, ClipDataset) and len(ds) == 8
    assert (ds.num_classes, ds.resolution, ds.channels) == (10, 32, 3)
    assert build_dataset(cfg(channels=0)).channels == 1                     # 0 = auto: grey digits ...
    assert build_dataset(cfg(source="shapes", channels=0)).channels == 3    # ... and colour shapes
    item = ds[3]
    video = item["video"]
    assert video.shape == (4, 3, 32, 32) and video.dtype == torch.float32
    assert video.min() >= -1 and video.max() <= 1 and video.max() > 0
    assert item["times"].dtype == torch.float32 and item["times"].shape == (4,)
    stride = int(item["times"][1])
    assert stride in (1, 2) and item["times"].tolist() == [0, stride, 2 * stride, 3 * stride]
    assert item["label"].dtype == torch.int64 and item["label"].dim() == 0
    assert int(item["label"]) == ds.source.factors(3)["objects"][0]["class_id"]
    assert item["index"] == 3
    again = build_dataset(cfg(labels=True), seed=1)[3]          # e.g. another worker process
    assert torch.equal(again["video"], video) and torch.equal(again["times"], item["times"])
    start, stride = ds.clip_position(3)                         # the clip is really frames start + k*stride
    expected = ds.source.render(3, start, 4, stride)
    np.testing.assert_allclose(((video + 1) * 127.5).permute(0, 2, 3, 1).numpy(), expected, atol=1e-3)
    other = build_dataset(cfg(labels=True), seed=2)[3]
    assert not torch.equal(other["video"], video)


def test_epochs_change_clips_and_unlabelled_is_zero():
    ds = build_dataset(cfg(source="shapes", strides=[1, 2, 3]))
    first = [ds.clip_position(i) for i in range(8)]
    ds.set_epoch(1)
    assert [ds.clip_position(i) for i in range(8)] != first
    assert ds.num_classes == 0 and ds.class_names == []
    assert int(ds[0]["label"]) == 0


def test_stride_shrinks_for_short_videos_and_grey_channels():
    ds = build_dataset(cfg(strides=[1, 7], video_frames=8, channels=1))
    for i in range(8):
        start, stride = ds.clip_position(i)
        assert stride in (1, 2) and start + 3 * stride <= 7    # (8 - 1) // 3 = 2
    assert ds[0]["video"].shape == (4, 1, 32, 32)
    with pytest.raises(DataError, match="video_frames"):
        build_dataset(cfg(strides=[3], video_frames=8))


# ----------------------------------------------------------------------------------------------------------
# Disk sources and the CLI


def test_export_frames_zip_and_builtin_give_identical_clips(tmp_path):
    out = export(tmp_path, "--source", "shapes", "--labels", "--format", "frames")
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    assert all((out / r["file"] / "frame_000011.png").is_file() for r in rows)
    assert all(r["file"].split("/")[0] == r["factors"]["objects"][0]["class_name"] for r in rows)
    zip_path = tmp_path / "frames.zip"
    shutil.make_archive(str(zip_path.with_suffix("")), "zip", root_dir=tmp_path, base_dir="out")  # wrapper dir

    source = cfg(source="shapes", video_frames=12, labels=True)
    folders = build_dataset(cfg(source=str(out), labels=True))
    zipped = build_dataset(cfg(source=str(zip_path), labels=True))
    builtin = build_dataset(source)
    assert isinstance(folders.source, PreparedDataset) and folders.source.index["kind"] == "frames"
    assert zipped.source.index["kind"] == "zip"
    assert folders.class_names == zipped.class_names == ["circle", "square", "triangle"]
    by_index = {r["file"]: r["index"] for r in rows}
    for i in range(4):
        a, b = folders[i], zipped[i]
        assert torch.equal(a["video"], b["video"]) and int(a["label"]) == int(b["label"])
        k = by_index[folders.source.name(i)]                    # PNG is lossless: same pixels as rendered
        start, stride = folders.clip_position(i)
        np.testing.assert_array_equal(folders.source.read(i, start, 4, stride),
                                      builtin.source.render(k, start, 4, stride))
        assert int(a["label"]) == builtin.source.label(k)
    zipped.source.read(1, 0, 3)
    restored = pickle.loads(pickle.dumps(zipped.source))        # DataLoader workers map the shards afresh
    assert restored._maps is None and zipped.source._maps is not None
    np.testing.assert_array_equal(restored.read(1, 0, 3), zipped.source.read(1, 0, 3))


def test_export_mp4_video_folder_round_trip(tmp_path):
    out = export(tmp_path, "--source", "digits", "--labels", "--seed", "5")
    ds = build_dataset(cfg(source=str(out), labels=True))
    assert isinstance(ds.source, PreparedDataset) and ds.source.index["kind"] == "videos" and len(ds) == 4
    assert ds.class_names == [str(d) for d in range(10)]        # every class folder is created
    digits = MovingDigits(resolution=32, num_videos=4, video_frames=12, seed=5)
    rows = {json.loads(l)["file"]: json.loads(l) for l in (out / "metadata.jsonl").read_text().splitlines()}
    for i in range(4):
        row = rows[ds.source.name(i)]
        assert ds.source.num_frames(i) == 12
        assert ds.source.label(i) == digits.label(row["index"]) == row["label"]
        decoded = ds.source.read(i, 0, 12)
        err = np.abs(decoded.astype(float) - digits.render(row["index"])).mean()
        assert err < 3.0, err
    result = CliRunner().invoke(cli, ["info", str(out)])
    assert result.exit_code == 0 and "4 videos at 64 px, grey, skipped 0 unreadable, 0 too short" in result.output
    missing = CliRunner().invoke(cli, ["info", str(tmp_path / "nope")])
    assert missing.exit_code != 0 and "nope does not exist" in missing.output


def test_labels_from_subfolders_and_natural_frame_order(tmp_path):
    for cls, n in (("cats", 2), ("dogs", 1)):
        for v in range(n):
            folder = tmp_path / cls / f"video{v}"
            folder.mkdir(parents=True)
            for k, frame in enumerate(moving_video(11)):
                write_png_frames(folder, frame[None])                        # frame_000000.png ...
                (folder / "frame_000000.png").rename(folder / f"{k}.png")    # 0.png ... 10.png
    src = open_source(str(tmp_path), min_frames=4)
    assert isinstance(src, FrameFolders) and src.class_names == ["cats", "dogs"]
    assert [src.label(i) for i in range(3)] == [0, 0, 1]
    clip = src.read(0, 0, 11)
    brightness = clip.reshape(11, -1).max(1)
    assert list(brightness) == sorted(brightness, reverse=True)  # 2.png before 10.png
    assert src.read(0, 1, 3, stride=4, size=16).shape == (3, 16, 16, 3)


def test_bad_videos_are_skipped_and_counted(tmp_path, caplog):
    for name in ("a.mp4", "sub/b.MP4"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        write_mp4(tmp_path / name, moving_video(8), fps=8)
    write_gif(tmp_path / "c.gif", moving_video(6), fps=8)
    (tmp_path / "x.mp4").write_bytes(np.random.default_rng(0).bytes(3000))
    write_mp4(tmp_path / "short.mp4", moving_video(2), fps=8)
    (tmp_path / "notes.txt").write_text("not a video")
    with pytest.warns(UserWarning) as record, caplog.at_level("INFO"):
        src = VideoFolder(str(tmp_path), min_frames=4)
    messages = " ".join(str(w.message) for w in record)
    assert "x.mp4" in messages and "short.mp4" in messages
    assert len(src) == 3 and src.class_names == []               # c.gif, a.mp4 and b.MP4 are at mixed depths
    assert [s.rsplit("/", 1)[-1] for s in src.skipped["unreadable"]] == ["x.mp4"]
    assert [s.rsplit("/", 1)[-1] for s in src.skipped["too_short"]] == ["short.mp4"]
    assert f"dataset {tmp_path}: 3 videos, skipped 1 unreadable, 1 too short" in caplog.text
    with pytest.warns(UserWarning):
        ds = build_dataset(cfg(source=str(tmp_path)))
    assert ds.skipped["unreadable"] and ds.skipped["too_short"] and ds.skipped["failed_reads"] == []
    assert ds[0]["video"].shape == (4, 3, 32, 32)


def test_empty_missing_and_unlabelled_paths_raise_data_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=f"no videos found in {empty}.*expected video files"):
        build_dataset(cfg(source=str(empty)))
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match=str(missing)):
        build_dataset(cfg(source=str(missing)))
    with pytest.raises(DataError, match="not a valid|cannot open zip"):
        (tmp_path / "bad.zip").write_bytes(b"garbage")
        build_dataset(cfg(source=str(tmp_path / "bad.zip")))
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "x.mp4").write_bytes(b"\0" * 100)
    with pytest.warns(UserWarning, match="x.mp4"), pytest.raises(DataError, match="no usable videos"):
        build_dataset(cfg(source=str(only_bad)))
    flat = tmp_path / "flat"
    flat.mkdir()
    write_mp4(flat / "a.mp4", moving_video(6), fps=8)
    with pytest.raises(DataError, match="no classes"):
        build_dataset(cfg(source=str(flat), labels=True))


def test_read_failure_falls_back_to_next_video(tmp_path):
    for k in range(3):
        write_mp4(tmp_path / f"v{k}.mp4", moving_video(8, value=200 - 20 * k), fps=8)
    ds = build_dataset(cfg(source=str(tmp_path)))
    expected, first = ds[2]["video"], ds[1]["video"]
    (tmp_path / "v1.mp4").write_bytes(b"corrupt after preparing")    # read at the next start, not in this run
    assert torch.equal(ds[1]["video"], first)

    class FailingDisk:                                          # an I/O error on one video's frames
        def __init__(self, source):
            self.source = source

        def __getattr__(self, name):
            return getattr(self.source, name)

        def __len__(self):
            return len(self.source)

        def read(self, i, *args):
            if self.source.name(i) == "v1.mp4" or self.broken:
                raise OSError(5, "Input/output error")
            return self.source.read(i, *args)

    disk = FailingDisk(ds.source)
    disk.broken = False
    ds.source = disk
    with pytest.warns(UserWarning, match="v1.mp4"):
        item = ds[1]
    assert item["index"] == 2 and torch.equal(item["video"], expected)
    assert [s.rsplit("/", 1)[-1] for s in ds.skipped["failed_reads"]] == ["v1.mp4"]
    disk.broken = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match="consecutive videos failed"):
            ds[0]


def test_damaged_prepared_shard_is_refused_and_the_cache_prepares_again(tmp_path):
    for k in range(2):
        write_mp4(tmp_path / f"v{k}.mp4", moving_video(8, value=200 - 20 * k), fps=8)
    ds = build_dataset(cfg(source=str(tmp_path)))
    shard = Path(ds.source.root) / "shard_000.u8"
    shard.write_bytes(shard.read_bytes()[:32 * 32 * 5])             # a disk that filled up or a copy cut short
    with pytest.raises(DataError, match="damaged.*prepare"):
        open_prepared(ds.source.root)
    again = build_dataset(cfg(source=str(tmp_path)))               # the cache notices and prepares it anew
    assert again.source.root == ds.source.root and len(again) == 2
    assert shard.stat().st_size == 32 * 32 * 16


def test_dataloader_workers_see_the_same_clips(tmp_path):
    out = export(tmp_path, "--source", "digits", "--format", "frames")
    zip_path = tmp_path / "d.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:                  # no wrapper folder this time
        for f in sorted(out.rglob("*.png")):
            zf.write(f, f.relative_to(out).as_posix())
    ds = build_dataset(cfg(source=str(zip_path)))
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    batches = list(loader)
    direct = torch.stack([ds[i]["video"] for i in range(4)])
    assert torch.equal(torch.cat([b["video"] for b in batches]), direct)
