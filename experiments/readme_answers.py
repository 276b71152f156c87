"""The README's answer table, generated from a committed ``summary.json`` of a real
catalogue run (never hand-edited numbers).

    python -m experiments.readme_answers docs/answers/quick.json          # rewrite README.md's table
    python -m experiments.readme_answers docs/answers/quick.json --check  # exit 1 when they disagree

The table lives between ``<!-- answers:begin -->`` and ``<!-- answers:end -->``.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from experiments import fmt
from experiments.answer import FORMATS
from experiments.pages import Table, table_markdown

BEGIN, END = "<!-- answers:begin -->", "<!-- answers:end -->"
README = Path(__file__).resolve().parent.parent / "README.md"
FINDINGS_CHARS = 220  # the README cell keeps the start of the pattern's findings; the run's report has them all


def _short(text: str) -> str:
    return text if len(text) <= FINDINGS_CHARS else text[:FINDINGS_CHARS].rsplit(" ", 1)[0] + " ..."


def render(summary: Mapping[str, Any]) -> str:
    """The README block: where the figures come from, then one row per catalogue row."""
    head = (f"From a real run: `{summary['command']}` ({summary['machine']}, {summary['backend']} backend, "
            f"{summary['date']}, commit {summary['commit']}; {len(summary['rows'])} rows in "
            f"{summary['elapsed_min']} min). Figures are medians with their range over the fault cycles "
            "(n = cycles). The verdict names the violated claim; `undecided` says why.")
    t = Table(["experiment", "topology", "verdict", "availability during the fault",
               "p99 of successes during the fault", "failover", "time to recover", "what the pattern's claims found"])
    seen: set[tuple[str, str]] = set()
    for r in summary["rows"]:
        key = (r["experiment"], r["topology"])
        if key in seen:  # a run listed by two sections appears once
            continue
        seen.add(key)
        t.add(r["experiment"], r["topology"], r["verdict_words"],
              *(fmt.spread(r[k], FORMATS[k]) for k in ("availability_during", "p99_during_ms", "failover_s",
                                                       "recover_s")),
              _short(r["findings"]))
    return "\n".join([BEGIN, "", head, "", table_markdown(t), "", END])


def replace_block(text: str, block: str) -> str:
    if BEGIN not in text or END not in text:
        raise SystemExit(f"README has no {BEGIN} ... {END} block")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + block + text[end:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("summary", type=Path, help="summary.json of a catalogue run")
    ap.add_argument("--readme", type=Path, default=README)
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when the README disagrees")
    args = ap.parse_args(argv)
    if not args.summary.is_file():
        print(f"error: {args.summary} does not exist (hint: make demo writes results/summary.json)", file=sys.stderr)
        return 2
    block = render(json.loads(args.summary.read_text()))
    text = args.readme.read_text()
    new = replace_block(text, block)
    if args.check:
        if new != text:
            print(f"{args.readme} disagrees with {args.summary}: run python -m experiments.readme_answers "
                  f"{args.summary}", file=sys.stderr)
            return 1
        return 0
    args.readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
