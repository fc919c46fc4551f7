"""IAM policy documents in a Terraform file, as AWS will receive them.

A policy reaches AWS as a JSON string, written as ``jsonencode({...})``, a
heredoc, a string literal, or the ``json`` of a ``data
"aws_iam_policy_document"`` in the same file. ``iam_documents`` evaluates
each with ``terraform_eval`` and parses the JSON; anything the file alone
does not determine (``file(...)``, a resource ARN, a data source from AWS)
is reported as ``Unresolved`` with its reason, never guessed.

The data source is converted as terraform-provider-aws does it
(internal/service/iam/policy_document_data_source.go and policy_model.go):

- ``version`` defaults to "2012-10-17", ``effect`` to "Allow"; an empty
  ``sid`` is left out;
- ``actions``/``resources`` (and ``not_*``) are sets: de-duplicated, one
  element written as a string, several as a list sorted in reverse order;
- ``principals`` blocks merge by ``type``; a single block of type "*" with
  identifiers ["*"] becomes ``"Principal": "*"``;
- ``condition`` blocks merge by ``test`` then ``variable``, values appended
  in order, one value written as a string;
- ``&{`` becomes ``${`` in resources, principals and condition values (an
  IAM policy variable, escaped from Terraform);
- ``source_policy_documents`` are merged first, then the statements, then
  ``override_policy_documents``; a statement replaces an earlier one with
  the same non-empty ``Sid``.

``principals`` and ``condition`` are sets of blocks in the provider, so the
order inside a merged list follows the set's hash there and source order
here; IAM treats those lists as unordered, so the document means the same.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from generator.config.terraform_eval import (
    Evaluator,
    Resolved,
    TfSet,
    Unresolved,
    go_escape,
)
from generator.config.terraform_hcl import Attribute, Block, Module, Resource

__all__ = [
    "POLICY_ATTRIBUTES",
    "IamDocument",
    "iam_documents",
    "policy_evaluator",
    "resource_instances",
]

logger = logging.getLogger(__name__)

# Resource type -> attributes holding a policy JSON string. aws_iam_role's
# inline_policy blocks are handled apart; aws_lambda_permission holds no
# document (it builds one statement server-side).
POLICY_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "aws_iam_policy": ("policy",),
    "aws_iam_role_policy": ("policy",),
    "aws_iam_user_policy": ("policy",),
    "aws_iam_group_policy": ("policy",),
    "aws_iam_role": ("assume_role_policy",),
    "aws_s3_bucket_policy": ("policy",),
    "aws_sqs_queue_policy": ("policy",),
    "aws_sns_topic_policy": ("policy",),
    "aws_kms_key": ("policy",),
}
DOCUMENT_SOURCE = "aws_iam_policy_document"
_SID = re.compile(r"^[a-zA-Z0-9]*$")
_STRING_SETS = (
    ("actions", "Action", False),
    ("not_actions", "NotAction", False),
    ("resources", "Resource", True),
    ("not_resources", "NotResource", True),
)


@dataclass(frozen=True)
class IamDocument:
    """One policy document: exactly one of ``document`` and ``unresolved``."""

    address: str
    attribute: str
    line: int
    document: dict[str, Any] | None = None
    unresolved: Unresolved | None = None


def policy_evaluator(module: Module) -> Evaluator:
    """An evaluator that can compute ``data.aws_iam_policy_document.*.json``."""
    return Evaluator(module, {DOCUMENT_SOURCE: _document_attribute})


def iam_documents(module: Module) -> list[IamDocument]:
    """Every IAM policy document in the file, in source order."""
    evaluator = policy_evaluator(module)
    found: list[IamDocument] = []
    for resource in module.data.values():
        if resource.type == DOCUMENT_SOURCE:
            found.append(_data_document(evaluator, resource))
    for resource in module.resources.values():
        if resource.type in POLICY_ATTRIBUTES:
            found.extend(_resource_documents(evaluator, resource))
    found.sort(key=lambda d: d.line)
    logger.debug("%s: %d IAM documents", module.source, len(found))
    return found


# Policy-holding resources ----------------------------------------------------


def _resource_documents(evaluator: Evaluator, resource: Resource) -> list[IamDocument]:
    instances = _instances(evaluator, resource)
    if isinstance(instances, Unresolved):
        return [IamDocument(resource.address, "", resource.line, unresolved=instances)]
    found = []
    for suffix, scope in instances:
        address = resource.address + suffix
        resolved = evaluator.resolve(resource.body, scope)
        for name in POLICY_ATTRIBUTES[resource.type]:
            attribute = resource.body.attributes.get(name)
            if attribute is not None:
                value = resolved.attributes[name]
                found.append(_document(address, name, attribute.line, value))
        if resource.type == "aws_iam_role":
            found.extend(_inline_policies(address, resolved, resource.line))
    return found


def _instances(evaluator: Evaluator, resource: Resource):
    """(address suffix, scope) per instance that ``count``/``for_each`` make."""
    # https://developer.hashicorp.com/terraform/language/meta-arguments/count
    attributes = resource.body.attributes
    if "count" in attributes:
        count = evaluator.evaluate(attributes["count"].expression)
        if isinstance(count, Unresolved):
            return count
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            return Unresolved(
                f"count is {count!r}", attributes["count"].expression.text
            )
        return [(f"[{i}]", {"count": {"index": i}}) for i in range(count)]
    if "for_each" in attributes:
        return _for_each_instances(evaluator, attributes["for_each"])
    return [("", {})]


def resource_instances(
    evaluator: Evaluator, resource: Resource
) -> list[tuple[str, dict[str, Any]]] | Unresolved:
    """(address suffix, scope) per instance ``count``/``for_each`` make:
    ``[("", {})]`` for a plain resource, ``[]`` for ``count = 0``."""
    return _instances(evaluator, resource)


def _for_each_instances(evaluator: Evaluator, attribute: Attribute):
    # Resource for_each takes a map or a set of strings, not a list.
    items = evaluator.evaluate(attribute.expression)
    if isinstance(items, Unresolved):
        return items
    if isinstance(items, TfSet) and all(isinstance(i, str) for i in items):
        pairs = [(i, i) for i in items]
    elif isinstance(items, dict):
        pairs = sorted(items.items())
    else:
        why = "for_each must be a map or a set of strings"
        return Unresolved(why, attribute.expression.text)
    return [(f"[{json.dumps(k)}]", {"each": {"key": k, "value": v}}) for k, v in pairs]


def _inline_policies(address: str, role: Resolved, line: int) -> list[IamDocument]:
    found = []
    for index, block in enumerate(role.nested("inline_policy")):
        where = f"inline_policy[{index}].policy"
        if isinstance(block, Unresolved):
            found.append(IamDocument(address, where, line, unresolved=block))
        elif "policy" in block.attributes:
            value = block.attributes["policy"]
            found.append(_document(address, where, block.line, value))
    return found


def _document(address: str, attribute: str, line: int, value: Any) -> IamDocument:
    parsed = parse_policy(value)
    if isinstance(parsed, Unresolved):
        return IamDocument(address, attribute, line, unresolved=parsed)
    return IamDocument(address, attribute, line, document=parsed)


def parse_policy(value: Any) -> dict[str, Any] | Unresolved:
    """A policy attribute's value as the JSON object AWS parses."""
    if isinstance(value, Unresolved):
        return value
    if not isinstance(value, str):
        return Unresolved(f"policy is a {type(value).__name__}, not a string", "")
    try:
        document = json.loads(
            value, object_pairs_hook=_unique_keys, parse_constant=_no_constant
        )
    except ValueError as exc:
        return Unresolved(f"policy is not valid JSON: {exc}", value[:80])
    if not isinstance(document, dict):
        return Unresolved("policy JSON is not an object", value[:80])
    return document


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Which duplicate AWS would keep is not documented; refuse to pick one.
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"key {repeated[0]!r} appears twice")
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# The aws_iam_policy_document data source -------------------------------------


def _data_document(evaluator: Evaluator, resource: Resource) -> IamDocument:
    document = _converted(evaluator, resource.address)
    if isinstance(document, Unresolved):
        return IamDocument(resource.address, "json", resource.line, unresolved=document)
    return IamDocument(resource.address, "json", resource.line, document=document)


def _document_attribute(evaluator: Evaluator, address: str, attribute: str) -> Any:
    """``json`` / ``minified_json`` of a data source, as the provider writes them."""
    if attribute not in ("json", "minified_json"):
        return Unresolved(f"{address}.{attribute} is not computed here", address)
    document = _converted(evaluator, address)
    if isinstance(document, Unresolved):
        return document
    if attribute == "json":  # Go's json.MarshalIndent(doc, "", "  ")
        return go_escape(json.dumps(document, indent=2, ensure_ascii=False))
    return go_escape(json.dumps(document, separators=(",", ":"), ensure_ascii=False))


def _converted(evaluator: Evaluator, address: str) -> dict[str, Any] | Unresolved:
    resource = evaluator.module.data[address]
    return evaluator.cached(("data", address), lambda: _convert(evaluator, resource))


def _convert(evaluator: Evaluator, resource: Resource) -> dict[str, Any] | Unresolved:
    body = resource.body
    if "count" in body.attributes or "for_each" in body.attributes:
        return Unresolved("data source with count or for_each", resource.address)
    resolved = evaluator.resolve(body)
    try:
        return _merged(resolved, body)
    except _Invalid as exc:
        return Unresolved(str(exc), resource.address)


class _Invalid(Exception):
    """The provider would reject the data source, or a part is unresolved."""


def _merged(resolved: Resolved, body: Block) -> dict[str, Any]:
    values = resolved.attributes
    version = _string(_default(values, "version", "2012-10-17"), "version")
    if version not in ("2008-10-17", "2012-10-17"):
        raise _Invalid(f"version {version!r} is rejected by the provider")
    merged: dict[str, Any] = {"Version": "", "Id": "", "Statement": []}
    sources = _json_list(values.get("source_policy_documents"), "source")
    seen: set[str] = set()
    for document in sources:
        for statement in document["Statement"]:
            sid = statement.get("Sid", "")
            if sid and sid in seen:
                raise _Invalid(f"duplicate Sid {sid!r} in source_policy_documents")
            seen.add(sid)
        _merge(merged, document)
    own = {"Version": version, "Id": "", "Statement": _statements(resolved, version)}
    if "policy_id" in values:
        own["Id"] = _string(values["policy_id"], "policy_id")
    _merge(merged, own)
    for document in _json_list(values.get("override_policy_documents"), "override"):
        _merge(merged, document)
    return {k: v for k, v in merged.items() if v}


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    # iamPolicyDoc.Merge: adopt Id, upgrade Version, replace statements by Sid.
    if new["Id"]:
        into["Id"] = new["Id"]
    if new["Version"] > into["Version"]:
        into["Version"] = new["Version"]
    for statement in new["Statement"]:
        sid = statement.get("Sid", "")
        same = [
            i for i, s in enumerate(into["Statement"]) if sid and s.get("Sid") == sid
        ]
        if same:
            into["Statement"][same[0]] = statement
        else:
            into["Statement"].append(statement)


def _statements(resolved: Resolved, version: str) -> list[dict[str, Any]]:
    statements, sids = [], set()
    for block in resolved.nested("statement"):
        if isinstance(block, Unresolved):
            raise _Invalid(block.reason)
        statement = _statement(block, version)
        sid = statement.get("Sid", "")
        if sid and sid in sids:
            raise _Invalid(f"duplicate Sid {sid!r}; the provider rejects it")
        sids.add(sid)
        statements.append(statement)
    return statements


def _statement(block: Resolved, version: str) -> dict[str, Any]:
    values = block.attributes
    statement: dict[str, Any] = {}
    sid = _string(_default(values, "sid", ""), "sid")
    if not _SID.match(sid):
        raise _Invalid(f"sid {sid!r} must be alphanumeric")
    if sid:
        statement["Sid"] = sid
    effect = _string(_default(values, "effect", "Allow"), "effect")
    if effect not in ("Allow", "Deny"):
        raise _Invalid(f"effect {effect!r} is rejected by the provider")
    statement["Effect"] = effect
    for name, key, variables in _STRING_SETS:
        items = _string_set(values.get(name), name)
        if items:
            statement[key] = _replace_vars(_decode_set(items), version, variables)
    for name, key in (("principals", "Principal"), ("not_principals", "NotPrincipal")):
        principals = _principals(block.nested(name), version)
        if principals:
            statement[key] = principals
    conditions = _conditions(block.nested("condition"), version)
    if conditions:
        statement["Condition"] = conditions
    return statement


def _principals(blocks: list[Any], version: str) -> Any:
    entries: list[tuple[str, Any]] = []
    for block in blocks:
        if isinstance(block, Unresolved):
            raise _Invalid(block.reason)
        kind = _string(block.attributes.get("type"), "principals.type")
        identifiers = _string_set(block.attributes.get("identifiers"), "identifiers")
        entry = (kind, _replace_vars(_decode_set(identifiers), version, True))
        if entry not in entries:  # a set of blocks: identical ones collapse
            entries.append(entry)
    if not entries:
        return None
    # iamPolicyStatementPrincipalSet.MarshalJSON
    if len(entries) == 1 and entries[0][0] == "*" and entries[0][1] in ("*", ["*"]):
        return "*"
    merged: dict[str, Any] = {}
    for kind, identifiers in entries:
        if kind not in merged:
            merged[kind] = identifiers
            continue
        previous = merged[kind]
        previous = previous if isinstance(previous, list) else [previous]
        extra = identifiers if isinstance(identifiers, list) else [identifiers]
        merged[kind] = previous + extra
    return dict(sorted(merged.items()))  # Go writes map keys sorted


def _conditions(blocks: list[Any], version: str) -> dict[str, Any]:
    entries: list[tuple[str, str, tuple[str, ...]]] = []
    for block in blocks:
        if isinstance(block, Unresolved):
            raise _Invalid(block.reason)
        test = _string(block.attributes.get("test"), "condition.test")
        variable = _string(block.attributes.get("variable"), "condition.variable")
        values = _string_list(block.attributes.get("values"), "condition.values")
        entry = (test, variable, tuple(_replace_vars(values, version, True)))
        if entry not in entries:
            entries.append(entry)
    # iamPolicyStatementConditionSet.MarshalJSON
    merged: dict[str, dict[str, list[str]]] = {}
    for test, variable, values in entries:
        merged.setdefault(test, {}).setdefault(variable, []).extend(values)
    return {
        test: {k: v[0] if len(v) == 1 else v for k, v in sorted(by_variable.items())}
        for test, by_variable in sorted(merged.items())
    }


def _decode_set(items: list[str]) -> Any:
    # policyDecodeConfigStrings: one element as a string, else reverse-sorted.
    return items[0] if len(items) == 1 else sorted(items, reverse=True)


def _replace_vars(value: Any, version: str, applies: bool) -> Any:
    if not applies:
        return value
    items = value if isinstance(value, list) else [value]
    if version == "2008-10-17" and any("&{" in i for i in items):
        raise _Invalid("&{ is not supported in version 2008-10-17")
    replaced = [i.replace("&{", "${") for i in items]
    return replaced if isinstance(value, list) else replaced[0]


# Typed reads of resolved attributes -----------------------------------------


def _default(values: dict[str, Any], name: str, default: str) -> Any:
    # An attribute set to null is unset in Terraform: the default applies.
    value = values.get(name)
    return default if value is None else value


def _known(value: Any, what: str) -> Any:
    if isinstance(value, Unresolved):
        raise _Invalid(f"{what}: {value.reason} ({value.expression})")
    return value


def _string(value: Any, what: str) -> str:
    value = _known(value, what)
    if value is None:
        raise _Invalid(f"{what} is required")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        raise _Invalid(f"{what} must be a string, got {type(value).__name__}")
    return value


def _string_list(value: Any, what: str) -> list[str]:
    value = _known(value, what)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Invalid(f"{what} must be a list, got {type(value).__name__}")
    return [_string(v, what) for v in value]


def _string_set(value: Any, what: str) -> list[str]:
    return sorted(set(_string_list(value, what)))


def _json_list(value: Any, what: str) -> list[dict[str, Any]]:
    documents = []
    value = _known(value, f"{what}_policy_documents") or []
    if not isinstance(value, list):
        raise _Invalid(f"{what}_policy_documents must be a list")
    for index, text in enumerate(value):
        if text is None:  # the provider skips null entries
            continue
        parsed = parse_policy(_known(text, f"{what} document {index}"))
        if isinstance(parsed, Unresolved):
            raise _Invalid(f"{what} document {index}: {parsed.reason}")
        documents.append(_from_json(parsed, f"{what} document {index}"))
    return documents


def _from_json(document: dict[str, Any], what: str) -> dict[str, Any]:
    """A merged-in document as the provider re-reads it (iamPolicyDoc).

    Go's decoder matches field names case-insensitively and ignores unknown
    ones; principals and conditions are re-encoded by the rules above.
    """
    fields = {k.lower(): v for k, v in document.items()}
    statements = fields.get("statement") or []
    if not isinstance(statements, list):
        raise _Invalid(f"{what}: Statement must be a list for the provider")
    return {
        "Version": _optional_string(fields.get("version"), what),
        "Id": _optional_string(fields.get("id"), what),
        "Statement": [_statement_from_json(s, what) for s in statements],
    }


def _statement_from_json(statement: Any, what: str) -> dict[str, Any]:
    if not isinstance(statement, dict):
        raise _Invalid(f"{what}: a statement is not an object")
    fields = {k.lower(): v for k, v in statement.items()}
    out: dict[str, Any] = {}
    for key in ("Sid", "Effect"):
        text = _optional_string(fields.get(key.lower()), what)
        if text:
            out[key] = text
    for key in ("Action", "NotAction", "Resource", "NotResource"):
        if fields.get(key.lower()) is not None:
            out[key] = fields[key.lower()]
    for key in ("Principal", "NotPrincipal"):
        if fields.get(key.lower()) is not None:
            out[key] = _principal_from_json(fields[key.lower()], what)
    if fields.get("condition") is not None:
        out["Condition"] = _condition_from_json(fields["condition"], what)
    return out


def _principal_from_json(value: Any, what: str) -> Any:
    if isinstance(value, str):
        return "*"  # any string reads back as {Type: "*", Identifiers: ["*"]}
    if not isinstance(value, dict):
        raise _Invalid(f"{what}: Principal must be a string or an object")
    out: dict[str, Any] = {}
    for kind, identifiers in value.items():
        if isinstance(identifiers, list):
            if not all(isinstance(i, str) for i in identifiers):
                raise _Invalid(f"{what}: principal identifiers must be strings")
            out[kind] = sorted(identifiers, reverse=True)
        elif isinstance(identifiers, str):
            out[kind] = identifiers
        else:
            raise _Invalid(f"{what}: principal identifiers must be strings")
    if len(out) == 1 and out.get("*") in ("*", ["*"]):
        return "*"
    return out


def _condition_from_json(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(
        isinstance(v, dict) for v in value.values()
    ):
        raise _Invalid(f"{what}: Condition must map operators to objects")
    out: dict[str, Any] = {}
    for test, variables in value.items():
        for variable, values in variables.items():
            if isinstance(values, bool):
                values = ["true" if values else "false"]
            elif isinstance(values, str):
                values = [values]
            elif isinstance(values, list) and all(isinstance(v, str) for v in values):
                values = list(values)
            else:
                # The provider drops numbers and crashes on mixed lists.
                raise _Invalid(f"{what}: condition values must be strings")
            out.setdefault(test, {})[variable] = (
                values[0] if len(values) == 1 else values
            )
    return out


def _optional_string(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Invalid(f"{what}: Version, Id, Sid and Effect must be strings")
    return value
