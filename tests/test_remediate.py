"""The oracle's remediation: every fix re-checked, minimal, and refused honestly.

Each domain's test generates a fresh small suite, remediates every unsafe
case, and checks the fix itself (not trusting ``remediate``'s own check):
the domain oracle must answer "safe" and ``judge_repair`` must accept the
fenced fix. Minimality is checked by a property each domain can measure.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import pytest

from generator.config.k8s import load_documents, workloads
from generator.errors import RemediationError, SpotcheckError
from generator.records import Case, Origin, Truth, case_id
from generator.remediate import oracle_truth, remediate
from generator.remediate_k8s import finding_paths
from generator.run.repair import judge_repair
from generator.suite import generate_suite
from tests.conftest import PSS_FIXTURES

# (count, seed, siblings): about 40 unsafe cases over the four domains in
# ~15 s of generation; the k8s families already respell manifests (flow
# style, anchors, comments), which exercises the text edits.
SUITES = {
    "k8s": (30, 11, False),
    "iam": (20, 12, False),
    "netpol": (20, 13, False),
    "sg": (12, 14, False),
}


@pytest.fixture(scope="module")
def suites(tmp_path_factory) -> dict[str, list[Case]]:
    out = {}
    for domain, (count, seed, siblings) in SUITES.items():
        folder = tmp_path_factory.mktemp(domain)
        generate_suite(
            domains=(domain,), count=count, seed=seed, out_dir=folder, siblings=siblings
        )
        lines = (folder / "cases.jsonl").read_text().splitlines()
        out[domain] = [Case.from_dict(json.loads(line)) for line in lines]
    return out


def _unsafe(cases: list[Case]) -> list[Case]:
    found = [c for c in cases if c.truth.verdict == "unsafe"]
    assert found, "the suite has no unsafe case to fix"
    return found


def _assert_fixed(case: Case, fixed: str) -> None:
    """The fix as the oracle and the repair judge see it, independently."""
    assert oracle_truth(case, fixed).verdict == "safe", case.id
    fence = {"yaml": "yaml", "json": "json", "hcl": "hcl"}[case.format]
    judgement = judge_repair(case, f"```{fence}\n{fixed}```\n")
    assert judgement.failure is None, (case.id, judgement.detail)


# --- Kubernetes ---------------------------------------------------------------------


def _leaves(before, after, path=()) -> list[tuple]:
    """Paths where two parsed documents differ, down to the changed leaves
    (a key or list entry added or removed counts with every leaf under it)."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for key in dict.fromkeys([*before, *after]):
            if key not in after:
                out += _all_leaves(before[key], (*path, key))
            elif key not in before:
                out += _all_leaves(after[key], (*path, key))
            else:
                out += _leaves(before[key], after[key], (*path, key))
        return out
    if isinstance(before, list) and isinstance(after, list):
        old = [json.dumps(x, sort_keys=True) for x in before]
        new = [json.dumps(x, sort_keys=True) for x in after]
        out = []
        matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
        for op, i1, i2, j1, j2 in matcher.get_opcodes():
            if op == "replace" and i2 - i1 == j2 - j1:
                for k in range(i2 - i1):
                    out += _leaves(before[i1 + k], after[j1 + k], (*path, i1 + k))
            elif op != "equal":
                out += [
                    q for i in range(i1, i2) for q in _all_leaves(before[i], (*path, i))
                ]
                out += [
                    q for j in range(j1, j2) for q in _all_leaves(after[j], (*path, j))
                ]
        return out
    return [] if before == after else [path]


def _all_leaves(value, path) -> list[tuple]:
    if isinstance(value, dict) and value:
        return [q for k, v in value.items() for q in _all_leaves(v, (*path, k))]
    if isinstance(value, list) and value:
        return [q for i, v in enumerate(value) for q in _all_leaves(v, (*path, i))]
    return [path]


def _violation_paths(case: Case) -> list[tuple]:
    documents = load_documents(case.config)
    # Paths name their document only when several hold workloads.
    holding = [i for i, d in enumerate(documents) if workloads(d, index=i)]
    paths = []
    for violation in case.truth.violations:
        doc, text = holding[0], violation.path
        if text.startswith("documents["):
            doc = int(text[len("documents[") : text.index("]")])
            text = text[text.index("]") + 2 :]
        paths.append((doc, *finding_paths(documents[doc], text)))
    return paths


def _assert_minimal_k8s(case: Case, fixed: str) -> None:
    """Every changed leaf lies in the object that holds a violated field:
    under the violation's parent path (its sibling fields, itself, or new
    fields beneath it)."""
    before, after = load_documents(case.config), load_documents(fixed)
    assert len(before) == len(after)
    scopes = [p[:-1] for p in _violation_paths(case)]
    changed = [
        (doc, *leaf)
        for doc, (old, new) in enumerate(zip(before, after, strict=True))
        for leaf in _leaves(old, new)
    ]
    assert changed, case.id
    for leaf in changed:
        assert any(leaf[: len(s)] == s for s in scopes), (case.id, leaf, scopes)


def test_every_unsafe_k8s_case_is_fixed_minimally(suites):
    for case in _unsafe(suites["k8s"]):
        fixed = remediate(case)
        _assert_fixed(case, fixed)
        _assert_minimal_k8s(case, fixed)


_COMMENTED = """\
# The web tier.
apiVersion: v1
kind: Pod
metadata:
  name: web  # keep this name
spec:
  containers:
  - name: web
    image: nginx:1.27
    securityContext: {privileged: true, capabilities: {add: [SYS_ADMIN]}}
    # a sidecar follows
  - name: log
    image: busybox:1.36
    ports:
    - containerPort: 80
      hostPort: 8080
  volumes:
  - name: data
    hostPath:
      path: /var/lib/data   # the node's disk
"""


def test_k8s_fix_is_made_on_the_text(suites):
    # Comment lines survive, and only lines that hold a changed field
    # change: the rest of the manifest is byte for byte the input.
    generated = [
        c
        for c in _unsafe(suites["k8s"])
        if "#" in c.config and "&" not in c.config and "<<:" not in c.config
    ]
    cases = [_case("k8s", _COMMENTED, "pss:baseline:v1.37"), *generated]
    for case in cases:
        fixed = remediate(case)
        _assert_fixed(case, fixed)
        comments = [x for x in case.config.splitlines() if x.lstrip()[:1] == "#"]
        assert all(c in fixed.splitlines() for c in comments), case.id
    fixed = remediate(cases[0]).splitlines()
    removed = [x for x in _COMMENTED.splitlines() if x not in fixed]
    assert removed == [
        "    securityContext: {privileged: true, capabilities: {add: [SYS_ADMIN]}}",
        "      hostPort: 8080",
        "    hostPath:",
        "      path: /var/lib/data   # the node's disk",
    ]


def test_safe_cases_come_back_unchanged(suites):
    for domain in ("k8s", "iam"):
        safe = [c for c in suites[domain] if c.truth.verdict == "safe"][:5]
        assert safe
        for case in safe:
            assert remediate(case) == case.config


def test_a_pod_without_containers_is_refused():
    text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: empty\nspec: {}\n"
    question = "pss:restricted:v1.37"
    case = _case("k8s", text, question)
    with pytest.raises(RemediationError, match="without containers"):
        remediate(case)
    assert issubclass(RemediationError, SpotcheckError)


def _case(domain: str, text: str, question: str) -> Case:
    truth = oracle_truth(
        Case(
            "x", domain, "t", Origin("grammar"), "yaml", text, question, Truth("safe")
        ),
        text,
    )
    return Case(
        case_id(domain, question, text), domain, "t", Origin("grammar"),
        "yaml", text, question, truth,
    )  # fmt: skip


def test_wrong_types_anchors_and_lists_are_fixed():
    # A quoted boolean, a null container entry beside a real one, and a
    # security context shared through an anchor, inside a List.
    text = (
        "apiVersion: v1\nkind: List\nitems:\n"
        "  - apiVersion: apps/v1\n    kind: Deployment\n    metadata: {name: d}\n"
        "    spec:\n      template:\n        spec:\n"
        "          containers:\n"
        "            - name: a\n              image: x\n"
        "              securityContext: &sc {privileged: 'true'}\n"
        "            - name: b\n              image: y\n              securityContext: *sc\n"
        "          initContainers: [null]\n"
    )
    case = _case("k8s", text, "pss:restricted:v1.37")
    assert case.truth.verdict == "unsafe"
    fixed = remediate(case)
    _assert_fixed(case, fixed)
    spec = load_documents(fixed)[0]["items"][0]["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["a", "b"]
    assert spec["containers"][0]["securityContext"]["privileged"] is False


def _fixtures(level: str, version: str) -> list[Path]:
    if not PSS_FIXTURES.is_dir():
        pytest.fail(f"conformance fixtures missing at {PSS_FIXTURES}")
    return sorted((PSS_FIXTURES / level / version / "fail").glob("*.yaml"))


def _fix_fixtures(paths: list[Path], level: str, version: str) -> int:
    question = f"pss:{level}:{version}"
    fixed = 0
    for path in paths:
        case = _case("k8s", path.read_text(), question)
        if case.truth.verdict == "unsafe":
            _assert_fixed(case, remediate(case))
            fixed += 1
    return fixed


@pytest.mark.parametrize(
    ("level", "version"),
    [("restricted", "v1.37"), ("baseline", "v1.37"), ("restricted", "v1.18"),
     ("baseline", "v1.35")],
)  # fmt: skip
def test_failing_conformance_fixtures_are_fixed(pss_fixtures, level, version):
    paths = _fixtures(level, version)
    assert _fix_fixtures(paths, level, version) == len(paths)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("SPOTCHECK_FULL_CONFORMANCE"),
    reason="all 3,486 failing fixtures take ~90 s; set SPOTCHECK_FULL_CONFORMANCE=1",
)
def test_every_failing_conformance_fixture_is_fixed(pss_fixtures):
    for folder in sorted(pss_fixtures.glob("*/*")):
        paths = _fixtures(folder.parent.name, folder.name)
        assert _fix_fixtures(paths, folder.parent.name, folder.name) == len(paths)


# --- IAM ------------------------------------------------------------------------------


def test_every_unsafe_iam_case_is_fixed(suites):
    from generator.config.iam import load_policy
    from generator.oracle.iam import answer

    for case in _unsafe(suites["iam"]):
        fixed = remediate(case)
        _assert_fixed(case, fixed)
        question = case.question.partition(":")[2]
        if question == "public":
            continue
        # 1-minimal: putting back any one removed action pattern reopens it.
        before = _statement_list(json.loads(case.config))
        after = _statement_list(json.loads(fixed))
        if len(before) != len(after):
            continue
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            if "Action" not in old or "Action" not in new:
                continue
            removed = set(_values(old.get("Action"))) - set(_values(new.get("Action")))
            for pattern in removed:
                trial = json.loads(fixed)
                statement = _statement_list(trial)[index]
                statement["Action"] = [*_values(statement["Action"]), pattern]
                policy = load_policy(json.dumps(trial))
                assert answer(policy, question).value != "no", (case.id, pattern)


def _statement_list(document: dict) -> list[dict]:
    found = document["Statement"]
    return found if isinstance(found, list) else [found]


def _values(value) -> list[str]:
    return [] if value is None else value if isinstance(value, list) else [value]


# --- NetworkPolicy and security groups --------------------------------------------


def test_every_unsafe_netpol_case_is_fixed_by_policies_only(suites):
    for case in _unsafe(suites["netpol"]):
        fixed = remediate(case)
        _assert_fixed(case, fixed)
        # Minimal: the other objects as they were; at most one policy added.
        before, after = load_documents(case.config), load_documents(fixed)
        for old, new in zip(before, after[: len(before)], strict=True):
            if old.get("kind") != "NetworkPolicy":
                assert old == new, case.id
        added = after[len(before) :]
        assert len(added) <= 1 and all(d["kind"] == "NetworkPolicy" for d in added)


def test_every_unsafe_sg_case_is_fixed_by_removing_wide_ranges(suites):
    from generator.config.terraform import load_module
    from generator.oracle.sg_rules import security_groups

    def networks(text: str) -> list:
        group = security_groups(load_module(text, source=case.id))[0]
        return [n for g in (group.inline or []) + group.attached for n in g.networks]

    for case in _unsafe(suites["sg"]):
        fixed = remediate(case)
        _assert_fixed(case, fixed)
        version = 4 if case.question.startswith("sg:open_ipv4") else 6
        after = networks(fixed)
        removed = [n for n in networks(case.config) if n not in after]
        assert removed, case.id
        assert all(n.version == version and n.prefixlen < 16 for n in removed)
        assert all(n in networks(case.config) for n in after), case.id
