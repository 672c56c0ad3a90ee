"""Real inputs for parity checks and int8 calibration.

* Parity: a fixed, deterministic list of cached real photos (:data:`PARITY_PHOTOS`), centre-cropped
  and resized to the network size; for ``sketch2color`` they are turned into sketches with
  :mod:`advseg_sdk.line_drawing` first (the generator's real input), for ``photo2sketch`` (HED) they are
  used as they are.
* Calibration: the cached photos (or a folder the user gives) prepared the same way, fed to
  ONNX Runtime's quantiser through :class:`ArrayCalibrationReader`.

Arrays are float32 NCHW in the network's input range: ``[-1, 1]`` for generators, ``[0, 1]``
for HED. Generators that take colour hints get the hint channels appended by
:func:`with_hint_channels`: zero (no hints) for every third image, a few random hint squares for
the others, so parity and calibration see both the automatic and the hinted case.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from advseg_sdk import files
from advseg_sdk.pixels import to_network_range
from advseg_sdk.vocab import EXPORT_SKETCH_METHODS

#: The fixed parity photos (from the ``photos`` asset): a portrait, food, an animal.
PARITY_PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png")
SKETCH_METHODS = EXPORT_SKETCH_METHODS

__all__ = [
    "PARITY_PHOTOS",
    "SKETCH_METHODS",
    "CalibrationError",
    "InputSet",
    "fit_square",
    "photo_to_sketch_rgb",
    "to_network_input",
    "list_images",
    "parity_inputs",
    "calibration_inputs",
    "with_hint_channels",
    "ArrayCalibrationReader",
]


class CalibrationError(ValueError):
    """Calibration or parity inputs cannot be made (empty folder, unreadable image ...)."""


class InputSet:
    """A batch of network inputs (float32 NCHW) and the names of the images they came from."""

    def __init__(self, array: np.ndarray, names: Sequence[str], hinted: Sequence[bool] | None = None):
        self.array = np.ascontiguousarray(array, dtype=np.float32)
        self.names = list(names)
        self.hinted = None if hinted is None else list(hinted)  # per image: random hints in its hint channels

    def describe_hints(self) -> str | None:
        """Which images carry random hints (None: the inputs have no hint channels)."""
        if self.hinted is None:
            return None
        n = sum(self.hinted)
        return f"{n} of {len(self)} with 1-8 random hint squares (side 3-7 px), the rest with zero hints"

    def __len__(self) -> int:
        return self.array.shape[0]

    def __repr__(self) -> str:
        return f"InputSet({len(self)} x {tuple(self.array.shape[1:])}, {self.names})"


def fit_square(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (area) so the image covers ``size`` = (H, W), then centre-crop to it."""
    h, w = rgb.shape[:2]
    th, tw = size
    scale = max(th / h, tw / w)
    nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(rgb, (nw, nh), interpolation=interp)
    y0, x0 = (nh - th) // 2, (nw - tw) // 2
    return np.ascontiguousarray(resized[y0 : y0 + th, x0 : x0 + tw])


def photo_to_sketch_rgb(rgb: np.ndarray, method: str = "xdog") -> np.ndarray:
    """A 3-channel uint8 sketch (black lines on white) of a uint8 RGB photo.

    ``xdog`` is weight-free; ``hed`` runs the real HED network (PyTorch, ``hed-bsds500`` weights)
    and the official post-processing (:func:`advseg_sdk.line_drawing.hed_postprocess`).
    """
    from advseg_sdk import line_drawing as _sketch

    if method == "xdog":
        gray = _sketch.xdog(rgb)
    elif method == "hed":
        gray = _sketch.hed_postprocess(_hed_probability(rgb))
    else:
        raise ValueError(f"sketch method {method!r} is not supported; choose one of {list(SKETCH_METHODS)}")
    return np.repeat(gray[:, :, None], 3, axis=2)


_HED_CACHE: dict[str, object] = {}


def _hed_probability(rgb: np.ndarray) -> np.ndarray:
    import torch

    from advseg_train.hed import load_hed

    if "net" not in _HED_CACHE:
        _HED_CACHE["net"] = load_hed()
    net = _HED_CACHE["net"]
    x = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        return net(x)[0, 0].numpy()  # type: ignore[operator]


def to_network_input(rgb: np.ndarray, value_range: Sequence[float]) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> float32 (3, H, W) mapped linearly from 0..255 to ``value_range``."""
    return np.ascontiguousarray(to_network_range(rgb, value_range).transpose(2, 0, 1))


def _read(path: Path) -> np.ndarray:
    from advseg_sdk.imageio import ImageReadError, read_image

    try:
        return read_image(path)
    except ImageReadError as exc:
        raise CalibrationError(str(exc)) from None


def _prepare(
    paths: Iterable[Path],
    size: tuple[int, int],
    task: str,
    value_range: Sequence[float],
    sketch_method: str,
    inputs_are_sketches: bool,
) -> InputSet:
    arrays, names = [], []
    for p in paths:
        rgb = fit_square(_read(p), size)
        if task == "sketch2color" and not inputs_are_sketches:
            rgb = photo_to_sketch_rgb(rgb, sketch_method)
        arrays.append(to_network_input(rgb, value_range))
        names.append(p.name)
    if not arrays:
        raise CalibrationError("no images to prepare")
    return InputSet(np.stack(arrays), names)


def _check_task(task: str) -> None:
    if task not in ("sketch2color", "photo2sketch"):
        raise ValueError(f"task must be 'sketch2color' or 'photo2sketch', got {task!r}")


def _photo(name: str) -> Path:
    from advseg_sdk.assets import asset_path

    root = asset_path("photos")  # AssetMissingError names `advseg assets fetch photos`
    p = root / name
    if not p.is_file():
        raise CalibrationError(
            f"parity photo {name} is not in the photo cache {root}; re-fetch it with "
            "`advseg assets fetch photos --force`"
        )
    return p


def parity_inputs(
    task: str,
    size: tuple[int, int] = (256, 256),
    value_range: Sequence[float] = (-1.0, 1.0),
    names: Sequence[str] = PARITY_PHOTOS,
    sketch_method: str = "xdog",
) -> InputSet:
    """The fixed parity batch: real photos (HED) or sketches made from them (generators)."""
    _check_task(task)
    return _prepare([_photo(n) for n in names], size, task, value_range, sketch_method, False)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    return files.list_images(
        folder,
        CalibrationError,
        missing="calibration folder not found or not a directory: {folder}",
        empty="calibration folder {folder} has no images (looked for {suffixes})",
    )


def calibration_inputs(
    task: str,
    size: tuple[int, int] = (256, 256),
    value_range: Sequence[float] = (-1.0, 1.0),
    calib_dir: str | os.PathLike | None = None,
    count: int = 16,
    sketch_method: str = "xdog",
) -> InputSet:
    """Calibration batch for int8: up to ``count`` images.

    With ``calib_dir`` its images are used as the network's inputs as they are (sketches for a
    generator, photos for HED). Without it the cached real photos are used, turned into sketches
    for a generator; the parity photos are left out when enough others exist, so calibration and
    parity do not see the same images.
    """
    _check_task(task)
    if count < 1:
        raise ValueError(f"calibration count must be >= 1, got {count}")
    if calib_dir is not None:
        return _prepare(list_images(calib_dir)[:count], size, task, value_range, sketch_method, True)
    from advseg_sdk.assets import photo_paths

    paths = photo_paths()
    others = [p for p in paths if p.name not in PARITY_PHOTOS]
    chosen = (others if len(others) >= count else paths)[:count]
    return _prepare(chosen, size, task, value_range, sketch_method, False)


def with_hint_channels(inputs: InputSet, channels: int = 4, seed: int = 0) -> InputSet:
    """``inputs`` with ``channels`` colour-hint channels appended (``rgb-mask``: hint RGB in
    [-1, 1] times the mask, then the mask): all zero for every third image (the automatic case),
    1-8 random squares of side 3-7 px in random colours for the others. Deterministic in ``seed``."""
    if channels != 4:
        raise ValueError(f"only the 4-channel rgb-mask hint encoding is supported, got {channels} channels")
    rng = np.random.default_rng(seed)
    n, _, h, w = inputs.array.shape
    planes = np.zeros((n, channels, h, w), np.float32)
    hinted = [i % 3 != 0 for i in range(n)]
    for i in np.flatnonzero(hinted):
        for _ in range(int(rng.integers(1, 9))):
            side = int(rng.integers(3, 8))
            y, x = int(rng.integers(0, max(1, h - side + 1))), int(rng.integers(0, max(1, w - side + 1)))
            planes[i, :3, y : y + side, x : x + side] = rng.uniform(-1.0, 1.0, 3).astype(np.float32)[:, None, None]
            planes[i, 3, y : y + side, x : x + side] = 1.0
    return InputSet(np.concatenate([inputs.array, planes], axis=1), inputs.names, hinted)


class ArrayCalibrationReader(CalibrationDataReader):
    """ONNX Runtime ``CalibrationDataReader`` over a batch, one image per call (batch 1)."""

    def __init__(self, inputs: np.ndarray, input_name: str = "input"):
        self.inputs = np.ascontiguousarray(inputs, dtype=np.float32)
        self.input_name = input_name
        self._i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= self.inputs.shape[0]:
            return None
        x = self.inputs[self._i : self._i + 1]
        self._i += 1
        return {self.input_name: x}

    def rewind(self) -> None:
        self._i = 0

    def __len__(self) -> int:
        return self.inputs.shape[0]
