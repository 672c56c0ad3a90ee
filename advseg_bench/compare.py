"""``advseg-bench compare A.json B.json``: ratios between two runs, combination by combination.

For every (model, backend, precision, batch, size) measured ``ok`` in both: ``speedup`` =
A's median latency / B's median latency (> 1: B is faster) and ``throughput_ratio`` = B's images/s /
A's. The summary gives the geometric mean of the speed-ups and what only one run has.
"""

from __future__ import annotations

import math
from typing import Any

from . import schema

__all__ = ["compare_docs", "format_comparison"]


def compare_docs(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    ra = {schema.result_key(r): r for r in a["results"] if r["status"] == "ok"}
    rb = {schema.result_key(r): r for r in b["results"] if r["status"] == "ok"}
    rows = []
    for key in sorted(set(ra) & set(rb), key=lambda k: tuple(str(v) for v in k)):
        x, y = ra[key], rb[key]
        la, lb = x["latency_ms"]["p50"], y["latency_ms"]["p50"]
        rows.append(
            {
                "model": key[0],
                "backend": key[1],
                "precision": key[2],
                "batch": key[3],
                "size": key[4],
                "a_p50_ms": la,
                "b_p50_ms": lb,
                "speedup": la / lb if lb > 0 else math.inf,
                "a_ips": x["throughput_ips"],
                "b_ips": y["throughput_ips"],
                "throughput_ratio": y["throughput_ips"] / x["throughput_ips"] if x["throughput_ips"] else math.inf,
            }
        )
    finite = [r["speedup"] for r in rows if 0 < r["speedup"] < math.inf]
    geo = math.exp(sum(math.log(s) for s in finite) / len(finite)) if finite else None
    notes = []
    if a["machine"].get("slug") != b["machine"].get("slug"):
        notes.append(f"different machines: A {a['machine'].get('slug')}, B {b['machine'].get('slug')}")
    for k in ("torch", "onnxruntime"):
        if a["software"].get(k) != b["software"].get(k):
            notes.append(f"{k}: A {a['software'].get(k)}, B {b['software'].get(k)}")
    return {
        "rows": rows,
        "geomean_speedup": geo,
        "only_a": sorted(set(ra) - set(rb)),
        "only_b": sorted(set(rb) - set(ra)),
        "notes": notes,
    }


def format_comparison(cmp: dict[str, Any], name_a: str = "A", name_b: str = "B") -> str:
    head = (
        f"{'model':<26} {'backend':<15} {'prec':<5} {'batch':>5} {'size':>5} "
        f"{name_a[:10] + ' ms':>13} {name_b[:10] + ' ms':>13} {'speedup':>8} {'ips ratio':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in cmp["rows"]:
        lines.append(
            f"{r['model'][:26]:<26} {r['backend']:<15} {r['precision']:<5} {r['batch']:>5} {r['size']:>5} "
            f"{r['a_p50_ms']:>13.2f} {r['b_p50_ms']:>13.2f} {r['speedup']:>7.2f}x "
            f"{r['throughput_ratio']:>8.2f}x"
        )
    lines.append("")
    geo = cmp["geomean_speedup"]
    lines.append(
        f"{len(cmp['rows'])} common combinations; geometric-mean speedup of {name_b} over {name_a}: "
        + (f"{geo:.3f}x" if geo else "n/a")
        + " (speedup = A median latency / B median latency)"
    )
    if cmp["only_a"]:
        lines.append(f"only in {name_a}: {len(cmp['only_a'])} combinations")
    if cmp["only_b"]:
        lines.append(f"only in {name_b}: {len(cmp['only_b'])} combinations")
    for n in cmp["notes"]:
        lines.append(f"note: {n}")
    return "\n".join(lines)
