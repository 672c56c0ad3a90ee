"""Colour hints for generators that take them: parsing what a user gives, rendering the network input.

A hint bundle's graph reads one tensor N x (3 + 4) x H x W: the sketch (channels 0-2), then the
hint colour RGB mapped to [-1, 1] times the mask (channels 3-5) and the mask (channel 6: 1.0 at
hinted pixels, 0.0 elsewhere). All-zero hint channels mean "no hints" (the automatic colouriser).

Users give hints in the sketch's (or, for :class:`~advseg_sdk.colorizer.Pipeline`, the photo's)
pixel coordinates, as one of:

* a list of points ``(x, y, colour)`` or :class:`Hint` objects; ``colour`` is ``"#RRGGBB"`` or an
  ``(r, g, b)`` tuple of 0-255 integers;
* a scribble: an RGBA uint8 array of the image's size (alpha > 127 = hinted pixel, RGB its colour),
  or the path of such an RGBA PNG.

:func:`parse_hints` checks them against the image size and returns a :class:`HintSet`, which
renders the 4 hint planes for any window of the image at any network size
(:meth:`HintSet.render`): points become filled squares of side ``2 * point_radius + 1`` centred on
the scaled point at the network's resolution, scribbles are area-resized (a pixel is hinted where
the mask covers any of it, its colour the covered pixels' mean), so thin strokes survive a
downscale. Pixels of a window outside the image (padding) get no hint. Every bad hint raises
:class:`HintError`, naming the hint and the reason.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = [
    "HINT_CHANNELS",
    "HINT_ENCODING",
    "DEFAULT_POINT_RADIUS",
    "HintError",
    "Hint",
    "HintSet",
    "parse_colour",
    "parse_hints",
    "parse_hint_text",
    "read_scribble",
    "draw_hints",
]

#: Hint channels after the sketch's: hint RGB in [-1, 1] times the mask, then the mask.
HINT_CHANNELS = 4
#: The manifest's name for that encoding (``input.hints.encoding``).
HINT_ENCODING = "rgb-mask"
#: Points are squares of side 2 * radius + 1 at the network's resolution (training draws 3-7 px).
DEFAULT_POINT_RADIUS = 2

_HEX = re.compile(r"#([0-9a-fA-F]{6})")


class HintError(ValueError):
    """Hints that cannot be used: the bundle takes none, or a hint is malformed (the message says
    which hint and why)."""


def parse_colour(value: Any, where: str = "hint") -> tuple[int, int, int]:
    """``"#RRGGBB"`` or an ``(r, g, b)`` sequence of integers 0-255 -> an (r, g, b) tuple."""
    if isinstance(value, str):
        m = _HEX.fullmatch(value.strip())
        if m is None:
            raise HintError(f"{where}: colour {value!r} is not #RRGGBB (six hex digits, e.g. #ff8800)")
        h = m.group(1)
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)
    if isinstance(value, (tuple, list, np.ndarray)) and len(value) == 3:
        out = []
        for c in value:
            if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)) or not 0 <= int(c) <= 255:
                raise HintError(f"{where}: colour {tuple(value)!r} must be three integers 0-255 (or '#RRGGBB')")
            out.append(int(c))
        return out[0], out[1], out[2]
    raise HintError(f"{where}: colour {value!r} must be '#RRGGBB' or an (r, g, b) tuple of integers 0-255")


def _coordinate(v: Any, name: str, where: str) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise HintError(f"{where}: {name} = {v!r} is not a number")
    f = float(v)
    if not math.isfinite(f):
        raise HintError(f"{where}: {name} = {v!r} is not finite")
    return f


@dataclass(frozen=True)
class Hint:
    """One colour hint at pixel ``(x, y)`` (column, row) of the image; ``color`` is ``"#RRGGBB"``
    or ``(r, g, b)`` 0-255 and is stored as an (r, g, b) tuple."""

    x: float
    y: float
    color: tuple[int, int, int] | str

    def __post_init__(self) -> None:
        where = f"hint ({self.x!r}, {self.y!r}, {self.color!r})"
        object.__setattr__(self, "x", _coordinate(self.x, "x", where))
        object.__setattr__(self, "y", _coordinate(self.y, "y", where))
        object.__setattr__(self, "color", parse_colour(self.color, where))

    @property
    def rgb(self) -> tuple[int, int, int]:
        return self.color  # type: ignore[return-value]  # normalised in __post_init__


def _resize_coverage(colour_x_mask: np.ndarray, mask: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """Area-resize colour*mask (H, W, 3) and mask (H, W) to ``out_hw``; a pixel is hinted where
    the mask covers any of it, with the covered mean colour. Returns (h, w, 4) planes."""
    oh, ow = out_hw
    if mask.shape != (oh, ow):
        shrink = oh * ow < mask.size
        interp = cv2.INTER_AREA if shrink else cv2.INTER_NEAREST
        cov = cv2.resize(mask, (ow, oh), interpolation=interp).reshape(oh, ow)
        cm = cv2.resize(colour_x_mask, (ow, oh), interpolation=interp).reshape(oh, ow, 3)
    else:
        cov, cm = mask, colour_x_mask
    hinted = cov > 1e-6
    planes = np.zeros((oh, ow, HINT_CHANNELS), np.float32)
    planes[hinted, :3] = np.clip(cm[hinted] / cov[hinted, None], -1.0, 1.0)
    planes[hinted, 3] = 1.0
    return planes


@dataclass(frozen=True, eq=False)
class HintSet:
    """Checked hints for one image of size ``size`` = (H, W): points and/or a scribble
    (``scribble``: RGBA uint8 (H, W, 4)); made by :func:`parse_hints`."""

    size: tuple[int, int]
    points: tuple[Hint, ...] = ()
    scribble: np.ndarray | None = None

    @property
    def empty(self) -> bool:
        return not self.points and (self.scribble is None or not (self.scribble[..., 3] > 127).any())

    def render(
        self,
        out_hw: tuple[int, int],
        window: tuple[int, int, int, int] | None = None,
        point_radius: int = DEFAULT_POINT_RADIUS,
    ) -> np.ndarray:
        """The 4 hint planes (h, w, 4) float32 for the image region ``window`` = (y, x, H, W)
        (default: the whole image; it may reach past the image, e.g. into padding, which gets
        no hint) scaled to ``out_hw`` = (h, w), the network's input size for that region."""
        oh, ow = out_hw
        wy, wx, wh, ww = window if window is not None else (0, 0, *self.size)
        planes = np.zeros((oh, ow, HINT_CHANNELS), np.float32)
        if self.scribble is not None:
            h, w = self.size
            mask = np.zeros((wh, ww), np.float32)
            cm = np.zeros((wh, ww, 3), np.float32)
            y0, y1, x0, x1 = max(wy, 0), min(wy + wh, h), max(wx, 0), min(wx + ww, w)
            if y1 > y0 and x1 > x0:
                part = self.scribble[y0:y1, x0:x1]
                m = (part[..., 3] > 127).astype(np.float32)
                mask[y0 - wy : y1 - wy, x0 - wx : x1 - wx] = m
                cm[y0 - wy : y1 - wy, x0 - wx : x1 - wx] = _to_signed(part[..., :3]) * m[..., None]
            planes = _resize_coverage(cm, mask, out_hw)
        sy, sx, r = oh / wh, ow / ww, int(point_radius)
        for p in self.points:
            cy = math.floor((p.y - wy + 0.5) * sy)  # the output pixel the point falls in
            cx = math.floor((p.x - wx + 0.5) * sx)
            ya, yb, xa, xb = max(cy - r, 0), min(cy + r + 1, oh), max(cx - r, 0), min(cx + r + 1, ow)
            if ya < yb and xa < xb:
                planes[ya:yb, xa:xb, :3] = _to_signed(np.asarray(p.rgb, np.float32))
                planes[ya:yb, xa:xb, 3] = 1.0
        return planes

    def scaled(self, size: tuple[int, int]) -> HintSet:
        """The same hints for the image resized to ``size`` = (H, W) (points moved with their
        pixels, a scribble area-resized keeping every stroke)."""
        if tuple(size) == tuple(self.size):
            return self
        h, w = self.size
        nh, nw = size
        sy, sx = nh / h, nw / w
        points = tuple(
            Hint(
                min(max((p.x + 0.5) * sx - 0.5, 0.0), nw - 1.0), min(max((p.y + 0.5) * sy - 0.5, 0.0), nh - 1.0), p.rgb
            )
            for p in self.points
        )
        scribble = None
        if self.scribble is not None:
            planes = HintSet(self.size, (), self.scribble).render((nh, nw))
            scribble = np.zeros((nh, nw, 4), np.uint8)
            scribble[..., :3] = np.clip(np.rint((planes[..., :3] + 1.0) * 127.5), 0, 255).astype(np.uint8)
            scribble[..., 3] = np.where(planes[..., 3] > 0, 255, 0).astype(np.uint8)
        return HintSet((int(nh), int(nw)), points, scribble)


def _to_signed(rgb: np.ndarray) -> np.ndarray:
    """0-255 -> [-1, 1] (the sketch's mapping: 0 -> -1, 255 -> 1)."""
    return np.asarray(rgb, np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)


def read_scribble(path: str | os.PathLike, where: str | None = None) -> np.ndarray:
    """An RGBA PNG (or any image with an alpha channel or palette transparency) as RGBA uint8."""
    from PIL import Image, UnidentifiedImageError

    from .imageio import max_pixels_limit

    p = Path(path)
    label = where or f"hint scribble {p}"
    try:
        im = Image.open(p)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise HintError(f"{label}: cannot read it ({type(exc).__name__}: {exc})") from None
    try:
        w, h = im.size
        if w * h > max_pixels_limit():
            raise HintError(f"{label}: {w}x{h} is over the pixel limit ({max_pixels_limit()} pixels)")
        try:
            im.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise HintError(f"{label}: cannot read it (truncated or corrupt: {exc})") from None
        bands = im.getbands()
        if "A" not in bands and "a" not in bands and "transparency" not in im.info:
            raise HintError(
                f"{label}: image mode {im.mode} has no alpha channel; draw the hints on a transparent "
                "RGBA PNG (alpha > 127 = hinted pixel, RGB its colour)"
            )
        return np.ascontiguousarray(np.asarray(im.convert("RGBA"), dtype=np.uint8))
    finally:
        im.close()


def _scribble(arr: Any, size: tuple[int, int], where: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 4:
        raise HintError(
            f"{where}: a scribble must be an RGBA uint8 array (H, W, 4) with alpha, got {a.dtype} {a.shape}"
        )
    if a.shape[:2] != tuple(size):
        raise HintError(
            f"{where}: scribble is {a.shape[1]}x{a.shape[0]} (WxH) but the image is {size[1]}x{size[0]}; "
            "draw it at the image's size"
        )
    return np.ascontiguousarray(a)


def _point(item: Any, size: tuple[int, int], where: str) -> Hint:
    if isinstance(item, Hint):
        hint = item
    elif isinstance(item, (tuple, list)) and len(item) == 3:
        try:
            hint = Hint(*item)
        except HintError as exc:
            raise HintError(f"{where}: {str(exc).split(': ', 1)[-1]}") from None
    else:
        raise HintError(f"{where}: {item!r} is not a point (x, y, colour) or a Hint")
    h, w = size
    if not (0 <= hint.x < w and 0 <= hint.y < h):
        raise HintError(
            f"{where} at ({hint.x:g}, {hint.y:g}) is outside the {w}x{h} image (0 <= x < {w}, 0 <= y < {h})"
        )
    return hint


def parse_hints(hints: Any, size: tuple[int, int], where: str = "hints") -> HintSet | None:
    """Check user hints for an image of ``size`` = (H, W) (see the module docstring for the
    forms); ``None`` stays ``None``. Raises :class:`HintError` naming ``where`` and the hint."""
    if hints is None:
        return None
    size = (int(size[0]), int(size[1]))
    if isinstance(hints, HintSet):
        if tuple(hints.size) != size:
            raise HintError(
                f"{where}: hints made for a {hints.size[1]}x{hints.size[0]} image, this one is {size[1]}x{size[0]}"
            )
        return hints
    if isinstance(hints, (str, os.PathLike)):
        return HintSet(size, scribble=_scribble(read_scribble(hints), size, f"{where} {os.fspath(hints)}"))
    if isinstance(hints, np.ndarray):
        return HintSet(size, scribble=_scribble(hints, size, f"{where} (scribble array)"))
    if hasattr(hints, "getbands") and hasattr(hints, "convert"):  # a PIL image
        if "A" not in hints.getbands():
            raise HintError(f"{where}: image mode {hints.mode} has no alpha channel; give an RGBA scribble")
        return HintSet(size, scribble=_scribble(np.asarray(hints.convert("RGBA")), size, f"{where} (scribble image)"))
    if isinstance(hints, Hint):
        hints = [hints]
    if isinstance(hints, Sequence) and not isinstance(hints, (bytes, bytearray)):
        return HintSet(size, points=tuple(_point(item, size, f"{where}[{i}]") for i, item in enumerate(hints)))
    raise HintError(
        f"{where}: {type(hints).__name__} is not a hint form; give a list of (x, y, '#RRGGBB') points, "
        "Hint objects, an RGBA uint8 array of the image's size or the path of an RGBA PNG"
    )


def parse_hint_text(text: str) -> Hint:
    """``"X,Y,#RRGGBB"`` (the command line's ``--hint``) -> a :class:`Hint` (not yet checked
    against an image size)."""
    parts = [s.strip() for s in str(text).split(",")]
    if len(parts) != 3:
        raise HintError(f"{text!r} is not X,Y,#RRGGBB (e.g. 120,40,#3366ff)")
    try:
        x, y = float(parts[0]), float(parts[1])
    except ValueError:
        raise HintError(f"{text!r}: X and Y must be numbers (pixels), as in 120,40,#3366ff") from None
    return Hint(x, y, parts[2])


def draw_hints(image: np.ndarray, hints: HintSet, radius: int | None = None) -> np.ndarray:
    """A copy of uint8 RGB (or grayscale) ``image`` with the hints drawn on it: points as
    coloured dots with a dark rim, scribbled pixels in their colour (to show where hints are)."""
    out = np.ascontiguousarray(np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image.copy())
    h, w = out.shape[:2]
    if hints.scribble is not None:
        s = hints.scaled((h, w)).scribble if tuple(hints.size) != (h, w) else hints.scribble
        assert s is not None
        m = s[..., 3] > 127
        out[m] = s[m, :3]
    pts = hints.scaled((h, w)).points
    r = radius if radius is not None else max(2, round(max(h, w) / 80))
    for p in pts:
        c = (int(round(p.x)), int(round(p.y)))
        cv2.circle(out, c, r + 1, (32, 32, 32), -1, lineType=cv2.LINE_AA)
        cv2.circle(out, c, r, tuple(int(v) for v in p.rgb), -1, lineType=cv2.LINE_AA)
    return out
