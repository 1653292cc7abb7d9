"""`export_runs`: runs of a store → curated rows → one output (agentgym | messages | parquet | hf)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from collector.export.filters import Curation, CurationReport, curate
from collector.export.kinds import ExportFormat
from collector.export.formats import to_conversations, to_messages
from collector.export.source import (
    EpisodeMeta,
    finished_episodes,
    iter_turns,
    resolve_runs,
)
from collector.export.tools import tools_for
from collector.export.writers import write_hf_dir, write_jsonl, write_parquet
from store.repo import Store


class ExportSummary(BaseModel):
    runs: list[str]
    format: ExportFormat
    out: str
    rows: int
    splits: dict[str, int] | None = None
    curation: Curation
    report: CurationReport


def select(store: Store, run_names: Sequence[str], cur: Curation) -> tuple[list[EpisodeMeta], CurationReport]:
    """The curated episodes of the runs (no turns read beyond the filters' needs)."""
    runs = resolve_runs(store, run_names)
    run_ids = [r["id"] for r in runs]
    return curate(store, run_ids, finished_episodes(store, runs), cur)


def iter_rows(store: Store, episodes: Sequence[EpisodeMeta], fmt: ExportFormat, *,
              mask_refused: bool = True) -> Iterator[dict[str, Any]]:
    by_id = {e.id: e for e in episodes}
    for eid, turns in iter_turns(store, [e.id for e in episodes]):
        e = by_id[eid]
        if fmt is ExportFormat.agentgym:
            yield to_conversations(e, turns, mask_refused=mask_refused)
        else:
            yield to_messages(e, turns, tools_for(e, turns), mask_refused=mask_refused)


def export_runs(store: Store, run_names: Sequence[str], fmt: ExportFormat, out: Path, cur: Curation | None = None, *,
                mask_refused: bool = True) -> ExportSummary:
    cur = cur or Curation()
    kept, report = select(store, run_names, cur)
    rows = iter_rows(store, kept, fmt, mask_refused=mask_refused)
    splits: dict[str, int] | None = None
    if fmt in (ExportFormat.agentgym, ExportFormat.messages):
        n = write_jsonl(rows, out)
    elif fmt is ExportFormat.parquet:
        n = write_parquet(rows, out)
    else:
        manifest = {"runs": list(run_names), "curation": cur.model_dump(mode="json"),
                    "mask_refused": mask_refused, "report": report.model_dump(mode="json")}
        splits = write_hf_dir(rows, out, manifest)
        n = sum(splits.values())
    return ExportSummary(runs=list(run_names), format=fmt, out=str(out), rows=n, splits=splits, curation=cur,
                         report=report)
