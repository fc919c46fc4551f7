"""The HTML report: escaped, self-contained, and rendered by a real browser."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fakeruns import answer, make_case, write_run, write_suite

from generator.report import build_report
from generator.report_html import render_html

HOSTILE = '<script>alert("x")</script> & "quoted" \'single\''


def hostile_run(tmp_path: Path) -> Path:
    """A planted hostPath cluster whose configs and family names need escaping."""
    rng = random.Random(3)
    cases, results = [], []
    for i in range(240):
        hostpath = rng.random() < 0.4
        config = f"kind: Pod\nmetadata:\n  name: x # {HOSTILE}\n# case {i}\n"
        rules = ["restrictedVolumes"] if hostpath else ["runAsNonRoot"]
        case = make_case(i, tags={"has_hostpath": hostpath, "note": "<b>&amp;"},
                         rules=rules, family=rng.choice(["pod<&>", "job"]),
                         config=config + "x: y\n" * rng.randint(0, 4))  # fmt: skip
        miss = rng.random() < (0.8 if hostpath else 0.05)
        cases.append(case)
        results.append(answer(case, "safe" if miss else "unsafe"))
    suite = write_suite(tmp_path / "suite", cases)
    return write_run(tmp_path / "run", suite, results)


def test_page_escapes_every_string_from_the_run(tmp_path: Path) -> None:
    report = build_report([hostile_run(tmp_path)])
    page = render_html(report)

    assert "<script" not in page  # the page has no script, and none injected
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "pod&lt;&amp;&gt;" in page


def test_page_is_self_contained(tmp_path: Path) -> None:
    page = render_html(build_report([hostile_run(tmp_path)]))

    # Only the SVG namespace may look like a URL; nothing is fetched.
    urls = set(re.findall(r"(?:https?:)?//[\w.-]+", page))
    assert urls <= {"http://www.w3.org"}
    assert not re.search(r"<(link|img|iframe|object)\b|src=|@import", page)


def test_page_shows_clusters_plots_and_a_minimal_example_diff(tmp_path: Path) -> None:
    report = build_report([hostile_run(tmp_path)])
    cluster = report["runs"][0]["clusters"][0]
    assert cluster["slice"] == "has_hostpath=true"
    assert cluster["example"]["case_id"] == cluster["example_case_id"]
    assert cluster["minimal_example"] is None
    cluster["minimal_example"] = {
        "config": "kind: Pod\nhostPath: /\n",
        "model_calls": 17,
        "nearest_passing": {"case_id": "k8s-9", "config": "kind: Pod\nemptyDir: {}\n"},
    }

    page = render_html(report)

    assert page.count("<svg") == 3  # per family, per check, cluster sizes
    assert 'id="cluster-1"' in page and "has_hostpath=true" in page
    assert "17 model calls" in page
    assert "<span class=add>+hostPath: /</span>" in page
    assert "<span class=del>-emptyDir: {}</span>" in page


def _chromium() -> str | None:
    return shutil.which("chromium") or (
        "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
    )


def test_page_renders_in_headless_chromium(tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        message = "chromium is not installed; run scripts/setup (it installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    page = tmp_path / "report.html"
    page.write_text(render_html(build_report([hostile_run(tmp_path)])), "utf-8")

    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr",
         "--v=0", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    # The browser parsed the page into the document we wrote: the cluster
    # box with its slice, the plots, the escaped config as text.
    assert 'id="cluster-1"' in dom and "has_hostpath=true" in dom
    assert dom.count("<svg") == 3 and "<rect" in dom
    assert "&lt;script&gt;alert" in dom and "<script" not in dom
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console
    assert "Uncaught" not in done.stderr
