"""The conformance runner: finding vector files, malformed lines, missing or broken checkers, output, exit codes."""

from __future__ import annotations

import io
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from conformance import runner
from conformance.report import FileResult
from conformance.runner import render_json, render_text, run_cli, run_dir

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "conformance"


def hotpot_line(qid: str, prediction: str, gold: str, em: int, f1: float, precision: float, recall: float) -> str:
    return json.dumps({"qid": qid, "kind": "test", "prediction": prediction, "gold": gold,
                       "expected": {"em": em, "f1": f1, "precision": precision, "recall": recall}})


GOOD = [
    hotpot_line("q1", "The Paris.", "paris", 1, 1.0, 1.0, 1.0),
    hotpot_line("q2", "", "Paris", 0, 0.0, 0.0, 0.0),
    hotpot_line("q3", "Paris France", "Paris", 0, 2 / 3, 0.5, 1.0),
]
WRONG = hotpot_line("q4", "yes", "Yes!", 0, 0.0, 0.0, 0.0)  # the script says EM 1


def cli(directory: Path, data_root: Path | None = None, as_json: bool = False,
        only: set[str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_cli(directory, data_root, as_json, only=only, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture()
def vectors(tmp_path: Path) -> Path:
    d = tmp_path / "conformance"
    d.mkdir()
    (d / "hotpot_em_f1.jsonl").write_text("\n".join([GOOD[0], "{not json", GOOD[1], "", GOOD[2], WRONG]) + "\n",
                                          encoding="utf-8")
    (d / "mystery.jsonl").write_text('{"a": 1}\n', encoding="utf-8")
    (d / "README.md").write_text("# notes\n", encoding="utf-8")
    return d


def test_all_agreeing_file_exits_zero(tmp_path: Path) -> None:
    (tmp_path / "hotpot_em_f1.jsonl").write_text("\n".join(GOOD) + "\n", encoding="utf-8")
    code, out, err = cli(tmp_path, as_json=True)
    assert code == 0 and err == ""
    assert json.loads(out) == {"files": {"hotpot_em_f1.jsonl": {"cases": 3, "agree": 3, "examples": []}}}
    code, out, _ = cli(tmp_path)
    assert code == 0 and "hotpot_em_f1.jsonl: 3 cases, 3 agree (100.0%)" in out


def test_malformed_line_and_disagreement_are_counted_not_fatal(vectors: Path) -> None:
    code, out, err = cli(vectors, as_json=True)
    assert code == 1 and err == ""
    doc = json.loads(out)
    assert list(doc) == ["files"] and list(doc["files"]) == ["hotpot_em_f1.jsonl"]
    entry = doc["files"]["hotpot_em_f1.jsonl"]
    assert set(entry) == {"cases", "agree", "examples"}
    assert (entry["cases"], entry["agree"]) == (5, 3)  # the blank line is not a case
    bad, wrong = entry["examples"]
    assert bad["line"] == 2 and bad["error"].startswith("malformed line: not JSON") and bad["text"] == "{not json"
    assert wrong["qid"] == "q4" and wrong["ours"]["em"] == 1.0 and wrong["expected"]["em"] == 0.0


def test_text_output_lists_counts_examples_and_skipped_files(vectors: Path) -> None:
    code, out, _ = cli(vectors)
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "hotpot_em_f1.jsonl: 5 cases, 3 agree (60.0%)"
    assert "malformed line" in lines[1] and '"q4"' in lines[2] and '"ours"' in lines[2] and '"expected"' in lines[2]
    assert "mystery.jsonl: skipped (no checker for this file name)" in lines
    assert not any("README" in line for line in lines)
    assert lines[-1].startswith("total: 1 files, 5 cases, 3 agree")


def test_non_object_and_non_utf8_lines_are_malformed(tmp_path: Path) -> None:
    path = tmp_path / "hotpot_em_f1.jsonl"
    path.write_bytes(b"[1, 2]\n" + GOOD[0].encode() + b"\n\xff\xfe oops\n")
    report = run_dir(tmp_path, tmp_path)
    result = report.files["hotpot_em_f1.jsonl"]
    assert (result.cases, result.agree) == (3, 1)
    assert [e["line"] for e in result.examples] == [1, 3]
    assert "not a JSON object" in result.examples[0]["error"] and "not UTF-8" in result.examples[1]["error"]


def test_missing_checker_module_is_an_error_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(runner.CHECKERS, "imaginary.jsonl", ("no_such_checker_module", "check"))
    (tmp_path / "imaginary.jsonl").write_text(GOOD[0] + "\n", encoding="utf-8")
    (tmp_path / "hotpot_em_f1.jsonl").write_text(GOOD[0] + "\n", encoding="utf-8")
    code, out, _ = cli(tmp_path, as_json=True)
    assert code == 1
    files = json.loads(out)["files"]
    assert files["hotpot_em_f1.jsonl"] == {"cases": 1, "agree": 1, "examples": []}
    assert files["imaginary.jsonl"] == {"cases": 0, "agree": 0,
                                        "examples": [{"error": "no checker module conformance.no_such_checker_module"}]}
    _, text, _ = cli(tmp_path)
    assert "imaginary.jsonl: ERROR no checker module conformance.no_such_checker_module" in text


def test_failing_checker_does_not_stop_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(lines: Any, data_root: Path) -> FileResult:
        for _ in lines:
            raise RuntimeError("checker bug")
        return FileResult()

    fake = types.ModuleType("conformance.fake_broken")
    fake.check = explode  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "conformance.fake_broken", fake)
    monkeypatch.setitem(runner.CHECKERS, "broken.jsonl", ("fake_broken", "check"))
    monkeypatch.setitem(runner.CHECKERS, "nofunc.jsonl", ("fake_broken", "check_other"))
    for name in ("broken.jsonl", "nofunc.jsonl", "hotpot_em_f1.jsonl"):
        (tmp_path / name).write_text(GOOD[0] + "\n", encoding="utf-8")
    report = run_dir(tmp_path, tmp_path)
    assert report.files["hotpot_em_f1.jsonl"].full
    assert report.files["broken.jsonl"].examples == [{"error": "RuntimeError: checker bug"}]
    assert report.files["nofunc.jsonl"].examples == [{"error": "conformance.fake_broken has no function check_other()"}]
    assert not report.ok


def test_only_selects_files_and_names_missing_ones(vectors: Path) -> None:
    report = run_dir(vectors, vectors, only={"hotpot_em_f1"})
    assert list(report.files) == ["hotpot_em_f1.jsonl"]
    report = run_dir(vectors, vectors, only={"dbbench.jsonl"})
    assert report.files["dbbench.jsonl"].cases == 0 and "is not in" in report.files["dbbench.jsonl"].examples[0]["error"]
    with pytest.raises(ValueError, match="unknown vector file"):
        run_dir(vectors, vectors, only={"nonsense.jsonl"})


def test_bad_directory_exits_two_with_one_error_line(tmp_path: Path) -> None:
    for bad in (tmp_path / "absent", tmp_path / "file.jsonl"):
        if bad.name.endswith(".jsonl"):
            bad.write_text(GOOD[0] + "\n", encoding="utf-8")
        code, out, err = cli(bad)
        assert code == 2 and out == ""
        assert len(err.splitlines()) == 1 and err.startswith("error: ")
    code, out, err = cli(tmp_path, data_root=tmp_path / "no-data")
    assert code == 2 and out == "" and err.startswith("error: data root")


def test_empty_directory_is_not_a_pass(tmp_path: Path) -> None:
    code, out, _ = cli(tmp_path, as_json=True)
    assert code == 1 and json.loads(out) == {"files": {}}
    assert "no known vector files" in render_text(run_dir(tmp_path, tmp_path))


def test_percent_never_rounds_a_partial_agreement_up() -> None:
    report = runner.RunReport(files={"hotpot_em_f1.jsonl": FileResult(cases=10_000, agree=9_999)})
    assert "9999 agree (99.9%)" in render_text(report)
    assert json.loads(render_json(report))["files"]["hotpot_em_f1.jsonl"]["agree"] == 9_999


def test_shared_hotpot_file_agrees_fully() -> None:
    if not (SHARED / "hotpot_em_f1.jsonl").is_file():
        pytest.skip(f"{SHARED}/hotpot_em_f1.jsonl is absent (the shared conformance vectors are not on this machine)")
    code, out, _ = cli(SHARED, as_json=True, only={"hotpot_em_f1.jsonl"})
    assert code == 0
    assert json.loads(out) == {"files": {"hotpot_em_f1.jsonl": {"cases": 5000, "agree": 5000, "examples": []}}}
