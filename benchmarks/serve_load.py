"""Load on `advseg serve`, measured over loopback: N concurrent clients (1, 8, 32) for a fixed time
on 256² and 512² sketches, with dynamic batching (``--max-batch 8``) and without (``--max-batch 1``)
side by side; an overload run past the queue bound; clients that hang up mid-request; and the
server's memory over repeated runs. Bounded in count and time (every request has a client
timeout; every cell a fixed duration).

    python benchmarks/serve_load.py [--bundle B] [--seconds 15] [--out benchmarks/results]

Each server is a real `advseg serve` subprocess on 127.0.0.1 (its RSS sampled with psutil); the
clients are threads here, one keep-alive HTTP connection each. Writes
``serve-load-<machine>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLIENT_TIMEOUT = 120.0  # no request may hang: every one gives up after this
SERVER_TIMEOUT = 90.0  # the service's own --timeout (504 past it)


# --------------------------------------------------------------------------- the server


@dataclass
class Server:
    """`advseg serve` in a subprocess, with a thread sampling its peak RSS."""

    args: list[str]
    port: int = 0
    proc: Any = None
    peak_rss: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Server:
        self.port = _free_port()
        cmd = [str(BIN / "advseg"), "serve", "--port", str(self.port), *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"advseg serve exited: {self.proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise RuntimeError("advseg serve did not start within 120 s")
        threading.Thread(target=self._sample, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss(self) -> int:
        return psutil.Process(self.proc.pid).memory_info().rss

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.peak_rss = max(self.peak_rss, self.rss())
            except psutil.Error:
                return

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics", timeout=10).text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metric(text: str, name: str, labels: str = "") -> float:
    for line in text.splitlines():
        if line.startswith(name + (("{" + labels + "}") if labels else "") + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# --------------------------------------------------------------------------- inputs and clients


def sketch_png(size: int) -> bytes:
    """A real line drawing: Canny edges of a real photo, centre-cropped to ``size``², as PNG."""
    import cv2
    from PIL import Image

    from advseg_sdk import assets
    from advseg_sdk.imageio import read_image

    rgb = read_image(assets.photo_paths()[0])
    h, w = rgb.shape[:2]
    s = min(h, w)
    crop = rgb[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    small = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    edges = cv2.Canny(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), 60, 160)
    buf = io.BytesIO()
    Image.fromarray((255 - edges).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _post(client: httpx.Client, data: bytes) -> tuple[int | str, float, int]:
    """(status or exception name, seconds, batch size) of one colour request."""
    t0 = time.perf_counter()
    try:
        r = client.post("/v1/colorize", content=data, headers={"content-type": "image/png"})
        return r.status_code, time.perf_counter() - t0, int(r.headers.get("x-advseg-batch-size", 0))
    except httpx.HTTPError as exc:
        return type(exc).__name__, time.perf_counter() - t0, 0


def _client_loop(url: str, data: bytes, until: float, out: list) -> None:
    with httpx.Client(base_url=url, timeout=CLIENT_TIMEOUT) as c:
        while time.monotonic() < until:
            out.append(_post(c, data))


def closed_loop(server: Server, data: bytes, clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` threads, each sending its next request when the last is answered, for ``seconds``."""
    results: list[tuple[int | str, float, int]] = []
    t0 = time.monotonic()
    threads = [
        threading.Thread(target=_client_loop, args=(server.url, data, t0 + seconds, results)) for _ in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(CLIENT_TIMEOUT + seconds + 10)
    elapsed = time.monotonic() - t0
    return _summary(results, elapsed, hung=sum(t.is_alive() for t in threads))


def _summary(results: list[tuple[int | str, float, int]], elapsed: float, hung: int = 0) -> dict[str, Any]:
    ok = sorted(s for code, s, _ in results if code == 200)
    batches = [b for code, _, b in results if code == 200]
    codes: dict[str, int] = {}
    for code, _, _ in results:
        codes[str(code)] = codes.get(str(code), 0) + 1
    q = lambda p: round(1000 * ok[min(len(ok) - 1, int(p * len(ok)))], 1) if ok else None
    return {
        "requests": len(results),
        "ok": len(ok),
        "throughput_rps": round(len(ok) / elapsed, 3),
        "p50_ms": q(0.50),
        "p99_ms": q(0.99),
        "errors": len(results) - len(ok),
        "status_counts": codes,
        "server_errors_5xx": sum(n for c, n in codes.items() if c.isdigit() and int(c) >= 500),
        "mean_batch": round(statistics.fmean(batches), 2) if batches else None,
        "hung": hung,
        "seconds": round(elapsed, 2),
    }


# --------------------------------------------------------------------------- the runs


def matrix(bundle: list[str], sizes: list[int], clients: list[int], seconds: float) -> dict[str, Any]:
    """Every (max_batch, size, clients) cell, and the server's memory after each."""
    inputs = {s: sketch_png(s) for s in sizes}
    cells, servers = [], {}
    for max_batch in (8, 1):
        args = [*bundle, "--workers", "1", "--max-batch", str(max_batch), "--max-queue", "64"]
        with Server([*args, "--timeout", str(SERVER_TIMEOUT)]) as srv:
            rss_start = srv.rss()
            for size in sizes:
                _post(httpx.Client(base_url=srv.url, timeout=CLIENT_TIMEOUT), inputs[size])  # warm-up
                for n in clients:
                    cell = closed_loop(srv, inputs[size], n, seconds)
                    cell.update(max_batch=max_batch, size=size, clients=n, rss_mb=round(srv.rss() / 2**20, 1))
                    print(_cell_line(cell), flush=True)
                    cells.append(cell)
            memory = _memory_check(srv, inputs[sizes[0]], max(clients) // 4 or 1, seconds / 2)
            servers[f"max_batch_{max_batch}"] = {
                "rss_start_mb": round(rss_start / 2**20, 1),
                "peak_rss_mb": round(srv.peak_rss / 2**20, 1),
                "repeated_runs_rss_mb": memory,
            }
    return {"cells": cells, "servers": servers, "batching_gain": _gains(cells)}


def _memory_check(srv: Server, data: bytes, clients: int, seconds: float, repeats: int = 3) -> list[float]:
    """The server's RSS after each of ``repeats`` identical runs (flat: no growth)."""
    out = []
    for _ in range(repeats):
        closed_loop(srv, data, clients, seconds)
        out.append(round(srv.rss() / 2**20, 1))
    return out


def _gains(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by = {(c["max_batch"], c["size"], c["clients"]): c for c in cells}
    gains = []
    for (mb, size, n), c in by.items():
        base = by.get((1, size, n))
        if mb == 8 and base and base["throughput_rps"]:
            gains.append({"size": size, "clients": n, "gain": round(c["throughput_rps"] / base["throughput_rps"], 2)})
    return gains


def overload(bundle: list[str], size: int, burst: int) -> dict[str, Any]:
    """``burst`` requests at once at a server holding at most 8 (``--max-queue 4 --max-batch 4``):
    the extra ones get 503 at once, none hangs, and the service answers normally afterwards."""
    data = sketch_png(size)
    args = [*bundle, "--workers", "1", "--max-batch", "4", "--max-queue", "4", "--timeout", str(SERVER_TIMEOUT)]
    with Server(args) as srv:
        _post(httpx.Client(base_url=srv.url, timeout=CLIENT_TIMEOUT), data)
        t0 = time.monotonic()
        with ThreadPoolExecutor(burst) as pool:
            clients = [httpx.Client(base_url=srv.url, timeout=CLIENT_TIMEOUT) for _ in range(burst)]
            results = list(pool.map(lambda c: _post(c, data), clients))
        burst_s = time.monotonic() - t0
        refused = [s for code, s, _ in results if code == 503]
        after = [_post(httpx.Client(base_url=srv.url, timeout=CLIENT_TIMEOUT), data) for _ in range(3)]
        health = httpx.get(srv.url + "/healthz", timeout=10).json()
        text = srv.metrics()
    return {
        "burst": burst,
        "capacity": 4 + 4,
        "size": size,
        **_summary(results, burst_s),
        "max_503_ms": round(1000 * max(refused), 1) if refused else None,
        "after_burst": [code for code, _, _ in after],
        "queue_depth_after": health["queue_depth"],
        "queue_full_metric": _metric(text, "advseg_errors_total", 'endpoint="/v1/colorize",reason="queue_full"'),
    }


def _hang_up(url: str, data: bytes, wait: float) -> None:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        head = (
            f"POST /v1/colorize HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        s.sendall(head.encode() + data)
        time.sleep(wait)  # gone before the answer


def disconnects(bundle: list[str], size: int, seconds: float, quitters: int = 16) -> dict[str, Any]:
    """8 steady clients, while ``quitters`` others send a request and hang up 50 ms later."""
    data = sketch_png(size)
    args = [*bundle, "--workers", "1", "--max-batch", "8", "--max-queue", "64", "--timeout", str(SERVER_TIMEOUT)]
    with Server(args) as srv:
        _post(httpx.Client(base_url=srv.url, timeout=CLIENT_TIMEOUT), data)
        rss_before = srv.rss()
        with ThreadPoolExecutor(4) as pool:
            steady = pool.submit(closed_loop, srv, data, 8, seconds)
            for _ in range(quitters):
                pool.submit(_hang_up, srv.url, data, 0.05).result(30)
                time.sleep(seconds / quitters / 2)
            cell = steady.result(CLIENT_TIMEOUT + seconds + 30)
        time.sleep(1.0)
        health = httpx.get(srv.url + "/healthz", timeout=10).json()
        after = _post(httpx.Client(base_url=srv.url, timeout=CLIENT_TIMEOUT), data)[0]
        text = srv.metrics()
        rss_after = srv.rss()
    return {
        "steady_clients": 8,
        "quitters": quitters,
        "size": size,
        **cell,
        "disconnects_counted": _metric(
            text, "advseg_errors_total", 'endpoint="/v1/colorize",reason="client_disconnected"'
        ),
        "in_flight_after": health["in_flight"],
        "queue_depth_after": health["queue_depth"],
        "request_after": after,
        "rss_before_mb": round(rss_before / 2**20, 1),
        "rss_after_mb": round(rss_after / 2**20, 1),
    }


# --------------------------------------------------------------------------- the report


def _cell_line(c: dict[str, Any]) -> str:
    return (
        f"max_batch {c['max_batch']} {c['size']}² x{c['clients']:>2}: {c['throughput_rps']:.2f} req/s, "
        f"p50 {c['p50_ms']} ms, p99 {c['p99_ms']} ms, errors {c['errors']}, batch {c['mean_batch']}, "
        f"rss {c['rss_mb']} MiB"
    )


def markdown(doc: dict[str, Any]) -> str:
    m = doc["matrix"]
    lines = [
        f"# `advseg serve` under load: {doc['machine']['slug']}",
        "",
        f"{doc['machine_words']}; bundle `{doc['bundle']}`; 1 worker (one ONNX Runtime session, "
        f"{doc['machine']['cpu_cores_logical']} threads); clients on the same machine over loopback, "
        f"{doc['seconds']:g} s per cell, closed loop (each client sends its next request when answered). "
        f"`python benchmarks/serve_load.py`, {doc['date']}.",
        "",
        "| size | clients | max-batch 8: req/s | p50 ms | p99 ms | mean batch | errors "
        "| max-batch 1: req/s | p50 ms | p99 ms | errors | batching gain |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by = {(c["max_batch"], c["size"], c["clients"]): c for c in m["cells"]}
    gain = {(g["size"], g["clients"]): g["gain"] for g in m["batching_gain"]}
    for (mb, size, n), b in by.items():
        if mb != 8:
            continue
        u = by[(1, size, n)]
        lines.append(
            f"| {size}² | {n} | {b['throughput_rps']:.2f} | {b['p50_ms']} | {b['p99_ms']} | {b['mean_batch']} "
            f"| {b['errors']} | {u['throughput_rps']:.2f} | {u['p50_ms']} | {u['p99_ms']} | {u['errors']} "
            f"| {gain.get((size, n), '-')}× |"
        )
    lines += ["", "| server | RSS at start | peak RSS | RSS after 3 identical runs |", "|---|---|---|---|"]
    for name, s in m["servers"].items():
        lines.append(
            f"| `--{name.replace('_', '-').replace('-8', ' 8').replace('-1', ' 1')}` | {s['rss_start_mb']} MiB "
            f"| {s['peak_rss_mb']} MiB | {' / '.join(map(str, s['repeated_runs_rss_mb']))} MiB |"
        )
    o, d = doc["overload"], doc["disconnects"]
    lines += [
        "",
        f"**Overload** (`--max-queue 4 --max-batch 4`: 8 requests held at most): {o['burst']} requests at once "
        f"({o['size']}²): {o['status_counts']}; every 503 answered within {o['max_503_ms']} ms, "
        f"{o['hung']} hung; the next 3 requests: {o['after_burst']}; queue depth afterwards {o['queue_depth_after']}.",
        "",
        f"**Disconnects**: {d['steady_clients']} steady clients ({d['size']}²) while {d['quitters']} others hang up "
        f"50 ms after sending: steady clients {d['status_counts']}, {d['throughput_rps']:.2f} req/s; "
        f"{d['disconnects_counted']:g} disconnects counted by the service; in flight afterwards "
        f"{d['in_flight_after']}, next request {d['request_after']}; "
        f"RSS {d['rss_before_mb']} -> {d['rss_after_mb']} MiB.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default=None, help="sketch2color bundle (default: the embedded one)")
    ap.add_argument("--seconds", type=float, default=15.0, help="duration of each cell")
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args(argv)
    from advseg_bench.environment import machine_info, software_versions

    bundle = ["--bundle", args.bundle] if args.bundle else []
    sizes = [int(s) for s in args.sizes.split(",")]
    clients = [int(n) for n in args.clients.split(",")]
    info = machine_info()
    t0 = time.monotonic()
    doc: dict[str, Any] = {
        "benchmark": "serve_load",
        "date": time.strftime("%Y-%m-%d"),
        "machine": info,
        "machine_words": f"{info['cpu_cores_logical']}-core CPU container ({info['cpu_model']}), ONNX Runtime CPU",
        "software": software_versions(),
        "bundle": args.bundle or "embedded default (advseg_sdk/data/demo-sketch2color.advseg)",
        "seconds": args.seconds,
        "client_timeout_s": CLIENT_TIMEOUT,
        "server_timeout_s": SERVER_TIMEOUT,
    }
    doc["matrix"] = matrix(bundle, sizes, clients, args.seconds)
    doc["overload"] = overload(bundle, sizes[0], burst=40)
    print("overload:", json.dumps(doc["overload"]), flush=True)
    doc["disconnects"] = disconnects(bundle, sizes[0], args.seconds)
    print("disconnects:", json.dumps(doc["disconnects"]), flush=True)
    doc["wall_s"] = round(time.monotonic() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"serve-load-{info['slug']}"
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(doc))
    print(f"wrote {stem}.json and .md ({doc['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
