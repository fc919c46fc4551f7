"""The dataset card beside an export: where the rows came from, how to use them.

A fine-tuning set outlives the run that made it; the card keeps what a later
reader needs to trust it: which model failed on which suite (by sha256), that
the answers are the oracle's and not a model's, the label, rule and cluster
mix of each split, what was dropped and why, how to load it into TRL, and
the measured caveat about training on failures alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["card_text", "write_card"]

# Clusters listed in the card; export.json has all of them.
_CLUSTER_ROWS = 40


def write_card(path: Path, summary: dict[str, Any]) -> None:
    """Write the Markdown dataset card for an ``export_failures`` summary."""
    path.write_text(card_text(summary), encoding="utf-8")


def card_text(summary: dict[str, Any]) -> str:
    models = sorted({source["model"] for source in summary["runs"]})
    out = [
        "---",
        "tags: [spotcheck, security, kubernetes, iam, terraform, fine-tuning, trl]",
        "---",
        "",
        f"# spotcheck failures: {summary['exported']} examples",
        "",
        f"Cases that {', '.join(f'`{m}`' for m in models)} got wrong in spotcheck "
        "runs, as chat-format fine-tuning examples"
        + (", with correctly answered cases added" if _added(summary) else "")
        + ".",
        "",
        "**The answers come from spotcheck's oracle, not from a model.** For "
        "a verdict example the assistant turn is the exact verdict (`SAFE` or "
        "`UNSAFE`) followed, for `UNSAFE`, by one line per violated rule: rule "
        "id, field path, reason. For a repair example it is a minimal fix made "
        "by the oracle's remediation, in the fenced block the prompt asks "
        "for, re-judged as a model's repair is (safe, and the workload or "
        "intended access kept). The system and user turns are the project's "
        "prompt templates, so training and evaluation ask the same way.",
        "",
        *_sources(summary),
        *_counts(summary),
        *_splits(summary),
        *_files(summary),
        *_loading(summary),
        *_caveats(summary),
    ]
    return "\n".join(out) + "\n"


def _added(summary: dict[str, Any]) -> int:
    return sum(summary["correct_added"].values())


def _sources(summary: dict[str, Any]) -> list[str]:
    out = [
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
    return [*out, ""]


def _counts(summary: dict[str, Any]) -> list[str]:
    labels = summary["by_label"]
    added = summary["correct_added"]
    suites = summary["exclude_suites"]
    repair = summary["repair"]
    out = [
        "## Counts",
        "",
        f"- exported: {summary['exported']} (unsafe {labels['unsafe']}, "
        f"safe {labels['safe']})",
        f"- failures seen: {summary['failures_seen']}",
        f"- dropped as equal (up to layout) to an evaluation suite case: "
        f"{summary['excluded_exact']}",
        f"- dropped as near-equal to an evaluation suite case (same config "
        f"up to names, order and other fields the oracle does not read): "
        f"{summary['excluded_near']}",
        f"- evaluation suites: {', '.join(suites) if suites else 'none given'}",
        f"- dropped as duplicates (a config already exported for the same "
        f"question and task, near-equal copies included): {summary['duplicates']}",
        f"- balance `{summary['balance']}`: dropped {summary['dropped_for_balance']}"
        f"; correctly answered cases added: unsafe {added['unsafe']}, "
        f"safe {added['safe']}",
    ]
    if repair:
        out.append(
            "- repair failures: "
            + ", ".join(f"{kind} {n}" for kind, n in repair.items())
            + " (`refused`: the remediation declined the case; "
            "`failed_recheck`: its fix did not pass the repair judge; `error`: "
            "the remediation failed, see the log; those three are not exported)"
        )
    out += [
        "",
        "| task | examples |",
        "|---|---|",
        *(f"| {task} | {n} |" for task, n in summary["by_task"].items()),
        "",
        "| failure kind | examples |",
        "|---|---|",
        *(f"| {kind} | {n} |" for kind, n in summary["by_failure"].items()),
        "",
        "| violated rule | examples |",
        "|---|---|",
        *(f"| `{rule}` | {n} |" for rule, n in summary["by_rule"].items()),
        "",
    ]
    return out


def _splits(summary: dict[str, Any]) -> list[str]:
    splits = summary["splits"]
    clusters = summary["clusters"]
    out = [
        "## Splits",
        "",
        "`test` holds out part of every cluster; `train` never holds a config "
        "near-equal to a `test` one. A cluster is "
        "`domain/task/family/verdict:violated+rules`. Within each cluster, "
        "configs (near-equal copies together) are ordered by a hash of their "
        f"fingerprint and about {summary['test_fraction']:g} of them go to "
        "`test`: at least one of every cluster with two configs or more, never "
        "all; a cluster with a single config stays in `train`.",
        "",
        "| split | examples | unsafe | safe |",
        "|---|---|---|---|",
    ]
    for name, split in splits.items():
        labels = split["by_label"]
        out.append(
            f"| {name} | {split['rows']} | {labels['unsafe']} | {labels['safe']} |"
        )
    out += ["", "| cluster | train | test |", "|---|---|---|"]
    for key, counts in list(clusters.items())[:_CLUSTER_ROWS]:
        out.append(f"| `{key}` | {counts['train']} | {counts['test']} |")
    if len(clusters) > _CLUSTER_ROWS:
        out.append(
            f"\n{len(clusters) - _CLUSTER_ROWS} smaller clusters more: see export.json."
        )
    return [*out, ""]


def _files(summary: dict[str, Any]) -> list[str]:
    formats = summary["formats"]
    out = ["## Files", ""]
    if "jsonl" in formats:
        out += [
            "- `messages/{train,test}.jsonl`: `messages` (system, user, "
            "assistant), TRL's conversational language-modelling form.",
            "- `prompt_completion/{train,test}.jsonl`: `prompt` (system, user) and "
            "`completion` (assistant), TRL's conversational prompt-completion "
            "form: the loss falls on the answer only.",
        ]
    if "hf" in formats:
        out.append(
            "- `hf/messages/`, `hf/prompt_completion/`: the same rows as a "
            "`DatasetDict` with splits `train` and `test` (`save_to_disk`)."
        )
    if "parquet" in formats:
        out.append("- `parquet/<form>-<split>.parquet`: the same rows as parquet.")
    out += [
        "- `export.json`: every count on this card, and every cluster.",
        "",
        "Besides the chat, each row has `case_id`, `domain`, `family`, `task` "
        "(verdict or repair), `question`, `label` (the true verdict), `rules`, "
        "`failure` (the model's failure kind; empty for an added correct case), "
        "`source` (failure or correct), `cluster`, `config_hash` (the "
        "near-equal fingerprint), `template` (id@version), `model`, `run`.",
        "",
    ]
    return out


def _loading(summary: dict[str, Any]) -> list[str]:
    return [
        "## Training with TRL",
        "",
        "```python",
        "from datasets import load_from_disk",
        "from trl import SFTConfig, SFTTrainer",
        "",
        'data = load_from_disk("hf/prompt_completion")  # or "hf/messages"',
        "trainer = SFTTrainer(",
        '    model="HuggingFaceTB/SmolLM2-135M-Instruct",',
        '    train_dataset=data["train"],',
        '    eval_dataset=data["test"],',
        '    args=SFTConfig(output_dir="sft-out"),',
        ")",
        "trainer.train()",
        "```",
        "",
        'Without `save_to_disk`: `load_dataset("json", data_files={"train": '
        '"prompt_completion/train.jsonl"})` or `Dataset.from_parquet(...)`.',
        "",
    ]


def _caveats(summary: dict[str, Any]) -> list[str]:
    out = [
        "## Caveats",
        "",
        "- Failures lean to one label. Training on them alone mostly moves the "
        "model's decision threshold: in the project's CPU measurement a round "
        "on failures gave missed-unsafe 0.21 and false alarms 0.36, where a "
        "round on as many random examples gave 0.33 and 0.04, at about the "
        "same ranking quality. Balance labels (`--balance equal` or `fill`), "
        "mix in correctly answered cases (`--add-correct N`), and compare "
        "against a random control.",
        "- Report both missed-unsafe and false alarms after training, on a "
        "fresh suite: `test` shares clusters with `train` by design, so it "
        "measures learning within a cluster, not transfer to new ones.",
        "- Near-equal exclusion is syntactic (names, order, tags, descriptions); "
        "a config rewritten to mean the same in other words is not caught.",
        "- Small clusters put more than the test fraction into `test` (one "
        "config of two); the split table above gives the real sizes.",
    ]
    if not summary["balanced"]:
        out.append(
            "- The balance asked for was not reached: every verdict failure had "
            "one label, or too few correctly answered cases were found to add "
            f"(short: {summary['correct_short']})."
        )
    return out
