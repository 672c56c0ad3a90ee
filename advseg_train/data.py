"""Training data: unaligned, aligned and photos-only datasets, augmentation, resumable sampler.

Layouts (``DataConfig.mode``):

* ``unaligned`` (CycleGAN): ``root/<phase>A`` (sketches) and ``root/<phase>B`` (colour), any
  names; length ``max(|A|, |B|)``; A by index, B random (or by index with ``serial_batches``).
* ``aligned`` (Pix2Pix): folders ``root/A[/<phase>]`` + ``root/B[/<phase>]`` whose files pair by
  name (stem), or side-by-side AB images in ``root/<phase>`` (or ``root``), split at w/2.
* ``photos``: colour photos only (``root``, default the cached real photos); each photo's sketch
  is made on the fly (HED + post-processing, XDoG or Canny) and cached on disk by sha256, method, size.

Augmentation (official ``resize_and_crop``): bicubic resize to ``load_size``², random
``crop_size`` crop, horizontal flip, then [-1, 1]; paired data share one crop and flip. The
randomness is seeded by ``(seed, epoch, index)``, so an item is the same whatever the worker
count and after a resume; the sampler yields those ``(epoch, index)`` keys.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler

from advseg_sdk import files
from advseg_sdk.imageio import read_image, write_image
from advseg_sdk.vocab import SKETCH_METHODS

from .config import DataConfig
from .hints import HintSampler
from .sketch_styles import parse_styles, stylise

if TYPE_CHECKING:
    from .hed import HED

__all__ = [
    "DataError",
    "Augment",
    "UnalignedDataset",
    "AlignedDataset",
    "PhotoSketchDataset",
    "SketchCache",
    "ResumableSampler",
    "build_dataset",
    "list_images",
]


class DataError(ValueError):
    """A data folder is missing, empty, or its files do not pair up; the message says which."""


def list_images(folder: Path, what: str) -> list[Path]:
    """Sorted image files directly in ``folder``; a clear error naming ``what`` if it is missing or empty."""
    return files.list_images(
        folder,
        DataError,
        missing=f"{what}: folder not found: {{folder}}",
        empty=f"{what}: no images ({{suffixes}}) in {{folder}}",
    )


def _rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(index)]))


def _split_key(key: Any) -> tuple[int, int]:
    """Dataset keys are ``index`` or ``(epoch, index)`` (from :class:`ResumableSampler`)."""
    if isinstance(key, (tuple, list)):
        return int(key[0]), int(key[1])
    return 0, int(key)


# --------------------------------------------------------------------------- augmentation


@dataclass(frozen=True)
class Augment:
    """Resize / crop / flip, parameters drawn once and applicable to several images."""

    load_size: int = 286
    crop_size: int = 256
    preprocess: str = "resize_and_crop"
    flip: bool = True
    size_multiple: int = 4

    @classmethod
    def from_config(cls, cfg: DataConfig) -> Augment:
        return cls(cfg.load_size, cfg.crop_size, cfg.preprocess, cfg.flip)

    def resized_size(self, w: int, h: int) -> tuple[int, int]:
        """(w, h) after the resize step (before cropping)."""
        if self.preprocess == "resize_and_crop":
            return self.load_size, self.load_size
        if self.preprocess == "resize":
            return self.crop_size, self.crop_size
        if self.preprocess == "scale_shortside_and_crop":
            scale = self.load_size / max(1, min(w, h))
            return max(self.load_size, round(w * scale)), max(self.load_size, round(h * scale))
        if self.preprocess == "none":
            m = self.size_multiple
            return max(m, round(w / m) * m), max(m, round(h / m) * m)
        return w, h

    def params(self, rng: np.random.Generator, w: int, h: int) -> dict[str, Any]:
        """Crop offset and flip for an image of size (w, h) before resizing."""
        rw, rh = self.resized_size(w, h)
        x = y = 0
        cw, ch = rw, rh
        if self.preprocess in ("resize_and_crop", "crop", "scale_shortside_and_crop"):
            cw = ch = self.crop_size
            if rw < cw or rh < ch:
                raise DataError(
                    f"image of size {w}x{h} is smaller than data.crop_size={self.crop_size} "
                    f"(preprocess={self.preprocess}); resize it or use preprocess=resize_and_crop"
                )
            x = int(rng.integers(0, rw - cw + 1))
            y = int(rng.integers(0, rh - ch + 1))
        flip = bool(self.flip and rng.random() < 0.5)
        return {"size": (rw, rh), "box": (x, y, x + cw, y + ch), "flip": flip}

    @staticmethod
    def apply(img: Image.Image, params: dict[str, Any]) -> torch.Tensor:
        """PIL image -> (3, H, W) float tensor in [-1, 1] using ``params``."""
        if img.size != tuple(params["size"]):
            img = img.resize(params["size"], Image.Resampling.BICUBIC)
        img = img.crop(params["box"])
        if params["flip"]:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        arr = np.asarray(img, dtype=np.float32)
        return torch.from_numpy(arr).permute(2, 0, 1).div(127.5).sub(1.0).contiguous()


def _load_pil(path: Path) -> Image.Image:
    return Image.fromarray(read_image(path))


# --------------------------------------------------------------------------- datasets


class _Base(Dataset):
    def __init__(self, augment: Augment, seed: int) -> None:
        self.augment = augment
        self.seed = int(seed)
        self.hint_sampler: HintSampler | None = None  # paired data: item["H"] = hints drawn from B

    def _with_hints(self, item: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        if self.hint_sampler is not None:
            item["H"] = self.hint_sampler(item["B"], rng, item["A"])
        return item

    def _pair(self, a: Image.Image, b: Image.Image, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        if a.size != b.size:
            a = a.resize(b.size, Image.Resampling.BICUBIC)
        p = self.augment.params(rng, *b.size)
        return self.augment.apply(a, p), self.augment.apply(b, p)

    def _independent(self, a: Image.Image, b: Image.Image, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        """``a`` and ``b`` under their own crop and flip (unpaired data); ``a``'s are drawn first."""
        ta = self.augment.apply(a, self.augment.params(rng, *a.size))
        return ta, self.augment.apply(b, self.augment.params(rng, *b.size))


def _item(ta: Tensor, tb: Tensor, a_path: Path, b_path: Path, index: int) -> dict[str, Any]:
    return {"A": ta, "B": tb, "A_path": str(a_path), "B_path": str(b_path), "index": index}


class UnalignedDataset(_Base):
    """``root/<phase>A`` and ``root/<phase>B``: independent transforms, B random per item."""

    def __init__(
        self,
        root: str | Path,
        phase: str = "train",
        augment: Augment = Augment(),
        seed: int = 0,
        serial_batches: bool = False,
        max_items: int | None = None,
    ) -> None:
        super().__init__(augment, seed)
        root = Path(root)
        self.a_paths = list_images(root / f"{phase}A", "unaligned data, domain A (sketches)")[:max_items]
        self.b_paths = list_images(root / f"{phase}B", "unaligned data, domain B (colour)")[:max_items]
        self.serial_batches = serial_batches

    def __len__(self) -> int:
        return max(len(self.a_paths), len(self.b_paths))

    def __getitem__(self, key: Any) -> dict[str, Any]:
        epoch, index = _split_key(key)
        rng = _rng(self.seed, epoch, index)
        a_path = self.a_paths[index % len(self.a_paths)]
        if self.serial_batches:
            b_path = self.b_paths[index % len(self.b_paths)]
        else:
            b_path = self.b_paths[int(rng.integers(0, len(self.b_paths)))]
        ta, tb = self._independent(_load_pil(a_path), _load_pil(b_path), rng)
        return _item(ta, tb, a_path, b_path, index)


class AlignedDataset(_Base):
    """Paired data: ``root/A`` + ``root/B`` by name, or side-by-side AB files; A and B share one
    crop and flip."""

    def __init__(
        self,
        root: str | Path,
        phase: str = "train",  # root/A/<phase> or root/<phase>, if present
        augment: Augment = Augment(),
        seed: int = 0,
        max_items: int | None = None,
    ) -> None:
        super().__init__(augment, seed)
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"aligned data: folder not found: {root}")
        if (root / "A").is_dir() and (root / "B").is_dir():
            a_dir, b_dir = root / "A", root / "B"
            if (a_dir / phase).is_dir() and (b_dir / phase).is_dir():
                a_dir, b_dir = a_dir / phase, b_dir / phase
            a_files = {p.stem: p for p in list_images(a_dir, "aligned data, folder A")}
            b_files = {p.stem: p for p in list_images(b_dir, "aligned data, folder B")}
            only_a, only_b = sorted(set(a_files) - set(b_files)), sorted(set(b_files) - set(a_files))
            if only_a or only_b:
                raise DataError(
                    f"aligned data: files in {a_dir} and {b_dir} must pair by name; "
                    f"only in A: {only_a[:5]}{'...' if len(only_a) > 5 else ''}, "
                    f"only in B: {only_b[:5]}{'...' if len(only_b) > 5 else ''}"
                )
            self.pairs: list[tuple[Path, Path | None]] = [(a_files[k], b_files[k]) for k in sorted(a_files)]
        else:
            folder = root / phase if (root / phase).is_dir() else root
            self.pairs = [(p, None) for p in list_images(folder, "aligned data (side-by-side AB images)")]
        self.pairs = self.pairs[:max_items]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: Any) -> dict[str, Any]:
        epoch, index = _split_key(key)
        a_path, b_path = self.pairs[index]
        if b_path is None:
            ab = _load_pil(a_path)
            w, h = ab.size
            if w < 2:
                raise DataError(f"aligned image {a_path} is {w}x{h}: too narrow to hold A and B side by side")
            half = w // 2
            a, b = ab.crop((0, 0, half, h)), ab.crop((half, 0, 2 * half, h))
            b_path = a_path
        else:
            a, b = _load_pil(a_path), _load_pil(b_path)
        rng = _rng(self.seed, epoch, index)
        ta, tb = self._pair(a, b, rng)
        return self._with_hints(_item(ta, tb, a_path, b_path, index), rng)


class SketchCache:
    """Sketches of photos on disk, keyed by the photo's sha256, the method and the size.

    For a fixed training size (``resize_and_crop`` / ``resize``) the resized photo is cached
    too, so later epochs decode neither the full-size photo nor run the sketch method.
    ``hits`` / ``misses`` count sketch lookups in this process. The HED model is loaded on first
    use (once per process / data-loader worker)."""

    HED_BORDER = 32  # reflect padding (px) around the photo before HED, trimmed afterwards

    def __init__(self, root: str | Path, method: str = "hed") -> None:
        if method not in SKETCH_METHODS:
            raise DataError(f"unknown sketch method {method!r}; choose hed, xdog or canny")
        self.root = Path(root)
        self.method = method
        self.hits = 0
        self.misses = 0
        self._hed: HED | None = None
        self._lock = threading.Lock()
        self._digests: dict[Path, str] = {}

    def __getstate__(self) -> dict[str, Any]:  # picklable for spawned data-loader workers
        state = dict(self.__dict__)
        state["_hed"], state["_lock"] = None, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def tag(self) -> str:
        return f"{self.method}-b{self.HED_BORDER}" if self.method == "hed" else self.method

    def _digest(self, path: Path) -> str:
        d = self._digests.get(path)
        if d is None:
            d = hashlib.sha256(path.read_bytes()).hexdigest()
            self._digests[path] = d
        return d

    def path_for(self, photo: Path, size: tuple[int, int], kind: str | None = None) -> Path:
        """Cache file of the sketch (``kind=None``) or the resized photo (``kind="photo"``)."""
        return self.root / f"{self._digest(photo)}_{kind or self.tag}_{size[0]}x{size[1]}.png"

    def load(self, photo: Path, augment: Augment) -> tuple[np.ndarray, np.ndarray]:
        """(photo RGB at its training size, sketch (H, W) uint8 of it), from the cache if there."""
        fixed = augment.resized_size(0, 0) if augment.preprocess in ("resize_and_crop", "resize") else None
        if augment.preprocess == "scale_shortside_and_crop":
            return self._load_shortside(photo, augment)
        if fixed is not None:
            p_path, s_path = self.path_for(photo, fixed, "photo"), self.path_for(photo, fixed)
            rgb, sketch = _read_cached(p_path, fixed), _read_cached(s_path, fixed)
            if rgb is not None and sketch is not None:
                self.hits += 1
                return rgb, sketch[:, :, 0]
        img = _load_pil(photo)
        size = augment.resized_size(*img.size)
        rgb = np.asarray(img if img.size == size else img.resize(size, Image.Resampling.BICUBIC))
        s_path = self.path_for(photo, size)
        sketch = _read_cached(s_path, size)
        if sketch is not None:
            self.hits += 1
            sketch = sketch[:, :, 0]
        else:
            self.misses += 1
            sketch = self.make(rgb)
            write_image(s_path, sketch)
        if fixed is not None:
            write_image(self.path_for(photo, size, "photo"), rgb)
        return rgb, sketch

    def _load_shortside(self, photo: Path, augment: Augment) -> tuple[np.ndarray, np.ndarray]:
        """Photo scaled to ``load_size`` on its short side (aspect kept) and its sketch at that size.

        Both are cached under names keyed by the short side, so later epochs decode neither the
        full-size photo nor run HED; this is also the scale the SDK sketches and colours at."""
        side = augment.load_size
        p_path = self.root / f"{self._digest(photo)}_photo_short{side}.png"
        s_path = self.root / f"{self._digest(photo)}_{self.tag}_short{side}.png"
        if p_path.is_file() and s_path.is_file():
            cached: tuple[np.ndarray, np.ndarray] | None
            try:
                cached = read_image(p_path), read_image(s_path)
            except ValueError:
                cached = None
            if cached is not None and cached[0].shape[:2] == cached[1].shape[:2]:
                self.hits += 1
                return cached[0], cached[1][:, :, 0]
        self.misses += 1
        img = _load_pil(photo)
        size = augment.resized_size(*img.size)
        rgb = np.asarray(img if img.size == size else img.resize(size, Image.Resampling.BICUBIC))
        sketch = self.make(rgb)
        write_image(p_path, rgb)
        write_image(s_path, sketch)
        return rgb, sketch

    def make(self, rgb: np.ndarray) -> np.ndarray:
        """Sketch (H, W) uint8, black lines on white, of a uint8 RGB image."""
        from advseg_sdk import line_drawing as sk

        if self.method == "xdog":
            return sk.xdog(rgb)
        if self.method == "canny":
            return sk.canny(rgb)
        with self._lock:
            if self._hed is None:
                from .hed import load_hed

                self._hed = load_hed()
            hed = self._hed
        b = min(self.HED_BORDER, rgb.shape[0] - 1, rgb.shape[1] - 1)
        padded = np.pad(rgb, ((b, b), (b, b), (0, 0)), mode="reflect") if b else rgb
        x = torch.from_numpy(np.ascontiguousarray(padded)).permute(2, 0, 1)[None].float() / 255.0
        with torch.no_grad():
            prob = hed(x)[0, 0].numpy()
        if b:
            prob = prob[b:-b, b:-b]
        return sk.hed_postprocess(prob)


def _read_cached(path: Path, size: tuple[int, int]) -> np.ndarray | None:
    """A cached image of the expected (w, h) size, or None (missing / unreadable / stale)."""
    if not path.is_file():
        return None
    try:
        arr = read_image(path)
    except ValueError:
        return None
    return arr if (arr.shape[1], arr.shape[0]) == tuple(size) else None


class PhotoSketchDataset(_Base):
    """Colour photos only; A is the cached sketch of the photo at its training size.

    ``unpaired=True`` (CycleGAN) pairs the sketch of photo i with a random photo, as the
    unaligned dataset does; otherwise A and B are the same photo under one crop and flip."""

    def __init__(
        self,
        root: str | Path | Sequence[str | Path] | None,
        cache: SketchCache,
        augment: Augment = Augment(),
        seed: int = 0,
        unpaired: bool = False,
        max_items: int | None = None,
        styles: Sequence[str] = (),
    ) -> None:
        super().__init__(augment, seed)
        self.styles = tuple(styles)  # sketch styles drawn per item (sketch_styles.py); () = cached lines
        if root is None:
            from advseg_sdk.assets import asset_path

            root = asset_path("photos")
        roots = [root] if isinstance(root, (str, Path)) else list(root)
        self.paths = [p for r in roots for p in list_images(Path(r), "photos data")][:max_items]
        self.cache = cache
        self.unpaired = unpaired

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: Any) -> dict[str, Any]:
        epoch, index = _split_key(key)
        rng = _rng(self.seed, epoch, index)
        a_path = self.paths[index]
        rgb, sketch_arr = self.cache.load(a_path, self.augment)
        if self.styles:
            style = self.styles[int(rng.integers(0, len(self.styles)))]
            sketch_arr = stylise(style, sketch_arr, rgb, rng)
        sketch = Image.fromarray(sketch_arr).convert("RGB")
        if not self.unpaired:
            ta, tb = self._pair(sketch, Image.fromarray(rgb), rng)
            return self._with_hints(_item(ta, tb, a_path, a_path, index), rng)
        b_path = self.paths[int(rng.integers(0, len(self.paths)))]
        ta, tb = self._independent(sketch, Image.fromarray(self.cache.load(b_path, self.augment)[0]), rng)
        return _item(ta, tb, a_path, b_path, index)


_D = TypeVar("_D", AlignedDataset, PhotoSketchDataset)


def _hinted(dataset: _D, sampler: HintSampler | None) -> _D:
    dataset.hint_sampler = sampler
    return dataset


def build_dataset(
    cfg: DataConfig, *, paired: bool, seed: int = 0, hints: bool = False
) -> UnalignedDataset | AlignedDataset | PhotoSketchDataset:
    """The dataset for ``cfg``; ``paired`` is True for Pix2Pix; ``hints``: items carry ``"H"``,
    colour hints drawn from the photo (:class:`~advseg_train.hints.HintSampler`)."""
    augment = Augment.from_config(cfg)
    hints_sampler = HintSampler(p_none=cfg.hint_p_none, p_region=cfg.hint_p_region) if hints else None
    if cfg.mode == "unaligned":
        if cfg.root is None:
            raise DataError("data.root is required for data.mode=unaligned (folders trainA/ and trainB/)")
        return UnalignedDataset(cfg.root, cfg.phase, augment, seed, cfg.serial_batches, cfg.max_items)
    if cfg.mode == "aligned":
        if cfg.root is None:
            raise DataError("data.root is required for data.mode=aligned")
        return _hinted(AlignedDataset(cfg.root, cfg.phase, augment, seed, cfg.max_items), hints_sampler)
    if cfg.mode == "photos":
        root: str | list[Path] | None = cfg.root
        if cfg.dataset:
            from advseg_sdk.datasets import dataset_root

            root = [dataset_root(name.strip()) / cfg.phase for name in cfg.dataset.split(",")]
        if cfg.sketch_cache:
            cache_root = Path(cfg.sketch_cache)
        else:
            from advseg_sdk.assets import advseg_home

            cache_root = advseg_home() / "sketch_cache"
        dataset = PhotoSketchDataset(
            root,
            SketchCache(cache_root, cfg.sketch_method),
            augment,
            seed,
            unpaired=not paired,
            max_items=cfg.max_items,
            styles=parse_styles(cfg.sketch_styles),
        )
        return _hinted(dataset, hints_sampler)
    raise DataError(f"unknown data.mode {cfg.mode!r}")


# --------------------------------------------------------------------------- sampler


class ResumableSampler(DistributedSampler):
    """:class:`DistributedSampler` that yields ``(epoch, index)`` keys and can start mid-epoch.

    ``set_epoch(epoch, skip=k)`` drops this rank's first ``k`` samples of that epoch (the ones
    a resumed run already trained on). Works for a single process too (``num_replicas=1``)."""

    def __init__(
        self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        super().set_epoch(epoch)
        self.skip = int(skip)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())[self.skip :]
        return iter([(self.epoch, i) for i in indices])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip)
