"""``advseg-bench scale``: how cost grows with image size, and memory staying bounded with tiling.

Each size runs in its own worker process through the SDK's :class:`~advseg_sdk.Colorizer` (its
pre/post-processing included) on a real sketch: sizes up to ``tile_limit`` run whole; larger ones
run in ``tile``-pixel tiles with overlap blending (the Colorizer's own tiling), so the network never
sees more than one tile. With ``untiled_too`` the larger sizes are also run whole (when the memory
estimate allows) to show what tiling saves. Reported per size: latency, latency per megapixel,
peak RSS of the worker during the calls, and the number of tiles.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advseg_sdk.files import utc_timestamp

__all__ = ["ScaleConfig", "run_scale", "run_scale_worker", "render_scale_markdown", "write_scale_plot"]

Log = Callable[[str], None]


@dataclass
class ScaleConfig:
    model: Any  # ModelSpec (generator)
    backend: str = "ort-cpu"
    precision: str = "fp32"
    sizes: list[int] = field(default_factory=lambda: [256, 512, 1024, 1536, 2048])
    tile_limit: int = 1024
    tile: int = 512
    overlap: int = 32
    untiled_too: bool = False
    threads: int = 1
    warmup: int = 1
    repeats: int = 3
    max_time_s: float = 60.0
    timeout_s: float = 1800.0
    memory_budget_gb: float | None = None
    seed: int = 0
    command: list[str] = field(default_factory=lambda: list(sys.argv))

    @classmethod
    def from_cli(cls, options: dict[str, Any], command: list[str]) -> ScaleConfig:
        """From the options of ``advseg-bench scale`` (ValueError, with the reason, for what it cannot run)."""
        from .environment import cli_fields
        from .models import parse_models

        o = options
        specs = parse_models(o["model"], o["ngf"])
        if len(specs) != 1 or specs[0].kind != "generator":
            raise ValueError("scale takes exactly one generator (an architecture, checkpoint:PATH or bundle:PATH)")
        if o["overlap"] >= o["tile"]:
            raise ValueError(f"--overlap ({o['overlap']}) must be smaller than --tile ({o['tile']})")
        same: tuple[str, ...] = ("backend", "precision", "sizes", "tile_limit", "tile", "overlap")
        same += ("untiled_too", "threads", "warmup", "repeats", "timeout_s", "memory_budget_gb")
        return cls(model=specs[0], max_time_s=o["max_time"], command=command, **cli_fields(o, *same))


# --------------------------------------------------------------------------- worker side


def _sketch_at(size: int):
    import numpy as np

    from advseg_sdk.line_drawing import xdog

    from .models import example_photos

    s = xdog(example_photos(1, size)[0])
    return np.ascontiguousarray(np.repeat(s[..., None], 3, axis=2))


def run_scale_worker(job: dict[str, Any]) -> None:
    from advseg_sdk import Colorizer

    from .memory import PeakRSS
    from .process import emit
    from .schema import empty_result
    from .timing import TimingPolicy, measure

    spec, size, tiled = job["model"], job["size"], job["tiled"]
    res = empty_result(spec["name"], "generator", job["backend"], job["precision"], 1, size, status="ok")
    providers = {
        "ort-cpu": ["CPUExecutionProvider"],
        "ort-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
        "ort-trt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    }[job["backend"]]
    img = _sketch_at(size)
    big = 1 << 40
    t0 = time.perf_counter()
    col = Colorizer(
        spec["bundle"],
        providers=providers,
        precision=job["precision"],
        tile=job["tile"] if tiled else None,
        tile_overlap=job["overlap"],
        max_pixels=big,
        max_batch=1,
        intra_op_threads=job["threads"],
    )
    load_s = time.perf_counter() - t0
    pol = TimingPolicy(
        warmup=job["warmup"], repeats=job["repeats"], min_time_s=0.0, max_time_s=job["max_time_s"], min_repeats=1
    )
    with PeakRSS() as mem:
        timing = measure(lambda: col.colorize(img), pol)
    stats = timing.stats_ms()
    mp = size * size / 1e6
    plan = col.tile_plan(size, size)
    if tiled and not plan:
        raise RuntimeError(f"the Colorizer did not tile a {size}² image with tile={job['tile']}")
    tile_hw = [plan[0].h, plan[0].w] if plan else None
    # network pixels per image pixel: what the tile overlap costs a fully convolutional net
    work_ratio = sum(t.h * t.w for t in plan) / (size * size) if plan else None
    res.update(
        latency_ms=stats,
        iterations=len(timing.times_s),
        warmup=timing.warmup,
        timer="perf_counter",
        throughput_ips=1e3 / stats["mean"],
        peak_rss_mb=round(mem.peak_mb, 1) if mem.peak_mb else None,
        load_s=round(load_s, 3),
        first_run_s=timing.first_call_s,
    )
    res["details"] = {
        "tiled": tiled,
        "tile": job["tile"] if tiled else None,
        "overlap": job["overlap"] if tiled else None,
        "tiles": len(plan) or None,
        "tile_hw": tile_hw,
        "work_ratio": round(work_ratio, 4) if work_ratio else None,
        "megapixels": mp,
        "ms_per_megapixel": stats["p50"] / mp,
        "runner": col.runner.label,
        "threads": job["threads"],
        "rss_method": mem.method,
        "torch_in_process": "torch" in sys.modules,
    }
    emit("result", result=res)


# --------------------------------------------------------------------------- parent side


def run_scale(cfg: ScaleConfig, log: Log | None = None) -> dict[str, Any]:
    import psutil
    from tqdm import tqdm

    from . import schema
    from .environment import LoadMonitor, machine_info, software_versions
    from .process import collect_probe

    say = log or (lambda m: tqdm.write(m, file=sys.stderr))
    created = utc_timestamp()
    spec = cfg.model
    budget_mb = cfg.memory_budget_gb * 1024 if cfg.memory_budget_gb else 0.8 * psutil.virtual_memory().available / 2**20
    with LoadMonitor() as load:
        # preparation (export) and the cost model in a probe worker, as for the matrix
        probe_job = {
            "models": [spec.to_dict()],
            "sizes": sorted(set(cfg.sizes) | {cfg.tile}),
            "threads": cfg.threads,
            "export_precisions": ["fp32"] + ([cfg.precision] if cfg.precision != "fp32" else []),
            "need_bundles": True,
            "seed": cfg.seed,
            "peak_seconds": 0,
        }
        probe, end = collect_probe(probe_job, cfg.threads, say)
        if spec.name in probe["models"]:
            spec = type(spec).from_dict(probe["models"][spec.name])
        costs: dict[str, Any] = probe["costs"].get(spec.name) or {}
        if end.rc != 0 or not spec.bundle:
            raise RuntimeError(f"preparing {spec.name} failed: {end.tail_text(12)}")
        runs = []
        for size in cfg.sizes:
            tiled = size > cfg.tile_limit
            runs.append((size, tiled))
            if tiled and cfg.untiled_too:
                runs.append((size, False))
        results = []
        with tqdm(total=len(runs), unit="size", file=sys.stderr, dynamic_ncols=True) as bar:
            for size, tiled in runs:
                bar.set_description(f"{spec.name} {size}px {'tiled' if tiled else 'whole'}")
                cost = costs.get(str(size)) or {}
                est = 400 + 3 * cost.get("weights_mb", 0) + 1.6 * cost.get("activation_peak_mb", 0)
                if not tiled and est > budget_mb:
                    r = schema.empty_result(
                        spec.name,
                        "generator",
                        cfg.backend,
                        cfg.precision,
                        1,
                        size,
                        "skipped",
                        f"untiled: estimated memory {est / 1024:.1f} GiB exceeds the budget {budget_mb / 1024:.1f} GiB",
                    )
                    r["details"] = {"tiled": False}
                    results.append(r)
                    bar.update(1)
                    continue
                job = {
                    "model": spec.to_dict(),
                    "backend": cfg.backend,
                    "precision": cfg.precision,
                    "size": size,
                    "tiled": tiled,
                    "tile": cfg.tile,
                    "overlap": cfg.overlap,
                    "threads": cfg.threads,
                    "warmup": cfg.warmup,
                    "repeats": cfg.repeats,
                    "max_time_s": cfg.max_time_s,
                }
                results.append(_run_scale_one(job, cfg, cost, say))
                bar.update(1)
    return {
        "schema": schema.SCHEMA_VERSION,
        "kind": "scale",
        "created": created,
        "command": cfg.command,
        "machine": machine_info(),
        "software": software_versions(),
        "settings": {
            "model": spec.name,
            "arch": spec.arch,
            "backend": cfg.backend,
            "precision": cfg.precision,
            "sizes": cfg.sizes,
            "tile_limit": cfg.tile_limit,
            "tile": cfg.tile,
            "overlap": cfg.overlap,
            "untiled_too": cfg.untiled_too,
            "threads": cfg.threads,
            "warmup": cfg.warmup,
            "repeats": cfg.repeats,
            "max_time_s": cfg.max_time_s,
        },
        "peaks": {},
        "costs": {spec.name: costs},
        "models": [spec.to_dict()],
        "load": load.summary(),
        "backends": [{"backend": cfg.backend, "available": True, "reason": None}],
        "results": results,
    }


def _run_scale_one(job: dict[str, Any], cfg: ScaleConfig, cost: dict[str, Any], say: Log) -> dict[str, Any]:
    from . import schema
    from .process import run_worker

    found: list[dict[str, Any]] = []

    def on_event(ev: dict[str, Any]) -> None:
        if ev["event"] == "result" and not found:
            found.append(ev["result"])

    end = run_worker("scale", job, cfg.threads, on_event, timeout_s=cfg.timeout_s)
    if found:
        result = found[0]
    else:
        why = (
            f"timed out after {cfg.timeout_s:g} s"
            if end.timed_out
            else f"worker exited with status {end.rc}: {end.tail_text()}"
        )
        result = schema.empty_result(
            job["model"]["name"], "generator", cfg.backend, cfg.precision, 1, job["size"], "error", why[:500]
        )
        result["details"] = {"tiled": job["tiled"]}
        say(f"  error at {job['size']}px: {why[:200]}")
    if cost and result["status"] == "ok":
        result["gflops_per_image"] = round(cost["gflops"], 2)
        result["achieved_gflops"] = round(cost["gflops"] * result["throughput_ips"], 2)
    return result


def render_scale_markdown(doc: dict[str, Any]) -> str:
    st, m, load = doc["settings"], doc["machine"], doc.get("load") or {}
    lines = [
        f"# advseg-bench scale: {st['model']} on {st['backend']} {st['precision']} ({m['slug']})",
        "",
        f"- Machine: {m['cpu_model']}, {m['cpu_cores_logical']} cores; threads {st['threads']}; "
        f"torch not used (SDK Colorizer on onnxruntime {doc['software'].get('onnxruntime')})",
        f"- Sizes above {st['tile_limit']}² run in {st['tile']}² tiles with {st['overlap']} px overlap "
        "(the Colorizer's tiling); each size in its own process; "
        f"warm-up {st['warmup']}, repeats {st['repeats']}",
        f"- Command: `{' '.join(doc.get('command') or [])}`",
        f"- Load average before {load.get('before')}, during max {load.get('during_max_1m')}; other processes' "
        f"CPU mean {load.get('foreign_cpu_percent_mean')} % of one core",
        "",
        "| size | MP | mode | tiles | net px / image px | p50 ms | ms / MP | GFLOP (whole image) | peak RSS MB | n |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["results"]:
        d = r.get("details") or {}
        mode = "tiled" if d.get("tiled") else "whole"
        if r["status"] != "ok":
            lines.append(
                f"| {r['size']} | {r['size'] ** 2 / 1e6:.2f} | {mode} | – | – | {r['status']}: {r['reason']} | | | | |"
            )
            continue
        tiles = f"{d['tiles']} × {d['tile_hw'][0]}×{d['tile_hw'][1]}" if d.get("tile_hw") else (d.get("tiles") or "–")
        ratio = f"{d['work_ratio']:.2f}" if d.get("work_ratio") else "–"
        lines.append(
            f"| {r['size']} | {d['megapixels']:.2f} | {mode} | {tiles} | {ratio} | "
            f"{r['latency_ms']['p50']:.0f} | {d['ms_per_megapixel']:.0f} | "
            f"{r.get('gflops_per_image') or '–'} | "
            f"{r['peak_rss_mb']:.0f} | {r['iterations']} |"
        )
    lines += [
        "",
        "'net px / image px': pixels the network computes per image pixel (tile overlap and padding); "
        "tiles are shrunk to fit the image with the fewest tiles of at most the tile size.",
        "",
        "Peak RSS is the worker's high-water mark during the timed calls (model loaded); with tiling it "
        "depends on the tile size, not the image size, apart from the image buffers themselves "
        "(input, output and the float32 blending canvas: ~28 bytes per pixel).",
        "",
    ]
    return "\n".join(lines)


def write_scale_plot(doc: dict[str, Any], path: str | Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from advseg_sdk.files import atomic_path

    ok = [r for r in doc["results"] if r["status"] == "ok"]
    if not ok:
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for tiled, style in ((False, "o-"), (True, "s--")):
        pts = sorted(
            (r["size"], r["details"]["ms_per_megapixel"], r["peak_rss_mb"])
            for r in ok
            if bool(r["details"].get("tiled")) == tiled
        )
        if not pts:
            continue
        label = "tiled" if tiled else "whole image"
        a1.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
        a2.plot([p[0] for p in pts], [p[2] for p in pts], style, label=label)
    for ax, yl in ((a1, "median latency per megapixel (ms)"), (a2, "peak RSS (MB)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("image size (px, square)")
        ax.set_ylabel(yl)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    st = doc["settings"]
    fig.suptitle(
        f"{st['model']} {st['backend']} {st['precision']}: cost vs size "
        f"(tiles of {st['tile']}² above {st['tile_limit']}²)"
    )
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)
