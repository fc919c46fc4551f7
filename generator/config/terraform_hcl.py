"""Reading one ``.tf`` file into blocks, attributes and unevaluated
expressions, with the lines they came from.

python-hcl2 8 serialises a file to a dict that needs undoing before it can be
judged (research/sg-terraform.md §4): string literals keep their quotes,
expressions come back as ``${...}`` text that has to be parsed again,
``jsonencode({...})`` is one opaque string, heredocs keep their markers,
blocks carry ``__is_block__`` and comments ``__comments__``, a bare
identifier cannot be told from a string, and no line numbers survive
(``with_meta`` emits nothing in 8.1.4). So we take the parse tree from
python-hcl2's own grammar (``hcl2.parses_to_tree``: LALR, positions kept) and
build our model from it; none of those quirks can reach the model, and the
evaluator sees typed nodes instead of re-parsing text.

``load_module`` refuses what Terraform itself refuses at parse or validate
time (syntax errors, duplicate resource addresses, duplicate attributes,
variables or locals) with a one-line ``ConfigError``. Evaluation lives in
``terraform_eval`` and IAM policy extraction in ``terraform_iam``; the
public names are gathered in ``terraform``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import hcl2
from lark import Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput

from generator.errors import ConfigError

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "Attribute",
    "Block",
    "Expression",
    "Module",
    "Resource",
    "Variable",
    "load_module",
    "merge_modules",
    "parse_expression",
    "unescape",
]

logger = logging.getLogger(__name__)

# The parse runs at 100-300 KB/s (python-hcl2 8.1.4, lark 1.3.1; a dense 1 MB
# file of policies took 10 s), so a 10 MB file would stall a run for minutes.
# Real modules split files long before this; generated cases are a few KB.
MAX_BYTES = 256 * 1024
# Parse-tree levels, not brackets: a nested list costs two levels. 200 levels
# is ~100 nested brackets, far beyond any policy, and keeps our recursive
# walkers well inside Python's default recursion limit of 1000.
MAX_DEPTH = 200

# Blocks whose labels name something: (type, labels it must have).
_LABELS = {"resource": 2, "data": 2, "variable": 1, "locals": 0}


@dataclass(frozen=True)
class Expression:
    """An unevaluated HCL expression: its parse tree and its source text."""

    tree: Tree
    text: str
    line: int

    def __repr__(self) -> str:
        return f"Expression({self.text!r}, line={self.line})"


@dataclass(frozen=True)
class Attribute:
    """``name = expression`` inside a block."""

    name: str
    expression: Expression
    line: int


@dataclass(frozen=True)
class Block:
    """A block with its labels, attributes and nested blocks in source order.

    ``dynamic`` blocks are kept as written (type ``dynamic``, one label);
    ``terraform_eval.resolve`` expands them.
    """

    type: str
    labels: tuple[str, ...]
    attributes: dict[str, Attribute]
    blocks: tuple[Block, ...]
    line: int

    def nested(self, block_type: str) -> list[Block]:
        """The nested blocks of one type as written (dynamic ones excluded)."""
        return [b for b in self.blocks if b.type == block_type]


@dataclass(frozen=True)
class Resource:
    """A ``resource`` (mode ``managed``) or ``data`` block."""

    mode: str
    type: str
    name: str
    body: Block

    @property
    def address(self) -> str:
        """Terraform's address: ``aws_iam_policy.x`` or ``data.aws_x.y``."""
        prefix = "data." if self.mode == "data" else ""
        return f"{prefix}{self.type}.{self.name}"

    @property
    def line(self) -> int:
        return self.body.line


@dataclass(frozen=True)
class Variable:
    """A ``variable`` block; ``default`` and ``type`` are unevaluated."""

    name: str
    default: Expression | None
    type: Expression | None
    line: int


@dataclass(frozen=True)
class Module:
    """One file's resources, data sources, variables and locals.

    Outputs, providers, modules calls and the ``terraform`` block are kept
    only in ``other`` (they hold no policy); resources are keyed by address.
    """

    source: str
    resources: dict[str, Resource]
    data: dict[str, Resource]
    variables: dict[str, Variable]
    locals: dict[str, Attribute]
    other: tuple[Block, ...] = field(default=())


def load_module(text: str, *, source: str) -> Module:
    """Parse one ``.tf`` file's text; raise ``ConfigError`` for what Terraform
    could not read either."""
    tree = _parse(text, source, line_offset=0)
    body = _body(tree.children[0], _Context(text, source))
    return _module(body, source)


def merge_modules(modules: list[Module], *, source: str) -> Module:
    """The files of one directory as the one module Terraform makes of them.

    Terraform reads every ``*.tf`` of a directory together; an address,
    variable or local defined in two files is an error there, and here.
    """
    resources: dict[str, Resource] = {}
    data: dict[str, Resource] = {}
    variables: dict[str, Variable] = {}
    local_values: dict[str, Attribute] = {}
    other: list[Block] = []
    origin: dict[tuple[str, str], str] = {}
    for module in modules:
        for what, into, found in (
            ("resource", resources, module.resources),
            ("data source", data, module.data),
            ("variable", variables, module.variables),
            ("local", local_values, module.locals),
        ):
            for name, value in found.items():
                if name in into:
                    raise ConfigError(
                        f"{value.line}: {what} {name} is also defined in "
                        f"{origin[(what, name)]}; keep one",
                        source=module.source,
                    )
                into[name] = value  # type: ignore[assignment]
                origin[(what, name)] = module.source
        other.extend(module.other)
    return Module(source, resources, data, variables, local_values, tuple(other))


def parse_expression(text: str, *, source: str, line: int = 1) -> Expression:
    """Parse the text of one expression (used for heredoc interpolations)."""
    wrapped = f"x = {text}"
    tree = _parse(wrapped, source, line_offset=line - 1)
    attribute = tree.children[0].children[0]
    ctx = _Context(wrapped, source, line_offset=line - 1)
    return _expression(attribute.children[-1], ctx)


# Parsing -------------------------------------------------------------------


def _parse(text: str, source: str, *, line_offset: int) -> Tree:
    if len(text) > MAX_BYTES:
        raise ConfigError(
            f"file is larger than {MAX_BYTES // 1024} KiB; split it", source=source
        )
    if "\x00" in text:
        raise ConfigError(
            "file contains NUL bytes; it is binary, not HCL", source=source
        )
    try:
        tree = hcl2.parses_to_tree(text)
    except UnexpectedInput as exc:
        raise ConfigError(_syntax_reason(exc, line_offset), source=source) from None
    except (LarkError, RecursionError) as exc:
        reason = f"cannot parse: {type(exc).__name__}; check the HCL syntax"
        raise ConfigError(reason, source=source) from None
    _check_depth(tree, source)
    return tree


def _syntax_reason(exc: UnexpectedInput, line_offset: int) -> str:
    where = f"{exc.line + line_offset}:{exc.column}"
    if isinstance(exc, UnexpectedCharacters):
        what = f"unexpected character {exc.char!r}"
    else:
        token = getattr(exc, "token", None)
        if token is None or token.type == "$END":
            what = "unexpected end of file"
        else:
            text = str(token)
            shown = repr(text[:20]) + ("..." if len(text) > 20 else "")
            what = f"unexpected {shown}"
    return f"{where}: {what}; check the braces and quotes"


def _check_depth(tree: Tree, source: str) -> None:
    # Iterative, so the check itself cannot overflow the stack it protects.
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            line = getattr(node.meta, "line", "?")
            raise ConfigError(
                f"{line}: nesting deeper than {MAX_DEPTH} levels; flatten it",
                source=source,
            )
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, Tree))


@dataclass(frozen=True)
class _Context:
    text: str
    source: str
    line_offset: int = 0

    def line(self, node: Tree | Token) -> int:
        raw = node.line if isinstance(node, Token) else node.meta.line
        return raw + self.line_offset

    def error(self, node: Tree | Token, message: str) -> ConfigError:
        return ConfigError(f"{self.line(node)}: {message}", source=self.source)


def _body(body: Tree, ctx: _Context) -> tuple[dict[str, Attribute], list[Block]]:
    attributes: dict[str, Attribute] = {}
    blocks: list[Block] = []
    for child in body.children:
        if child.data == "attribute":
            attribute = _attribute(child, ctx)
            if attribute.name in attributes:
                # Terraform: "Attribute redefined"; python-hcl2 keeps the last.
                first = attributes[attribute.name].line
                raise ctx.error(
                    child,
                    f"attribute {attribute.name!r} is set twice (first at line "
                    f"{first}); keep one",
                )
            attributes[attribute.name] = attribute
        elif child.data == "block":
            blocks.append(_block(child, ctx))
    return attributes, blocks


def _attribute(node: Tree, ctx: _Context) -> Attribute:
    name = _name(node.children[0])
    return Attribute(name, _expression(node.children[-1], ctx), ctx.line(node))


def _block(node: Tree, ctx: _Context) -> Block:
    parts = [c for c in node.children if isinstance(c, Tree)]
    block_type = _name(parts[0])
    labels = tuple(
        _label(p, ctx)
        for p in parts[1:]
        if p.data != "body" and (p.data != "new_line_or_comment")
    )
    attributes, blocks = _body(parts[-1], ctx)
    return Block(block_type, labels, attributes, tuple(blocks), ctx.line(node))


def _name(node: Tree) -> str:
    # identifier, keyword or literal_value: one token whose text is the name.
    return str(node.children[0])


def _label(node: Tree, ctx: _Context) -> str:
    if node.data != "string":
        return _name(node)
    parts = [c for c in node.children if isinstance(c, Tree)]
    tokens = [p.children[0] for p in parts]
    if not all(isinstance(t, Token) and t.type == "STRING_CHARS" for t in tokens):
        raise ctx.error(node, "a block label cannot hold a template; use a plain name")
    return unescape("".join(tokens))


def _expression(node: Tree, ctx: _Context) -> Expression:
    start, end = node.meta.start_pos, node.meta.end_pos
    return Expression(node, ctx.text[start:end], ctx.line(node))


# HCL's escapes in quoted strings (hclsyntax spec, "Template Literals").
_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.DOTALL)
_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def unescape(raw: str) -> str:
    """Decode the backslash escapes of a quoted-string fragment."""
    return _ESCAPE.sub(_decode_escape, raw)


def _decode_escape(match: re.Match[str]) -> str:
    escape = match.group()[1:]
    if escape[0] in "uU":
        return chr(int(escape[1:], 16))
    # Terraform rejects any other escape; keeping it raw is the closest
    # reading and cannot turn into an interpolation.
    return _SIMPLE.get(escape, match.group())


# Module assembly -----------------------------------------------------------


def _module(body: tuple[dict[str, Attribute], list[Block]], source: str) -> Module:
    attributes, blocks = body
    if attributes:
        name, attribute = next(iter(attributes.items()))
        raise ConfigError(
            f"{attribute.line}: top-level attribute {name!r}; Terraform allows "
            "only blocks at the top of a file",
            source=source,
        )
    resources: dict[str, Resource] = {}
    data: dict[str, Resource] = {}
    variables: dict[str, Variable] = {}
    local_values: dict[str, Attribute] = {}
    other: list[Block] = []
    for block in blocks:
        _check_labels(block, source)
        if block.type in ("resource", "data"):
            _add_resource(
                block, resources if block.type == "resource" else data, source
            )
        elif block.type == "variable":
            _add_variable(block, variables, source)
        elif block.type == "locals":
            _add_locals(block, local_values, source)
        else:
            other.append(block)
    logger.debug(
        "%s: %d resources, %d data sources, %d variables, %d locals",
        source, len(resources), len(data), len(variables), len(local_values),
    )  # fmt: skip
    return Module(source, resources, data, variables, local_values, tuple(other))


def _check_labels(block: Block, source: str) -> None:
    wanted = _LABELS.get(block.type)
    if wanted is not None and len(block.labels) != wanted:
        raise ConfigError(
            f"{block.line}: a {block.type} block needs {wanted} label(s), has "
            f"{len(block.labels)}",
            source=source,
        )


def _add_resource(block: Block, into: dict[str, Resource], source: str) -> None:
    mode = "managed" if block.type == "resource" else "data"
    resource = Resource(mode, block.labels[0], block.labels[1], block)
    if resource.address in into:
        first = into[resource.address].line
        raise ConfigError(
            f"{block.line}: duplicate address {resource.address} (first at line "
            f"{first}); rename one",
            source=source,
        )
    into[resource.address] = resource


def _add_variable(block: Block, into: dict[str, Variable], source: str) -> None:
    name = block.labels[0]
    if name in into:
        raise ConfigError(
            f"{block.line}: variable {name!r} is declared twice (first at line "
            f"{into[name].line}); keep one",
            source=source,
        )
    default = block.attributes.get("default")
    declared = block.attributes.get("type")
    into[name] = Variable(
        name,
        default.expression if default else None,
        declared.expression if declared else None,
        block.line,
    )


def _add_locals(block: Block, into: dict[str, Attribute], source: str) -> None:
    for name, attribute in block.attributes.items():
        if name in into:
            raise ConfigError(
                f"{attribute.line}: local {name!r} is defined twice (first at "
                f"line {into[name].line}); keep one",
                source=source,
            )
        into[name] = attribute
