"""Where the official-code and HED reference fixtures are found.

A compact subset travels with the repository (``tests/fixtures/<kind>``, each folder with its
``SHA256SUMS``), so a fresh clone tests itself. A fuller developer set beside the repository
(``../shared/fixtures/<kind>``, or ``$ADVSEG_SHARED/fixtures/<kind>``) only adds files: a name the
repository holds is always read from the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "tests" / "fixtures"


def extra_fixture_roots() -> list[Path]:
    """Optional fuller sets: ``$ADVSEG_SHARED/fixtures``, ``../shared/fixtures``, ``./shared/fixtures``."""
    env = os.environ.get("ADVSEG_SHARED")
    bases = ([Path(env)] if env else []) + [REPO.parent / "shared", REPO / "shared"]
    return [b / "fixtures" for b in bases if (b / "fixtures").is_dir()]


class FixtureSet:
    """The union of one kind of fixture (``official`` or ``hed``) over the committed subset and
    any extra set; ``fs / name`` and ``fs.glob(pattern)`` work as on a single folder."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.dirs = [COMMITTED / kind] + [r / kind for r in extra_fixture_roots() if (r / kind).is_dir()]

    def __truediv__(self, name: str) -> Path:
        for d in self.dirs:
            if (d / name).exists():
                return d / name
        return self.dirs[0] / name  # missing: the caller's open() names the committed path

    def glob(self, pattern: str) -> list[Path]:
        seen: dict[str, Path] = {}
        for d in self.dirs:
            for p in sorted(d.glob(pattern)):
                seen.setdefault(p.name, p)
        return [seen[n] for n in sorted(seen)]

    def __str__(self) -> str:
        return os.pathsep.join(str(d) for d in self.dirs)
