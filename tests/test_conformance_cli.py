"""`trajgym conformance` on the shared vector set: every file agrees fully, through the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VECTORS = REPO.parent / "shared" / "conformance"
DATA = REPO.parent / "shared" / "data"
EXPECTED_FILES = {"webshop_reward.jsonl", "webshop_title_nouns.jsonl", "spider_exec.jsonl", "dbbench.jsonl",
                  "hotpot_em_f1.jsonl", "alfworld_traces.jsonl"}


@pytest.mark.skipif(not VECTORS.is_dir() or not DATA.is_dir(), reason="../shared/conformance or ../shared/data absent")
def test_every_shared_vector_file_agrees_fully() -> None:
    r = subprocess.run([sys.executable, "-m", "cli.main", "conformance", str(VECTORS), "--data-root", str(DATA), "--json"],
                       capture_output=True, text=True, cwd=REPO, timeout=1200)
    report = json.loads(r.stdout)
    for name, result in sorted(report["files"].items()):
        print(f"{name}: {result['agree']}/{result['cases']} agree")
    assert EXPECTED_FILES <= set(report["files"])
    for name, result in report["files"].items():
        assert result["cases"] > 0 and result["agree"] == result["cases"], (name, result["examples"][:3])
    assert r.returncode == 0, r.stderr
