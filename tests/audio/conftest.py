"""Shared audio fixtures: the bundled real speech clip."""

from __future__ import annotations

from pathlib import Path

import pytest

ARCTIC = Path(__file__).resolve().parents[2] / "assets" / "audio" / "arctic_a0007.wav"


@pytest.fixture(scope="session")
def arctic_path() -> Path:
    assert ARCTIC.is_file(), f"bundled speech clip missing: {ARCTIC}"
    return ARCTIC
