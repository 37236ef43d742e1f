"""TensorBoard as StyleGAN users expect it: animated sample grids, the real grid at step 0, prompts beside
text-to-video samples; read back from the event files as TensorBoard reads them."""
import io
import math
import warnings

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import img_mime_type_detector

from gan.config import load_config
from gan.data import build_dataset
from gan.training import train
from tests.conftest import ROOT


def _events(run):
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    return acc


def _gif(event) -> Image.Image:
    assert img_mime_type_detector.from_bytes(event.encoded_image_string) == "image/gif"   # what TensorBoard serves
    im = Image.open(io.BytesIO(event.encoded_image_string))
    assert im.format == "GIF"
    assert (im.width, im.height) == (event.width, event.height)
    return im


def _grid_size(count, size, sep=2):
    cols = min(4, count)
    rows = math.ceil(count / cols)
    return cols * size + (cols - 1) * sep, rows * size + (rows - 1) * sep       # (width, height)


def _frames(im: Image.Image) -> np.ndarray:
    out = []
    for k in range(im.n_frames):
        im.seek(k)
        out.append(np.asarray(im.convert("RGB"), np.float32))
    return np.stack(out)


def _text(acc, tag):
    return [(e.step, e.tensor_proto.string_val[0].decode()) for e in acc.Tensors(f"{tag}/text_summary")]


@pytest.mark.parametrize("labels", [False, True])
def test_animated_fakes_and_real_grid_at_step_0(tmp_path, labels):
    seeds, frames = 6, 5
    cfg = load_config(str(ROOT / "configs" / "tiny.yaml"),
                      {"train": {"steps": 2, "sample_every": 1, "sample_seeds": seeds, "sample_frames": frames,
                                 "log_every": 1}, "data": {"labels": labels}})
    run = tmp_path / "run"
    train(cfg, str(run), progress=False)
    acc = _events(run)
    assert {"samples/fakes", "samples/reals"} <= set(acc.Tags()["images"])
    size = _grid_size(seeds, 16)

    fakes = acc.Images("samples/fakes")
    assert [e.step for e in fakes] == [1, 2]                       # every sample, the final one included
    for e in fakes:
        im = _gif(e)
        assert im.size == size and im.is_animated and 1 < im.n_frames <= frames

    (reals,) = acc.Images("samples/reals")
    assert reals.step == 0
    im = _gif(reals)
    assert im.size == size and im.is_animated and 1 < im.n_frames <= frames
    # It shows the data: the first videos from their first frame, tiled like the fakes (GIF palette: ~lossy).
    dataset = build_dataset(cfg.data, seed=cfg.train.seed)
    first = ((dataset.preview(0, frames)["video"][0].permute(1, 2, 0).numpy() + 1) * 127.5)   # [16, 16, 3]
    assert np.abs(_frames(im)[0, :16, :16] - first).mean() < 6.0
    assert (run / "samples" / "reals.gif").is_file() and (run / "samples" / "step_0000002.gif").is_file()

    prompts = set(acc.Tags()["tensors"])
    if not labels:
        assert not any("prompts" in t for t in prompts)
        return
    # Class-conditional: each cell's class beside both grids (the fakes cycle through the classes).
    (step, table), = _text(acc, "samples/fakes_prompts")[-1:]
    names = dataset.class_names
    assert step == 2 and f"| row 1 | {names[0]} | {names[1]} | {names[2]} | {names[0]} |" in table
    (_, table), = _text(acc, "samples/reals_prompts")
    assert f"| row 2 | {names[dataset.source.label(4)]} | {names[dataset.source.label(5)]} |" in table


def test_text_to_video_prompts_beside_the_samples(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = load_config(str(ROOT / "configs" / "t2v.yaml"),
                          {"data": {"num_videos": 16}, "loss": {"r1_interval": 1},
                           "train": {"steps": 1, "batch": 2, "log_every": 1, "checkpoint_every": 100,
                                     "sample_seeds": 3, "sample_frames": 4}})
        run = tmp_path / "run"
        train(cfg, str(run), progress=False)
    acc = _events(run)
    (fakes,) = acc.Images("samples/fakes")
    assert _gif(fakes).n_frames > 1 and _gif(fakes).size == _grid_size(3, 16)
    dataset = build_dataset(cfg.data, seed=cfg.train.seed)
    (step, table), = _text(acc, "samples/fakes_prompts")
    sampled = [dataset[i]["caption"] for i in range(3)]            # the sample grid's prompts (epoch 0 clips)
    assert step == 1 and f"| row 1 | {sampled[0]} | {sampled[1]} | {sampled[2]} |" in table
    (step, table), = _text(acc, "samples/reals_prompts")
    assert step == 0 and all(f" {dataset.source.caption(i, 0)} |" in table for i in range(3))
    assert acc.Images("samples/reals")[0].step == 0
