"""reelgan's FID / KID maths against an independent library implementation on identical features.

The reference is torchmetrics' public `FrechetInceptionDistance` / `KernelInceptionDistance` modules with an
identity feature extractor, so the library computes its own statistics from the raw features and its own
distance (eigvals of sigma1 @ sigma2; reelgan uses two symmetric eigendecompositions instead).
One convention differs and is converted, not hidden: torchmetrics' covariance is unbiased (1 / (N - 1)),
reelgan's is the maximum-likelihood 1 / N of stylegan2-ada.
"""
import warnings

import numpy as np
import pytest
import torch
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance, poly_mmd

from gan.metrics.distances import FeatureStats, frechet_distance, kernel_distance, mmd2_unbiased

RTOL = 1e-4


class _Identity(torch.nn.Module):
    """Feature 'extractor' that passes given features through: the library sees exactly reelgan's arrays."""

    def __init__(self, dim: int):
        super().__init__()
        self.num_features = dim

    def forward(self, x):
        return x


def _features(n, d, seed):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n, d)).astype(np.float32)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    fake = (rng.normal(size=(n, d)) @ mix * 1.5 + 0.3).astype(np.float32)   # correlated, shifted
    return real, fake


@pytest.mark.numerics
@pytest.mark.parametrize("n,d,seed", [(256, 16, 0), (64, 64, 1), (24, 32, 2)])   # last: N < D, singular
def test_fid_matches_torchmetrics(n, d, seed):
    real, fake = _features(n, d, seed)
    ref = FrechetInceptionDistance(feature=_Identity(d))
    ref.update(torch.from_numpy(real), real=True)
    ref.update(torch.from_numpy(fake), real=False)
    expected = float(ref.compute())
    (m1, c1), (m2, c2) = FeatureStats.from_features(real).mean_cov(), FeatureStats.from_features(fake).mean_cov()
    unbiased = n / (n - 1)
    ours = frechet_distance(m1, c1 * unbiased, m2, c2 * unbiased)
    assert ours == pytest.approx(expected, rel=RTOL)
    # The 1/N convention is a different number, by O(1/N): the conversion above is needed, not cosmetic.
    assert frechet_distance(m1, c1, m2, c2) != pytest.approx(expected, rel=RTOL)


@pytest.mark.numerics
@pytest.mark.parametrize("n,d,seed", [(200, 16, 0), (50, 64, 3)])
def test_kid_matches_torchmetrics(n, d, seed):
    real, fake = _features(n, d, seed)
    # One subset of every feature: the library's random subset is then a permutation, and MMD ignores order.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)                     # "saves all features in a buffer"
        ref = KernelInceptionDistance(feature=_Identity(d), subsets=1, subset_size=n)
    ref.update(torch.from_numpy(real), real=True)
    ref.update(torch.from_numpy(fake), real=False)
    expected = float(ref.compute()[0])
    assert kernel_distance(real, fake, num_subsets=1, max_subset_size=n) == pytest.approx(expected, rel=RTOL)


@pytest.mark.numerics
def test_mmd_subset_estimate_matches_torchmetrics():
    # Per-subset estimator on a near-identical pair: the unbiased estimate is negative here (-0.25).
    real, _ = _features(64, 8, 4)
    fake = real[::-1] + 0.05 * np.random.default_rng(5).normal(size=real.shape).astype(np.float32)
    expected = float(poly_mmd(torch.from_numpy(real).double(), torch.from_numpy(fake).double()))
    assert mmd2_unbiased(real, fake) == pytest.approx(expected, rel=RTOL, abs=1e-9)
