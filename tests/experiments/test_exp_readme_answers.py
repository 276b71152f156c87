"""The README's answer table is generated from a committed summary of a real run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments import readme_answers

SUMMARY = Path(__file__).resolve().parents[2] / "docs" / "answers" / "quick.json"
SHOWCASES_SUMMARY = SUMMARY.parent / "full-showcases.json"


def test_readme_answer_table_matches_the_committed_summary() -> None:
    assert SUMMARY.is_file(), "the README's answer table needs its committed summary"
    assert readme_answers.main([str(SUMMARY), "--check"]) == 0


def test_readme_showcase_answers_match_their_committed_summary() -> None:
    assert SHOWCASES_SUMMARY.is_file(), "the README's full-profile showcase answers need their committed summary"
    assert readme_answers.main([str(SUMMARY), str(SHOWCASES_SUMMARY), "--check"]) == 0


def test_every_full_only_showcase_row_says_what_happened_and_whether_it_matches_the_published_expectation() -> None:
    s = json.loads(SHOWCASES_SUMMARY.read_text())
    wanted = {(exp, top) for sc in readme_answers.SHOWCASES if not sc.quick for _label, exp, top in sc.variants}
    assert {(r["experiment"], r["topology"]) for r in s["rows"]} == wanted
    for r in s["rows"]:
        assert r["published"] in ("reproduced", "not reproduced", "undecided"), r["experiment"]
        text = r["published_text"]  # the expectation, what the lab saw, and whether they match
        assert any(w in text for w in ("The lab reproduced it", "The lab did NOT reproduce it",
                                       "The lab could not tell")), r["experiment"]


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


@pytest.mark.parametrize("committed", ["quick.json", "full-showcases.json"])
def test_summary_names_where_its_figures_come_from(committed: str) -> None:
    s = json.loads((SUMMARY.parent / committed).read_text())
    for key in ("command", "date", "commit", "machine", "profile", "backend"):
        assert s[key], key
    assert all(r["availability_during"]["n"] >= 2 or r["verdict"] == "error" for r in s["rows"]), \
        "every row's figures are spreads over at least two fault cycles"


@pytest.mark.parametrize("bad", ["missing.json"])
def test_missing_summary_is_one_line(bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert readme_answers.main([str(tmp_path / bad), "--check"]) == 2
    assert "does not exist" in capsys.readouterr().err



def _showcase_summary() -> dict:
    spread = {"median": 0.5, "low": 0.4, "high": 0.6, "n": 3}
    rows = [{"section": "stalled-thread", "label": "Lua script (BUSY)", "experiment": "stall-lua",
             "topology": "sentinel", "runs": 1, "verdict": "violated", "verdict_words": "violated: as published",
             **dict.fromkeys(readme_answers.FORMATS, spread), "findings": "f",
             "published": "not reproduced", "published_text": "Published (sentinel.c): no failover. The lab: "
             "cycle 2: redis-3 promoted after 2.8 s. The lab did NOT reproduce it."},
            {"section": "bandwidth", "label": "1 KiB values", "experiment": "bandwidth-1k", "topology": "single",
             "runs": 1, "verdict": "held", "verdict_words": "held: all 6 claims",
             **dict.fromkeys(readme_answers.FORMATS, spread), "findings": "g"}]
    return {"command": "redislab demo --profile full --only stalled-thread,bandwidth", "machine": "2 cores",
            "backend": "local", "date": "2026-11-30", "commit": "abc1234", "elapsed_min": 9.0, "rows": rows}


def test_a_showcase_answer_gets_its_own_block_with_each_question_and_what_happened(tmp_path: Path) -> None:
    summary = _showcase_summary()
    block = readme_answers.render(summary, "full-showcases")
    assert block.startswith("<!-- answers:full-showcases:begin -->") and block.endswith(
        "<!-- answers:full-showcases:end -->")
    stalled = next(sc for sc in readme_answers.SHOWCASES if sc.key == "stalled-thread")
    assert f"**A stalled thread.** {stalled.question}" in block
    assert "The lab did NOT reproduce it." in block and "| not reproduced" in block
    assert "**A thin pipe.**" in block and "| n/a " in block  # a row without a published claim says so
    assert block.index("A stalled thread") < block.index("A thin pipe")  # catalogue order
    assert "; several runs, one per showcase)" in readme_answers.render({**summary, "note": "several runs, one per "
                                                                         "showcase"}, "full-showcases")
    readme = tmp_path / "README.md"
    quick = json.loads(SUMMARY.read_text())
    readme.write_text("intro\n" + readme_answers.render(quick) + "\nmiddle\n<!-- answers:full-showcases:begin -->"
                      "\n<!-- answers:full-showcases:end -->\nrest\n")
    path = tmp_path / "full-showcases.json"
    path.write_text(json.dumps(summary))
    both = [str(SUMMARY), str(path), "--readme", str(readme)]
    assert readme_answers.main([*both, "--check"]) == 1  # the showcase block is still empty
    assert readme_answers.main(both) == 0 and readme_answers.main([*both, "--check"]) == 0
    assert readme_answers.render(quick) in readme.read_text() and block in readme.read_text()


def test_a_readme_without_the_named_block_is_one_line(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(readme_answers.render(json.loads(SUMMARY.read_text())))
    path = tmp_path / "full-showcases.json"
    path.write_text(json.dumps(_showcase_summary()))
    with pytest.raises(SystemExit, match="answers:full-showcases:begin"):
        readme_answers.main([str(path), "--readme", str(readme), "--check"])
