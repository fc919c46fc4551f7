"""Shared test helpers: where the read-only conformance fixtures live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# CI lays shared/ beside the clone; SPOTCHECK_SHARED points elsewhere.
SHARED = Path(os.environ.get("SPOTCHECK_SHARED", REPO.parent / "shared"))
PSS_FIXTURES = SHARED / "conformance" / "pss"


@pytest.fixture
def pss_fixtures() -> Path:
    if not PSS_FIXTURES.is_dir():
        pytest.fail(f"conformance fixtures missing at {PSS_FIXTURES}")
    return PSS_FIXTURES
