"""Labels from the layered generators: boxes of the visible part, checked against the rendered pixels."""
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from gan.config import load_config
from gan.data.builtin import _digit_sprite
from gan.export import KIND
from gan.labels import LabelError, boxes_from_alpha, require_layered, visible_alpha
from gan.sampling import layered_labels
from gan.networks import LayeredGenerator, build_generator
from gan.sampling import render
from gan import checkpoint as ckpt_io

ROOT = Path(__file__).resolve().parents[1]


def _square(h, x0, y0, x1, y1, a=1.0):
    m = torch.zeros(h, h)
    m[y0:y1, x0:x1] = a
    return m


def test_boxes_account_for_occlusion_frame_edges_and_covered_objects():
    h = 32
    frames = torch.stack([
        torch.stack([_square(h, 4, 4, 20, 12), _square(h, 4, 4, 12, 12)]),     # front covers the left half
        torch.stack([_square(h, 4, 4, 12, 12), _square(h, 2, 2, 14, 14)]),     # back fully covered: omitted
        torch.stack([_square(h, 24, 0, 32, 6), torch.zeros(h, h)]),            # at the edge; front absent
        torch.stack([_square(h, 4, 4, 20, 12), _square(h, 4, 4, 12, 12, 0.3)]),  # a see-through front
    ])                                                                           # [T=4, K=2, H, W]
    boxes, present, vis = boxes_from_alpha(frames, threshold=0.5)
    assert boxes[0, 0].tolist() == [12, 4, 20, 12] and boxes[0, 1].tolist() == [4, 4, 12, 12]
    assert vis[0, 0] == pytest.approx(0.5)
    assert not present[1, 0] and present[1, 1]
    assert boxes[2, 0].tolist() == [24, 0, 32, 6] and not present[2, 1]
    assert boxes[3, 0].tolist() == [4, 4, 20, 12]                                 # 0.7 visible > 0.5
    # visible alpha: the product of the transparencies in front, exactly
    torch.testing.assert_close(visible_alpha(frames)[3, 0, 5, 5], torch.tensor(0.7))


def _iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _digits_G():
    """The default digits model (64 px, 2 objects, grey) with real digit glyphs as its sprites, white on black."""
    cfg = load_config(str(ROOT / "configs" / "default.yaml"))
    torch.manual_seed(0)
    G = build_generator(cfg).eval()
    assert isinstance(G, LayeredGenerator) and G.img_channels == 1
    s = G.sprite_res
    glyphs = torch.stack([torch.from_numpy(_digit_sprite(i, s)) for i in (3, 17)])    # a 3 and a 7, [K, s, s]
    return G, glyphs


def _with_sprites(G, glyphs, colours):
    """G.content replaced: glyph k as alpha, premultiplied colour colours[k] (in [-1, 1]), black background."""
    sprites = torch.stack([torch.stack([c * a, a]) for a, c in zip(glyphs, colours)]).reshape(1, -1, *glyphs.shape[1:])

    def content(w, fused=False):
        return sprites.expand(w.shape[0], -1, -1, -1), torch.full((w.shape[0], 1, 1, 1), -1.0)
    G.content = content
    return G


def test_digits_clip_labels_match_boxes_measured_from_the_rendered_pixels():
    # Labels from the G's own placement against boxes measured from frames it renders: object k drawn white
    # and every other object black (still covering what is behind it) over black, so each pixel reads object k's
    # visible alpha, (x + 1) / 2, occlusion and frame edges as rendered.
    G, glyphs = _digits_G()
    seeds, frames, thr = [0, 1, 2, 3], 48, 0.5
    labels = layered_labels(_with_sprites(G, glyphs, [1.0, 1.0]), seeds, frames, threshold=thr, fused=False)
    measured = {}
    for k in range(G.objects):
        colours = [1.0 if j == k else -1.0 for j in range(G.objects)]
        clip = render(_with_sprites(G, glyphs, colours), seeds, frames, fused=False)          # [B, T, 1, H, W]
        vis = (clip[:, :, 0] + 1) / 2
        for i in range(len(seeds)):
            for t in range(frames):
                ys, xs = np.nonzero((vis[i, t] > thr).numpy())
                if len(xs):
                    measured[i, t, k + 1] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    got = {(i, b.frame, b.track): b.box for i, clip_boxes in enumerate(labels) for b in clip_boxes}
    assert set(got) == set(measured)
    ious = [_iou(got[key], measured[key]) for key in got]
    assert min(ious) >= 0.9, f"worst IoU {min(ious):.3f}"
    assert len(got) > len(seeds) * frames                    # both digits seen in most frames
    occluded = [b for clip_boxes in labels for b in clip_boxes if b.visibility < 0.99]
    assert occluded, "no frame with one digit in front of the other: the occlusion path went untested"


def test_synthesis_G_gets_a_one_line_error():
    G = build_generator(load_config(str(ROOT / "configs" / "tiny.yaml")))
    with pytest.raises(LabelError, match="labels need the layered generator"):
        require_layered(G)


def _save_G(G, cfg, path, c_dim=0, class_names=()):
    ckpt_io.save_atomic({"format_version": ckpt_io.FORMAT_VERSION, "kind": KIND, "config": cfg.to_dict(),
                         "c_dim": c_dim, "class_names": list(class_names), "step": 0,
                         "G_ema": G.state_dict()}, path)


@pytest.mark.parametrize("fmt", ["yolo", "coco", "mot"])
def test_generate_writes_labels_beside_each_clip_and_the_ultralytics_folder(tmp_path, fmt):
    import generate
    cfg = load_config(str(ROOT / "configs" / "tiny.yaml"), {"G": {"objects": 2}, "data": {"channels": 1}})
    torch.manual_seed(0)
    G = build_generator(cfg)
    with torch.no_grad():                                # opaque sprites: an untrained G's are faint
        G.sprite_blocks[-1].torgb.bias[-1] = 8.0
    _save_G(G, cfg, tmp_path / "G.pt")
    out = tmp_path / "out"
    args = ["--checkpoint", str(tmp_path / "G.pt"), "--outdir", str(out), "--seeds", "0-4", "--frames", "6",
            "--labels", fmt, "--dataset", str(tmp_path / "ds")]
    res = CliRunner().invoke(generate.cli, args)
    assert res.exit_code == 0, res.output
    if fmt == "yolo":
        files = sorted((out / "seed0000_yolo").glob("*.txt"))
        assert len(files) == 6
        rows = [line.split() for line in files[0].read_text().splitlines()]
        assert rows and all(r[0] == "0" and all(0 <= float(v) <= 1 for v in r[1:]) for r in rows)
    elif fmt == "coco":
        import json
        d = json.loads((out / "seed0000.coco.json").read_text())
        assert len(d["images"]) == 6 and d["annotations"] and d["categories"] == [{"id": 0, "name": "object"}]
        assert {a["track_id"] for a in d["annotations"]} <= {1, 2}
    else:
        rows = [r.split(",") for r in (out / "seed0000.mot.txt").read_text().splitlines()]
        assert rows and {int(r[0]) for r in rows} <= set(range(1, 7)) and {r[1] for r in rows} <= {"1", "2"}
    data = yaml.safe_load((tmp_path / "ds" / "data.yaml").read_text())
    assert data["names"] == {0: "object"} and data["val"] == "images/val"
    assert len(list((tmp_path / "ds" / "images" / "train").glob("*.png"))) == 4 * 6        # seed 4: val
    assert len(list((tmp_path / "ds" / "labels" / "val").glob("*.txt"))) == 6


def test_generate_labels_on_the_synthesis_G_fails_in_one_line(tmp_path):
    import generate
    cfg = load_config(str(ROOT / "configs" / "tiny.yaml"))
    _save_G(build_generator(cfg), cfg, tmp_path / "G.pt")
    res = CliRunner().invoke(generate.cli, ["--checkpoint", str(tmp_path / "G.pt"), "--outdir",
                                            str(tmp_path / "o"), "--labels", "yolo"])
    assert res.exit_code == 2 and "labels need the layered generator" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_builtin_digits_boxes_cover_the_rendered_objects():
    # The real clips' true boxes (bench/tstr.py trains on them): each object's coverage > 0.5, drawn alone; their
    # union is the bright part of the rendered frame.
    from gan.data.builtin import MovingDigits
    ds = MovingDigits(64, num_videos=4, video_frames=16, seed=0, split="test")
    frames, boxes = ds.render(2, 0, 6, 2), ds.boxes(2, 0, 6, 2)
    for frame, row in zip(frames, boxes):
        assert len(row) == 2 and {r[0] for r in row} == {0, 1}
        ys, xs = np.nonzero(frame[..., 0] > 0.5 * 255)
        union = (min(r[2] for r in row), min(r[3] for r in row), max(r[4] for r in row), max(r[5] for r in row))
        assert union == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert [r[1] for r in boxes[0]] == [o["class_id"] for o in ds.factors(2)["objects"]]


def _i2v_G():
    cfg = load_config(str(ROOT / "configs" / "i2v.yaml"))
    torch.manual_seed(0)
    return cfg, build_generator(cfg).eval()


def _still():
    still = torch.full((3, 16, 16), -1.0)
    still[:, 2:6, 3:8] = 1.0                                   # a white 5x4 box
    still[:, 9:14, 10:13] = 1.0                                # a white 3x5 box
    return still


def test_layered_image_to_video_labels_match_its_pixels():
    from gan.labels import conditional_labels
    from gan.sampling import ClipRenderer
    _, G = _i2v_G()
    seeds, times = [0, 1], torch.arange(12, dtype=torch.float64) * 2
    state = ClipRenderer(G).prepare_conditioned(seeds, _still()[None], torch.zeros(1), float(times.max()))
    t = times.float()[None].expand(len(seeds), -1)
    labels = conditional_labels(G, state, t)
    first = sorted(b.box for b in labels[0] if b.frame == 0)
    assert first == [(3, 2, 8, 6), (10, 9, 13, 14)]            # frame 0 is the still: its objects' own boxes
    for k in range(G.objects):                                 # object k alone, white over black
        alone = dict(state, alphas=state["alphas"].clone(), layers=state["layers"].clone())
        alone["alphas"][:, [j for j in range(G.objects) if j != k]] = 0
        alone["layers"][:, [j for j in range(G.objects) if j != k]] = 0
        clip = G.render_prepared(alone, t)
        for i in range(len(seeds)):
            for b in (b for b in labels[i] if b.track == k + 1):
                ys, xs = np.nonzero(((clip[i, b.frame, 0] + 1) / 2 > 0.5).numpy())
                assert _iou(b.box, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)) >= 0.9


def test_generate_image_labels_and_refusals(tmp_path):
    import generate
    from PIL import Image
    cfg, G = _i2v_G()
    _save_G(G, cfg, tmp_path / "i2v.pt")
    Image.fromarray(((_still().permute(1, 2, 0).numpy() + 1) * 127.5).astype(np.uint8)).save(tmp_path / "still.png")
    base = ["--checkpoint", str(tmp_path / "i2v.pt"), "--outdir", str(tmp_path / "o"), "--seeds", "0-1",
            "--frames", "5"]
    res = CliRunner().invoke(generate.cli, base + ["--image", str(tmp_path / "still.png"), "--labels", "mot"])
    assert res.exit_code == 0, res.output
    rows = [r.split(",") for r in (tmp_path / "o" / "seed0001.mot.txt").read_text().splitlines()]
    assert {r[0] for r in rows} == {"1", "2", "3", "4", "5"} and {r[1] for r in rows} == {"1", "2"}
    cont = load_config(str(ROOT / "configs" / "continue.yaml"))
    _save_G(build_generator(cont), cont, tmp_path / "cont.pt")
    base[1] = str(tmp_path / "cont.pt")
    res = CliRunner().invoke(generate.cli, base + ["--video", str(tmp_path / "still.png"), "--labels", "mot"])
    assert res.exit_code == 2 and "not --video" in res.output
