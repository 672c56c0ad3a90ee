"""What is benchmarked: model specs, their size rules, and real inputs for them.

A :class:`ModelSpec` is plain data (it travels to worker processes as JSON):

- ``generator``: a sketch→colour network, from ``--arch`` (random init with a fixed seed, written
  once to a safetensors checkpoint), ``--checkpoint`` (anything ``load_generator`` accepts) or
  ``--bundle`` (ONNX only; torch backends use the bundle's source checkpoint when it is beside it).
- ``hed``: the HED edge detector with the real BSDS500 weights.
- ``pipeline``: photo → HED sketch → colour through the SDK's :class:`~advseg_sdk.Pipeline`
  (pre- and post-processing included) on a real photo.

Inputs are real: generators get XDoG sketches of the cached photos, HED and the pipeline get the
photos, centre-cropped and resized to the benchmark size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from advseg_sdk import quality
from advseg_sdk.pixels import to_network_range
from advseg_train.archs import GENERATOR_ARCHS, GENERATORS

__all__ = [
    "ModelSpec",
    "MODEL_KINDS",
    "GENERATOR_ARCHS",
    "size_problem",
    "example_photos",
    "generator_input",
    "hed_input",
    "psnr",
]

MODEL_KINDS = ("generator", "hed", "pipeline")


@dataclass
class ModelSpec:
    name: str
    kind: str
    arch: str  # generator arch, "hed", or the pipeline's generator arch
    config: dict[str, Any] | None = None  # GeneratorConfig dict (generators, pipelines)
    checkpoint: str | None = None  # torch weights; None: HED asset / no torch weights
    bundle: str | None = None  # ONNX bundle directory (filled in by preparation)
    hed_bundle: str | None = None  # pipelines only
    source: str = ""  # how the spec was given, for the report
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model kind must be one of {MODEL_KINDS}, got {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        return cls(**d)

    @property
    def fixed_size(self) -> int | None:
        """U-Nets run at (a multiple of) 2**num_downs only; the others take any multiple of 4."""
        fixed = GENERATORS[self.arch].fixed_size if self.kind == "generator" and self.arch in GENERATORS else None
        return fixed[0] if fixed else None

    @property
    def hint_channels(self) -> int:
        """A generator's colour-hint channels after the sketch's (``hint_nc``; 0 without)."""
        return int((self.config or {}).get("hint_nc") or 0) if self.kind == "generator" else 0

    @property
    def input_channels(self) -> int:
        """Channels of the network's input tensor: RGB (HED, pipelines; generators get the sketch
        repeated), then a generator's colour-hint channels, which the benchmark feeds as zeros."""
        return 3 + self.hint_channels

    @property
    def out_range(self) -> tuple[float, float]:
        return (0.0, 1.0) if self.kind == "hed" else (-1.0, 1.0)


def size_problem(spec: ModelSpec, size: int) -> str | None:
    """Why ``spec`` cannot run at ``size``×``size`` (None when it can)."""
    if spec.kind == "generator":
        fixed = spec.fixed_size
        if fixed is not None and size % fixed:
            return f"{spec.arch} needs a multiple of {fixed} px (8/7 stride-2 levels); {size} is not"
        if fixed is None and size % 4:
            return f"{spec.arch} needs a multiple of 4 px; {size} is not"
    if size < 8:
        return f"size {size} is too small (at least 8 px)"
    return None


# --------------------------------------------------------------------------- inputs


def _fit_square(rgb: np.ndarray, size: int) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    crop = rgb[y : y + s, x : x + s]
    interp = cv2.INTER_AREA if s > size else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(crop, (size, size), interpolation=interp))


def example_photos(count: int, size: int, photos: Sequence[Path] | None = None) -> list[np.ndarray]:
    """``count`` real photos (cycling through ``photos``, default the cached set) as uint8 RGB
    ``size``×``size``."""
    from advseg_sdk import assets
    from advseg_sdk.imageio import read_image

    paths = list(photos) if photos is not None else assets.photo_paths()
    if not paths:
        raise assets.AssetMissingError("no cached photos; fetch them with: advseg assets fetch photos")
    cache: dict[int, np.ndarray] = {}
    out = []
    for i in range(count):
        j = i % len(paths)
        if j not in cache:
            cache[j] = _fit_square(read_image(paths[j]), size)
        out.append(cache[j])
    return out


def generator_input(batch: int, size: int, photos: Sequence[Path] | None = None, hint_channels: int = 0) -> np.ndarray:
    """(batch, 3 + hint_channels, size, size) float32 in [-1, 1]: XDoG sketches of real photos
    (3-channel), then ``hint_channels`` zero planes (no colour hints: automatic colouring)."""
    from advseg_sdk.line_drawing import xdog

    sketches = [xdog(p) for p in example_photos(batch, size, photos)]
    x = to_network_range(np.stack([np.repeat(s[None], 3, axis=0) for s in sketches]), (-1.0, 1.0))
    if hint_channels:
        x = np.concatenate([x, np.zeros((batch, hint_channels, size, size), np.float32)], axis=1)
    return x


def hed_input(batch: int, size: int, photos: Sequence[Path] | None = None) -> np.ndarray:
    """(batch, 3, size, size) float32 RGB in [0, 1] from real photos."""
    images = example_photos(batch, size, photos)
    return np.stack([p.transpose(2, 0, 1) for p in images]).astype(np.float32) / np.float32(255.0)


def psnr(reference: np.ndarray, candidate: np.ndarray, value_range: tuple[float, float]) -> dict[str, float | None]:
    """PSNR and max |error|, in the convention of ``advseg_export.parity`` (range mapped to 0..255)."""
    ref = np.asarray(reference, np.float64)
    cand = np.asarray(candidate, np.float64)
    if ref.shape != cand.shape:
        raise ValueError(f"accuracy: output shapes differ: {ref.shape} vs {cand.shape}")
    if not np.isfinite(cand).all():
        return {"psnr_db": None, "max_abs": None, "nonfinite": int((~np.isfinite(cand)).sum())}
    db = quality.psnr(ref, cand, value_range)
    return {"psnr_db": None if math.isinf(db) else round(db, 3), "max_abs": float(np.abs(cand - ref).max())}


def generator_spec(arch: str, ngf: int = 64, norm: str = "instance") -> ModelSpec:
    """A random-init generator spec (weights made and exported by the probe worker)."""
    if arch not in GENERATOR_ARCHS:
        raise ValueError(f"unknown generator architecture {arch!r}; choose from {', '.join(GENERATOR_ARCHS)}")
    cfg = {"arch": arch, "input_nc": 3, "output_nc": 3, "ngf": int(ngf), "norm": norm, "use_dropout": False}
    return ModelSpec(
        name=f"{arch}-ngf{ngf}",
        kind="generator",
        arch=arch,
        config=cfg,
        source=f"--model {arch} --ngf {ngf} (random init)",
    )


def _bundle_spec(path: str) -> ModelSpec:
    from pathlib import Path

    from advseg_sdk.bundle import load_bundle

    b = load_bundle(path)
    if b.task != "sketch2color":
        raise ValueError(f"bundle {path} is a {b.task!r} bundle; use 'hed' for the HED detector")
    cfg = dict(b.architecture.get("args") or {})
    if cfg and b.input_spec.hints is not None:  # the manifest says what the graph reads
        cfg["hint_nc"] = b.input_spec.hints.channels
    ckpt = None
    src = b.provenance.get("source")
    if src:
        cand = Path(src) if Path(src).is_absolute() else b.path.parent / src
        sha = b.provenance.get("source_checkpoint_sha256")
        if cand.is_file():
            from advseg_sdk.files import sha256_file

            if sha is None or sha256_file(cand) == sha:
                ckpt = str(cand)
    return ModelSpec(
        name=b.name,
        kind="generator",
        arch=b.arch_name,
        config=cfg or None,
        checkpoint=ckpt,
        bundle=str(b.path),
        source=f"bundle {path}",
    )


def parse_models(text: str, ngf: int = 64, norm: str = "instance") -> list[ModelSpec]:
    """Specs from ``--model``: comma-separated architectures, ``hed``, ``pipeline``,
    ``checkpoint:PATH`` and ``bundle:PATH``. ``pipeline`` colours with the first generator listed
    (``resnet_9blocks`` if none)."""
    from pathlib import Path

    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ValueError("no models given")
    specs: list[ModelSpec] = []
    want_pipeline = False
    for item in items:
        if item == "hed":
            specs.append(ModelSpec(name="hed", kind="hed", arch="hed", source="HED, BSDS500 weights"))
        elif item == "pipeline":
            want_pipeline = True
        elif item.startswith("checkpoint:"):
            p = Path(item.split(":", 1)[1]).expanduser()
            if not p.is_file():
                raise ValueError(f"checkpoint not found: {p}")
            specs.append(
                ModelSpec(
                    name=p.stem, kind="generator", arch="?", checkpoint=str(p.absolute()), source=f"checkpoint {p}"
                )
            )
        elif item.startswith("bundle:"):
            specs.append(_bundle_spec(item.split(":", 1)[1]))
        else:
            specs.append(generator_spec(item, ngf, norm))
    names = [s.name for s in specs]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"model(s) listed twice: {', '.join(sorted(dup))}")
    if want_pipeline:
        gen = next((s for s in specs if s.kind == "generator"), None) or generator_spec("resnet_9blocks", ngf, norm)
        specs.append(
            ModelSpec(
                name=f"pipeline-{gen.name}",
                kind="pipeline",
                arch=gen.arch,
                config=gen.config,
                checkpoint=gen.checkpoint,
                bundle=gen.bundle,
                source=f"photo -> HED sketch -> {gen.name} (SDK Pipeline)",
            )
        )
    return specs
