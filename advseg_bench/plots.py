"""PNG plots of a results document (matplotlib, Agg backend, no display needed).

- ``<stem>-latency-vs-batch.png``: median latency per image vs batch, one panel per model at its
  smallest measured size, one line per backend/precision.
- ``<stem>-throughput-vs-size.png``: images/s vs resolution at batch 1 (or the smallest batch).
- ``<stem>-backends.png``: backends side by side: throughput at the reference size and batch, one
  panel per model, bars per backend/precision, labelled with the speed-up over torch eager fp32.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["write_plots"]


def _ok(doc: dict[str, Any]) -> list[dict]:
    return [r for r in doc.get("results", []) if r["status"] == "ok"]


def _series_key(r: dict) -> str:
    dev = (r.get("details") or {}).get("device")
    return f"{r['backend']} {r['precision']}" + (f" ({dev})" if dev == "cuda" else "")


def _models(rs: list[dict]) -> list[str]:
    seen: list[str] = []
    for r in rs:
        if r["model"] not in seen:
            seen.append(r["model"])
    return seen


def _finish(fig: Any, title: str, path: Path) -> Path:
    """Title the figure, write it as PNG (atomically) and close it."""
    import matplotlib.pyplot as plt

    from advseg_sdk.files import atomic_path

    fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def _log_lines(ax: Any, series: dict[str, list[tuple[int, float]]], labels: tuple[str, str], title: str) -> None:
    """One line per backend/precision on log-log axes (x in powers of two)."""
    for key, pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=key)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def _grid(n: int):
    import matplotlib.pyplot as plt

    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows), squeeze=False, layout="constrained")
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat[:n])


def _plot(rs: list[dict], title: str, path: Path, panel: Callable[[Any, str, list[dict]], None]) -> Path | None:
    """One panel per model (``panel(axes, model, its results)``); None without results."""
    models = _models(rs)
    if not models:
        return None
    fig, axes = _grid(len(models))
    for ax, model in zip(axes, models, strict=True):
        panel(ax, model, [r for r in rs if r["model"] == model])
    return _finish(fig, title, path)


def _series(rows: list[dict], point: Callable[[dict], tuple[int, float]]) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        series.setdefault(_series_key(r), []).append(point(r))
    return series


def _latency_vs_batch(ax: Any, model: str, mine: list[dict]) -> None:
    size = min(r["size"] for r in mine)
    series = _series(
        [r for r in mine if r["size"] == size], lambda r: (r["batch"], r["latency_ms"]["p50"] / r["batch"])
    )
    _log_lines(ax, series, ("batch", "median latency per image (ms)"), f"{model} @ {size}²")


def _throughput_vs_size(ax: Any, model: str, mine: list[dict]) -> None:
    batch = min(r["batch"] for r in mine)
    series = _series([r for r in mine if r["batch"] == batch], lambda r: (r["size"], r["throughput_ips"]))
    _log_lines(ax, series, ("resolution (px, square)", "images / s"), f"{model}, batch {batch}")


def _backends_side_by_side(ax: Any, model: str, mine: list[dict]) -> None:
    size = min(r["size"] for r in mine)
    batch = min(r["batch"] for r in mine if r["size"] == size)
    sel = [r for r in mine if r["size"] == size and r["batch"] == batch]
    base = next((r for r in sel if r["backend"] == "torch-eager" and r["precision"] == "fp32"), None)
    labels = [_series_key(r) for r in sel]
    vals = [r["throughput_ips"] for r in sel]
    bars = ax.bar(range(len(sel)), vals, color=[f"C{i % 10}" for i in range(len(sel))])
    for bar, r in zip(bars, sel, strict=True):
        if base:
            ax.annotate(
                f"{base['latency_ms']['p50'] / r['latency_ms']['p50']:.2f}×",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    ax.set_xticks(range(len(sel)))
    ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("images / s")
    ax.set_title(f"{model} @ {size}², batch {batch}" + (" (× = vs torch eager fp32)" if base else ""), fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)


_PLOTS = (
    ("latency-vs-batch", "latency vs batch", _latency_vs_batch),
    ("throughput-vs-size", "throughput vs resolution", _throughput_vs_size),
    ("backends", "backends side by side", _backends_side_by_side),
)


def write_plots(doc: dict[str, Any], out_dir: str | Path, stem: str) -> list[Path]:
    """Write the three PNGs (those with data); returns their paths."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    rs = _ok(doc)
    d = Path(out_dir)
    title = doc["machine"]["slug"]
    made = [_plot(rs, f"{title}: {what}", d / f"{stem}-{suffix}.png", panel) for suffix, what, panel in _PLOTS]
    return [p for p in made if p is not None]
