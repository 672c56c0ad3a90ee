"""The SDK never imports torch: checked in fresh interpreters (imports, and a real colorize run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_bundle import export_onnx, make_bundle, tiny_resnet

MODULES = [
    "advseg_sdk",
    "advseg_sdk.cli",
    "advseg_sdk.colorizer",
    "advseg_sdk.sketcher",
    "advseg_sdk.runtime",
    "advseg_sdk.bundle",
    "advseg_sdk.tiling",
    "advseg_sdk.cli_colorize",
]


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_sdk_imports_without_torch():
    code = (
        f"import sys, importlib\n"
        f"for m in {MODULES!r}: importlib.import_module(m)\n"
        "import advseg_sdk\n"
        "for name in advseg_sdk.__all__: getattr(advseg_sdk, name)\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    r = _python(code)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_colorize_runs_without_torch(tmp_path: Path):
    net = tiny_resnet(seed=6)
    bundle = make_bundle(tmp_path / "b.advseg", {"fp32": export_onnx(net, tmp_path / "g.onnx")})
    code = (
        "import sys, numpy as np\n"
        "from advseg_sdk import Colorizer\n"
        f"out = Colorizer({str(bundle)!r}).colorize(np.full((30, 42), 255, np.uint8))\n"
        "assert out.shape == (30, 42, 3), out.shape\n"
        "assert 'torch' not in sys.modules\n"
        "print('ok')\n"
    )
    r = _python(code)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
