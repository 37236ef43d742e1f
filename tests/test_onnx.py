"""ONNX export (gan/onnx_export.py) and sampling on ONNX Runtime (gan/sampling/onnx_runtime.py): parity with
PyTorch, generate.py's clips from G.onnx vs the checkpoint, int8, clear errors."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from click.testing import CliRunner

pytest.importorskip("onnxruntime")

from gan import checkpoint as ckpt_io  # noqa: E402
from gan.config import load_config  # noqa: E402
from gan.errors import ReelganError  # noqa: E402
from gan.networks import build_generator  # noqa: E402
from gan.onnx_export import ChunkGraph, OnnxExportError, read_metadata  # noqa: E402
from gan.sampling import ClipRenderer, checkpoint_watermarker  # noqa: E402
from gan.sampling.onnx_runtime import OnnxGenerator, watermarker  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Float32 parity bound: the runtime and PyTorch sum each convolution's products in different orders, so each
# output differs by ~ sqrt(n) * eps32 * |partial sums|, compounded over the few layers of a tiny G. 1e-4 is
# ~840 eps32 for outputs in [-1, 1]: far above reordering (measured ~5e-6 on the tiny G), far below any real
# mistake (a wrong time, anchor or latent moves frames by > 1e-2).
F32_BOUND = 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A generator-only checkpoint of the tiny G (random weights, visible motion) and its ONNX export."""
    cfg = load_config(str(ROOT / "configs" / "tiny.yaml"))
    torch.manual_seed(0)
    G = build_generator(cfg).eval()
    torch.nn.init.normal_(G.flow.weight)                 # make motion visible in an untrained model
    d = tmp_path_factory.mktemp("onnx")
    ckpt = d / "G.pt"
    ckpt_io.save_atomic({"format_version": ckpt_io.FORMAT_VERSION, "kind": "reelgan-generator",
                         "config": cfg.to_dict(), "c_dim": 0, "class_names": [], "step": 3,
                         "G_ema": G.state_dict()}, ckpt)
    from gan.export import cli
    res = CliRunner().invoke(cli, [str(ckpt), str(d / "G.onnx")])      # the suffix picks --format onnx
    assert res.exit_code == 0, res.output
    assert "opset 18" in res.output
    return G, ckpt, d / "G.onnx"


@pytest.mark.parametrize("b, k, t, k0, psi", [(1, 2, 3, 0, 1.0), (3, 4, 7, 5, 0.7)])
def test_onnx_runtime_matches_pytorch_at_any_batch_frames_and_anchors(exported, b, k, t, k0, psi):
    G, _, path = exported
    og = OnnxGenerator(path)
    gen = torch.Generator().manual_seed(b * 100 + t)
    z, codes = torch.randn(b, G.z_dim, generator=gen), torch.randn(b, k, G.motion_dim, generator=gen)
    times = (k0 + torch.rand(b, t, generator=gen) * (k - 1) * 0.99) * G.motion_period
    with torch.no_grad():
        ref = ChunkGraph(G)(z, torch.tensor(psi), codes, torch.tensor(k0), times).numpy()
    out = og.run(z.numpy(), psi, codes.numpy(), k0, times.numpy())
    assert out.shape == (b, t, 3, 16, 16)
    assert np.abs(out - ref).max() < F32_BOUND
    assert np.abs(out[:, 1:] - out[:, :1]).max() > 1e-2          # frames move: the bound is not vacuous


def test_the_same_seeds_give_the_same_clips_as_the_checkpoint(exported):
    G, _, path = exported
    ref = ClipRenderer(G, chunk=5).render([4, 9], 12, time_step=1.5, start=30.0, truncation=0.8)
    out = OnnxGenerator(path).render([4, 9], 12, time_step=1.5, start=30.0, truncation=0.8, chunk=5)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() < F32_BOUND


@pytest.fixture(scope="module")
def split_export(exported, tmp_path_factory):
    """The same checkpoint exported with --split: G.onnx plus G.video.onnx and G.frames.onnx."""
    from gan.export import cli
    _, ckpt, _ = exported
    d = tmp_path_factory.mktemp("split")
    res = CliRunner().invoke(cli, [str(ckpt), str(d / "G.onnx"), "--split"])
    assert res.exit_code == 0, res.output
    assert "G.video.onnx" in res.output and "G.frames.onnx" in res.output
    return d / "G.onnx"


def test_split_graphs_render_the_same_clips_with_the_per_video_work_once(exported, split_export):
    G, _, _ = exported
    og = OnnxGenerator(split_export)
    assert og.split is not None
    calls = {"video": 0}
    video, frames = og.split

    class Counting:                                   # the per-video graph runs once per clip, not once per chunk
        def run(self, *a):
            calls["video"] += 1
            return video.run(*a)
    og.split = (Counting(), frames)
    ref = ClipRenderer(G, chunk=5).render([4, 9], 12, time_step=1.5, start=30.0, truncation=0.8)
    out = og.render([4, 9], 12, time_step=1.5, start=30.0, truncation=0.8, chunk=5)
    assert calls["video"] == 1 and out.shape == ref.shape
    assert (out - ref).abs().max() < F32_BOUND
    assert (out[:, 1:] - out[:, :1]).abs().max() > 1e-2       # frames move: the bound is not vacuous


def test_split_halves_of_another_export_are_not_used(exported, split_export, tmp_path, caplog):
    import shutil
    from gan.onnx_export import export_onnx, split_paths
    G, _, _ = exported
    for p in split_paths(split_export):
        shutil.copy(p, tmp_path / p.name)
    other = build_generator(load_config(str(ROOT / "configs" / "tiny.yaml"))).eval()    # other weights
    export_onnx(other, load_config(str(ROOT / "configs" / "tiny.yaml")), tmp_path / "G.onnx")
    with caplog.at_level("WARNING"):
        og = OnnxGenerator(tmp_path / "G.onnx")
    assert og.split is None and "another export" in caplog.text
    assert OnnxGenerator(split_export, "int8").split is None      # int8 quantizes the whole graph


def test_a_half_passed_alone_is_one_clear_line(split_export, tmp_path):
    from generate import cli
    from tests.conftest import one_error_line
    for half, word in (("G.video.onnx", "per-video"), ("G.frames.onnx", "per-frame")):
        line = one_error_line(cli, "--checkpoint", split_export.parent / half, "--outdir", tmp_path / half)
        assert word in line and "pass G.onnx" in line, line


def test_split_needs_onnx_and_never_overwrites(exported, split_export, tmp_path):
    from gan.export import cli
    _, ckpt, _ = exported
    res = CliRunner().invoke(cli, [str(ckpt), str(tmp_path / "G.pt"), "--split"])
    assert res.exit_code != 0 and "--format onnx" in res.output
    (tmp_path / "G.frames.onnx").write_bytes(b"mine")
    res = CliRunner().invoke(cli, [str(ckpt), str(tmp_path / "G.onnx"), "--split"])
    assert res.exit_code != 0 and "exists" in res.output and (tmp_path / "G.frames.onnx").read_bytes() == b"mine"


def test_metadata_rebuilds_config_and_watermark(exported):
    G, ckpt, path = exported
    meta = read_metadata(path)
    assert meta["config"] == load_config(str(ROOT / "configs" / "tiny.yaml")).to_dict() and meta["step"] == 3
    assert watermarker(meta).payload == checkpoint_watermarker(ckpt).payload


def test_generate_py_renders_the_checkpoints_clips_from_onnx(exported, tmp_path):
    from generate import cli
    _, ckpt, path = exported
    frames = {}
    for name, src in (("pt", ckpt), ("onnx", path)):
        res = CliRunner().invoke(cli, ["--checkpoint", str(src), "--outdir", str(tmp_path / name), "--seeds", "2,5",
                                       "--frames", "6", "--format", "png", "--batch", "1", "--chunk", "4"])
        assert res.exit_code == 0, res.output
        pngs = sorted((tmp_path / name).rglob("*.png"))
        frames[name] = np.stack([np.asarray(Image.open(p)) for p in pngs]).astype(int)
    assert frames["pt"].shape == frames["onnx"].shape and len(frames["pt"]) == 12
    # uint8 rounding: a float32 difference of 1e-4 can move a value across a rounding boundary by one level
    diff = np.abs(frames["pt"] - frames["onnx"])
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_int8_quantizes_and_stays_close(exported, tmp_path):
    import onnx
    from gan.sampling.onnx_runtime import calibration_feeds, quantize
    _, _, path = exported
    fp32 = OnnxGenerator(path)
    quantize(path, tmp_path / "q.onnx", calibration_feeds(fp32, [7, 8]))
    ops = [n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node]
    assert ops.count("QuantizeLinear") > 0 and "Conv" in ops
    int8 = OnnxGenerator(path, "int8", calibration_seeds=4).render([1, 2], 8)
    fp32 = fp32.render([1, 2], 8)
    err = (int8 - fp32).abs()
    mse = float((err ** 2).mean())
    # 8-bit activations: a per-tensor step of ~range/255 per layer; a PSNR (peak-to-peak 2) of >= 20 dB on a
    # random-weight tiny G; quantization must change something (a float graph would give 0).
    assert 0 < mse and 10 * np.log10(4 / mse) > 20


def test_bad_inputs_fail_with_one_line(exported, tmp_path):
    from gan.export import cli as export_cli
    from generate import cli
    _, ckpt, path = exported
    res = CliRunner().invoke(export_cli, [str(ckpt), str(path)])
    assert res.exit_code != 0 and "--force" in res.output
    res = CliRunner().invoke(cli, ["--checkpoint", str(path), "--outdir", str(tmp_path), "--stream"])
    assert res.exit_code != 0 and "--stream" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["--checkpoint", str(ckpt), "--outdir", str(tmp_path), "--precision", "int8"])
    assert res.exit_code != 0 and "--format onnx" in res.output
    bogus = tmp_path / "x.onnx"
    bogus.write_bytes(b"not a model")
    with pytest.raises(ReelganError, match="not a readable ONNX file"):
        read_metadata(bogus)
    with pytest.raises(OnnxExportError, match="unconditional"):
        from gan.onnx_export import export_onnx
        cfg = load_config(str(ROOT / "configs" / "tiny.yaml"))
        export_onnx(build_generator(cfg, 3), cfg, tmp_path / "c.onnx", c_dim=3)


@pytest.mark.parametrize("field", ["up_conv", "separable_from"])
def test_transposed_and_separable_convs_export_match_and_quantize(tmp_path, field):
    # G.up_conv=transposed (lite, the StyleGAN-V presets) exports as ConvTranspose, G.separable_from as 1x1 and
    # depthwise Convs; the runtime renders what PyTorch renders, and int8 quantizes those convolutions too.
    import onnx
    from gan.onnx_export import export_onnx
    from gan.sampling.onnx_runtime import calibration_feeds, quantize
    cfg = load_config(str(ROOT / "configs" / "tiny.yaml"),
                      {"G": {"up_conv": "transposed"} if field == "up_conv" else {"separable_from": 8}})
    torch.manual_seed(1)
    G = build_generator(cfg).eval()
    torch.nn.init.normal_(G.flow.weight)
    export_onnx(G, cfg, tmp_path / "G.onnx")
    og = OnnxGenerator(tmp_path / "G.onnx")
    gen = torch.Generator().manual_seed(5)
    z, codes = torch.randn(2, G.z_dim, generator=gen), torch.randn(2, 3, G.motion_dim, generator=gen)
    times = torch.rand(2, 4, generator=gen) * 1.9 * G.motion_period
    with torch.no_grad():
        ref = ChunkGraph(G)(z, torch.tensor(1.0), codes, torch.tensor(0), times).numpy()
    out = og.run(z.numpy(), 1.0, codes.numpy(), 0, times.numpy())
    assert np.abs(out - ref).max() < F32_BOUND and np.abs(out[:, 1:] - out[:, :1]).max() > 1e-2
    quantize(tmp_path / "G.onnx", tmp_path / "q.onnx", calibration_feeds(og, [7]))
    graph = onnx.load(str(tmp_path / "q.onnx")).graph
    producer = {o: n.op_type for n in graph.node for o in n.output}
    if field == "up_conv":
        convs = [n for n in graph.node if n.op_type == "ConvTranspose"]
    else:                                                   # the depthwise convs: group = channels
        convs = [n for n in graph.node if n.op_type == "Conv" and any(a.name == "group" and a.i > 1
                                                                      for a in n.attribute)]
    assert convs and all(producer.get(n.input[1]) == "DequantizeLinear" for n in convs)   # int8 weights


def test_precision_auto_is_lossless_fp32_and_int8_says_when_it_will_not_pay(exported, tmp_path):
    from gan.precision import int8_note
    from generate import cli
    _, _, path = exported
    res = CliRunner().invoke(cli, ["--checkpoint", str(path), "--outdir", str(tmp_path), "--seeds", "1",
                                   "--frames", "2", "--format", "png", "--precision", "auto", "--no-watermark"])
    assert res.exit_code == 0, res.output
    assert "ONNX Runtime fp32" in res.output and "int8" not in res.output
    # No VNNI / AMX: int8 dot products are emulated and ONNX Runtime's int8 ran slower than fp32 (BENCHMARKS.md)
    assert "no VNNI or AMX" in int8_note(frozenset({"sse4_2", "avx2", "fma"}))
    for flags in ({"avx2", "avx512_vnni"}, {"avx2", "avx_vnni"}, {"amx_int8", "avx512f"}, set()):
        assert int8_note(frozenset(flags)) == ""            # pays, or the flags are unknown: nothing to say
