"""Config fingerprints: when two configs are the same example for training.

An export must keep every evaluation config out of the training data, and
a copy that differs only in what the oracle never reads is still that
config. Two hashes, both over a canonical JSON form:

* ``config_fingerprint`` (exact, layout-blind): YAML and JSON parsed the
  way the API server or AWS reads them, so layout, comments, quoting and
  key order vanish; other text with runs of whitespace collapsed.
* ``near_fingerprint`` (near-equal): also drops, per domain, what cannot
  change the oracle's verdict:

  - **k8s** (Pod Security): only the pod specs are kept, whatever object
    holds them (a Deployment's template is the same pod as a Pod); object
    names, namespaces, labels and annotations go, except the seccomp and
    AppArmor annotations the checks read; container names become
    positions (rewritten where they are named: per-container annotation
    keys, ``targetContainerName``); image tags and digests go; every list
    is sorted, since each check reads a list as a set ("any container ...").
  - **iam**: ``Sid`` and ``Id`` go; a single statement or value becomes a
    one-item list; statements, actions, resources, principals and
    condition values are sorted sets; action names and condition keys are
    lower-cased (AWS matches both case-insensitively, so does the oracle).
  - **netpol**: annotations, the NetworkPolicy's own name and labels, the
    pods' container names and images go; documents and every list are
    sorted (peers, rules, ports and selector terms are unions or
    conjunctions). Pod and namespace names and labels stay: the question
    and the selectors name them.
  - **hcl** (security groups): resource labels are renamed after their
    content (and every reference with them), blocks and nested blocks are
    sorted, ``description`` and ``tags`` attributes of blocks go (an
    object value such as ``ingress = [{...}]`` is kept whole), whitespace
    outside strings is collapsed.

A form that does not parse falls back to the exact fingerprint. Every rule
above must keep one verdict per near-equal class; tests/test_export_hash.py
checks that over generated suites of every domain and against the oracle
on renamed and reordered copies. Undoing a rule only makes fewer configs
near-equal, never a wrong merge.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from generator.errors import ConfigError

__all__ = ["config_fingerprint", "near_fingerprint", "near_form"]


def config_fingerprint(config: str, fmt: str = "yaml") -> str:
    """A hash equal for configs that differ only in layout, comments, key order.

    YAML and JSON are parsed the way the API server reads them and hashed as
    canonical JSON; text that does not parse (and HCL) is hashed with runs of
    whitespace collapsed, which still catches re-indented copies.
    """
    canonical = None
    if fmt in ("yaml", "json"):
        documents = _documents(config)
        if documents is not None:
            canonical = _canonical(documents)
    if canonical is None:
        canonical = " ".join(config.split())
    return hashlib.sha256(canonical.encode()).hexdigest()


def near_fingerprint(domain: str, config: str, fmt: str) -> str:
    """A hash equal for configs the oracle cannot tell apart by the rules above.

    Configs of different domains never share one.
    """
    form = near_form(domain, config, fmt)
    if form is None:
        return config_fingerprint(config, fmt)
    text = f"{domain}\0{_canonical(form)}"
    return hashlib.sha256(text.encode()).hexdigest()


def near_form(domain: str, config: str, fmt: str) -> Any:
    """The canonical structure ``near_fingerprint`` hashes; None if the
    config does not parse as its domain's format."""
    try:
        if fmt == "hcl":
            return _hcl_form(config)
        if domain == "iam" and fmt == "json":
            return _iam_form(config)
        if domain == "k8s" and fmt in ("yaml", "json"):
            return _k8s_form(config)
        if domain == "netpol" and fmt in ("yaml", "json"):
            return _netpol_form(config)
    except (ConfigError, TypeError, ValueError, AttributeError):
        return None
    return None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _documents(config: str) -> list[Any] | None:
    from generator.config.k8s import load_documents

    try:
        return [d for d in load_documents(config) if d is not None]
    except (ConfigError, TypeError, ValueError):
        return None


def _sorted_lists(value: Any) -> Any:
    """``value`` with every list, at every depth, sorted as canonical JSON."""
    if isinstance(value, dict):
        return {key: _sorted_lists(item) for key, item in value.items()}
    if isinstance(value, list):
        return sorted((_sorted_lists(item) for item in value), key=_canonical)
    return value


# --- Kubernetes: what the Pod Security checks read ------------------------------

# Annotations the checks read (generator/oracle/k8s_baseline.py): seccomp
# before v1.19, AppArmor at every version. Everything else in metadata is
# invisible to them.
_SECURITY_ANNOTATIONS = (
    "seccomp.security.alpha.kubernetes.io/pod",
    "container.seccomp.security.alpha.kubernetes.io/",
    "container.apparmor.security.beta.kubernetes.io/",
)
_PER_CONTAINER = _SECURITY_ANNOTATIONS[1:]
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def _k8s_form(config: str) -> Any:
    from generator.config.k8s import load_documents, workloads

    pods = []
    for index, document in enumerate(load_documents(config)):
        for workload in workloads(document, index=index):
            pods.append(_pod_form(workload.meta, workload.spec))
    if not pods:
        return None
    return sorted(pods, key=_canonical)


def _pod_form(meta: Any, spec: Any) -> Any:
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    if annotations is not None and not isinstance(annotations, dict):
        # An ill-typed annotations field is itself a finding: keep it as is.
        return {"meta": meta, "spec": _sorted_lists(spec)}
    kept = {
        key: value
        for key, value in (annotations or {}).items()
        if isinstance(key, str) and key.startswith(_SECURITY_ANNOTATIONS)
    }
    if not isinstance(spec, dict):
        return {"annotations": kept, "spec": spec}

    # Containers are named by position after sorting on everything else, so
    # a renamed or reordered container list gives the same names. Names are
    # rewritten in the annotation keys that refer to them; '#' cannot occur
    # in a real container name, so no rewritten name meets an unknown one.
    spec = dict(spec)
    renamed: dict[str, str] = {}
    for key in _CONTAINER_LISTS:
        containers = spec.get(key)
        if not isinstance(containers, list):
            continue
        anonymous = sorted(
            (_container_form(c) for c in containers),
            key=lambda pair: _canonical(pair[1]),
        )
        spec[key] = []
        for name, body in anonymous:
            if isinstance(name, str):
                body = {**body, "name": renamed.setdefault(name, f"#{len(renamed)}")}
            elif name is not None:
                body = {**body, "name": name}
            # An ephemeral container names the container it debugs.
            target = body.get("targetContainerName")
            if isinstance(target, str) and target in renamed:
                body["targetContainerName"] = renamed[target]
            spec[key].append(body)
    annotations = {}
    for key, value in kept.items():
        for prefix in _PER_CONTAINER:
            name = key.removeprefix(prefix)
            if key.startswith(prefix) and name in renamed:
                key = prefix + renamed[name]
        annotations[key] = value
    return {"annotations": annotations, "spec": _sorted_lists(spec)}


def _container_form(container: Any) -> tuple[Any, Any]:
    """(name, the container without its name and with a bare image)."""
    if not isinstance(container, dict):
        return None, container
    body = {k: v for k, v in container.items() if k != "name"}
    if isinstance(body.get("image"), str):
        body["image"] = _bare_image(body["image"])
    return container.get("name"), _sorted_lists(body)


def _bare_image(image: str) -> str:
    """The image without tag or digest: ``reg:5000/app:1.2@sha256:..`` is
    ``reg:5000/app``."""
    image = image.partition("@")[0]
    repository, colon, tag = image.rpartition(":")
    return repository if colon and "/" not in tag else image


# --- NetworkPolicy sets ------------------------------------------------------


def _netpol_form(config: str) -> Any:
    documents = _documents(config)
    if documents is None:
        return None
    forms = []
    for document in documents:
        if not isinstance(document, dict):
            forms.append(document)
            continue
        document = dict(document)
        meta = document.get("metadata")
        if isinstance(meta, dict):
            meta = {k: v for k, v in meta.items() if k != "annotations"}
            if document.get("kind") == "NetworkPolicy":
                # A policy selects by its spec; its own name and labels
                # select nothing.
                meta.pop("name", None)
                meta.pop("labels", None)
            document["metadata"] = meta
        spec = document.get("spec")
        if document.get("kind") == "Pod" and isinstance(spec, dict):
            document["spec"] = _anonymous_containers(spec)
        forms.append(_sorted_lists(document))
    return sorted(forms, key=_canonical)


def _anonymous_containers(spec: dict[str, Any]) -> dict[str, Any]:
    """Containers without name and image: only their ports name anything."""
    spec = dict(spec)
    for key in _CONTAINER_LISTS:
        containers = spec.get(key)
        if isinstance(containers, list):
            spec[key] = [
                {k: v for k, v in c.items() if k not in ("name", "image")}
                if isinstance(c, dict)
                else c
                for c in containers
            ]
    return spec


# --- IAM policy documents ---------------------------------------------------------


def _iam_form(config: str) -> Any:
    data = json.loads(config, object_pairs_hook=_unique_keys)
    if not isinstance(data, dict) or "Statement" not in data:
        return None
    statements = data["Statement"]
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not all(
        isinstance(s, dict) for s in statements
    ):
        return None
    form = {k: v for k, v in data.items() if k not in ("Id", "Statement")}
    form["Statement"] = sorted((_statement_form(s) for s in statements), key=_canonical)
    return form


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A document with a repeated key has no single meaning (config/iam.py);
    # the exact fingerprint is all it gets.
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


def _statement_form(statement: dict[str, Any]) -> dict[str, Any]:
    form: dict[str, Any] = {}
    for key, value in statement.items():
        if key == "Sid":
            continue
        if key in ("Action", "NotAction"):
            value = _value_set(value, lower=True)
        elif key in ("Resource", "NotResource"):
            value = _value_set(value)
        elif key in ("Principal", "NotPrincipal") and isinstance(value, dict):
            value = {kind: _value_set(v) for kind, v in value.items()}
        elif key == "Condition" and isinstance(value, dict):
            value = {op: _condition_form(block) for op, block in value.items()}
        form[key] = value
    return form


def _value_set(value: Any, *, lower: bool = False) -> Any:
    """A string or list of strings as a sorted list without repeats."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        return value
    return sorted({v.lower() if lower else v for v in values})


def _condition_form(block: Any) -> Any:
    if not isinstance(block, dict):
        return block
    keys = {key.lower() for key in block}
    lower = len(keys) == len(block)  # two spellings of one key: keep both
    form = {}
    for key, value in block.items():
        values = value if isinstance(value, list) else [value]
        unique = {_canonical(v): v for v in values}
        form[key.lower() if lower else key] = [unique[k] for k in sorted(unique)]
    return form


# --- Terraform (HCL) ------------------------------------------------------------

# Attributes that only describe: no security group rule or policy reads them.
_DESCRIPTIVE = frozenset({"description", "tags", "tags_all"})


def _hcl_form(config: str) -> Any:
    from generator.config.terraform_hcl import load_module

    module = load_module(config, source="<case>")
    resources = [*module.resources.values(), *module.data.values()]

    # Each resource is renamed after its type and content, the references
    # to other resources masked; equal contents get a source-order suffix,
    # which at worst keeps two near-equal configs apart.
    masks = [
        (_reference(r.mode, r.type, r.name), f"{r.mode}:{r.type}") for r in resources
    ]
    renames: dict[str, str] = {}
    for resource in resources:
        body = _block_form(resource.body, masks, labels=False)
        digest = hashlib.sha256(_canonical(body).encode()).hexdigest()[:16]
        name = f"r{digest}"
        while name in renames.values():
            name += "'"
        renames[resource.address] = name
    names = [
        (
            _reference(r.mode, r.type, r.name),
            _address(r.mode, r.type, renames[r.address]),
        )
        for r in resources
    ]
    blocks = [
        {
            "resource": [r.mode, r.type, renames[r.address]],
            "body": _block_form(r.body, names, labels=False),
        }
        for r in resources
    ]
    variables = {
        name: [_expression(v.default, names), _expression(v.type, names)]
        for name, v in module.variables.items()
    }
    local_values = {
        name: _expression(a.expression, names) for name, a in module.locals.items()
    }
    other = [_block_form(b, names) for b in module.other]
    return {
        "resources": sorted(blocks, key=_canonical),
        "variables": variables,
        "locals": local_values,
        "other": sorted(other, key=_canonical),
    }


def _address(mode: str, kind: str, name: str) -> str:
    return f"data.{kind}.{name}" if mode == "data" else f"{kind}.{name}"


def _reference(mode: str, kind: str, name: str) -> re.Pattern[str]:
    """A reference to a resource, not a longer name that starts like it."""
    return re.compile(rf"(?<![\w.-]){re.escape(_address(mode, kind, name))}(?![\w-])")


def _block_form(block: Any, names: list, *, labels: bool = True) -> dict[str, Any]:
    attributes = {
        name: _expression(a.expression, names)
        for name, a in block.attributes.items()
        if name not in _DESCRIPTIVE
    }
    nested = [_block_form(b, names) for b in block.blocks]
    return {
        "type": block.type,
        "labels": list(block.labels) if labels else [],
        "attributes": attributes,
        "blocks": sorted(nested, key=_canonical),
    }


def _expression(expression: Any, names: list) -> str | None:
    if expression is None:
        return None
    text = _squeeze(expression.text)
    for pattern, replacement in names:
        text = pattern.sub(replacement, text)
    return text


def _squeeze(text: str) -> str:
    """The expression without layout: whitespace outside string literals
    goes, except one space where two words would otherwise join."""
    out: list[str] = []
    quoted = escaped = spaced = False
    for char in text:
        if quoted:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char.isspace():
            spaced = True
        else:
            if spaced and out and _word(out[-1]) and _word(char):
                out.append(" ")
            spaced = False
            out.append(char)
            quoted = char == '"'
    return "".join(out)


def _word(char: str) -> bool:
    return char.isalnum() or char in "_-."
