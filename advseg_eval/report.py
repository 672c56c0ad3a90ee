"""Evaluation reports: the JSON record of one scoring, a markdown table across runs, an image grid."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .features import ImgsimResNet50Extractor, InceptionFIDExtractor
from .stats import list_images

__all__ = [
    "METRIC_LABELS",
    "METRIC_ORDER",
    "REPORT_FORMAT",
    "EvalReport",
    "image_grid",
    "load_report",
    "comparison_columns",
    "markdown_table",
    "write_comparison",
]

REPORT_FORMAT = "advseg-eval/1"

#: JSON key -> how it is shown (feature metrics take the extractor's own labels). The imgsim
#: metrics are never called FID.
METRIC_LABELS: dict[str, str] = {}
for _ext in (InceptionFIDExtractor, ImgsimResNet50Extractor):
    METRIC_LABELS[_ext.fd_key] = _ext.fd_label
    METRIC_LABELS[_ext.kid_key] = _ext.kid_label
    METRIC_LABELS[_ext.kid_key + "_std"] = _ext.kid_label + " std"
METRIC_LABELS.update({"psnr": "PSNR (dB)", "ssim": "SSIM"})
METRIC_ORDER = tuple(METRIC_LABELS)


@dataclass
class EvalReport:
    """One ``advseg-eval score`` result (what ``--json`` writes)."""

    gen_dir: str
    real_dir: str
    metrics: dict[str, float]
    n_gen: int
    n_real: int
    resize: str
    details: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    format: str = REPORT_FORMAT

    def to_dict(self) -> dict:
        d = asdict(self)
        d["metrics"] = {k: _json_number(v) for k, v in self.metrics.items()}
        d["labels"] = {k: METRIC_LABELS.get(k, k) for k in self.metrics}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> EvalReport:
        if d.get("format") != REPORT_FORMAT:
            raise ValueError(f"not an advseg-eval report (format {d.get('format')!r}, expected {REPORT_FORMAT!r})")
        metrics = {k: (float(v) if v is not None else math.nan) for k, v in d["metrics"].items()}
        keep = {k: d[k] for k in ("gen_dir", "real_dir", "n_gen", "n_real", "resize", "details", "warnings") if k in d}
        return cls(metrics=metrics, **keep)

    def write_json(self, path: str | os.PathLike) -> Path:
        from advseg_sdk.files import atomic_write_text

        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        return atomic_write_text(path, text)

    def summary(self) -> str:
        lines = [
            f"generated: {self.gen_dir} ({self.n_gen} images)",
            f"real:      {self.real_dir} ({self.n_real} images)",
            f"resize:    {self.resize}",
        ]
        for name, detail in self.details.items():
            if isinstance(detail, dict) and detail.get("weights"):
                lines.append(f"{name} weights: {detail['weights']}")
        for k in sorted(self.metrics, key=_order):
            lines.append(f"{METRIC_LABELS.get(k, k)}: {_fmt(self.metrics[k])}")
        return "\n".join(lines)


def _json_number(v: float) -> float | str | None:
    """JSON has no inf/NaN: inf (identical images' PSNR) -> "inf", NaN -> null."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return float(v)


def load_report(path: str | os.PathLike) -> EvalReport:
    """Read a report JSON (or ``<dir>/eval.json``); clear error if it is not one."""
    p = Path(path)
    if p.is_dir():
        p = p / "eval.json"
    try:
        data = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{p}: cannot read an advseg-eval report ({exc})") from exc
    try:
        return EvalReport.from_dict(data)
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"{p}: {exc}") from exc


def _order(key: str) -> tuple[int, str]:
    return (METRIC_ORDER.index(key) if key in METRIC_ORDER else len(METRIC_ORDER), key)


def _fmt(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if math.isinf(v):
        return "inf"
    a = abs(v)
    return f"{v:.3e}" if (a and (a < 1e-3 or a >= 1e5)) else f"{v:.4f}"


def markdown_table(runs: Sequence[tuple[str, EvalReport | None]]) -> str:
    """Rows = runs, columns = every metric any run has (fixed order), plus image counts."""
    keys = sorted({k for _, r in runs if r is not None for k in r.metrics}, key=_order)
    head = ["run", *(METRIC_LABELS.get(k, k) for k in keys), "n gen", "n real", "resize"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 2) + ["---"]) + "|"]
    for name, r in runs:
        if r is None:
            cells = ["—"] * (len(keys) + 3)
        else:
            cells = [_fmt(r.metrics.get(k, math.nan)) for k in keys] + [str(r.n_gen), str(r.n_real), r.resize]
        lines.append("| " + " | ".join([name.replace("|", "\\|"), *cells]) + " |")
    return "\n".join(lines) + "\n"


def _thumb(path: Path | None, size: int) -> Image.Image:
    tile = Image.new("RGB", (size, size), (235, 235, 235))
    if path is None:
        return tile
    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((size, size), Image.Resampling.LANCZOS)
    tile.paste(im, ((size - im.width) // 2, (size - im.height) // 2))
    return tile


def image_grid(columns: Sequence[tuple[str, Sequence[Path | None]]], thumb: int = 128) -> Image.Image:
    """Side-by-side grid: one labelled column per source, one row per sample (None = blank)."""
    if not columns:
        raise ValueError("image_grid needs at least one column")
    n_rows = max(len(c[1]) for c in columns)
    pad, header = 4, 18
    width = len(columns) * (thumb + pad) + pad
    height = header + n_rows * (thumb + pad) + pad
    grid = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    for ci, (label, paths) in enumerate(columns):
        x = pad + ci * (thumb + pad)
        text = label if len(label) <= thumb // 6 else label[: thumb // 6 - 1] + "…"
        draw.text((x, 3), text, fill=(0, 0, 0), font=font)
        for ri in range(n_rows):
            p = paths[ri] if ri < len(paths) else None
            grid.paste(_thumb(Path(p) if p is not None else None, thumb), (x, header + ri * (thumb + pad)))
    return grid


def comparison_columns(
    run_dirs: Sequence[Path], labels: Sequence[str], real_dir: Path | None, n_images: int
) -> list[tuple[str, list[Path | None]]]:
    """Grid columns: ``real`` (if given) then one per run, rows = the first ``n_images`` file
    stems shared by every run (the same picture across runs); if runs share no names, each
    run's first images."""
    maps = [{p.stem: p for p in list_images(d)} for d in run_dirs]
    stems = sorted(set.intersection(*(set(m) for m in maps)))[:n_images]
    picked: list[list[Path]] = (
        [[m[s] for s in stems] for m in maps] if stems else [list(m.values())[:n_images] for m in maps]
    )
    rows = [list[Path | None](r) for r in picked]
    columns: list[tuple[str, list[Path | None]]] = []
    if real_dir is not None:
        real = {p.stem: p for p in list_images(real_dir)}
        real_column = [real.get(s) for s in stems] if stems else list[Path | None](real.values())[:n_images]
        columns.append(("real", real_column))
    return columns + list(zip(labels, rows))


def write_comparison(
    out_dir: str | os.PathLike, runs: Sequence[tuple[str, EvalReport | None]], grid: Image.Image
) -> dict[str, Path]:
    """Write ``metrics.md``, ``metrics.json`` and ``grid.png`` into ``out_dir`` (each atomically)."""
    from advseg_sdk.files import atomic_path, atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("metrics.md", "metrics.json", "grid.png")}
    atomic_write_text(paths["metrics.md"], markdown_table(runs))
    payload = {name: (rep.to_dict() if rep is not None else None) for name, rep in runs}
    atomic_write_text(paths["metrics.json"], json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    with atomic_path(paths["grid.png"]) as tmp:
        grid.save(tmp, format="PNG")
    return paths
