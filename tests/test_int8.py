"""The PyTorch int8 path (gan/sampling/int8.py): the convolutions really run as oneDNN int8 kernels, the frames stay
close to float32, generate.py --stream --precision int8 uses it, class models calibrate under their class, a
generator with no dense conv per frame stays float. Tiny graphs compiled (~30 s in all on 2 cores)."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from gan.sampling import FastSampler, checkpoint_watermarker, load_generator, render
from gan.video_io import to_uint8

ROOT = Path(__file__).resolve().parents[1]


def psnr(a, b, peak: float) -> float:
    mse = float(((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2).mean())
    return 10 * math.log10(peak ** 2 / mse)


@pytest.mark.numerics
def test_stream_int8_runs_int8_convolutions_and_stays_close(tiny_cfg, tmp_path):
    from generate import cli
    from test_fast_sampler import make_checkpoint
    ckpt = make_checkpoint(tiny_cfg, tmp_path / "latest.pt")
    args = ["--checkpoint", str(ckpt), "--stream", "--frames", "8", "--stream-to", "-", "--chunk", "4",
            "--precision", "int8", "--threads", "2"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.stderr
    frames = np.frombuffer(res.stdout_bytes, np.uint8).reshape(8, 16, 16, 3)
    G, _ = load_generator(ckpt)
    whole = checkpoint_watermarker(ckpt).embed(to_uint8(render(G, [0], 8)[0]))
    # 8-bit activations (a per-tensor step of ~range/255 per quantized layer) on a random-weight G: well above
    # 20 dB; the watermark is on both sides. A quantizer that quantized nothing would give one uint8 level at most.
    assert 20 < psnr(frames, whole, 255) and np.abs(frames.astype(int) - whole.astype(int)).max() > 1

    # The same renderer in-process: which kernels ran (reference kernels would dequantize into float convs).
    sampler = FastSampler(G, precision="int8", chunk=4)
    seeds = [0]
    w, x, img = sampler.prepare(seeds)
    v = sampler.motion(seeds, torch.arange(4, dtype=torch.float64), w)
    with torch.inference_mode():
        sampler.frames((w, x, img), v)                                   # quantize and compile (cached graph)
        with torch.profiler.profile() as prof:
            out = sampler.frames((w, x, img), v)
    ops = {e.key for e in prof.key_averages()}
    assert sampler._fn.quantized_convs > 0 and any("qconv" in k for k in ops), sorted(ops)
    ref = render(G, seeds, 4)[0]
    assert 20 < psnr(out[0], ref, 2.0)


def test_int8_errors_are_one_line(tiny_cfg, tiny_G, tmp_path):
    from gan.sampling.load import SamplingError
    from generate import cli
    from test_fast_sampler import make_checkpoint
    with pytest.raises(SamplingError, match="CPU"):
        FastSampler(tiny_G, device="meta", precision="int8")
    ckpt = make_checkpoint(tiny_cfg, tmp_path / "latest.pt")
    res = CliRunner().invoke(cli, ["--checkpoint", str(ckpt), "--outdir", str(tmp_path), "--precision", "int8"])
    assert res.exit_code != 0 and "--format onnx" in res.output and "Traceback" not in res.output



@pytest.mark.numerics
def test_int8_class_models_calibrate_under_their_class_and_layered_ones_stay_float(tiny_cfg, caplog):
    from gan.config import load_config
    from gan.networks import build_generator
    t = torch.arange(4, dtype=torch.float64)

    def both(G, c=None):
        out = []
        for precision in ("int8", "fp32"):
            s = FastSampler(G, precision=precision, chunk=4)
            w, x, img = s.prepare([3, 5], c)
            out.append(s.frames((w, x, img), s.motion([3, 5], t, w)))
        return out, s

    torch.manual_seed(0)
    (q, f), _ = both(build_generator(tiny_cfg, 3).eval(), torch.tensor([1, 2]))   # needs a class to calibrate
    assert 20 < psnr(q, f, 2.0)
    # The layered G composites sprites per frame: no dense conv, so int8 changes nothing and says so.
    layered = load_config(str(ROOT / "configs" / "tiny.yaml"), {"G": {"objects": 2}})
    torch.manual_seed(0)
    with caplog.at_level("WARNING", logger="gan.sampling.int8"):
        (q, f), _ = both(build_generator(layered).eval())
    assert "no dense convolution" in caplog.text
    torch.testing.assert_close(q, f, atol=1e-5, rtol=1e-5)
