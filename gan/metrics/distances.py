"""Distances between two sets of features: Fréchet distance (FID / FVD) and unbiased polynomial-kernel MMD
(KID / KVD). All arithmetic is float64 numpy; features arrive as `[N, D]` arrays.

Fréchet distance (Heusel et al. 2017, eq. 6) between Gaussians fitted to the two sets:

    d^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))

The usual code takes `scipy.linalg.sqrtm(S1 @ S2)`, whose result turns complex and inaccurate when a
covariance is near-singular (fewer samples than dimensions, constant features). S1 S2 is similar to the
symmetric PSD matrix A = S1^(1/2) S2 S1^(1/2), so tr((S1 S2)^(1/2)) = sum(sqrt(eig(A))): two symmetric
eigendecompositions, eigenvalues clamped at 0, no complex numbers and no ad-hoc `eps * I` offset.

KID (Binkowski et al. 2018): the unbiased estimator of MMD^2 with the cubic polynomial kernel
k(x, y) = (x.y / D + 1)^3, averaged over random subsets as in stylegan2-ada (100 subsets of <= 1000).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


class FeatureStats:
    """Running count, mean and covariance of features in float64, optionally keeping the raw features
    (KID needs them). `add()` accepts batches `[B, D]` of any float dtype."""

    def __init__(self, keep_features: bool = True):
        self.keep_features = keep_features
        self.count = 0
        self._sum: Optional[np.ndarray] = None                # [D]
        self._outer: Optional[np.ndarray] = None              # [D, D] sum of x x^T
        self._features = []

    @property
    def dim(self) -> Optional[int]:
        return None if self._sum is None else len(self._sum)

    def add(self, x) -> None:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"features must be [N, D], got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("features contain NaN or inf: the feature network or the clips are broken")
        if self._sum is None:
            self._sum = np.zeros(x.shape[1])
            self._outer = np.zeros((x.shape[1], x.shape[1]))
        elif x.shape[1] != len(self._sum):
            raise ValueError(f"feature size changed from {len(self._sum)} to {x.shape[1]}")
        self.count += len(x)
        self._sum += x.sum(axis=0)
        self._outer += x.T @ x
        if self.keep_features:
            self._features.append(x.astype(np.float32))

    def mean_cov(self):
        """(mean [D], covariance [D, D]) with the maximum-likelihood 1/N normalisation (as stylegan2-ada)."""
        if self.count < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance, got {self.count}")
        mean = self._sum / self.count
        cov = self._outer / self.count - np.outer(mean, mean)
        return mean, (cov + cov.T) / 2                        # exact symmetry despite rounding

    def features(self) -> np.ndarray:
        if not self.keep_features:
            raise ValueError("these statistics were collected without keep_features=True")
        if not self._features:
            return np.zeros((0, self.dim or 0), np.float32)
        return np.concatenate(self._features)

    @classmethod
    def from_features(cls, x) -> "FeatureStats":
        stats = cls(keep_features=True)
        stats.add(x)
        return stats


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (negative rounding-noise eigenvalues -> 0)."""
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2); float64, always >= 0."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"mismatched statistics: means {mu1.shape} / {mu2.shape}, "
                         f"covariances {sigma1.shape} / {sigma2.shape}")
    root1 = _sqrt_psd((sigma1 + sigma1.T) / 2)
    inner = root1 @ ((sigma2 + sigma2.T) / 2) @ root1         # similar to sigma1 @ sigma2, but symmetric PSD
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    d2 = np.square(mu1 - mu2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean
    return float(max(d2, 0.0))                                # tiny negative values are rounding noise


def frechet_distance_from_stats(a: FeatureStats, b: FeatureStats) -> float:
    return frechet_distance(*a.mean_cov(), *b.mean_cov())


@dataclass(frozen=True)
class PolynomialKernel:
    """k(x, y) = (gamma * x.y + coef0) ^ degree; gamma None means 1 / D (the KID kernel)."""
    degree: int = 3
    gamma: Optional[float] = None
    coef0: float = 1.0

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        gamma = 1.0 / x.shape[1] if self.gamma is None else self.gamma
        return (gamma * (x @ y.T) + self.coef0) ** self.degree


def mmd2_unbiased(x, y, kernel: PolynomialKernel = PolynomialKernel()) -> float:
    """Unbiased MMD^2 (Gretton et al. 2012, eq. 3): within-set sums skip the diagonal, the cross term does not.

    x: [m, D], y: [n, D]. The estimate is unbiased, so it can be slightly negative for identical distributions.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"MMD needs at least 2 samples per set, got {m} and {n}")
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    xx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(xx + yy - 2 * kxy.mean())


def kernel_distance(real, fake, num_subsets: int = 100, max_subset_size: int = 1000, seed: int = 0,
                    kernel: PolynomialKernel = PolynomialKernel()) -> float:
    """KID / KVD: mean unbiased MMD^2 over `num_subsets` random equal-size subsets (stylegan2-ada protocol).

    Subsets are drawn without replacement from a seeded generator, so the value is reproducible.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    m = min(len(real), len(fake), max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 real and 2 fake features, got {len(real)} and {len(fake)}")
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = fake[rng.choice(len(fake), m, replace=False)]
        y = real[rng.choice(len(real), m, replace=False)]
        total += mmd2_unbiased(x, y, kernel)
    return total / num_subsets
