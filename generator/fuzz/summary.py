"""What a fuzz tells its reader: ``DIR/profile.json`` and ``DIR/report.md``.

``profile.json`` is the fuzz's answer to "which generators earn their
keep" (the habit of Hypothesis's per-pass shrink statistics): per arm
(a grammar family or a mutator of failing cases), per case family and per
operator, how often it was tried, the cases it made and the failures they
found. It is rewritten after every round.

``report.md`` is refreshed every few rounds and when the fuzz stops: the
totals, the arms as the bandit sees them and the operators, then
``spotcheck report`` of the fuzz directory (``generator.report`` reads
every round's run as one run, so the failure clusters are searched over
every round's cases under one false-discovery correction).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from generator.fuzz.bandit import posterior_mean
from generator.fuzz.state import FuzzState
from generator.run.journal import write_json_atomic
from generator.stats import wilson_interval

__all__ = ["profile", "render_report", "top_lines", "write_outputs"]


def _rate(failures: int, of: int) -> float | None:
    return round(failures / of, 4) if of else None


def profile(state: FuzzState) -> dict[str, Any]:
    """profile.json: per generator (arm), family and mutator, calls, cases and
    failures, with failures per call and per answered case."""
    generators = {
        arm: {
            "calls": s.pulls,
            "cases": s.cases,
            "answered": s.answered,
            "failures": s.failures,
            "failures_per_call": _rate(s.failures, s.pulls),
            "failure_rate": _rate(s.failures, s.answered),
        }
        for arm, s in sorted(state.arms.items())
    }
    families = {
        name: {**entry, "failure_rate": _rate(entry["failures"], entry["answered"])}
        for name, entry in sorted(state.families.items())
    }
    mutators = {
        name: {
            **entry,
            "failures_per_call": _rate(entry["failures"], entry["calls"]),
            "failure_rate": _rate(entry["failures"], entry["answered"]),
        }
        for name, entry in sorted(state.operators.items())
    }
    return {
        "rounds": state.rounds,
        "answered": state.answered,
        "failures": state.failures,
        "generators": generators,
        "families": families,
        "mutators": mutators,
    }


def write_outputs(out: Path, state: FuzzState, report: dict[str, Any] | None) -> None:
    """profile.json always; report.md too when a ``build_report`` dict of the
    fuzz directory is given."""
    write_json_atomic(out / "profile.json", profile(state))
    if report is not None:
        partial = out / "report.md.partial"
        partial.write_text(render_report(out, state, report), encoding="utf-8")
        partial.replace(out / "report.md")


def top_lines(
    state: FuzzState, clusters: list[dict[str, Any]] | None, count: int = 3
) -> list[str]:
    """The ``count`` best findings so far, one short line each: clusters when
    there are any, else the arms most likely to fail per call (the posterior
    mean, so 1 failure in 1 call does not outrank 8 in 10)."""
    if clusters:
        return [
            f"{c['slice']} {c['failures']}/{c['support']}" for c in clusters[:count]
        ]
    ranked = sorted(
        (a for a in state.arms.items() if a[1].failures),
        key=lambda item: (-posterior_mean(item[1]), item[0]),
    )
    return [f"{arm} {s.failures}/{s.pulls}" for arm, s in ranked[:count]]


def _pct(numerator: int, denominator: int) -> str:
    if not denominator:
        return "n/a"
    low, high = wilson_interval(numerator, denominator)
    share = numerator / denominator
    return f"{numerator}/{denominator} = {share:.1%} [{low:.1%}, {high:.1%}]"


def _duration(seconds: float) -> str:
    minutes = math.floor(seconds / 60)
    return f"{minutes // 60}h {minutes % 60:02d}m {seconds % 60:04.1f}s"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def render_report(out: Path, state: FuzzState, report: dict[str, Any]) -> str:
    """report.md: the fuzz's totals, the ordinary report of the fuzz directory
    (every round's run read as one: rates, families, clusters), the arms and
    the operators."""
    from generator.report import format_report

    p, kinds = state.params, state.failure_kinds
    speed = state.answered / state.elapsed if state.elapsed else 0.0
    lines = [
        f"# spotcheck fuzz: {out}",
        "",
        f"Model `{p['model']}` ({p['backend']}), task {p['task']}, domains "
        f"{', '.join(p['domains'])}, seed {p['seed']}, {p['round_size']} cases "
        f"a round. Status: {state.status} after {state.rounds} rounds, "
        f"{_duration(state.elapsed)}, {speed:.2f} cases/s.",
        "",
        f"- failures: {_pct(state.failures, state.answered)}",
        f"- missed unsafe: {_pct(kinds['missed_unsafe'], state.truth['unsafe'])}",
        f"- false alarms: {_pct(kinds['false_alarm'], state.truth['safe'])}",
    ]
    for kind in sorted(set(kinds) - {"missed_unsafe", "false_alarm"}):
        lines.append(f"- {kind}: {_pct(kinds[kind], state.answered)}")
    lines += [
        "",
        "Rates are over the cases the fuzz chose, steered toward failures:",
        "they say where the model fails, not how often it fails in use.",
        "",
    ]
    # The clusters come first: they are what the night was for.
    lines += _demoted(format_report(report))
    lines += ["", "## Generators (the bandit's arms)", ""]
    ranked = sorted(state.arms.items(), key=lambda a: (-posterior_mean(a[1]), a[0]))
    lines += _table(
        ["arm", "calls", "cases", "answered", "failures", "per call", "expected"],
        [
            [f"`{arm}`", s.pulls, s.cases, s.answered, s.failures,
             f"{s.rate:.2f}", f"{posterior_mean(s):.2f}"]
            for arm, s in ranked
        ],
    )  # fmt: skip
    lines += ["", "## Mutators and grammar operators", ""]
    ops = sorted(state.operators.items(), key=lambda o: (-o[1]["failures"], o[0]))
    lines += _table(
        ["operator", "calls", "applied", "cases", "answered", "failures"],
        [
            [f"`{name}`", e["calls"], e["applied"], e["cases"], e["answered"],
             e["failures"]]
            for name, e in ops
        ],
    )  # fmt: skip
    return "\n".join(lines).rstrip() + "\n"


def _demoted(markdown: str) -> list[str]:
    """``markdown``'s lines with each heading one level down (``#`` to ``##``),
    so the ordinary report sits under the fuzz's title; lines inside fenced
    blocks (example configs, whose comments start with ``#``) are kept."""
    lines, fenced = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        lines.append("#" + line if line.startswith("#") and not fenced else line)
    return lines
