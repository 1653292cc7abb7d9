"""Running every known vector file of a folder through its checker: `run_dir`, text / JSON output, exit code.

A vector file is known by its name (`CHECKERS`); its checker module is imported only when the file is
run, so the runner works with whichever checkers exist, and a missing one is an error entry (never a
silent skip). Lines are streamed: a blank line is ignored, one that is not a JSON object counts as a
disagreeing case with an example saying so. Unknown ``.jsonl`` files are listed as skipped.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from pydantic import Field

from conformance.report import MAX_EXAMPLES, ConformanceReport, FileResult

# vector file name -> (module under `conformance`, function)
CHECKERS: dict[str, tuple[str, str]] = {
    "webshop_reward.jsonl": ("webshop", "check"),
    "webshop_title_nouns.jsonl": ("webshop", "check_title_nouns"),
    "spider_exec.jsonl": ("spider", "check"),
    "dbbench.jsonl": ("dbbench", "check"),
    "hotpot_em_f1.jsonl": ("hotpot", "check"),
    "alfworld_traces.jsonl": ("alfworld", "check"),
}
TEXT_EXAMPLES = 3  # disagreements shown per file in the text output (the JSON keeps up to MAX_EXAMPLES)
EXAMPLE_CHARS = 400

Checker = Callable[[Iterable[dict], Path], FileResult]


class CheckerUnavailable(Exception):
    """The checker for a known file cannot be imported or has no such function."""


class RunReport(ConformanceReport):
    """A `ConformanceReport` with what the run saw besides: unknown files and files that could not be run."""

    skipped: list[str] = Field(default_factory=list)
    errors: dict[str, str] = Field(default_factory=dict)


def load_checker(name: str) -> Checker:
    module_name, func_name = CHECKERS[name]
    qualified = f"conformance.{module_name}"
    try:
        module = importlib.import_module(qualified)
    except ModuleNotFoundError as err:
        if err.name == qualified:
            raise CheckerUnavailable(f"no checker module {qualified}") from err
        raise CheckerUnavailable(f"checker module {qualified} cannot be imported: {err}") from err
    except Exception as err:  # noqa: BLE001 - a broken checker module is reported, not fatal
        raise CheckerUnavailable(f"checker module {qualified} cannot be imported: {type(err).__name__}: {err}") from err
    func = getattr(module, func_name, None)
    if not callable(func):
        raise CheckerUnavailable(f"{qualified} has no function {func_name}()")
    return func


class LineStream:
    """The JSON objects of one file, read lazily; the lines that are not JSON objects are kept aside."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.malformed: list[dict[str, Any]] = []

    def __iter__(self) -> Iterator[dict]:
        self.malformed = []  # a checker that reads the file twice sees each bad line once
        with self.path.open("rb") as fh:
            for number, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                try:
                    value = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError as err:
                    self._bad(number, raw, f"not UTF-8: {err.reason} at byte {err.start}")
                    continue
                except json.JSONDecodeError as err:
                    self._bad(number, raw, f"not JSON: {err.msg} at column {err.colno}")
                    continue
                if not isinstance(value, dict):
                    self._bad(number, raw, f"not a JSON object but a {type(value).__name__}")
                    continue
                yield value

    def _bad(self, number: int, raw: bytes, message: str) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        self.malformed.append({"line": number, "error": f"malformed line: {message}", "text": _clip(text, 200)})


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_entry(message: str) -> FileResult:
    return FileResult(examples=[{"error": message}])


def run_file(path: Path, data_root: Path) -> FileResult:
    """One known vector file through its checker; malformed lines are added as disagreeing cases."""
    checker = load_checker(path.name)
    stream = LineStream(path)
    result = checker(stream, data_root)
    if not isinstance(result, FileResult):
        raise TypeError(f"checker for {path.name} returned {type(result).__name__}, not FileResult")
    if stream.malformed:
        result = FileResult(cases=result.cases + len(stream.malformed), agree=result.agree,
                            examples=(stream.malformed + result.examples)[:MAX_EXAMPLES])
    return result


def _wanted(only: set[str] | None) -> set[str] | None:
    """`only` as known file names (``hotpot_em_f1`` and ``hotpot_em_f1.jsonl`` both accepted)."""
    if only is None:
        return None
    names = {n if n.endswith(".jsonl") else f"{n}.jsonl" for n in only}
    unknown = sorted(names - set(CHECKERS))
    if unknown:
        raise ValueError(f"unknown vector file(s) {', '.join(unknown)}; known: {', '.join(CHECKERS)}")
    return names


def run_dir(directory: Path, data_root: Path, only: set[str] | None = None) -> RunReport:
    """Every known vector file in `directory` (or those in `only`), each through its checker."""
    directory = Path(directory)
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory} is not a directory")
    wanted = _wanted(only)
    report = RunReport()
    present = sorted(p for p in directory.iterdir() if p.suffix == ".jsonl" and p.is_file())
    for path in present:
        if path.name not in CHECKERS:
            report.skipped.append(path.name)
            continue
        if wanted is not None and path.name not in wanted:
            continue
        try:
            report.files[path.name] = run_file(path, Path(data_root))
        except Exception as err:  # noqa: BLE001 - one failing checker must not stop the others
            message = str(err) if isinstance(err, CheckerUnavailable) else f"{type(err).__name__}: {err}"
            report.files[path.name] = _error_entry(message)
            report.errors[path.name] = message
    for name in sorted((wanted or set()) - {p.name for p in present}):
        message = f"{name} is not in {directory}"
        report.files[name] = _error_entry(message)
        report.errors[name] = message
    return report


# ----- output -----------------------------------------------------------------------
def _percent(result: FileResult) -> str:
    if not result.cases:
        return "-"
    pct = 100.0 * result.agree / result.cases
    text = f"{pct:.1f}%"
    if result.agree < result.cases and text == "100.0%":
        text = "99.9%"  # never show a partial agreement as full
    return text


def render_text(report: ConformanceReport) -> str:
    errors = getattr(report, "errors", {})
    lines: list[str] = []
    if not report.files:
        lines.append("no known vector files (known: " + ", ".join(CHECKERS) + ")")
    for name, result in report.files.items():
        if name in errors:
            lines.append(f"{name}: ERROR {errors[name]}")
            continue
        lines.append(f"{name}: {result.cases} cases, {result.agree} agree ({_percent(result)})")
        for example in result.examples[:TEXT_EXAMPLES]:
            lines.append("  - " + _clip(json.dumps(example, ensure_ascii=False, default=str), EXAMPLE_CHARS))
        if result.cases - result.agree > TEXT_EXAMPLES and len(result.examples) > TEXT_EXAMPLES:
            lines.append(f"  ... {result.cases - result.agree - TEXT_EXAMPLES} more disagreements")
    for name in getattr(report, "skipped", []):
        lines.append(f"{name}: skipped (no checker for this file name)")
    total = sum(r.cases for r in report.files.values())
    agree = sum(r.agree for r in report.files.values())
    verdict = "all agree" if report.ok else "NOT all agree"
    lines.append(f"total: {len(report.files)} files, {total} cases, {agree} agree: {verdict}")
    return "\n".join(lines) + "\n"


def render_json(report: ConformanceReport) -> str:
    """Exactly ``{"files": {NAME: {"cases": n, "agree": m, "examples": [...]}}}``."""
    files = {name: {"cases": r.cases, "agree": r.agree, "examples": r.examples} for name, r in report.files.items()}
    return json.dumps({"files": files}, ensure_ascii=False, default=str)


def default_data_root(directory: Path) -> Path:
    """``DIR/../data`` (the shared layout). When it does not exist it is still what the checkers get,
    so that one needing data says which folder it looked in."""
    return Path(directory).resolve().parent / "data"


def run_cli(directory: Path, data_root: Path | None = None, as_json: bool = False, only: set[str] | None = None,
            out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`trajgym conformance DIR [--data-root ROOT] [--json]`: 0 when every file agrees fully, 1 otherwise,
    2 (one ``error:`` line on stderr) for a directory or data root that cannot be used."""
    out = out or sys.stdout
    err = err or sys.stderr
    directory = Path(directory)
    if not directory.is_dir():
        what = "does not exist" if not directory.exists() else "is not a directory"
        print(f"error: conformance directory {directory} {what}", file=err)
        return 2
    if data_root is not None and not Path(data_root).is_dir():
        print(f"error: data root {data_root} is not a directory", file=err)
        return 2
    try:
        report = run_dir(directory, Path(data_root) if data_root is not None else default_data_root(directory), only)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=err)
        return 2
    out.write(render_json(report) + "\n" if as_json else render_text(report))
    return 0 if report.ok else 1
