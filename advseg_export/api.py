"""Export a generator or HED to a model bundle (``docs/bundle-format.md``): the Python API behind ``advseg-export``.

>>> export_generator("latest_net_G.pth", "sketch2color.advseg", precisions=("fp32", "fp16", "int8"))
>>> export_hed("hed.advseg")

Every bundle holds ``model.fp32.onnx`` plus the requested ``model.fp16.onnx`` / ``model.int8.onnx``
(and a TensorRT engine with ``trt=True``). Each artefact is compared with the PyTorch fp32
network on fixed real inputs, and the figures go into the manifest (``parity``). An artefact
below its threshold (:data:`~advseg_export.parity.DEFAULT_THRESHOLDS`) stops the export with
:class:`DegradedExportError` unless ``allow_degraded`` (then ``"degraded": true`` is recorded).
The bundle is built in a temporary directory beside ``out_dir`` and renamed into place at the
end, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advseg_sdk.options import with_overrides

from .build import ARTEFACT_FILES, EXPORT_PRECISIONS, DegradedExportError, ExportTarget, build
from .onnx_export import MIN_OPSET, ExportError
from .parity import DEFAULT_THRESHOLDS, Threshold
from .precision import Int8Options
from .tensorrt_build import ShapeProfile, require_tensorrt

__all__ = [
    "EXPORT_PRECISIONS",
    "ARTEFACT_FILES",
    "ExportError",
    "DegradedExportError",
    "export_generator",
    "export_hed",
    "export_module",
    "ExportOptions",
    "ExportTarget",
    "GENERATOR_INT8",
    "UNET_INT8",
    "HED_INT8",
    "HED_INPUT_SPEC",
    "HED_OUTPUT_SPEC",
]

Log = Callable[[str], None]

#: int8 defaults (see :mod:`advseg_export.precision` for the measurements behind them).
GENERATOR_INT8 = Int8Options(calibrate_method="Percentile", percentile=99.99, exclude_op_types=("ConvTranspose",))
#: U-Nets spend most of their time in ConvTranspose: quantise it as sub-pixel Convs instead
UNET_INT8 = Int8Options(calibrate_method="Percentile", percentile=99.99, subpixel_conv_transpose=True)
HED_INT8 = Int8Options(calibrate_method="MinMax")

#: The ``input`` and ``output`` an HED bundle's manifest declares: RGB in [0, 1] at any size, edge probability out.
HED_INPUT_SPEC: Mapping[str, Any] = {
    "name": "input",
    "layout": "NCHW",
    "channels": 3,
    "color": "RGB",
    "range": [0, 1],
    "size_multiple": 1,
}
HED_OUTPUT_SPEC: Mapping[str, Any] = {
    "name": "output",
    "layout": "NCHW",
    "channels": 1,
    "range": [0, 1],
    "kind": "edge_probability",
}


@dataclass
class ExportOptions:
    """How to export: precisions, parity and calibration inputs, int8 and TensorRT settings.

    Attributes:
        precisions: among ``fp32`` (always included), ``fp16``, ``int8``.
        opset: ONNX opset (>= 17).
        calib: folder of calibration images for int8, used as the network's inputs (default:
            the cached real photos, made into sketches with ``sketch_method`` for a generator).
        calib_count: how many calibration images.
        sketch_method: how parity/calibration sketches are made from photos (generators).
        int8_options: quantisation settings (default: :data:`GENERATOR_INT8`, :data:`UNET_INT8`
            or :data:`HED_INT8` by network, :class:`Int8Options` for :func:`export_module`).
        instance_norm: ``"decomposed"`` (accurate on ONNX Runtime CPU) or ``"fused"`` (one
            InstanceNormalization op per norm), see :mod:`advseg_export.onnx_export`.
        thresholds: per-precision :class:`~advseg_export.parity.Threshold` overriding the defaults.
        allow_degraded: write the bundle even when an artefact misses its parity threshold.
        trt: also build a TensorRT engine (needs TensorRT and an NVIDIA GPU), from the fp16
            graph when built, else fp32.
        trt_profile: a :class:`ShapeProfile` or a mapping with any of ``min``/``opt``/``max``
            (shapes or ``"1x3x256x256"`` strings); missing ones come from :meth:`ShapeProfile.default`.
        timing_cache: TensorRT timing cache file, loaded if present and saved after the build.
        trt_hardware_compatible: build an engine for any Ampere+ GPU.
        log: called with each progress message.
    """

    precisions: Sequence[str] = ("fp32",)
    opset: int = MIN_OPSET
    calib: str | os.PathLike | None = None
    calib_count: int = 16
    sketch_method: str = "xdog"
    int8_options: Int8Options | None = None
    instance_norm: str = "decomposed"
    thresholds: Mapping[str, Threshold | Mapping[str, float]] | None = None
    allow_degraded: bool = False
    trt: bool = False
    trt_profile: ShapeProfile | Mapping[str, Any] | None = None
    timing_cache: str | os.PathLike | None = None
    trt_hardware_compatible: bool = False
    log: Log | None = None


# --------------------------------------------------------------------------- public API


def export_generator(
    source: Any,
    out_dir: str | os.PathLike,
    options: ExportOptions | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    name: str | None = None,
    **option_fields: Any,
) -> Path:
    """Export a sketch->colour generator to the bundle directory ``out_dir``; returns its path.

    Args:
        source: anything :func:`advseg_train.networks.load_generator` accepts (our safetensors,
            stock pytorch-CycleGAN-and-pix2pix or AdvSegLoss ``.pth``, a state dict).
        options: how to export (:class:`ExportOptions`); ``option_fields`` (its field names,
            e.g. ``precisions=("fp32", "fp16")``) change single fields.
        overrides: GeneratorConfig fields the weights cannot tell (e.g. ``{"ngf": 64}``).
        name: the bundle name in the manifest (default ``sketch2color-<arch>``).
    """
    from advseg_train.networks import load_generator

    opts = with_overrides(ExportOptions, options, option_fields)
    net = load_generator(source, **dict(overrides or {}))
    cfg = net.config
    fixed = cfg.fixed_size
    size = tuple(fixed) if fixed is not None else (256, 256)
    input_spec: dict[str, Any] = {
        "name": "input",
        "layout": "NCHW",
        "channels": cfg.input_nc,
        "color": "RGB",
        "range": [-1, 1],
    }
    if fixed is not None:
        input_spec.update(fixed_size=list(fixed), size_multiple=cfg.size_multiple)
    else:
        input_spec.update(size_multiple=cfg.size_multiple, min_size=2 * cfg.size_multiple)
    provenance = _source_provenance(source, getattr(net, "source_layout", None))
    short_side = _training_short_side(provenance.get("training_config"))
    if short_side is not None and fixed is None:
        input_spec["photo_short_side"] = short_side  # the scale the SDK sketches photos at
    if cfg.hint_nc:
        from advseg_sdk.hints import DEFAULT_POINT_RADIUS, HINT_ENCODING

        input_spec["hints"] = {"channels": cfg.hint_nc, "encoding": HINT_ENCODING, "point_radius": DEFAULT_POINT_RADIUS}
    target = ExportTarget(
        module=net,
        task="sketch2color",
        architecture={"name": cfg.arch, "args": cfg.to_dict()},
        input_spec=input_spec,
        output_spec={"name": "output", "layout": "NCHW", "channels": cfg.output_nc, "color": "RGB", "range": [-1, 1]},
        size=size,  # type: ignore[arg-type]
        dynamic_hw=fixed is None,
        name=name or f"sketch2color-{cfg.arch}",
        provenance=provenance,
    )
    int8 = opts.int8_options or (GENERATOR_INT8 if cfg.is_resnet else UNET_INT8)
    return export_module(target, out_dir, dataclasses.replace(opts, int8_options=int8))


def export_hed(
    out_dir: str | os.PathLike,
    options: ExportOptions | None = None,
    *,
    weights: str | os.PathLike | None = None,
    name: str = "hed",
    **option_fields: Any,
) -> Path:
    """Export the HED edge detector (real BSDS500 weights, asset ``hed-bsds500``, or ``weights``)
    to a ``photo2sketch`` bundle: input RGB in [0, 1] (B,3,H,W) of any size, output the fused edge
    probability (B,1,H,W). ``options``/``option_fields`` as :func:`export_generator` (``calib``: photos)."""
    from advseg_sdk.assets import asset_path
    from advseg_sdk.files import sha256_file
    from advseg_train.hed import load_hed

    opts = with_overrides(ExportOptions, options, option_fields)
    wpath = Path(weights) if weights is not None else asset_path("hed-bsds500")
    net = load_hed(wpath)
    prov = {
        "source": str(wpath),
        "source_checkpoint_sha256": sha256_file(wpath) if wpath.is_file() else None,
        "source_layout": "keras-hed-bsds500",
        "training_config": None,
    }
    target = ExportTarget(
        module=net,
        task="photo2sketch",
        architecture={
            "name": "hed",
            "args": {
                "backbone": "vgg16",
                "weights": wpath.name,
                "preprocessing": "inside the graph: RGB->BGR, x255, minus Caffe mean",
            },
        },
        input_spec=dict(HED_INPUT_SPEC),
        output_spec=dict(HED_OUTPUT_SPEC),
        size=(256, 256),
        dynamic_hw=True,
        name=name,
        provenance=prov,
    )
    return export_module(target, out_dir, dataclasses.replace(opts, int8_options=opts.int8_options or HED_INT8))


def export_module(
    target: ExportTarget, out_dir: str | os.PathLike, options: ExportOptions | None = None, **option_fields: Any
) -> Path:
    """Export ``target`` into a bundle at ``out_dir`` (the shared engine of the two functions above);
    ``options``/``option_fields`` as :func:`export_generator`."""
    opts = with_overrides(ExportOptions, options, option_fields)
    say = opts.log or (lambda _msg: None)
    precs = _normalise_precisions(opts.precisions)
    limits = _merge_thresholds(opts.thresholds)
    out = Path(out_dir).expanduser().absolute()
    _check_out_dir(out)
    profile = None
    if opts.trt:
        require_tensorrt()  # fail before any slow work
        fixed = target.input_spec.get("fixed_size")
        profile = _resolve_profile(opts.trt_profile, target)
        profile.check_for(
            tuple(fixed) if fixed else None, int(target.input_spec.get("size_multiple", 1)), target.graph_channels
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    # The parent folder's lock serialises the short steps that touch ``out`` (clean-up, the
    # swap) between concurrent exports; the build itself runs unlocked in a private temporary,
    # locked for as long as this export lives.
    with _Locked(out.parent):
        clean_stale_temporaries(out)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        own = _Locked(tmp)
        own.__enter__()
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the bundle gets normal permissions
    try:
        opts = dataclasses.replace(opts, precisions=precs, int8_options=opts.int8_options or Int8Options(), log=say)
        manifest = build(target, tmp, opts, limits, profile)
        from advseg_sdk.bundle import write_manifest

        write_manifest(tmp, manifest)
        with _Locked(out.parent):
            _check_out_dir(out)  # another export or the user may have put something there meanwhile
            _replace_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        own.__exit__()
    say(f"bundle written: {out}")
    return out


# --------------------------------------------------------------------------- helpers


def _resolve_profile(profile: ShapeProfile | Mapping[str, Any] | None, target: ExportTarget) -> ShapeProfile:
    if isinstance(profile, ShapeProfile):
        return profile
    fixed = target.input_spec.get("fixed_size")
    default = ShapeProfile.default(
        target.graph_channels,
        tuple(fixed) if fixed else None,
        int(target.input_spec.get("size_multiple", 1)),
        input="input",
    )
    given = dict(profile or {})
    unknown = set(given) - {"min", "opt", "max"}
    if unknown:
        raise ValueError(f"trt_profile keys must be min/opt/max, got {sorted(unknown)}")
    return ShapeProfile(
        min=given.get("min", default.min),
        opt=given.get("opt", default.opt),
        max=given.get("max", default.max),
        input="input",
    )


def _normalise_precisions(precisions: Sequence[str]) -> list[str]:
    if isinstance(precisions, str):
        precisions = [precisions]
    bad = [p for p in precisions if p not in EXPORT_PRECISIONS]
    if bad:
        raise ValueError(f"unsupported precision(s) {bad}; choose from {list(EXPORT_PRECISIONS)}")
    return [p for p in EXPORT_PRECISIONS if p == "fp32" or p in precisions]


def _merge_thresholds(thresholds: Mapping[str, Any] | None) -> dict[str, Threshold]:
    out = dict(DEFAULT_THRESHOLDS)
    for k, v in (thresholds or {}).items():
        if k not in out:
            raise ValueError(f"threshold for unknown precision {k!r}; known: {sorted(out)}")
        out[k] = Threshold.from_any(v)
    return out


def _check_out_dir(out: Path) -> None:
    """Refuse to replace something that is not a bundle (a non-empty folder without a manifest)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ExportError(f"output path {out} exists and is not a directory; choose another -o")
    if any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise ExportError(
            f"output directory {out} exists, is not empty and is not an advseg bundle "
            "(no manifest.json); refusing to replace it, choose another -o"
        )


class _Locked:
    """An exclusive ``flock`` on a directory for the life of the ``with`` block (or of the
    process: the kernel drops it when a killed export dies, which marks its temporaries stale)."""

    def __init__(self, path: Path, wait: bool = True):
        self.path, self.wait, self.fd = path, wait, -1

    def __enter__(self) -> _Locked | None:
        import fcntl

        self.fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(self.fd)
            self.fd = -1
            return None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _rename_exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where
    the system or file system cannot."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _temporaries(out: Path) -> list[Path]:
    return sorted(
        p
        for pat in (f".{out.name}.tmp-*", f".{out.name}.old-*")
        for p in out.parent.glob(pat)
        if p.is_dir() and not p.is_symlink()
    )


def clean_stale_temporaries(out: str | os.PathLike) -> list[Path]:
    """Remove what killed exports left beside ``out`` (``.NAME.tmp-*`` builds, ``.NAME.old-*``
    swapped-out bundles), and first put back a bundle that a kill left moved aside while ``out``
    is missing. A temporary whose export is still running is locked by it and kept.

    Call it holding the lock on ``out``'s parent folder (``export_module`` does).
    """
    out = Path(out)
    removed: list[Path] = []
    for tmp in _temporaries(out):
        with _Locked(tmp, wait=False) as held:
            if held is None:
                continue  # a live export owns it
            aside = tmp / "bundle"
            if not out.exists() and tmp.name.startswith(f".{out.name}.old-") and (aside / "manifest.json").is_file():
                os.replace(aside, out)  # the previous bundle goes back where it was
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def _replace_dir(new: Path, out: Path) -> None:
    """Move the finished bundle ``new`` to ``out`` so that ``out`` always holds a whole bundle:
    one atomic exchange where the system has it; elsewhere the old bundle is moved aside first,
    and :func:`clean_stale_temporaries` puts it back if a kill lands between the two renames."""
    if not out.exists():
        os.replace(new, out)
        return
    if _rename_exchange(new, out):
        shutil.rmtree(new, ignore_errors=True)  # ``new`` now holds the previous bundle
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.replace(out, old / "bundle")
    try:
        os.replace(new, out)
    except OSError:
        os.replace(old / "bundle", out)  # put the previous bundle back
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _source_provenance(source: Any, layout: str | None) -> dict[str, Any]:
    from advseg_sdk.files import sha256_file

    prov: dict[str, Any] = {
        "source": None,
        "source_checkpoint_sha256": None,
        "source_layout": layout,
        "training_config": None,
    }
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        prov["source"] = p.name
        if p.is_file():
            prov["source_checkpoint_sha256"] = sha256_file(p)
        if p.suffix == ".safetensors":
            prov["training_config"] = _training_config(p)
    else:
        prov["source"] = f"<in-memory {type(source).__name__}>"
    return prov


def _training_short_side(config: Any) -> int | None:
    """The photo short side a generator was trained at (``scale_shortside_and_crop``), if known."""
    data = config.get("data") if isinstance(config, dict) else None
    if isinstance(data, dict) and data.get("preprocess") == "scale_shortside_and_crop":
        return int(data["load_size"])
    return None


def _training_config(path: Path) -> Any:
    """The training config stored in one of our safetensors files, if any."""
    import json

    try:
        from advseg_train.checkpoint_formats import read_metadata

        meta = read_metadata(path)
    except Exception:
        return None
    raw = meta.get("training_config") or meta.get("train_config")
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return raw
