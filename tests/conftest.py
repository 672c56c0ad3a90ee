"""Shared pytest fixtures: where the shared fixtures and the asset cache are."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _find_shared() -> Path:
    env = os.environ.get("ADVSEG_SHARED")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared", REPO / "shared"]
    for c in candidates:
        if (c / "fixtures").is_dir():
            return c
    raise FileNotFoundError(
        "shared fixtures not found: expected a 'shared/' folder beside the repository "
        f"({REPO.parent / 'shared'}) or ADVSEG_SHARED pointing at it"
    )


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _find_shared()


@pytest.fixture(scope="session")
def official_fixtures_dir(shared_dir: Path) -> Path:
    return shared_dir / "fixtures" / "official"


@pytest.fixture(scope="session")
def hed_fixtures_dir(shared_dir: Path) -> Path:
    return shared_dir / "fixtures" / "hed"


@pytest.fixture(scope="session")
def photo_paths() -> list[Path]:
    """The real photos from the asset cache (fetched by the test script before pytest)."""
    from advseg_sdk import assets

    return assets.photo_paths()


@pytest.fixture(scope="session")
def python_exe() -> str:
    """The interpreter running the tests (its venv holds the console scripts)."""
    return sys.executable


@pytest.fixture(scope="session")
def venv_bin() -> Path:
    return Path(sys.executable).parent
