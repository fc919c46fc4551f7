"""A small, exact evaluator for the Terraform expressions policies are made of.

Evaluated, with Terraform's meaning:

- literals: strings (escapes decoded, ``$${`` kept as literal ``${``),
  numbers (integral ones as ``int``), ``true``/``false``/``null``, tuples
  ``[...]`` and objects ``{...}``;
- templates: ``"a-${expr}-b"`` and heredocs (``<<EOF``, flush ``<<-EOF``)
  with interpolations; a template that is exactly one ``${expr}`` yields
  ``expr``'s value unchanged, as in HCL;
- references: ``var.x`` (its ``default``, converted to its declared
  ``type`` for string/number/bool/list/set/map/any), ``local.x``,
  ``data.aws_iam_policy_document.x.json`` / ``.minified_json`` (via the
  handler ``terraform_iam`` registers), names in ``scope`` (``each``,
  ``count``, a dynamic block's iterator), and ``.attr`` / ``[index]`` on
  known values;
- functions: ``jsonencode``, ``concat``, ``tolist``, ``toset``, ``flatten``,
  ``cidrsubnet`` (a trailing ``...`` spreads the last argument);
- ``cond ? a : b`` with a known boolean condition and branches of one type;
- unary ``-`` and ``!``.

Anything else evaluates to ``Unresolved(reason, expression)``: data sources
and resource attributes (known only after apply), module outputs, variables
without a default, other functions (``file`` included), operators, ``for``
expressions, splats and template directives. Nothing is guessed; an
unresolved part makes the whole value unresolved.

Sets are ``TfSet`` (a sorted, de-duplicated list, the order Terraform uses
for sets of strings and numbers), so ``for_each`` can tell them from lists.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lark import Token, Tree

from generator.config.terraform_hcl import (
    Block,
    Expression,
    Module,
    parse_expression,
    unescape,
)
from generator.errors import ConfigError

__all__ = [
    "MAX_ITEMS",
    "MAX_STRING",
    "Evaluator",
    "Resolved",
    "TfSet",
    "Unresolved",
    "jsonencode",
]

logger = logging.getLogger(__name__)

# Locals may double a value at each step (concat(local.a, local.a)); these
# caps turn such a bomb into Unresolved instead of exhausting memory.
MAX_ITEMS = 100_000
MAX_STRING = 1024 * 1024


@dataclass(frozen=True)
class Unresolved:
    """A value the file alone does not determine, and why."""

    reason: str
    expression: str


class TfSet(list):
    """A Terraform set: iterated in sorted order, no duplicates."""


@dataclass(frozen=True)
class Resolved:
    """A block with every attribute evaluated and dynamic blocks expanded.

    ``attributes`` values are plain Python values or ``Unresolved``;
    ``blocks`` holds nested ``Resolved`` blocks in source order, with an
    ``Unresolved`` in place of a dynamic block that cannot be expanded.
    """

    type: str
    labels: tuple[str, ...]
    attributes: dict[str, Any]
    blocks: tuple[Resolved | Unresolved, ...]
    line: int

    def nested(self, block_type: str) -> list[Resolved | Unresolved]:
        """Nested blocks of one type; an Unresolved stands for a dynamic one."""
        return [
            b for b in self.blocks if isinstance(b, Unresolved) or b.type == block_type
        ]


DataHandler = Callable[["Evaluator", str, str], Any]


class Evaluator:
    """Evaluates expressions of one module; caches locals and variables.

    ``data_handlers`` maps a data source type to a function
    ``(evaluator, address, attribute) -> value`` for the few data sources
    whose result Terraform computes locally (aws_iam_policy_document).
    """

    def __init__(
        self, module: Module, data_handlers: Mapping[str, DataHandler] | None = None
    ):
        self.module = module
        self.data_handlers = dict(data_handlers or {})
        self._cache: dict[tuple[str, str], Any] = {}
        self._active: set[tuple[str, str]] = set()

    # Public entry points -------------------------------------------------

    def evaluate(self, expression: Expression, scope: Mapping[str, Any] | None = None):
        """The value of ``expression``, or ``Unresolved``."""
        try:
            return self._eval(expression.tree, dict(scope or {}), expression)
        except _Stop as stop:
            return stop.unresolved

    def resolve(self, block: Block, scope: Mapping[str, Any] | None = None) -> Resolved:
        """``block`` with attributes evaluated and dynamic blocks expanded."""
        scope = dict(scope or {})
        values = {
            name: self.evaluate(attribute.expression, scope)
            for name, attribute in block.attributes.items()
        }
        nested: list[Resolved | Unresolved] = []
        for child in block.blocks:
            if child.type == "dynamic":
                nested.extend(self._expand_dynamic(child, scope))
            else:
                nested.append(self.resolve(child, scope))
        return Resolved(block.type, block.labels, values, tuple(nested), block.line)

    def cached(self, key: tuple[str, str], compute: Callable[[], Any]) -> Any:
        """Memoise ``compute`` under ``key``; a cycle evaluates to Unresolved."""
        if key in self._cache:
            return self._cache[key]
        if key in self._active:
            return Unresolved(f"{'.'.join(key)} refers to itself", ".".join(key))
        self._active.add(key)
        try:
            value = compute()
        finally:
            self._active.discard(key)
        self._cache[key] = value
        return value

    # Dynamic blocks ------------------------------------------------------

    def _expand_dynamic(self, block: Block, scope: dict[str, Any]):
        # https://developer.hashicorp.com/terraform/language/expressions/dynamic-blocks
        label = block.labels[0] if block.labels else "?"
        for_each = block.attributes.get("for_each")
        contents = block.nested("content")
        if for_each is None or len(contents) != 1:
            why = "a dynamic block needs for_each and one content block"
            return [Unresolved(why, f"dynamic {label!r}")]
        items = self.evaluate(for_each.expression, scope)
        pairs = iteration_pairs(items)
        if isinstance(pairs, Unresolved):
            return [Unresolved(pairs.reason, for_each.expression.text)]
        iterator = _iterator_name(block, label)
        content = contents[0]
        return [
            _retype(
                self.resolve(content, {**scope, iterator: {"key": k, "value": v}}),
                label,
            )
            for k, v in pairs
        ]

    # Expressions -----------------------------------------------------------

    def _eval(self, node: Tree, scope: dict[str, Any], where: Expression) -> Any:
        handler = getattr(self, f"_eval_{node.data}", None)
        if handler is None:
            raise _Stop(_unsupported(node, where))
        return handler(node, scope, where)

    def _eval_expr_term(self, node, scope, where):
        first = node.children[0]
        if isinstance(first, Token):  # ( expression )
            return self._eval(_subtrees(node)[0], scope, where)
        return self._eval(first, scope, where)

    def _eval_int_lit(self, node, scope, where):
        return _number(str(node.children[0]))

    _eval_float_lit = _eval_int_lit

    def _eval_literal_value(self, node, scope, where):
        return {"true": True, "false": False, "null": None}[str(node.children[0])]

    def _eval_unary_op(self, node, scope, where):
        operator, operand = node.children[0], node.children[1]
        value = self._eval(operand, scope, where)
        if str(operator) == "-" and _is_number(value):
            return -value
        if str(operator) == "!" and isinstance(value, bool):
            return not value
        raise _Stop(Unresolved(f"cannot apply {operator} to {value!r}", where.text))

    def _eval_tuple(self, node, scope, where):
        items = [self._eval(child, scope, where) for child in _subtrees(node)]
        return _checked_list(items, where)

    def _eval_object(self, node, scope, where):
        result: dict[str, Any] = {}
        for element in _subtrees(node):
            key_node, value_node = _subtrees(element)
            key = self._object_key(key_node, scope, where)
            if key in result:
                why = f"object key {key!r} is given twice"
                raise _Stop(Unresolved(why, where.text))
            result[key] = self._eval(value_node, scope, where)
        return result

    def _object_key(self, node: Tree, scope, where) -> str:
        # A bare identifier key is the literal name (HCL ObjectConsKeyExpr);
        # anything else, e.g. "quoted" or (var.k), is evaluated.
        inner = node.children[0]
        if inner.data == "keyword":
            return str(inner.children[0])
        term = inner.children[0]
        if isinstance(term, Tree) and term.data == "identifier":
            return str(term.children[0])
        key = self._eval(inner, scope, where)
        if isinstance(key, bool) or not isinstance(key, str | int | float):
            raise _Stop(Unresolved(f"object key {key!r} is not a string", where.text))
        return template_string(key, where)

    def _eval_conditional(self, node, scope, where):
        condition, yes, no = _subtrees(node)
        test = self._eval(condition, scope, where)
        if not isinstance(test, bool):
            raise _Stop(Unresolved(f"condition is {test!r}, not a bool", where.text))
        chosen = self._eval(yes if test else no, scope, where)
        other = self.evaluate(
            Expression(no if test else yes, where.text, where.line), scope
        )
        if not _same_kind(chosen, other):
            # Terraform unifies the branch types first, which can change the
            # chosen value (true ? 1 : "x" is "1"); we do not model that.
            raise _Stop(Unresolved("branches have different types", where.text))
        return chosen

    def _eval_string(self, node, scope, where):
        parts = [p.children[0] for p in _subtrees(node)]
        if len(parts) == 1 and isinstance(parts[0], Tree):
            if parts[0].data == "interpolation":
                return self._eval(_subtrees(parts[0])[0], scope, where)
        pieces: list[str] = []
        for part in parts:
            pieces.append(self._string_part(part, scope, where))
        return _checked_string("".join(pieces), where)

    def _string_part(self, part, scope, where) -> str:
        if isinstance(part, Token):
            if part.type == "STRING_CHARS":
                return unescape(str(part))
            # ESCAPED_INTERPOLATION / ESCAPED_DIRECTIVE: $${ -> ${, %%{ -> %{
            return str(part)[1:]
        if part.data != "interpolation":
            raise _Stop(Unresolved("template directives are not evaluated", where.text))
        value = self._eval(_subtrees(part)[0], scope, where)
        return template_string(value, where)

    def _eval_heredoc_template(self, node, scope, where):
        body = _heredoc_body(str(node.children[0]), flush=False)
        return self._template(body, scope, where)

    def _eval_heredoc_template_trim(self, node, scope, where):
        body = _heredoc_body(str(node.children[0]), flush=True)
        return self._template(body, scope, where)

    def _template(self, body: str, scope, where) -> Any:
        pieces = _split_template(body, where)
        if len(pieces) == 1 and isinstance(pieces[0], Expression):
            return self._eval(pieces[0].tree, scope, pieces[0])
        out = []
        for piece in pieces:
            if isinstance(piece, str):
                out.append(piece)
            else:
                out.append(template_string(self._eval(piece.tree, scope, piece), where))
        return _checked_string("".join(out), where)

    def _eval_function_call(self, node, scope, where):
        name_nodes = [
            c for c in node.children if isinstance(c, Tree) and c.data == "identifier"
        ]
        name = "::".join(str(n.children[0]) for n in name_nodes)
        function = _FUNCTIONS.get(name)
        if function is None:
            why = f"function {name}() is not evaluated"
            if name == "file":
                why = "file() reads a file outside this one"
            raise _Stop(Unresolved(why, where.text))
        arguments = [
            c for c in node.children if isinstance(c, Tree) and c.data == "arguments"
        ]
        args, spread = [], False
        if arguments:
            args = [self._eval(a, scope, where) for a in _subtrees(arguments[0])]
            spread = any(
                isinstance(t, Token) and t.type == "ELLIPSIS"
                for t in arguments[0].children
            )
        if spread:
            if not args or not isinstance(args[-1], list):
                raise _Stop(
                    Unresolved("... needs a list as the last argument", where.text)
                )
            args = args[:-1] + list(args[-1])
        return function(args, where)

    # References ------------------------------------------------------------

    def _eval_identifier(self, node, scope, where):
        return self._reference(node, [], scope, where)

    def _eval_get_attr_expr_term(self, node, scope, where):
        return self._traverse(node, scope, where)

    _eval_index_expr_term = _eval_get_attr_expr_term

    def _traverse(self, node: Tree, scope, where) -> Any:
        # Unwind a.b["c"][0] into a root and steps; evaluate indexes as we go.
        steps: list[Any] = []
        while node.data in ("get_attr_expr_term", "index_expr_term", "expr_term"):
            if node.data == "expr_term":
                inner = node.children[0]
                if not isinstance(inner, Tree) or inner.data not in (
                    "get_attr_expr_term",
                    "index_expr_term",
                ):
                    break
                node = inner
                continue
            base, step = node.children
            steps.append(self._step(step, scope, where))
            node = base
        steps.reverse()
        root = node.children[0] if node.data == "expr_term" else node
        if isinstance(root, Tree) and root.data == "identifier":
            return self._reference(root, steps, scope, where)
        value = self._eval(node, scope, where)
        return _walk_steps(value, steps, where)

    def _step(self, step: Tree, scope, where) -> Any:
        if step.data == "get_attr":
            return _Attr(str(_subtrees(step)[0].children[0]))
        if step.data == "short_index":
            return int(str(step.children[-1]))
        return self._eval(_subtrees(step)[0], scope, where)

    def _reference(self, root: Tree, steps: list[Any], scope, where) -> Any:
        name = str(root.children[0])
        if name in scope:
            return _walk_steps(scope[name], steps, where)
        if name == "var" and steps and isinstance(steps[0], _Attr):
            value = self._variable(steps[0].name, where)
            return _walk_steps(value, steps[1:], where)
        if name == "local" and steps and isinstance(steps[0], _Attr):
            value = self._local(steps[0].name, where)
            return _walk_steps(value, steps[1:], where)
        if name == "data" and len(steps) >= 3:
            return self._data(steps, where)
        raise _Stop(Unresolved(_why_unknown(name), where.text))

    def _variable(self, name: str, where: Expression) -> Any:
        variable = self.module.variables.get(name)
        if variable is None:
            raise _Stop(Unresolved(f"no variable {name!r} is declared", where.text))
        if variable.default is None:
            raise _Stop(Unresolved(f"var.{name} has no default", where.text))

        def compute():
            value = self.evaluate(variable.default)
            if variable.type is None or isinstance(value, Unresolved):
                return value
            return convert(value, variable.type.tree, variable.default.text)

        return _known(self.cached(("var", name), compute))

    def _local(self, name: str, where: Expression) -> Any:
        attribute = self.module.locals.get(name)
        if attribute is None:
            raise _Stop(Unresolved(f"no local {name!r} is defined", where.text))
        value = self.cached(
            ("local", name), lambda: self.evaluate(attribute.expression)
        )
        return _known(value)

    def _data(self, steps: list[Any], where: Expression) -> Any:
        kind, name, attr = steps[0], steps[1], steps[2]
        if not all(isinstance(s, _Attr) for s in (kind, name, attr)):
            raise _Stop(Unresolved("data source with count or for_each", where.text))
        address = f"data.{kind.name}.{name.name}"
        handler = self.data_handlers.get(kind.name)
        if address not in self.module.data:
            raise _Stop(
                Unresolved(f"{address} is not declared in this file", where.text)
            )
        if handler is None:
            why = f"{address} is read from the provider at plan time"
            raise _Stop(Unresolved(why, where.text))
        value = handler(self, address, attr.name)
        return _walk_steps(_known(value), steps[3:], where)


class _Stop(Exception):
    """Unwinds an evaluation at the first Unresolved part."""

    def __init__(self, unresolved: Unresolved):
        super().__init__(unresolved.reason)
        self.unresolved = unresolved


@dataclass(frozen=True)
class _Attr:
    name: str


def _known(value: Any) -> Any:
    if isinstance(value, Unresolved):
        raise _Stop(value)
    return value


def _subtrees(node: Tree) -> list[Tree]:
    return [
        c
        for c in node.children
        if isinstance(c, Tree) and c.data != "new_line_or_comment"
    ]


def _unsupported(node: Tree, where: Expression) -> Unresolved:
    names = {
        "binary_op": "operators are not evaluated",
        "for_tuple_expr": "for expressions are not evaluated",
        "for_object_expr": "for expressions are not evaluated",
        "attr_splat_expr_term": "splat expressions are not evaluated",
        "full_splat_expr_term": "splat expressions are not evaluated",
        "template_string": "template directives are not evaluated",
    }
    return Unresolved(names.get(node.data, f"{node.data} is not evaluated"), where.text)


def _why_unknown(name: str) -> str:
    if name == "module":
        return "module outputs are not evaluated"
    if name in ("count", "each", "self", "path", "terraform"):
        return f"{name}.* is not known here"
    if name == "data":
        return "data source values are known only after apply"
    return f"{name} is a resource attribute, known only after apply"


def _walk_steps(value: Any, steps: list[Any], where: Expression) -> Any:
    for step in steps:
        value = _known(value)
        if isinstance(step, _Attr):
            step = step.name
            if not isinstance(value, dict):
                raise _Stop(
                    Unresolved(f"no attribute {step!r} on {value!r}", where.text)
                )
        if isinstance(value, dict):
            if not isinstance(step, str) or step not in value:
                raise _Stop(Unresolved(f"no key {step!r}", where.text))
            value = value[step]
        elif isinstance(value, list) and not isinstance(value, TfSet):
            if not isinstance(step, int) or isinstance(step, bool):
                raise _Stop(Unresolved(f"index {step!r} is not a number", where.text))
            if not 0 <= step < len(value):
                raise _Stop(Unresolved(f"index {step} is out of range", where.text))
            value = value[step]
        else:
            raise _Stop(Unresolved(f"cannot index {value!r}", where.text))
    return _known(value)


# Values --------------------------------------------------------------------


def _number(text: str) -> int | float:
    number = Decimal(text)
    return int(number) if number == number.to_integral_value() else float(number)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if _is_number(value):
        return "number"
    return type(value).__name__


def _same_kind(chosen: Any, other: Any) -> bool:
    if isinstance(other, Unresolved):
        return isinstance(chosen, str)
    if chosen is None or other is None:
        return True
    return _kind(chosen) == _kind(other) or (
        isinstance(chosen, list) and isinstance(other, list)
    )


def template_string(value: Any, where: Expression | None = None) -> str:
    """A value as Terraform writes it into a string template."""
    text = where.text if where else ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_number(value):
        return format(Decimal(str(value)).normalize(), "f")
    if value is None:
        raise _Stop(Unresolved("null in a string template", text))
    raise _Stop(Unresolved(f"cannot put a {_kind(value)} in a string", text))


def _checked_list(items: list[Any], where: Expression) -> list[Any]:
    if len(items) > MAX_ITEMS:
        raise _Stop(Unresolved(f"list longer than {MAX_ITEMS:,} items", where.text))
    return items


def _checked_string(text: str, where: Expression) -> str:
    if len(text) > MAX_STRING:
        raise _Stop(Unresolved(f"string longer than {MAX_STRING:,} chars", where.text))
    return text


def iteration_pairs(items: Any) -> list[tuple[Any, Any]] | Unresolved:
    """(key, value) pairs a dynamic block's for_each yields."""
    if isinstance(items, Unresolved):
        return items
    if isinstance(items, TfSet):
        return [(v, v) for v in items]
    if isinstance(items, list):
        return list(enumerate(items))
    if isinstance(items, dict):
        return sorted(items.items())
    return Unresolved(f"for_each is {_kind(items)}, not a collection", repr(items))


def _iterator_name(block: Block, label: str) -> str:
    iterator = block.attributes.get("iterator")
    return iterator.expression.text.strip() if iterator else label


def _retype(resolved: Resolved, label: str) -> Resolved:
    return Resolved(label, (), resolved.attributes, resolved.blocks, resolved.line)


# Conversions ---------------------------------------------------------------


def convert(value: Any, type_tree: Tree, text: str) -> Any:
    """``value`` converted to a variable's declared type, or Unresolved."""
    try:
        return _convert(value, type_tree, text)
    except _Stop as stop:
        return stop.unresolved


def _convert(value: Any, node: Tree, text: str) -> Any:
    term = node.children[0] if node.data == "expr_term" else node
    if isinstance(term, Tree) and term.data == "identifier":
        return _convert_primitive(value, str(term.children[0]), text)
    if isinstance(term, Tree) and term.data == "function_call":
        name = str(term.children[0].children[0])
        args = [
            c for c in term.children if isinstance(c, Tree) and c.data == "arguments"
        ]
        inner = _subtrees(args[0]) if args else []
        if name in ("list", "set", "map") and len(inner) == 1 and value is not None:
            return _convert_collection(value, name, inner[0], text)
    raise _Stop(Unresolved("variable type is not modelled", text))


def _convert_primitive(value: Any, name: str, text: str) -> Any:
    if name == "any" or value is None:
        return value
    if name == "string" and not isinstance(value, list | dict):
        return template_string(value)
    if name == "number" and _is_number(value):
        return value
    if name == "number" and isinstance(value, str):
        try:
            return _number(value)
        except ArithmeticError:
            pass
    if name == "bool" and isinstance(value, bool):
        return value
    if name == "bool" and value in ("true", "false"):
        return value == "true"
    raise _Stop(Unresolved(f"default {value!r} is not a {name}", text))


def _convert_collection(value: Any, name: str, element: Tree, text: str) -> Any:
    if name == "map":
        if not isinstance(value, dict):
            raise _Stop(Unresolved(f"default {value!r} is not a map", text))
        return {k: _convert(v, element, text) for k, v in value.items()}
    if not isinstance(value, list):
        raise _Stop(Unresolved(f"default {value!r} is not a {name}", text))
    items = [_convert(v, element, text) for v in value]
    return to_set(items, text) if name == "set" else items


def to_set(items: list[Any], text: str) -> TfSet:
    """Terraform's toset for primitives: one type, sorted, no duplicates."""
    known = [_known(i) for i in items]
    kinds = {_kind(i) for i in known}
    if kinds <= {"number"}:
        return TfSet(sorted(set(known)))
    if kinds <= {"str", "number", "bool"}:
        # Mixed primitives unify to string, as toset(["a", 1]) does.
        return TfSet(sorted({template_string(i) for i in known}))
    raise _Stop(Unresolved("toset of non-primitive values is not evaluated", text))


# Functions -----------------------------------------------------------------


def jsonencode(value: Any) -> str:
    """Terraform's jsonencode: sorted keys, compact, Go's HTML escaping."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return go_escape(text)


def go_escape(text: str) -> str:
    """Escape what Go's encoding/json escapes beyond JSON's minimum."""
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def _fn_jsonencode(args: list[Any], where: Expression) -> str:
    _arity(args, 1, "jsonencode", where)
    _check_size(args[0], where)
    return jsonencode(args[0])


def _fn_concat(args: list[Any], where: Expression) -> list[Any]:
    out: list[Any] = []
    for arg in args:
        if not isinstance(arg, list):
            raise _Stop(Unresolved(f"concat of a {_kind(arg)}", where.text))
        out.extend(arg)
        _checked_list(out, where)
    return out


def _fn_tolist(args: list[Any], where: Expression) -> list[Any]:
    _arity(args, 1, "tolist", where)
    if not isinstance(args[0], list):
        raise _Stop(Unresolved(f"tolist of a {_kind(args[0])}", where.text))
    return list(args[0])


def _fn_toset(args: list[Any], where: Expression) -> TfSet:
    _arity(args, 1, "toset", where)
    if not isinstance(args[0], list):
        raise _Stop(Unresolved(f"toset of a {_kind(args[0])}", where.text))
    return to_set(args[0], where.text)


def _arity(args: list[Any], count: int, name: str, where: Expression) -> None:
    if len(args) != count:
        raise _Stop(Unresolved(f"{name}() takes {count} argument(s)", where.text))


def _check_size(value: Any, where: Expression) -> None:
    # Shared sub-values (local.a used twice) make a value bigger than its
    # text; count nodes before encoding so a doubling chain stays bounded.
    stack, seen = [value], 0
    while stack:
        current = stack.pop()
        seen += 1
        if seen > MAX_ITEMS:
            raise _Stop(Unresolved(f"value has over {MAX_ITEMS:,} parts", where.text))
        if isinstance(current, dict):
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)


def _fn_flatten(args: list[Any], where: Expression) -> list[Any]:
    # https://developer.hashicorp.com/terraform/language/functions/flatten
    _arity(args, 1, "flatten", where)
    if not isinstance(args[0], list):
        raise _Stop(Unresolved(f"flatten of a {_kind(args[0])}", where.text))
    out: list[Any] = []
    stack = [iter(args[0])]
    while stack:
        item = next(stack[-1], _DONE)
        if item is _DONE:
            stack.pop()
        elif isinstance(item, list):
            if len(stack) > 100:
                raise _Stop(Unresolved("flatten nests too deep", where.text))
            stack.append(iter(item))
        else:
            out.append(item)
            _checked_list(out, where)
    return out


_DONE = object()


def _fn_cidrsubnet(args: list[Any], where: Expression) -> str:
    # https://developer.hashicorp.com/terraform/language/functions/cidrsubnet
    # Go's net.ParseCIDR masks host bits, so "10.1.2.3/8" is 10.0.0.0/8.
    _arity(args, 3, "cidrsubnet", where)
    prefix, newbits, netnum = args
    if not isinstance(prefix, str) or not all(
        _is_number(n) and n == int(n) for n in (newbits, netnum)
    ):
        raise _Stop(Unresolved("cidrsubnet(prefix, newbits, netnum) types", where.text))
    try:
        network = ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        raise _Stop(Unresolved(f"{prefix!r} is not a CIDR", where.text)) from None
    newbits, netnum = int(newbits), int(netnum)
    length = network.prefixlen + newbits
    if newbits < 0 or length > network.max_prefixlen:
        raise _Stop(Unresolved(f"cannot extend {prefix} by {newbits} bits", where.text))
    if not 0 <= netnum < 2**newbits:
        why = f"netnum {netnum} does not fit in {newbits} bits"
        raise _Stop(Unresolved(why, where.text))
    start = int(network.network_address) + (netnum << (network.max_prefixlen - length))
    # By class, not ip_address(int): a small IPv6 number would read as IPv4.
    address = type(network.network_address)(start)
    return f"{address}/{length}"


_FUNCTIONS: dict[str, Callable[[list[Any], Expression], Any]] = {
    "jsonencode": _fn_jsonencode,
    "concat": _fn_concat,
    "tolist": _fn_tolist,
    "toset": _fn_toset,
    "flatten": _fn_flatten,
    "cidrsubnet": _fn_cidrsubnet,
}


# Heredocs --------------------------------------------------------------------

_HEREDOC = re.compile(r"<<-?([A-Za-z][A-Za-z0-9._-]*)\r?\n(.*)\1\r?\n\Z", re.DOTALL)


def _heredoc_body(token: str, *, flush: bool) -> str:
    match = _HEREDOC.match(token)
    if match is None:  # pragma: no cover - the grammar's regex guarantees it
        raise ConfigError(f"malformed heredoc {token[:20]!r}")
    # The closing marker may be indented; that indentation is not content.
    body = match.group(2).rstrip(" \t")
    return _flush(body) if flush else body


def _flush(body: str) -> str:
    # HCL's flushHeredocTemplateParts: drop the smallest indentation of the
    # non-blank lines from each of them; blank lines are left alone.
    lines = body.splitlines(keepends=True)
    widths = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    cut = min(widths, default=0)
    return "".join(line[cut:] if line.strip() else line for line in lines)


def _split_template(body: str, where: Expression) -> list[str | Expression]:
    """Literal text and ``${...}`` interpolations of a heredoc body.

    Heredocs take no backslash escapes; only ``$${`` and ``%%{`` are escapes.
    """
    pieces: list[str | Expression] = []
    literal: list[str] = []
    i = 0
    while i < len(body):
        if body.startswith(("$${", "%%{"), i):
            literal.append(body[i + 1 : i + 3])
            i += 3
        elif body.startswith("%{", i):
            raise _Stop(Unresolved("template directives are not evaluated", where.text))
        elif body.startswith("${", i):
            end = _interpolation_end(body, i + 2, where)
            if literal:
                pieces.append("".join(literal))
                literal = []
            line = where.line + body.count("\n", 0, i) + 1
            pieces.append(_inner_expression(body[i + 2 : end], where, line))
            i = end + 1
        else:
            literal.append(body[i])
            i += 1
    if literal or not pieces:
        pieces.append("".join(literal))
    return pieces


def _interpolation_end(body: str, start: int, where: Expression) -> int:
    # The closing brace, skipping braces inside nested {...} and "strings".
    depth, i, quoted = 0, start, False
    while i < len(body):
        char = body[i]
        if quoted:
            if char == "\\":
                i += 1
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    raise _Stop(Unresolved("unterminated ${ in a heredoc", where.text))


def _inner_expression(text: str, where: Expression, line: int) -> Expression:
    try:
        return parse_expression(text, source="<heredoc>", line=line)
    except ConfigError as exc:
        raise _Stop(
            Unresolved(f"bad interpolation: {exc.reason}", where.text)
        ) from None
