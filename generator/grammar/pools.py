"""Grammar files: the data that defines a domain's input space, checked on load.

A grammar file (``grammars/<domain>.yaml``) holds weighted value pools, and
the strategies in ``generator.grammar.<domain>`` read nothing else for their
values. Checking the file against the names the code knows is what keeps the
two honest: an unknown or missing name, or a value outside a closed
vocabulary (a volume source the generator cannot write, say), is refused
with every offending name listed and the closest known one suggested.
"""

from __future__ import annotations

import difflib
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from generator.errors import InvalidArgument

__all__ = ["Grammar", "HostPath", "Schema", "load_grammar", "weighted"]

Pool = tuple[tuple[Any, int], ...]


@dataclass(frozen=True)
class HostPath:
    """A hostPath target: the node path, its ``type`` ("" = unchecked), weight."""

    path: str
    type: str
    weight: int


@dataclass(frozen=True)
class Schema:
    """The names a domain's generator reads, and the closed vocabularies.

    ``pools`` maps each pool name to the Python type of its values;
    ``vocabularies`` lists, for pools whose values the code must understand,
    every value it can handle. ``states``/``levels`` map field names to
    their allowed state names.
    """

    pools: Mapping[str, type]
    vocabularies: Mapping[str, frozenset[Any]]
    states: Mapping[str, frozenset[str]]
    levels: Mapping[str, frozenset[str]]
    sizes: frozenset[str]


@dataclass(frozen=True, eq=False)
class Grammar:
    """A loaded, checked grammar file. Compared and hashed by identity."""

    source: str
    pools: Mapping[str, Pool]
    hardened: Mapping[str, Pool]
    states: Mapping[str, Pool]
    levels: Mapping[str, Pool]
    sizes: Mapping[str, tuple[int, int]]
    host_paths: tuple[HostPath, ...]

    def values(self, pool: str, *, hardened: bool = False) -> tuple[Any, ...]:
        """The values of ``pool`` (its hardened subset if asked and defined)."""
        table = self.hardened if hardened and pool in self.hardened else self.pools
        return tuple(value for value, _ in table[pool])


def weighted(pool: Iterable[tuple[Any, int]]) -> st.SearchStrategy[Any]:
    """Draw a value with probability proportional to its weight.

    The first value is the shrink target, so grammar files list the plainest
    value first.
    """
    pairs = tuple(pool)
    if not pairs:
        raise InvalidArgument("pool=[] is empty; a pool needs at least one value")
    return _weighted(pairs)


@lru_cache(maxsize=1024)
def _weighted(pairs: tuple[tuple[Any, int], ...]) -> st.SearchStrategy[Any]:
    # Strategies are cached: building and validating a fresh one for every
    # draw made generation several times slower.
    values = [value for value, _ in pairs]
    if len(values) == 1:
        return st.just(values[0])
    bounds = list(accumulate(weight for _, weight in pairs))
    return st.integers(0, bounds[-1] - 1).map(lambda i: values[bisect_right(bounds, i)])


# --- loading and checking ---------------------------------------------------


def load_grammar(path: str | Path, schema: Schema) -> Grammar:
    """Read and check a grammar file; ``InvalidArgument`` names every problem."""
    source = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidArgument(f"grammar={source!r} cannot be read: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidArgument(f"grammar={source!r} must be a mapping of sections")
    _known(source, "section", raw, _SECTIONS)

    pools = _section(source, raw, "pools", schema.pools, _pool_of)
    hardened = _section(source, raw, "hardened", None, _pool_of, required=False)
    _known(source, "hardened pool", hardened, schema.pools)
    for name, pool in hardened.items():
        extra = {v for v, _ in pool} - {v for v, _ in pools[name]}
        if extra:
            raise InvalidArgument(
                f"{source}: hardened.{name} holds values not in pools.{name}: "
                f"{sorted(map(str, extra))}"
            )
    for name, kind in schema.pools.items():
        wrong = [v for v, _ in pools[name] if type(v) is not kind]
        if wrong:
            raise InvalidArgument(
                f"{source}: pools.{name} values must be {kind.__name__}: "
                f"{', '.join(repr(v) for v in wrong)}"
            )
    for name, allowed in schema.vocabularies.items():
        _known(source, f"value of pools.{name}", dict(pools[name]), allowed)

    states = _section(source, raw, "states", schema.states, _pool_of)
    levels = _section(source, raw, "levels", schema.levels, _pool_of)
    for label, table, allowed_by_field in (
        ("states", states, schema.states),
        ("levels", levels, schema.levels),
    ):
        for name, pool in table.items():
            _known(source, f"{label}.{name} entry", dict(pool), allowed_by_field[name])
    sizes = _section(source, raw, "sizes", dict.fromkeys(schema.sizes), _size_of)
    return Grammar(
        source=source,
        pools=pools,
        hardened=hardened,
        states=states,
        levels=levels,
        sizes=sizes,
        host_paths=_host_paths(source, raw.get("host_paths")),
    )


_SECTIONS = ("version", "pools", "hardened", "states", "levels", "sizes", "host_paths")


def _known(source: str, what: str, found: Iterable[Any], known: Iterable[Any]) -> None:
    """Refuse names not in ``known``, listing each with its closest match."""
    known_names = [str(k) for k in known]
    unknown = [str(name) for name in found if str(name) not in known_names]
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, known_names, n=1)
        hints.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    raise InvalidArgument(
        f"{source}: unknown {what} {', '.join(hints)}; "
        f"known: {', '.join(sorted(known_names))}"
    )


def _section(source, raw, name, known, convert, *, required=True) -> dict[str, Any]:
    table = raw.get(name)
    if table is None and not required:
        return {}
    if not isinstance(table, dict):
        raise InvalidArgument(f"{source}: section {name!r} must be a mapping")
    if known is not None:
        _known(source, f"{name} name", table, known)
        missing = sorted(set(known) - set(table))
        if missing:
            raise InvalidArgument(f"{source}: {name} is missing {', '.join(missing)}")
    return {
        key: convert(source, f"{name}.{key}", value) for key, value in table.items()
    }


def _pool_of(source: str, where: str, value: Any) -> Pool:
    if not isinstance(value, dict) or not value:
        raise InvalidArgument(
            f"{source}: {where} must be a non-empty mapping of value: weight"
        )
    pool = []
    for key, weight in value.items():
        if not isinstance(weight, int) or isinstance(weight, bool) or weight < 1:
            raise InvalidArgument(
                f"{source}: {where}[{key!r}] weight={weight!r} must be an int >= 1"
            )
        pool.append((_state_name(key), weight))
    return tuple(pool)


def _state_name(key: Any) -> Any:
    # Bare true/false/null keys read as YAML booleans and None; the grammar
    # means the state names "true", "false" and "null".
    if isinstance(key, bool):
        return "true" if key else "false"
    return "null" if key is None else key


def _size_of(source: str, where: str, value: Any) -> tuple[int, int]:
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and 0 <= value[0] <= value[1]
    )
    if not ok:
        raise InvalidArgument(
            f"{source}: {where}={value!r} must be [min, max] with 0 <= min <= max"
        )
    return (value[0], value[1])


def _host_paths(source: str, raw: Any) -> tuple[HostPath, ...]:
    if not isinstance(raw, list) or not raw:
        raise InvalidArgument(f"{source}: host_paths must be a non-empty list")
    out = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise InvalidArgument(f"{source}: host_paths[{i}] must be a mapping")
        _known(source, f"host_paths[{i}] key", entry, ("path", "type", "weight"))
        path, kind, weight = (
            entry.get("path"),
            entry.get("type", ""),
            entry.get("weight", 1),
        )
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidArgument(
                f"{source}: host_paths[{i}].path={path!r} must be absolute"
            )
        if not isinstance(kind, str) or not isinstance(weight, int) or weight < 1:
            raise InvalidArgument(
                f"{source}: host_paths[{i}] needs a string type and an int weight >= 1"
            )
        out.append(HostPath(path, kind, weight))
    return tuple(out)
