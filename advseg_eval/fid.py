"""Fréchet distance between Gaussians fitted to features, and KID (kernel inception distance).

Fréchet distance of N(mu1, S1) and N(mu2, S2):

    d² = |mu1 - mu2|² + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^{1/2})

Two ways to get the trace term, both in float64:

- ``"sqrtm"``: ``scipy.linalg.sqrtm(S1 @ S2)`` with the standard fix used by pytorch-fid/TTUR:
  if the result is not finite, add ``eps * I`` to both covariances and retry; a small imaginary
  part from round-off is dropped, a large one is an error. This is the reference computation
  (what published FIDs used). It costs a dense d x d Schur decomposition (seconds to a minute
  for d = 2048).
- ``"lowrank"``: exact identity for sets smaller than the feature dimension. With
  S1 = A Aᵀ (A = centred features / sqrt(n1 - 1), d x n1), the non-zero eigenvalues of S1 S2
  are those of the symmetric PSD n1 x n1 matrix Aᵀ S2 A, so Tr((S1 S2)^{1/2}) is the sum of
  their square roots. Cheaper and more accurate than ``sqrtm`` on the rank-deficient S1 that a
  small set gives (rank <= n1 - 1).

``"auto"`` uses ``lowrank`` when features of a set with fewer samples than dimensions are at
hand, else ``sqrtm``.

KID (Bińkowski et al., 2018): the unbiased estimate of MMD² with the polynomial kernel
k(x, y) = (xᵀy / d + 1)³, averaged over random subsets (the usual 100 subsets of 1000).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import linalg

__all__ = [
    "KIDResult",
    "frechet_distance",
    "frechet_distance_lowrank",
    "frechet_distance_from_features",
    "gaussian_stats",
    "kid",
    "mmd2_unbiased",
    "polynomial_kernel",
    "resolve_fd_method",
]


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (float64) of ``features`` (N, D); N must be >= 2."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need features of shape (N>=2, D) to fit a Gaussian, got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _check_pair(mu1, sigma1, mu2, sigma2):
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            f"mismatched statistics: mu1 {mu1.shape}, sigma1 {sigma1.shape}, mu2 {mu2.shape}, sigma2 {sigma2.shape}"
        )
    return mu1, sigma1, mu2, sigma2


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Fréchet distance with ``scipy.linalg.sqrtm`` (the reference/pytorch-fid numerics)."""
    mu1, sigma1, mu2, sigma2 = _check_pair(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        warnings.warn(
            f"Fréchet distance: S1 S2 is singular; adding {eps} to the covariance diagonals",
            RuntimeWarning,
            stacklevel=2,
        )
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"Fréchet distance: sqrtm has a large imaginary component ({np.abs(covmean.imag).max():.3g}); "
                "the covariances are not valid (NaN features, or far too few samples)"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def _trace_sqrt_product_lowrank(a: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((A Aᵀ S2)^{1/2}) via the eigenvalues of Aᵀ S2 A (A: d x n)."""
    m = a.T @ sigma2 @ a
    m = 0.5 * (m + m.T)
    ev = np.linalg.eigvalsh(m)
    scale = max(float(np.abs(ev).max()), 1e-300)
    if ev.min() < -1e-8 * scale:
        raise ValueError(f"Fréchet distance: covariance product has a negative eigenvalue {ev.min():.3g}")
    # eigenvalues within round-off of zero (e.g. the one centring removes) are zero: their
    # square roots would otherwise turn 1e-16-level noise into 1e-8-level errors
    ev[ev < 1e-12 * scale] = 0.0
    return float(np.sqrt(ev).sum())


def frechet_distance_lowrank(mu1, features1: np.ndarray, mu2, sigma2) -> float:
    """Exact Fréchet distance when set 1 is given by its features (N1, D), set 2 by (mu2, S2).

    S1 is the unbiased covariance of ``features1``; cost O(D² N1 + N1³) instead of O(D³).
    """
    f1 = np.asarray(features1, np.float64)
    if f1.ndim != 2 or f1.shape[0] < 2:
        raise ValueError(f"features1 must be (N>=2, D), got {f1.shape}")
    mu1 = np.asarray(mu1, np.float64)
    a = (f1 - mu1).T / np.sqrt(f1.shape[0] - 1)
    mu2, sigma2 = np.asarray(mu2, np.float64), np.asarray(sigma2, np.float64)
    d = f1.shape[1]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma2.shape != (d, d):
        raise ValueError(
            f"mismatched statistics: features1 {f1.shape}, mu1 {mu1.shape}, mu2 {mu2.shape}, sigma2 {sigma2.shape}"
        )
    diff = mu1 - mu2
    tr1 = float(np.einsum("ij,ij->", a, a))
    return float(diff @ diff + tr1 + np.trace(sigma2) - 2.0 * _trace_sqrt_product_lowrank(a, sigma2))


def frechet_distance_from_features(
    features1: np.ndarray | None,
    stats1: tuple[np.ndarray, np.ndarray],
    features2: np.ndarray | None,
    stats2: tuple[np.ndarray, np.ndarray],
    method: str = "auto",
) -> float:
    """Pick the computation (see module docstring). ``stats*`` = (mu, sigma); features optional."""
    candidates = [
        (f, s, other) for f, s, other in ((features1, stats1, stats2), (features2, stats2, stats1)) if f is not None
    ]
    candidates.sort(key=lambda c: c[0].shape[0])
    n_small = candidates[0][0].shape[0] if candidates else None
    if resolve_fd_method(method, n_small, stats1[0].shape[0]) == "lowrank":
        if not candidates:
            raise ValueError("lowrank Fréchet distance needs the features of at least one set")
        f, (mu, _), (mu_o, sigma_o) = candidates[0]
        return frechet_distance_lowrank(mu, f, mu_o, sigma_o)
    return frechet_distance(stats1[0], stats1[1], stats2[0], stats2[1])


def resolve_fd_method(method: str, n_smallest_with_features: int | None, dim: int) -> str:
    """``"auto"`` -> ``"lowrank"`` when some set with features has fewer than ``dim + 1`` samples
    (its covariance is rank-deficient), else ``"sqrtm"``; explicit choices pass through."""
    if method not in ("auto", "sqrtm", "lowrank"):
        raise ValueError(f"method must be auto|sqrtm|lowrank, got {method!r}")
    if method != "auto":
        return method
    return "lowrank" if n_smallest_with_features is not None and n_smallest_with_features - 1 < dim else "sqrtm"


# --------------------------------------------------------------------------- KID


def polynomial_kernel(
    x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef0: float = 1.0
) -> np.ndarray:
    """k(x, y) = (gamma xᵀy + coef0)^degree, gamma defaulting to 1/D."""
    g = 1.0 / x.shape[1] if gamma is None else gamma
    return (g * (x @ y.T) + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, **kernel_kwargs) -> float:
    """Unbiased MMD² estimate: mean off-diagonal k(x,x') + mean off-diagonal k(y,y') - 2 mean k(x,y)."""
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"unbiased MMD needs >= 2 samples per set, got {m} and {n}")
    kxx = polynomial_kernel(x, x, **kernel_kwargs)
    kyy = polynomial_kernel(y, y, **kernel_kwargs)
    kxy = polynomial_kernel(x, y, **kernel_kwargs)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


@dataclass(frozen=True)
class KIDResult:
    mean: float
    std: float
    subset_size: int
    num_subsets: int


def kid(
    features1: np.ndarray,
    features2: np.ndarray,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
) -> KIDResult:
    """KID: mean and std of unbiased MMD² over ``num_subsets`` random subsets.

    Each subset draws ``min(subset_size, N1, N2)`` samples without replacement from each set
    (seeded, so the value is reproducible); when that is both whole sets, one evaluation is
    done (``num_subsets`` = 1 in the result). Values are raw MMD² (not x1000).
    """
    f1 = np.asarray(features1, np.float64)
    f2 = np.asarray(features2, np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"KID needs two (N, D) feature arrays with the same D, got {f1.shape} and {f2.shape}")
    m = min(subset_size, f1.shape[0], f2.shape[0])
    if m < 2:
        raise ValueError(f"KID needs >= 2 images per set, got {f1.shape[0]} and {f2.shape[0]}")
    if m == f1.shape[0] == f2.shape[0]:
        num_subsets = 1  # every "subset" would be the whole of both sets: one evaluation is exact
    rng = np.random.default_rng(seed)
    vals = np.empty(num_subsets)
    for i in range(num_subsets):
        x = f1[rng.choice(f1.shape[0], m, replace=False)]
        y = f2[rng.choice(f2.shape[0], m, replace=False)]
        vals[i] = mmd2_unbiased(x, y, degree=degree, gamma=gamma, coef0=coef0)
    return KIDResult(mean=float(vals.mean()), std=float(vals.std()), subset_size=m, num_subsets=num_subsets)
