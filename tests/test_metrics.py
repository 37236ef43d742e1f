"""Metrics (gan/metrics): distance maths against float64 references, the missing-weights message, the
real-statistics cache keys, the random-features pipeline, the offline metric, the CLI on a checkpoint and
on a folder of mp4 files (same numbers twice), self-trained nets, and the training hook."""
import json
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from click.testing import CliRunner

from gan.metrics import cache as stats_cache
from gan.metrics import published_weights as W
from gan.clip_sources import ClipSpec, DatasetClips, FolderClips
from gan.metrics.distances import (FeatureStats, PolynomialKernel, frechet_distance, kernel_distance,
                                   mmd2_unbiased)
from gan.metrics.evaluate import MetricOptions, compute_metrics, real_statistics
from gan.metrics.features import FeatureExtractor, build_extractor


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test gets an empty cache folder: nothing leaks between tests or into ~/.cache."""
    monkeypatch.setenv("REELGAN_CACHE", str(tmp_path / "cache"))


# ----------------------------------------------------------------------------------------------------------
# Fréchet distance and MMD against float64 references


def reference_frechet(mu1, s1, mu2, s2):
    """The textbook formula (stylegan2-ada / StyleGAN-V): scipy.linalg.sqrtm of the product, float64."""
    covmean, _ = scipy.linalg.sqrtm(s1 @ s2, disp=False) if _sqrtm_has_disp() else (scipy.linalg.sqrtm(s1 @ s2), 0)
    return float(np.real(np.square(mu1 - mu2).sum() + np.trace(s1 + s2 - 2 * covmean)))


def _sqrtm_has_disp():
    import inspect
    return "disp" in inspect.signature(scipy.linalg.sqrtm).parameters


def stats_of(x):
    return FeatureStats.from_features(x).mean_cov()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_frechet_matches_float64_sqrtm_reference_on_random_features():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 24))
    b = rng.normal(size=(300, 24)) @ rng.normal(size=(24, 24)) * 0.5 + 0.3
    ours = frechet_distance(*stats_of(a), *stats_of(b))
    ref = reference_frechet(*stats_of(a), *stats_of(b))
    assert ours == pytest.approx(ref, rel=1e-9)
    assert ours > 1.0                                          # really different sets


def test_frechet_known_answers_identical_and_shifted():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 16)) @ rng.normal(size=(16, 16))
    assert frechet_distance(*stats_of(a), *stats_of(a)) == pytest.approx(0.0, abs=1e-9)
    shift = rng.normal(size=16)
    mu_a, cov_a = stats_of(a)
    mu_b, cov_b = stats_of(a + shift)                          # same covariance, mean moved by `shift`
    assert frechet_distance(mu_a, cov_a, mu_b, cov_b) == pytest.approx(float(shift @ shift), rel=1e-9)


def test_frechet_diagonal_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    expected = np.square(mu1 - mu2).sum() + np.square(np.sqrt(s1) - np.sqrt(s2)).sum()
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_frechet_near_singular_covariances():
    """Fewer samples than dimensions and a constant feature: rank-deficient covariances."""
    rng = np.random.default_rng(2)
    a = rng.normal(size=(20, 48))
    b = rng.normal(size=(25, 48)) + 0.2
    a[:, 0] = b[:, 0] = 3.0                                    # a constant feature: zero variance
    ours = frechet_distance(*stats_of(a), *stats_of(b))
    assert np.isfinite(ours) and ours >= 0
    assert ours == pytest.approx(reference_frechet(*stats_of(a), *stats_of(b)), rel=1e-5)
    # Identical rank-deficient sets: exactly ~0 (sqrtm of a singular product is where the usual code drifts).
    assert frechet_distance(*stats_of(a), *stats_of(a)) == pytest.approx(0.0, abs=1e-8 * np.trace(stats_of(a)[1]))


def test_feature_stats_streaming_equals_one_shot_and_rejects_nan():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(101, 7)).astype(np.float32)
    s = FeatureStats()
    for i in range(0, 101, 10):
        s.add(x[i:i + 10])
    mean, cov = s.mean_cov()
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x.astype(np.float64), rowvar=False, bias=True), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(s.features(), x)
    with pytest.raises(ValueError, match="NaN"):
        s.add(np.full((2, 7), np.nan))


def brute_force_mmd2(x, y, k):
    m, n = len(x), len(y)
    xx = sum(k(x[i:i + 1], x[j:j + 1])[0, 0] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i:i + 1], y[j:j + 1])[0, 0] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i:i + 1], y[j:j + 1])[0, 0] for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mmd_unbiased_matches_brute_force_and_kid_protocol():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(12, 5)), rng.normal(size=(9, 5)) + 0.5
    k = PolynomialKernel()                                     # (x.y / D + 1)^3, the KID kernel
    assert mmd2_unbiased(x, y, k) == pytest.approx(brute_force_mmd2(x, y, k), rel=1e-12)
    # One subset holding every sample is the plain estimator (MMD does not depend on sample order).
    assert kernel_distance(y, x[:9], num_subsets=1, max_subset_size=100) == pytest.approx(
        mmd2_unbiased(x[:9], y, k), rel=1e-12)
    # Linear kernel: the estimator is unbiased for |mu_x - mu_y|^2.
    lin = PolynomialKernel(degree=1, gamma=1.0, coef0=0.0)
    draws = [mmd2_unbiased(rng.normal(size=(30, 3)), rng.normal(size=(30, 3)) + [1.0, 0.0, 2.0], lin)
             for _ in range(400)]
    assert np.mean(draws) == pytest.approx(5.0, abs=0.15)


def test_kid_separates_distributions_and_is_reproducible():
    rng = np.random.default_rng(5)
    real, same, shifted = rng.normal(size=(300, 8)), rng.normal(size=(300, 8)), rng.normal(size=(300, 8)) + 1.0
    near = kernel_distance(real, same, num_subsets=20, max_subset_size=100, seed=1)
    far = kernel_distance(real, shifted, num_subsets=20, max_subset_size=100, seed=1)
    assert abs(near) < 0.02 < far
    assert far == kernel_distance(real, shifted, num_subsets=20, max_subset_size=100, seed=1)


# ----------------------------------------------------------------------------------------------------------
# Published weights: real loading code, and the message when they are absent


def test_missing_weights_message_names_file_folder_and_url(tmp_path, monkeypatch):
    for spec in (W.I3D_WEIGHTS, W.INCEPTION_WEIGHTS):
        with pytest.raises(W.MissingWeightsError) as err:
            W.resolve_weights(spec)
        msg = str(err.value)
        assert spec.filename in msg and str(tmp_path / "cache" / "weights" / spec.filename) in msg
        assert spec.urls[0] in msg and spec.option in msg and "--random-features" in msg
    from gan.weights import WeightsError
    monkeypatch.setenv("REELGAN_WEIGHTS_DIR", str(tmp_path / "empty"))   # nothing cached, fetching off:
    monkeypatch.setenv("REELGAN_WEIGHTS_FETCH", "0")                   # an error naming the fix, never random
    for kind, name in (("inception", "inception"), ("i3d", "i3d")):
        with pytest.raises(WeightsError, match=f"reelgan-weights fetch {name}|REELGAN_WEIGHTS_FETCH"):
            build_extractor(kind)


def test_weights_file_path_and_sha256_check(tmp_path):
    f = tmp_path / "i3d_torchscript.pt"
    f.write_bytes(b"not really a network")
    assert W.resolve_weights(W.I3D_WEIGHTS, str(f)) == f
    good = W.sha256_of(f)
    assert W.resolve_weights(W.I3D_WEIGHTS, str(f), expected_sha256=good) == f
    with pytest.raises(W.WeightsMismatchError, match="sha256"):
        W.resolve_weights(W.I3D_WEIGHTS, str(f), expected_sha256="0" * 64)
    cached = W.weights_dir() / "inception-2015-12-05.pt"       # a file in the cache folder is found
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert W.resolve_weights(W.INCEPTION_WEIGHTS) == cached


def test_cli_refuses_published_metric_without_weights(tmp_path, monkeypatch):
    from gan.metrics.cli import metrics_cli
    monkeypatch.setenv("REELGAN_WEIGHTS_DIR", str(tmp_path / "empty"))   # not cached, fetching off: one line
    monkeypatch.setenv("REELGAN_WEIGHTS_FETCH", "0")
    result = CliRunner().invoke(metrics_cli, ["--data", "digits", "--resolution", "16", "--metrics", "fid",
                                              "--num", "4", "--quiet"])
    assert result.exit_code == 2
    assert "inception" in result.output and "REELGAN_WEIGHTS_FETCH" in result.output
    assert "Traceback" not in result.output


# ----------------------------------------------------------------------------------------------------------
# Real statistics cache


class CountingFeatures(FeatureExtractor):
    """Cheap stand-in feature net: per-clip channel means and a motion energy; counts its calls."""
    name = "counting"

    def __init__(self):
        self.calls = 0

    def __call__(self, clips):
        self.calls += 1
        x = clips.astype(np.float32)
        motion = np.abs(np.diff(x, axis=1)).mean(axis=(1, 2, 3, 4))
        return np.concatenate([x.mean(axis=(1, 2, 3)), motion[:, None]], axis=1)

    def identity(self):
        return {"name": self.name}

    def label(self):
        return "counting"


def test_cache_reuses_only_matching_statistics():
    ex = CountingFeatures()
    real = DatasetClips("digits", video_frames=16, num_videos=50)
    opts = MetricOptions(num_real=6, batch=3, progress=False)
    spec = ClipSpec(frames=4, resolution=16)
    first, note = real_statistics(real, spec, ex, opts)
    assert note.startswith("computed") and ex.calls == 2
    again, note = real_statistics(real, spec, ex, opts)
    assert note.startswith("cached") and ex.calls == 2          # no new feature pass
    np.testing.assert_array_equal(first.features(), again.features())
    assert first.mean_cov()[1].tobytes() == again.mean_cov()[1].tobytes()   # bit-identical
    for changed in (ClipSpec(frames=5, resolution=16), ClipSpec(frames=4, resolution=32),
                    ClipSpec(frames=4, resolution=16, stride=2)):
        calls = ex.calls
        _, note = real_statistics(real, changed, ex, opts)
        assert note.startswith("computed") and ex.calls > calls, changed
    calls = ex.calls
    _, note = real_statistics(DatasetClips("digits", content_seed=1, video_frames=16, num_videos=50), spec, ex, opts)
    assert note.startswith("computed") and ex.calls > calls     # another dataset seed
    _, note = real_statistics(real, spec, ex, MetricOptions(num_real=4, batch=3, progress=False))
    assert note.startswith("computed")                          # another N


def test_cache_file_for_another_key_is_ignored():
    ex = CountingFeatures()
    real = DatasetClips("digits", video_frames=16, num_videos=50)
    opts = MetricOptions(num_real=4, progress=False)
    stats, _ = real_statistics(real, ClipSpec(frames=4, resolution=16), ex, opts)
    key_a = stats_cache.stats_key(real.describe(), {"frames": 4, "resolution": 16, "stride": 1}, 4, 0,
                                  ex.identity(), "reelgan-v1")
    key_b = dict(key_a, num=5)
    stats_cache.stats_path(key_a).rename(stats_cache.stats_path(key_b))   # a file under the wrong name
    assert stats_cache.load_stats(key_b) is None


# ----------------------------------------------------------------------------------------------------------
# Pipelines


def test_random_features_pipeline_is_marked_not_comparable():
    real = DatasetClips("digits", video_frames=16, num_videos=20)
    fake = DatasetClips("digits", content_seed=1, video_frames=16, num_videos=20)
    opts = MetricOptions(num_real=4, num_fake=4, batch=4, random_features=True, feature_input_size=75,
                         progress=False, kid_subsets=5)
    report = compute_metrics(["fvd16", "kvd16", "fid", "kid"], fake, real, 16, opts)
    for mid, r in report["results"].items():
        assert r["features"] == "random-init (NOT comparable)" and r["comparable"] is False, mid
        assert math.isfinite(r["value"])
        if r["kind"] == "frechet":
            assert r["value"] > 0, mid                                  # features vary (no collapsed network)
    assert report["results"]["fvd16"]["num_real"] == 4                 # clips
    assert report["results"]["fid"]["num_real"] == 4 * 16              # frames
    assert report["summary"].startswith("[random-init features: NOT comparable]")
    with pytest.raises(ValueError, match="random features"):
        build_extractor("i3d", input_size=64)                          # sizes only for random features


def test_i3d_architecture_shapes_for_16_and_128_frames():
    from gan.metrics.i3d import InceptionI3d
    torch.manual_seed(0)
    net = InceptionI3d().eval()
    assert 12e6 < sum(p.numel() for p in net.parameters()) < 13e6    # the published I3D has ~12.7M
    with torch.no_grad():
        assert net(torch.randn(1, 3, 16, 32, 32)).shape == (1, 400)
        assert net(torch.randn(1, 3, 128, 32, 32)).shape == (1, 400)


def test_offline_metric_floor_and_sensitivity():
    """Real vs independent real is the floor; frozen or shuffled motion and noise score clearly worse."""
    real = DatasetClips("digits", video_frames=32, num_videos=400)
    other = DatasetClips("digits", content_seed=1, video_frames=32, num_videos=400)
    spec = ClipSpec(frames=16, resolution=32)
    ex = build_extractor("offline", dataset="digits")
    clips = np.concatenate(list(other.clips(256, spec, batch=128)))       # [256, 16, 32, 32, 3]
    base = FeatureStats.from_features(np.concatenate([ex(c) for c in real.clips(256, spec, batch=128)]))

    def fvd(x):
        return frechet_distance(*base.mean_cov(), *FeatureStats.from_features(ex(x)).mean_cov())

    floor = fvd(clips)
    frozen = fvd(np.repeat(clips[:, :1], 16, axis=1))                   # right objects, no motion
    shuffled = fvd(clips[:, np.random.default_rng(0).permutation(16)])  # right objects, jumping around
    noise = fvd(np.random.default_rng(0).integers(0, 255, clips.shape, dtype=np.uint8))
    assert frozen > 1.4 * floor and shuffled > 1.8 * floor and noise > 50 * floor, (floor, frozen, shuffled, noise)


def _tiny_checkpoint(tmp_path, cfg, G):
    from gan.checkpoint import FORMAT_VERSION, save_atomic
    path = tmp_path / "tiny.pt"
    save_atomic({"format_version": FORMAT_VERSION, "config": cfg.to_dict(), "G_ema": G.state_dict(), "c_dim": 0,
                 "step": 0}, path)
    return path


def test_cli_on_checkpoint_and_mp4_folder_gives_same_numbers_twice(tmp_path, tiny_cfg, tiny_G):
    from gan.metrics.cli import metrics_cli
    from gan.sampling import generate
    ckpt = _tiny_checkpoint(tmp_path, tiny_cfg, tiny_G)
    args = ["--checkpoint", str(ckpt), "--metrics", "fvd-offline,kvd-offline", "--num", "8", "--quiet"]
    runs = []
    for i in range(2):
        out = tmp_path / f"ckpt{i}.json"
        result = CliRunner().invoke(metrics_cli, args + ["--out", str(out)])
        assert result.exit_code == 0, result.output
        runs.append(json.loads(out.read_text()))
    a, b = (r["results"]["fvd-offline"] for r in runs)
    assert a["name"] == "FVD-shapes-offline" and a["value"] == b["value"] > 0
    assert a["real_statistics"].startswith("computed") and b["real_statistics"].startswith("cached")
    assert runs[0]["results"]["kvd-offline"]["value"] == runs[1]["results"]["kvd-offline"]["value"]
    assert "FVD-shapes-offline" in result.output                        # the one-line summary

    videos = tmp_path / "videos"
    generate(str(ckpt), str(videos), list(range(8)), frames=16)
    folder_args = ["--videos", str(videos), "--data", "shapes", "--data-seed", "0", "--resolution", "16",
                   "--metrics", "fvd-offline", "--num", "8", "--quiet"]
    values = []
    for _ in range(2):
        result = CliRunner().invoke(metrics_cli, folder_args)
        assert result.exit_code == 0, result.output
        values.append(result.output.strip())
    assert values[0] == values[1] and "FVD-shapes-offline" in values[0]


def test_folder_with_too_few_videos_says_so(tmp_path):
    from gan.video_io import write_mp4
    write_mp4(tmp_path / "a.mp4", np.zeros((16, 16, 16, 3), np.uint8), 16)
    with pytest.raises(ValueError, match="fewer than the 4 clips"):
        next(FolderClips(str(tmp_path)).clips(4, ClipSpec(frames=16, resolution=16)))


# ----------------------------------------------------------------------------------------------------------
# Self-trained networks and the training hook


def test_self_trained_nets_are_cached_by_recipe(tmp_path):
    from gan import trained_nets as trained
    calls = []

    def train_fn(recipe):
        calls.append(recipe)
        return {"w": torch.full((2,), float(recipe["seed"]))}, {"score": 1.0}

    recipe = {"net": "test", "seed": 3}
    state, info = trained.load_or_train("unit", "digits", recipe, train_fn)
    assert len(calls) == 1 and info["file"].startswith(str(tmp_path / "cache"))
    state2, info2 = trained.load_or_train("unit", "digits", recipe, train_fn)
    assert len(calls) == 1 and torch.equal(state["w"], state2["w"]) and info2["sha256"] == info["sha256"]
    trained.load_or_train("unit", "digits", dict(recipe, seed=4), train_fn)   # another recipe: trains again
    assert len(calls) == 2
    with pytest.raises(trained.TrainedNetError, match="trained_nets_cli"):
        trained.load_or_train("unit", "digits", dict(recipe, seed=5), train_fn, allow_train=False)


def test_shipped_offline_and_classifier_weights_match_their_recipes():
    """The repository ships weights made by its own training code; a recipe change must come with new ones."""
    from gan import trained_nets as trained
    from gan.analysis.classifier_train import classifier_recipe
    from gan.metrics.offline import recipe
    for dataset in ("digits", "shapes"):
        for kind, r in (("offline", recipe(dataset)), ("classifier", classifier_recipe(dataset))):
            path = trained.asset_path(kind, dataset)
            assert path.is_file() and path.stat().st_size < 2e6, path
            blob = torch.load(path, weights_only=True)
            assert blob["recipe"] == r, f"{path} is stale: run python -m gan.trained_nets_cli --ship"


def test_training_code_runs_on_a_tiny_recipe():
    from gan.analysis.classifier_train import classifier_recipe, train_classifier
    from gan.metrics.offline import recipe
    from gan.metrics.offline_train import train_offline_net
    r = dict(recipe("shapes"), train_clips=8, steps=2, batch=4, test_clips=6)
    state, scores = train_offline_net(r, progress=False)
    assert {"presence_exact", "count_accuracy", "velocity_rmse"} <= set(scores) and "embed.weight" in state
    r = dict(classifier_recipe("digits"), resolutions=[16], clips_per_resolution=3, steps=2, batch=8)
    state, scores = train_classifier(r, progress=False)
    assert 0.0 <= scores["test_accuracy"] <= 1.0 and scores["num_test_objects"] > 0


def test_training_metric_config_is_validated(tiny_cfg):
    from gan.config import ConfigError, validate
    tiny_cfg.train.metrics_every = 2
    with pytest.raises(ConfigError, match="train.metrics"):
        validate(tiny_cfg)
    tiny_cfg.train.metrics = ["fvd-offline"]
    tiny_cfg.train.best_metric = "identity"
    with pytest.raises(ConfigError, match="best_metric"):
        validate(tiny_cfg)
    from gan.training.quality import check_metric_names
    with pytest.raises(ValueError, match="unknown metric 'fvd'"):
        check_metric_names(["fvd"], None)


class RecordingLogger:
    def __init__(self):
        self.records, self.lines = [], []

    def scalars(self, step, seen, values):
        self.records.append((step, dict(values)))

    def text(self, msg):
        self.lines.append(msg)


def test_training_hook_logs_and_keeps_the_best_checkpoint(tmp_path, tiny_cfg, tiny_G, monkeypatch):
    from gan.training import quality as during_training
    from gan.sampling import load_generator
    monkeypatch.setattr(during_training, "TRAINING_CLIPS", 6)
    monkeypatch.setattr(during_training, "ANALYSIS_CLIPS", 2)
    tiny_cfg.train.metrics_every = 2
    tiny_cfg.train.metrics = ["fvd-offline", "persistence"]
    tiny_cfg.train.best_metric = "fvd-offline"
    hook = during_training.TrainingMetrics(tiny_cfg, tmp_path, "cpu", rank=0)
    assert hook.due(4) and not hook.due(3)
    log = RecordingLogger()
    first = hook.run(2, 8, tiny_G, log)
    assert set(log.records[0][1]) == {"metrics/fvd-offline", "metrics/persistence"}
    G, info = load_generator(tmp_path / "best.pt")
    assert info["step"] == 2
    hook.best_value = first["fvd-offline"] / 2                  # pretend an earlier step was much better
    hook.run(4, 16, tiny_G, log)
    assert load_generator(tmp_path / "best.pt")[1]["step"] == 2   # not replaced by a worse value
    assert not during_training.TrainingMetrics(tiny_cfg.__class__(), tmp_path, "cpu", rank=0).enabled


def test_training_run_with_metrics_every_n_steps(tmp_path, monkeypatch):
    """End to end through the loop's hook: metrics in log.jsonl, best.pt written."""
    from gan.config import load_config
    from gan.training import quality as during_training
    from gan.training import train
    from tests.conftest import ROOT
    monkeypatch.setattr(during_training, "TRAINING_CLIPS", 6)
    cfg = load_config(str(ROOT / "configs" / "tiny.yaml"),
                      {"train": {"steps": 2, "metrics_every": 2, "metrics": ["fvd-offline"],
                                 "best_metric": "fvd-offline"}})
    train(cfg, str(tmp_path / "run"), progress=False)
    logs = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert any("metrics/fvd-offline" in r and r["step"] == 2 for r in logs)
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()
