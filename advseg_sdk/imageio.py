"""Image I/O for the SDK: every input becomes upright uint8 RGB (H, W, 3), or a clear error.

- :func:`read_image` reads a file: checks the pixel count from the header before decoding, refuses
  truncated data instead of returning a half-grey image, applies the EXIF orientation, and converts
  any mode (grayscale, 16-bit, palette, alpha, CMYK, ...) to RGB; transparency is composited on white.
- :func:`to_rgb_uint8` does the same for a path, a ``PIL.Image`` or a numpy array.
- :func:`decode_image` does it for encoded bytes held in memory (an upload), with the same checks;
  :func:`open_image_bytes` returns the checked, decoded ``PIL.Image`` in its own mode.
- :func:`write_image` writes atomically (temporary file + rename); the format follows the suffix.

All read failures raise :class:`ImageReadError` (a ``ValueError``) whose message names the file
and the reason; :class:`UnsupportedImageError` (not an image Pillow reads) and
:class:`ImageTooLargeError` (over the pixel limit) are its subclasses for callers that answer
them differently (an HTTP service: 415 and 413).
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .files import atomic_path

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MAX_PIXELS_ENV",
    "ImageReadError",
    "UnsupportedImageError",
    "ImageTooLargeError",
    "max_pixels_limit",
    "decode_image",
    "open_image_bytes",
    "read_image",
    "to_rgb_uint8",
    "write_image",
]

#: Default limit on width*height for :func:`read_image` (64 megapixels).
DEFAULT_MAX_PIXELS = 64_000_000
#: Environment variable that overrides :data:`DEFAULT_MAX_PIXELS`.
MAX_PIXELS_ENV = "ADVSEG_MAX_PIXELS"

# Pillow's decoder settings are process-global; we change them only under this lock.
_PIL_GLOBALS = threading.Lock()


class ImageReadError(ValueError):
    """An image could not be read; the message names the file (or object) and the reason."""


class UnsupportedImageError(ImageReadError):
    """The data is not an image in a format Pillow can read."""


class ImageTooLargeError(ImageReadError):
    """The image's header declares more pixels than the limit in force (nothing was decoded)."""


def max_pixels_limit(max_pixels: int | None = None) -> int:
    """The pixel limit in force: ``max_pixels`` if given, else ``$ADVSEG_MAX_PIXELS``, else 64 MP."""
    if max_pixels is not None:
        value, source = max_pixels, "max_pixels"
    else:
        raw = os.environ.get(MAX_PIXELS_ENV)
        if raw is None or raw.strip() == "":
            return DEFAULT_MAX_PIXELS
        try:
            value, source = int(raw.strip()), f"${MAX_PIXELS_ENV}"
        except ValueError:
            raise ValueError(f"${MAX_PIXELS_ENV}={raw!r} is not an integer pixel count") from None
    if int(value) < 1:
        raise ValueError(f"{source} must be a positive pixel count, got {value}")
    return int(value)


def _mp(n: int) -> str:
    return f"{n / 1e6:,.1f} MP" if n >= 100_000 else f"{n} px"


# --------------------------------------------------------------------------- reading


def _open_checked(path: Path, limit: int) -> Image.Image:
    """Open ``path`` lazily (header only), check its pixel count, then decode it fully."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot access file ({exc.strerror or exc})") from None
    if path.is_dir():
        raise ImageReadError(f"{path}: is a directory, not an image file")
    if size == 0:
        raise ImageReadError(f"{path}: file is empty (0 bytes)")
    return _decode_checked(path, str(path), limit)


def _decode_checked(src: Path | io.BytesIO, label: str, limit: int) -> Image.Image:
    """Open ``src`` (a file or bytes) lazily, check its pixel count from the header, then decode."""
    # Our own limit replaces Pillow's decompression-bomb check (which warns or refuses at its own,
    # global threshold). Opening reads the header only: nothing is decoded or allocated yet.
    pil_limit = Image.MAX_IMAGE_PIXELS
    try:
        im = _pil_open(src, label, no_bomb_check=pil_limit is not None and limit > 2 * pil_limit)
    except Image.DecompressionBombError:
        # Over Pillow's hard limit, hence over ours: open the header again to report the size.
        im = _pil_open(src, label, no_bomb_check=True)

    w, h = im.size
    if w * h > limit:
        im.close()
        raise ImageTooLargeError(
            f"{label}: image is {w}x{h} = {_mp(w * h)}, over the limit of {_mp(limit)} ({limit} pixels); "
            f"raise it with max_pixels=N, `--max-pixels N` or ${MAX_PIXELS_ENV}=N"
        )
    if w == 0 or h == 0:
        im.close()
        raise ImageReadError(f"{label}: image has zero size ({w}x{h})")

    try:
        if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone enabled it: decode strictly anyway
            with _PIL_GLOBALS:
                ImageFile.LOAD_TRUNCATED_IMAGES = False
                try:
                    im.load()
                finally:
                    ImageFile.LOAD_TRUNCATED_IMAGES = True
        else:
            im.load()
    except (OSError, SyntaxError, ValueError) as exc:
        im.close()
        raise ImageReadError(f"{label}: image data is truncated or corrupt ({exc})") from None
    except MemoryError:
        im.close()
        raise ImageReadError(
            f"{label}: not enough memory to decode a {w}x{h} image; lower the pixel limit "
            f"(max_pixels / --max-pixels / ${MAX_PIXELS_ENV}) to refuse such files up front"
        ) from None
    return im


def _pil_open(src: Path | io.BytesIO, label: str, no_bomb_check: bool) -> Image.Image:
    """``Image.open`` (lazy) with clear errors; optionally without Pillow's pixel-count check."""
    if isinstance(src, io.BytesIO):
        src.seek(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            if not no_bomb_check:
                return Image.open(src)
            with _PIL_GLOBALS:
                saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
                try:
                    return Image.open(src)
                finally:
                    Image.MAX_IMAGE_PIXELS = saved
        except UnidentifiedImageError:
            raise UnsupportedImageError(f"{label}: not an image in a format Pillow can read ({_sniff(src)})") from None
        except Image.DecompressionBombError:
            raise
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageReadError(f"{label}: cannot open image ({exc})") from None


def _sniff(src: Path | io.BytesIO) -> str:
    """A short hint of what the file is, for 'not an image' errors."""
    if isinstance(src, io.BytesIO):
        head = src.getvalue()[:64]
    else:
        try:
            with open(src, "rb") as f:
                head = f.read(64)
        except OSError:
            return "unreadable"
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return f"it looks like text: {head[:32].decode('ascii')!r}"
    return f"first bytes {head[:8].hex(' ')}"


def read_image(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as upright uint8 RGB (H, W, 3).

    Args:
        path: image file (any format Pillow reads: PNG, JPEG, TIFF, BMP, WebP, GIF, ...).
        max_pixels: refuse images with more than this many pixels, checked from the header before
            anything is decoded. ``None``: ``$ADVSEG_MAX_PIXELS`` or :data:`DEFAULT_MAX_PIXELS`.

    Returns:
        C-contiguous uint8 array (H, W, 3), EXIF orientation applied. 16-bit data is scaled to
        8 bits (not clipped); alpha and palette transparency are composited on white; CMYK,
        grayscale, palette and other modes are converted to RGB. Multi-frame files give frame 0.

    Raises:
        ImageReadError: missing/empty/unreadable/truncated file, not an image, too many pixels.
    """
    p = Path(path)
    limit = max_pixels_limit(max_pixels)
    return _upright_rgb(_open_checked(p, limit), str(p))


def open_image_bytes(data: bytes, name: str = "image data", max_pixels: int | None = None) -> Image.Image:
    """Encoded image ``data`` (e.g. an upload) as a decoded ``PIL.Image`` in its own mode, with
    :func:`read_image`'s checks: the pixel count from the header before decoding
    (:class:`ImageTooLargeError`), not an image (:class:`UnsupportedImageError`), truncated or
    corrupt data (:class:`ImageReadError`). ``name`` labels the messages. The caller closes it."""
    if not data:
        raise ImageReadError(f"{name}: no data (0 bytes)")
    return _decode_checked(io.BytesIO(bytes(data)), name, max_pixels_limit(max_pixels))


def decode_image(data: bytes, name: str = "image data", max_pixels: int | None = None) -> np.ndarray:
    """Encoded image ``data`` as upright uint8 RGB (H, W, 3), exactly as :func:`read_image` reads
    the same bytes from a file (same checks and errors, see :func:`open_image_bytes`)."""
    return _upright_rgb(open_image_bytes(data, name, max_pixels), name)


def _upright_rgb(raw: Image.Image, name: str) -> np.ndarray:
    """A decoded image, EXIF orientation applied, as uint8 RGB; closes ``raw``."""
    try:
        try:
            upright = ImageOps.exif_transpose(raw) or raw
        except Exception as exc:  # malformed EXIF: keep the pixels, they are fine
            warnings.warn(f"{name}: ignoring unreadable EXIF orientation ({exc})", stacklevel=3)
            upright = raw
        return _pil_to_rgb(upright, name=name)
    finally:
        raw.close()


def _scale16(a: np.ndarray) -> np.ndarray:
    """uint16 range [0, 65535] -> uint8 [0, 255], rounded (x/257)."""
    return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _float01(a: np.ndarray, name: str) -> np.ndarray:
    if not np.isfinite(a).all():
        raise ImageReadError(f"{name}: float image contains NaN or infinity")
    return np.clip(np.rint(a.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)


def _composite_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Blend uint8 RGB over white with uint8 alpha, rounding to nearest."""
    a = alpha.astype(np.uint32)[..., None]
    out = (rgb.astype(np.uint32) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _pil_to_rgb(im: Image.Image, name: str) -> np.ndarray:
    """Convert a loaded PIL image in any mode to uint8 RGB (H, W, 3)."""
    mode = im.mode
    if mode == "RGB":
        return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))
    if mode.startswith("I;16") or mode == "I" or mode == "F":
        a = np.asarray(im)
        if mode == "F":
            a = a.astype(np.float64)
            if not np.isfinite(a).all():
                raise ImageReadError(f"{name}: float image contains NaN or infinity")
            # Float files are [0, 1] by convention; larger values are taken as 0..255.
            gray = _float01(a, name) if a.max(initial=0.0) <= 1.0 else np.clip(np.rint(a), 0, 255).astype(np.uint8)
        elif mode.startswith("I;16"):
            gray = _scale16(a.astype(np.uint16))
        else:  # 32-bit integer: 8-bit data stays, 16-bit data is scaled, wider data is clipped
            a = a.astype(np.int64)
            gray = (
                np.clip(a, 0, 255).astype(np.uint8)
                if a.max(initial=0) <= 255
                else _scale16(np.clip(a, 0, 65535).astype(np.uint16))
            )
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB", "1") and "transparency" in im.info
    )
    if has_alpha:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8)
        return np.ascontiguousarray(_composite_on_white(rgba[..., :3], rgba[..., 3]))
    # L, 1, P, CMYK, YCbCr, LAB, HSV, RGBX, ...: Pillow's converters are correct for these.
    try:
        return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))
    except (ValueError, OSError) as exc:
        raise ImageReadError(f"{name}: cannot convert image mode {mode!r} to RGB ({exc})") from None


def _array_to_rgb(a: np.ndarray, bgr: bool, name: str) -> np.ndarray:
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise ImageReadError(
            f"{name}: expected an image array of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {a.shape}"
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageReadError(f"{name}: image array is empty, shape {a.shape}")
    if a.dtype == np.uint8:
        u8 = a
    elif a.dtype == np.uint16:
        u8 = _scale16(a)
    elif a.dtype == np.bool_:
        u8 = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating):
        lo, hi = (float(a.min()), float(a.max())) if np.isfinite(a).all() else (np.nan, np.nan)
        if not (np.isfinite(lo) and lo >= -1e-3 and hi <= 1 + 1e-3):
            raise ImageReadError(
                f"{name}: float image array must hold values in [0, 1], "
                f"got range [{lo:.4g}, {hi:.4g}] (dtype {a.dtype})"
            )
        u8 = _float01(a, name)
    else:
        raise ImageReadError(
            f"{name}: unsupported image array dtype {a.dtype}; use uint8 (0..255), uint16 (0..65535) or float in [0, 1]"
        )
    if u8.ndim == 2:
        return np.ascontiguousarray(np.repeat(u8[..., None], 3, axis=2))
    if bgr:
        u8 = np.concatenate([u8[..., 2::-1], u8[..., 3:]], axis=2)
    if u8.shape[2] == 4:
        return np.ascontiguousarray(_composite_on_white(u8[..., :3], u8[..., 3]))
    return np.ascontiguousarray(u8)


def to_rgb_uint8(obj: Any, bgr: bool = False, max_pixels: int | None = None) -> np.ndarray:
    """Turn a path, a ``PIL.Image`` or a numpy array into uint8 RGB (H, W, 3).

    Arrays may be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) with dtype uint8, uint16 (scaled to
    8 bits), bool, or float in [0, 1]; 4 channels are composited on white. ``bgr=True`` says a
    3/4-channel array is in OpenCV's BGR(A) order. Paths go through :func:`read_image`; PIL images
    get the same EXIF orientation and mode handling.
    Anything else raises :class:`ImageReadError` naming the shape, dtype or type.
    """
    if isinstance(obj, (str, os.PathLike)):
        return read_image(obj, max_pixels=max_pixels)
    if isinstance(obj, Image.Image):
        name = f"PIL image ({obj.mode}, {obj.size[0]}x{obj.size[1]})"
        try:
            obj.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageReadError(f"{name}: image data is truncated or corrupt ({exc})") from None
        try:
            obj = ImageOps.exif_transpose(obj) or obj  # upright, like read_image
        except Exception:  # malformed EXIF: the pixels are still fine
            pass
        return _pil_to_rgb(obj, name=name)
    if isinstance(obj, np.ndarray):
        return _array_to_rgb(obj, bgr=bgr, name="image array")
    raise ImageReadError(
        f"cannot read an image from an object of type {type(obj).__name__}; pass a path, a PIL.Image or a numpy array"
    )


# --------------------------------------------------------------------------- writing


def _format_for(path: Path) -> str:
    ext = path.suffix.lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise ValueError(f"{path}: cannot tell the image format to write from suffix {path.suffix!r}; use .png or .jpg")
    return fmt


def write_image(path: str | os.PathLike, arr: np.ndarray, **save_kwargs: Any) -> Path:
    """Write a uint8 image (H, W), (H, W, 3) RGB or (H, W, 4) RGBA atomically; format from the suffix.

    The data goes to a temporary file next to ``path`` that is renamed onto it only once complete,
    so a crash never leaves a partial output. Extra keyword arguments go to ``PIL.Image.save``
    (e.g. ``quality=90`` for JPEG). Returns ``path``.
    """
    p = Path(path)
    fmt = _format_for(p)
    a = np.asarray(arr)
    if a.dtype != np.uint8:
        raise ValueError(f"{p}: write_image needs a uint8 array, got dtype {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))) or 0 in a.shape[:2]:
        raise ValueError(f"{p}: write_image needs shape (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    im = Image.fromarray(np.ascontiguousarray(a))
    if fmt == "JPEG" and im.mode == "RGBA":
        im = Image.fromarray(_composite_on_white(a[..., :3], a[..., 3]))
    with atomic_path(p) as tmp:
        im.save(tmp, format=fmt, **save_kwargs)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual mode
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
