"""The answer page and a run's page, opened in headless Chromium as a reader would: no broken
link or image, no console error; a screenshot of each is kept as a test artefact."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from playwright.sync_api import Page, sync_playwright

from experiments.catalogue import Item, Outcome, write_answer
from experiments.report import render_run
from tests.experiments.test_exp_report import make_run

CHROMIUM = shutil.which("chromium")
ARTEFACTS = Path(__file__).resolve().parents[2] / "results" / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def _answer_dir(tmp_path: Path) -> Path:
    out = tmp_path / "results"
    held, lost = make_run(out / "run-held"), make_run(out / "run-lost", lose_write=True)
    outcomes = []
    for run, label in ((held, "WAIT 1"), (lost, "no mitigation")):
        result = render_run(run)
        outcomes.append(Outcome(Item("split-brain", label, str(result["experiment"]), "sentinel"), [run], [result]))
    outcomes.append(Outcome(Item("split-brain", "min-replicas", "splitbrain-min-replicas", "sentinel"),
                            error="topology did not start"))
    write_answer(out, outcomes, {"profile": "quick", "backend": "local", "repeat": 1, "commit": "test",
                                 "date": "2026-11-29", "elapsed_min": 0.1, "machine": "test",
                                 "command": "redislab demo --profile quick"})
    return out


def _visit(page: Page, url: str) -> dict[str, Any]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    images = page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), "
                                               "e.complete && e.naturalWidth > 0])")
    links = page.eval_on_selector_all("a", "els => els.map(e => e.href)")
    return {"errors": errors, "images": images, "links": links}


def test_answer_page_and_run_page_render_without_broken_links_or_errors(tmp_path: Path) -> None:
    assert CHROMIUM, "chromium is missing: `make setup` installs it (Debian package chromium)"
    out = _answer_dir(tmp_path)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            seen = _visit(page, (out / "index.html").as_uri())
            page.screenshot(path=str(ARTEFACTS / "answer-page.png"), full_page=True)
            run_page = browser.new_page(viewport={"width": 1300, "height": 900})
            run_seen = _visit(run_page, (out / "run-lost" / "report.html").as_uri())
            run_page.screenshot(path=str(ARTEFACTS / "run-page.png"), full_page=True)
        finally:
            browser.close()
    for name, s in (("index.html", seen), ("run-lost/report.html", run_seen)):
        assert s["errors"] == [], (name, s["errors"])
        assert s["images"] and all(ok for _src, ok in s["images"]), (name, s["images"])
        for href in s["links"]:
            url = urlparse(href)
            assert url.scheme == "file", (name, href)  # nothing leaves the machine
            assert Path(unquote(url.path)).exists(), (name, href)
    assert any(h.endswith("run-lost/report.html") for h in seen["links"])  # each run one click away
    assert any(h.endswith("history.jsonl") for h in run_seen["links"])  # the raw files linked
    assert json.loads((out / "summary.json").read_text())["rows"][2]["verdict"] == "error"
    assert (ARTEFACTS / "answer-page.png").read_bytes()[:4] == b"\x89PNG"
