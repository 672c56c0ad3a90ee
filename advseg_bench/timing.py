"""Warm-up, then repeated timed calls; latency statistics.

:func:`measure` runs ``fn`` ``warmup`` times, then times calls until at least ``repeats`` calls
*and* ``min_time_s`` seconds are done, stopping early (after ``min_repeats`` calls) once
``max_time_s`` is spent, so a slow combination cannot eat the whole run. Each call is timed with
``time.perf_counter`` around a synchronous call, or with a caller-supplied timer (CUDA events) that
returns the call's device time in seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["TimingPolicy", "Timing", "measure", "summarize"]


@dataclass(frozen=True)
class TimingPolicy:
    warmup: int = 2
    repeats: int = 10
    min_time_s: float = 1.0
    max_time_s: float = 30.0
    min_repeats: int = 3

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.repeats < 1 or self.min_repeats < 1:
            raise ValueError(f"bad timing policy {self}: warmup >= 0, repeats >= 1, min_repeats >= 1")
        if self.min_time_s < 0 or self.max_time_s <= 0:
            raise ValueError(f"bad timing policy {self}: times must be positive")


@dataclass
class Timing:
    times_s: list[float] = field(default_factory=list)
    warmup: int = 0
    first_call_s: float | None = None
    stopped_early: bool = False

    def stats_ms(self) -> dict[str, float]:
        return summarize(self.times_s)


def summarize(times_s: list[float]) -> dict[str, float]:
    """mean / std / min / p50 / p90 / p99 / max in milliseconds (linear-interpolated percentiles)."""
    if not times_s:
        raise ValueError("no timings to summarize")
    a = np.asarray(times_s, dtype=np.float64) * 1e3
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
        "min": float(a.min()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(a.max()),
    }


def measure(
    fn: Callable[[], object],
    policy: TimingPolicy,
    timed_call: Callable[[Callable[[], object]], float] | None = None,
    after_warmup: Callable[[], object] | None = None,
) -> Timing:
    """Time ``fn`` under ``policy``. ``timed_call(fn) -> seconds`` replaces the host timer
    (e.g. CUDA events); the first warm-up call's wall time is kept as ``first_call_s``.
    ``after_warmup()`` runs between the warm-up and the first timed call (e.g. to reset a peak
    memory counter so that it covers the timed calls only)."""
    out = Timing(warmup=policy.warmup)
    for i in range(policy.warmup):
        t0 = time.perf_counter()
        fn()
        if i == 0:
            out.first_call_s = time.perf_counter() - t0
    if after_warmup is not None:
        after_warmup()

    def host_timed(f: Callable[[], object]) -> float:
        t0 = time.perf_counter()
        f()
        return time.perf_counter() - t0

    timer = timed_call or host_timed
    start = time.perf_counter()
    while True:
        dt = timer(fn)
        if out.first_call_s is None:
            out.first_call_s = dt
        out.times_s.append(dt)
        n, spent = len(out.times_s), time.perf_counter() - start
        if n >= policy.repeats and spent >= policy.min_time_s:
            break
        if spent >= policy.max_time_s and n >= policy.min_repeats:
            out.stopped_early = n < policy.repeats
            break
    return out
