"""The report as one self-contained HTML page: ``spotcheck report --html``.

Everything is inline: the CSS, and plots drawn here as SVG (bars with
Wilson-interval whiskers), so the page opens from a CI artifact store or an
e-mail attachment with no network and no script. It is rendered from the
report dict of ``build_report`` alone, so a saved ``--json`` report renders
the same page. Every string from a run (configs, tag values, paths) passes
through ``html.escape``: configs hold ``<``, ``&`` and quotes by design.
"""

from __future__ import annotations

import difflib
from html import escape
from typing import Any

from generator.report import leads_said, templates_said, unfinished_note
from generator.stats import wilson_interval

__all__ = ["render_html"]

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222;
padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;
padding:.25em .6em;text-align:left}th{background:#f4f4f4}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.headline{font-size:1.3em;margin:1em 0}.headline b{color:#b00}
.cluster,.lead{border:1px solid #ccc;border-left:5px solid #b00;padding:.5em 1em;
margin:1em 0;border-radius:4px}.false_alarm{border-left-color:#c80}
.lead{border-left-color:#999}.cluster h3,.lead h3{margin:.2em 0;font-size:1.05em}code{background:#f4f4f4;padding:0 .2em}
pre{background:#f8f8f8;border:1px solid #ddd;padding:.6em;overflow:auto;
max-height:28em;font-size:12px}.meta{color:#555}
.add{color:#070}.del{color:#b00}svg text{font:12px system-ui,sans-serif}
"""

_HEADLINE = {
    "missed_unsafe": "Missed unsafe (unsafe called safe)",
    "repair_not_safe": "Repairs not safe",
}


def render_html(report: dict[str, Any]) -> str:
    """The whole page for a ``build_report`` dict (one or more runs)."""
    body = [_run(run) for run in report["runs"]]
    if report.get("comparison"):
        body.append(_comparison(report["comparison"]))
    title = "spotcheck report: " + ", ".join(r["run"] for r in report["runs"])
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _span(interval: list[float] | None) -> str:
    if not interval:
        return "n/a"
    return f"{100 * interval[0]:.1f}–{100 * interval[1]:.1f}%"


def _table(header: list[str], rows: list[list[Any]], numeric: set[int]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    lines = []
    for row in rows:
        cells = "".join(
            f"<td class=n>{escape(str(c))}</td>" if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        lines.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(lines)}</table>"


def _run(run: dict[str, Any]) -> str:
    head = run["headline"]
    parts = [
        f"<section class=run><h1>spotcheck report: {escape(run['run'])}</h1>",
        f"<p class=meta>model <code>{escape(str(run['model']))}</code> · task "
        f"{escape(run['task'])} · {escape(templates_said(run))} · "
        f"{run['cases']} cases ({run['truth']['unsafe']} unsafe, "
        f"{run['truth']['safe']} safe) · suite {escape(run['suite'])}</p>",
    ]
    if run.get("status", "finished") != "finished":
        note = escape(unfinished_note(run))
        parts.append(f"<p><b>Unfinished run</b>: {note}.</p>")
    label = _HEADLINE.get(head["metric"], head["metric"])
    parts.append(
        f"<p class=headline>{escape(label)}: <b>{_pct(head['value'])}</b> "
        f"({head['count']} of {head['of']}; 95% interval {_span(head['interval'])})"
        "</p>"
    )
    rows = [
        [
            escape(name),
            _pct(r["value"]),
            _span(r["interval"]),
            f"{r['count']}/{r['of']}",
        ]
        for name, r in run["rates"].items()
    ]
    parts.append(_table(["metric", "rate", "95% interval", "count"], rows, {1, 3}))

    if run.get("confusion"):
        parts.append("<h2>Confusion (rows: truth, columns: model answer)</h2>")
        answers = list(next(iter(run["confusion"].values())))
        rows = [[escape(t), *c.values()] for t, c in run["confusion"].items()]
        parts.append(_table(["truth \\ answer", *answers], rows, {1, 2, 3}))

    parts.append(_family_plot(run))
    parts.append(_rule_plot(run))
    parts.append("<h2>Failure clusters</h2>")
    alpha = run.get("cluster_settings", {}).get("alpha", 0.05)
    if run["clusters"]:
        parts.append(_size_plot(run["clusters"]))
        parts += [_cluster(i, c) for i, c in enumerate(run["clusters"], start=1)]
    else:
        parts.append(
            "<p id=no-clusters>No slice of the cases fails significantly more "
            f"often than the run as a whole (false discovery rate {alpha:g}).</p>"
        )
    if run.get("leads"):
        parts.append("<h2>Leads: not clusters</h2>")
        said = leads_said(run["leads"], alpha, bool(run["clusters"]))
        parts.append(f"<p>{escape(said)}</p>")
        parts += [_cluster(i, c, lead=True) for i, c in enumerate(run["leads"], 1)]
    if run.get("consistency"):
        parts.append(_consistency(run["consistency"]))
    parts.append("</section>")
    return "\n".join(parts)


# --- plots ------------------------------------------------------------------


def _bars(title: str, items: list[tuple[str, float, list[float] | None, str]]) -> str:
    """A horizontal bar chart: label, rate in [0, 1], interval, right note."""
    if not items:
        return ""
    row, left, width = 22, 230, 420
    height = row * len(items) + 30
    out = [
        f'<svg role=img aria-label="{escape(title)}" width="{left + width + 170}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1):
        x = left + tick * width
        out.append(
            f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 20}" '
            'stroke="#e4e4e4"/>'
            f'<text x="{x:.1f}" y="{height - 5}" text-anchor="middle">'
            f"{int(tick * 100)}%</text>"
        )
    for i, (label, value, interval, note) in enumerate(items):
        y = i * row + 4
        out.append(
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">'
            f"{escape(label[:34])}</text>"
            f'<rect x="{left}" y="{y + 2}" width="{value * width:.1f}" height="14" '
            f'fill="#d9534f"><title>{escape(label)}: {_pct(value)}</title></rect>'
        )
        if interval:
            low, high = (left + v * width for v in interval)
            mid = y + 9
            out.append(
                f'<path d="M{low:.1f} {mid}H{high:.1f}M{low:.1f} {mid - 5}V{mid + 5}'
                f'M{high:.1f} {mid - 5}V{mid + 5}" stroke="#222" fill="none"/>'
            )
        out.append(f'<text x="{left + width + 8}" y="{y + 13}">{escape(note)}</text>')
    out.append("</svg>")
    return f"<figure><figcaption>{escape(title)}</figcaption>{''.join(out)}</figure>"


def _family_plot(run: dict[str, Any]) -> str:
    metric = run["headline"]["metric"]
    items = []
    for r in run["per_family"]:
        rate = r.get(metric)
        if rate and rate["of"]:
            note = f"{_pct(rate['value'])} ({rate['count']}/{rate['of']})"
            items.append((r["family"], rate["value"], rate["interval"], note))
    label = _HEADLINE.get(metric, metric).lower()
    return "<h2>Per family</h2>" + _bars(f"{label} per family, 95% intervals", items)


def _rule_plot(run: dict[str, Any]) -> str:
    items = []
    for r in run["per_rule"]:
        wrong = r["cases"] - r["correct"]
        low, high = wilson_interval(wrong, r["cases"])
        note = f"{_pct(wrong / r['cases'])} ({wrong}/{r['cases']})"
        items.append((r["rule"], wrong / r["cases"], [low, high], note))
    if not items:
        return ""
    title = "wrong answers per violated rule, 95% intervals"
    return "<h2>Per check</h2>" + _bars(title, items)


def _size_plot(clusters: list[dict[str, Any]]) -> str:
    """Cluster sizes: cases in the slice, the failing ones darker."""
    row, left, width = 22, 40, 520
    biggest = max(c["support"] for c in clusters)
    out = [
        f'<svg role=img aria-label="cluster sizes" width="{left + width + 200}" '
        f'height="{row * len(clusters) + 8}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, c in enumerate(clusters):
        y = i * row + 4
        full = c["support"] / biggest * width
        failed = c["failures"] / biggest * width
        out.append(
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">#{i + 1}</text>'
            f'<rect x="{left}" y="{y + 2}" width="{full:.1f}" height="14" '
            f'fill="#f0b8b6"/><rect x="{left}" y="{y + 2}" width="{failed:.1f}" '
            f'height="14" fill="#b52b27"><title>{escape(c["slice"])}</title></rect>'
            f'<text x="{left + full + 6:.1f}" y="{y + 13}">{c["failures"]} of '
            f"{c['support']} fail</text>"
        )
    out.append("</svg>")
    caption = "cluster sizes: cases in each slice, failing ones dark"
    return f"<figure><figcaption>{caption}</figcaption>{''.join(out)}</figure>"


# --- clusters ---------------------------------------------------------------


def _cluster(number: int, c: dict[str, Any], *, lead: bool = False) -> str:
    name = "lead" if lead else "cluster"
    kind = escape(c["kind"])
    conditions = " &amp; ".join(
        f"<code>{escape(str(x['key']))}={escape(_json_value(x['value']))}</code>"
        for x in c["conditions"]
    )
    parts = [
        f'<div class="{name} {kind}" id="{name}-{number}">',
        f"<h3>{name.capitalize()} {number}: {kind.replace('_', ' ')} · {conditions}</h3>",
        f"<p>fails {_pct(c['failure_rate'])} ({c['failures']} of {c['support']} "
        f"cases; 95% interval {_span(c['interval'])}) against {_pct(c['base_rate'])} "
        f"overall: lift {c['lift']:.1f}× · q = {c['q_value']:.3g}</p>",
    ]
    if c.get("equivalent"):
        also = ", ".join(f"<code>{escape(e)}</code>" for e in c["equivalent"])
        parts.append(f"<p class=meta>also spelled {also}</p>")
    minimal = c.get("minimal_example")
    if minimal:
        calls = minimal.get("model_calls")
        note = f" ({calls} model calls to shrink)" if calls is not None else ""
        parts.append(f"<p>Minimal failing example{note}:</p>")
        parts.append(f"<pre class=minimal>{escape(minimal['config'])}</pre>")
        passing = minimal.get("nearest_passing")
        if passing:
            parts.append(
                "<p>Diff from the nearest passing case "
                f"<code>{escape(str(passing.get('case_id')))}</code>:</p>"
            )
            parts.append(_diff(passing["config"], minimal["config"]))
    example = c.get("example")
    if example:
        rules = ", ".join(example.get("rules", [])) or "none"
        parts.append(
            f"<p>Smallest failing case <code>{escape(example['case_id'])}</code> "
            f"(family {escape(example['family'])}, truth {escape(example['truth'])}"
            f", violated: {escape(rules)}):</p>"
            f"<pre class=example>{escape(example['config'])}</pre>"
        )
    else:
        parts.append(
            f"<p>Smallest failing case <code>{escape(c['example_case_id'])}</code></p>"
        )
    parts.append("</div>")
    return "\n".join(parts)


def _json_value(value: Any) -> str:
    if value is True or value is False:
        return str(value).lower()
    return str(value)


def _diff(before: str, after: str) -> str:
    """A unified diff, passing case to failing one, lines coloured."""
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), "passing", "failing", lineterm=""
    )
    out = []
    for line in lines:
        css = "add" if line.startswith("+") else "del" if line.startswith("-") else ""
        text = escape(line)
        out.append(f"<span class={css}>{text}</span>" if css else text)
    return "<pre class=diff>" + "\n".join(out) + "</pre>"


def _consistency(consistency: dict[str, Any]) -> str:
    rows = [
        [escape(relation), c["pairs"], _pct(c["consistent"]["value"]),
         _span(c["consistent"]["interval"]), _pct(c["both_correct"]["value"])]
        for relation, c in consistency.items()
    ]  # fmt: skip
    header = ["sibling relation", "pairs", "consistent", "95% interval", "both right"]
    return "<h2>Consistency across siblings</h2>" + _table(header, rows, {1, 2})


def _comparison(deltas: list[dict[str, Any]]) -> str:
    parts = ["<section id=comparison><h1>Comparison</h1>"]
    for d in deltas:
        parts.append(f"<h2>{escape(d['run'])} against {escape(d['against'])}</h2>")
        if "not_comparable" in d:
            parts.append(f"<p>Not compared: {escape(d['not_comparable'])}.</p>")
            continue
        models = d["models"]
        parts.append(
            f"<p class=meta>models <code>{escape(str(models['before']))}</code> → "
            f"<code>{escape(str(models['after']))}</code>; changes are after "
            "minus before, with Newcombe's 95% interval</p>"
        )
        if d["differences"]:
            parts.append(
                f"<p><b>Compared although the {escape(' and '.join(d['differences']))}"
                " differ</b> (--allow-different).</p>"
            )
        header = ["before", "after", "change", "95% interval"]
        rows = [[escape(m), *_change_cells(c)] for m, c in d["rates"].items()]
        parts.append(_table(["metric", *header], rows, {1, 2, 3, 4}))
        for status, title in (("new", "New clusters"), ("fixed", "Fixed clusters"),
                              ("persisting", "Persisting clusters")):  # fmt: skip
            items = d["clusters"][status]
            parts.append(f"<h3 id=clusters-{status}>{title} ({len(items)})</h3>")
            if not items:
                parts.append("<p>none</p>")
                continue
            extra = {"new": "was", "fixed": "now"}.get(status)
            rows = [
                [escape(c["kind"]), f"<code>{escape(c['slice'])}</code>",
                 *_change_cells(c), *([escape(c[extra])] if extra else [])]
                for c in items
            ]  # fmt: skip
            columns = ["kind", "slice", *header, *([extra] if extra else [])]
            parts.append(_table(columns, rows, {2, 3, 4, 5}))
        parts.append("<h3>Per family</h3>")
        rows = [
            [escape(r["family"]), escape(r["metric"]), *_change_cells(r)]
            for r in d["per_family"]
        ]
        parts.append(_table(["family", "metric", *header], rows, {2, 3, 4, 5}))
    parts.append("</section>")
    return "\n".join(parts)


def _change_cells(change: dict[str, Any]) -> list[str]:
    """before, after, change in points, and its interval (plain text)."""

    def side(rate: dict[str, Any] | None) -> str:
        if rate is None:
            return "not counted"
        return f"{_pct(rate['value'])} ({rate['count']}/{rate['of']})"

    points, interval = change["change"], change["interval"]
    return [
        side(change["before"]),
        side(change["after"]),
        "n/a" if points is None else f"{100 * points:+.1f} pts",
        "n/a" if interval is None else
        f"{100 * interval[0]:+.1f} to {100 * interval[1]:+.1f} pts",
    ]  # fmt: skip
