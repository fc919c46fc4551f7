"""Near-equal fingerprints: respellings the oracle cannot tell apart share one,
and no fingerprint ever holds two verdicts of one question.

Each ``respell_*`` below rewrites a config in the ways ``export_hash`` claims
not to matter (names, labels, annotations, container names, image tags, Sid,
case of actions, order of lists, documents and blocks, descriptions). The
tests check both sides of that claim: the fingerprint does not move, and
neither does the oracle's verdict or its set of violated rules.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from generator.config.k8s import load_documents
from generator.errors import SpotcheckError
from generator.export_hash import config_fingerprint, near_fingerprint
from generator.oracle import iam, k8s, netpol, sg

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
PER_CONTAINER = (
    "container.seccomp.security.alpha.kubernetes.io/",
    "container.apparmor.security.beta.kubernetes.io/",
)


def reversed_lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: reversed_lists(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reversed_lists(v) for v in reversed(value)]
    return value


def dump(documents: list[Any]) -> str:
    """YAML documents as JSON ones: the same values, another layout."""
    return "\n---\n".join(json.dumps(d) for d in documents) + "\n"


def respell_k8s(config: str) -> str:
    """Other object names, labels, annotations, container names (their
    annotation keys along), image tags; every list reversed."""

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = {k: walk(v) for k, v in node.items()}
        meta = node.get("metadata")
        if isinstance(meta, dict):
            meta = {**meta, "name": f"{meta.get('name')}-b"}
            meta["labels"] = {**(meta.get("labels") or {}), "respelled": "yes"}
            annotations = {"note.example.com/why": "respelled"}
            for key, value in (meta.get("annotations") or {}).items():
                if key.startswith(PER_CONTAINER):
                    key += "-b"
                annotations[key] = value
            node["metadata"] = meta | {"annotations": annotations}
        for key in ("initContainers", "containers", "ephemeralContainers"):
            for container in node.get(key) or ():
                if isinstance(container, dict) and isinstance(
                    container.get("name"), str
                ):
                    container["name"] += "-b"
                    image = str(container.get("image", "x")).partition(":")[0]
                    container["image"] = image + ":respelled"
                if isinstance(container, dict) and "targetContainerName" in container:
                    container["targetContainerName"] += "-b"
        return node

    return dump([reversed_lists(walk(d)) for d in load_documents(config) if d])


def respell_iam(config: str) -> str:
    """New Sids, no Id, statements and value lists reversed, single values as
    lists, action names and condition keys upper-cased."""
    policy = json.loads(config)
    policy.pop("Id", None)
    statements = policy["Statement"]
    statements = [statements] if isinstance(statements, dict) else statements
    respelled = []
    for number, statement in enumerate(reversed(statements)):
        statement = {k: v for k, v in statement.items() if k != "Sid"}
        statement["Sid"] = f"Respelled{number}"
        for key in ("Action", "NotAction"):
            if key in statement:
                actions = as_list(statement[key])
                statement[key] = [a if a == "*" else a.upper() for a in actions][::-1]
        for key in ("Resource", "NotResource"):
            if key in statement:
                statement[key] = as_list(statement[key])[::-1]
        for key in ("Principal", "NotPrincipal"):
            if isinstance(statement.get(key), dict):
                statement[key] = {
                    t: as_list(v)[::-1] for t, v in statement[key].items()
                }
        if isinstance(statement.get("Condition"), dict):
            statement["Condition"] = {
                op: {k.upper(): as_list(v)[::-1] for k, v in block.items()}
                for op, block in statement["Condition"].items()
            }
        respelled.append(statement)
    policy["Statement"] = respelled
    return json.dumps(policy, indent=1)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def respell_netpol(config: str) -> str:
    """Policies renamed and relabelled, annotations everywhere, container
    names and images changed; documents and every list reversed."""
    documents = []
    for document in load_documents(config):
        if not isinstance(document, dict):
            continue
        meta = dict(document.get("metadata") or {})
        meta["annotations"] = {"note.example.com/why": "respelled"}
        if document.get("kind") == "NetworkPolicy":
            meta["name"] = f"{meta.get('name')}-b"
            meta["labels"] = {"respelled": "yes"}
        document = {**document, "metadata": meta}
        for container in (document.get("spec") or {}).get("containers") or ():
            container["name"] = "renamed"
            container["image"] = "registry.example.com/other:9"
        documents.append(reversed_lists(document))
    return dump(documents[::-1])


_RESOURCE = re.compile(r'^resource\s+"([\w-]+)"\s+"([\w-]+)"', re.MULTILINE)


def respell_hcl(config: str) -> str:
    """Resources relabelled (references along), descriptions of blocks
    reworded, the top-level blocks in reverse order."""
    for kind, label in set(_RESOURCE.findall(config)):
        config = re.sub(
            rf'(resource\s+"{kind}"\s+"){label}"', rf'\g<1>{label}_b"', config
        )
        config = re.sub(rf"\b{kind}\.{label}\b", f"{kind}.{label}_b", config)
    # Block attributes only: inside an object value (``ingress = [{...}]``)
    # a description is part of the value, which export_hash keeps whole.
    config = re.sub(
        r'description(\s*)=(\s*)"[^"]*"(?!,)', 'description = "respelled"', config
    )
    return "\n".join(reversed(top_level_blocks(config))) + "\n"


def top_level_blocks(text: str) -> list[str]:
    blocks, current, depth = [], [], 0
    for line in text.splitlines():
        if not current and not line.strip():
            continue
        current.append(line)
        depth += line.count("{") - line.count("}")
        if depth == 0 and current:
            blocks.append("\n".join(current))
            current = []
    return blocks


RESPELL = {"k8s": respell_k8s, "iam": respell_iam, "netpol": respell_netpol}


def respell(domain: str, config: str, fmt: str) -> str:
    return respell_hcl(config) if fmt == "hcl" else RESPELL[domain](config)


def oracle(domain: str, config: str, question: str) -> tuple[str, frozenset[str]]:
    """The verdict and the set of violated rules (a question that does not
    apply, or cannot be answered: the kind of error)."""
    module = {"k8s": k8s, "iam": iam, "netpol": netpol, "sg": sg}[domain]
    try:
        truth = module.truth(config, question)
    except SpotcheckError as exc:
        return type(exc).__name__, frozenset()
    return truth.verdict, frozenset(truth.rules)


# --- seeds: every domain's realistic configs ----------------------------------------


def seed_cases() -> list[tuple[str, str, str, str]]:
    """(domain, format, config, question) for every seed, every question
    its domain asks of it."""
    cases = []
    for path in sorted((SEEDS / "k8s").glob("*.yaml")):
        for question in (
            "pss:restricted:v1.37",
            "pss:baseline:v1.37",
            "pss:baseline:v1.18",
        ):
            cases.append(("k8s", "yaml", path.read_text(), question))
    for path in sorted((SEEDS / "iam").glob("*.json")):
        for question in ("iam:privesc", "iam:admin", "iam:public"):
            cases.append(("iam", "json", path.read_text(), question))
    for path in sorted((SEEDS / "netpol").glob("*.yaml")):
        text = path.read_text()
        question = "netpol:" + text.split("# question: ", 1)[1].split("\n", 1)[0]
        cases.append(("netpol", "yaml", text, question))
    for path in sorted((SEEDS / "sg").glob("*.tf")):
        text = path.read_text()
        port = text.split("# question: ", 1)[1].split("\n", 1)[0]
        for which in ("open_ipv4", "open_ipv6"):
            cases.append(("sg", "hcl", text, f"sg:{which}:{port}"))
    return cases


@pytest.mark.parametrize(
    ("domain", "fmt", "config", "question"),
    seed_cases(),
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else "",
)
def test_respelled_seeds_keep_fingerprint_and_verdict(
    domain: str, fmt: str, config: str, question: str
) -> None:
    other = respell(domain, config, fmt)

    assert other != config
    assert config_fingerprint(other, fmt) != config_fingerprint(config, fmt)
    assert near_fingerprint(domain, other, fmt) == near_fingerprint(domain, config, fmt)
    assert oracle(domain, other, question) == oracle(domain, config, question)


# --- what must stay apart ---------------------------------------------------


POD = (SEEDS / "k8s" / "restricted-pod-SAFE.yaml").read_text()
HCL = 'resource "aws_security_group" "a" {{\n  ingress {{\n    x = {}\n  }}\n}}\n'


@pytest.mark.parametrize(
    ("domain", "fmt", "config", "changed"),
    [
        # Values the checks read: a lower-case "all" drops nothing.
        ("k8s", "yaml", POD, POD.replace("- ALL", "- all")),
        ("k8s", "yaml", POD, POD.replace("runAsNonRoot: true", "runAsNonRoot: false")),
        # A resource ARN is case-sensitive; Effect is a value.
        (
            "iam", "json",
            '{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::B"}}',
            '{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b"}}',
        ),
        (
            "iam", "json",
            '{"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}',
            '{"Statement": {"Effect": "Deny", "Action": "s3:*", "Resource": "*"}}',
        ),
        # A pod's name is what the question asks about.
        ("netpol", "yaml", "kind: Pod\nmetadata: {name: a}\n", "kind: Pod\nmetadata: {name: b}\n"),
        ("sg", "hcl", HCL.format('"0.0.0.0/0"'), HCL.format('"0.0.0.0/1"')),
        # Whitespace inside a string is part of the value.
        ("sg", "hcl", HCL.format('"a b"'), HCL.format('"a  b"')),
    ],
)  # fmt: skip
def test_meaningful_changes_keep_configs_apart(
    domain: str, fmt: str, config: str, changed: str
) -> None:
    assert near_fingerprint(domain, changed, fmt) != near_fingerprint(
        domain, config, fmt
    )


def test_container_names_follow_into_their_annotations() -> None:
    # Before v1.19 a per-container seccomp annotation names its container:
    # renaming both is the same pod, renaming only the container is not.
    pod = POD.replace(
        "metadata:\n", "metadata:\n  annotations:\n    SECCOMP: unconfined\n", 1
    )
    name = re.search(r"- name: (\S+)", pod)[1]
    pod = pod.replace(
        "SECCOMP", f"container.seccomp.security.alpha.kubernetes.io/{name}"
    )
    both = pod.replace(name, "other")
    container_only = pod.replace(f"- name: {name}", "- name: other")
    old = "pss:baseline:v1.18"

    assert oracle("k8s", both, old) == oracle("k8s", pod, old) != ("safe", frozenset())
    assert near_fingerprint("k8s", both, "yaml") == near_fingerprint("k8s", pod, "yaml")
    assert oracle("k8s", container_only, old)[0] == "safe"
    assert near_fingerprint("k8s", container_only, "yaml") != near_fingerprint(
        "k8s", pod, "yaml"
    )


def test_a_workload_and_its_pod_are_near_equal() -> None:
    deployment = load_documents(
        (SEEDS / "k8s" / "web-deployment-UNSAFE.yaml").read_text()
    )
    (template,) = [d for d in deployment if d and d.get("kind") == "Deployment"]
    pod = {"apiVersion": "v1", "kind": "Pod", **template["spec"]["template"]}
    fingerprints = {
        near_fingerprint("k8s", dump(d), "yaml") for d in ([template], [pod])
    }
    assert len(fingerprints) == 1


def test_unparseable_text_falls_back_to_the_exact_fingerprint() -> None:
    assert near_fingerprint("k8s", "a: [", "yaml") == config_fingerprint("a: [", "yaml")
    assert near_fingerprint("sg", "resource {", "hcl") == config_fingerprint(
        "resource  {", "hcl"
    )


# --- generated suites -------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    from generator.suite import generate_suite

    out = tmp_path_factory.mktemp("suite")
    generate_suite(
        domains=("k8s", "iam", "netpol", "sg"), count=120, seed=5, out_dir=out
    )
    lines = (out / "cases.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def near(case: dict[str, Any]) -> str:
    return near_fingerprint(case["domain"], case["config"], case["format"])


@pytest.mark.slow
def test_no_near_equal_class_holds_two_verdicts(generated) -> None:
    classes: dict[tuple[str, str], set] = defaultdict(set)
    for case in generated:
        rules = frozenset(v["rule"] for v in case["truth"]["violations"])
        classes[near(case), case["question"]].add((case["truth"]["verdict"], rules))
    assert len(classes) < len(generated)  # some cases are near-equal
    assert all(len(truths) == 1 for truths in classes.values())


@pytest.mark.slow
def test_siblings_of_the_other_verdict_are_never_near_equal(generated) -> None:
    by_id = {case["id"]: case for case in generated}
    pairs = [
        (case, by_id[case["siblings"]["opposite"]])
        for case in generated
        if case.get("siblings", {}).get("opposite") in by_id
    ]
    assert len(pairs) >= 20
    assert all(near(a) != near(b) for a, b in pairs)


@pytest.mark.slow
def test_respelled_generated_cases_keep_fingerprint_and_verdict(generated) -> None:
    checked: defaultdict[str, int] = defaultdict(int)
    for case in generated:
        domain, fmt, config = case["domain"], case["format"], case["config"]
        other = respell(domain, config, fmt)
        rules = frozenset(v["rule"] for v in case["truth"]["violations"])
        assert oracle(domain, other, case["question"]) == (
            case["truth"]["verdict"],
            rules,
        )
        assert near_fingerprint(domain, other, fmt) == near(case), case["id"]
        checked[domain] += 1
    assert min(checked.values()) >= 20 and len(checked) == 4
