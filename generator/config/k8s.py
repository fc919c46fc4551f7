"""Kubernetes config types: YAML documents read the way the API server reads them.

Reading a manifest correctly is part of the ground truth. The API server
decodes YAML with a YAML 1.1 dialect (sigs.k8s.io/yaml, a go-yaml v2 fork), so
``allowPrivilegeEscalation: n`` is the boolean false there while PyYAML reads
the string "n". ``KubeLoader`` copies the Go resolver's scalar rules, rejects
duplicate keys (strict decoding rejects them too), and guards against alias
bombs before anything is built.

``workloads`` turns a document into the pod specs Pod Security Admission
judges: a Pod's own spec, or the template of any pod-template holder.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from generator.errors import ConfigError, UnsupportedKind

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "NON_WORKLOAD_KINDS",
    "TEMPLATE_PATHS",
    "Workload",
    "load_documents",
    "workloads",
]

MAX_BYTES = 16 * 1024 * 1024
# A document that expands to more nodes than this is an alias bomb, not a
# manifest: the largest real pod specs are a few thousand nodes.
MAX_NODES = 1_000_000
# Aliases may repeat what a document holds, up to this many times its own
# node count (or ALIAS_FLOOR nodes): anchors and merge keys in real
# manifests share a few blocks; thirty thousand copies of one are an attack.
ALIAS_FACTOR = 10
ALIAS_FLOOR = 100_000
MAX_DEPTH = 1000  # libyaml refuses deeper nesting too

# Where each pod-template holder keeps its template (PodTemplateSpec), as
# https://kubernetes.io/docs/concepts/security/pod-security-admission/
# lists the kinds it evaluates.
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "PodTemplate": ("template",),
    "ReplicationController": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Deployment": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}

# Built-in kinds that hold no pod spec: skipped, so a whole chart can be
# checked. Anything neither here nor a workload is an error, not a silent pass.
NON_WORKLOAD_KINDS = frozenset(
    {
        "APIService", "ClusterRole", "ClusterRoleBinding", "ConfigMap",
        "CustomResourceDefinition", "Endpoints", "EndpointSlice",
        "HorizontalPodAutoscaler", "Ingress", "IngressClass", "LimitRange",
        "MutatingWebhookConfiguration", "Namespace", "NetworkPolicy",
        "PersistentVolume", "PersistentVolumeClaim", "PodDisruptionBudget",
        "PriorityClass", "ResourceQuota", "Role", "RoleBinding", "RuntimeClass",
        "Secret", "Service", "ServiceAccount", "StorageClass",
        "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
    }
)  # fmt: skip


# libyaml's parser when PyYAML was built with it: parsing is most of the cost
# of judging a manifest, and the C parser is about ten times faster. The
# resolver and constructor stay in Python, so every rule below applies alike.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class KubeLoader(_SafeLoader):  # type: ignore[misc,valid-type]
    """A safe loader whose plain scalars resolve as in go-yaml v2."""


# go-yaml v2 (resolve.go) adds y/Y/n/N to YAML 1.1's booleans.
_BOOL = re.compile(
    r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE"
    r"|on|On|ON|off|Off|OFF)$"
)
_TRUE = frozenset("y Y yes Yes YES true True TRUE on On ON".split())
# Integers and floats as go-yaml v2 reads them: no base-60 forms, which
# PyYAML's YAML 1.1 resolver still accepts ("1:20" is 80 there).
_INT = re.compile(
    r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"
)
_FLOAT = re.compile(
    r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?"
    r"|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)

KubeLoader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag.endswith(("null", "merge"))]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
KubeLoader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL, list("yYnNtTfFoO"))
KubeLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
KubeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", _FLOAT, list("-+0123456789.")
)


def _construct_bool(loader: KubeLoader, node: yaml.ScalarNode) -> bool:
    return loader.construct_scalar(node) in _TRUE


def _construct_mapping(loader: KubeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    # Strict decoding rejects a repeated key; last-one-wins would let a
    # manifest say two things and have us judge only one of them.
    # Keys brought in by a merge (<<) may be overridden; written keys may not.
    merge = "tag:yaml.org,2002:merge"
    written = sum(1 for key_node, _ in node.value if key_node.tag != merge)
    loader.flatten_mapping(node)
    first_written = len(node.value) - written
    seen: dict[Any, Any] = {}
    explicit: set[str] = set()
    for position, (key_node, value_node) in enumerate(node.value):
        key = _json_key(loader.construct_object(key_node, deep=True), key_node)
        if position >= first_written:
            if key in explicit:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            explicit.add(key)
        seen[key] = loader.construct_object(value_node, deep=True)
    return seen


def _json_key(key: Any, node: yaml.Node) -> str:
    # YAML-to-JSON conversion (sigs.k8s.io/yaml) writes every key as a JSON
    # string: a key spelled y or on becomes "true", 0x10 becomes "16".
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int | str):
        return str(key)
    if isinstance(key, float):
        return repr(key)
    raise yaml.constructor.ConstructorError(
        None, None, "a mapping key must be a string or number", node.start_mark
    )


KubeLoader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
KubeLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)

# Plain scalars repeat across a manifest (true, RuntimeDefault, ALL, ...), so
# their resolved tag is remembered; the resolver's answer depends only on the
# text. Bounded so that a file of distinct scalars cannot grow it without end.
_TAG_CACHE: dict[str, str] = {}
_TAG_CACHE_MAX = 65_536


def _resolve(loader: KubeLoader, kind: type, value: str, implicit: Any) -> str:
    if kind is yaml.ScalarNode and implicit[0]:
        tag = _TAG_CACHE.get(value)
        if tag is None:
            tag = _SafeLoader.resolve(loader, kind, value, implicit)
            if len(_TAG_CACHE) < _TAG_CACHE_MAX:
                _TAG_CACHE[value] = tag
        return tag
    return _SafeLoader.resolve(loader, kind, value, implicit)


KubeLoader.resolve = _resolve
# No path resolvers are registered, so the composer's per-node bookkeeping
# for them has nothing to track.
KubeLoader.descend_resolver = lambda self, parent, index: None
KubeLoader.ascend_resolver = lambda self: None

_STR, _NULL, _BOOLTAG, _INTTAG, _FLOATTAG, _SEQ, _MAP = (
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "null", "bool", "int", "float", "seq", "map")
)


def _build(loader: KubeLoader, node: yaml.Node) -> Any:
    """The object a node stands for, by the constructors above, built directly.

    PyYAML's generic constructor costs about as much as parsing; this walks
    the tree once for the tags manifests use and hands anything else (merge
    keys, explicit tags, complex keys) to it, so both give the same object.
    Only called for documents without aliases, where no node is shared.
    """
    tag = node.tag
    if tag == _STR:
        return node.value
    if tag == _MAP:
        return _build_mapping(loader, node)
    if tag == _SEQ:
        return [_build(loader, item) for item in node.value]
    if tag == _NULL:
        return None
    if tag == _BOOLTAG:
        return node.value in _TRUE
    return loader.construct_object(node, deep=True)


def _build_mapping(loader: KubeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    built: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        if key_node.tag != _STR:
            # Merge keys and keys that are not plain strings: the generic path
            # knows their rules (override order, JSON key spelling).
            return loader.construct_object(node, deep=True)
        built[key_node.value] = _build(loader, value_node)
    if len(built) < len(node.value):
        return _construct_mapping(loader, node)  # raises on the repeated key
    return built


def _guard(node: yaml.Node) -> int:
    """Refuse alias bombs, recursive aliases and absurd nesting before building.

    The expanded size counts a node once per path that reaches it, which is
    what any consumer of the built object will walk; it is returned so a
    file's documents can be held to one budget.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(node, 0, False)]
    while stack:
        current, depth, done = stack.pop()
        key = id(current)
        if done:
            on_path.discard(key)
            children = _children(current)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_NODES:
                raise _bomb(current, f"document expands to over {MAX_NODES:,} nodes")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise _bomb(current, "an alias refers to its own ancestor")
        if depth > MAX_DEPTH:
            raise _bomb(current, f"nesting deeper than {MAX_DEPTH} levels")
        on_path.add(key)
        stack.append((current, depth, True))
        stack.extend((c, depth + 1, False) for c in _children(current))
    expanded = sizes[id(node)]
    if expanded > max(ALIAS_FLOOR, ALIAS_FACTOR * len(sizes)):
        raise _bomb(node, f"repeats its {len(sizes):,} nodes {expanded:,} times over")
    return expanded


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _bomb(node: yaml.Node, what: str) -> yaml.YAMLError:
    return yaml.constructor.ConstructorError(
        None, None, f"refused: {what}", node.start_mark
    )


def load_documents(text: str, *, source: str = "") -> list[Any]:
    """Every document of a YAML (or JSON) stream, in order; empty ones are None.

    Raises ``ConfigError`` naming the document index and line for anything
    the API server could not read either.
    """
    if len(text) > MAX_BYTES:
        raise ConfigError(
            f"file is larger than {MAX_BYTES // 2**20} MiB; split it", source=source
        )
    documents: list[Any] = []
    loader = KubeLoader(text)
    expanded = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            # Without an alias a document is no bigger than its text, and
            # libyaml bounds the nesting; only "*" can make it grow.
            if node is not None and "*" in text:
                expanded += _guard(node)
                if expanded > MAX_NODES:
                    raise _bomb(node, f"file expands to over {MAX_NODES:,} nodes")
            documents.append(_document(loader, node, aliased="*" in text))
    except yaml.YAMLError as exc:
        raise ConfigError(
            _yaml_reason(exc), source=source, index=len(documents)
        ) from None
    except RecursionError:
        raise ConfigError(
            "nesting too deep to read", source=source, index=len(documents)
        ) from None
    finally:
        loader.dispose()
    return documents


def _document(loader: KubeLoader, node: yaml.Node | None, *, aliased: bool) -> Any:
    if node is None:
        return None
    if aliased:
        return loader.construct_document(node)
    return _build(loader, node)


def _yaml_reason(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
    # Our own refusals say what is wrong; only syntax errors get the hint.
    if problem.startswith("refused"):
        hint = ""
    elif "nesting depth" in problem:
        hint = f"; flatten it (manifests nest far less than {MAX_DEPTH} levels)"
    else:
        hint = "; fix the YAML syntax"
    return f"{where}{problem}{hint}"


@dataclass(frozen=True)
class Workload:
    """A pod spec to judge, with where it sits in its file.

    ``spec_path`` is the dotted path of the pod spec inside the document
    (``spec`` for a Pod, ``spec.template.spec`` for a Deployment), so findings
    can name the exact field. ``kind``/``name`` are the top-level object's.
    """

    source: str
    index: int
    kind: str
    name: str
    meta: dict[str, Any]
    spec: dict[str, Any]
    spec_path: str
    meta_path: str
    extra: dict[str, Any] = field(default_factory=dict)


def workloads(document: Any, *, source: str = "", index: int = 0) -> list[Workload]:
    """The pod specs in one document; ``[]`` for a kind with no pod spec."""
    if document is None:
        return []
    return list(_walk(document, source, index, prefix=""))


def _walk(doc: Any, source: str, index: int, prefix: str) -> Iterator[Workload]:
    where = f" at {prefix.rstrip('.')}" if prefix else ""
    if not isinstance(doc, dict):
        raise ConfigError(
            f"not a Kubernetes object{where}: expected a mapping with apiVersion "
            f"and kind, got {type(doc).__name__}",
            source=source,
            index=index,
        )
    kind, api_version = doc.get("kind"), doc.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(api_version, str):
        raise ConfigError(
            f"not a Kubernetes object{where}: it needs string 'apiVersion' and "
            "'kind' fields",
            source=source,
            index=index,
        )
    if kind == "List" or (kind.endswith("List") and "items" in doc):
        yield from _walk_list(doc, source, index, prefix)
    elif kind == "Pod":
        yield _workload(doc, doc, source, index, prefix, ())
    elif kind in TEMPLATE_PATHS:
        template = _lookup(doc, TEMPLATE_PATHS[kind], source, index, prefix)
        # PSA allows a holder with no template: there is nothing to judge.
        if template is not None:
            yield _workload(doc, template, source, index, prefix, TEMPLATE_PATHS[kind])
    elif kind not in NON_WORKLOAD_KINDS:
        known = ", ".join(["Pod", *TEMPLATE_PATHS, "List"])
        raise UnsupportedKind(
            f"unknown kind {kind!r}{where}; spotcheck judges {known}",
            source=source,
            index=index,
        )


def _walk_list(doc: dict[str, Any], source: str, index: int, prefix: str):
    items = doc.get("items")
    items = [] if items is None else items
    if not isinstance(items, list):
        raise ConfigError(f"{prefix}items must be a list", source=source, index=index)
    for i, item in enumerate(items):
        yield from _walk(item, source, index, f"{prefix}items[{i}].")


def _lookup(doc, path, source, index, prefix):
    value = doc
    for depth, key in enumerate(path):
        if value is None:
            return None
        if not isinstance(value, dict):
            dotted = prefix + ".".join(path[:depth])
            raise ConfigError(f"{dotted} must be a mapping", source=source, index=index)
        value = value.get(key)
    return value


def _workload(doc, holder, source, index, prefix, path) -> Workload:
    base = (prefix + ".".join(path)).rstrip(".")
    dot = "." if base else ""
    meta, spec = holder.get("metadata"), holder.get("spec")
    for name, value in (("metadata", meta), ("spec", spec)):
        if value is not None and not isinstance(value, dict):
            raise ConfigError(
                f"{base}{dot}{name} must be a mapping, got {type(value).__name__}",
                source=source,
                index=index,
            )
    top_meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    return Workload(
        source=source,
        index=index,
        kind=str(doc["kind"]),
        name=str(top_meta.get("name", "")),
        meta=meta or {},
        spec=spec or {},
        spec_path=f"{base}{dot}spec",
        meta_path=f"{base}{dot}metadata",
    )
