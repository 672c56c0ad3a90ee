"""The GPU check's goals (from the benchmark's targets file) and its markdown report."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .profile import STEPS

__all__ = ["goals_targets", "evaluate_goals", "render_markdown"]


def goals_targets() -> dict[str, float]:
    """The GPU goals of the targets file (``gpu``; :data:`advseg_bench.report.TARGETS_FILE`), if any."""
    from advseg_bench.report import load_targets

    return {k: v for k, v in (load_targets().get("gpu") or {}).items() if isinstance(v, (int, float))}


def _met(value: float, goal: float | None, at_most: bool = False) -> bool | None:
    if goal is None:
        return None
    return value <= goal if at_most else value >= goal


def _best(rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], float], pred) -> dict[str, Any] | None:
    ok = [r for r in rows if r.get("status") == "ok" and pred(r)]
    return min(ok, key=key) if ok else None


def evaluate_goals(doc: dict[str, Any]) -> dict[str, Any]:
    """Each goal of the GPU kit as met / missed / not measured, with the figure behind it."""
    goals: dict[str, Any] = {}
    want = goals_targets()
    inf = (doc["steps"].get("inference") or {}).get("results") or []
    r9 = [r for r in inf if r["model"] == "resnet_9blocks" and r["size"] == 256]
    lat = _best(r9, lambda r: r["latency_ms"]["p50"], lambda r: r["batch"] == 1)
    goal = want.get("latency_ms_resnet9_256_b1")
    goals["resnet_9blocks_256_b1_latency"] = (
        {
            "goal_ms": goal,
            "best_ms": lat["latency_ms"]["p50"],
            "met": _met(lat["latency_ms"]["p50"], goal, at_most=True),
            "with": f"{lat['backend']} {lat['precision']}",
        }
        if lat
        else {"met": None, "reason": "not measured"}
    )
    thr = _best(r9, lambda r: -r["images_per_s"], lambda r: r["precision"] in ("fp16", "bf16"))
    goal = want.get("throughput_ips_half")
    goals["half_precision_throughput"] = (
        {
            "goal_ips": goal,
            "best_ips": thr["images_per_s"],
            "met": _met(thr["images_per_s"], goal),
            "with": f"{thr['backend']} {thr['precision']} batch {thr['batch']}",
        }
        if thr
        else {"met": None, "reason": "not measured"}
    )
    anchor = _best(
        r9,
        lambda r: r["latency_ms"]["p50"],
        lambda r: r["batch"] == 1 and r["backend"] == "torch-eager" and r["precision"] == "fp32",
    )
    goals["anchor_eager_fp32_b1"] = (
        {
            "a100_published_ms": want.get("anchor_a100_eager_fp32_b1_ms"),
            "measured_ms": anchor["latency_ms"]["p50"],
            "fp32_math": anchor.get("fp32_math"),
        }
        if anchor
        else {"reason": "not measured"}
    )
    tp = doc["steps"].get("train_throughput") or {}
    sp = tp.get("speedup")
    goal = want.get("train_speedup")
    goals["training_speedup"] = (
        {"goal": goal, "speedup": sp, "met": _met(sp, goal)} if sp else {"met": None, "reason": "not measured"}
    )
    smoke = doc["steps"].get("train_smoke") or {}
    if smoke.get("combos") is not None:
        goals["training_smoke"] = {
            "passed": smoke.get("passed"),
            "failed": smoke.get("failed"),
            "met": smoke.get("failed") == 0 and bool(smoke.get("combos")),
        }
    return goals


def _fmt(v: Any, nd: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def _table_head(title: str, *columns: str) -> list[str]:
    """A markdown section: a blank line, the heading, a blank line, a table's header row and rule."""
    return ["", f"## {title}", "", f"| {' | '.join(columns)} |", "|---" * len(columns) + "|"]


def render_markdown(doc: dict[str, Any]) -> str:
    env = doc.get("env") or {}
    L = [
        f"# advseg GPU check{' (dry run, CPU)' if doc.get('dry_run') else ''}",
        "",
        f"- created {doc['created']}, budget {doc['budget_s']:.0f} s, elapsed {doc.get('elapsed_s')} s",
        f"- {env.get('gpu', env.get('device', 'CPU'))}, torch {env.get('torch')}, CUDA {env.get('cuda')}, "
        f"cuDNN {env.get('cudnn')}; {env.get('nvidia_smi', '')}",
        f"- segmenter: {env.get('segmenter_note', '')}",
    ]
    L += _table_head("Steps", "step", "status", "seconds", "note")
    for name, _ in STEPS:
        s = doc["steps"].get(name)
        if s:
            L.append(f"| {name} | {s['status']} | {_fmt(s.get('seconds'), 1)} | {s.get('reason', '')} |")
    L += ["", "## Goals", ""]
    for k, g in (doc.get("goals") or {}).items():
        L.append(f"- **{k}**: " + ", ".join(f"{a}={_fmt(b)}" for a, b in g.items()))
    smoke = doc["steps"].get("train_smoke") or {}
    if smoke.get("combos"):
        L += _table_head("Training smoke", "kind", "amp", "variant", "grad", "finite", "seg grad norm", "property", "s")
        for c in smoke["combos"]:
            L.append(
                f"| {c['kind']} | {c['amp']} | {c['variant']} | {c['grad']} | {c.get('finite')} | "
                f"{_fmt(c.get('seg_grad_norm'), 6)} | {c.get('gradient_property', c.get('error', ''))} | "
                f"{c.get('seconds')} |"
            )
        for r in smoke.get("trainer_runs", []):
            L.append(f"- train() {r['kind']} amp {r.get('amp', '')}: {r['status']} {r.get('reason', '')}")
        for s in smoke.get("skipped", []):
            L.append(f"- skipped {s['kind']} {s['amp']} {s['variant']} {s['grad']}: {s['reason']}")
        gt = smoke.get("gpu_tests") or {}
        if gt:
            L.append(f"- pytest -m gpu: {gt.get('status')} {gt.get('summary', gt.get('reason', ''))}")
    tp = doc["steps"].get("train_throughput") or {}
    if tp.get("results"):
        L += _table_head(f"Training throughput: {tp.get('model')}", "config", "batch", "images/s", "note")
        for k, r in tp["results"].items():
            L.append(
                f"| {k} | {r.get('batch', '')} | {_fmt(r.get('images_per_s'), 1)} | "
                f"{r.get('reason', r.get('compiled', ''))} |"
            )
        goal = goals_targets().get("train_speedup")
        L.append(
            f"\nSpeed-up fast / official: {_fmt(tp.get('speedup'), 2)}"
            + (f" (goal ≥ {goal:.0f}×)" if goal is not None else "")
        )
    inf = doc["steps"].get("inference") or {}
    if inf.get("results"):
        L += _table_head(
            "Inference (CUDA events; PSNR vs strict fp32)",
            *("model", "size", "batch", "backend", "precision", "p50 ms", "p90 ms", "images/s", "host ms"),
            *("PSNR dB", "peak GPU MB", "TFLOP/s", "% of peak"),
        )
        for r in inf["results"]:
            if r.get("status") != "ok":
                L.append(
                    f"| {r['model']} | {r['size']} | {r['batch']} | {r['backend']} | {r['precision']} | "
                    f"error: {r.get('reason', '')} |||||||"
                )
                continue
            prec = r["precision"] + (" (TF32)" if r.get("fp32_math") else "")
            L.append(
                f"| {r['model']} | {r['size']} | {r['batch']} | {r['backend']} | {prec} | "
                f"{_fmt(r['latency_ms']['p50'])} | {_fmt(r['latency_ms']['p90'])} | "
                f"{_fmt(r['images_per_s'], 1)} | "
                f"{_fmt(r.get('host_latency_ms'))} | {_fmt((r.get('accuracy') or {}).get('psnr_db'), 1)} | "
                f"{_fmt(r.get('peak_gpu_mb'), 0)} | {_fmt(r.get('achieved_tflops'), 1)} | "
                f"{_fmt(r['peak_fraction'] * 100 if r.get('peak_fraction') else None, 1)}"
                f"{' (' + r['peak_basis'] + ')' if r.get('peak_basis') not in (None, r['precision']) else ''} |"
            )
        if inf.get("skipped"):
            L.append(
                f"\n{len(inf['skipped'])} combinations skipped, e.g. "
                + "; ".join(
                    f"{s['model']} {s['size']}² b{s['batch']} {s['backend']} {s['precision']}: {s['reason']}"
                    for s in inf["skipped"][:5]
                )
            )
    fin = doc["steps"].get("final_training") or {}
    if fin.get("steps") is not None:
        L += [
            "",
            "## Final training",
            "",
            f"{fin.get('steps')} steps at {fin.get('images_per_s')} images/s, "
            f"config {fin.get('config')}; generator {fin.get('generator', 'not kept')} "
            f"({fin.get('generator_mb')} MB); last losses {fin.get('last_losses')}",
        ]
    return "\n".join(L) + "\n"
