"""`trajgym export | curate`: stored runs → curated training data (see `collector.export`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from collector.export.kinds import ExportFormat

if TYPE_CHECKING:
    from collector.export import Curation, CurationReport

Runs = Annotated[list[str], typer.Argument(help="run name(s) in the store")]
StoreOpt = Annotated[str, typer.Option("--store", help="SQLAlchemy URL or SQLite file")]
SplitOpt = Annotated[list[str] | None, typer.Option("--split", help="env split to keep (repeatable; default all)")]
OutcomeOpt = Annotated[list[str] | None, typer.Option(
    "--outcome", help="outcome to keep: success, failure, truncated, policy_error (repeatable; default all)")]
SuccessOpt = Annotated[bool, typer.Option("--success-only", help="only episodes the env marked successful")]
RewardOpt = Annotated[float | None, typer.Option("--min-reward", help="keep reward >= this")]
TurnsOpt = Annotated[int | None, typer.Option("--max-turns", help="keep episodes of at most N env steps")]
TokensOpt = Annotated[int | None, typer.Option("--max-tokens", help="keep episodes whose final context is <= N tokens")]
FormatOkOpt = Annotated[bool, typer.Option("--valid-format", help="drop episodes with any refused reply")]
SolvedOpt = Annotated[str | None, typer.Option(
    "--solved", help="pass band MIN:MAX successes per task among its samples, e.g. 1:3 (either side may be empty)")]
DedupOpt = Annotated[bool, typer.Option("--dedup", help="one episode per identical action sequence per task")]
BestOpt = Annotated[int | None, typer.Option("--best-of", help="keep the N best episodes per task")]


def _band(text: str | None) -> tuple[int | None, int | None]:
    if text is None:
        return None, None
    lo, sep, hi = text.partition(":")
    if not sep:
        raise ValueError(f"--solved takes MIN:MAX, got {text!r}")
    try:
        return (int(lo) if lo.strip() else None), (int(hi) if hi.strip() else None)
    except ValueError as err:
        raise ValueError(f"--solved takes integers MIN:MAX, got {text!r}") from err


def _curation(console: Console, split: list[str] | None, outcome: list[str] | None, success_only: bool,
              min_reward: float | None, max_turns: int | None, max_tokens: int | None, valid_format: bool,
              solved: str | None, dedup: bool, best_of: int | None) -> Curation:
    """The filters given on the command line; a CLI error (exit 2) naming the bad one."""
    from collector.export import Curation

    try:
        lo, hi = _band(solved)
        return Curation(splits=split or None, outcomes=outcome or None, success_only=success_only, min_reward=min_reward,
                        max_turns=max_turns, max_tokens=max_tokens, valid_format=valid_format, solved_min=lo,
                        solved_max=hi, dedup=dedup, best_of=best_of)
    except (ValidationError, ValueError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err


def _report_table(title: str, report: CurationReport) -> Table:
    table = Table(title=title)
    table.add_column("step")
    table.add_column("episodes", justify="right")
    table.add_row("finished", str(report.finished))
    for reason, n in report.dropped.items():
        table.add_row(f"  dropped: {reason}", str(n))
    table.add_row("kept", str(report.kept))
    table.add_row("tasks kept", str(report.tasks))
    return table


def export(
    run: Runs,
    store: StoreOpt,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="agentgym | messages | parquet | hf")],
    out: Annotated[Path, typer.Option("--out", help="output file (jsonl/parquet) or directory (hf)")],
    split: SplitOpt = None, outcome: OutcomeOpt = None, success_only: SuccessOpt = False, min_reward: RewardOpt = None,
    max_turns: TurnsOpt = None, max_tokens: TokensOpt = None, valid_format: FormatOkOpt = False,
    solved: SolvedOpt = None, dedup: DedupOpt = False, best_of: BestOpt = None,
    mask_refused: Annotated[bool, typer.Option(
        "--mask-refused/--train-refused", help="mask assistant replies the env refused (default) or train on them")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Export curated episodes of one or more runs as training data, each row with its provenance."""
    from collector.export import export_runs
    from store import RunNotFound, Store

    console = Console(stderr=as_json)
    cur = _curation(console, split, outcome, success_only, min_reward, max_turns, max_tokens, valid_format, solved, dedup,
                    best_of)
    s = Store(store)
    try:
        summary = export_runs(s, run, fmt, out, cur, mask_refused=mask_refused)
    except (RunNotFound, FileExistsError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    finally:
        s.close()
    if as_json:
        sys.stdout.write(summary.model_dump_json(indent=2) + "\n")
        return
    console.print(_report_table(f"export {', '.join(run)} → {out} ({fmt.value})", summary.report))
    console.print(f"wrote {summary.rows} rows to {out}" + (f" (splits {summary.splits})" if summary.splits else ""))


def curate(
    run: Runs,
    store: StoreOpt,
    split: SplitOpt = None, outcome: OutcomeOpt = None, success_only: SuccessOpt = False, min_reward: RewardOpt = None,
    max_turns: TurnsOpt = None, max_tokens: TokensOpt = None, valid_format: FormatOkOpt = False,
    solved: SolvedOpt = None, dedup: DedupOpt = False, best_of: BestOpt = None,
    ids_out: Annotated[Path | None, typer.Option("--ids-out", help="write the kept episode ids, one a line")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Dry run of the export filters: what each filter drops and what is kept (nothing is exported)."""
    from collector.export import select
    from store import RunNotFound, Store

    console = Console(stderr=as_json)
    cur = _curation(console, split, outcome, success_only, min_reward, max_turns, max_tokens, valid_format, solved, dedup,
                    best_of)
    s = Store(store)
    try:
        kept, report = select(s, run, cur)
    except RunNotFound as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    finally:
        s.close()
    if ids_out is not None:
        ids_out.write_text("".join(f"{e.id}\n" for e in kept), encoding="utf-8")
    if as_json:
        sys.stdout.write(json.dumps({"runs": run, "curation": cur.model_dump(mode="json"),
                                     "report": report.model_dump(mode="json")}, indent=2) + "\n")
        return
    console.print(_report_table(f"curate {', '.join(run)}", report))


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("curate")(curate)
