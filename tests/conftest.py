"""Shared fixtures: one LORASCOPE_HOME per test session, tiny-mistral prepared once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture(scope="session")
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lorascope_home")


@pytest.fixture(scope="session")
def tiny_mistral_dir(session_home: Path) -> Path:
    from lorascope.models import resolve_model

    return resolve_model("tiny-mistral", home=session_home)
