"""A time-boxed GPU check: ``python -m advseg_bench.gpu_session --pack DIR --out DIR``.

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

import copy
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SCHEMA", "Profile", "gpu_profile", "dry_profile", "run_session", "main"]

SCHEMA = "advseg-gpu-session/1"


def goals_targets() -> dict[str, float]:
    """The GPU goals of the targets file (``gpu``; :data:`advseg_bench.report.TARGETS_FILE`), if any."""
    from .report import load_targets

    return {k: v for k, v in (load_targets().get("gpu") or {}).items() if isinstance(v, (int, float))}


def _met(value: float, goal: float | None, at_most: bool = False) -> bool | None:
    if goal is None:
        return None
    return value <= goal if at_most else value >= goal


@dataclass(kw_only=True)
class Profile:
    """Sizes of everything the driver runs (the GPU run and the CPU dry run differ only here)."""

    device: str
    amps: tuple[str, ...] = ("off", "bf16", "fp16")
    # smoke
    smoke_ngf: int
    smoke_size: int
    smoke_steps: int
    train_load: int
    # throughput
    tp_ngf: int
    tp_size: int
    tp_official_batch: int = 1
    tp_fast_batch: int
    tp_fast_workers: int
    tp_official_workers: int
    tp_warmup: int
    tp_seconds: float
    tp_fast_amp: str
    tp_compile: bool
    # inference
    inf_ngf: int
    inf_sizes: tuple[int, ...]
    inf_batches: tuple[int, ...]
    inf_precisions: tuple[str, ...] = ("fp32", "bf16", "fp16")
    inf_backends: tuple[str, ...] = ("torch-cudagraph", "torch-eager", "torch-compile")
    inf_policy: dict[str, Any]
    # final training
    final_ngf: int
    final_size: int
    final_batch: int
    final_min_s: float
    final_max_s: float | None = None
    replicate: int = 8
    step_min_s: dict[str, float] = field(default_factory=dict)


#: Profile field -> (GPU run, CPU dry run): the same steps, on the CPU with tiny networks and sizes.
_PROFILES: dict[str, tuple[Any, Any]] = {
    "device": ("cuda", "cpu"),
    "smoke_ngf": (64, 4),
    "smoke_size": (256, 32),
    "smoke_steps": (3, 1),
    "train_load": (286, 36),
    "tp_ngf": (64, 4),
    "tp_size": (256, 32),
    "tp_fast_batch": (32, 4),
    "tp_fast_workers": (12, 2),
    "tp_official_workers": (4, 0),
    "tp_warmup": (5, 1),
    "tp_seconds": (15.0, 1.0),
    "tp_fast_amp": ("bf16", "off"),
    "tp_compile": (True, False),
    "inf_ngf": (64, 4),
    "inf_sizes": ((256, 512), (32,)),
    "inf_batches": ((1, 8, 32, 64, 128, 256), (1, 2)),
    "inf_policy": (
        {"warmup": 5, "repeats": 30, "min_time_s": 0.3, "max_time_s": 1.5, "min_repeats": 5},
        {"warmup": 1, "repeats": 2, "min_time_s": 0.0, "max_time_s": 0.5, "min_repeats": 1},
    ),
    "final_ngf": (32, 4),
    "final_size": (256, 32),
    "final_batch": (16, 2),
    "final_min_s": (60.0, 2.0),
    "final_max_s": (None, 2.0),
    "replicate": (8, 2),
    "step_min_s": (
        {"environment": 1, "train_smoke": 20, "train_throughput": 30, "inference": 20, "final_training": 60},
        {"environment": 0.5, "train_smoke": 1, "train_throughput": 1, "inference": 1, "final_training": 2},
    ),
}


def _profile(column: int) -> Profile:
    return Profile(**{name: copy.deepcopy(values[column]) for name, values in _PROFILES.items()})


def gpu_profile() -> Profile:
    return _profile(0)


def dry_profile() -> Profile:
    """The same steps on the CPU with tiny networks and sizes."""
    return _profile(1)


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


#: (step, fraction of the budget by which it must end)
STEPS: tuple[tuple[str, float], ...] = (
    ("environment", 0.03),
    ("train_smoke", 0.24),
    ("train_throughput", 0.48),
    ("inference", 0.84),
    ("final_training", 0.97),
)


class Session:
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
        from .gpu_pack import read_pack

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
        self._home()
        self.segmenter_name, self.segmenter_kwargs, self.segmenter_note = self._pick_segmenter()

    # ------------------------------------------------------------------ set-up
    def _home(self) -> None:
        """A private ADVSEG_HOME whose photos are the pack's (the bench's inputs read them there)."""
        home = self.work / "advseg_home"
        self._prev_home = os.environ.get("ADVSEG_HOME")
        (home / "weights").mkdir(parents=True)
        (home / "photos").symlink_to((self.pack / "photos").resolve())
        for item in self.manifest.get("items", []):
            p = self.pack / item["path"]
            if item["path"].startswith("weights/") and p.suffix == ".onnx":
                (home / "weights" / p.name).symlink_to(p.resolve())
        os.environ["ADVSEG_HOME"] = str(home)

    def _pick_segmenter(self) -> tuple[str, dict[str, Any], str]:
        """The first of the pack's real segmenters that builds here; else the random ``tiny``."""
        from advseg_train.segmentation import build_segmenter

        tried = []
        for entry in self.manifest.get("segmenters", []):
            try:
                build_segmenter(entry["name"], **entry.get("kwargs", {}))
                return entry["name"], dict(entry.get("kwargs", {})), f"real segmenter {entry['name']} from the pack"
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
        """Remove the work folder and give ADVSEG_HOME back."""
        shutil.rmtree(self.work, ignore_errors=True)
        _INPUT_CACHE.clear()
        if self._prev_home is None:
            os.environ.pop("ADVSEG_HOME", None)
        else:
            os.environ["ADVSEG_HOME"] = self._prev_home

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.doc["elapsed_s"] = round(self.clock.elapsed(), 1)
        (self.out / "gpu_session.json").write_text(json.dumps(self.doc, indent=1, default=str))
        (self.out / "gpu_session.md").write_text(render_markdown(self.doc))

    # ------------------------------------------------------------------ steps
    def step_environment(self, deadline: float) -> dict[str, Any]:
        import torch

        from .probe import measure_peaks

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
            "passed": passed,
            "failed": len(combos) - passed,
        }

    def _smoke_cfg(self, kind: str, amp: str, variant: str, grad: str):
        from advseg_train.config import resolve_config

        p = self.profile
        preset = "official-pix2pix" if kind == "pix2pix" else "official-cyclegan"
        return resolve_config(
            preset=preset,
            overrides=[
                f"model.ngf={p.smoke_ngf}",
                f"model.ndf={p.smoke_ngf}",
                "data.root=unused",
                f"seg.variant={variant}",
                f"seg.grad={grad}",
                f"run.amp='{amp}'",
                f"run.device={p.device}",
                f"data.crop_size={p.smoke_size}",
                f"data.load_size={p.train_load}",
                *self.seg_overrides(),
            ],
        )

    def _smoke_one(self, kind: str, amp: str, variant: str, grad: str, seg, A, B) -> dict[str, Any]:
        import torch

        from advseg_train.models import build_model
        from advseg_train.trainer import resolve_device

        p = self.profile
        res: dict[str, Any] = {"kind": kind, "amp": amp, "variant": variant, "grad": grad}
        t0 = time.monotonic()
        try:
            cfg = self._smoke_cfg(kind, amp, variant, grad)
            device = resolve_device(p.device)
            torch.manual_seed(0)
            model = build_model(cfg, segmenter=seg, device=device)
            model.train()
            losses: dict[str, float] = {}
            finite = True
            for i in range(p.smoke_steps):
                j = i % A.shape[0]
                terms = model.train_step({"A": A[j : j + 1], "B": B[j : j + 1]})
                losses = {k: float(v) for k, v in terms.items()}
                finite = finite and all(math.isfinite(v) for v in losses.values())
            res["losses"] = {k: round(v, 5) for k, v in losses.items()}
            res["finite"] = finite
            if model.scaler.is_enabled():
                res["grad_scale"] = float(model.scaler.get_scale())
            res.update(_seg_gradient(model, A[:1], B[:1]))
            ok_grad = (
                (res["seg_grad_norm"] > 0 and res["seg_grad_finite"]) if grad == "soft" else res["seg_grad_norm"] == 0
            )
            res["gradient_property"] = "holds" if ok_grad else "VIOLATED"
            res["passed"] = bool(finite and ok_grad)
        except Exception as exc:
            res.update(passed=False, error=f"{type(exc).__name__}: {exc}"[:400])
            self.log(traceback.format_exc())
        res["seconds"] = round(time.monotonic() - t0, 2)
        self.log(
            f"   smoke {kind} {amp} {variant} {grad}: {'ok' if res['passed'] else 'FAILED'} "
            f"({res.get('error') or res.get('gradient_property')}) {res['seconds']} s"
        )
        return res

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
        from advseg_train.data import ResumableSampler, build_dataset
        from advseg_train.models import build_model
        from advseg_train.trainer import build_loader, resolve_device

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
        device = resolve_device(cfg.run.device)
        cuda = device.type == "cuda"
        if cuda:
            torch.backends.cudnn.benchmark = cfg.run.cudnn_benchmark
        dataset = build_dataset(cfg.data, paired=True, seed=0)
        sampler = ResumableSampler(dataset, shuffle=True, seed=0)
        loader, workers, _ = build_loader(cfg, dataset, sampler, device)
        torch.manual_seed(0)
        model = build_model(cfg, segmenter=self.segmenter(), device=device)
        model.train()
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
        del model, loader, it
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        self.log(f"   throughput {c}: {res['images_per_s']} images/s ({steps} steps, {spent:.1f} s)")
        return res

    # -- 3. inference
    def step_inference(self, deadline: float) -> dict[str, Any]:
        import torch

        from .models import generator_spec
        from .plan import peak_basis
        from .probe import model_cost
        from .run_torch import TorchSession

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
            why = _inference_problem(spec, size, batch, backend, precision, cuda, self.dry_run)
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
        from .models import psnr
        from .timing import TimingPolicy, measure

        p = self.profile
        size, batch = what["size"], what["batch"]
        x = _inputs(spec.kind, batch, size)
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
    from .models import ModelSpec

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


def _inputs(kind: str, batch: int, size: int) -> np.ndarray:
    """Real inputs (sketches of the pack's photos for generators, the photos for HED): up to 8
    distinct images, repeated to ``batch``."""
    from .models import generator_input, hed_input

    key = (kind, size)
    if key not in _INPUT_CACHE:
        _INPUT_CACHE[key] = hed_input(8, size) if kind == "hed" else generator_input(8, size)
    base = _INPUT_CACHE[key]
    reps = -(-batch // base.shape[0])
    return np.ascontiguousarray(np.concatenate([base] * reps)[:batch])


def inference_plan(p: Profile) -> list[tuple[str, int, int, str, str]]:
    """(model, size, batch, backend, precision) in priority order: the goals first (resnet_9blocks
    256² batch 1 latency, half-precision throughput), then U-Net and HED, then 512², then compile."""
    graph, eager, comp = "torch-cudagraph", "torch-eager", "torch-compile"
    half = [q for q in ("bf16", "fp16") if q in p.inf_precisions]
    precs = [q for q in ("fp16", "bf16", "fp32") if q in p.inf_precisions]
    s0 = p.inf_sizes[0]
    s1 = p.inf_sizes[1] if len(p.inf_sizes) > 1 else None
    b1, bmax = p.inf_batches[0], p.inf_batches[-1]
    plan: list[tuple[str, int, int, str, str]] = []
    add = plan.append
    for be in (graph, eager):
        for q in precs:
            add(("resnet_9blocks", s0, b1, be, q))
    for q in half:
        for b in p.inf_batches[1:]:
            add(("resnet_9blocks", s0, b, graph, q))
    for q in half:
        add(("resnet_9blocks", s0, bmax, eager, q))
    add(("resnet_9blocks", s0, p.inf_batches[min(3, len(p.inf_batches) - 1)], graph, "fp32"))
    for model in ("unet_256", "hed"):
        for be in (graph, eager):
            for q in precs:
                add((model, s0, b1, be, q))
        for q in half:
            for b in p.inf_batches[2::2] or p.inf_batches[1:]:
                add((model, s0, b, graph, q))
    if s1 is not None:
        for model in ("resnet_9blocks", "hed", "unet_256"):
            for q in precs:
                add((model, s1, b1, graph, q))
            for q in half:
                add((model, s1, p.inf_batches[min(3, len(p.inf_batches) - 1)], graph, q))
    for q in half[:1]:
        add(("resnet_9blocks", s0, b1, comp, q))
        add(("resnet_9blocks", s0, p.inf_batches[min(4, len(p.inf_batches) - 1)], comp, q))
    return list(dict.fromkeys(plan))


def _inference_problem(
    spec, size: int, batch: int, backend: str, precision: str, cuda: bool, dry_run: bool
) -> str | None:
    from .models import size_problem

    why = size_problem(spec, size)
    if why:
        return why
    if backend == "torch-cudagraph" and not cuda:
        return "CUDA graphs need CUDA"
    if precision == "fp16" and not cuda:
        return "fp16 autocast is for CUDA (the CPU runs bf16)"
    if backend == "torch-compile" and dry_run:
        return "torch.compile takes minutes on a CPU: not tried in the dry run"
    return None


def _seg_gradient(model, A, B) -> dict[str, Any]:
    """Norm of the gradient the weighted segmentation term alone sends to the generator(s).

    Soft maps: finite and non-zero. Hard maps: exactly none (the term does not depend on G at
    all; this holds bit-exactly whatever the kernels' determinism). Scaled like the fp16
    GradScaler so half-precision gradients do not underflow."""
    import torch

    real_A, real_B = model._to_device(A), model._to_device(B)
    out = model.forward(real_A, real_B)
    _, t = model.generator_losses(real_A, real_B, out)
    heads = model.adv_seg.heads
    seg = model.adv_seg.weighted({h: t[f"G_seg_{h}"] for h in heads})
    gens = [n for n in ("G_A", "G_B", "G") if n in model.nets]
    params = [q for n in gens for q in model.nets[n].parameters()]
    if not isinstance(seg, torch.Tensor) or not seg.requires_grad:
        return {"seg_loss": float(seg), "seg_grad_norm": 0.0, "seg_grad_finite": True}
    scale = float(model.scaler.get_scale()) if model.scaler.is_enabled() else 1.0
    grads = torch.autograd.grad(seg * scale, params, allow_unused=True)
    sq = sum(float(g.float().pow(2).sum()) for g in grads if g is not None)
    norm = math.sqrt(sq) / scale if math.isfinite(sq) else float("inf")
    return {"seg_loss": round(float(seg.detach()), 5), "seg_grad_norm": norm, "seg_grad_finite": math.isfinite(norm)}


# --------------------------------------------------------------------------- goals, report


def _best(rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], float], pred) -> dict[str, Any] | None:
    ok = [r for r in rows if r.get("status") == "ok" and pred(r)]
    return min(ok, key=key) if ok else None


def evaluate_goals(doc: dict[str, Any]) -> dict[str, Any]:
    """Each goal of the GPU kit as met / missed / not measured, with the figure behind it."""
    goals: dict[str, Any] = {}
    want = goals_targets()
    inf = (doc["steps"].get("inference") or {}).get("results") or []
    r9 = [r for r in inf if r["model"] == "resnet_9blocks" and r["size"] == 256]
    lat = _best(r9, lambda r: r["latency_ms"]["p50"], lambda r: r["batch"] == 1)
    goal = want.get("latency_ms_resnet9_256_b1")
    goals["resnet_9blocks_256_b1_latency"] = (
        {
            "goal_ms": goal,
            "best_ms": lat["latency_ms"]["p50"],
            "met": _met(lat["latency_ms"]["p50"], goal, at_most=True),
            "with": f"{lat['backend']} {lat['precision']}",
        }
        if lat
        else {"met": None, "reason": "not measured"}
    )
    thr = _best(r9, lambda r: -r["images_per_s"], lambda r: r["precision"] in ("fp16", "bf16"))
    goal = want.get("throughput_ips_half")
    goals["half_precision_throughput"] = (
        {
            "goal_ips": goal,
            "best_ips": thr["images_per_s"],
            "met": _met(thr["images_per_s"], goal),
            "with": f"{thr['backend']} {thr['precision']} batch {thr['batch']}",
        }
        if thr
        else {"met": None, "reason": "not measured"}
    )
    anchor = _best(
        r9,
        lambda r: r["latency_ms"]["p50"],
        lambda r: r["batch"] == 1 and r["backend"] == "torch-eager" and r["precision"] == "fp32",
    )
    goals["anchor_eager_fp32_b1"] = (
        {
            "a100_published_ms": want.get("anchor_a100_eager_fp32_b1_ms"),
            "measured_ms": anchor["latency_ms"]["p50"],
            "fp32_math": anchor.get("fp32_math"),
        }
        if anchor
        else {"reason": "not measured"}
    )
    tp = doc["steps"].get("train_throughput") or {}
    sp = tp.get("speedup")
    goal = want.get("train_speedup")
    goals["training_speedup"] = (
        {"goal": goal, "speedup": sp, "met": _met(sp, goal)} if sp else {"met": None, "reason": "not measured"}
    )
    smoke = doc["steps"].get("train_smoke") or {}
    if smoke.get("combos") is not None:
        goals["training_smoke"] = {
            "passed": smoke.get("passed"),
            "failed": smoke.get("failed"),
            "met": smoke.get("failed") == 0 and bool(smoke.get("combos")),
        }
    return goals


def _fmt(v: Any, nd: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def _table_head(title: str, *columns: str) -> list[str]:
    """A markdown section: a blank line, the heading, a blank line, a table's header row and rule."""
    return ["", f"## {title}", "", f"| {' | '.join(columns)} |", "|---" * len(columns) + "|"]


def render_markdown(doc: dict[str, Any]) -> str:
    env = doc.get("env") or {}
    L = [
        f"# advseg GPU check{' (dry run, CPU)' if doc.get('dry_run') else ''}",
        "",
        f"- created {doc['created']}, budget {doc['budget_s']:.0f} s, elapsed {doc.get('elapsed_s')} s",
        f"- {env.get('gpu', env.get('device', 'CPU'))}, torch {env.get('torch')}, CUDA {env.get('cuda')}, "
        f"cuDNN {env.get('cudnn')}; {env.get('nvidia_smi', '')}",
        f"- segmenter: {env.get('segmenter_note', '')}",
    ]
    L += _table_head("Steps", "step", "status", "seconds", "note")
    for name, _ in STEPS:
        s = doc["steps"].get(name)
        if s:
            L.append(f"| {name} | {s['status']} | {_fmt(s.get('seconds'), 1)} | {s.get('reason', '')} |")
    L += ["", "## Goals", ""]
    for k, g in (doc.get("goals") or {}).items():
        L.append(f"- **{k}**: " + ", ".join(f"{a}={_fmt(b)}" for a, b in g.items()))
    smoke = doc["steps"].get("train_smoke") or {}
    if smoke.get("combos"):
        L += _table_head("Training smoke", "kind", "amp", "variant", "grad", "finite", "seg grad norm", "property", "s")
        for c in smoke["combos"]:
            L.append(
                f"| {c['kind']} | {c['amp']} | {c['variant']} | {c['grad']} | {c.get('finite')} | "
                f"{_fmt(c.get('seg_grad_norm'), 6)} | {c.get('gradient_property', c.get('error', ''))} | "
                f"{c.get('seconds')} |"
            )
        for r in smoke.get("trainer_runs", []):
            L.append(f"- train() {r['kind']} amp {r.get('amp', '')}: {r['status']} {r.get('reason', '')}")
        for s in smoke.get("skipped", []):
            L.append(f"- skipped {s['kind']} {s['amp']} {s['variant']} {s['grad']}: {s['reason']}")
    tp = doc["steps"].get("train_throughput") or {}
    if tp.get("results"):
        L += _table_head(f"Training throughput: {tp.get('model')}", "config", "batch", "images/s", "note")
        for k, r in tp["results"].items():
            L.append(
                f"| {k} | {r.get('batch', '')} | {_fmt(r.get('images_per_s'), 1)} | "
                f"{r.get('reason', r.get('compiled', ''))} |"
            )
        goal = goals_targets().get("train_speedup")
        L.append(
            f"\nSpeed-up fast / official: {_fmt(tp.get('speedup'), 2)}"
            + (f" (goal ≥ {goal:.0f}×)" if goal is not None else "")
        )
    inf = doc["steps"].get("inference") or {}
    if inf.get("results"):
        L += _table_head(
            "Inference (CUDA events; PSNR vs strict fp32)",
            *("model", "size", "batch", "backend", "precision", "p50 ms", "p90 ms", "images/s", "host ms"),
            *("PSNR dB", "peak GPU MB", "TFLOP/s", "% of peak"),
        )
        for r in inf["results"]:
            if r.get("status") != "ok":
                L.append(
                    f"| {r['model']} | {r['size']} | {r['batch']} | {r['backend']} | {r['precision']} | "
                    f"error: {r.get('reason', '')} |||||||"
                )
                continue
            prec = r["precision"] + (" (TF32)" if r.get("fp32_math") else "")
            L.append(
                f"| {r['model']} | {r['size']} | {r['batch']} | {r['backend']} | {prec} | "
                f"{_fmt(r['latency_ms']['p50'])} | {_fmt(r['latency_ms']['p90'])} | "
                f"{_fmt(r['images_per_s'], 1)} | "
                f"{_fmt(r.get('host_latency_ms'))} | {_fmt((r.get('accuracy') or {}).get('psnr_db'), 1)} | "
                f"{_fmt(r.get('peak_gpu_mb'), 0)} | {_fmt(r.get('achieved_tflops'), 1)} | "
                f"{_fmt(r['peak_fraction'] * 100 if r.get('peak_fraction') else None, 1)}"
                f"{' (' + r['peak_basis'] + ')' if r.get('peak_basis') not in (None, r['precision']) else ''} |"
            )
        if inf.get("skipped"):
            L.append(
                f"\n{len(inf['skipped'])} combinations skipped, e.g. "
                + "; ".join(
                    f"{s['model']} {s['size']}² b{s['batch']} {s['backend']} {s['precision']}: {s['reason']}"
                    for s in inf["skipped"][:5]
                )
            )
    fin = doc["steps"].get("final_training") or {}
    if fin.get("steps") is not None:
        L += [
            "",
            "## Final training",
            "",
            f"{fin.get('steps')} steps at {fin.get('images_per_s')} images/s, "
            f"config {fin.get('config')}; generator {fin.get('generator', 'not kept')} "
            f"({fin.get('generator_mb')} MB); last losses {fin.get('last_losses')}",
        ]
    return "\n".join(L) + "\n"


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
    session = Session(Path(pack), Path(out), budget_s, profile, dry_run, log, set(steps) if steps else None)
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
