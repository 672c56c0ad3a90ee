"""What the paper's Table 1 reproduction runs: scales, arms, schemes, the grid of cells, and the
settings that turn a cell into ``advseg-train`` / ``advseg-eval`` commands; the paper's own FIDs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advseg_train.segmentation import is_multi_class

__all__ = [
    "ARMS",
    "SCALES",
    "SCHEMES",
    "SCHEME_LABELS",
    "PAPER_TABLE1",
    "PAPER_COUNTERPART",
    "VARIANT_ORDER",
    "Scale",
    "Arm",
    "Cell",
    "Grid",
    "Settings",
    "segmenter_problem",
]

# --------------------------------------------------------------------------- what is run


@dataclass(frozen=True)
class Scale:
    """Resolution, width and length of training, and the evaluation size, of one table."""

    name: str
    load_size: int  # short side the photos are scaled to (the SDK colours at this scale too)
    crop_size: int
    ngf: int
    ndf: int
    niter: int  # epochs at the initial learning rate
    niter_decay: int  # epochs of linear decay
    eval_size: int  # test photos are scored with their long side at most this
    max_steps: int | None = None
    max_items: int | None = None  # training photos used (None: the whole train split)
    description: str = ""

    def overrides(self) -> list[str]:
        out = [
            f"data.load_size={self.load_size}",
            f"data.crop_size={self.crop_size}",
            f"model.ngf={self.ngf}",
            f"model.ndf={self.ndf}",
            f"optim.niter={self.niter}",
            f"optim.niter_decay={self.niter_decay}",
        ]
        if self.max_steps is not None:
            out.append(f"run.max_steps={self.max_steps}")
        if self.max_items is not None:
            out.append(f"data.max_items={self.max_items}")
        return out


SCALES: dict[str, Scale] = {
    # The paper: 256², ngf/ndf 64, 200 epochs (100 + 100 decay). Needs a GPU.
    "gpu": Scale(
        "gpu",
        286,
        256,
        64,
        64,
        100,
        100,
        512,
        description="the paper's recipe: 256² crops, ngf/ndf 64, 100 + 100 epochs",
    ),
    # Fits one CPU core: 64² crops of photos scaled to a 72 px short side, a narrow network,
    # 6 epochs (3 + 3 linear decay) of the train split (1482 steps on landscapes).
    "cpu-small": Scale(
        "cpu-small", 72, 64, 16, 16, 3, 3, 256, description="64² crops (short side 72), ngf/ndf 16, 3 + 3 epochs"
    ),
    # For tests of the command path only: meaningless numbers in seconds.
    "tiny": Scale(
        "tiny",
        36,
        32,
        4,
        4,
        1,
        0,
        96,
        max_steps=2,
        max_items=4,
        description="32² crops, ngf/ndf 4, 2 steps on 4 photos (tests only)",
    ),
}


@dataclass(frozen=True)
class Arm:
    """One column of the table: the segmentation variant and how its maps reach the generator."""

    name: str
    variant: str  # seg.variant
    grad: str  # seg.grad: soft (ours, differentiable) | hard (the released code: no gradient)

    @property
    def label(self) -> str:
        return "baseline" if self.variant == "none" else f"+{self.variant} {self.grad}"


ARMS: dict[str, Arm] = {
    a.name: a
    for a in [
        Arm("baseline", "none", "soft"),
        Arm("binary-soft", "binary", "soft"),
        Arm("binary-hard", "binary", "hard"),
        Arm("multi-soft", "multi", "soft"),
        Arm("multi-hard", "multi", "hard"),
        Arm("both-soft", "both", "soft"),
        Arm("both-hard", "both", "hard"),
    ]
}

#: Training scheme -> the preset with the released code's defaults (λ_Seg 100 for Pix2Pix, 10 for
#: CycleGAN; norms, dropout, GAN loss, pools as officially).
SCHEMES: dict[str, str] = {"pix2pix": "official-pix2pix", "cycle_gan": "official-cyclegan"}
SCHEME_LABELS = {"pix2pix": "Pix2Pix (paired)", "cycle_gan": "CycleGAN (unpaired)"}

VARIANT_ORDER = ("none", "multi", "binary", "both")  # the paper's column order

#: The paper's Table 1 (FID, lower is better; 256², 200 epochs): scheme -> FIDs in VARIANT_ORDER.
_PAPER_FIDS: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "Bedroom": {"cycle_gan": (113.1, 111.7, 87.1, 93.2), "pix2pix": (100.5, 100.0, 95.1, 110.1)},
    "Illustration": {"cycle_gan": (213.6, 206.9, 204.8, 189.4), "pix2pix": (180.0, 176.9, 178.0, 175.7)},
    "Elephant": {"cycle_gan": (126.4, 103.9, 91.9, 116.9), "pix2pix": (83.5, 85.8, 78.8, 82.8)},
    "Sheep": {"cycle_gan": (209.3, 207.2, 236.1, 196.8), "pix2pix": (157.0, 159.9, 162.0, 150.5)},
}
#: The same as dataset -> scheme -> arm variant -> FID.
PAPER_TABLE1: dict[str, dict[str, dict[str, float]]] = {
    dataset: {scheme: dict(zip(VARIANT_ORDER, fids, strict=True)) for scheme, fids in row.items()}
    for dataset, row in _PAPER_FIDS.items()
}

#: Our dataset -> the paper's dataset(s) it stands in for, and how closely.
PAPER_COUNTERPART: dict[str, tuple[tuple[str, ...], str]] = {
    "interiors": (("Bedroom",), "indoor rooms, as ADE20k bedrooms"),
    "illustrations": (("Illustration",), "drawings, as the children's-book illustrations"),
    "animals": (("Elephant", "Sheep"), "animals in scenes, as the COCO elephant / sheep sets"),
    "landscapes": (
        ("Elephant", "Sheep"),
        "no direct counterpart: outdoor scenes, closest to the COCO elephant / sheep sets (grass, sky, mountains)",
    ),
}


@dataclass(frozen=True)
class Cell:
    """One training run of the grid."""

    dataset: str
    scheme: str
    arm: Arm
    seed: int

    def run_dir(self, root: Path, scale: Scale) -> Path:
        return root / scale.name / self.dataset / self.scheme / self.arm.name / f"seed{self.seed}"

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.scheme}/{self.arm.name}/seed{self.seed}"


@dataclass(frozen=True)
class Grid:
    """The cells of one table: every (dataset, scheme, arm, seed)."""

    datasets: tuple[str, ...]
    schemes: tuple[str, ...]
    arms: tuple[str, ...]
    seeds: tuple[int, ...]

    def cells(self) -> list[Cell]:
        """Seeds outermost, so one full seed finishes first."""
        return [
            Cell(d, s, ARMS[a], seed)
            for seed in self.seeds
            for d in self.datasets
            for s in self.schemes
            for a in self.arms
        ]


@dataclass
class Settings:
    """Everything besides the cell that decides a run's result (stored and checked per run)."""

    scale: Scale
    segmenter: str
    sketch: str
    lambda_seg: float | None
    extra_overrides: tuple[str, ...]
    threads: int | None
    test_limit: int | None
    device: str | None

    def train_overrides(self, cell: Cell) -> list[str]:
        data = [
            "data.mode=photos",
            f"data.dataset={cell.dataset}",
            "data.preprocess=scale_shortside_and_crop",
            f"data.sketch_method={self.sketch}",
        ]
        seg = [f"seg.variant={cell.arm.variant}", f"seg.grad={cell.arm.grad}"]
        if cell.arm.variant != "none":
            seg.append(f"seg.segmenter={self.segmenter}")
            if self.lambda_seg is not None:
                seg.append(f"seg.lambda_seg={self.lambda_seg:g}")
        run = [
            f"run.seed={cell.seed}",
            "run.progress=false",
            "run.sample_every=0",
            "run.checkpoint_every=250",
            "run.save_epoch_freq=0",
            "run.log_every=50",
        ]
        if self.threads:
            run.append(f"run.threads={self.threads}")
        if self.device:
            run.append(f"run.device={self.device}")
        return data + self.scale.overrides() + seg + run + list(self.extra_overrides)

    def train_command(self, cell: Cell, run_dir: Path) -> list[str]:
        cmd = ["advseg-train", "--preset", SCHEMES[cell.scheme]]
        for o in self.train_overrides(cell):
            cmd += ["--set", o]
        return cmd + ["--out", str(run_dir), "--resume"]

    def eval_command(self, cell: Cell, bundle: Path, out: Path) -> list[str]:
        cmd = [
            "advseg-eval",
            "colour",
            "--bundle",
            f"{cell.arm.name}={bundle}",
            "--dataset",
            cell.dataset,
            "--split",
            "test",
            "--sketch",
            self.sketch,
            "--eval-size",
            str(self.scale.eval_size),
            "--out",
            str(out),
        ]
        if self.test_limit:
            cmd += ["--limit", str(self.test_limit)]
        if self.threads:
            cmd += ["--threads", str(self.threads)]
        return cmd

    def identity(self, cell: Cell) -> dict[str, Any]:
        """What must match for an existing run directory to be reused."""
        kept = [o for o in self.train_overrides(cell) if not o.startswith("run.threads=")]
        return {"preset": SCHEMES[cell.scheme], "overrides": kept}


def segmenter_problem(segmenter: str, arms: tuple[str, ...]) -> str | None:
    """Why ``segmenter`` cannot serve ``arms`` (the multi / both arms need a multi-class map; the
    segmenter registry, :func:`advseg_train.segmentation.is_multi_class`, says which have one)."""
    if is_multi_class(segmenter) or not any(ARMS[a].variant in ("multi", "both") for a in arms):
        return None
    return f"seg.segmenter={segmenter} has no multi-class map; use deeplab-voc for the multi / both arms"
