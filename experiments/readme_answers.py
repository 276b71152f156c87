"""The README's answer tables, generated from committed ``summary.json`` files of real
catalogue runs (never hand-edited numbers).

    python -m experiments.readme_answers docs/answers/quick.json docs/answers/full-showcases.json
    python -m experiments.readme_answers docs/answers/*.json --check   # exit 1 when they disagree

Each committed answer has its own block in the README, named after the file:
``docs/answers/NAME.json`` fills ``<!-- answers:NAME:begin -->`` ... ``<!-- answers:NAME:end -->``
(``quick.json`` fills the original ``<!-- answers:begin -->`` ... ``<!-- answers:end -->``). A
summary holding showcases only is rendered per showcase: its question (which names the published
expectation), then per variant what happened and whether it matches; any other as one table.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from experiments import fmt
from experiments.answer import FORMATS, LABELS
from experiments.catalogue import SHOWCASES
from experiments.pages import Table, table_markdown

BEGIN, END = "<!-- answers:begin -->", "<!-- answers:end -->"
DEFAULT_BLOCK = "quick"  # the block with the original, unnamed markers
README = Path(__file__).resolve().parent.parent / "README.md"
FINDINGS_CHARS = 220  # the README cell keeps the start of the pattern's findings; the run's report has them all
HAPPENED_CHARS = 700  # a showcase row's "what happened" keeps the published expectation, the lab's finding, the match


def markers(name: str) -> tuple[str, str]:
    """The README markers of the block of committed answer ``name`` (its file name without .json)."""
    return (BEGIN, END) if name == DEFAULT_BLOCK else (f"<!-- answers:{name}:begin -->", f"<!-- answers:{name}:end -->")


def _short(text: str, limit: int = FINDINGS_CHARS) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


def _source(summary: Mapping[str, Any]) -> str:
    return (f"From a real run: `{summary['command']}` ({summary['machine']}, {summary['backend']} backend, "
            f"{summary['date']}, commit {summary['commit']}; {len(summary['rows'])} rows in "
            f"{summary['elapsed_min']} min"
            + (f"; {summary['note']}" if summary.get("note") else "")  # how it was produced, when not one run
            + "). Figures are medians with their range over the fault cycles "
            "(n = cycles). The verdict names the violated claim; `undecided` says why.")


def _unique_rows(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The rows, a run listed by two sections once."""
    seen: set[tuple[str, str]] = set()
    out = []
    for r in summary["rows"]:
        key = (r["experiment"], r["topology"])
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def render_table(summary: Mapping[str, Any]) -> str:
    """One row per catalogue row (the quick profile's answer)."""
    t = Table(["experiment", "topology", "verdict", "availability during the fault",
               "p99 of successes during the fault", "failover", "time to recover", "what the pattern's claims found"])
    for r in _unique_rows(summary):
        t.add(r["experiment"], r["topology"], r["verdict_words"],
              *(fmt.spread(r[k], FORMATS[k]) for k in ("availability_during", "p99_during_ms", "failover_s",
                                                       "recover_s")),
              _short(r["findings"]))
    return "\n".join([_source(summary), "", table_markdown(t)])


def render_showcases(summary: Mapping[str, Any]) -> str:
    """Per showcase (catalogue order): its title and question, then one row per variant: the verdict,
    the figure the variants are compared on, whether the published expectation was reproduced, and
    what happened (the claims judging it: what was published, what the lab saw)."""
    parts = [_source(summary) + " Each showcase's question names the published expectation; each variant "
             "says what happened and whether the lab reproduced it."]
    for sc in SHOWCASES:
        rows = [r for r in summary["rows"] if r["section"] == sc.key]
        if not rows:
            continue
        key = sc.compare or "availability_during"
        t = Table(["variant", "experiment", "topology", "verdict", LABELS[key], "as published?", "what happened"])
        for r in rows:
            t.add(r["label"], r["experiment"], r["topology"], r["verdict_words"], fmt.spread(r[key], FORMATS[key]),
                  r.get("published") or "n/a", _short(r.get("published_text") or r["findings"], HAPPENED_CHARS))
        parts += [f"**{sc.title}.** {sc.question}", table_markdown(t)]
    return "\n\n".join(parts)


def render(summary: Mapping[str, Any], name: str = DEFAULT_BLOCK) -> str:
    """The README block of committed answer ``name``: where the figures come from, then the answer."""
    showcases = {sc.key for sc in SHOWCASES}
    only_showcases = bool(summary["rows"]) and all(r["section"] in showcases for r in summary["rows"])
    begin, end = markers(name)
    body = render_showcases(summary) if only_showcases else render_table(summary)
    return "\n".join([begin, "", body, "", end])


def replace_block(text: str, block: str, name: str = DEFAULT_BLOCK) -> str:
    begin, end = markers(name)
    if begin not in text or end not in text:
        raise SystemExit(f"README has no {begin} ... {end} block (hint: add both markers where the answer goes)")
    start, stop = text.index(begin), text.index(end) + len(end)
    return text[:start] + block + text[stop:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("summary", type=Path, nargs="+", help="summary.json of a catalogue run, as committed in "
                    "docs/answers/NAME.json (its README block is named NAME)")
    ap.add_argument("--readme", type=Path, default=README)
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when the README disagrees")
    args = ap.parse_args(argv)
    for path in args.summary:
        if not path.is_file():
            print(f"error: {path} does not exist (hint: make demo writes results/summary.json)", file=sys.stderr)
            return 2
    text = args.readme.read_text()
    new = text
    for path in args.summary:
        new = replace_block(new, render(json.loads(path.read_text()), path.stem), path.stem)
    if args.check:
        if new != text:
            print(f"{args.readme} disagrees with {', '.join(map(str, args.summary))}: run python -m "
                  f"experiments.readme_answers {' '.join(map(str, args.summary))}", file=sys.stderr)
            return 1
        return 0
    args.readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
