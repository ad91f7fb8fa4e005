"""Shared pytest fixtures and paths."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# Read-only reference data kept beside the repository checkout.
SHARED = REPO_ROOT.parent / "shared"
GOLDEN = REPO_ROOT / "tests" / "golden"
HAYSTACK = SHARED / "data" / "haystack"


@pytest.fixture
def haystack_dir() -> Path:
    if not HAYSTACK.is_dir():
        pytest.skip(f"haystack books not found at {HAYSTACK}")
    return HAYSTACK
