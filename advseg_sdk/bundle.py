"""Model bundles: the one module that knows the bundle format (``docs/bundle-format.md``).

A bundle is a directory ``<name>.advseg/`` (or a ``.zip`` of one) holding ``manifest.json`` and
the artefacts it lists. Bundles hold no pickles: ONNX graphs, TensorRT engines, JSON only.

Manifest schema, format version ``advseg-bundle/1``::

    {
      "format_version": "advseg-bundle/1",
      "name": "sketch2color-resnet9",                # optional, free text
      "task": "sketch2color",                        # or "photo2sketch"
      "architecture": {"name": "resnet_9blocks",     # GeneratorConfig.arch, or "hed"
                       "args": {...}},               # e.g. GeneratorConfig.to_dict()
      "input":  {"name": "input",                    # graph input name (optional)
                 "layout": "NCHW", "channels": 3, "color": "RGB",
                 "range": [-1, 1],                   # values the graph expects
                 "size_multiple": 4,                 # fully convolutional: H, W multiple of this
                 "min_size": 8,                      # optional: smallest H, W the graph runs at
                 "hints": {"channels": 4,            # optional: colour-hint channels after the
                           "encoding": "rgb-mask",   # sketch's (graph input 3 + 4 channels)
                           "point_radius": 2}},
                # or  "fixed_size": [256, 256]      # [H, W]: the graph only runs at this size
      "output": {"name": "output", "layout": "NCHW", "channels": 3, "range": [-1, 1]},
      "artefacts": [
        {"file": "model.fp32.onnx", "format": "onnx", "precision": "fp32",
         "opset": 17, "sha256": "<hex>", "bytes": 123,
         "io_dtype": "float32"},                     # dtype of graph inputs/outputs (optional)
        {"file": "h100-trt10.8.engine", "format": "engine", "precision": "fp16",
         "sha256": "<hex>", "bytes": 456,
         "engine": {"gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0",
                    "tensorrt_version": "10.8.0", "cuda_version": "12.8",
                    "profiles": [{"input": "input", "min": [1, 3, 64, 64],
                                  "opt": [1, 3, 256, 256], "max": [8, 3, 1024, 1024]}],
                    "hardware_compatible": false}}   # optional: Ampere+ compatible engine
      ],
      "parity": {                                    # optional; keyed by artefact file
        "model.fp16.onnx": {"reference": "torch-fp32", "max_abs": 0.004, "psnr": 52.1,
                            "inputs": ["astronaut.png", "..."]}
      },
      "provenance": {                                # optional
        "training_config": {...} | null, "source": "latest_net_G.pth",
        "source_checkpoint_sha256": "<hex>", "package_version": "0.1.0",
        "created": "2025-01-01T00:00:00+00:00", "exporter": "advseg-export"
      }
    }

``precision`` is one of :data:`PRECISIONS`; ``format`` is ``onnx`` or ``engine``. An engine's
``precision`` is what its network computes in; ``Bundle.artefact(...)`` also accepts the
selector ``"trt"`` meaning "an engine". Unknown extra keys are kept and ignored, so exporters may
add fields within a format version; a breaking change bumps the version.

Public API: :func:`write_manifest` (atomic), :func:`describe_artefact` (sha256 + size entry),
:func:`load_bundle` (directory or zip, verifies versions and hashes), :class:`Bundle`,
:class:`Artefact`, :class:`InputSpec`, :class:`HintSpec`, :class:`BundleError`, :func:`default_bundle_dir`,
:func:`default_bundle_path`, :func:`pack_bundle` (zip a bundle directory).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .assets import advseg_home
from .files import atomic_write_bytes, sha256_file
from .onnx_scan import onnx_external_data
from .vocab import PRECISIONS

__all__ = [
    "FORMAT_VERSION",
    "TASKS",
    "PRECISIONS",
    "FORMATS",
    "MANIFEST_NAME",
    "BundleError",
    "Artefact",
    "EngineInfo",
    "InputSpec",
    "OutputSpec",
    "HintSpec",
    "Bundle",
    "write_manifest",
    "describe_artefact",
    "validate_manifest",
    "manifest_schema",
    "onnx_external_data",
    "load_bundle",
    "pack_bundle",
    "default_bundle_dir",
    "default_bundle_path",
    "create_hint",
]

FORMAT_VERSION = "advseg-bundle/1"
SUPPORTED_FORMAT_VERSIONS = (FORMAT_VERSION,)
MANIFEST_NAME = "manifest.json"
TASKS = ("sketch2color", "photo2sketch")
FORMATS = ("onnx", "engine")
ENGINE_SELECTOR = "trt"


class BundleError(ValueError):
    """A bundle is missing, corrupt, of an unknown version, or does not fit the request."""


# --------------------------------------------------------------------------- locations


def default_bundle_dir() -> Path:
    """Where bundles live by default: ``advseg_home()/"bundles"``."""
    return advseg_home() / "bundles"


def packaged_bundle_dir() -> Path:
    """Bundles shipped inside the package (the embedded demo model)."""
    return Path(__file__).resolve().parent / "data"


def default_bundle_path(name: str) -> Path:
    """``default_bundle_dir()/f"{name}.advseg"``, e.g. ``default_bundle_path("hed")``.

    When the cache has no such bundle but the package ships one (``advseg_sdk/data/``), the
    shipped one is returned: a bundle the user exports into the cache always wins.
    """
    cached = default_bundle_dir() / f"{name}.advseg"
    packaged = packaged_bundle_dir() / f"{name}.advseg"
    if not cached.exists() and (packaged / "manifest.json").is_file():
        return packaged
    return cached


def _cache_dir() -> Path:
    return advseg_home() / "bundle-cache"


def create_hint(path: str | os.PathLike) -> str:
    """The command that creates a bundle at ``path`` (used in 'missing bundle' errors)."""
    p = Path(path)
    if p.name.startswith("hed"):
        return f"advseg-export hed -o {p}"
    return f"advseg-export CHECKPOINT -o {p}"


# --------------------------------------------------------------------------- typed views


@dataclass(frozen=True)
class EngineInfo:
    """Where a TensorRT engine was built; an engine only runs on a matching GPU/TensorRT."""

    gpu_name: str
    compute_capability: str
    tensorrt_version: str
    cuda_version: str | None = None
    profiles: tuple[dict, ...] = ()
    hardware_compatible: bool = False  # built with TensorRT's Ampere+ hardware compatibility

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EngineInfo:
        return cls(
            gpu_name=str(d["gpu_name"]),
            compute_capability=str(d["compute_capability"]),
            tensorrt_version=str(d["tensorrt_version"]),
            cuda_version=None if d.get("cuda_version") is None else str(d["cuda_version"]),
            profiles=tuple(d.get("profiles") or ()),
            hardware_compatible=bool(d.get("hardware_compatible", False)),
        )

    def describe(self) -> str:
        return f"{self.gpu_name} (sm {self.compute_capability}), TensorRT {self.tensorrt_version}"


@dataclass(frozen=True)
class Artefact:
    """One model file of a bundle, as listed in the manifest."""

    file: str
    format: str
    precision: str
    sha256: str
    bytes: int | None
    path: Path
    opset: int | None = None
    io_dtype: str | None = None
    engine: EngineInfo | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_engine(self) -> bool:
        return self.format == "engine"

    @property
    def label(self) -> str:
        """Short name: ``fp16`` for ONNX, ``trt-fp16`` for an engine."""
        return f"trt-{self.precision}" if self.is_engine else self.precision


@dataclass(frozen=True)
class HintSpec:
    """The colour-hint input of a generator that takes hints (``input.hints``): ``channels``
    graph channels after the sketch's, in ``encoding`` ``rgb-mask`` (hint RGB in [-1, 1] times
    the mask, then the mask; see :mod:`advseg_sdk.hints`); a point hint is a square of side
    ``2 * point_radius + 1`` at the network's resolution."""

    channels: int = 4
    encoding: str = "rgb-mask"
    point_radius: int = 2

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HintSpec:
        return cls(
            channels=int(d.get("channels", 4)),
            encoding=str(d.get("encoding", "rgb-mask")),
            point_radius=int(d.get("point_radius", 2)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"channels": self.channels, "encoding": self.encoding, "point_radius": self.point_radius}


@dataclass(frozen=True)
class InputSpec:
    """What the graph expects: layout, channels, value range and spatial constraints.

    ``channels`` are the sketch's; a generator that takes colour hints reads ``hints.channels``
    more (:attr:`graph_channels` in all); ``hints`` is None when it takes none."""

    name: str | None = None
    layout: str = "NCHW"
    channels: int = 3
    color: str = "RGB"
    range: tuple[float, float] = (-1.0, 1.0)
    size_multiple: int = 1
    fixed_size: tuple[int, int] | None = None  # (H, W)
    min_size: int = 1  # smallest H and W the graph accepts (after padding)
    hints: HintSpec | None = None  # the colour-hint channels after the sketch's, if any
    photo_short_side: int | None = None  # the scale the SDK sketches photos at (from training)

    @property
    def graph_channels(self) -> int:
        """Channels of the graph's input tensor: the sketch's, then the hints'."""
        return self.channels + (self.hints.channels if self.hints is not None else 0)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InputSpec:
        fixed = d.get("fixed_size")
        rng = d.get("range", (-1.0, 1.0))
        hints = d.get("hints")
        return cls(
            name=d.get("name"),
            layout=str(d.get("layout", "NCHW")),
            channels=int(d.get("channels", 3)),
            color=str(d.get("color", "RGB")),
            range=(float(rng[0]), float(rng[1])),
            size_multiple=int(d.get("size_multiple", 1) or 1),
            fixed_size=None if fixed is None else (int(fixed[0]), int(fixed[1])),
            min_size=int(d.get("min_size", 1) or 1),
            hints=HintSpec.from_dict(hints) if hints else None,
            photo_short_side=int(d["photo_short_side"]) if d.get("photo_short_side") else None,
        )


@dataclass(frozen=True)
class OutputSpec:
    """What the graph returns: layout, channels (None: not declared), colour order, value range
    and what the values mean (``kind``, e.g. ``edge_probability``)."""

    name: str | None = None
    layout: str = "NCHW"
    channels: int | None = None
    color: str = "RGB"
    range: tuple[float, float] = (-1.0, 1.0)
    kind: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OutputSpec:
        rng = d.get("range", (-1.0, 1.0))
        return cls(
            name=d.get("name"),
            layout=str(d.get("layout", "NCHW")),
            channels=int(d["channels"]) if d.get("channels") is not None else None,
            color=str(d.get("color", "RGB")),
            range=(float(rng[0]), float(rng[1])),
            kind=d.get("kind"),
        )


class Bundle:
    """A loaded bundle: its directory, parsed manifest and typed views of it."""

    def __init__(self, path: Path, manifest: dict, source: Path | None = None):
        self.path = Path(path)
        self.source = Path(source) if source is not None else self.path  # the zip, if zipped
        self.manifest = manifest
        self.artefacts: list[Artefact] = [_artefact(self.path, a) for a in manifest["artefacts"]]
        self.input_spec = InputSpec.from_dict(manifest.get("input") or {})
        self.output_spec = OutputSpec.from_dict(manifest.get("output") or {})

    def __repr__(self) -> str:
        arts = ", ".join(a.label for a in self.artefacts)
        return f"Bundle({str(self.source)!r}, task={self.task!r}, arch={self.arch_name!r}, artefacts=[{arts}])"

    # manifest fields --------------------------------------------------------
    @property
    def format_version(self) -> str:
        return self.manifest["format_version"]

    @property
    def name(self) -> str:
        return self.manifest.get("name") or self.source.name.removesuffix(".zip").removesuffix(".advseg")

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def architecture(self) -> dict:
        return self.manifest["architecture"]

    @property
    def arch_name(self) -> str:
        return self.manifest["architecture"]["name"]

    @property
    def degraded(self) -> bool:
        """Written with an artefact below its parity threshold (``advseg-export --allow-degraded``)."""
        return bool(self.manifest.get("degraded"))

    @property
    def parity(self) -> dict:
        return self.manifest.get("parity") or {}

    @property
    def provenance(self) -> dict:
        return self.manifest.get("provenance") or {}

    # artefacts ---------------------------------------------------------------
    @property
    def precisions(self) -> list[str]:
        """Precisions available as ONNX artefacts, in manifest order."""
        return [a.precision for a in self.artefacts if a.format == "onnx"]

    @property
    def engines(self) -> list[Artefact]:
        return [a for a in self.artefacts if a.is_engine]

    def available(self) -> list[str]:
        """Every selectable artefact label (``fp32``, ``fp16``, ``int8``, ``trt-fp16`` ...)."""
        return [a.label for a in self.artefacts]

    def artefact(self, precision: str, format: str | None = None) -> Artefact:
        """The artefact for ``precision`` (``fp32``/``fp16``/``bf16``/``int8``, or ``trt``).

        ``format`` defaults to ``onnx`` (``engine`` when ``precision == "trt"``). A label such as
        ``trt-fp16`` selects an engine of that precision.
        """
        prec: str | None = precision
        if precision == ENGINE_SELECTOR:
            prec, format = None, "engine"
        elif precision.startswith(ENGINE_SELECTOR + "-"):
            prec, format = precision[len(ENGINE_SELECTOR) + 1 :], "engine"
        fmt = format or "onnx"
        for a in self.artefacts:
            if a.format == fmt and (prec is None or a.precision == prec):
                return a
        raise BundleError(
            f"bundle {self.source} has no {precision!r} artefact"
            + (f" in format {fmt!r}" if format else "")
            + f"; available: {', '.join(self.available()) or 'none'}"
        )

    def artefact_path(self, precision: str, format: str | None = None) -> Path:
        """Path of the artefact for ``precision`` (see :meth:`artefact`)."""
        return self.artefact(precision, format).path

    def verify(self, files: Iterable[Artefact] | None = None) -> None:
        """Check every (or the given) artefact exists with the manifest's size and sha256."""
        for a in self.artefacts if files is None else files:
            _verify_artefact(self.source, a)


def _artefact(root: Path, d: Mapping[str, Any]) -> Artefact:
    eng = d.get("engine")
    return Artefact(
        file=d["file"],
        format=d["format"],
        precision=d["precision"],
        sha256=d["sha256"],
        bytes=d.get("bytes"),
        path=root / d["file"],
        opset=d.get("opset"),
        io_dtype=d.get("io_dtype"),
        engine=EngineInfo.from_dict(eng) if eng else None,
        raw=d,
    )


def _verify_artefact(where: Path, a: Artefact) -> None:
    if a.path.is_symlink():
        raise BundleError(f"bundle {where}: {a.file} is a symbolic link; bundles hold plain files only")
    if not a.path.is_file():
        raise BundleError(
            f"bundle {where}: artefact {a.file!r} listed in {MANIFEST_NAME} is missing "
            f"(expected at {a.path}); the bundle is incomplete, re-export it with `advseg-export`"
        )
    size = a.path.stat().st_size
    if a.bytes is not None and size != a.bytes:
        raise BundleError(
            f"bundle {where}: size mismatch for {a.file}: manifest says {a.bytes} bytes, "
            f"file has {size} (truncated or replaced); re-export the bundle"
        )
    got = sha256_file(a.path)
    if got != a.sha256.lower():
        raise BundleError(
            f"bundle {where}: sha256 mismatch for {a.file}: expected {a.sha256}, got {got} "
            "(file changed or corrupted); re-export the bundle"
        )
    if a.format == "onnx":
        external = onnx_external_data(a.path)
        if external:
            raise BundleError(
                f"bundle {where}: {a.file} keeps tensor data in a separate file ({external[0]!r}) that "
                "the manifest cannot hash; bundles need self-contained ONNX files: re-export the bundle"
            )


# --------------------------------------------------------------------------- validation


def _require(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise BundleError(f"invalid {MANIFEST_NAME} in {where}: {msg}")


#: Deepest nesting of objects/lists a manifest may have (real ones use 5).
MAX_MANIFEST_DEPTH = 32
#: Largest manifest.json read (real ones are a few kB).
MAX_MANIFEST_BYTES = 4 << 20
SCHEMA_NAME = "bundle-manifest.schema.json"


@functools.lru_cache(maxsize=1)
def _schema_text() -> str:
    return (packaged_bundle_dir() / SCHEMA_NAME).read_text(encoding="utf-8")


def manifest_schema() -> dict:
    """The JSON schema every manifest is checked against (published as ``docs/bundle-manifest.schema.json``)."""
    return json.loads(_schema_text())


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema

    schema = manifest_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _json_path(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, without recursion (a hostile file may be deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            if deepest > MAX_MANIFEST_DEPTH:
                return deepest
            stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def _schema_message(err: Any, manifest: Mapping[str, Any]) -> str:
    """One line for a jsonschema error, naming the field as a JSON path."""
    where = _json_path(err.absolute_path)
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        if where.startswith("artefacts[") and missing == "engine":
            return f"engine artefact {err.instance.get('file')!r} needs an 'engine' object"
        return f"missing key {missing!r}" if not where else f"{where} is missing {missing!r}"
    if err.validator == "pattern" and where.endswith(".file"):
        return f"{where} must be a plain file name, got {err.instance!r}"
    if err.validator == "pattern" and where.endswith(".sha256"):
        return f"{where} must be 64 hex digits"
    if where.endswith("fixed_size"):
        return f"{where} must be [H, W], integers in 1..16384, got {err.instance!r}"
    if err.validator == "enum" and (where == "task" or where.endswith((".precision", ".format"))):
        return f"{where} {err.message}"
    return f"{where or 'top level'}: {err.message}"


def validate_manifest(manifest: Mapping[str, Any], where: str = "<manifest>") -> None:
    """Raise :class:`BundleError` unless ``manifest`` follows ``docs/bundle-manifest.schema.json``.

    Runs once per load, so everything after it (typed views, the runtime) may trust types and
    ranges. Checks in code what a schema cannot say: lo < hi, unique files, nesting depth.
    """
    _require(isinstance(manifest, Mapping), where, "top level must be a JSON object")
    _require(_depth(manifest) <= MAX_MANIFEST_DEPTH, where, f"nested deeper than {MAX_MANIFEST_DEPTH} levels")
    version = manifest.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise BundleError(
            f"bundle {where}: unsupported format version {version!r}; this advseg reads "
            f"{', '.join(SUPPORTED_FORMAT_VERSIONS)}. Re-export the bundle with this version's "
            "`advseg-export`, or install the advseg version that wrote it"
        )
    errors = sorted(
        _validator().iter_errors(manifest), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path)))
    )
    if errors:
        import jsonschema

        err = jsonschema.exceptions.best_match(errors)
        while err.context:  # oneOf / anyOf: report the branch that came closest
            err = jsonschema.exceptions.best_match(err.context)
        _require(False, where, _schema_message(err, manifest))
    for key in ("input", "output"):
        rng = manifest[key].get("range")
        if rng is not None:
            _require(rng[0] < rng[1], where, f"{key}.range must be [lo, hi] with lo < hi, got {rng!r}")
    seen: set[str] = set()
    for a in manifest["artefacts"]:
        _require(a["file"] not in seen, where, f"artefact file {a['file']!r} listed twice")
        seen.add(a["file"])


# --------------------------------------------------------------------------- writing


def describe_artefact(
    path: str | os.PathLike,
    precision: str,
    format: str = "onnx",
    opset: int | None = None,
    **extra: Any,
) -> dict:
    """A manifest ``artefacts`` entry for the file at ``path`` (sha256 and size computed).

    ``extra`` is merged in (e.g. ``io_dtype="float16"`` or ``engine={...}``).
    """
    p = Path(path)
    entry: dict[str, Any] = {
        "file": p.name,
        "format": format,
        "precision": precision,
        "sha256": sha256_file(p),
        "bytes": p.stat().st_size,
    }
    if opset is not None:
        entry["opset"] = int(opset)
    entry.update(extra)
    return entry


def write_manifest(bundle_dir: str | os.PathLike, manifest: Mapping[str, Any], verify: bool = True) -> Path:
    """Validate ``manifest`` and write ``bundle_dir/manifest.json`` atomically.

    ``format_version`` defaults to :data:`FORMAT_VERSION`. With ``verify`` the listed artefacts
    must already be in ``bundle_dir`` with matching sha256 (write the model files first).
    """
    d = Path(bundle_dir)
    m = dict(manifest)
    m.setdefault("format_version", FORMAT_VERSION)
    validate_manifest(m, str(d))
    if verify:
        b = Bundle(d, m)
        b.verify()
    d.mkdir(parents=True, exist_ok=True)
    text = json.dumps(m, indent=2, sort_keys=False, allow_nan=False) + "\n"
    return atomic_write_bytes(d / MANIFEST_NAME, text.encode("utf-8"))


def pack_bundle(bundle_dir: str | os.PathLike, zip_path: str | os.PathLike | None = None) -> Path:
    """Zip a bundle directory (manifest + artefacts at the archive root), atomically."""
    d = Path(bundle_dir)
    load_bundle(d, verify=True)  # never pack a broken bundle
    out = Path(zip_path) if zip_path is not None else d.with_name(d.name + ".zip")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(d.iterdir()):
                if f.is_file() and not f.name.startswith("."):
                    zf.write(f, arcname=f.name)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return out


# --------------------------------------------------------------------------- loading


def _no_constant(name: str) -> Any:
    raise ValueError(f"{MANIFEST_NAME} contains {name}, which JSON does not allow")


def _read_manifest(d: Path, shown: Path) -> dict:
    mpath = d / MANIFEST_NAME
    if mpath.is_symlink():
        raise BundleError(f"bundle {shown}: {MANIFEST_NAME} is a symbolic link; bundles hold plain files only")
    if not mpath.is_file():
        raise BundleError(
            f"{shown} is not an advseg bundle: no {MANIFEST_NAME} in it; create one with `{create_hint(shown)}`"
        )
    if mpath.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError(f"corrupt bundle {shown}: {MANIFEST_NAME} is over {MAX_MANIFEST_BYTES >> 20} MiB")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise BundleError(f"corrupt bundle {shown}: {MANIFEST_NAME} is not UTF-8 text ({exc})") from None
    except json.JSONDecodeError as exc:
        raise BundleError(
            f"corrupt bundle {shown}: {MANIFEST_NAME} is not valid JSON "
            f"({exc.msg} at line {exc.lineno}, column {exc.colno}); re-export the bundle"
        ) from None
    except ValueError as exc:  # NaN / Infinity
        raise BundleError(f"corrupt bundle {shown}: {exc}") from None
    except RecursionError:
        raise BundleError(f"corrupt bundle {shown}: {MANIFEST_NAME} is nested too deeply") from None
    validate_manifest(manifest, str(shown))
    return manifest


#: Zip limits, checked on the archive's directory before anything is extracted. ONNX files
#: cannot exceed 2 GiB (protobuf); weights compress little, so a high ratio means padding.
MAX_ZIP_MEMBER_BYTES = 2 << 30
MAX_ZIP_TOTAL_BYTES = 4 << 30
MAX_ZIP_RATIO = 100
MAX_ZIP_MEMBERS = 256


def _is_symlink_entry(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def _safe_members(zf: zipfile.ZipFile, zpath: Path) -> list[zipfile.ZipInfo]:
    """The archive's members, after refusing unsafe paths, symlinks and bomb-like sizes."""
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_MEMBERS:
        raise BundleError(f"corrupt bundle {zpath}: {len(infos)} members (limit {MAX_ZIP_MEMBERS})")
    members, total = [], 0
    for info in infos:
        name = info.filename
        parts = Path(name).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise BundleError(f"corrupt bundle {zpath}: unsafe path {name!r} in the zip archive")
        if _is_symlink_entry(info):
            raise BundleError(f"corrupt bundle {zpath}: {name!r} is a symbolic link; bundles hold plain files only")
        size = info.file_size
        if size > MAX_ZIP_MEMBER_BYTES:
            raise BundleError(
                f"bundle {zpath}: {name} declares {size / 1e9:.1f} GB uncompressed "
                f"(limit {MAX_ZIP_MEMBER_BYTES / 1e9:.1f} GB per member); refusing to extract"
            )
        if size > (1 << 20) and size > MAX_ZIP_RATIO * max(info.compress_size, 1):
            raise BundleError(
                f"bundle {zpath}: {name} has compression ratio {size / max(info.compress_size, 1):.0f}:1 "
                f"(limit {MAX_ZIP_RATIO}:1), a zip bomb or padding; refusing to extract"
            )
        total += size
        if total > MAX_ZIP_TOTAL_BYTES:
            raise BundleError(
                f"bundle {zpath}: over {MAX_ZIP_TOTAL_BYTES / 1e9:.1f} GB uncompressed in all; refusing to extract"
            )
        members.append(info)
    return members


def _extract_zip(zpath: Path) -> Path:
    """Extract a zipped bundle into the cache, keyed by the zip's sha256 (atomic rename).

    The extraction is checked (manifest schema, artefact hashes, no symlinks) before it is
    renamed into place, and removed when a check fails.
    """
    digest = sha256_file(zpath)
    target = _cache_dir() / f"{digest[:32]}-{zpath.stem}"
    if (target / ".complete").is_file():
        return _bundle_root(target, zpath)
    _cache_dir().mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=_cache_dir()))
    try:
        try:
            with zipfile.ZipFile(zpath) as zf:
                zf.extractall(tmp, members=_safe_members(zf, zpath))
        except (zipfile.BadZipFile, EOFError) as exc:
            raise BundleError(f"corrupt bundle {zpath}: not a readable zip archive ({exc})") from None
        except OSError as exc:
            raise BundleError(f"bundle {zpath}: cannot extract into {_cache_dir()}: {exc.strerror or exc}") from None
        root = _bundle_root(tmp, zpath)
        Bundle(root, _read_manifest(root, zpath), source=zpath).verify()
        (tmp / ".complete").write_text(digest + "\n")
        try:
            os.replace(tmp, target)
        except OSError:
            # another process extracted the same archive first; theirs is identical
            if not (target / ".complete").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return _bundle_root(target, zpath)


def _bundle_root(extracted: Path, zpath: Path) -> Path:
    """The manifest may sit at the archive root or inside one top-level folder."""
    if (extracted / MANIFEST_NAME).is_file():
        return extracted
    subdirs = [p for p in extracted.iterdir() if p.is_dir()]
    if len(subdirs) == 1 and (subdirs[0] / MANIFEST_NAME).is_file():
        return subdirs[0]
    raise BundleError(
        f"{zpath} is not an advseg bundle: no {MANIFEST_NAME} at the archive root or in a single "
        f"top-level folder; create one with `{create_hint(zpath.with_suffix(''))}`"
    )


def load_bundle(
    path: str | os.PathLike | Bundle,
    verify: bool = True,
    task: str | None = None,
) -> Bundle:
    """Open the bundle at ``path`` (a ``.advseg`` directory or a ``.zip`` of one).

    Checks the format version and, with ``verify``, every artefact's size and sha256. With
    ``task`` the bundle must be for that task. Raises :class:`BundleError` with a specific
    message (missing, corrupt JSON, unknown version, missing file, hash mismatch, wrong task).
    """
    if isinstance(path, Bundle):
        bundle = path
    else:
        p = Path(path).expanduser().absolute()
        if not p.exists():
            raise BundleError(f"bundle not found: {p}; create one with `{create_hint(p)}`")
        if p.is_file():
            if not zipfile.is_zipfile(p):
                if p.name == MANIFEST_NAME:
                    p = p.parent
                elif p.suffix.lower() == ".zip":
                    raise BundleError(f"corrupt bundle {p}: not a readable zip archive")
                else:
                    raise BundleError(f"{p} is not an advseg bundle: expected a bundle directory or a .zip of one")
            else:
                root = _extract_zip(p)
                bundle = Bundle(root, _read_manifest(root, p), source=p)
        if p.is_dir():
            bundle = Bundle(p, _read_manifest(p, p))
        if verify:
            bundle.verify()
    if task is not None and bundle.task != task:
        raise BundleError(
            f"bundle {bundle.source} is a {bundle.task!r} bundle ({bundle.arch_name}), "
            f"but a {task!r} bundle is needed here"
        )
    return bundle
