"""Images/s of `advseg colorize` in one process beside `advseg colorize --ray` with 1 and 2 actors.

Each configuration runs the real command line on the same real photos, from a cold start (a new
process, a new local Ray instance), as a user would run it; the outputs of every configuration
are checked to be the same pixels. Reported per configuration: the end-to-end wall time and
images/s, and for Ray the in-run rate that the command's summary prints (actors starting up
included, the Ray instance's own start-up not). The machine, its load meanwhile and the software
versions are recorded beside the numbers.

    python -m advseg_bench.ray_colorize -o benchmarks/results [--dataset animals --split test]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .environment import LoadMonitor, machine_info, software_versions

ADVSEG = str(Path(sys.executable).parent / "advseg")
CONFIGS: tuple[tuple[str, list[str]], ...] = (
    ("single process", []),
    ("ray, 1 actor", ["--ray", "--actors", "1"]),
    ("ray, 2 actors", ["--ray", "--actors", "2"]),
)


def _pixels(folder: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    return {str(p.relative_to(folder)): np.asarray(Image.open(p)) for p in sorted(folder.rglob("*.png"))}


def _run(inputs: Path, out: Path, extra: list[str], mode: list[str]) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    cmd = [ADVSEG, "colorize", str(inputs), "-o", str(out), *mode, "-q", *extra]
    with LoadMonitor(interval_s=1.0) as load:
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    m = re.search(r"wrote (\d+) image", r.stdout)
    n = int(m.group(1)) if m else 0
    shown = ["advseg", "colorize", "PHOTOS/", "-o", "OUT/", *cmd[5:]]
    row: dict[str, Any] = {
        "command": " ".join(shown),
        "images": n,
        "wall_s": round(wall, 2),
        "images_per_s_wall": round(n / wall, 3),
        "load": load.summary(),
    }
    s = re.search(r"in ([\d.]+) s \(([\d.]+) images/s\) with (\d+) actor", r.stdout)
    if s:
        row["run_s"] = float(s.group(1))
        row["images_per_s_run"] = float(s.group(2))
        row["actors"] = int(s.group(3))
    return row


def main(argv: list[str] | None = None) -> None:
    from advseg_sdk.datasets import dataset_paths

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--dataset", default="animals", help="Comma-separated dataset names.")
    ap.add_argument("--split", default="test")
    ap.add_argument("--sketch-method", default="hed")
    ap.add_argument("--note", default="", help="How busy the machine was, in words.")
    a = ap.parse_args(argv)

    info = machine_info()
    photos = [p for name in a.dataset.split(",") for p in dataset_paths(name, a.split)]
    mode = ["--from-photo", "--sketch-method", a.sketch_method]
    rows = []
    with tempfile.TemporaryDirectory(prefix="advseg-ray-bench-") as tmp:
        inputs = Path(tmp) / "in"
        inputs.mkdir()
        for p in photos:
            shutil.copy2(p, inputs / p.name)
        ref = None
        for i, (name, extra) in enumerate(CONFIGS):
            out = Path(tmp) / f"out{i}"
            row = {"config": name, **_run(inputs, out, extra, mode)}
            px = _pixels(out)
            ref = ref if ref is not None else px
            row["same_pixels_as_single_process"] = sorted(px) == sorted(ref) and all(
                np.array_equal(px[k], ref[k]) for k in ref
            )
            rows.append(row)
            print(
                f"{name}: {row['images_per_s_wall']:.3f} images/s end to end"
                + (f", {row['images_per_s_run']:.3f} in the run" if "images_per_s_run" in row else ""),
                flush=True,
            )
    result = {
        "schema": "advseg-ray-colorize/1",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": info,
        "software": {**software_versions(), "ray": _ray_version()},
        "workload": {
            "dataset": a.dataset,
            "split": a.split,
            "photos": len(photos),
            "sizes": sorted({_size(p) for p in photos}),
            "pipeline": " ".join(mode),
            "bundle": "embedded demo-sketch2color (resnet_6blocks ngf16, fp32)",
            "threads": "single process: ONNX Runtime's default (all cores); Ray: 1 CPU and "
            "1 ONNX Runtime thread per actor",
        },
        "note": a.note,
        "results": rows,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    stem = a.out / f"ray-colorize-{info['slug']}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(_markdown(result))
    print(f"wrote {stem}.json and {stem}.md")


def _ray_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("ray")
    except metadata.PackageNotFoundError:
        return None


def _size(p: Path) -> str:
    from PIL import Image

    with Image.open(p) as im:
        return f"{im.size[0]}x{im.size[1]}"


def _markdown(r: dict[str, Any]) -> str:
    m, w = r["machine"], r["workload"]
    lines = [
        f"# `advseg colorize`: one process vs Ray Data actors ({m['slug']})",
        "",
        f"{r['created']} on {m['cpu_model']}, {m['cpu_cores_logical']} cores usable "
        f"({', '.join(m['cpu_flags_simd'])}), {m['memory_gb']} GB; Ray {r['software']['ray']}, "
        f"ONNX Runtime {r['software']['onnxruntime']}.",
        "",
        f"Workload: {w['photos']} real photos ({w['dataset']} {w['split']} split; sizes "
        f"{', '.join(w['sizes'][:4])}{' ...' if len(w['sizes']) > 4 else ''}), `{w['pipeline']}`, "
        f"{w['bundle']}. Threads: {w['threads']}.",
        "",
        "| configuration | actors | images | wall s | images/s (end to end) | images/s (in the run) | same pixels "
        "| other processes' CPU (mean, % of a core) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in r["results"]:
        same = "yes" if row["same_pixels_as_single_process"] else "NO"
        lines.append(
            f"| {row['config']} | {row.get('actors', '–')} | {row['images']} | {row['wall_s']} | "
            f"{row['images_per_s_wall']} | {row.get('images_per_s_run', '–')} | {same} | "
            f"{row['load']['foreign_cpu_percent_mean']} |"
        )
    lines += [
        "",
        "End to end: from starting the command to its exit (Ray: starting a local Ray instance "
        "included). In the run: the rate `--ray` prints, from submitting the work to the last "
        "output (actor start-up included).",
        "",
    ]
    if r.get("note"):
        lines += [f"Machine state: {r['note']}", ""]
    lines += ["Commands:", "", "```", *[row["command"] for row in r["results"]], "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
