"""The worker-process protocol of every advseg-bench task (probe, measure, scale).

A worker (``python -m advseg_bench.worker TASK JOB.json``) reports to its parent through lines on
stdout that start with :data:`MARK` followed by a JSON event; anything else it prints is kept as
log text. The parent side (:func:`run_worker`) starts it with the thread count in the environment,
hands each event to a callback and kills it when it runs past a time limit.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MARK", "emit", "log", "WorkerProcess", "WorkerExit", "run_worker", "collect_probe"]

MARK = "@@advseg-bench@@ "

Log = Callable[[str], None]
Event = dict[str, Any]

_CLOSED = "_stdout_closed"


# --------------------------------------------------------------------------- worker side


def emit(event: str, **payload: Any) -> None:
    """Send one event to the parent."""
    sys.stdout.write(MARK + json.dumps({"event": event, **payload}) + "\n")
    sys.stdout.flush()


def log(msg: str) -> None:
    """Log text (stderr), shown by the parent when it asked for the worker's log."""
    sys.stderr.write(msg.rstrip() + "\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- parent side


class WorkerProcess:
    """A worker subprocess whose marker lines arrive on a queue; other output goes to a log tail."""

    def __init__(self, task: str, job: dict[str, Any], threads: int, log: Log | None = None):
        fd, name = tempfile.mkstemp(prefix="advseg-bench-job-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(job, f)
        self.job_path = Path(name)
        env = dict(
            os.environ,
            OMP_NUM_THREADS=str(threads),
            MKL_NUM_THREADS=str(threads),
            OPENBLAS_NUM_THREADS=str(threads),
            PYTHONUNBUFFERED="1",
            TQDM_DISABLE="1",
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "advseg_bench.worker", task, str(self.job_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            bufsize=1,
        )
        self.events: queue.Queue[Event] = queue.Queue()
        self.tail: deque[str] = deque(maxlen=30)
        self.log = log
        self._threads = [
            threading.Thread(target=self._read_out, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(MARK):
                try:
                    self.events.put(json.loads(line[len(MARK) :]))
                except json.JSONDecodeError:
                    self.tail.append(line.rstrip())
            else:
                self.tail.append(line.rstrip())
        self.events.put({"event": _CLOSED})

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.tail.append(line.rstrip())
            if self.log is not None and line.strip():
                self.log(line.rstrip())

    def next_event(self, timeout: float | None) -> Event | None:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def finish(self) -> int:
        rc = self.proc.wait()
        for t in self._threads:
            t.join(timeout=5)
        self.job_path.unlink(missing_ok=True)
        return rc

    def tail_text(self, n: int = 6) -> str:
        lines = [ln for ln in self.tail if ln.strip()][-n:]
        return " | ".join(lines)


@dataclass
class WorkerExit:
    """How a worker ended: its exit status, whether it was killed for time, and its last lines."""

    rc: int
    timed_out: bool = False
    tail: list[str] = field(default_factory=list)

    def tail_text(self, n: int = 6) -> str:
        return " | ".join([ln for ln in self.tail if ln.strip()][-n:])


def run_worker(
    task: str,
    job: dict[str, Any],
    threads: int,
    on_event: Callable[[Event], None],
    *,
    timeout_s: float | None = None,
    restart_on: Collection[str] = (),
    log: Log | None = None,
) -> WorkerExit:
    """Run one worker to its end, handing each event to ``on_event``.

    With ``timeout_s`` the worker is killed when that long passes since it started or since the
    last event named in ``restart_on`` (e.g. the start of the next combination)."""
    w = WorkerProcess(task, job, threads, log)
    started = time.monotonic()
    timed_out = False
    while True:
        ev = w.next_event(timeout=1.0)
        if ev is None:
            if timeout_s is not None and time.monotonic() - started > timeout_s:
                w.kill()
                timed_out = True
                break
            if w.proc.poll() is not None and w.events.empty():
                break
            continue
        if ev["event"] == _CLOSED:
            break
        if ev["event"] in restart_on:
            started = time.monotonic()
        on_event(ev)
    rc = w.finish()
    return WorkerExit(rc, timed_out, list(w.tail))


def collect_probe(job: dict[str, Any], threads: int, log: Log) -> tuple[dict[str, Any], WorkerExit]:
    """Run the ``probe`` task; returns ``{"env", "models" (by name), "costs" (by model), "peaks"}``."""
    out: dict[str, Any] = {"env": {}, "models": {}, "costs": {}, "peaks": {}}

    def on_event(ev: Event) -> None:
        kind = ev["event"]
        if kind == "env":
            out["env"] = ev["env"]
        elif kind == "model":
            out["models"][ev["model"]["name"]] = ev["model"]
        elif kind == "cost":
            out["costs"][ev["model"]] = ev["costs"]
        elif kind == "peaks":
            out["peaks"] = ev["peaks"]

    return out, run_worker("probe", job, threads, on_event, log=log)
