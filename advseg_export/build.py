"""The build of one bundle (behind :func:`advseg_export.api.export_module`): the fp32 graph and the
parity inputs first, then one step per precision (:data:`PRECISION_STEPS`: each writes its ONNX
artefact), each measured against the PyTorch fp32 network and judged against its threshold by
one shared step (:meth:`Build.record`), then the TensorRT engine, then the manifest."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import torch
from torch import nn

from advseg_sdk.files import utc_timestamp
from advseg_sdk.vocab import ONNX_PRECISIONS

from .calibration import ArrayCalibrationReader, InputSet, calibration_inputs, parity_inputs, with_hint_channels
from .onnx_export import ExportError, export_onnx
from .parity import PARITY_CONVENTION, ParityResult, Threshold, compare
from .precision import Int8Options, convert_fp16, norm_nodes, op_block_summary, quantize_int8
from .subpixel import subpixel_conv_transposes
from .tensorrt_build import ShapeProfile, build_engine, engine_file_name, require_tensorrt

if TYPE_CHECKING:
    from .api import ExportOptions

__all__ = ["EXPORT_PRECISIONS", "ARTEFACT_FILES", "DegradedExportError", "ExportTarget", "build"]

EXPORT_PRECISIONS = ONNX_PRECISIONS
ARTEFACT_FILES = {p: f"model.{p}.onnx" for p in EXPORT_PRECISIONS}


class DegradedExportError(ExportError):
    """An artefact misses its parity threshold; ``failures`` maps artefact file -> reasons."""

    def __init__(self, message: str, failures: Mapping[str, list[str]]):
        super().__init__(message)
        self.failures = dict(failures)


@dataclass
class ExportTarget:
    """What to export: the torch module and everything the manifest says about it."""

    module: nn.Module
    task: str  # "sketch2color" | "photo2sketch"
    architecture: dict[str, Any]
    input_spec: dict[str, Any]
    output_spec: dict[str, Any]
    size: tuple[int, int]  # export/parity/calibration size (H, W)
    dynamic_hw: bool
    name: str
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def channels(self) -> int:
        """The image's channels (the sketch's, or the photo's)."""
        return int(self.input_spec.get("channels", 3))

    @property
    def hint_channels(self) -> int:
        """Colour-hint channels after the image's (``input.hints``; 0 without)."""
        return int((self.input_spec.get("hints") or {}).get("channels", 0))

    @property
    def graph_channels(self) -> int:
        """Channels of the graph's input tensor."""
        return self.channels + self.hint_channels

    @property
    def in_range(self) -> tuple[float, float]:
        lo, hi = self.input_spec["range"]
        return float(lo), float(hi)

    @property
    def out_range(self) -> tuple[float, float]:
        lo, hi = self.output_spec["range"]
        return float(lo), float(hi)


@dataclass
class Build:
    """One export in progress: the fp32 graph, the parity inputs with their torch fp32
    reference, and what the manifest collects (artefacts, parity figures, failures)."""

    target: ExportTarget
    tmp: Path
    opts: ExportOptions  # precisions normalised, int8 options and log set
    limits: dict[str, Threshold]
    fp32_path: Path
    fp32_model: onnx.ModelProto
    pin: InputSet  # the parity inputs
    reference: np.ndarray  # the torch fp32 network on them
    artefacts: list[dict[str, Any]] = field(default_factory=list)
    parity: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)

    def say(self, msg: str) -> None:
        (self.opts.log or (lambda _msg: None))(msg)

    def record(self, entry: dict[str, Any], result: ParityResult | None, why: str = "") -> list[str]:
        """The shared step of every artefact: add its manifest ``entry``, judge ``result``
        against its precision's threshold into the parity figures (not measured: ``why``), log
        it; returns the failures."""
        self.artefacts.append(entry)
        name = entry["file"]
        if result is None:
            self.say(f"  {name}: parity not measured ({why})")
            return []
        lim = self.limits.get(entry["precision"], Threshold())
        bad = lim.failures(result)
        pin = self.pin
        self.parity[name] = {
            "reference": "torch-fp32",
            **result.to_dict(),
            "threshold": lim.to_dict(),
            "passed": not bad,
            "inputs": pin.names,
            "input_shape": list(pin.array.shape),
            **({"hints": pin.describe_hints()} if pin.hinted is not None else {}),
        }
        if bad:
            self.failures[name] = bad
        self.say(f"  {name}: {result.describe()}" + (f"  BELOW THRESHOLD ({'; '.join(bad)})" if bad else ""))
        return bad

    def record_onnx(self, path: Path, precision: str, **extra: Any) -> None:
        """Record an ONNX artefact, run on ONNX Runtime over the parity inputs."""
        from advseg_sdk.bundle import describe_artefact

        result = compare(self.reference, _ort_forward(path, self.pin.array), self.target.out_range)
        self.record(
            describe_artefact(path, precision, "onnx", opset=_opset_of(path), io_dtype="float32", **extra), result
        )

    def degraded_error(self) -> DegradedExportError:
        return DegradedExportError(_failure_message(self.failures, self.parity), self.failures)


def _to_onnx(module: nn.Module, path: Path, target: ExportTarget, opts: ExportOptions) -> onnx.ModelProto:
    h, w = target.size
    shape = (1, target.graph_channels, h, w)
    return export_onnx(
        module, path, shape, opset=opts.opset, dynamic_hw=target.dynamic_hw, instance_norm=opts.instance_norm
    )


def _start(target: ExportTarget, tmp: Path, opts: ExportOptions, limits: dict[str, Threshold]) -> Build:
    """Export the fp32 graph, then the parity inputs and the torch fp32 network's outputs on them."""
    say = opts.log or (lambda _msg: None)
    h, w = target.size
    say(
        f"exporting {target.architecture['name']} to ONNX fp32 (opset {opts.opset}, "
        f"{'dynamic' if target.dynamic_hw else f'fixed {h}x{w}'} H/W, dynamic batch)"
    )
    fp32_path = tmp / ARTEFACT_FILES["fp32"]
    fp32_model = _to_onnx(target.module, fp32_path, target, opts)
    say(f"preparing parity inputs ({target.task}, {h}x{w})")
    pin = parity_inputs(target.task, (h, w), target.in_range, sketch_method=opts.sketch_method)
    if target.hint_channels:
        pin = with_hint_channels(pin, target.hint_channels, seed=0)
    reference = _torch_forward(target.module, pin.array)
    return Build(target, tmp, opts, limits, fp32_path, fp32_model, pin, reference)


def _fp32_step(b: Build) -> tuple[Path, dict[str, Any]]:
    return b.fp32_path, {}  # exported by _start: every other artefact derives from it


def _fp16_step(b: Build) -> tuple[Path, dict[str, Any]]:
    b.say("converting to fp16 (normalisation kept in fp32)")
    kept = norm_nodes(b.fp32_model)
    path = b.tmp / ARTEFACT_FILES["fp16"]
    onnx.save(convert_fp16(b.fp32_model, keep_norm_fp32=True), str(path))
    return path, {"fp32_nodes": op_block_summary(b.fp32_model, kept)}


def _int8_step(b: Build) -> tuple[Path, dict[str, Any]]:
    target, opts, calib = b.target, b.opts, b.opts.calib
    int8_options = opts.int8_options or Int8Options()
    b.say(f"calibrating int8 on {'images in ' + str(calib) if calib else 'the cached real photos'}")
    count, method = opts.calib_count, opts.sketch_method
    cin = calibration_inputs(
        target.task, target.size, target.in_range, calib_dir=calib, count=count, sketch_method=method
    )
    if target.hint_channels:
        cin = with_hint_channels(cin, target.hint_channels, seed=1)
    path, source = b.tmp / ARTEFACT_FILES["int8"], b.fp32_path
    if int8_options.subpixel_conv_transpose:
        rewritten, n = subpixel_conv_transposes(target.module)
        if n:
            b.say(f"  quantising from a sub-pixel graph ({n} ConvTranspose -> Conv + DepthToSpace)")
            source = b.tmp / ".int8-source.fp32.onnx"
            _to_onnx(rewritten, source, target, opts)
    quantize_int8(source, path, ArrayCalibrationReader(cin.array), int8_options)
    if source != b.fp32_path:
        source.unlink()
    return path, {
        "quantization": {**int8_options.to_dict(), "calibration": _calib_info(cin, calib, target.task, method)}
    }


#: Each precision's step: writes its ONNX artefact into the bundle folder and returns its path
#: and the manifest fields it adds; :meth:`Build.record_onnx` then measures and judges it.
PRECISION_STEPS: dict[str, Callable[[Build], tuple[Path, dict[str, Any]]]] = {
    "fp32": _fp32_step,
    "fp16": _fp16_step,
    "int8": _int8_step,
}


def _engine_step(b: Build, profile: ShapeProfile) -> None:
    """Build the TensorRT engine (from fp16 when built, else fp32) and record it."""
    from advseg_sdk.bundle import describe_artefact

    precision = "fp16" if "fp16" in b.opts.precisions else "fp32"
    src = b.tmp / ARTEFACT_FILES[precision]
    b.say(f"building TensorRT engine from {src.name} (profile {profile.to_dict()})")
    meta = _engine_build(src, b.tmp, profile, b.opts.timing_cache, b.opts.trt_hardware_compatible)
    epath = b.tmp / meta.pop("_file")
    result, why = _engine_parity(epath, b.pin.array, b.reference, b.target.out_range)
    if b.record(describe_artefact(epath, precision, "engine", engine=meta), result, why) and not b.opts.allow_degraded:
        raise b.degraded_error()


def build(
    target: ExportTarget, tmp: Path, opts: ExportOptions, limits: dict[str, Threshold], profile: ShapeProfile | None
) -> dict[str, Any]:
    """Write the artefacts of ``target`` into ``tmp`` and return the manifest; ``opts`` has its
    precisions normalised (fp32 first) and its int8 options and log set."""
    b = _start(target, tmp, opts, limits)
    for precision in opts.precisions:
        path, extra = PRECISION_STEPS[precision](b)
        b.record_onnx(path, precision, **extra)
    if b.failures and not opts.allow_degraded:
        raise b.degraded_error()
    if profile is not None:
        _engine_step(b, profile)
    return _manifest(b)


def _manifest(b: Build) -> dict[str, Any]:
    target, opset = b.target, b.opts.opset
    manifest: dict[str, Any] = {
        "name": target.name,
        "task": target.task,
        "architecture": target.architecture,
        "input": target.input_spec,
        "output": target.output_spec,
        "artefacts": b.artefacts,
        "parity": b.parity,
        "parity_convention": PARITY_CONVENTION,
        "export_options": {
            "opset": int(opset),
            "instance_norm": b.opts.instance_norm if _has_instance_norm(target.module) else None,
            "onnx_exporter": "torch.onnx.export(dynamo=False) + onnxslim",
            "dynamic_axes": ["batch", "height", "width"] if target.dynamic_hw else ["batch"],
        },
        "provenance": {**target.provenance, **_tool_provenance(opset)},
    }
    if b.failures:
        manifest["degraded"] = True
        manifest["degraded_reasons"] = {k: v for k, v in b.failures.items()}
    return manifest


def _engine_build(src: Path, tmp: Path, profile: ShapeProfile, timing_cache, hw_compat: bool) -> dict[str, Any]:
    trt, dev = require_tensorrt()
    fname = engine_file_name(dev.gpu_name or "gpu", trt.__version__)
    meta = build_engine(src, tmp / fname, profile, timing_cache=timing_cache, hardware_compatible=hw_compat)
    meta["_file"] = fname
    return meta


def _engine_parity(engine: Path, x: np.ndarray, reference: np.ndarray, out_range) -> tuple[ParityResult | None, str]:
    """Run the fresh engine on the parity inputs through the SDK's TensorRT runner (which needs
    cuda-python); ``(None, reason)`` when it cannot run here."""
    try:
        from advseg_sdk.runtime import TensorRTRunner

        runner = TensorRTRunner(engine)
        try:
            y = runner.run(x)
        finally:
            runner.close()
    except Exception as exc:  # missing cuda-python, profile too small for the parity batch, ...
        return None, f"{type(exc).__name__}: {exc}"
    return compare(reference, y, out_range), ""


# --------------------------------------------------------------------------- helpers


def _has_instance_norm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.InstanceNorm2d) for m in module.modules())


def _torch_forward(module: nn.Module, x: np.ndarray) -> np.ndarray:
    module.eval()
    with torch.no_grad():
        y = module(torch.from_numpy(np.ascontiguousarray(x)))
    if isinstance(y, (tuple, list)):
        y = y[0]
    return y.float().numpy()


def _ort_forward(path: Path, x: np.ndarray) -> np.ndarray:
    from advseg_sdk.runtime import OnnxRunner

    return OnnxRunner(path, providers=["CPUExecutionProvider"]).run(x)


def _opset_of(path: Path) -> int | None:
    m = onnx.load(str(path), load_external_data=False)
    for imp in m.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return None


def _failure_message(failures: Mapping[str, list[str]], parity: Mapping[str, Any]) -> str:
    lines = ["export refused: artefact(s) below the parity threshold vs PyTorch fp32:"]
    for f, reasons in failures.items():
        p = parity.get(f, {})
        lines.append(f"  {f}: {'; '.join(reasons)} (max_abs={p.get('max_abs')}, psnr={p.get('psnr')} dB)")
    lines.append(
        'no bundle was written; pass --allow-degraded (allow_degraded=True) to write it anyway, marked "degraded": true'
    )
    return "\n".join(lines)


def _calib_info(cin: InputSet, calib, task: str, sketch_method: str) -> dict[str, Any]:
    if calib is not None:
        src = f"folder {Path(calib).name} (used as given)"
    elif task == "sketch2color":
        src = f"cached real photos (asset 'photos') turned into {sketch_method} sketches"
    else:
        src = "cached real photos (asset 'photos')"
    info: dict[str, Any] = {"source": src, "count": len(cin), "images": cin.names, "size": list(cin.array.shape[2:])}
    if cin.hinted is not None:
        info["hints"] = cin.describe_hints()
    return info


def _tool_provenance(opset: int) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    def v(pkg: str) -> str | None:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return None

    return {
        "package_version": v("advseg"),
        "created": utc_timestamp(),
        "exporter": "advseg-export",
        "opset": int(opset),
        "versions": {
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": v("onnxruntime"),
            "onnxslim": v("onnxslim"),
        },
    }
