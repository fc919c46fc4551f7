"""The dataset card beside an export: where the rows came from, how to use them.

A fine-tuning set outlives the run that made it; the card keeps what a later
reader needs to trust it: which model failed on which suite (by sha256), that
the answers are the oracle's and not a model's, the label and rule mix, what
was dropped, and the measured caveat about training on failures alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_card"]


def write_card(path: Path, summary: dict[str, Any]) -> None:
    """Write the Markdown dataset card for an ``export_failures`` summary."""
    path.write_text(card_text(summary), encoding="utf-8")


def card_text(summary: dict[str, Any]) -> str:
    labels = summary["by_label"]
    models = sorted({source["model"] for source in summary["runs"]})
    out = [
        "---",
        "tags: [spotcheck, security, kubernetes, fine-tuning]",
        "---",
        "",
        f"# spotcheck failures: {summary['exported']} examples",
        "",
        f"Cases that {', '.join(f'`{m}`' for m in models)} got wrong in spotcheck "
        "runs, as chat-format fine-tuning examples.",
        "",
        "**The answers come from spotcheck's oracle, not from a model.** Each "
        "assistant turn is the exact verdict (`SAFE` or `UNSAFE`) followed, for "
        "`UNSAFE`, by one line per violated rule: rule id, field path, reason. "
        "The user turn is the verdict prompt of the project's template, so "
        "training and evaluation ask the same question the same way.",
        "",
        "## Source runs",
        "",
        "| run | model | task | template | suite | suite sha256 | failures |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summary["runs"]:
        out.append(
            f"| {s['run']} | `{s['model']}` | {s['task']} | {s['template']} | "
            f"{s['suite']} | `{s['suite_sha256'][:16]}` | {s['failures']} |"
        )

    out += [
        "",
        "## Counts",
        "",
        f"- exported: {summary['exported']} (unsafe {labels['unsafe']}, "
        f"safe {labels['safe']})",
        f"- failures seen: {summary['failures_seen']}",
        f"- dropped as duplicates (same config up to layout): {summary['duplicates']}",
        f"- dropped as near-equal to an evaluation suite case: "
        f"{summary['excluded_by_suite']}" + _suites(summary["exclude_suites"]),
        f"- dropped to balance labels: {summary['dropped_for_balance']}",
        "",
        "| failure kind | examples |",
        "|---|---|",
        *(f"| {kind} | {n} |" for kind, n in summary["by_failure"].items()),
        "",
        "| violated rule | examples |",
        "|---|---|",
        *(f"| `{rule}` | {n} |" for rule, n in summary["by_rule"].items()),
        "",
        "## Files",
        "",
    ]
    if "chat-jsonl" in summary["formats"]:
        out.append(
            "- `failures.jsonl`: one object per line with `messages` (system, "
            "user, assistant), `case_id`, `family`, `rules`, `label`, `failure`, "
            "`question`, `template` (id@version), `model`."
        )
    if "hf" in summary["formats"]:
        out.append("- `hf/`: the same rows; `datasets.load_from_disk('hf')`.")
    out += [
        "",
        "## Caveats",
        "",
        "- Failures lean to one label. Training on them alone mostly moves the "
        "model's decision threshold: in the project's CPU measurement a round "
        "on failures gave missed-unsafe 0.21 and false alarms 0.36, where a "
        "round on as many random examples gave 0.33 and 0.04, at about the "
        "same ranking quality. Balance labels (`balance=True`), mix in "
        "correctly answered cases, and compare against a random control.",
        "- Report both missed-unsafe and false alarms after training.",
    ]
    if summary["balance"] and not summary["balanced"]:
        out.append(
            "- Balancing was asked for but every failure had one label; all "
            "rows were kept."
        )
    return "\n".join(out) + "\n"


def _suites(suites: list[str]) -> str:
    return f" ({', '.join(suites)})" if suites else " (no suites given)"
