"""The Table 1 results file: per-arm statistics over seeds, the paper-layout table, the reading
against the baseline, contact sheets, timing, machine and exact commands (``results.md``)."""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from advseg_sdk.files import atomic_path, atomic_write_text

from .grid import ARMS, PAPER_COUNTERPART, PAPER_TABLE1, SCHEME_LABELS, SCHEMES, VARIANT_ORDER, Grid, Settings
from .runner import RunRecord

__all__ = ["aggregate", "contact_sheet", "machine", "write_results"]

# --------------------------------------------------------------------------- aggregation


def _stats(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, np.float64)
    return {
        "mean": float(v.mean()),
        "sd": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
        "min": float(v.min()),
        "max": float(v.max()),
        "n": int(len(v)),
    }


METRIC_KEYS = ("kid", "ciede2000", "feature_cosine", "ssim_l", "chroma_ratio")


def _metrics_of(rec: RunRecord) -> dict[str, float]:
    s = rec.summary
    name = rec.cell.arm.name
    out = {k: float(s["methods"][name][k]) for k in METRIC_KEYS if k != "kid"}
    out["kid"] = float(s["set_scores"][name]["kid"])
    if "fid" in s["set_scores"][name]:
        out["fid"] = float(s["set_scores"][name]["fid"])
    return out


def _per_image(rec: RunRecord, metric: str) -> dict[str, float]:
    """Test photo -> ``metric`` of this run's colouring (from the evaluation's per_image.csv)."""
    import csv

    path = rec.run_dir / "eval" / "per_image.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {row["image"]: float(row[metric]) for row in csv.DictReader(f) if row["method"] == rec.cell.arm.name}


def aggregate(records: Sequence[RunRecord]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(dataset, scheme, arm) -> per-seed metrics and their statistics."""
    groups: dict[tuple[str, str, str], list[RunRecord]] = {}
    for r in records:
        groups.setdefault((r.cell.dataset, r.cell.scheme, r.cell.arm.name), []).append(r)
    out = {}
    for key, recs in groups.items():
        recs = sorted(recs, key=lambda r: r.cell.seed)
        per_seed = {r.cell.seed: _metrics_of(r) for r in recs}
        keys = [k for k in (*METRIC_KEYS, "fid") if all(k in m for m in per_seed.values())]
        out[key] = {
            "per_seed": per_seed,
            "stats": {k: _stats([m[k] for m in per_seed.values()]) for k in keys},
            "images": recs[0].summary.get("images"),
            "per_image": {r.cell.seed: _per_image(r, "ciede2000") for r in recs},
        }
    return out


# --------------------------------------------------------------------------- contact sheets


def contact_sheet(
    records: Sequence[RunRecord], arms: Sequence[str], path: Path, rows: int = 6, cell_width: int = 128
) -> Path:
    """Rows of test photo | sketch | one column per arm (seed ``records[0]``'s), as a small JPEG.

    Every arm was scored on the same test photos and sketches, so row i is the same sketch in
    every column."""
    import cv2

    from advseg_sdk.imageio import read_image

    by_arm = {r.cell.arm.name: r for r in records}
    first = by_arm[arms[0]]
    photos = sorted((first.run_dir / "eval" / "images").glob("*_photo.png"))
    picks = np.linspace(0, len(photos) - 1, min(rows, len(photos))).round().astype(int)
    header = ["photo", "sketch", *[ARMS[a].label for a in arms]]

    def fit(img: np.ndarray) -> np.ndarray:
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        h, w = img.shape[:2]
        return cv2.resize(img, (cell_width, max(1, round(h * cell_width / w))), interpolation=cv2.INTER_AREA)

    lines = []
    for i in picks:
        prefix = photos[i].name[: -len("_photo.png")]
        cells = [
            fit(read_image(photos[i])),
            fit(read_image(first.run_dir / "eval" / "images" / f"{prefix}_sketch.png")),
        ]
        for a in arms:
            cells.append(fit(read_image(by_arm[a].run_dir / "eval" / "images" / f"{prefix}_{_slug(a)}.png")))
        height = max(c.shape[0] for c in cells)
        padded = []
        for c in cells:
            canvas = np.full((height + 2, cell_width + 2, 3), 255, np.uint8)
            canvas[: c.shape[0], : c.shape[1]] = c
            padded.append(canvas)
        lines.append(np.concatenate(padded, 1))
    head = np.full((18, lines[0].shape[1], 3), 255, np.uint8)
    for j, text in enumerate(header):
        cv2.putText(
            head, text, (j * (cell_width + 2) + 3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA
        )
    sheet = np.concatenate([head, *lines], 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise OSError(f"could not encode the contact sheet {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(jpeg.tobytes())
    return path


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# --------------------------------------------------------------------------- machine


def machine() -> dict[str, Any]:
    """CPU model, cores (on the machine and usable by this process), GPU, versions: the
    benchmark's machine description (:func:`advseg_bench.environment.machine_info`) plus torch."""
    import torch

    from advseg_bench.environment import machine_info

    info = machine_info()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 1
    gpus = info.get("gpus") or []
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else (gpus[0]["name"] if gpus else None)
    return {
        "cpu_model": info["cpu_model"],
        "cpu_cores": info["cpu_cores_logical"],
        "cpu_cores_usable": usable,
        "gpu": gpu,
        "torch": torch.__version__,
        "python": info["python"],
        "os": info["os"],
    }


# --------------------------------------------------------------------------- markdown


def _fmt(x: float | None, nd: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def _kid(stats: dict[str, Any] | None) -> float | None:
    return None if stats is None else stats["stats"]["kid"]["mean"] * 1e3


def _paper_layout(agg, datasets: Sequence[str]) -> list[str]:
    """Rows = datasets; columns as the paper's Table 1; each segmentation cell 'soft / hard'."""
    cols = [(s, v) for s in ("cycle_gan", "pix2pix") for v in VARIANT_ORDER]
    names = {"multi": "+Multi-class", "binary": "+Binary", "both": "+Both"}
    head = ["Dataset"] + [("CycleGAN" if s == "cycle_gan" else "Pix2Pix") if v == "none" else names[v] for s, v in cols]
    lines = ["| | Unpaired | | | | Paired | | | |", "|" + "---|" * 9, "| " + " | ".join(head) + " |"]
    for d in datasets:
        cells = [f"**{d}** (ours, KID×10³)"]
        for s, v in cols:
            if v == "none":
                cells.append(_fmt(_kid(agg.get((d, s, "baseline")))))
            else:
                soft, hard = _kid(agg.get((d, s, f"{v}-soft"))), _kid(agg.get((d, s, f"{v}-hard")))
                cells.append("–" if soft is None and hard is None else f"{_fmt(soft)} / {_fmt(hard)}")
        lines.append("| " + " | ".join(cells) + " |")
        for paper in PAPER_COUNTERPART.get(d, ((), ""))[0]:
            row = PAPER_TABLE1[paper]
            lines.append("| " + " | ".join([f"paper: {paper} (FID)"] + [f"{row[s][v]:.1f}" for s, v in cols]) + " |")
    return lines


def _arm_rows(agg, datasets, schemes, arms) -> list[str]:
    lines = [
        "| dataset | scheme | arm | seeds | KID×10³ ↓ mean (per seed) | seed sd | CIEDE2000 ↓ | "
        "feature cosine ↑ | SSIM (L) ↑ | chroma ratio (→1) |",
        "|" + "---|" * 10,
    ]
    for d in datasets:
        for s in schemes:
            for a in arms:
                g = agg.get((d, s, a))
                if g is None:
                    continue
                st = g["stats"]
                per = ", ".join(f"s{seed}: {m['kid'] * 1e3:.2f}" for seed, m in g["per_seed"].items())
                lines.append(
                    f"| {d} | {s} | {ARMS[a].label} | {st['kid']['n']} | {st['kid']['mean'] * 1e3:.2f} ({per}) | "
                    f"{_fmt(st['kid']['sd'] * 1e3)} | {_fmt(st['ciede2000']['mean'])} | "
                    f"{_fmt(st['feature_cosine']['mean'], 3)} | {_fmt(st['ssim_l']['mean'], 3)} | "
                    f"{_fmt(st['chroma_ratio']['mean'])} |"
                )
    return lines


def _references(records: Sequence[RunRecord], datasets: Sequence[str]) -> list[str]:
    """The lines-only and flat-colour baselines on the same sketches (any arm's evaluation)."""
    lines = [
        "| dataset | reference | KID×10³ ↓ | CIEDE2000 ↓ | feature cosine ↑ | SSIM (L) ↑ | chroma ratio |",
        "|" + "---|" * 7,
    ]
    for d in datasets:
        rec = next((r for r in records if r.cell.dataset == d and r.summary), None)
        if rec is None:
            continue
        for ref in ("lines", "flat"):
            m, k = rec.summary["methods"][ref], rec.summary["set_scores"][ref].get("kid")
            lines.append(
                f"| {d} | {ref} | {_fmt(None if k is None else k * 1e3)} | {_fmt(m['ciede2000'])} | "
                f"{_fmt(m['feature_cosine'], 3)} | {_fmt(m['ssim_l'], 3)} | {_fmt(m['chroma_ratio'])} |"
            )
    return lines


def _photo_wins(a: dict[str, Any], b: dict[str, Any]) -> tuple[int, int]:
    """(photo-seed pairs where ``a`` has the lower CIEDE2000 than ``b``, pairs compared)."""
    wins = total = 0
    for seed, per in a["per_image"].items():
        other = b["per_image"].get(seed, {})
        for img, v in per.items():
            if img in other:
                wins += v < other[img]
                total += 1
    return wins, total


def _reading(agg, datasets, schemes, arms) -> list[str]:
    """Each segmentation arm against the baseline, and soft against hard, beside the seeds'
    spread and per-photo colour error (mechanical: the prose verdict is the reader's)."""
    out = []
    for d in datasets:
        for s in schemes:
            base = agg.get((d, s, "baseline"))
            if base is None:
                continue
            spread = [
                g["stats"]["kid"]["max"] - g["stats"]["kid"]["min"]
                for (dd, ss, _), g in agg.items()
                if dd == d and ss == s and g["stats"]["kid"]["n"] > 1
            ]
            width = max(spread) * 1e3 if spread else None
            for a in arms:
                g = agg.get((d, s, a))
                if a == "baseline" or g is None:
                    continue
                delta = (g["stats"]["kid"]["mean"] - base["stats"]["kid"]["mean"]) * 1e3
                wins = sum(
                    g["per_seed"][k]["kid"] < base["per_seed"][k]["kid"] for k in g["per_seed"] if k in base["per_seed"]
                )
                paired = sum(1 for k in g["per_seed"] if k in base["per_seed"])
                verdict = (
                    "no seed spread to compare with (one seed)"
                    if width is None
                    else ("larger than" if abs(delta) > width else "within") + f" the largest seed range ({width:.2f})"
                )
                pw, pt = _photo_wins(g, base)
                out.append(
                    f"- {d} / {s}: {ARMS[a].label} − baseline = {delta:+.2f} KID×10³; lower KID than the "
                    f"baseline on {wins} of {paired} seeds; {verdict}. Lower CIEDE2000 than the baseline on "
                    f"{pw} of {pt} test photo × seed pairs."
                )
            for v in ("binary", "multi", "both"):
                soft, hard = agg.get((d, s, f"{v}-soft")), agg.get((d, s, f"{v}-hard"))
                if soft is None or hard is None:
                    continue
                delta = (soft["stats"]["kid"]["mean"] - hard["stats"]["kid"]["mean"]) * 1e3
                pw, pt = _photo_wins(soft, hard)
                out.append(
                    f"- {d} / {s}: +{v} soft − hard = {delta:+.2f} KID×10³; soft has the lower CIEDE2000 on "
                    f"{pw} of {pt} test photo × seed pairs."
                )
    return out


def _intro(records: Sequence[RunRecord], settings: Settings, grid: Grid, invocation: str) -> list[str]:
    """The title and what was run: scale, schemes, segmenter, arms, seeds, scores."""
    datasets, schemes, seeds = grid.datasets, grid.schemes, grid.seeds
    sc = settings.scale
    n_test = {d: next((r.summary.get("images") for r in records if r.cell.dataset == d), None) for d in datasets}
    return [
        "# Does the adversarial segmentation loss help? The paper's Table 1 on our datasets",
        "",
        f"Written by `{invocation}` on {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.",
        "Every number below was produced by that command; rerunning it with the same arguments skips "
        "finished runs and rewrites this file.",
        "",
        f"- **Scale `{sc.name}`**: {sc.description}; photos scaled to a {sc.load_size} px short side "
        "(the SDK colours at the same scale), test photos scored with their long side ≤ "
        f"{sc.eval_size} px.",
        f"- **Schemes**: {', '.join(SCHEME_LABELS[s] + f' (preset `{SCHEMES[s]}`)' for s in schemes)}: "
        "the released code's defaults (λ_Seg 100 for Pix2Pix, 10 for CycleGAN) at the scale above"
        + (f", λ_Seg = {settings.lambda_seg:g}" if settings.lambda_seg is not None else "")
        + ".",
        f"- **Segmenter**: `{settings.segmenter}`; sketches: `{settings.sketch}` (training and test).",
        "- **Arms**: baseline = no segmentation loss; *soft* = our differentiable maps (the generator "
        "receives the loss's gradient); *hard* = the released code's one-hot maps made without gradient "
        "(the segmentation discriminator trains, the generator gets nothing from it).",
        f"- **Seeds**: {', '.join(map(str, seeds))}; same steps, resolution and architecture in every arm.",
        "- **Scores** on each dataset's fixed test split ("
        + ", ".join(f"{d}: {n_test[d]} photos" for d in datasets)
        + f"), photo → {settings.sketch.upper()} sketch → colour "
        "through the exported fp32 bundle and the SDK pipeline (`advseg-eval colour`): KID with FID's "
        "Inception-v3 (real `fid-inception` weights) against the test photos, reported ×10³. "
        "**FID is not reported**: it needs ≥ 200 images and every test split here is smaller (the "
        "paper's had 131–343); KID is unbiased at these sizes but still noisy with so few photos.",
        "",
    ]


def _tables(
    agg: dict[tuple[str, str, str], dict[str, Any]], records: Sequence[RunRecord], grid: Grid, notes: str | None
) -> list[str]:
    """The paper-layout table, every arm and seed, the references and the reading against the baseline."""
    datasets, schemes, arms = grid.datasets, grid.schemes, grid.arms
    L = [
        "## Table 1 layout",
        "",
        "Ours: KID×10³ (lower is better), mean over seeds; segmentation cells are *soft / hard*. Paper rows: "
        "the paper's FID for the dataset(s) ours stands in for (not comparable in value: different "
        "data, metric, resolution and length of training; compare the direction of the change).",
        "",
        *_paper_layout(agg, datasets),
        "",
        "Counterparts: "
        + "; ".join(f"{d} → {PAPER_COUNTERPART[d][1]}" for d in datasets if d in PAPER_COUNTERPART)
        + ".",
        "",
        "## Every arm, every seed",
        "",
        *_arm_rows(agg, datasets, schemes, arms),
        "",
        "Per-image colour figures are means over the test photos (`per_image.csv` in each run's `eval/`). "
        "References on the same sketches: the bare lines, and the lines over the test photos' mean colour:",
        "",
        *_references(records, datasets),
        "",
        "## Against the baseline",
        "",
        *(_reading(agg, datasets, schemes, arms) or ["- (no baseline in this table)"]),
        "",
    ]
    if notes:
        L += ["## What the numbers support", "", notes.strip(), ""]
    return L


def _contact_sheets(records: Sequence[RunRecord], grid: Grid, img_dir: Path) -> list[str]:
    """One contact sheet per (dataset, scheme) of the first seed, written to ``img_dir``."""
    seeds = grid.seeds
    L = [
        "## Contact sheets",
        "",
        "Seed " + str(seeds[0]) + "; the same test photos and sketches in every row, one column per arm.",
        "",
    ]
    for d in grid.datasets:
        for s in grid.schemes:
            recs = [r for r in records if r.cell.dataset == d and r.cell.scheme == s and r.cell.seed == seeds[0]]
            present = [a for a in grid.arms if any(r.cell.arm.name == a for r in recs)]
            if not present:
                continue
            sheet = contact_sheet(recs, present, img_dir / f"{d}-{s}.jpg")
            L += [f"**{d}, {SCHEME_LABELS[s]}**", "", f"![{d} {s}]({img_dir.name}/{sheet.name})", ""]
    return L


def _wall_time(records: Sequence[RunRecord]) -> list[str]:
    """Wall and CPU time per step, summed and per run."""
    steps = ("train", "export", "eval")
    wall = {k: sum(r.timing.get(k, 0.0) for r in records) for k in steps}
    cpu = {k: sum(r.timing.get(f"{k}_cpu", 0.0) for r in records) for k in steps}
    L = [
        "## Wall time",
        "",
        f"Summed over the {len(records)} runs, each step timed when it ran: wall {sum(wall.values()) / 60:.1f} min "
        f"(training {wall['train'] / 60:.1f}, export {wall['export'] / 60:.1f}, scoring {wall['eval'] / 60:.1f}); "
        f"CPU time of those processes {sum(cpu.values()) / 60:.1f} min (training {cpu['train'] / 60:.1f}, export "
        f"{cpu['export'] / 60:.1f}, scoring {cpu['eval'] / 60:.1f}). On a shared machine wall time includes waiting "
        "for other people's processes; CPU time is what the table cost.",
        "",
        "| run | train wall s | train CPU s | export wall s | score wall s | score CPU s |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        t = r.timing
        L.append(
            f"| {r.cell.name} | {_fmt(t.get('train'), 0)} | {_fmt(t.get('train_cpu'), 0)} | "
            f"{_fmt(t.get('export'), 0)} | {_fmt(t.get('eval'), 0)} | {_fmt(t.get('eval_cpu'), 0)} |"
        )
    return L


def _machine_and_commands(records: Sequence[RunRecord], settings: Settings, invocation: str) -> list[str]:
    """The machine, the table's command and each run's commands as they ran."""
    mach = machine()
    L = [
        "",
        "## Machine",
        "",
        f"- CPU: {mach['cpu_model']}, {mach['cpu_cores']} cores on the machine, {mach['cpu_cores_usable']} "
        f"usable by this command{f', torch threads {settings.threads}' if settings.threads else ''}",
        f"- GPU: {mach['gpu'] or 'none'}",
        f"- torch {mach['torch']}, Python {mach['python']}, {mach['os']}",
        "",
        "## Exact commands and configuration",
        "",
        "The table:",
        "",
        "```bash",
        invocation,
        "```",
        "",
        "Each run, as the command ran it (run directories under the results root; `RUN` = "
        "`<root>/<scale>/<dataset>/<scheme>/<arm>/seed<N>`):",
        "",
        "```bash",
    ]
    shown = set()
    for r in records:
        if r.cell.arm.name in shown:
            continue
        shown.add(r.cell.arm.name)
        cmd = [("RUN" if c == str(r.run_dir) else c) for c in r.train_command]
        L.append(shlex.join(cmd))
    L += [
        "advseg-export RUN/generator.safetensors -o RUN/model.advseg --name NAME",
        shlex.join(settings.eval_command(records[0].cell, Path("RUN/model.advseg"), Path("RUN/eval"))).replace(
            f"{records[0].cell.arm.name}=", "ARM="
        ),
        "```",
        "",
    ]
    return L


def _resolved_config(records: Sequence[RunRecord]) -> list[str]:
    """The resolved training config of the first segmentation run, folded."""
    seg_rec = next((r for r in records if r.cell.arm.variant != "none"), records[0])
    cfg_text = (seg_rec.run_dir / "config.yaml").read_text() if (seg_rec.run_dir / "config.yaml").is_file() else ""
    return [
        f"<details><summary>Resolved training config of {seg_rec.cell.name} (the other runs differ only in "
        "seg.variant, seg.grad, run.seed and run.out; seg.segmenter is unused without the loss)</summary>",
        "",
        "```yaml",
        cfg_text.rstrip(),
        "```",
        "",
        "</details>",
        "",
    ]


def write_results(
    path: Path,
    records: Sequence[RunRecord],
    settings: Settings,
    grid: Grid,
    invocation: str,
    notes: str | None = None,
    missing: Sequence[str] = (),
) -> Path:
    """``results.md`` and one contact sheet per (dataset, scheme) in ``<path stem>/``."""
    L = _intro(records, settings, grid, invocation)
    if missing:
        L += [f"**Not finished when this file was written** (left out below): {', '.join(missing)}.", ""]
    L += _tables(aggregate(records), records, grid, notes)
    L += _contact_sheets(records, grid, path.parent / path.stem)
    L += _wall_time(records)
    L += _machine_and_commands(records, settings, invocation)
    L += _resolved_config(records)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(L))
    return path
