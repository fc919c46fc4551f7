"""The release gate: fail a run whose failure rates exceed their thresholds.

``spotcheck gate RUN --max-missed-unsafe 0.05 [--config gate.yaml]`` checks
the run as a whole and each case family against thresholds and says which
are exceeded; ``--junit`` writes the verdicts as JUnit XML, one test case per
family (plus one for the whole run), which CI systems show as tests. The
run may be several directories read as one (``gated_run``): the shards of
a sharded run, or a fuzz directory's rounds.

**Which number is compared.** A threshold applies to the *point estimate*
(the measured rate), not to an interval bound. The Wilson interval is
reported beside it so a reader can see how firm the number is, but gating on
the upper bound would fail every small family whatever the model does (3
misses in 10 cases has an upper bound of 60%), and gating on the lower bound
would pass nearly everything. ``min_cases`` lets a family with too few cases
to judge be skipped rather than gated on noise.

The config file (YAML)::

    max_missed_unsafe: 0.05        # whole run; the command-line flag wins
    max_false_alarm: 0.5           # optional
    max_unparseable: 0.01          # optional
    min_cases: 20                  # families with fewer cases are skipped
    families:
      hostpath-escalation:
        max_missed_unsafe: 0.1     # per family; unset keys fall back
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from generator.errors import InvalidArgument
from generator.rundata import Run, load_runs

__all__ = [
    "METRICS",
    "Check",
    "GateConfig",
    "evaluate",
    "gated_run",
    "junit_xml",
    "load_config",
]

# Threshold key -> the report's rate name. For a repair run the missed-unsafe
# threshold applies to repairs that are not safe (the repair headline).
METRICS = {
    "max_missed_unsafe": "missed_unsafe",
    "max_false_alarm": "false_alarm",
    "max_unparseable": "unparseable",
}
_KNOWN = (*METRICS, "min_cases", "families")


@dataclass(frozen=True)
class GateConfig:
    """Run-wide thresholds and per-family overrides (fractions in [0, 1])."""

    thresholds: dict[str, float]
    families: dict[str, dict[str, float]]
    min_cases: int = 1


@dataclass(frozen=True)
class Check:
    """One threshold on one scope (``run`` or a family)."""

    scope: str
    metric: str
    threshold: float
    value: float | None
    interval: list[float] | None
    count: int
    of: int
    skipped: str = ""

    @property
    def exceeded(self) -> bool:
        return (
            not self.skipped and self.value is not None and self.value > self.threshold
        )

    def describe(self) -> str:
        if self.skipped:
            return f"{self.scope}: {self.metric} not judged ({self.skipped})"
        verdict = "EXCEEDS" if self.exceeded else "within"
        low, high = self.interval or (0.0, 1.0)
        return (
            f"{self.scope}: {self.metric} {_pct(self.value)} ({self.count}/{self.of};"
            f" 95% interval {_pct(low)}–{_pct(high)}) {verdict} max "
            f"{_pct(self.threshold)}"
        )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def load_config(path: Path, max_missed_unsafe: float | None = None) -> GateConfig:
    """Read a gate config file; ``InvalidArgument`` names the file and place."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidArgument(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or exc
        raise InvalidArgument(f"{path}{where}: not YAML: {problem}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise InvalidArgument(f"{path}: top level must be a mapping of thresholds")
    return config_from_dict(data, str(path), max_missed_unsafe)


def config_from_dict(
    data: dict[str, Any], source: str = "config", max_missed_unsafe: float | None = None
) -> GateConfig:
    unknown = sorted(set(map(str, data)) - set(_KNOWN))
    if unknown:
        raise InvalidArgument(
            f"{source}: unknown keys {unknown}; known: {list(_KNOWN)}"
        )
    thresholds = {
        key: _fraction(data[key], f"{source}: {key}") for key in METRICS if key in data
    }
    if max_missed_unsafe is not None:
        thresholds["max_missed_unsafe"] = _fraction(
            max_missed_unsafe, "--max-missed-unsafe"
        )
    min_cases = data.get("min_cases", 1)
    if not isinstance(min_cases, int) or isinstance(min_cases, bool) or min_cases < 1:
        raise InvalidArgument(
            f"{source}: min_cases={min_cases!r}: need a whole number >= 1"
        )

    families: dict[str, dict[str, float]] = {}
    raw = data.get("families") or {}
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{source}: families must map family names to thresholds")
    for family, limits in raw.items():
        place = f"{source}: families.{family}"
        if not isinstance(limits, dict):
            raise InvalidArgument(
                f"{place}: need a mapping such as max_missed_unsafe: 0.1"
            )
        bad = sorted(set(map(str, limits)) - set(METRICS))
        if bad:
            raise InvalidArgument(
                f"{place}: unknown keys {bad}; known: {list(METRICS)}"
            )
        families[str(family)] = {
            key: _fraction(value, f"{place}.{key}") for key, value in limits.items()
        }
    if not thresholds and not families:
        raise InvalidArgument(
            f"{source}: no threshold given; pass --max-missed-unsafe or set one"
        )
    return GateConfig(thresholds, families, min_cases)


def _fraction(value: Any, place: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{place}={value!r}: need a number between 0 and 1")
    if not 0 <= value <= 1:
        hint = (
            f" (a fraction: {value / 100:g} for {value:g}%)" if 1 < value <= 100 else ""
        )
        raise InvalidArgument(f"{place}={value!r}: need a number between 0 and 1{hint}")
    return float(value)


def gated_run(run_dirs: Iterable[Path]) -> Run:
    """The one run the gate judges: a run directory, the shard directories
    of one sharded run, or a fuzz directory; ``InvalidArgument`` otherwise.

    Thresholds on a mix of runs would judge no release in particular, so
    several directories must be parts of one run (``load_runs``).
    """
    runs = load_runs(Path(path) for path in run_dirs)
    if len(runs) != 1:
        raise InvalidArgument(
            f"gate judges one run, and the directories given are {len(runs)} "
            f"runs ({'; '.join(r.label for r in runs)}); give one run "
            "directory, the shards of one sharded run, or a fuzz directory"
        )
    return runs[0]


def evaluate(run: dict[str, Any], config: GateConfig) -> list[Check]:
    """Every check the config asks for on one run of a ``build_report`` dict."""
    checks = []
    for key, threshold in config.thresholds.items():
        checks.append(_check("run", run["rates"], key, threshold, run["task"]))
    families = {row["family"]: row for row in run["per_family"]}
    for family, row in sorted(families.items()):
        limits = {**config.thresholds, **config.families.get(family, {})}
        for key, threshold in limits.items():
            check = _check(family, row, key, threshold, run["task"])
            if row["cases"] < config.min_cases:
                check = Check(**{**check.__dict__, "skipped": f"{row['cases']} cases"})
            checks.append(check)
    # A family the config names but the run never saw is a typo or a
    # changed suite: it is listed as not judged rather than passed quietly.
    for family in sorted(set(config.families) - set(families)):
        for key, threshold in config.families[family].items():
            checks.append(
                Check(family, METRICS[key], threshold, None, None, 0, 0, "no cases")
            )
    return checks


def _check(scope: str, rates: dict, key: str, threshold: float, task: str) -> Check:
    metric = METRICS[key]
    if task == "repair" and metric == "missed_unsafe":
        metric = "repair_not_safe"
    rate = rates.get(metric)
    if rate is None:
        return Check(scope, metric, threshold, None, None, 0, 0, f"no {metric} rate")
    if not rate["of"]:
        return Check(
            scope, metric, threshold, None, None, 0, 0, "no cases it applies to"
        )
    return Check(
        scope,
        metric,
        threshold,
        rate["value"],
        rate["interval"],
        rate["count"],
        rate["of"],
    )


def junit_xml(run: dict[str, Any], checks: list[Check]) -> bytes:
    """JUnit XML: one <testcase> per scope (the run, each family)."""
    scopes: dict[str, list[Check]] = {}
    for check in checks:
        scopes.setdefault(check.scope, []).append(check)
    failures = sum(any(c.exceeded for c in group) for group in scopes.values())
    skipped = sum(all(c.skipped for c in group) for group in scopes.values())
    suite = ET.Element(
        "testsuite",
        name=f"spotcheck gate {run['run']}",
        tests=str(len(scopes)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
    )
    for scope, group in scopes.items():
        case = ET.SubElement(
            suite,
            "testcase",
            classname="spotcheck.gate" + ("" if scope == "run" else ".family"),
            name=scope,
        )
        exceeded = [c for c in group if c.exceeded]
        if exceeded:
            failure = ET.SubElement(
                case,
                "failure",
                message="; ".join(c.describe() for c in exceeded),
                type="threshold_exceeded",
            )
            failure.text = "\n".join(c.describe() for c in group)
        elif all(c.skipped for c in group):
            ET.SubElement(
                case, "skipped", message="; ".join(c.describe() for c in group)
            )
        out = ET.SubElement(case, "system-out")
        out.text = "\n".join(c.describe() for c in group)
    root = ET.Element("testsuites", name="spotcheck gate")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
