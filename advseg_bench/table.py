"""The paper's Table 1 on our offline datasets: train, export and score every arm, then write
``docs/results.md``.

    python -m advseg_bench.table --scale cpu-small --datasets landscapes --schemes pix2pix \\
        --arms baseline,binary-soft,binary-hard --seeds 0,1 --segmenter deeplab-voc

Each (dataset, scheme, arm, seed) gets a run directory under ``--root``: trained with
``advseg-train``, exported with ``advseg-export`` (fp32), scored with ``advseg-eval colour`` on the
test split (photo -> HED sketch -> colour through the SDK pipeline; KID against the photos). Every
step runs through the public commands, so the table measures what a user gets; finished steps are
skipped (training resumes when interrupted), so a second invocation trains nothing. A run
directory keeps ``table.json`` (commands, settings, seconds per step) and belongs to one set of
settings: other settings over an existing root are refused.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
import numpy as np

__all__ = ["ARMS", "SCALES", "SCHEMES", "PAPER_TABLE1", "Scale", "Arm", "Cell", "Grid", "main", "run_table"]


# --------------------------------------------------------------------------- what is run


@dataclass(frozen=True)
class Scale:
    """Resolution, width and length of training, and the evaluation size, of one table."""

    name: str
    load_size: int  # short side the photos are scaled to (the SDK colours at this scale too)
    crop_size: int
    ngf: int
    ndf: int
    niter: int  # epochs at the initial learning rate
    niter_decay: int  # epochs of linear decay
    eval_size: int  # test photos are scored with their long side at most this
    max_steps: int | None = None
    max_items: int | None = None  # training photos used (None: the whole train split)
    description: str = ""

    def overrides(self) -> list[str]:
        out = [
            f"data.load_size={self.load_size}",
            f"data.crop_size={self.crop_size}",
            f"model.ngf={self.ngf}",
            f"model.ndf={self.ndf}",
            f"optim.niter={self.niter}",
            f"optim.niter_decay={self.niter_decay}",
        ]
        if self.max_steps is not None:
            out.append(f"run.max_steps={self.max_steps}")
        if self.max_items is not None:
            out.append(f"data.max_items={self.max_items}")
        return out


SCALES: dict[str, Scale] = {
    # The paper: 256², ngf/ndf 64, 200 epochs (100 + 100 decay). Needs a GPU.
    "gpu": Scale(
        "gpu",
        286,
        256,
        64,
        64,
        100,
        100,
        512,
        description="the paper's recipe: 256² crops, ngf/ndf 64, 100 + 100 epochs",
    ),
    # Fits one CPU core: 64² crops of photos scaled to a 72 px short side, a narrow network,
    # 6 epochs (3 + 3 linear decay) of the train split (1482 steps on landscapes).
    "cpu-small": Scale(
        "cpu-small", 72, 64, 16, 16, 3, 3, 256, description="64² crops (short side 72), ngf/ndf 16, 3 + 3 epochs"
    ),
    # For tests of the command path only: meaningless numbers in seconds.
    "tiny": Scale(
        "tiny",
        36,
        32,
        4,
        4,
        1,
        0,
        96,
        max_steps=2,
        max_items=4,
        description="32² crops, ngf/ndf 4, 2 steps on 4 photos (tests only)",
    ),
}


@dataclass(frozen=True)
class Arm:
    """One column of the table: the segmentation variant and how its maps reach the generator."""

    name: str
    variant: str  # seg.variant
    grad: str  # seg.grad: soft (ours, differentiable) | hard (the released code: no gradient)

    @property
    def label(self) -> str:
        return "baseline" if self.variant == "none" else f"+{self.variant} {self.grad}"


ARMS: dict[str, Arm] = {
    a.name: a
    for a in [
        Arm("baseline", "none", "soft"),
        Arm("binary-soft", "binary", "soft"),
        Arm("binary-hard", "binary", "hard"),
        Arm("multi-soft", "multi", "soft"),
        Arm("multi-hard", "multi", "hard"),
        Arm("both-soft", "both", "soft"),
        Arm("both-hard", "both", "hard"),
    ]
}

#: Training scheme -> the preset with the released code's defaults (λ_Seg 100 for Pix2Pix, 10 for
#: CycleGAN; norms, dropout, GAN loss, pools as officially).
SCHEMES: dict[str, str] = {"pix2pix": "official-pix2pix", "cycle_gan": "official-cyclegan"}
SCHEME_LABELS = {"pix2pix": "Pix2Pix (paired)", "cycle_gan": "CycleGAN (unpaired)"}

#: Segmenters with a multi-class map (the multi / both arms need one).
MULTI_CLASS_SEGMENTERS = ("deeplab-voc", "detectron2-panoptic", "mask2former", "oneformer", "tiny")

VARIANT_ORDER = ("none", "multi", "binary", "both")  # the paper's column order

#: The paper's Table 1 (FID, lower is better; 256², 200 epochs): scheme -> FIDs in VARIANT_ORDER.
_PAPER_FIDS: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "Bedroom": {"cycle_gan": (113.1, 111.7, 87.1, 93.2), "pix2pix": (100.5, 100.0, 95.1, 110.1)},
    "Illustration": {"cycle_gan": (213.6, 206.9, 204.8, 189.4), "pix2pix": (180.0, 176.9, 178.0, 175.7)},
    "Elephant": {"cycle_gan": (126.4, 103.9, 91.9, 116.9), "pix2pix": (83.5, 85.8, 78.8, 82.8)},
    "Sheep": {"cycle_gan": (209.3, 207.2, 236.1, 196.8), "pix2pix": (157.0, 159.9, 162.0, 150.5)},
}
#: The same as dataset -> scheme -> arm variant -> FID.
PAPER_TABLE1: dict[str, dict[str, dict[str, float]]] = {
    dataset: {scheme: dict(zip(VARIANT_ORDER, fids, strict=True)) for scheme, fids in row.items()}
    for dataset, row in _PAPER_FIDS.items()
}

#: Our dataset -> the paper's dataset(s) it stands in for, and how closely.
PAPER_COUNTERPART: dict[str, tuple[tuple[str, ...], str]] = {
    "interiors": (("Bedroom",), "indoor rooms, as ADE20k bedrooms"),
    "illustrations": (("Illustration",), "drawings, as the children's-book illustrations"),
    "animals": (("Elephant", "Sheep"), "animals in scenes, as the COCO elephant / sheep sets"),
    "landscapes": (
        ("Elephant", "Sheep"),
        "no direct counterpart: outdoor scenes, closest to the COCO elephant / sheep sets (grass, sky, mountains)",
    ),
}


@dataclass(frozen=True)
class Cell:
    """One training run of the grid."""

    dataset: str
    scheme: str
    arm: Arm
    seed: int

    def run_dir(self, root: Path, scale: Scale) -> Path:
        return root / scale.name / self.dataset / self.scheme / self.arm.name / f"seed{self.seed}"

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.scheme}/{self.arm.name}/seed{self.seed}"


@dataclass(frozen=True)
class Grid:
    """The cells of one table: every (dataset, scheme, arm, seed)."""

    datasets: tuple[str, ...]
    schemes: tuple[str, ...]
    arms: tuple[str, ...]
    seeds: tuple[int, ...]

    def cells(self) -> list[Cell]:
        """Seeds outermost, so one full seed finishes first."""
        return [
            Cell(d, s, ARMS[a], seed)
            for seed in self.seeds
            for d in self.datasets
            for s in self.schemes
            for a in self.arms
        ]


@dataclass
class Settings:
    """Everything besides the cell that decides a run's result (stored and checked per run)."""

    scale: Scale
    segmenter: str
    sketch: str
    lambda_seg: float | None
    extra_overrides: tuple[str, ...]
    threads: int | None
    test_limit: int | None
    device: str | None

    def train_overrides(self, cell: Cell) -> list[str]:
        data = [
            "data.mode=photos",
            f"data.dataset={cell.dataset}",
            "data.preprocess=scale_shortside_and_crop",
            f"data.sketch_method={self.sketch}",
        ]
        seg = [f"seg.variant={cell.arm.variant}", f"seg.grad={cell.arm.grad}"]
        if cell.arm.variant != "none":
            seg.append(f"seg.segmenter={self.segmenter}")
            if self.lambda_seg is not None:
                seg.append(f"seg.lambda_seg={self.lambda_seg:g}")
        run = [
            f"run.seed={cell.seed}",
            "run.progress=false",
            "run.sample_every=0",
            "run.checkpoint_every=250",
            "run.save_epoch_freq=0",
            "run.log_every=50",
        ]
        if self.threads:
            run.append(f"run.threads={self.threads}")
        if self.device:
            run.append(f"run.device={self.device}")
        return data + self.scale.overrides() + seg + run + list(self.extra_overrides)

    def train_command(self, cell: Cell, run_dir: Path) -> list[str]:
        cmd = ["advseg-train", "--preset", SCHEMES[cell.scheme]]
        for o in self.train_overrides(cell):
            cmd += ["--set", o]
        return cmd + ["--out", str(run_dir), "--resume"]

    def eval_command(self, cell: Cell, bundle: Path, out: Path) -> list[str]:
        cmd = [
            "advseg-eval",
            "colour",
            "--bundle",
            f"{cell.arm.name}={bundle}",
            "--dataset",
            cell.dataset,
            "--split",
            "test",
            "--sketch",
            self.sketch,
            "--eval-size",
            str(self.scale.eval_size),
            "--out",
            str(out),
        ]
        if self.test_limit:
            cmd += ["--limit", str(self.test_limit)]
        if self.threads:
            cmd += ["--threads", str(self.threads)]
        return cmd

    def identity(self, cell: Cell) -> dict[str, Any]:
        """What must match for an existing run directory to be reused."""
        kept = [o for o in self.train_overrides(cell) if not o.startswith("run.threads=")]
        return {"preset": SCHEMES[cell.scheme], "overrides": kept}


# --------------------------------------------------------------------------- running


def _exe(name: str) -> str:
    """The console script installed beside this interpreter (the venv's), else on PATH."""
    local = Path(sys.executable).parent / name
    if local.is_file():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise click.ClickException(f"{name} not found beside {sys.executable} or on PATH; install advseg[all]")
    return found


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run ``cmd`` (its first word resolved to the venv's script), output appended to ``log``;
    (wall seconds, CPU seconds). CPU time is kept because on a shared machine wall time also
    counts other people's work. A failure raises with the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started, cpu0 = time.perf_counter(), _children_cpu_s()
    with open(log, "a") as f:
        f.write(f"\n$ {shlex.join(cmd)}\n")
        f.flush()
        proc = subprocess.run([_exe(cmd[0]), *cmd[1:]], stdout=f, stderr=subprocess.STDOUT)
    seconds, cpu = time.perf_counter() - started, _children_cpu_s() - cpu0
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise click.ClickException(f"{cmd[0]} failed (exit {proc.returncode}); log {log}:\n{tail}")
    return seconds, cpu


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


@dataclass
class RunRecord:
    """One run's state after this invocation."""

    cell: Cell
    run_dir: Path
    trained_now: bool
    evaluated_now: bool
    timing: dict[str, float]
    train_command: list[str]
    summary: dict[str, Any] = field(default_factory=dict)


def finished_cell(cell: Cell, settings: Settings, root: Path) -> RunRecord | None:
    """The record of a cell that is already scored (with these settings), else None."""
    run_dir = cell.run_dir(root, settings.scale)
    meta = _read_json(run_dir / "table.json")
    summary = _read_json(run_dir / "eval" / "summary.json")
    eval_cmd = settings.eval_command(cell, run_dir / "model.advseg", run_dir / "eval")
    if not summary or meta.get("identity") != settings.identity(cell) or meta.get("eval_command") != eval_cmd:
        return None
    return RunRecord(cell, run_dir, False, False, dict(meta.get("seconds", {})), meta["train_command"], summary)


def run_cell(cell: Cell, settings: Settings, root: Path, echo=click.echo) -> RunRecord:
    """Train, export and evaluate one cell, each step skipped when its output exists.

    The run directory is locked meanwhile, so several invocations over one root (e.g. one per
    core, arms in different orders) never work on the same run: a second one waits, then reuses."""
    run_dir = cell.run_dir(root, settings.scale)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            echo(f"[table] wait    {cell.name} (another invocation is on it)")
            fcntl.flock(lock, fcntl.LOCK_EX)
        return _run_cell_locked(cell, settings, run_dir, echo)


def _run_cell_locked(cell: Cell, settings: Settings, run_dir: Path, echo) -> RunRecord:
    meta_path = run_dir / "table.json"
    meta = _read_json(meta_path)
    ident = settings.identity(cell)
    if meta.get("identity") not in (None, ident):
        raise click.ClickException(
            f"{run_dir} was trained with other settings ({meta['identity']}); use another --root "
            "or delete that run directory"
        )
    meta["identity"] = ident
    meta.setdefault("seconds", {})
    log = run_dir / "table.log"
    generator = run_dir / "generator.safetensors"
    train_cmd = settings.train_command(cell, run_dir)
    meta["train_command"] = train_cmd
    trained_now = evaluated_now = False

    if not generator.is_file():
        echo(f"[table] train   {cell.name}")
        seconds, cpu = _run(train_cmd, log)
        meta["seconds"]["train"] = meta["seconds"].get("train", 0.0) + seconds
        meta["seconds"]["train_cpu"] = meta["seconds"].get("train_cpu", 0.0) + cpu
        _write_json(meta_path, meta)
        trained_now = True
    bundle = run_dir / "model.advseg"
    if not (bundle / "manifest.json").is_file():
        echo(f"[table] export  {cell.name}")
        cmd = [
            "advseg-export",
            str(generator),
            "-o",
            str(bundle),
            "--name",
            f"{cell.dataset}-{cell.scheme}-{cell.arm.name}",
        ]
        meta["export_command"] = cmd
        meta["seconds"]["export"], meta["seconds"]["export_cpu"] = _run(cmd, log)
        _write_json(meta_path, meta)
    eval_dir = run_dir / "eval"
    eval_cmd = settings.eval_command(cell, bundle, eval_dir)
    if eval_dir.exists() and (trained_now or meta.get("eval_command") != eval_cmd):
        shutil.rmtree(eval_dir)  # scores of an earlier generator, or of other test settings
    if not (eval_dir / "summary.json").is_file():
        if eval_dir.exists():
            shutil.rmtree(eval_dir)  # an evaluation that was interrupted
        echo(f"[table] score   {cell.name}")
        meta["eval_command"] = eval_cmd
        meta["seconds"]["eval"], meta["seconds"]["eval_cpu"] = _run(eval_cmd, log)
        evaluated_now = True
    _write_json(meta_path, meta)
    return RunRecord(
        cell,
        run_dir,
        trained_now,
        evaluated_now,
        dict(meta["seconds"]),
        train_cmd,
        _read_json(eval_dir / "summary.json"),
    )


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
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return path


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# --------------------------------------------------------------------------- machine


def machine() -> dict[str, Any]:
    """CPU model, cores (on the machine and usable by this process), GPU, versions."""
    model = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 1
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu_model": model,
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": usable,
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
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
    datasets, schemes, arms, seeds = grid.datasets, grid.schemes, grid.arms, grid.seeds
    agg = aggregate(records)
    img_dir = path.parent / path.stem
    sc = settings.scale
    mach = machine()
    n_test = {d: next((r.summary.get("images") for r in records if r.cell.dataset == d), None) for d in datasets}
    L: list[str] = [
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
    if missing:
        L += [f"**Not finished when this file was written** (left out below): {', '.join(missing)}.", ""]
    L += [
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
    L += [
        "## Contact sheets",
        "",
        "Seed " + str(seeds[0]) + "; the same test photos and sketches in every row, one column per arm.",
        "",
    ]
    for d in datasets:
        for s in schemes:
            recs = [r for r in records if r.cell.dataset == d and r.cell.scheme == s and r.cell.seed == seeds[0]]
            present = [a for a in arms if any(r.cell.arm.name == a for r in recs)]
            if not present:
                continue
            sheet = contact_sheet(recs, present, img_dir / f"{d}-{s}.jpg")
            L += [f"**{d}, {SCHEME_LABELS[s]}**", "", f"![{d} {s}]({img_dir.name}/{sheet.name})", ""]
    steps = ("train", "export", "eval")
    wall = {k: sum(r.timing.get(k, 0.0) for r in records) for k in steps}
    cpu = {k: sum(r.timing.get(f"{k}_cpu", 0.0) for r in records) for k in steps}
    L += [
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
    L += [
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
    seg_rec = next((r for r in records if r.cell.arm.variant != "none"), records[0])
    cfg_text = (seg_rec.run_dir / "config.yaml").read_text() if (seg_rec.run_dir / "config.yaml").is_file() else ""
    L += [
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(L))
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- entry points


def _split(value: str, known: Iterable[str] | None, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if known is not None:
        bad = [v for v in items if v not in known]
        if bad:
            raise click.BadParameter(f"unknown {what} {', '.join(bad)}; choose from {', '.join(known)}")
    if not items:
        raise click.BadParameter(f"no {what} given")
    return items


def run_table(
    grid: Grid,
    settings: Settings,
    root: Path,
    out: Path,
    invocation: str,
    notes: str | None = None,
    report_only: bool = False,
    echo: Callable[[str], Any] = click.echo,
) -> tuple[Path, list[RunRecord]]:
    """Every cell of ``grid`` (seeds outermost, so one full seed finishes first), then the file. With
    ``report_only`` nothing runs: the file is written from the cells already scored."""
    if settings.segmenter not in MULTI_CLASS_SEGMENTERS and any(
        ARMS[a].variant in ("multi", "both") for a in grid.arms
    ):
        raise click.ClickException(
            f"seg.segmenter={settings.segmenter} has no multi-class map; use deeplab-voc for the multi / both arms"
        )
    from advseg_sdk.datasets import fetch_dataset

    for d in grid.datasets:  # a no-op when built; from scratch, built from the pinned packages
        fetch_dataset(d)
    started = time.perf_counter()
    records: list[RunRecord] = []
    missing: list[str] = []
    for cell in grid.cells():
        if report_only:
            rec = finished_cell(cell, settings, root)
            if rec is None:
                missing.append(cell.name)
            else:
                records.append(rec)
        else:
            records.append(run_cell(cell, settings, root, echo))
    if not records:
        raise click.ClickException(f"no finished runs under {root} for these settings")
    wall = time.perf_counter() - started
    trained = sum(r.trained_now for r in records)
    echo(
        f"[table] {len(records)} runs: trained {trained}, scored {sum(r.evaluated_now for r in records)}, "
        f"{len(records) - trained} reused; {wall / 60:.1f} min"
    )
    if missing:
        echo(f"[table] not finished (left out of the file): {', '.join(missing)}")
    path = write_results(out, records, settings, grid, invocation, notes, missing)
    echo(f"[table] wrote {path}")
    return path, records


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--scale",
    type=click.Choice(list(SCALES)),
    default="cpu-small",
    help="gpu: the paper's 256² recipe; cpu-small: fits one CPU core; tiny: tests only.",
)
@click.option(
    "--datasets",
    default="landscapes",
    help="Comma-separated: landscapes, animals, interiors, illustrations.",
)
@click.option("--schemes", default="pix2pix", help="Comma-separated: pix2pix, cycle_gan.")
@click.option(
    "--arms",
    default="baseline,binary-soft,binary-hard",
    help=f"Comma-separated: {', '.join(ARMS)}, or 'all'.",
)
@click.option("--seeds", default="0", help="Comma-separated integers.")
@click.option(
    "--segmenter",
    default="deeplab-voc",
    help="seg.segmenter of every segmentation arm (multi / both need a multi-class one).",
)
@click.option("--sketch", type=click.Choice(["hed", "xdog", "canny"]), default="hed")
@click.option("--lambda-seg", type=float, help="seg.lambda_seg (default: the preset's).")
@click.option("--set", "extra", multiple=True, metavar="KEY=VALUE", help="Extra advseg-train override (repeatable).")
@click.option("--threads", type=click.IntRange(1), help="torch CPU threads in every step.")
@click.option("--device", help="run.device for training (default: auto).")
@click.option("--test-limit", type=click.IntRange(2), help="Score at most this many test photos.")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/table"),
    help="Results root: one run directory per cell.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("docs/results.md"),
    help="Markdown report; contact sheets go to a folder of its name beside it.",
)
@click.option(
    "--notes",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Markdown to include as 'What the numbers support'.",
)
@click.option(
    "--report-only",
    is_flag=True,
    help="Run nothing: write the file from the runs already scored (the others are listed as missing).",
)
def main(**options: Any) -> None:
    """Train, export and score every (dataset, scheme, arm, seed); write the results table."""
    from advseg_sdk.datasets import DATASETS

    o = options
    arm_list = list(ARMS) if o["arms"].strip() == "all" else _split(o["arms"], ARMS, "arm")
    try:
        seed_list = [int(s) for s in _split(o["seeds"], None, "seed")]
    except ValueError:
        raise click.BadParameter(f"--seeds must be integers, got {o['seeds']!r}") from None
    settings = Settings(
        SCALES[o["scale"]],
        o["segmenter"],
        o["sketch"],
        o["lambda_seg"],
        tuple(o["extra"]),
        o["threads"],
        o["test_limit"],
        o["device"],
    )
    argv, skip = [], False
    for a in sys.argv[1:]:  # the command that reproduces the table, without report-only switches
        if skip or a == "--report-only":
            skip = False
            continue
        if a == "--notes":
            skip = True
            continue
        if not a.startswith("--notes="):
            argv.append(a)
    invocation = shlex.join(["python", "-m", "advseg_bench.table", *argv])
    grid = Grid(
        tuple(_split(o["datasets"], DATASETS, "dataset")),
        tuple(_split(o["schemes"], SCHEMES, "scheme")),
        tuple(arm_list),
        tuple(seed_list),
    )
    notes = o["notes"]
    run_table(grid, settings, o["root"], o["out"], invocation, notes.read_text() if notes else None, o["report_only"])


if __name__ == "__main__":
    main()
