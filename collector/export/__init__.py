"""Training-data export of stored trajectories: curation filters and export formats.

`collector.export.source` (set-based reads), `filters` (curation), `formats` (rows:
AgentGym conversations, OpenAI/TRL messages, loss masks), `tools` (tool schemas),
`writers` (JSONL, parquet, Hugging Face directory), `pipeline` (`export_runs`),
`chat_template` (the training chat template TRL's SFTTrainer uses on the rows).
"""

from __future__ import annotations

import importlib
from typing import Any

# Names resolve on first use, so that `collector.export.kinds` (what the CLI needs to declare
# its options) does not import the exporters (pyarrow, SQLAlchemy).
_WHERE = {"Curation": "filters", "CurationReport": "filters", "curate": "filters", "ExportFormat": "kinds",
          "ExportSummary": "pipeline", "export_runs": "pipeline", "select": "pipeline"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)


__all__ = ["Curation", "CurationReport", "ExportFormat", "ExportSummary", "curate", "export_runs", "select"]
