"""scripts/crosscheck_checkov.py: mapping and classification on a hand-made
checkov result (checkov itself is not needed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _load() -> Any:
    name = "crosscheck_checkov"
    spec = importlib.util.spec_from_file_location(
        name, ROOT / "scripts" / "crosscheck_checkov.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


cc = _load()

RESTRICTED_SC = """\
      securityContext:
        allowPrivilegeEscalation: false
        capabilities:
          drop: [{drop}]
"""


def pod(extra_spec: str = "", container_sc: str = "", drop: str = "ALL") -> str:
    sc = container_sc or RESTRICTED_SC.format(drop=drop)
    return (
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n"
        "  securityContext:\n    runAsNonRoot: true\n"
        "    seccompProfile:\n      type: RuntimeDefault\n"
        f"{extra_spec}  containers:\n    - name: app\n      image: a:1\n{sc}"
    )


def case(cid: str, config: str, version: str = "v1.37") -> dict[str, Any]:
    return {
        "id": cid,
        "family": "test",
        "config": config,
        "question": f"pss:restricted:{version}",
    }


def failed(cid: str, *ids: str) -> list[dict[str, str]]:
    return [
        {"check_id": i, "check_name": f"name of {i}", "file_path": f"/{cid}.yaml"}
        for i in ids
    ]


EPHEMERAL = "  ephemeralContainers:\n    - name: debug\n      image: b:1\n"
WINDOWS = "  os:\n    name: windows\n"
NO_APE = "      securityContext:\n        capabilities:\n          drop: [ALL]\n"
CASES = [
    case("clean", pod()),
    case("ephemeral", pod(extra_spec=EPHEMERAL)),
    case("lower-all", pod(drop="all")),
    case("windows", pod(extra_spec=WINDOWS, container_sc=NO_APE)),
    case("windows-old", pod(extra_spec=WINDOWS, container_sc=NO_APE), "v1.24"),
    case(
        "yaml-n",
        pod(container_sc=RESTRICTED_SC.format(drop="ALL") + "        privileged: n\n"),
    ),  # fmt: skip
    case("host-net", pod(extra_spec="  hostNetwork: true\n")),
    case("odd", pod()),
]
PEER = {
    "check_type": "kubernetes",
    "results": {
        "failed_checks": failed("clean", "CKV_K8S_22")
        + failed("windows", "CKV_K8S_20")
        + failed("windows-old", "CKV_K8S_20")
        + failed("yaml-n", "CKV_K8S_16")
        + failed("host-net", "CKV_K8S_19")
        + failed("odd", "CKV_K8S_26")
    },
}


def rows() -> dict[tuple[str, str], dict[str, Any]]:
    result = cc.crosscheck(CASES, PEER)
    return {(r["id"], r["check"]): r for r in result["disagreements"]}


def test_mapping_names_real_pss_checks() -> None:
    ids = {c.id for c in cc.CHECKS}
    assert set(cc.MAPPING.values()) <= ids
    assert cc.MAPPING["CKV_K8S_20"] == "allowPrivilegeEscalation"
    assert {b.key for b in cc.BEHAVIOURS} >= {"ephemeral-containers", "yaml-1.1"}


def test_misses_are_explained_per_finding() -> None:
    got = rows()
    for check in ("allowPrivilegeEscalation", "capabilities_restricted"):
        r = got[("ephemeral", check)]
        assert (r["spotcheck"], r["checkov"]) == ("fail", "pass")
        assert r["classification"] == "peer wrong"
        assert r["behaviours"] == ["ephemeral-containers"]
    r = got[("lower-all", "capabilities_restricted")]
    assert r["behaviours"] == ["substring-all"]


def test_false_alarms_and_policy_version() -> None:
    got = rows()
    r = got[("windows", "allowPrivilegeEscalation")]
    assert (r["spotcheck"], r["checkov"], r["checkov_ids"]) == (
        "pass",
        "fail",
        ["CKV_K8S_20"],
    )
    assert r["behaviours"] == ["windows-as-linux"]
    assert "v1.25" in r["reasons"][0]
    # Before v1.25 PSS has no Windows exemption: both fail, no disagreement.
    assert ("windows-old", "allowPrivilegeEscalation") not in got
    assert got[("yaml-n", "privileged")]["behaviours"] == ["yaml-1.1"]


def test_agreements_unmapped_and_unclassified() -> None:
    got = rows()
    assert not any(cid in ("clean", "host-net") for cid, _ in got)
    odd = got[("odd", "hostPorts")]
    assert odd["classification"] == "unclassified"
    result = cc.crosscheck(CASES, PEER)
    assert result["unmapped"] == {"CKV_K8S_22": "name of CKV_K8S_22"}
    md = cc.markdown(result)
    assert "| odd | test | hostPorts | pass | fail (CKV_K8S_26) | unclassified" in md
