"""Shared pytest fixtures: where the reference fixtures and the asset cache are."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fixture_sets import REPO, FixtureSet


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture(scope="session")
def official_fixtures_dir() -> FixtureSet:
    """Official-code fixtures: the committed subset, plus ../shared's fuller set when present."""
    return FixtureSet("official")


@pytest.fixture(scope="session")
def hed_fixtures_dir() -> FixtureSet:
    """HED reference outputs: the committed subset, plus ../shared's fuller set when present."""
    return FixtureSet("hed")


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
