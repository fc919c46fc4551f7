"""Writing an export's rows in both TRL forms, as JSONL, datasets and parquet.

TRL names two shapes for chat data (its "dataset formats" guide), and its
``SFTTrainer`` takes either:

* conversational language modelling, ``messages``: the whole chat, system,
  user and assistant turns, each ``{"role", "content"}``;
* conversational prompt-completion, ``prompt`` (the system and user turns)
  and ``completion`` (the assistant turn), both lists of such messages:
  TRL then trains on the completion only.

Each form is written as ``<form>/{train,test}.jsonl``, as a ``DatasetDict``
with splits ``train`` and ``test`` (``hf/<form>``, ``save_to_disk``) and as
``parquet/<form>-<split>.parquet``. The other columns (case id, label,
rules, cluster, ...) travel in every form; TRL ignores columns it does not
use.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from generator.errors import InvalidArgument
from generator.export_select import LABELS

__all__ = [
    "FORMS",
    "SPLITS",
    "JsonlWriter",
    "meta_columns",
    "save_datasets",
    "write_splits",
]

logger = logging.getLogger(__name__)

FORMS = ("messages", "prompt_completion")
SPLITS = ("train", "test")

# Columns besides the chat, in the order they are written.
_META = {
    "case_id": "string",
    "domain": "string",
    "family": "string",
    "task": "string",
    "question": "string",
    "label": "string",
    "rules": ["string"],
    "failure": "string",
    "source": "string",
    "cluster": "string",
    "config_hash": "string",
    "template": "string",
    "model": "string",
    "run": "string",
}


def meta_columns() -> tuple[str, ...]:
    return tuple(_META)


def form_row(form: str, row: dict[str, Any]) -> dict[str, Any]:
    """A drafted row (``messages`` plus the metadata) in one TRL form."""
    meta = {name: row[name] for name in _META}
    messages = row["messages"]
    if form == "messages":
        return {"messages": messages, **meta}
    return {"prompt": messages[:-1], "completion": messages[-1:], **meta}


class JsonlWriter:
    """One open ``<form>/<split>.jsonl`` per form and split, for streaming."""

    def __init__(self, out_dir: Path):
        self.paths = {
            (form, split): out_dir / form / f"{split}.jsonl"
            for form in FORMS
            for split in SPLITS
        }
        self.handles: dict[tuple[str, str], Any] = {}

    def __enter__(self) -> JsonlWriter:
        for (form, split), path in self.paths.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            self.handles[form, split] = open(path, "w", encoding="utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles.values():
            handle.close()

    def write(self, split: str, row: dict[str, Any]) -> None:
        for form in FORMS:
            line = json.dumps(form_row(form, row), ensure_ascii=False)
            self.handles[form, split].write(line + "\n")


def datasets_module() -> Any:
    try:
        import datasets
    except ImportError:
        raise InvalidArgument(
            "formats hf and parquet need the datasets package: pip install "
            "'spotcheck[model]', or export with --format jsonl only"
        ) from None
    # A few small shards are written in a blink; their progress bars are noise.
    datasets.disable_progress_bars()
    return datasets


def features(datasets: Any, form: str) -> Any:
    """The explicit schema of one form.

    Explicit because with no rows, or only SAFE ones, inference would give
    a column no type. Lists are spelled ``[feature]``, which datasets 3 and
    4+ both read as a list (a Sequence of a dict is not).
    """
    string = datasets.Value("string")
    message = {"role": string, "content": string}
    chat = (
        {"messages": [message]}
        if form == "messages"
        else {"prompt": [message], "completion": [message]}
    )
    meta = {
        name: [string] if isinstance(kind, list) else string
        for name, kind in _META.items()
    }
    return datasets.Features({**chat, **meta})


def save_datasets(
    datasets: Any, out_dir: Path, jsonl: dict[tuple[str, str], Path], formats
) -> dict[str, list[str]]:
    """``hf/<form>`` (DatasetDict) and/or ``parquet/<form>-<split>.parquet``
    from the JSONL files; returns the paths written, by format."""
    written: dict[str, list[str]] = {"hf": [], "parquet": []}
    for form in FORMS:
        splits = {
            split: _dataset(datasets, form, jsonl[form, split]) for split in SPLITS
        }
        if "hf" in formats:
            target = out_dir / "hf" / form
            # load_from_disk cannot read a zero-shard save: one shard for
            # an empty split.
            shards = {s: 1 for s, d in splits.items() if len(d) == 0}
            datasets.DatasetDict(splits).save_to_disk(str(target), num_shards=shards)
            written["hf"].append(str(target))
        if "parquet" in formats:
            (out_dir / "parquet").mkdir(parents=True, exist_ok=True)
            for split, dataset in splits.items():
                target = out_dir / "parquet" / f"{form}-{split}.parquet"
                dataset.to_parquet(str(target))
                written["parquet"].append(str(target))
    return written


def _dataset(datasets: Any, form: str, path: Path) -> Any:
    schema = features(datasets, form)
    columns: dict[str, list[Any]] = {name: [] for name in schema}
    for row in _rows(path):
        for name in schema:
            columns[name].append(row[name])
    # Column-wise, so a split with no rows still gets every column.
    return datasets.Dataset.from_dict(columns, features=schema)


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


def write_splits(
    draft: Path, writer: JsonlWriter, splits: dict[int, str]
) -> dict[str, Any]:
    """Route each kept draft line to its split's files; count what went where."""
    by: dict[str, Counter[str]] = {
        k: Counter() for k in ("label", "rule", "failure", "task", "source")
    }
    per_split = {split: Counter() for split in SPLITS}
    clusters: dict[str, Counter[str]] = {}
    with writer:
        for line, row in enumerate(_rows(draft)):
            split = splits.get(line)
            if split is None:
                continue  # dropped for balance
            writer.write(split, row)
            per_split[split][row["label"]] += 1
            clusters.setdefault(row["cluster"], Counter())[split] += 1
            by["label"][row["label"]] += 1
            by["rule"].update(row["rules"])
            by["failure"][row["failure"] or "correct"] += 1
            by["task"][row["task"]] += 1
            by["source"][row["source"]] += 1
    return {
        "exported": sum(by["label"].values()),
        "by_label": {label: by["label"][label] for label in LABELS},
        "by_failure": dict(sorted(by["failure"].items())),
        "by_rule": dict(sorted(by["rule"].items(), key=lambda kv: (-kv[1], kv[0]))),
        "by_task": dict(sorted(by["task"].items())),
        "by_source": dict(sorted(by["source"].items())),
        "splits": {
            split: {
                "rows": sum(counts.values()),
                "by_label": {label: counts[label] for label in LABELS},
            }
            for split, counts in per_split.items()
        },
        "clusters": {
            key: {split: counts[split] for split in SPLITS}
            for key, counts in sorted(
                clusters.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])
            )
        },
    }
