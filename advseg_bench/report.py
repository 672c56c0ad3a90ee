"""Markdown report of a results document, and the speed targets computed from it.

The targets are data, not code: :data:`TARGETS_FILE` (``advseg_bench/data/targets.json``) names
each one (architecture, kind, required speed-up over torch eager fp32, PSNR floor); without that
file a run reports no targets.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["TARGETS_FILE", "load_targets", "compute_targets", "render_markdown", "write_markdown", "result_psnr"]

#: The speed targets a matrix run is checked against (package data, so an installed advseg-bench has them).
TARGETS_FILE = Path(__file__).resolve().parent / "data" / "targets.json"

CPU_BACKENDS = ("torch-eager", "torch-compile", "ort-cpu")


def _arch_of(doc: dict[str, Any]) -> dict[str, str]:
    return {m["name"]: m["arch"] for m in doc.get("models", []) if m.get("kind") == "generator"}


def _device(r: dict[str, Any]) -> str:
    return (r.get("details") or {}).get("device", "cpu" if r["backend"] in CPU_BACKENDS else "cuda")


def result_psnr(r: dict[str, Any]) -> tuple[float | None, str]:
    """PSNR vs torch fp32 for a result: the bundle parity of its artefact, else the measured one.
    ``inf`` for fp32 paths (exact up to float rounding); None when unknown."""
    if r.get("model_kind") == "pipeline":
        return None, "n/a"
    d = r.get("details") or {}
    parity = d.get("bundle_parity") or {}
    if parity.get("psnr") is not None:
        return float(parity["psnr"]), "bundle parity vs torch fp32"
    acc = r.get("accuracy") or {}
    if acc.get("psnr_db") is not None:
        return float(acc["psnr_db"]), acc.get("reference", "measured")
    if r["precision"] == "fp32":
        return math.inf, "fp32"
    return None, "not measured"


def _find(results: Iterable[dict], model: str, backend: str, precision: str, batch: int, size: int) -> dict | None:
    for r in results:
        key = (r["model"], r["backend"], r["precision"], r["batch"], r["size"])
        if key == (model, backend, precision, batch, size) and r["status"] == "ok" and _device(r) == "cpu":
            return r
    return None


def load_targets(path: str | Path | None = None) -> dict[str, Any]:
    """The targets file (default :data:`TARGETS_FILE`); no targets when it does not exist."""
    p = Path(path) if path is not None else TARGETS_FILE
    if not p.is_file():
        return {"targets": []}
    return json.loads(p.read_text())


def _target_row(title: str, name: str, t: dict[str, Any], size: int, batch: int) -> dict[str, Any]:
    """A target's row before it is judged: value and met stay None until both sides are measured."""
    return {
        "name": title,
        "model": name,
        "target": t["speedup"],
        "value": None,
        "met": None,
        "size": size,
        "batch": batch,
    }


def _speedup_row(base: dict | None, cand: dict | None, row: dict[str, Any]) -> None:
    if base and cand:
        row["value"] = round(base["latency_ms"]["p50"] / cand["latency_ms"]["p50"], 3)
        row["met"] = row["value"] >= row["target"]


def compute_targets(doc: dict[str, Any], spec: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per target of ``spec`` (default: :func:`load_targets`) whose architecture the run has."""
    spec = load_targets() if spec is None else spec
    size, batch = int(spec.get("size", 256)), int(spec.get("batch", 1))
    arch_of = _arch_of(doc)
    results = doc.get("results", [])
    targets: list[dict[str, Any]] = []
    for t in spec.get("targets", []):
        arch = t["arch"]
        names = [n for n, a in arch_of.items() if a == arch]
        if not names:
            continue
        name = names[0]
        base = _find(results, name, "torch-eager", "fp32", batch, size)
        if t["kind"] == "ort_fp32":
            ort = _find(results, name, "ort-cpu", "fp32", batch, size)
            row = _target_row(f"{arch}: ONNX Runtime fp32 vs torch eager fp32", name, t, size, batch)
            _speedup_row(base, ort, row)
            if base and ort:
                row["detail"] = (
                    f"p50 {base['latency_ms']['p50']:.1f} ms -> {ort['latency_ms']['p50']:.1f} ms "
                    f"at {size}², batch {batch}"
                )
            else:
                row["detail"] = (
                    f"not measured (needs torch-eager fp32 and ort-cpu fp32 at {size}², batch {batch} on CPU)"
                )
            targets.append(row)
        elif t["kind"] == "best_cpu":
            targets.append(_best_cpu_row(results, name, base, t, (size, batch)))
        else:
            raise ValueError(f"unknown target kind {t['kind']!r} in the targets file")
    return targets


def _best_cpu_row(
    results: list[dict], name: str, base: dict | None, t: dict[str, Any], at: tuple[int, int]
) -> dict[str, Any]:
    size, batch = at
    floor = float(t["min_psnr_db"])
    row = _target_row(f"{t['arch']}: best CPU path vs torch eager fp32 (PSNR >= {floor:g} dB)", name, t, size, batch)
    cands = []
    for r in results:
        if (
            r["model"] == name
            and r["status"] == "ok"
            and r["batch"] == batch
            and r["size"] == size
            and r["backend"] in CPU_BACKENDS
            and _device(r) == "cpu"
        ):
            p, src = result_psnr(r)
            if p is not None and p >= floor:
                cands.append((r["latency_ms"]["p50"], r, p, src))
    if base and cands:
        lat, r, p, src = min(cands, key=lambda c: c[0])
        _speedup_row(base, r, row)
        ptxt = "exact (fp32)" if math.isinf(p) else f"PSNR {p:.1f} dB ({src})"
        row["detail"] = f"best: {r['backend']} {r['precision']}, p50 {lat:.1f} ms, {ptxt}"
        row["best"] = {"backend": r["backend"], "precision": r["precision"], "psnr_db": None if math.isinf(p) else p}
    else:
        row["detail"] = "not measured"
    return row


# --------------------------------------------------------------------------- markdown


def _f(v: Any, nd: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isinf(v):
            return "∞"
        return f"{v:.{nd}f}"
    return str(v)


def _ms(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:.0f}"


def _psnr_cell(r: dict[str, Any], same_size: list[dict[str, Any]]) -> str:
    p, src = result_psnr(r)
    if p is None:  # accuracy is measured once per size: take it from another batch
        for o in same_size:
            p, src = result_psnr(o)
            if p is not None:
                break
    if p is None:
        return "–"
    if math.isinf(p):
        return "fp32"
    tag = "parity" if src.startswith("bundle") else "meas."
    return f"{p:.1f} dB ({tag})"


def _same(rs: list[dict], r: dict) -> list[dict]:
    key = (r["backend"], r["precision"], r["size"])
    return [o for o in rs if o is not r and (o["backend"], o["precision"], o["size"]) == key]


def render_markdown(doc: dict[str, Any]) -> str:
    """The markdown page of one result document: machine and run, targets, one table per model,
    errors, what was skipped and why, and how to read the figures."""
    lines = _header_lines(doc)
    lines += _target_lines(doc.get("targets") or [])
    results = doc.get("results", [])
    lines += _model_lines(results, doc.get("costs") or {})
    lines += _error_lines(results)
    lines += _skipped_lines(doc, results)
    lines += _LEGEND
    return "\n".join(lines)


def _header_lines(doc: dict[str, Any]) -> list[str]:
    """Title, machine, software, run settings, command, load and measured peaks."""
    m, sw, st, load = doc["machine"], doc["software"], doc["settings"], doc.get("load") or {}
    lines = [f"# advseg-bench results: {m['slug']}", ""]
    lines += [
        f"- Machine: {m['cpu_model']}, {m['cpu_cores_logical']} logical cores, {m.get('memory_gb')} GB RAM, "
        f"SIMD: {', '.join(m.get('cpu_flags_simd') or []) or 'n/a'}; GPUs: "
        f"{', '.join(g['name'] for g in m.get('gpus') or []) or 'none'}; {m['os']}, Python {m.get('python')}",
        f"- Software: advseg {sw.get('advseg')}, torch {sw.get('torch')}, onnxruntime {sw.get('onnxruntime')} "
        f"({', '.join(sw.get('onnxruntime_providers') or [])}), numpy {sw.get('numpy')}, onnx {sw.get('onnx')}, "
        f"TensorRT {sw.get('tensorrt') or 'not installed'}",
        f"- Run: {doc['created']}, threads {st.get('threads')}, warm-up {st.get('warmup')}, repeats "
        f"{st.get('repeats')} (min {st.get('min_time_s')} s, stop after {st.get('max_time_s')} s with at least "
        f"{st.get('min_repeats')})",
        f"- Command: `{' '.join(doc.get('command') or [])}`",
    ]
    if load:
        lines.append(
            f"- Load average before: {load.get('before')}; during (1 min): mean {load.get('during_mean_1m')}, "
            f"max {load.get('during_max_1m')} (includes the benchmark's own threads); CPU used by other "
            f"processes: mean {load.get('foreign_cpu_percent_mean')} %, max {load.get('foreign_cpu_percent_max')} % "
            "of one core"
        )
    peaks = doc.get("peaks") or {}
    for dev, by in peaks.items():
        parts = [f"{dt} {_f(v.get('gflops'))} GFLOP/s" for dt, v in by.items() if isinstance(v, dict)]
        lines.append(f"- Measured peak ({dev}, large matrix product): " + ", ".join(parts))
    lines.append("")
    return lines


def _target_lines(targets: list[dict[str, Any]]) -> list[str]:
    """The speed targets table (empty without targets)."""
    lines: list[str] = []
    if targets:
        at = f"{targets[0]['size']}², batch {targets[0]['batch']}, " if "size" in targets[0] else ""
        lines += [
            f"## Speed targets (CPU, {at}median latency)",
            "",
            "| target | measured | required | met | detail |",
            "|---|---|---|---|---|",
        ]
        for t in targets:
            met = {True: "yes", False: "**no**", None: "not measured"}[t.get("met")]
            lines.append(
                f"| {t['name']} | {_f(t.get('value'), 2)}× | ≥ {t['target']}× | {met} | {t.get('detail', '')} |"
            )
        lines.append("")
    return lines


def _model_lines(results: list[dict[str, Any]], costs: dict[str, Any]) -> list[str]:
    """One section per model with a result: its cost and a row per measured combination."""
    lines: list[str] = []
    by_model: dict[str, list[dict]] = {}
    for r in results:
        by_model.setdefault(r["model"], []).append(r)
    for model, rs in by_model.items():
        ok = [r for r in rs if r["status"] == "ok"]
        if not ok:
            continue
        c = costs.get(model) or {}
        cost_txt = ", ".join(f"{s}²: {v['gflops']:.1f} GFLOP" for s, v in c.items() if v)
        params = next((v.get("params_m") for v in c.values() if v), None)
        lines += [f"## {model}", ""]
        if cost_txt:
            lines += [f"Per image: {cost_txt}" + (f"; {params:.2f} M parameters" if params else "") + ".", ""]
        lines += [
            "| size | batch | backend | precision | p50 ms | p90 ms | p99 ms | img/s | vs torch fp32 | "
            "% peak | peak RSS MB | accuracy | n |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in ok:
            base = _find(rs, model, "torch-eager", "fp32", r["batch"], r["size"]) if _device(r) == "cpu" else None
            speed = _f(base["latency_ms"]["p50"] / r["latency_ms"]["p50"], 2) + "×" if base else "–"
            lat = r["latency_ms"]
            pf = r.get("peak_fraction")
            lines.append(
                f"| {r['size']} | {r['batch']} | {r['backend']} | {r['precision']} | {_ms(lat['p50'])} | "
                f"{_ms(lat['p90'])} | {_ms(lat['p99'])} | {_f(r.get('throughput_ips'), 2)} | {speed} | "
                f"{_f(pf * 100 if pf is not None else None)}{_basis(r, pf)} | {_f(r.get('peak_rss_mb'), 0)} | "
                f"{_psnr_cell(r, _same(ok, r))} | "
                f"{r.get('iterations')} |"
            )
        lines.append("")
    return lines


def _error_lines(results: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    errors = [r for r in results if r["status"] == "error"]
    if errors:
        lines += ["## Errors", ""]
        for r in errors:
            lines.append(f"- {r['model']} {r['backend']} {r['precision']} b{r['batch']} {r['size']}px: {r['reason']}")
        lines.append("")
    return lines


def _skipped_lines(doc: dict[str, Any], results: list[dict[str, Any]]) -> list[str]:
    """Unavailable backends, then skipped combinations grouped by backend, precision and reason."""
    lines: list[str] = []
    lines += ["## Skipped", ""]
    unavailable = {b["backend"]: b["reason"] for b in doc.get("backends", []) if not b["available"]}
    for b, why in unavailable.items():
        lines.append(f"- backend **{b}**: {why}")
    groups: dict[tuple, list[str]] = {}
    for r in results:
        if r["status"] == "skipped" and r["backend"] not in unavailable:
            groups.setdefault((r["backend"], r["precision"], r["reason"]), []).append(
                f"{r['model']} b{r['batch']} {r['size']}"
            )
    for (b, p, why), where in groups.items():
        shown = ", ".join(where[:6]) + (f" (+{len(where) - 6} more)" if len(where) > 6 else "")
        lines.append(f"- {b} {p} [{shown}]: {why}")
    return lines


#: How to read the figures (the end of every page).
_LEGEND = [
    "",
    "Latency is per call (the whole batch); img/s = batch / mean latency. "
    "'vs torch fp32' = torch eager fp32 median / this median (same model, batch and size, CPU). "
    "Accuracy: PSNR vs torch fp32 (output range mapped to 0..255); 'parity' = the bundle's export "
    "parity of the artefact, 'meas.' = measured here on the benchmark input against the same "
    "runtime's fp32 path. % peak = achieved GFLOP/s over the measured matrix-product peak of the "
    "same dtype; where that peak is another (on CUDA fp32 convolutions run in TF32, so their peak "
    "is the TF32 one) it is named after the figure.",
    "",
]


def _basis(r: dict[str, Any], pf: float | None) -> str:
    """`` (tf32)`` when the peak a fraction is taken of is not the result's own precision."""
    basis = (r.get("details") or {}).get("peak_basis")
    return f" ({basis})" if pf is not None and basis and basis != r.get("precision") else ""


def write_markdown(doc: dict[str, Any], path: str | Path) -> Path:
    from advseg_sdk.files import atomic_write_text

    return atomic_write_text(path, render_markdown(doc))
