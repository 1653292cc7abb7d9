"""`export_runs`: runs of a store → curated rows → one output (agentgym | messages | parquet | hf).

Every export carries the provenance of its runs: a sidecar `<out>.provenance.json`
(`provenance.json` inside an hf directory) maps each run name to its stored record;
rows name their run.
"""

from __future__ import annotations

import json
import os
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
from collector.export.tools import stored_tools, tools_for
from collector.export.writers import write_hf_dir, write_jsonl, write_parquet
from store.repo import Store
from store.scoring import run_modes


class ExportSummary(BaseModel):
    runs: list[str]
    format: ExportFormat
    out: str
    rows: int
    splits: dict[str, int] | None = None
    curation: Curation
    report: CurationReport
    provenance: str | None = None  # the sidecar file with the runs' provenance


def select(store: Store, run_names: Sequence[str], cur: Curation) -> tuple[list[EpisodeMeta], CurationReport]:
    """The curated episodes of the runs (no turns read beyond the filters' needs)."""
    runs = resolve_runs(store, run_names)
    run_ids = [r["id"] for r in runs]
    return curate(store, run_ids, finished_episodes(store, runs), cur)


def iter_rows(store: Store, episodes: Sequence[EpisodeMeta], fmt: ExportFormat, *,
              mask_refused: bool = True, run_tools: dict[int, list[dict[str, Any]] | None] | None = None,
              ) -> Iterator[dict[str, Any]]:
    """Rows of the episodes; `run_tools` (run id -> the tool schemas stored with it) overrides the registry's."""
    by_id = {e.id: e for e in episodes}
    run_tools = run_tools or {}
    for eid, turns in iter_turns(store, [e.id for e in episodes]):
        e = by_id[eid]
        if fmt is ExportFormat.agentgym:
            yield to_conversations(e, turns, mask_refused=mask_refused)
        else:
            yield to_messages(e, turns, tools_for(e, turns, run_tools.get(e.run_id)), mask_refused=mask_refused)


def runs_provenance(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """{run name: its provenance record}; a run stored before provenance was recorded gets
    `{"recorded": false, "env": {"modes": {"grading": "legacy"}}}` (it was graded by the earlier graders)."""
    return {r["name"]: r.get("provenance") or {"recorded": False, "env": {"modes": run_modes(r)}} for r in runs}


def _write_sidecar(path: Path, provenance: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(provenance, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def export_runs(store: Store, run_names: Sequence[str], fmt: ExportFormat, out: Path, cur: Curation | None = None, *,
                mask_refused: bool = True) -> ExportSummary:
    cur = cur or Curation()
    kept, report = select(store, run_names, cur)
    runs = resolve_runs(store, run_names)
    provenance = runs_provenance(runs)
    tools = {r["id"]: stored_tools(r) for r in runs if r.get("provenance")}
    rows = iter_rows(store, kept, fmt, mask_refused=mask_refused, run_tools=tools)
    splits: dict[str, int] | None = None
    if fmt in (ExportFormat.agentgym, ExportFormat.messages):
        n = write_jsonl(rows, out)
        sidecar = out.with_name(out.name + ".provenance.json")
        _write_sidecar(sidecar, provenance)
    elif fmt is ExportFormat.parquet:
        n = write_parquet(rows, out)
        sidecar = out.with_name(out.name + ".provenance.json")
        _write_sidecar(sidecar, provenance)
    else:
        manifest = {"runs": list(run_names), "curation": cur.model_dump(mode="json"),
                    "mask_refused": mask_refused, "report": report.model_dump(mode="json")}
        splits = write_hf_dir(rows, out, manifest, provenance=provenance)
        sidecar = out / "provenance.json"
        n = sum(splits.values())
    return ExportSummary(runs=list(run_names), format=fmt, out=str(out), rows=n, splits=splits, curation=cur,
                         report=report, provenance=str(sidecar))
