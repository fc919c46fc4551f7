"""Every case of shared/conformance/iam/cases.json, judged by the IAM oracle."""

from __future__ import annotations

import json

import pytest

from generator.config.iam import parse_policy
from generator.oracle.iam import answer
from tests.conftest import SHARED

CASES_FILE = SHARED / "conformance" / "iam" / "cases.json"


def _cases() -> list[dict]:
    if not CASES_FILE.is_file():
        return []
    return json.loads(CASES_FILE.read_text())["cases"]


def test_the_case_file_is_there() -> None:
    assert CASES_FILE.is_file(), f"conformance cases missing at {CASES_FILE}"
    assert len(_cases()) >= 24


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["id"])
def test_conformance_case(case: dict) -> None:
    result = answer(parse_policy(case["policy"], source=case["id"]), case["question"])
    assert result.value == case["truth"].lower(), (case["why"], result.reason)
    # A "yes" names what makes it so; a "no" names nothing.
    assert bool(result.findings) == (result.value != "no")
