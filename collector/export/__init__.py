"""Training-data export of stored trajectories: curation filters and export formats.

`collector.export.source` (set-based reads), `filters` (curation), `formats` (rows:
AgentGym conversations, OpenAI/TRL messages, loss masks), `tools` (tool schemas),
`writers` (JSONL, parquet, Hugging Face directory), `pipeline` (`export_runs`).
"""

from collector.export.filters import Curation, CurationReport, curate
from collector.export.pipeline import ExportFormat, ExportSummary, export_runs, select

__all__ = ["Curation", "CurationReport", "ExportFormat", "ExportSummary", "curate", "export_runs", "select"]
