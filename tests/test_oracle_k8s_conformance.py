"""The oracle against every upstream Pod Security Admission fixture.

A fixture under ``<level>/<version>/<outcome>/`` must get that outcome at that
level and version. A fail fixture must also be failed *by the check its
family targets* (or the restricted check that replaces it), so a right
verdict for a wrong reason does not pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.oracle.k8s import evaluate_text
from generator.oracle.k8s_policy import parse_version
from tests.conftest import PSS_FIXTURES

FIXTURES = sorted(PSS_FIXTURES.glob("*/v*/*/*.yaml"))

FAMILY_CHECK = {
    "allowprivilegeescalation": "allowPrivilegeEscalation",
    "apparmorprofile": "appArmorProfile",
    "capabilities_baseline": "capabilities_baseline",
    "capabilities_restricted": "capabilities_restricted",
    "hostnamespaces": "hostNamespaces",
    "hostpathvolumes": "hostPathVolumes",
    "hostports": "hostPorts",
    "hostprobesandhostlifecycle": "hostProbesAndHostLifecycle",
    "privileged": "privileged",
    "procmount": "procMount",
    "procmount_restricted": "procMount_restricted",
    "restrictedvolumes": "restrictedVolumes",
    "runasnonroot": "runAsNonRoot",
    "runasuser": "runAsUser",
    "seccompprofile_baseline": "seccompProfile_baseline",
    "seccompprofile_restricted": "seccompProfile_restricted",
    "selinuxoptions": "seLinuxOptions",
    "sysctls": "sysctls",
    "windowshostprocess": "windowsHostProcess",
}
# At restricted, these baseline families are reported by their replacement
# from the given version on (fixtures README, point 1).
REPLACED_AT_RESTRICTED = {
    "hostPathVolumes": ("restrictedVolumes", (1, 0)),
    "capabilities_baseline": ("capabilities_restricted", (1, 22)),
    "seccompProfile_baseline": ("seccompProfile_restricted", (1, 19)),
    "procMount": ("procMount_restricted", (1, 35)),
}


def _fixture_id(path: Path) -> str:
    return "/".join(path.parts[-4:])


def _expected_check(level: str, version: tuple[int, int], stem: str) -> str:
    check = FAMILY_CHECK[stem.rstrip("0123456789")]
    replacement = REPLACED_AT_RESTRICTED.get(check)
    if level == "restricted" and replacement and version >= replacement[1]:
        return replacement[0]
    return check


def test_every_fixture_is_present():
    # The README counts 4,537 files; a partial copy would pass vacuously.
    assert len(FIXTURES) == 4537
    assert len([f for f in FIXTURES if f.parts[-3] == "v1.37"]) == 148


@pytest.mark.parametrize("path", FIXTURES, ids=_fixture_id)
def test_fixture_gets_its_folder_verdict(path: Path):
    level, version_text, outcome = path.parts[-4], path.parts[-3], path.parts[-2]
    version = parse_version(version_text)
    (evaluation,) = evaluate_text(path.read_text(), version, source=str(path))

    assert evaluation.verdicts[level] == outcome
    if outcome == "fail":
        failing = {f.rule for f in evaluation.failing(level)}
        assert _expected_check(level, version, path.stem) in failing
    else:
        assert evaluation.failing(level) == ()
