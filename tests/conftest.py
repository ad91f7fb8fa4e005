"""Shared pytest fixtures and paths."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
# Tests use tiny models, for which one thread is fastest; more threads only
# wait on each other when the machine is busy.
torch.set_num_threads(1)

# Read-only reference data kept beside the repository checkout.
SHARED = REPO_ROOT.parent / "shared"
GOLDEN = REPO_ROOT / "tests" / "golden"
HAYSTACK = SHARED / "data" / "haystack"


@pytest.fixture
def haystack_dir() -> Path:
    if not HAYSTACK.is_dir():
        pytest.skip(f"haystack books not found at {HAYSTACK}")
    return HAYSTACK
