"""Importing a package that needs torch for its work does not import torch until a name that
needs it is used (fresh interpreters)."""

from __future__ import annotations

import subprocess
import sys


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_advseg_eval_does_not_import_torch():
    r = _python("import advseg_eval, sys; assert 'torch' not in sys.modules")
    assert r.returncode == 0, r.stderr


def test_advseg_eval_names_all_resolve_lazily():
    code = (
        "import sys, advseg_eval\n"
        "assert sorted(advseg_eval.__all__) == sorted(advseg_eval._EXPORTS)\n"
        "for name in advseg_eval.__all__: getattr(advseg_eval, name)\n"
        "from advseg_eval import ScoreOptions, psnr\n"
        "import advseg_eval.paired, advseg_eval.score\n"
        "assert ScoreOptions is advseg_eval.score.ScoreOptions and psnr is advseg_eval.paired.psnr\n"
        "assert set(advseg_eval.__all__) <= set(dir(advseg_eval))\n"
        "print('ok')\n"
    )
    r = _python(code)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
