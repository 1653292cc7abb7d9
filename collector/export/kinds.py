"""The export formats (a leaf module: the CLI names them without importing the exporters)."""

from __future__ import annotations

from enum import Enum


class ExportFormat(str, Enum):
    agentgym = "agentgym"
    messages = "messages"
    parquet = "parquet"
    hf = "hf"
