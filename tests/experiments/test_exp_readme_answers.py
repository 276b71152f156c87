"""The README's answer table is generated from a committed summary of a real run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments import readme_answers

SUMMARY = Path(__file__).resolve().parents[2] / "docs" / "answers" / "quick.json"


def test_readme_answer_table_matches_the_committed_summary() -> None:
    assert SUMMARY.is_file(), "the README's answer table needs its committed summary"
    assert readme_answers.main([str(SUMMARY), "--check"]) == 0


def test_a_hand_edited_number_is_caught(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    summary = json.loads(SUMMARY.read_text())
    readme.write_text("intro\n" + readme_answers.render(summary) + "\nrest\n")
    assert readme_answers.main([str(SUMMARY), "--readme", str(readme), "--check"]) == 0
    row = summary["rows"][0]
    first = readme_answers.fmt.spread(row["availability_during"], readme_answers.FORMATS["availability_during"])
    readme.write_text(readme.read_text().replace(first, "99.99%", 1))
    assert readme_answers.main([str(SUMMARY), "--readme", str(readme), "--check"]) == 1
    readme_answers.main([str(SUMMARY), "--readme", str(readme)])
    assert readme_answers.main([str(SUMMARY), "--readme", str(readme), "--check"]) == 0
    assert readme.read_text().startswith("intro\n") and readme.read_text().endswith("\nrest\n")


def test_summary_names_where_its_figures_come_from() -> None:
    s = json.loads(SUMMARY.read_text())
    for key in ("command", "date", "commit", "machine", "profile", "backend"):
        assert s[key], key
    assert all(r["availability_during"]["n"] >= 2 or r["verdict"] == "error" for r in s["rows"]), \
        "every row's figures are spreads over at least two fault cycles"


@pytest.mark.parametrize("bad", ["missing.json"])
def test_missing_summary_is_one_line(bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert readme_answers.main([str(tmp_path / bad), "--check"]) == 2
    assert "does not exist" in capsys.readouterr().err
