"""Colour sketches with a ``sketch2color`` bundle, and photos through photo → sketch → colour.

>>> from advseg_sdk import Colorizer
>>> col = Colorizer("sketch2color-resnet9.advseg")       # or a .zip; precision="auto"
>>> rgb = col.colorize("sketch.png")                      # uint8 (H, W, 3), the input's size
>>> rgbs = col.colorize([arr_bgr, pil_img], bgr=True)     # lists of mixed sizes work

Inputs are a path, a ``PIL.Image``, an (H, W, 3) uint8 array (RGB, or BGR with ``bgr=True``), an
(H, W) grayscale sketch, or a list of these (normalised by :func:`advseg_sdk.imageio.to_rgb_uint8`).
Sizes follow the bundle's input spec: fully convolutional generators (``size_multiple``) get
reflect padding to the multiple and are cropped back; fixed-size ones (``fixed_size``, e.g.
unet_256) are resized to that size and back, or tiled when ``tile`` is given. Images over
``max_pixels`` (or any image when ``tile`` is given) run in overlapping tiles with feathered
blending (:mod:`advseg_sdk.tiling`), so the network never sees more than one tile at a time.
Inputs of the same network shape are batched, up to ``max_batch``.

Bundles whose generator takes colour hints (``Colorizer.accepts_hints``) also take ``hints=``:
points ``(x, y, "#RRGGBB")`` or an RGBA scribble in the sketch's pixels (:mod:`advseg_sdk.hints`);
they are rendered at the network's resolution and padded, resized and tiled with the sketch
(padding adds no hint). Without hints such a bundle colours automatically (zero hint channels).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import cv2
import numpy as np

from .bundle import Bundle, BundleError, default_bundle_path, load_bundle
from .hint_spread import spread_hints
from .hints import HintError, HintSet, parse_hints
from .imageio import ImageReadError, to_rgb_uint8
from .pixels import from_network_range, to_network_range
from .runtime import ProviderSpec, Runner, open_runner
from .tiling import Tile, TileBlender, iter_chunks, tile_grid
from .vocab import HINT_SPREAD_MODES

__all__ = [
    "Colorizer",
    "Tiling",
    "Pipeline",
    "PipelineResult",
    "DEFAULT_BUNDLE_NAME",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_AUTO_TILE",
]

DEFAULT_BUNDLE_NAME = "demo-sketch2color"
#: Fully convolutional inputs with more padded pixels than this run tiled (1 MP).
DEFAULT_MAX_PIXELS = 1024 * 1024
#: Tile size used when an image is tiled because of ``max_pixels``.
DEFAULT_AUTO_TILE = 512


def _round_up(v: int, m: int) -> int:
    return -(-v // m) * m


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Resize (H, W, C) to (h, w, C): area averaging when shrinking, bicubic when enlarging."""
    if img.shape[:2] == (h, w):
        return img
    shrinking = h * w < img.shape[0] * img.shape[1]
    out = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
    return out.reshape(h, w, -1)


def _reflect_pad(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Pad (H, W, C) at the bottom/right to (h, w) by reflection (edge copy for 1-pixel sides)."""
    ph, pw = h - img.shape[0], w - img.shape[1]
    if ph == 0 and pw == 0:
        return img
    if min(img.shape[:2]) > 1:
        return np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="reflect")
    return np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="edge")


@dataclass(frozen=True)
class Tiling:
    """How images meet the network: in fixed tiles, or whole until they exceed a pixel budget
    (then in automatic tiles), and how many images or tiles share one network call."""

    tile: int | None = None  # fixed tile side in input pixels; None: tile only over max_pixels
    tile_overlap: int = 32  # minimum overlap of neighbouring tiles, in pixels
    max_batch: int = 8  # most images/tiles per network call
    max_pixels: int = DEFAULT_MAX_PIXELS  # fully convolutional inputs over this are tiled...
    auto_tile: int = DEFAULT_AUTO_TILE  # ...in tiles of this size

    def __post_init__(self) -> None:
        tile, overlap = self.tile, self.tile_overlap
        if tile is not None and (not isinstance(tile, int) or tile < 1):
            raise ValueError(f"tile must be a positive number of pixels, got {tile!r}")
        if not isinstance(overlap, int) or overlap < 0:
            raise ValueError(f"tile_overlap must be a non-negative integer, got {overlap!r}")
        if tile is not None and overlap >= tile:
            raise ValueError(f"tile_overlap ({overlap}) must be smaller than tile ({tile})")
        if not isinstance(self.max_batch, int) or self.max_batch < 1:
            raise ValueError(f"max_batch must be a positive integer, got {self.max_batch!r}")


class Colorizer:
    """Runs a ``sketch2color`` bundle on ONNX Runtime or TensorRT; no torch needed.

    Args:
        bundle: bundle directory/zip, or a loaded :class:`~advseg_sdk.bundle.Bundle`; ``None``
            uses ``default_bundle_path("demo-sketch2color")``.
        providers: ONNX Runtime providers in order of preference (default TensorRT → CUDA → CPU,
            whatever this onnxruntime offers).
        precision: ``auto``, ``fp32``, ``fp16``, ``bf16``, ``int8`` or ``trt`` (see
            :func:`advseg_sdk.runtime.open_runner`).
        strict: refuse (instead of warn and fall back) a TensorRT engine built for another GPU.
        hint_spread: ``"region"`` (default): each colour hint fills the enclosed region of the
            sketch it falls in (:mod:`advseg_sdk.hint_spread`); ``"none"``: hints as given.
        tiling: a :class:`Tiling` (fixed tiles, the pixel budget, the batch); its fields may also
            be given as keywords (``tile=512, tile_overlap=32``). Fixed-size networks see each
            tile resized to the network size.
        options: :class:`Tiling` fields, and the rest for
            :class:`~advseg_sdk.runtime.OnnxRunner` (``intra_op_threads``, ``inter_op_threads``,
            ``graph_optimization``).
    """

    def __init__(
        self,
        bundle: Bundle | str | os.PathLike | None = None,
        providers: Sequence[ProviderSpec] | None = None,
        precision: str = "auto",
        strict: bool = False,
        tiling: Tiling | None = None,
        hint_spread: str = "region",
        **options: Any,
    ):
        if hint_spread not in HINT_SPREAD_MODES:
            raise ValueError(f"hint_spread must be one of {', '.join(HINT_SPREAD_MODES)}, got {hint_spread!r}")
        self.hint_spread = hint_spread
        if bundle is None:
            bundle = default_bundle_path(DEFAULT_BUNDLE_NAME)
            zipped = bundle.with_name(bundle.name + ".zip")
            if not bundle.exists() and zipped.exists():
                bundle = zipped
        self.bundle = load_bundle(bundle, task="sketch2color")
        tiling_names = set(Tiling.__dataclass_fields__)
        tiling = dataclasses.replace(tiling or Tiling(), **{k: options.pop(k) for k in tiling_names & set(options)})
        self.spec = self.bundle.input_spec
        out = self.bundle.output_spec
        self.out_range = out.range
        self.out_bgr = out.color.upper() == "BGR"
        self.tile = tiling.tile
        self.tile_overlap = tiling.tile_overlap
        self.max_batch = tiling.max_batch
        self.max_pixels = tiling.max_pixels
        self.auto_tile = tiling.auto_tile
        self.runner: Runner = open_runner(
            self.bundle, providers=providers, precision=precision, strict=strict, **options
        )

    def __repr__(self) -> str:
        return f"Colorizer({str(self.bundle.source)!r}, runner={self.runner.label!r})"

    # ------------------------------------------------------------------ public
    @property
    def accepts_hints(self) -> bool:
        """Whether the bundle's generator takes colour hints (``input.hints`` in its manifest)."""
        return self.spec.hints is not None

    def colorize(self, x: Any, bgr: bool = False, hints: Any = None) -> np.ndarray | list[np.ndarray]:
        """Colour one sketch (or a list): returns uint8 RGB (H, W, 3) at each input's size.

        ``hints`` (bundles with ``accepts_hints`` only): for one sketch, a list of points
        ``(x, y, colour)`` / :class:`~advseg_sdk.hints.Hint` in its pixels, or an RGBA scribble
        (uint8 array of its size, or a PNG path); for a list of sketches, None or one such entry
        (or None) per sketch. Raises :class:`~advseg_sdk.hints.HintError` for bad hints."""
        if isinstance(x, (list, tuple)):
            imgs = [self._load(item, bgr, f"input {i}") for i, item in enumerate(x)]
            return self.colorize_arrays(imgs, self._per_image(hints, len(imgs)))
        return self.colorize_arrays([self._load(x, bgr, None)], None if hints is None else [hints])[0]

    __call__ = colorize

    def colorize_arrays(self, images: Sequence[np.ndarray], hints: Sequence[Any] | None = None) -> list[np.ndarray]:
        """Colour uint8 RGB (H, W, 3) arrays (``hints``: None or one entry per image, as for
        :meth:`colorize`); same-shape work is batched."""
        sets = [self.spread_hints(img, hs) for img, hs in zip(images, self.hint_sets(images, hints))]
        results: list[np.ndarray | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
        for i, img in enumerate(images):
            tiles = self.tile_plan(img.shape[0], img.shape[1])
            if tiles:
                results[i] = self._run_tiled(img, tiles, sets[i])
            else:
                net_in = self._fit(img, sets[i])
                groups.setdefault(net_in.shape[:2], []).append((i, net_in))
        for items in groups.values():
            for chunk in iter_chunks(items, self._batch_limit()):
                outs = self._run_net([a for _, a in chunk])
                for (i, _), out in zip(chunk, outs):
                    results[i] = self._to_uint8(self._restore(out, images[i].shape[:2]))
        return results  # type: ignore[return-value]

    # ------------------------------------------------------------------ hints
    @staticmethod
    def _per_image(hints: Any, n: int) -> list[Any] | None:
        if hints is None:
            return None
        if not isinstance(hints, (list, tuple)) or len(hints) != n:
            raise HintError(f"for a list of {n} images, hints must be None or a list with one entry per image")
        return list(hints)

    def require_hints(self) -> None:
        """Raise :class:`~advseg_sdk.hints.HintError` unless the bundle takes colour hints."""
        if not self.accepts_hints:
            raise HintError(
                f"bundle {self.bundle.name!r} ({self.bundle.source}) takes no colour hints (its manifest has no "
                "input.hints); colour without hints, or export a generator trained with hints (model.hint_nc=4)"
            )

    def hint_sets(self, images: Sequence[np.ndarray], hints: Sequence[Any] | None) -> list[HintSet | None]:
        """Check ``hints`` (None, or one entry per image) against the bundle and the images' sizes."""
        if hints is None:
            return [None] * len(images)
        if len(hints) != len(images):
            raise HintError(f"{len(hints)} hint entries for {len(images)} images; give one per image (or None)")
        if any(h is not None for h in hints):
            self.require_hints()
        many = len(images) > 1
        return [
            parse_hints(h, img.shape[:2], f"input {i} hints" if many else "hints")
            for i, (img, h) in enumerate(zip(images, hints))
        ]

    def spread_hints(self, sketch: np.ndarray, hints: HintSet | None) -> HintSet | None:
        """``hints`` (checked, for ``sketch``'s size) as the network gets them: spread over their
        regions of the sketch unless ``hint_spread`` is ``"none"``."""
        if hints is None or self.hint_spread == "none":
            return hints
        return spread_hints(sketch, hints)

    def _with_hints(self, net_in: np.ndarray, hints: HintSet | None, window: tuple[int, int, int, int]) -> np.ndarray:
        """Append the hint planes of image region ``window`` at the network input's size (zeros
        without hints); bundles without hint inputs get the sketch alone."""
        if self.spec.hints is None:
            return net_in
        if hints is None:
            planes = np.zeros((*net_in.shape[:2], self.spec.hints.channels), np.float32)
        else:
            planes = hints.render(net_in.shape[:2], window, self.spec.hints.point_radius)
        return np.concatenate([net_in, planes], axis=2)

    # ------------------------------------------------------------------ sizes
    @property
    def fully_convolutional(self) -> bool:
        return self.spec.fixed_size is None

    def _padded_size(self, h: int, w: int) -> tuple[int, int]:
        m, lo = self.spec.size_multiple, self.spec.min_size
        lo_h, lo_w = getattr(self.runner, "min_hw", None) or (lo, lo)  # e.g. an engine's profile minimum
        return _round_up(max(h, lo, lo_h), m), _round_up(max(w, lo, lo_w), m)

    def _tile_for(self, h: int, w: int) -> int | None:
        """Tile size in input pixels for an (h, w) image, or None to run it whole."""
        if not self.fully_convolutional:
            return self.tile
        limit_hw = getattr(self.runner, "max_hw", None)
        ph, pw = self._padded_size(h, w)
        tile = self.tile
        if tile is None and ph * pw > self.max_pixels:
            tile = self.auto_tile
        if limit_hw and (ph > limit_hw[0] or pw > limit_hw[1]):
            tile = min(tile or 10**9, limit_hw[0], limit_hw[1])
        if tile is None:
            return None
        m = self.spec.size_multiple
        lo = max(self.spec.min_size, *(getattr(self.runner, "min_hw", None) or (1,)))
        tile = max((tile // m) * m, _round_up(lo, m), m)
        if tile <= self.tile_overlap:
            raise ValueError(
                f"tile {tile} (rounded to the network's size multiple {m}) must be larger than "
                f"tile_overlap {self.tile_overlap}"
            )
        return tile

    def _fit(self, img: np.ndarray, hints: HintSet | None = None, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
        """uint8 (H, W, 3) → network-sized float32 (h, w, C) in the input range, then the hint
        planes of the region of that size at ``origin`` of the image ``hints`` belong to. The
        sketch is reflect-padded, the hints are not (padding holds no hint)."""
        h, w = img.shape[:2]
        if self.fully_convolutional:
            ph, pw = self._padded_size(h, w)
            return self._with_hints(self._to_net(_reflect_pad(img, ph, pw)), hints, (*origin, ph, pw))
        assert self.spec.fixed_size is not None  # not fully convolutional
        fh, fw = self.spec.fixed_size
        return self._with_hints(self._to_net(_resize(img, fh, fw)), hints, (*origin, h, w))

    def _restore(self, out: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
        """Network output (h, w, C) in [0, 255] float → (H, W, C): crop padding or resize back."""
        if self.fully_convolutional:
            return out[: hw[0], : hw[1]]
        return _resize(out, hw[0], hw[1])

    # ------------------------------------------------------------------ values
    def _to_net(self, img: np.ndarray) -> np.ndarray:
        """uint8 RGB (H, W, 3) → float32 (H, W, C) in the spec's range, channel order and count."""
        if self.spec.channels == 1:
            img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)[..., None]
        elif self.spec.channels != 3:
            raise BundleError(f"bundle input spec has {self.spec.channels} channels; only 1 or 3 are supported")
        elif self.spec.color.upper() == "BGR":
            img = img[..., ::-1]
        return to_network_range(img, self.spec.range)

    def _from_net(self, y: np.ndarray) -> np.ndarray:
        """Network output (C, H, W) → float32 (H, W, 3) in [0, 255]."""
        y = from_network_range(np.transpose(y, (1, 2, 0)), self.out_range)
        if y.shape[2] == 1:
            y = np.repeat(y, 3, axis=2)
        elif self.out_bgr:
            y = y[..., ::-1]
        return y

    @staticmethod
    def _to_uint8(y: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.clip(np.rint(y), 0, 255).astype(np.uint8))

    # ------------------------------------------------------------------ running
    def _batch_limit(self) -> int:
        rb = getattr(self.runner, "max_batch", None)
        return min(self.max_batch, rb) if rb else self.max_batch

    def _run_net(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """(h, w, C) float32 inputs of one shape → list of (h, w, 3) float32 outputs in [0, 255]."""
        batch = np.ascontiguousarray(np.stack(inputs).transpose(0, 3, 1, 2))
        y = self.runner.run(batch)
        if y.ndim != 4 or y.shape[0] != batch.shape[0] or y.shape[2:] != batch.shape[2:]:
            raise BundleError(
                f"{self.runner.label}: output shape {tuple(y.shape)} does not match input shape "
                f"{tuple(batch.shape)} (expected (N, C, H, W) with the input's N, H, W)"
            )
        want = self.bundle.output_spec.channels or 3
        if y.shape[1] != want:  # e.g. RGBA from a graph whose channel count is only known when run
            raise BundleError(
                f"{self.runner.label}: the graph returned {y.shape[1]} channels; the manifest's output has {want}"
            )
        if not np.isfinite(y).all():  # would silently become a black or clipped picture
            raise BundleError(
                f"{self.runner.label}: the graph produced NaN or infinite values; "
                "the bundle's weights or graph are broken, re-export it"
            )
        return [self._from_net(o) for o in y]

    def tile_plan(self, h: int, w: int) -> list[Tile]:
        """The tiles an (h, w) image runs in (over its padded size), or ``[]`` when it runs whole."""
        tile = self._tile_for(h, w)
        if tile is None:
            return []
        if self.fully_convolutional:
            ph, pw = self._padded_size(h, w)
            return tile_grid(ph, pw, tile, self.tile_overlap, self.spec.size_multiple, fit=True)
        return tile_grid(h, w, tile, self.tile_overlap)

    def _run_tiled(self, img: np.ndarray, tiles: list[Tile], hints: HintSet | None = None) -> np.ndarray:
        h, w = img.shape[:2]
        src = _reflect_pad(img, *self._padded_size(h, w)) if self.fully_convolutional else img
        blender = TileBlender(src.shape[0], src.shape[1], 3, self.tile_overlap)
        for chunk in iter_chunks(tiles, self._batch_limit()):
            # each tile's hint planes are its window of the whole image's (rendered per tile, so
            # memory stays bounded; at the same scale that is exactly the cut of the full array)
            net_in = [self._fit(src[t.slices], hints, (t.y, t.x)) for t in chunk]
            for t, out in zip(chunk, self._run_net(net_in)):
                blender.add(t, self._restore(out, (t.h, t.w)))
        return self._to_uint8(blender.result()[:h, :w])

    # ------------------------------------------------------------------ inputs
    @staticmethod
    def _load(x: Any, bgr: bool, name: str | None) -> np.ndarray:
        try:
            return to_rgb_uint8(x, bgr=bgr)
        except ImageReadError as exc:
            if name is None:
                raise
            raise ImageReadError(f"{name}: {exc}") from None


class PipelineResult(NamedTuple):
    """A photo's sketch (uint8 (H, W), black lines on white) and its colouring (uint8 (H, W, 3))."""

    sketch: np.ndarray
    color: np.ndarray


class Pipeline:
    """Photo → sketch (:class:`~advseg_sdk.sketcher.SketchExtractor`) → colour (:class:`Colorizer`).

    ``sketch`` is ``"hed"`` (an HED bundle, ``sketch_bundle`` or the default ``hed`` bundle),
    ``"xdog"`` or ``"canny"``. ``sketch_options`` go to the extractor (e.g. ``{"size": 512}``);
    other keyword arguments go to :class:`Colorizer`.

    ``work_short_side``: a generator learns lines at the scale it was trained on, so the photo is
    sketched and coloured with its short side at this many pixels and the results are resized
    back to the photo's size. ``"auto"`` (default) takes the bundle's ``input.photo_short_side``
    (written by ``advseg-export`` from the training config) and works at the photo's own size when
    the bundle has none; ``None`` always works at the photo's own size.
    """

    def __init__(
        self,
        colorizer_bundle: Bundle | str | os.PathLike | None = None,
        sketch: str = "hed",
        sketch_bundle: Bundle | str | os.PathLike | None = None,
        providers: Sequence[ProviderSpec] | None = None,
        precision: str = "auto",
        sketch_options: dict[str, Any] | None = None,
        work_short_side: int | str | None = "auto",
        **colorizer_options: Any,
    ):
        from .sketcher import SketchExtractor

        self.sketcher = SketchExtractor(
            method=sketch, bundle=sketch_bundle, providers=providers, **(sketch_options or {})
        )
        self.colorizer = Colorizer(colorizer_bundle, providers=providers, precision=precision, **colorizer_options)
        if work_short_side == "auto":
            work_short_side = self.colorizer.bundle.input_spec.photo_short_side
        if work_short_side is not None and (
            isinstance(work_short_side, bool) or not isinstance(work_short_side, int) or work_short_side < 8
        ):
            raise ValueError(f"work_short_side must be 'auto', None or an integer >= 8, got {work_short_side!r}")
        self.work_short_side: int | None = work_short_side

    def __repr__(self) -> str:
        return f"Pipeline(sketcher={self.sketcher!r}, colorizer={self.colorizer!r})"

    def run(self, x: Any, bgr: bool = False, hints: Any = None) -> PipelineResult | list[PipelineResult]:
        """Sketch and colour one photo (or a list): :class:`PipelineResult` (sketch, color).

        ``hints`` as for :meth:`Colorizer.colorize`, in the photo's pixels; they are mapped to the
        working scale the pipeline colours at."""
        single = not isinstance(x, (list, tuple))
        items = [x] if single else list(x)
        photos = [Colorizer._load(item, bgr, None if single else f"input {i}") for i, item in enumerate(items)]
        per_photo = ([hints] if hints is not None else None) if single else Colorizer._per_image(hints, len(items))
        hint_sets = self.colorizer.hint_sets(photos, per_photo)
        work = [self._to_work_scale(p) for p in photos]
        sketches = [self._sketch(p) for p in work]
        scaled = [None if hs is None else hs.scaled(wk.shape[:2]) for hs, wk in zip(hint_sets, work)]
        colours = self.colorizer.colorize_arrays([self._as_rgb(s) for s in sketches], scaled)
        results = [self._to_photo_scale(s, c, p.shape[:2]) for s, c, p in zip(sketches, colours, photos)]
        return results[0] if single else results

    __call__ = run

    def colorize(self, x: Any, bgr: bool = False, hints: Any = None) -> np.ndarray | list[np.ndarray]:
        """Only the colour images of :meth:`run`."""
        r = self.run(x, bgr=bgr, hints=hints)
        return [p.color for p in r] if isinstance(r, list) else r.color

    def work_size(self, hw: tuple[int, int]) -> tuple[int, int]:
        """(H, W) at which a photo of size ``hw`` is sketched and coloured."""
        h, w = hw
        if self.work_short_side is None:
            return h, w
        scale = self.work_short_side / min(h, w)
        return max(1, round(h * scale)), max(1, round(w * scale))

    def _to_work_scale(self, photo: np.ndarray) -> np.ndarray:
        h, w = self.work_size(photo.shape[:2])
        if (h, w) == photo.shape[:2]:
            return photo
        shrink = h < photo.shape[0]
        return cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)

    @staticmethod
    def _to_photo_scale(sketch: np.ndarray, colour: np.ndarray, hw: tuple[int, int]) -> PipelineResult:
        """Both results at the photo's size: lines stay black on white, colour is resampled."""
        h, w = hw
        if sketch.shape[:2] == (h, w):
            return PipelineResult(sketch, colour)
        interp = cv2.INTER_AREA if h < sketch.shape[0] else cv2.INTER_CUBIC
        colour = cv2.resize(colour, (w, h), interpolation=interp)
        lines = cv2.resize(sketch, (w, h), interpolation=cv2.INTER_AREA if h < sketch.shape[0] else cv2.INTER_LINEAR)
        return PipelineResult(np.where(lines < 192, 0, 255).astype(np.uint8), colour)

    def _sketch(self, rgb: np.ndarray) -> np.ndarray:
        s = np.asarray(self.sketcher.extract(rgb))
        if s.ndim == 3:
            s = s[..., 0]
        return s

    @staticmethod
    def _as_rgb(sketch: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.repeat(sketch[..., None], 3, axis=2))
