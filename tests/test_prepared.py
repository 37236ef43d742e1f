"""Prepared datasets: decode once, memory-mapped frames, a cache keyed by the source, settings read off the data."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from gan.config import DataConfig, load_config
from gan.data import build_dataset, infer_settings
from gan.data.cli import main as dataset_cli
from gan.data.prepared import PreparedDataset, is_grey, open_prepared, prepare
from gan.data.readers import DataError
from gan.training.run import KeyedDataset, StepBatchSampler
from gan.video_io import write_mp4, write_png_frames


def cfg(**kw):
    base = dict(source="digits", resolution=32, clip_frames=4, strides=[1, 2], workers=0)
    base.update(kw)
    return DataConfig(**base)


def clip(t=12, size=48, colour=(200, 200, 200), seed=0):
    """A bright square moving over a dark background: uint8 [t, size, size, 3]."""
    rng = np.random.default_rng(seed)
    v = np.full((t, size, size, 3), 20, np.uint8)
    x, y = rng.integers(0, size // 2, 2)
    for k in range(t):
        v[k, y:y + 12, x + k:x + k + 12] = colour
    return v


def folder(tmp_path, n=3, colour=(200, 200, 200), name="clips"):
    root = tmp_path / name
    for i in range(n):
        write_mp4(root / f"v{i}.mp4", clip(colour=colour, seed=i), fps=12)
    return root


def cache_entries():
    return sorted(p.name for p in Path(os.environ["REELGAN_CACHE"]).iterdir() if p.is_dir())


def test_cache_is_reused_and_rebuilt_when_the_source_or_resolution_changes(tmp_path):
    root = folder(tmp_path)
    first = build_dataset(cfg(source=str(root)))
    index = Path(first.source.root) / "index.json"
    stamp = index.stat().st_mtime_ns
    again = build_dataset(cfg(source=str(root)))                     # unchanged: the same files, not re-decoded
    assert again.source.root == first.source.root and index.stat().st_mtime_ns == stamp
    assert torch.equal(again[1]["video"], first[1]["video"])

    os.utime(root / "v1.mp4", ns=(stamp, stamp + 10 ** 9))          # a touched file
    touched = build_dataset(cfg(source=str(root)))
    assert touched.source.root != first.source.root and not Path(first.source.root).exists()  # stale one dropped
    write_mp4(root / "v3.mp4", clip(seed=3), fps=12)                 # a new file
    grown = build_dataset(cfg(source=str(root)))
    assert len(grown) == 4 and grown.source.root != touched.source.root
    other = build_dataset(cfg(source=str(root), resolution=16))      # another resolution: its own entry
    assert other[0]["video"].shape[-1] == 16 and len(cache_entries()) == 2


def test_data_cache_names_where_a_source_is_prepared(tmp_path):
    # data.cache: the prepared copy goes there, not to $REELGAN_CACHE (the default); a second use finds it there.
    root, mine = folder(tmp_path, n=2), tmp_path / "my-cache"
    ds = build_dataset(cfg(source=str(root), cache=str(mine)))
    assert Path(ds.source.root).parent == mine and cache_entries() == []
    again = build_dataset(cfg(source=str(root), cache=str(mine)))
    assert again.source.root == ds.source.root
    assert Path(build_dataset(cfg(source=str(root))).source.root).parent == Path(os.environ["REELGAN_CACHE"])


def test_grey_footage_trains_a_grey_model_and_colour_a_colour_one(tmp_path):
    grey, colour = folder(tmp_path, name="grey"), folder(tmp_path, colour=(220, 60, 40), name="colour")
    assert is_grey(clip()) and not is_grey(clip(colour=(220, 60, 40)))
    for root, channels in ((grey, 1), (colour, 3)):
        c = load_config("configs/tiny.yaml", {"data": {"source": str(root), "clip_frames": 4, "strides": [1]}})
        assert c.data.channels == 0 and c.G.objects == -1                   # left to the data
        ds = build_dataset(c.data)
        said = infer_settings(c, ds)
        assert c.data.channels == channels == ds.source.channels == ds[0]["video"].shape[1]
        assert any(s.startswith(f"data.channels={channels}") for s in said)
        assert c.G.objects == 1 and 0.15 <= c.G.object_size <= 0.75         # one square over a flat background
    forced = build_dataset(cfg(source=str(grey), channels=3))              # the user's word wins
    video = forced[0]["video"]
    assert video.shape[1] == 3 and torch.equal(video[:, 0], video[:, 2])


def test_footage_without_a_flat_background_gets_the_synthesis_generator(tmp_path):
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (12, 48, 48, 3), dtype=np.uint8)       # busy, everywhere different
    write_mp4(tmp_path / "n" / "a.mp4", texture, fps=12)
    c = load_config("configs/tiny.yaml", {"data": {"source": str(tmp_path / "n"), "clip_frames": 4, "strides": [1]}})
    said = infer_settings(c, build_dataset(c.data))
    assert c.G.objects == 0 and c.data.channels == 3 and "G.objects=0" in " ".join(said)


def test_captions_from_metadata_jsonl_csv_and_txt(tmp_path):
    jsonl = folder(tmp_path, name="jsonl")
    (jsonl / "metadata.jsonl").write_text("".join(json.dumps({"file": f"v{i}.mp4", "caption": f"clip {i}",
                                                              "label": i % 2}) + "\n" for i in range(3)))
    ds = build_dataset(cfg(source=str(jsonl), captions=True, labels=True))
    assert [ds.source.caption(i) for i in range(3)] == ["clip 0", "clip 1", "clip 2"]
    assert ds[2]["caption"] == "clip 2" and int(ds[1]["label"]) == 1 and ds.num_classes == 2

    csv_root = folder(tmp_path, name="csv")
    (csv_root / "metadata.csv").write_text("file,caption\n" + "".join(f"v{i}.mp4,a csv clip {i}\n" for i in range(3)))
    assert build_dataset(cfg(source=str(csv_root), captions=True))[0]["caption"] == "a csv clip 0"

    txt = folder(tmp_path, name="txt")
    for i in range(3):
        (txt / f"v{i}.txt").write_text(f"  a text\nfile {i} \n")
    ds = build_dataset(cfg(source=str(txt), captions=True))
    assert ds[1]["caption"] == "a text file 1"
    (txt / "v2.txt").write_text("changed")                              # a caption is part of the cache key
    assert build_dataset(cfg(source=str(txt), captions=True))[2]["caption"] == "changed"

    (txt / "v0.txt").unlink()
    with pytest.raises(DataError, match="no caption for every video.*metadata.jsonl"):
        build_dataset(cfg(source=str(txt), captions=True))


def test_two_ranks_read_only_the_clips_of_their_own_batches(tmp_path):
    ds = build_dataset(cfg(source=str(folder(tmp_path, n=8))))
    reads = {0: [], 1: []}

    class Recording:                                                     # the real source; records what it reads
        def __init__(self, source, log):
            self.source, self.log = source, log

        def __getattr__(self, name):
            return getattr(self.source, name)

        def __len__(self):
            return len(self.source)

        def read(self, i, *args):
            self.log.append(i)
            return self.source.read(i, *args)

    import copy
    for rank in (0, 1):
        mine = copy.copy(ds)
        mine.source = Recording(ds.source, reads[rank])
        sampler = StepBatchSampler(len(ds), 3, seed=0, rank=rank, start=0, end=4)
        expected = [i for keys in sampler for i, _ in keys]
        loader = torch.utils.data.DataLoader(KeyedDataset(mine), batch_sampler=sampler)
        batches = list(loader)
        assert reads[rank] == expected and len(batches) == 4
    assert reads[0] != reads[1]


def _rss_anon_kib() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    pytest.skip("no /proc/self/status RssAnon on this system")


def test_reading_a_prepared_dataset_maps_frames_instead_of_loading_them(tmp_path):
    small = prepare(str(folder(tmp_path, n=2)), str(tmp_path / "p"), 64, workers=1, progress=False)
    # Grow it to ~96 MB by repeating its videos (index and shard as prepare writes them).
    index = dict(small.index)
    one = (tmp_path / "p" / "shard_000.u8").read_bytes()
    copies = max(1, (96 << 20) // len(one))
    with open(tmp_path / "p" / "shard_000.u8", "wb") as f:
        for _ in range(copies):
            f.write(one)
    per = sum(v["frames"] for v in small.index["videos"])
    index["videos"] = [dict(v, offset=v["offset"] + k * per, name=f"{k}/{v['name']}")
                       for k in range(copies) for v in small.index["videos"]]
    (tmp_path / "p" / "index.json").write_text(json.dumps(index))
    big = open_prepared(str(tmp_path / "p"))
    size_kib = copies * len(one) // 1024
    assert isinstance(big._shards()[0], np.memmap)
    before = _rss_anon_kib()
    total = 0
    for i in range(len(big)):
        total += int(big.read(i, 0, 12)[::4, ::8, ::8].sum())          # touch every frame of every video
    grown = _rss_anon_kib() - before
    assert total > 0 and grown < 0.1 * size_kib, (grown, size_kib)


def test_bad_truncated_and_short_files_are_skipped_or_reported(tmp_path):
    root = folder(tmp_path, n=2)
    (root / "junk.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    write_mp4(root / "short.mp4", clip(t=2), fps=12)
    noisy = np.random.default_rng(1).integers(0, 255, (40, 48, 48, 3), dtype=np.uint8)  # every frame costs bytes
    write_mp4(root / "long.mp4", noisy, fps=12)
    data = (root / "long.mp4").read_bytes()
    (root / "cut.mp4").write_bytes(data[:len(data) * 2 // 3])           # header says 40 frames, data ends early
    with pytest.warns(UserWarning) as record:
        ds = build_dataset(cfg(source=str(root)))
    messages = " ".join(str(w.message) for w in record)
    assert "junk.mp4" in messages and "short.mp4" in messages and "cut.mp4" in messages
    names = lambda kind: sorted(Path(p).name for p in ds.skipped[kind])
    assert names("unreadable") == ["junk.mp4"] and names("too_short") == ["short.mp4"]
    assert [Path(p).name for p in ds.source.skipped["truncated"]] == ["cut.mp4"]
    assert "1 truncated" in ds.source.summary() and len(ds) == 4          # kept with the frames it has
    cut = [i for i in range(len(ds)) if ds.source.name(i) == "cut.mp4"][0]
    assert 4 <= ds.source.num_frames(cut) < 40


def test_prepare_cli_reuses_an_up_to_date_folder_and_training_checks_its_resolution(tmp_path):
    root = folder(tmp_path)
    out = tmp_path / "prepared"
    run = lambda *a: CliRunner().invoke(dataset_cli, ["prepare", str(root), str(out), *a])
    first = run("--resolution", "32")
    assert first.exit_code == 0 and "3 videos at 32 px, grey" in first.output and "G.objects=1" in first.output
    assert "up to date" in run("--resolution", "32").output
    ds = build_dataset(cfg(source=str(out)))                          # a prepared folder trains directly
    assert isinstance(ds.source, PreparedDataset) and cache_entries() == []
    with pytest.raises(DataError, match="prepared at 32 px but data.resolution is 16"):
        build_dataset(cfg(source=str(out), resolution=16))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    refused = CliRunner().invoke(dataset_cli, ["prepare", str(root), str(tmp_path / "mine")])
    assert refused.exit_code != 0 and "not a prepared dataset" in refused.output
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_frame_folders_prepare_like_videos(tmp_path):
    for i in range(2):
        write_png_frames(tmp_path / "frames" / f"video{i}", clip(seed=i))
    ds = build_dataset(cfg(source=str(tmp_path / "frames")))
    assert ds.source.index["kind"] == "frames" and ds.source.channels == 1 and len(ds) == 2
    assert ds.source.videos[0].width == 48 and ds.source.videos[0].fps is None


@pytest.mark.slow
def test_export_prepare_and_train_text_to_video_from_disk(tmp_path):
    from gan.training import train
    from tests.test_data import export
    out = export(tmp_path, "--source", "shapes", "--objects", "1", "--resolution", "16")
    meta = json.loads((out / "reelgan_dataset.json").read_text())
    assert meta["caption_word_groups"]["appearance"]
    c = load_config("configs/t2v.yaml", {"data": {"source": str(out), "video_frames": 12, "clip_frames": 4},
                                         "train": {"steps": 2, "batch": 4, "checkpoint_every": 2}})
    summary = train(c, str(tmp_path / "run"), progress=False)
    assert summary["step"] == 2
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "word groups" in log and "inferred from the data: data.channels=3" in log
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    saved = saved.get("config", saved)
    assert saved["data"]["channels"] == 3 and saved["G"]["objects"] >= 0
