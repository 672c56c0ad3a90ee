"""Colour error against the number of colour hints per photo, beside the flat fill.

Runs ``advseg-eval colour --hints N`` for each N (the figures are that command's) on the scene
test splits and writes a plot, a JSON of the figures and a markdown table:

    python scripts/hint_curve.py --bundle advseg_sdk/data/demo-sketch2color.advseg --out docs/hints_curve
    python scripts/hint_curve.py --counts 0,1,3,10,30 --hint-spread none --out eval/curve-none

Each count is one evaluation in ``<out>.runs/N/`` (kept; an existing one is read, not rerun).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

from advseg_sdk.vocab import HINT_SPREAD_MODES


def _evaluate(bundle: Path, count: int, datasets: tuple[str, ...], spread: str, run_dir: Path, threads: int) -> dict:
    summary = run_dir / "summary.json"
    if not summary.is_file():
        cmd = [str(Path(sys.executable).parent / "advseg-eval"), "colour", "--bundle", f"model={bundle}"]
        for name in datasets:
            cmd += ["--dataset", name]
        cmd += ["--hints", str(count), "--hint-spread", spread, "--out", str(run_dir), "--threads", str(threads)]
        click.echo(" ".join(cmd), err=True)
        subprocess.run(cmd, check=True)
    return json.loads(summary.read_text())


def _plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["hints"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(xs, [r["model"] for r in rows], "o-", label="model")
    ax.plot(xs, [r["flat"] for r in rows], "s--", color="grey", label="flat fill (no hints)")
    ax.plot(xs, [0.6 * r["flat"] for r in rows], ":", color="green", label="goal: 0.6 x flat")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("colour hints per photo")
    ax.set_ylabel("mean CIEDE2000 to the photo (lower is better)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    tmp.replace(path)


@click.command()
@click.option("--bundle", type=click.Path(exists=True, path_type=Path), required=True, help="Bundle that takes hints.")
@click.option("--counts", default="0,1,3,10,30", show_default=True, help="Hints per photo, comma-separated.")
@click.option("--dataset", "datasets", multiple=True, default=("landscapes", "animals", "interiors"), show_default=True)
@click.option("--hint-spread", type=click.Choice(list(HINT_SPREAD_MODES)), default="region", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Writes OUT.png, OUT.json and OUT.md.")
@click.option("--threads", type=click.IntRange(1), default=2, show_default=True)
def main(bundle: Path, counts: str, datasets: tuple[str, ...], hint_spread: str, out: Path, threads: int) -> None:
    """Colour error against hints per photo (see the module docstring)."""
    ns = sorted({int(c) for c in counts.split(",") if c.strip()})
    runs = out.with_name(out.name + ".runs")
    rows = []
    for n in ns:
        s = _evaluate(bundle, n, datasets, hint_spread, runs / str(n), threads)
        m = s["methods"]
        rows.append(
            {
                "hints": n,
                "model": m["model"]["ciede2000"],
                "flat": m["flat"]["ciede2000"],
                "ratio": m["model"]["ciede2000"] / m["flat"]["ciede2000"],
                "feature_cosine": m["model"]["feature_cosine"],
                "chroma_ratio": m["model"]["chroma_ratio"],
            }
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    what = f"{bundle.name}, hints spread: {hint_spread}; {', '.join(datasets)} (test), {s['images']} photos"
    _plot(rows, out.with_suffix(".png"), what)
    out.with_suffix(".json").write_text(json.dumps({"what": what, "rows": rows}, indent=2) + "\n")
    lines = [
        f"Colour error against hints per photo ({what}).",
        "",
        "| hints | CIEDE2000 | flat | × flat | feature cosine | chroma ratio |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['hints']} | {r['model']:.2f} | {r['flat']:.2f} | {r['ratio']:.3f} "
            f"| {r['feature_cosine']:.3f} | {r['chroma_ratio']:.2f} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    click.echo("\n".join(lines))


if __name__ == "__main__":
    main()
