"""Peak host memory (RSS) of a measured block, and peak GPU memory where a runtime reports it.

On Linux the kernel's high-water mark ``VmHWM`` is reset by writing ``5`` to
``/proc/self/clear_refs``, so each combination gets its own peak. Elsewhere (or when that write
is refused) a thread samples the RSS with psutil every few milliseconds.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import psutil

__all__ = ["PeakRSS", "current_rss_mb"]

_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


def current_rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def _vm_hwm_mb() -> float | None:
    try:
        m = re.search(r"VmHWM:\s+(\d+)\s+kB", _STATUS.read_text())
    except OSError:
        return None
    return int(m.group(1)) / 1024 if m else None


def _reset_hwm() -> bool:
    try:
        _CLEAR.write_text("5")
    except OSError:
        return False
    return True


class PeakRSS:
    """``with PeakRSS() as p: ...`` then ``p.peak_mb`` (peak resident set size in MiB) and
    ``p.method`` (``"VmHWM"`` or ``"psutil-sampling"``)."""

    def __init__(self, interval_s: float = 0.005):
        self.interval_s = interval_s
        self.peak_mb: float | None = None
        self.method = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sampled = 0.0

    def __enter__(self) -> PeakRSS:
        if _vm_hwm_mb() is not None and _reset_hwm():
            self.method = "VmHWM"
        else:
            self.method = "psutil-sampling"
            self._sampled = current_rss_mb()
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        proc = psutil.Process()
        while not self._stop.wait(self.interval_s):
            self._sampled = max(self._sampled, proc.memory_info().rss / 2**20)

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=1)
            self.peak_mb = max(self._sampled, current_rss_mb())
        else:
            self.peak_mb = _vm_hwm_mb()
