"""Line drawings from edge maps and photos (numpy / OpenCV / scikit-image; no weights, no MATLAB).

- :func:`hed_postprocess`: the official AdvSegLoss/pix2pix post-processing of an HED probability
  map: edge non-maximum suppression (as in the Dollár edges toolbox ``edgesNms``, orientation from
  second derivatives of the triangle-smoothed map), threshold 25/255, thinning to 1-px lines,
  removal of connected edges shorter than 5 px, black lines (0) on white (255).
- :func:`xdog`: extended difference of Gaussians (Winnemöller et al. 2012), weight-free.
- :func:`canny`: OpenCV Canny edges, weight-free.

Every function is deterministic: the same input gives byte-identical output.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = [
    "HED_THRESHOLD",
    "canny",
    "conv_tri",
    "edge_orientation",
    "edges_nms",
    "hed_postprocess",
    "remove_small_edges",
    "thin_edges",
    "to_gray01",
    "xdog",
]

#: Threshold of the official post-processing on NMS'd HED probabilities.
HED_THRESHOLD = 25.0 / 255.0


# --------------------------------------------------------------------------- helpers


def _check_prob(prob: np.ndarray) -> np.ndarray:
    a = np.asarray(prob)
    if a.ndim > 2 and all(n == 1 for n in a.shape[:-2]):  # (1, 1, H, W) or (1, H, W)
        a = a.reshape(a.shape[-2:])
    elif a.ndim == 3 and a.shape[2] == 1:  # (H, W, 1)
        a = a[..., 0]
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"edge probability map must be 2-D (H, W), got shape {np.shape(prob)}")
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(
            f"edge probability map must be float in [0, 1], got dtype {a.dtype} (divide uint8 maps by 255)"
        )
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError("edge probability map contains NaN or infinity")
    lo, hi = float(a.min()), float(a.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"edge probability map must be in [0, 1], got range [{lo:.4g}, {hi:.4g}]")
    return np.clip(a, 0.0, 1.0)


def to_gray01(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) or gray (H, W) -> float64 luma in [0, 1] (ITU-R 601 weights)."""
    a = np.asarray(rgb)
    if a.dtype != np.uint8 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)) or 0 in a.shape[:2]:
        raise ValueError(f"expected a uint8 RGB image (H, W, 3) or gray (H, W), got shape {a.shape}, dtype {a.dtype}")
    if a.ndim == 2:
        return a.astype(np.float64) / 255.0
    w = np.array([0.299, 0.587, 0.114])
    return (a.astype(np.float64) @ w) / 255.0


def _lines_to_uint8(mask: np.ndarray) -> np.ndarray:
    """Boolean line mask -> uint8 black (0) lines on white (255)."""
    return np.where(mask, 0, 255).astype(np.uint8)


def conv_tri(img: np.ndarray, r: int) -> np.ndarray:
    """Triangle filter of integer radius ``r`` (kernel [1..r+1..1]/(r+1)^2), symmetric padding.

    Same smoothing as the edges toolbox's ``convTri`` for integer radii; ``r=0`` is the identity.
    """
    a = np.asarray(img, dtype=np.float64)
    if r <= 0:
        return a.copy()
    r = int(r)
    k = np.concatenate([np.arange(1, r + 2), np.arange(r, 0, -1)]).astype(np.float64) / (r + 1) ** 2
    p = np.pad(a, r, mode="symmetric")
    # Separable 'valid' convolution, rows then columns (kernel is symmetric).
    tmp = np.zeros((p.shape[0], a.shape[1]))
    for i, kv in enumerate(k):
        tmp += kv * p[:, i : i + a.shape[1]]
    out = np.zeros_like(a)
    for i, kv in enumerate(k):
        out += kv * tmp[i : i + a.shape[0], :]
    return out


def _grad(a: np.ndarray, axis: int) -> np.ndarray:
    """MATLAB-style gradient: central differences inside, one-sided at the ends, 0 for length 1."""
    if a.shape[axis] < 2:
        return np.zeros_like(a)
    return np.gradient(a, axis=axis)


def edge_orientation(edges: np.ndarray, smooth_radius: int = 4) -> np.ndarray:
    """Edge normal orientation in [0, pi) from second derivatives of the smoothed edge map.

    ``O = mod(atan(Oyy * sign(-Oxy) / (Oxx + 1e-5)), pi)`` with ``Ox, Oy`` the gradients of
    ``conv_tri(edges, smooth_radius)``: the recipe of the edges toolbox / pix2pix post-processing.
    x runs along columns, y along rows.
    """
    s = conv_tri(edges, smooth_radius)
    ox, oy = _grad(s, 1), _grad(s, 0)
    oxx = _grad(ox, 1)
    oxy, oyy = _grad(oy, 1), _grad(oy, 0)
    return np.mod(np.arctan(oyy * np.sign(-oxy) / (oxx + 1e-5)), np.pi)


def _interp(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear sample of ``img`` at (x=column, y=row), coordinates clamped inside the image."""
    h, w = img.shape
    x = np.clip(x, 0.0, max(w - 1.001, 0.0))
    y = np.clip(y, 0.0, max(h - 1.001, 0.0))
    x0 = np.floor(x).astype(np.intp)
    y0 = np.floor(y).astype(np.intp)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    dx, dy = x - x0, y - y0
    return (
        img[y0, x0] * (1 - dx) * (1 - dy)
        + img[y0, x1] * dx * (1 - dy)
        + img[y1, x0] * (1 - dx) * dy
        + img[y1, x1] * dx * dy
    )


def edges_nms(
    edges: np.ndarray, orientation: np.ndarray, radius: int = 1, border: int = 5, multiplier: float = 1.01
) -> np.ndarray:
    """Edge non-maximum suppression (the algorithm of the edges toolbox's ``edgesNms``).

    A pixel keeps its value ``e`` only if ``multiplier * e`` is not smaller than the edge map
    sampled (bilinearly) at distances ``1..radius`` on both sides along its normal
    ``(cos O, sin O)``; otherwise it becomes 0. Then values within ``border`` px of the image
    edge are scaled down linearly (to 0 on the outermost row/column), which removes the noisy
    responses there. Returns a new float64 map.
    """
    e = np.asarray(edges, dtype=np.float64)
    o = np.asarray(orientation, dtype=np.float64)
    if e.shape != o.shape or e.ndim != 2:
        raise ValueError(f"edges and orientation must be 2-D of one shape, got {e.shape} and {o.shape}")
    h, w = e.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    cos_o, sin_o = np.cos(o), np.sin(o)
    scaled = e * multiplier
    keep = e != 0
    for d in range(-radius, radius + 1):
        if d == 0:
            continue
        keep &= ~(scaled < _interp(e, xs + d * cos_o, ys + d * sin_o))
    out = np.where(keep, e, 0.0)
    s = min(int(border), w // 2, h // 2)
    if s > 0:
        ramp_x = np.minimum(1.0, np.minimum(np.arange(w), np.arange(w)[::-1]) / s)
        ramp_y = np.minimum(1.0, np.minimum(np.arange(h), np.arange(h)[::-1]) / s)
        out *= ramp_y[:, None] * ramp_x[None, :]
    return out


def thin_edges(mask: np.ndarray) -> np.ndarray:
    """Thin a binary mask to 1-px lines until nothing changes (like MATLAB ``bwmorph(.., 'thin', inf)``)."""
    from skimage.morphology import thin

    return thin(np.asarray(mask, dtype=bool))


def remove_small_edges(mask: np.ndarray, min_px: int, connectivity: int = 8) -> np.ndarray:
    """Drop 8-connected (or 4-) components with fewer than ``min_px`` pixels (like ``bwareaopen``)."""
    m = np.asarray(mask, dtype=bool)
    if min_px <= 1 or not m.any():
        return m.copy()
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=connectivity)
    big = stats[:, cv2.CC_STAT_AREA] >= min_px
    big[0] = False  # background
    return big[labels]


# --------------------------------------------------------------------------- HED


def hed_postprocess(
    prob: np.ndarray,
    threshold: float = HED_THRESHOLD,
    min_edge_px: int = 5,
    nms_radius: int = 1,
    nms_border: int = 5,
    nms_multiplier: float = 1.01,
    smooth_radius: int = 4,
) -> np.ndarray:
    """HED edge probabilities -> a line drawing, as in the official data pipeline.

    Steps: orientation from the triangle-smoothed map (``smooth_radius``), edge NMS
    (``nms_radius``, ``nms_multiplier``, border ramp ``nms_border``), keep ``> threshold``
    (25/255), thin to 1-px lines, remove 8-connected edges with fewer than ``min_edge_px`` pixels.

    Args:
        prob: (H, W) float edge probabilities in [0, 1] (singleton axes such as (1, 1, H, W) are
            squeezed). Integer maps are refused.
    Returns:
        (H, W) uint8: black lines (0) on white (255).
    """
    e = _check_prob(prob)
    nms = edges_nms(e, edge_orientation(e, smooth_radius), nms_radius, nms_border, nms_multiplier)
    lines = thin_edges(nms > threshold)
    lines = remove_small_edges(lines, min_edge_px)
    return _lines_to_uint8(lines)


# --------------------------------------------------------------------------- weight-free methods


def _gauss(a: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return a.copy()
    k = 2 * int(math.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(a, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def xdog(
    rgb: np.ndarray,
    sigma: float = 0.8,
    k: float = 1.6,
    tau: float = 0.98,
    epsilon: float = -0.005,
    phi: float = 200.0,
    binarize: bool = False,
) -> np.ndarray:
    """Extended difference of Gaussians line drawing (Winnemöller, Kyprianidis & Olsen 2012).

    ``D = G_sigma(g) - tau * G_{k sigma}(g)`` on the luma ``g`` in [0, 1]; the tone is
    ``1`` where ``D >= epsilon`` and ``1 + tanh(phi * (D - epsilon))`` below, so flat areas stay
    white and the dark side of edges turns into lines.

    Args:
        rgb: uint8 RGB (H, W, 3) or gray (H, W).
        sigma: scale of the fine Gaussian in px (larger: fewer, thicker lines).
        k: ratio of the coarse to the fine Gaussian.
        tau: weight of the coarse Gaussian (< 1 keeps flat areas white).
        epsilon: threshold on ``D`` below which pixels darken (lower: fewer lines).
        phi: steepness of the soft threshold (larger: crisper lines).
        binarize: return only 0/255 (lines where the tone is below 0.5).
    Returns:
        (H, W) uint8, dark lines on white (255).
    """
    g = to_gray01(rgb).astype(np.float32)
    d = _gauss(g, sigma) - np.float32(tau) * _gauss(g, sigma * k)
    d = d.astype(np.float64)
    tone = np.where(d >= epsilon, 1.0, 1.0 + np.tanh(phi * (d - epsilon)))
    if binarize:
        return _lines_to_uint8(tone < 0.5)
    return np.clip(np.rint(tone * 255.0), 0, 255).astype(np.uint8)


def canny(
    rgb: np.ndarray,
    sigma: float = 1.4,
    low: float | None = None,
    high: float | None = None,
    min_edge_px: int = 8,
    high_percentile: float = 90.0,
) -> np.ndarray:
    """Canny edges as black 1-px lines on white.

    Args:
        rgb: uint8 RGB (H, W, 3) or gray (H, W).
        sigma: Gaussian blur (px) before edge detection.
        low, high: hysteresis thresholds on the L2 gradient magnitude of the 0..255 blurred luma.
            ``None`` picks them from the image: ``high`` is the ``high_percentile`` percentile of
            the magnitude (at least 20), ``low = 0.4 * high``.
        min_edge_px: remove 8-connected edges with fewer pixels (0 keeps all).
        high_percentile: see ``high`` (higher: fewer, stronger edges).
    Returns:
        (H, W) uint8: black lines (0) on white (255).
    """
    g = _gauss((to_gray01(rgb) * 255.0).astype(np.float32), sigma)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
    if high is None:
        mag = np.sqrt(gx.astype(np.float64) ** 2 + gy.astype(np.float64) ** 2)
        high = max(20.0, float(np.percentile(mag, high_percentile)))
    if low is None:
        low = 0.4 * high
    if not 0 <= low <= high:
        raise ValueError(f"canny thresholds need 0 <= low <= high, got low={low}, high={high}")
    edges = cv2.Canny(np.rint(gx).astype(np.int16), np.rint(gy).astype(np.int16), low, high, L2gradient=True) > 0
    return _lines_to_uint8(remove_small_edges(edges, min_edge_px))
