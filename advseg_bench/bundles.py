"""Bundles and torch weights for the benchmark, created on the fly and cached.

``--arch A --ngf N`` builds a randomly initialised generator (fixed seed), saves it once as our
safetensors checkpoint and exports it with :func:`advseg_export.export_generator` into a bundle
(fp32 + the precisions the run needs, int8 calibrated on real sketches). ``--checkpoint`` exports
the given weights the same way. HED is exported with :func:`advseg_export.export_hed` from the real
BSDS500 weights. Everything lives under ``$ADVSEG_HOME/bench-cache`` keyed by the weights' sha256
and a hash of the exporter's source (a changed exporter re-exports), and an existing bundle is
reused when it already holds every needed precision.

Export parity is *not* enforced here (``allow_degraded=True``): a random-init network is a timing
subject, and the manifest's parity figures are reported next to the timings instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from advseg_sdk.vocab import ONNX_PRECISIONS

from .models import ModelSpec

__all__ = ["cache_dir", "prepare_generator", "prepare_hed", "bundle_precisions", "bundle_parity", "tensorrt_int8"]

Log = Callable[[str], None]


def cache_dir() -> Path:
    from advseg_sdk.assets import advseg_home

    return advseg_home() / "bench-cache"


def bundle_precisions(bundle: str | Path) -> list[str]:
    """ONNX precisions a bundle holds ([] when there is no readable manifest)."""
    m = Path(bundle) / "manifest.json"
    if not m.is_file():
        return []
    try:
        doc = json.loads(m.read_text())
    except json.JSONDecodeError:
        return []
    return [a["precision"] for a in doc.get("artefacts", []) if a.get("format") == "onnx"]


def bundle_parity(bundle: str | Path, precision: str) -> dict | None:
    """The manifest's parity entry (vs torch fp32) for the ONNX artefact of ``precision``."""
    from advseg_sdk.bundle import load_bundle

    b = load_bundle(bundle, verify=False)
    try:
        art = b.artefact(precision)
    except Exception:
        return None
    return b.parity.get(art.file)


def _exporters():
    try:
        from advseg_export import export_generator, export_hed
    except ImportError:
        from advseg_export.api import export_generator, export_hed
    return export_generator, export_hed


def exporter_tag() -> str:
    """A short hash of the exporter's source, so a changed exporter (e.g. better int8) re-exports."""
    import hashlib
    import importlib.util

    spec = importlib.util.find_spec("advseg_export")
    h = hashlib.sha256()
    if spec and spec.submodule_search_locations:
        for d in spec.submodule_search_locations:
            for f in sorted(Path(d).glob("*.py")):
                h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:8]


def _need(bundle: Path, precisions: Sequence[str]) -> list[str]:
    have = set(bundle_precisions(bundle))
    return [p for p in precisions if p not in have]


def _export_precisions(precisions: Sequence[str]) -> list[str]:
    return ["fp32"] + [p for p in ("fp16", "int8") if p in precisions]


def prepare_generator(
    spec: ModelSpec, precisions: Sequence[str], seed: int = 0, log: Log = print, export: bool = True
) -> ModelSpec:
    """Fill in ``spec.checkpoint`` (random init for ``--arch``) and, with ``export``, ``spec.bundle``."""
    import torch

    from advseg_sdk.files import sha256_file
    from advseg_train.networks import GeneratorConfig, build_generator, load_generator, save_generator

    root = cache_dir()
    if spec.checkpoint is None and spec.bundle is None:
        if spec.config is None:
            raise ValueError(f"{spec.name}: no checkpoint, bundle or architecture to build")
        cfg = GeneratorConfig.from_dict(spec.config)
        d = root / f"{cfg.arch}-ngf{cfg.ngf}-{cfg.norm}-seed{seed}"
        ckpt = d / "generator.safetensors"
        if not ckpt.is_file():
            log(f"building {cfg.arch} ngf={cfg.ngf} (random init, seed {seed}) -> {ckpt}")
            torch.manual_seed(seed)
            save_generator(
                build_generator(cfg).eval(), ckpt, extra_metadata={"note": f"advseg-bench random init, seed {seed}"}
            )
        spec.checkpoint = str(ckpt)
    if spec.checkpoint is not None and spec.config is None:
        net: Any = load_generator(spec.checkpoint)  # a generator module; .config is its GeneratorConfig
        spec.config = net.config.to_dict()
    if spec.config:
        spec.arch = spec.config["arch"]
    if spec.bundle is None and export:
        assert spec.checkpoint is not None  # set above when there is no bundle
        digest = sha256_file(spec.checkpoint)[:16]
        bundle = root / f"{spec.arch}-{digest}-x{exporter_tag()}.advseg"
        want = _export_precisions(precisions)
        missing = _need(bundle, want)
        if missing:
            have = bundle_precisions(bundle)
            allp = sorted(set(want) | set(have), key=ONNX_PRECISIONS.index)
            log(f"exporting {spec.name} to {bundle} ({', '.join(allp)})")
            export_generator, _ = _exporters()
            export_generator(
                spec.checkpoint,
                bundle,
                precisions=allp,
                allow_degraded=True,
                name=f"bench-{spec.name}",
                log=lambda m: log("  " + m),
            )
        spec.bundle = str(bundle)
    return spec


def prepare_hed(precisions: Sequence[str], log: Log = print) -> str:
    """The cached HED bundle with ``precisions`` (exported from the real weights when needed)."""
    from advseg_sdk.assets import asset_path
    from advseg_sdk.files import sha256_file

    weights = asset_path("hed-bsds500")
    bundle = cache_dir() / f"hed-{sha256_file(weights)[:16]}-x{exporter_tag()}.advseg"
    want = _export_precisions(precisions)
    if _need(bundle, want):
        allp = sorted(set(want) | set(bundle_precisions(bundle)), key=ONNX_PRECISIONS.index)
        log(f"exporting HED to {bundle} ({', '.join(allp)})")
        _, export_hed = _exporters()
        export_hed(bundle, precisions=allp, allow_degraded=True, log=lambda m: log("  " + m))
    return str(bundle)


def tensorrt_int8(bundle: str | Path, log: Log = print) -> Path:
    """A symmetric int8 ONNX graph of ``bundle`` for TensorRT (EP and native), cached beside the
    bench's bundles: the bundle's own int8 artefact has uint8 activations with non-zero
    zero-points, which TensorRT's parser rejects. Quantised from the bundle's fp32 artefact,
    calibrated on the same kind of real inputs as the bundle's int8."""
    from advseg_export.calibration import ArrayCalibrationReader, calibration_inputs, with_hint_channels
    from advseg_export.precision import TENSORRT_INT8, asymmetric_zero_points, quantize_int8
    from advseg_sdk.bundle import load_bundle

    b = load_bundle(bundle)
    fp32 = b.artefact("fp32")
    out = cache_dir() / "tensorrt-int8" / f"{fp32.sha256[:16]}-x{exporter_tag()}.int8-symmetric.onnx"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    spec = b.input_spec
    h, w = spec.fixed_size or (256, 256)
    log(f"quantising {fp32.file} of {Path(bundle).name} to symmetric int8 for TensorRT -> {out}")
    cin = calibration_inputs(b.task, (h, w), spec.range, count=8)
    if spec.hints is not None:  # as the export calibrated it: the graph reads the hint planes too
        cin = with_hint_channels(cin, spec.hints.channels, seed=1)
    tmp = out.with_name(out.name + ".part.onnx")
    model = quantize_int8(fp32.path, tmp, ArrayCalibrationReader(cin.array), TENSORRT_INT8)
    bad = asymmetric_zero_points(model)
    if bad:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"symmetric int8 still has {len(bad)} non-zero or unsigned zero-points, e.g. {bad[:3]}")
    tmp.replace(out)
    return out
