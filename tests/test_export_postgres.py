"""PostgreSQL: curation, export and scoring give the same results as on SQLite (same known episodes).

Runs in a fresh uniquely named schema (dropped afterwards)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.export import Curation, ExportFormat, export_runs, select
from tests.support.synthetic_store import EpisodeSpec, build_run
from store import Store
from tests.support.postgres import fresh_schema_url
from tests.test_export_curation import KNOWN
from tests.test_export_formats import _tool_turns

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_schema_url("tg_export") as url:
        yield url


def _fill(store: Store) -> None:
    build_run(store, "known", KNOWN, samples=4, tasks=[("t1", "train"), ("t2", "train"), ("t3", "dev"), ("t4", "test")])
    build_run(store, "tools", [EpisodeSpec("x", messages=_tool_turns())], prompt_format="tools")


def test_same_curation_export_and_scores_as_sqlite(pg_url: str, tmp_path: Path) -> None:
    from store.scoring import score_run

    pg = Store(pg_url)
    lite_dir = tmp_path / "lite"
    lite_dir.mkdir()
    lite = Store(str(lite_dir / "l.db"))
    try:
        _fill(pg)
        _fill(lite)
        assert pg.engine.dialect.name == "postgresql"
        for cur in (Curation(), Curation(valid_format=True, max_tokens=40), Curation(dedup=True, best_of=1),
                    Curation(solved_min=1, solved_max=3, success_only=True)):
            a = {(e.task_id, e.sample) for e in select(pg, ["known"], cur)[0]}
            b = {(e.task_id, e.sample) for e in select(lite, ["known"], cur)[0]}
            assert a == b, cur
        for fmt in (ExportFormat.agentgym, ExportFormat.messages):
            export_runs(pg, ["known", "tools"], fmt, tmp_path / f"pg.{fmt.value}")
            export_runs(lite, ["known", "tools"], fmt, tmp_path / f"lite.{fmt.value}")
            assert (tmp_path / f"pg.{fmt.value}").read_bytes() == (tmp_path / f"lite.{fmt.value}").read_bytes()
        sa = score_run(pg, pg.get_run("known")["id"])
        sb = score_run(lite, lite.get_run("known")["id"])
        assert [s.model_dump() for s in sa] == [s.model_dump() for s in sb]
    finally:
        pg.close()
        lite.close()
