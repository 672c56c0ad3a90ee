"""A time-boxed GPU check: ``python -m scripts.gpu.session --pack DIR --out DIR``.

``scripts/gpu_session.sh`` installs advseg over the machine's torch and runs this driver, which
spends a time budget on four steps, each skipped with the reason when the budget is spent:

1. ``train_smoke``: every scheme × segmentation variant × gradient mode × precision for a few steps
   on the pack's real images (finite losses; *soft* sends a gradient to the generator, *hard* none),
   then two short runs through the real trainer.
2. ``train_throughput``: training images/s, the official configuration against a fast one.
3. ``inference``: latency and throughput (CUDA events) of resnet_9blocks, unet_256 and HED across
   sizes, batches, backends and precisions, with PSNR against strict fp32.
4. ``final_training``: with the time left, a small Pix2Pix through HED sketches.

Results are written after every step, so a run cut short still returns what it measured; the
goals come from the targets file. ``--dry-run`` runs the same code on the CPU with tiny sizes.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from advseg_sdk.files import atomic_write_text

from .profile import SCHEMA, STEPS, Profile, dry_profile, gpu_profile, inference_plan, inference_problem
from .report import evaluate_goals, render_markdown
from .smoke import SmokeCase, smoke_one

__all__ = [
    "SCHEMA",
    "STEPS",
    "Profile",
    "gpu_profile",
    "dry_profile",
    "inference_plan",
    "evaluate_goals",
    "render_markdown",
    "run_session",
    "main",
]


# --------------------------------------------------------------------------- the driver


class StepSkipped(Exception):
    """A step found, once started, that it cannot do anything useful in the time left."""


class Clock:
    """The run's budget: each step runs until a fixed fraction of it has passed (time a step
    leaves unused goes to the next one)."""

    def __init__(self, budget_s: float) -> None:
        self.t0 = time.monotonic()
        self.budget = float(budget_s)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        return self.budget - self.elapsed()

    def until(self, fraction: float) -> float:
        """Monotonic time at which ``fraction`` of the budget is spent."""
        return self.t0 + fraction * self.budget


class GpuSession:
    def __init__(
        self,
        pack: Path,
        out: Path,
        budget_s: float,
        profile: Profile,
        dry_run: bool,
        log: Callable[[str], None] = print,
        only: set[str] | None = None,
    ) -> None:
        from .pack import read_pack

        self.pack, self.out, self.profile, self.dry_run, self.log = pack, out, profile, dry_run, log
        self.only = only
        self.manifest = read_pack(pack)
        self.clock = Clock(budget_s)
        self.work = Path(tempfile.mkdtemp(prefix="advseg-gpu-session-"))
        self.doc: dict[str, Any] = {
            "schema": SCHEMA,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": sys.argv,
            "dry_run": dry_run,
            "budget_s": budget_s,
            "profile": asdict(profile),
            "pack": {k: self.manifest.get(k) for k in ("created", "size_mb", "photos", "segmenters", "skipped")},
            "steps": {},
            "goals": {},
        }
        #: the pack's real photos: the inference inputs are made from them (not from ADVSEG_HOME)
        self.photo_paths = [self.pack / "photos" / name for name in self.manifest["photos"]]
        self.segmenter_name, self.segmenter_kwargs, self.segmenter_note = self._pick_segmenter()

    # ------------------------------------------------------------------ set-up
    def _pack_weights(self, name: str) -> dict[str, Any]:
        """Keyword arguments pointing a segmenter at weights the pack carries (ISNet's ONNX file):
        the pack is read in place, ADVSEG_HOME is left alone."""
        if name != "isnet":
            return {}
        onnx = [i["path"] for i in self.manifest.get("items", []) if i["path"].startswith("weights/")]
        onnx = [q for q in onnx if q.endswith(".onnx")]
        return {"onnx_path": str((self.pack / onnx[0]).resolve())} if onnx else {}

    def _pick_segmenter(self) -> tuple[str, dict[str, Any], str]:
        """The first of the pack's real segmenters that builds here; else the random ``tiny``."""
        from advseg_train.segmentation import build_segmenter

        tried = []
        for entry in self.manifest.get("segmenters", []):
            kwargs = {**entry.get("kwargs", {}), **self._pack_weights(entry["name"])}
            try:
                build_segmenter(entry["name"], **kwargs)
                return entry["name"], kwargs, f"real segmenter {entry['name']} from the pack"
            except Exception as exc:
                tried.append(f"{entry['name']}: {type(exc).__name__}: {exc}")
        note = "no real segmenter could be built (" + ("; ".join(tried) or "none in the pack") + "): random 'tiny'"
        return "tiny", {"width": 8}, note

    def segmenter(self):
        from advseg_train.segmentation import build_segmenter

        return build_segmenter(self.segmenter_name, **self.segmenter_kwargs)

    def seg_overrides(self) -> list[str]:
        kw = ", ".join(f"{k}: {v}" for k, v in self.segmenter_kwargs.items())
        return [f"seg.segmenter={self.segmenter_name}", f"seg.segmenter_kwargs={{{kw}}}"]

    def datasets(self, load: int) -> dict[str, Path]:
        """Aligned (A/B) and unaligned (trainA/trainB) folders of the pack's sketch/photo pairs,
        each pair linked ``replicate`` times so a batch of the fast configuration fills."""
        root = self.work / f"data{load}"
        if root.is_dir():
            return {"aligned": root / "aligned", "unaligned": root / "unaligned"}
        for d in ("aligned/A", "aligned/B", "unaligned/trainA", "unaligned/trainB"):
            (root / d).mkdir(parents=True)
        for name in self.manifest["photos"]:
            photo = self.pack / "photos" / name
            sketch = self.pack / "sketches" / f"{Path(name).stem}.png"
            for k in range(self.profile.replicate):
                stem = f"{Path(name).stem}_{k}"
                for src, dests in (
                    (sketch, ("aligned/A", "unaligned/trainA")),
                    (photo, ("aligned/B", "unaligned/trainB")),
                ):
                    for d in dests:
                        _link(src, root / d / f"{stem}{src.suffix}")
        return {"aligned": root / "aligned", "unaligned": root / "unaligned"}

    def pairs(self, size: int, n: int):
        """``n`` real (sketch, photo) pairs as [-1, 1] tensors at ``size``² (centre crop)."""
        import torch
        from PIL import Image

        a: list[Any] = []
        b: list[Any] = []
        for name in self.manifest["photos"][:n]:
            for path, lst in ((self.pack / "sketches" / f"{Path(name).stem}.png", a), (self.pack / "photos" / name, b)):
                img = Image.open(path).convert("RGB")
                s = min(img.size)
                left, top = (img.size[0] - s) // 2, (img.size[1] - s) // 2
                img = img.crop((left, top, left + s, top + s)).resize((size, size), Image.Resampling.BICUBIC)
                lst.append(torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 127.5 - 1)
        return torch.stack(a), torch.stack(b)

    # ------------------------------------------------------------------ running
    def run(self) -> dict[str, Any]:
        steps = {
            "environment": self.step_environment,
            "train_smoke": self.step_train_smoke,
            "train_throughput": self.step_train_throughput,
            "inference": self.step_inference,
            "final_training": self.step_final_training,
        }
        starts = [0.0] + [f for _, f in STEPS[:-1]]
        shares = {n: f - start for (n, f), start in zip(STEPS, starts)}
        active = [n for n, _ in STEPS if self.only is None or n in self.only or n == "environment"]
        total = sum(shares[n] for n in active)
        end = 0.0
        for name, _ in STEPS:
            entry: dict[str, Any]
            if name not in active:
                self.doc["steps"][name] = {"status": "skipped", "reason": "not among --steps"}
                continue
            # the chosen steps share the budget in the proportions of a full run
            end += shares[name] / total * STEPS[-1][1]
            deadline = self.clock.until(end)
            need = self.profile.step_min_s.get(name, 1.0)
            have = deadline - time.monotonic()
            if have < need:
                entry = {
                    "status": "skipped",
                    "reason": f"budget spent: {max(have, 0):.0f} s left for this step "
                    f"(of {self.clock.left():.0f} s in all), it needs at least {need:.0f} s",
                }
            else:
                self.log(f"== {name} (until {deadline - self.clock.t0:.0f} s of {self.clock.budget:.0f} s)")
                t0 = time.monotonic()
                try:
                    entry = {"status": "ok", **steps[name](deadline)}
                except StepSkipped as exc:
                    entry = {"status": "skipped", "reason": str(exc)}
                except Exception as exc:
                    self.log(traceback.format_exc())
                    entry = {
                        "status": "error",
                        "reason": f"{type(exc).__name__}: {exc}"[:500],
                        "traceback": traceback.format_exc()[-3000:],
                    }
                entry["seconds"] = round(time.monotonic() - t0, 2)
            self.doc["steps"][name] = entry
            self.log(f"   {name}: {entry['status']}" + (f" ({entry.get('reason')})" if entry.get("reason") else ""))
            self.write()
        self.doc["goals"] = evaluate_goals(self.doc)
        self.doc["elapsed_s"] = round(self.clock.elapsed(), 1)
        self.write()
        return self.doc

    def close(self) -> None:
        """Remove the work folder and the cached inputs."""
        shutil.rmtree(self.work, ignore_errors=True)
        _INPUT_CACHE.clear()

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.doc["elapsed_s"] = round(self.clock.elapsed(), 1)
        atomic_write_text(self.out / "gpu_session.json", json.dumps(self.doc, indent=1, default=str))
        atomic_write_text(self.out / "gpu_session.md", render_markdown(self.doc))

    # ------------------------------------------------------------------ steps
    def step_environment(self, deadline: float) -> dict[str, Any]:
        import torch

        from advseg_bench.probe import measure_peaks

        env: dict[str, Any] = {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cuda_available": torch.cuda.is_available(),
            "cpus": os.cpu_count(),
            "shm_free_mb": shm_free_mb(),
            "segmenter": self.segmenter_name,
            "segmenter_note": self.segmenter_note,
        }
        if self.profile.device == "cuda":
            props = torch.cuda.get_device_properties(0)
            env.update(
                gpu=props.name,
                capability=f"{props.major}.{props.minor}",
                gpu_memory_gb=round(props.total_memory / 2**30, 1),
                multiprocessors=props.multi_processor_count,
                cudnn=torch.backends.cudnn.version(),
                tf32_conv=torch.backends.cudnn.allow_tf32,
                tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
            )
        smi = shutil.which("nvidia-smi")
        if smi:
            q = subprocess.run(
                [smi, "--query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            env["nvidia_smi"] = q.stdout.strip()
        if self.profile.device == "cuda":  # strict fp32, TF32, bf16, fp16, int8 matrix rates
            env["peaks"] = measure_peaks(["cuda"], threads=torch.get_num_threads(), seconds=0.25)
        else:
            env["peaks"] = {"note": "not measured in the dry run (advseg-bench run measures CPU peaks)"}
        self.doc["env"] = env
        return {"env": env}

    # -- 1. smoke
    def step_train_smoke(self, deadline: float) -> dict[str, Any]:
        import torch

        p = self.profile
        seg = self.segmenter()
        A, B = self.pairs(p.smoke_size, 4)
        combos, skipped = [], []
        for kind in ("pix2pix", "cycle_gan"):
            for amp in p.amps:
                for variant in ("binary", "multi"):
                    for grad in ("soft", "hard"):
                        what = {"kind": kind, "amp": amp, "variant": variant, "grad": grad}
                        if amp != "off" and p.device != "cuda":
                            skipped.append({**what, "reason": f"run.amp={amp} needs CUDA"})
                        elif time.monotonic() > deadline:
                            skipped.append({**what, "reason": "step budget spent"})
                        else:
                            combos.append(self._smoke_one(kind, amp, variant, grad, seg, A, B))
        runs = []
        for kind, amp, extra in (
            ("cycle_gan", "fp16", ["seg.variant=binary", "seg.grad=soft"]),
            ("pix2pix", "bf16", ["seg.variant=multi", "seg.grad=hard", "run.channels_last=true"]),
        ):
            amp = amp if p.device == "cuda" else "off"
            if time.monotonic() > deadline:
                runs.append({"kind": kind, "amp": amp, "status": "skipped", "reason": "step budget spent"})
                continue
            runs.append(self._trainer_run(kind, amp, extra))
        passed = sum(c["passed"] for c in combos)
        if p.device == "cuda":
            torch.cuda.empty_cache()
        return {
            "segmenter": self.segmenter_name,
            "combos": combos,
            "skipped": skipped,
            "trainer_runs": runs,
            "gpu_tests": self._gpu_tests(deadline),
            "passed": passed,
            "failed": len(combos) - passed,
        }

    def _smoke_one(self, kind: str, amp: str, variant: str, grad: str, seg, A, B) -> dict[str, Any]:
        p = self.profile
        case = SmokeCase(kind, amp, variant, grad, p.smoke_ngf, p.smoke_size, p.train_load, p.device, p.smoke_steps)
        return smoke_one(case, seg, A, B, self.seg_overrides(), self.log)

    def _gpu_tests(self, deadline: float) -> dict[str, Any]:
        """The smoke matrix as the test suite has it (``pytest -m gpu tests/test_gpu_smoke.py``),
        on the GPU only (without CUDA those tests skip)."""
        repo = Path(__file__).resolve().parents[2]
        left = deadline - time.monotonic()
        if self.profile.device != "cuda":
            return {"status": "skipped", "reason": "the gpu-marked tests need CUDA"}
        if left < 30:
            return {"status": "skipped", "reason": f"step budget spent ({left:.0f} s left)"}
        import importlib.util

        if importlib.util.find_spec("pytest") is None:
            return {"status": "skipped", "reason": "pytest is not installed on this machine"}
        cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests/test_gpu_smoke.py"]
        try:
            proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=left - 5)
        except subprocess.TimeoutExpired:
            return {"status": "error", "reason": f"pytest ran past the step's {left:.0f} s"}
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or [""]
        self.log(f"   gpu tests: {tail[0]}")
        return {"status": "ok" if proc.returncode == 0 else "failed", "returncode": proc.returncode, "summary": tail[0]}

    def _trainer_run(self, kind: str, amp: str, extra: list[str]) -> dict[str, Any]:
        """A few steps through ``advseg_train.trainer.train`` itself, with run.device=auto."""
        from advseg_train.config import resolve_config
        from advseg_train.trainer import train

        p = self.profile
        data = self.datasets(p.train_load)
        preset = "official-pix2pix" if kind == "pix2pix" else "official-cyclegan"
        mode = "aligned" if kind == "pix2pix" else "unaligned"
        out = self.work / f"run-{kind}-{amp}"
        t0 = time.monotonic()
        try:
            cfg = resolve_config(
                preset=preset,
                overrides=[
                    f"model.ngf={p.smoke_ngf}",
                    f"model.ndf={p.smoke_ngf}",
                    f"data.mode={mode}",
                    f"data.root={data[mode]}",
                    f"data.crop_size={p.smoke_size}",
                    f"data.load_size={p.train_load}",
                    f"run.amp='{amp}'",
                    "run.device=auto",
                    f"run.out={out}",
                    "run.max_steps=4",
                    "run.log_every=1",
                    "run.sample_every=0",
                    "run.checkpoint_every=2",
                    "run.progress=false",
                    "optim.niter=1",
                    "optim.niter_decay=0",
                    *self.seg_overrides(),
                    *extra,
                ],
            )
            r = train(cfg)
            ok = r.global_step == 4 and r.generator is not None and r.generator.is_file()
            last = {k: round(float(v), 5) for k, v in (r.history[-1] if r.history else {}).items()}
            finite = all(math.isfinite(v) for v in last.values())
            return {
                "kind": kind,
                "amp": amp,
                "overrides": extra,
                "status": "ok" if ok and finite else "failed",
                "steps": r.global_step,
                "last_losses": last,
                "seconds": round(time.monotonic() - t0, 2),
            }
        except Exception as exc:
            self.log(traceback.format_exc())
            return {
                "kind": kind,
                "amp": amp,
                "status": "error",
                "reason": f"{type(exc).__name__}: {exc}"[:400],
                "seconds": round(time.monotonic() - t0, 2),
            }

    # -- 2. training throughput
    def step_train_throughput(self, deadline: float) -> dict[str, Any]:
        p = self.profile
        cuda = p.device == "cuda"
        configs = {
            "official": {
                "batch": p.tp_official_batch,
                "amp": "off",
                "channels_last": False,
                "compile": False,
                "workers": p.tp_official_workers,
                "cudnn_benchmark": True,
            },
            "fast": {
                "batch": p.tp_fast_batch,
                "amp": p.tp_fast_amp if cuda else "off",
                "channels_last": cuda,
                "compile": False,
                "workers": p.tp_fast_workers,
                "cudnn_benchmark": True,
            },
        }
        out: dict[str, Any] = {
            "model": f"pix2pix resnet_9blocks ngf{p.tp_ngf} {p.tp_size}², seg binary soft ({self.segmenter_name})",
            "configs": configs,
            "results": {},
        }
        names = ("official", "fast", "fast_compiled")
        n = len(names)
        for i, name in enumerate(names):
            left = deadline - time.monotonic()
            if name == "fast_compiled":
                if not p.tp_compile:
                    out["results"][name] = {"status": "skipped", "reason": "torch.compile is not tried in the dry run"}
                    continue
                if left < 120:
                    out["results"][name] = {
                        "status": "skipped",
                        "reason": f"{left:.0f} s left: compiling the "
                        "generator's forward and backward can take a minute or more",
                    }
                    continue
                configs[name] = {**configs["fast"], "compile": True}
            seconds = min(p.tp_seconds, max(left / (n - i) - 5, 1.0))
            try:
                out["results"][name] = self._throughput(configs[name], seconds, deadline)
            except Exception as exc:  # one configuration failing keeps the others' figures
                self.log(traceback.format_exc())
                out["results"][name] = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"[:500]}
                if cuda:
                    import torch

                    torch.cuda.empty_cache()
        off = out["results"].get("official", {}).get("images_per_s")
        best = max((r.get("images_per_s") or 0 for k, r in out["results"].items() if k != "official"), default=0)
        out["speedup"] = round(best / off, 2) if off and best else None
        return out

    def _throughput(self, c: dict[str, Any], seconds: float, deadline: float) -> dict[str, Any]:
        import torch

        p = self.profile
        c = {**c, "workers": _fit_workers(c["workers"], c["batch"], p.tp_size)}

        from advseg_train.config import resolve_config
        from advseg_train.trainer import setup

        data = self.datasets(p.train_load)
        cfg = resolve_config(
            preset="official-pix2pix",
            overrides=[
                f"model.ngf={p.tp_ngf}",
                f"model.ndf={p.tp_ngf}",
                "data.mode=aligned",
                f"data.root={data['aligned']}",
                f"data.crop_size={p.tp_size}",
                f"data.load_size={p.train_load}",
                "seg.variant=binary",
                "seg.grad=soft",
                *self.seg_overrides(),
                f"run.batch_size={c['batch']}",
                f"run.amp='{c['amp']}'",
                f"run.channels_last={str(c['channels_last']).lower()}",
                f"run.compile={str(c['compile']).lower()}",
                f"data.num_workers={c['workers']}",
                f"run.cudnn_benchmark={str(c['cudnn_benchmark']).lower()}",
                f"run.device={p.device}",
            ],
        )
        # the training loop's own set-up (dataset, sampler, loader, seeded model; cudnn.benchmark)
        ts = setup(cfg)
        sampler, loader, workers, model = ts.sampler, ts.loader, ts.workers, ts.model
        cuda = ts.device.type == "cuda"
        model.wrap(compile=cfg.run.compile)
        sync = torch.cuda.synchronize if cuda else (lambda: None)

        def batches(source: Any) -> Any:
            epoch = 0
            while True:
                sampler.set_epoch(epoch)
                yield from source
                epoch += 1

        it = batches(loader)
        t0 = time.monotonic()
        for _ in range(p.tp_warmup):
            model.train_step(next(it))
        sync()
        warm_s = time.monotonic() - t0
        steps, start = 0, time.monotonic()
        while True:
            terms = model.train_step(next(it))
            steps += 1
            if steps % 5 == 0 or steps < 5:
                sync()
                spent = time.monotonic() - start
                if spent >= seconds or time.monotonic() > deadline:
                    break
        sync()
        spent = time.monotonic() - start
        res = {
            "status": "ok",
            "batch": c["batch"],
            "steps": steps,
            "seconds": round(spent, 2),
            "images_per_s": round(steps * c["batch"] / spent, 2),
            "warmup_steps": p.tp_warmup,
            "warmup_s": round(warm_s, 2),
            "loader_workers": workers,
            "finite": all(math.isfinite(float(v)) for v in terms.values()),
        }
        if cfg.run.compile:
            res["compiled"] = model.compile_summary
        if cuda:
            res["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
        del model, loader, it, ts
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        self.log(f"   throughput {c}: {res['images_per_s']} images/s ({steps} steps, {spent:.1f} s)")
        return res

    # -- 3. inference
    def step_inference(self, deadline: float) -> dict[str, Any]:
        import torch

        from advseg_bench.models import generator_spec
        from advseg_bench.plan import peak_basis
        from advseg_bench.probe import model_cost
        from advseg_bench.run_torch import TorchSession

        p = self.profile
        cuda = p.device == "cuda"
        specs = {
            "resnet_9blocks": generator_spec("resnet_9blocks", p.inf_ngf),
            "unet_256": generator_spec("unet_256", p.inf_ngf),
            "hed": _hed_spec(self.pack, self.manifest.get("hed"), self.work),
        }
        for name in ("resnet_9blocks", "unet_256"):
            _random_checkpoint(specs[name], self.work)
        results, skipped = [], []
        costs: dict[tuple[str, int], dict[str, Any]] = {}
        sessions: dict[tuple[str, str, str], Any] = {}
        accuracy_done: set[tuple[str, int, str, str]] = set()
        for model, size, batch, backend, precision in inference_plan(p):
            what = {"model": model, "size": size, "batch": batch, "backend": backend, "precision": precision}
            spec = specs[model]
            why = inference_problem(spec, size, batch, backend, precision, cuda, self.dry_run)
            if why is None and time.monotonic() > deadline - (45 if backend == "torch-compile" else 1):
                why = "step budget spent" + (" (compiling needs ~45 s)" if backend == "torch-compile" else "")
            if why is None and cuda:
                key = (model, size)
                if key not in costs:
                    costs[key] = model_cost(spec, [size])[size]
                need = costs[key]["activation_peak_mb"] * batch * (0.5 if precision != "fp32" else 1.0) * 2
                free = torch.cuda.mem_get_info()[0] / 2**20
                if need > 0.6 * free:
                    why = f"estimated {need / 1024:.0f} GB of activations > 60% of {free / 1024:.0f} GB free"
            if why is not None:
                skipped.append({**what, "reason": why})
                continue
            try:
                skey = (model, backend, precision)
                if skey not in sessions:
                    for k in [k for k in sessions if k[0] != model]:  # one model's sessions at a time
                        sessions.pop(k).close()
                    sessions[skey] = TorchSession(spec, backend, precision, p.device, threads=torch.get_num_threads())
                r = self._infer_one(sessions[skey], spec, what, accuracy_done)
                if (model, size) in costs and r.get("status") == "ok":
                    g = costs[(model, size)]["gflops"]
                    r["gflops_per_image"] = round(g, 2)
                    r["achieved_tflops"] = round(g * r["images_per_s"] / 1e3, 2)
                    basis = peak_basis(p.device, backend, precision)  # fp32 convolutions run in TF32
                    peaks = (self.doc.get("env") or {}).get("peaks", {})
                    peak = (peaks.get(p.device, {}).get(basis) or {}).get("gflops")
                    if peak:
                        r["peak_fraction"] = round(g * r["images_per_s"] / peak, 4)
                        r["peak_basis"] = basis
                results.append(r)
            except Exception as exc:
                self.log(traceback.format_exc())
                results.append({**what, "status": "error", "reason": f"{type(exc).__name__}: {exc}"[:400]})
                if cuda:
                    torch.cuda.empty_cache()
        for s in sessions.values():
            s.close()
        return {
            "results": results,
            "skipped": skipped,
            "policy": p.inf_policy,
            "models": {k: {"source": v.source, "notes": v.notes} for k, v in specs.items()},
            "reference": "torch eager fp32 with TF32 off (strict), first image of the batch",
        }

    def _infer_one(self, sess, spec, what: dict[str, Any], accuracy_done: set) -> dict[str, Any]:
        from advseg_bench.models import psnr
        from advseg_bench.timing import TimingPolicy, measure

        p = self.profile
        size, batch = what["size"], what["batch"]
        x = _inputs(spec.kind, batch, size, self.photo_paths)
        bound = sess.bind(x)
        timing = measure(
            bound["call"], TimingPolicy(**p.inf_policy), bound.get("timer"), after_warmup=sess.reset_gpu_peak
        )
        stats = timing.stats_ms()
        r = {
            **what,
            "status": "ok",
            "latency_ms": {k: round(v, 4) for k, v in stats.items()},
            "images_per_s": round(batch / (stats["p50"] / 1e3), 1),
            "iterations": len(timing.times_s),
            "timer": "cuda_event" if bound.get("timer") else "perf_counter",
            "first_call_s": round(timing.first_call_s or 0.0, 3),
            "peak_gpu_mb": sess.gpu_peak_mb(),
            "fp32_math": sess.details.get("fp32_math"),
        }
        if bound.get("host_call"):
            host = measure(
                bound["host_call"], TimingPolicy(warmup=1, repeats=5, min_time_s=0.0, max_time_s=1.0, min_repeats=2)
            )
            r["host_latency_ms"] = round(host.stats_ms()["p50"], 4)
        akey = (spec.name, size, what["backend"], what["precision"])
        if akey not in accuracy_done:
            accuracy_done.add(akey)
            ref, label = sess.reference(x[:1])
            if ref is not None:
                sess.bind(x[:1])["call"]()
                r["accuracy"] = {**psnr(ref, sess.output(), spec.out_range), "reference": label}
        self.log(
            f"   {what['model']} {size}² b{batch} {what['backend']} {what['precision']}: p50 "
            f"{stats['p50']:.3f} ms, {r['images_per_s']} images/s"
            + (f", PSNR {r['accuracy']['psnr_db']} dB" if r.get("accuracy") else "")
        )
        return r

    # -- 4. final training
    def step_final_training(self, deadline: float) -> dict[str, Any]:
        import torch

        from advseg_train.config import resolve_config
        from advseg_train.trainer import train

        p = self.profile
        cuda = p.device == "cuda"
        data = self.datasets(p.train_load)
        seconds = deadline - time.monotonic() - (25 if cuda else 1)
        if p.final_max_s is not None:
            seconds = min(seconds, p.final_max_s)
        if seconds < p.final_min_s * 0.5:
            raise StepSkipped(f"{seconds:.0f} s of training time left, fewer than {p.final_min_s * 0.5:.0f} s")
        out = self.work / "final"
        cfg = resolve_config(
            preset="official-pix2pix",
            overrides=[
                "model.netG=resnet_9blocks",
                f"model.ngf={p.final_ngf}",
                f"model.ndf={p.final_ngf}",
                "data.mode=aligned",
                f"data.root={data['aligned']}",
                f"data.crop_size={p.final_size}",
                f"data.load_size={p.train_load}",
                "seg.variant=binary",
                "seg.grad=soft",
                *self.seg_overrides(),
                f"run.batch_size={p.final_batch}",
                f"run.amp='{'bf16' if cuda else 'off'}'",
                f"run.channels_last={'true' if cuda else 'false'}",
                f"run.out={out}",
                f"run.max_seconds={seconds:.1f}",
                f"data.num_workers={_fit_workers(8, p.final_batch, p.final_size) if cuda else 0}",
                "run.log_every=20",
                "run.sample_every=0",
                "run.checkpoint_every=0",
                "run.progress=false",
                "optim.niter=100000",
                "optim.niter_decay=0",
                "optim.lr_policy=constant",
                "run.num_samples=4",
            ],
        )
        r = train(cfg)
        res: dict[str, Any] = {
            "steps": r.global_step,
            "images_per_s": round(r.images_per_s, 1),
            "segmenter": self.segmenter_name,
            "config": {
                "preset": "official-pix2pix",
                "netG": "resnet_9blocks",
                "ngf": p.final_ngf,
                "size": p.final_size,
                "batch": p.final_batch,
                "amp": cfg.run.amp,
                "seg": "binary soft",
                "photos": len(self.manifest["photos"]),
            },
            "last_losses": {k: round(float(v), 4) for k, v in (r.history[-1] if r.history else {}).items()},
        }
        gen = r.generator
        if gen is not None and gen.is_file():
            mb = gen.stat().st_size / 2**20
            res["generator_mb"] = round(mb, 2)
            if mb <= 16:
                shutil.copy2(gen, self.out / "final_generator.safetensors")
                res["generator"] = "final_generator.safetensors"
        grids = sorted((out / "samples").glob("*.png"))
        if grids:
            shutil.copy2(grids[-1], self.out / "final_samples.png")
            res["samples"] = "final_samples.png"
        if cuda:
            torch.cuda.empty_cache()
        return res


# --------------------------------------------------------------------------- helpers


def shm_free_mb() -> float | None:
    """Free space of /dev/shm, where loader workers hand batches over (small in some sandboxes)."""
    try:
        return shutil.disk_usage("/dev/shm").free / 2**20
    except OSError:
        return None


def _fit_workers(workers: int, batch: int, size: int, prefetch: int = 2) -> int:
    """Loader workers whose batches in flight (``workers x prefetch``, a sketch and a photo each)
    fill at most half of /dev/shm."""
    free = shm_free_mb()
    if not workers or free is None:
        return workers
    batch_mb = batch * 2 * 3 * size * size * 4 / 2**20
    return max(1, min(workers, int(0.5 * free / (prefetch * batch_mb))))


def _link(src: Path, dest: Path) -> None:
    try:
        dest.symlink_to(src.resolve())
    except OSError:
        shutil.copy2(src, dest)


def _random_checkpoint(spec, work: Path) -> None:
    """Random-init weights (fixed seed) for a generator spec, saved once under ``work``."""
    import torch

    from advseg_train.networks import GeneratorConfig, build_generator, save_generator

    path = work / f"{spec.name}.safetensors"
    if not path.is_file():
        torch.manual_seed(0)
        save_generator(build_generator(GeneratorConfig.from_dict(spec.config)).eval(), path)
    spec.checkpoint = str(path)


def _hed_spec(pack: Path, hed_file: str | None, work: Path):
    """HED with the pack's real weights, or randomly initialised ones (timing is the same; the
    PSNR is then of a random network) where the pack had no room for them."""
    from advseg_bench.models import ModelSpec

    if hed_file:
        return ModelSpec(
            name="hed",
            kind="hed",
            arch="hed",
            checkpoint=str(pack / hed_file),
            source="HED, BSDS500 weights (fp16 storage in the pack)",
        )
    import torch
    from safetensors.torch import save_file

    from advseg_train.hed import HED

    path = work / "hed-random.safetensors"
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in HED().state_dict().items()}, str(path))
    return ModelSpec(
        name="hed",
        kind="hed",
        arch="hed",
        checkpoint=str(path),
        source="HED architecture with RANDOM weights (the pack had no room for the real ones)",
        notes=["random weights: accuracy figures are of a random network"],
    )


_INPUT_CACHE: dict[tuple[str, int], np.ndarray] = {}


def _inputs(kind: str, batch: int, size: int, photos: list[Path]) -> np.ndarray:
    """Real inputs (sketches of the pack's ``photos`` for generators, the photos for HED): up to 8
    distinct images, repeated to ``batch``."""
    from advseg_bench.models import generator_input, hed_input

    key = (kind, size)
    if key not in _INPUT_CACHE:
        _INPUT_CACHE[key] = hed_input(8, size, photos) if kind == "hed" else generator_input(8, size, photos)
    base = _INPUT_CACHE[key]
    reps = -(-batch // base.shape[0])
    return np.ascontiguousarray(np.concatenate([base] * reps)[:batch])


# --------------------------------------------------------------------------- entry point


def run_session(
    pack: str | Path,
    out: str | Path,
    budget_s: float,
    dry_run: bool = False,
    log: Callable[[str], None] = print,
    steps: list[str] | None = None,
) -> dict[str, Any]:
    """Run every step (or ``steps``; the environment always) within ``budget_s`` seconds;
    returns the result document (also written)."""
    import torch

    profile = dry_profile() if dry_run else gpu_profile()
    if not dry_run and not torch.cuda.is_available():
        raise SystemExit("gpu-session: torch sees no CUDA device (use --dry-run on a CPU)")
    if dry_run:
        torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    names = [n for n, _ in STEPS]
    unknown = sorted(set(steps or []) - set(names))
    if unknown:
        raise SystemExit(f"gpu-session: unknown step(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    session = GpuSession(Path(pack), Path(out), budget_s, profile, dry_run, log, set(steps) if steps else None)
    try:
        return session.run()
    finally:
        session.close()


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pack", default="gpu-pack", help="asset pack folder (scripts/make_gpu_pack.py)")
    ap.add_argument("--out", default=os.environ.get("OUT", "out/gpu-session"))
    ap.add_argument("--budget-s", type=float, default=480.0)
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU, the same code path")
    ap.add_argument(
        "--steps",
        default=None,
        help="comma-separated subset of the steps (e.g. for a rerun): " + ",".join(n for n, _ in STEPS),
    )
    a = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, flush=True)

    doc = run_session(
        a.pack, a.out, a.budget_s, a.dry_run, log, [s for s in a.steps.split(",") if s] if a.steps else None
    )
    bad = [n for n, st in doc["steps"].items() if st["status"] == "error"]
    log(render_markdown(doc))
    log(f"gpu-session: {len(doc['steps'])} steps, errors in: {', '.join(bad) or 'none'}; results in {a.out}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
