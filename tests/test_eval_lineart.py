"""advseg-eval lineart: figures that tell a filled drawing from a wash, and the command on the
embedded default model."""

from __future__ import annotations

import json
import subprocess

import cv2
import numpy as np

from advseg_eval.lineart import region_figures
from advseg_sdk.imageio import write_image


def _drawing() -> np.ndarray:
    """Two enclosed shapes (a house and a sun) in black outlines on white."""
    d = np.full((256, 256), 255, np.uint8)
    cv2.rectangle(d, (30, 120), (150, 230), 0, 3)
    cv2.line(d, (30, 120), (90, 60), 0, 3)
    cv2.line(d, (90, 60), (150, 120), 0, 3)
    cv2.circle(d, (205, 55), 30, 0, 3)
    return d


def test_a_wash_is_not_filled_and_flat_region_colours_are():
    d = _drawing()
    wash = np.full((256, 256, 3), (200, 205, 215), np.uint8)  # pale blue-grey everywhere
    w = region_figures(d, wash)
    assert w["regions"] >= 3 and w["filled"] < 0.05 and w["distinct"] < 0.5
    painted = np.full((256, 256, 3), (90, 160, 230), np.uint8)  # sky blue background
    mask = np.zeros((256, 256), np.uint8)
    cv2.rectangle(mask, (33, 123), (147, 227), 1, -1)
    painted[mask > 0] = (200, 60, 40)  # red walls
    sun = np.zeros((256, 256), np.uint8)
    cv2.circle(sun, (205, 55), 27, 1, -1)
    painted[sun > 0] = (250, 210, 30)  # yellow sun
    p = region_figures(d, painted)
    assert p["filled"] > 0.8 and p["distinct"] > w["distinct"] and p["chroma"] > 30


def test_lineart_command_on_the_embedded_default(tmp_path, venv_bin):
    drawings = tmp_path / "drawings"
    drawings.mkdir()
    write_image(drawings / "house.png", _drawing())
    write_image(drawings / "house-small.png", cv2.resize(_drawing(), (128, 96)))
    out = tmp_path / "out"
    proc = subprocess.run(
        [str(venv_bin / "advseg-eval"), "lineart", str(drawings), "--out", str(out), "--long-side", "256"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["per_drawing"]) == 2
    (model,) = summary["summary"]
    assert set(summary["summary"][model]) == {"filled", "chroma", "distinct", "uniform"}
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet.shape[1] == 2 * (256 + 4)  # drawing | the model
    again = subprocess.run(
        [str(venv_bin / "advseg-eval"), "lineart", str(drawings), "--out", str(out)], capture_output=True, text=True
    )
    assert again.returncode == 2 and "not empty" in again.stderr
