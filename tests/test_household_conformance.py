"""The household env against the real ALFWorld engine: the shared traces (1,020 sequences on 340
games, computed with alfworld 0.4.2 + textworld 1.7.0) replayed through the env service's v1 API
must agree on every step; a tampered trace must be caught."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from conformance.alfworld import check

SHARED = Path(__file__).resolve().parents[2] / "shared"
TRACES = SHARED / "conformance" / "alfworld_traces.jsonl"
DATA = SHARED / "data"
pytestmark = pytest.mark.skipif(not TRACES.exists() or not (DATA / "alfworld").is_dir(),
                                reason=f"ALFWorld traces or games not found under {SHARED}")


def _lines() -> list[dict[str, Any]]:
    return [json.loads(line) for line in TRACES.read_text().splitlines() if line.strip()]


def test_every_step_agrees_with_alfworld() -> None:
    lines = _lines()
    result = check(lines, DATA)
    steps = sum(len(line["steps"]) for line in lines)
    print(f"alfworld traces: {result.agree}/{result.cases} cases agree "
          f"({len(lines)} initial states + {steps} steps)")
    assert result.cases == len(lines) + steps
    assert result.agree == result.cases, json.dumps(result.examples[:3], indent=1)[:4000]


def test_a_tampered_trace_is_caught() -> None:
    probes = next(line for line in _lines() if line["sequence"] == "probes")
    wrong_text, wrong_list, wrong_done = copy.deepcopy(probes), copy.deepcopy(probes), copy.deepcopy(probes)
    wrong_text["steps"][0]["observation"] += " "
    wrong_list["initial"]["admissible"] = [*wrong_list["initial"]["admissible"], "examine desk 1"]
    wrong_done["steps"][-1]["done"] = wrong_done["steps"][-1]["won"] = False
    result = check([wrong_text, wrong_list, wrong_done], DATA)
    assert result.cases == 3 * (1 + len(probes["steps"])) and result.agree == result.cases - 3
    found = [next(iter(e["differences"])) for e in result.examples]
    assert found == ["observation", "admissible", "won"]
    assert result.examples[1]["differences"]["admissible"] == {"missing": ["examine desk 1"], "extra": []}
