"""The result shapes of a conformance run: per vector file, the cases, how many agree, the first disagreements."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

MAX_EXAMPLES = 10


class FileResult(BaseModel):
    """One vector file's outcome: `examples` holds the first disagreements, each with both verdicts."""

    cases: int = 0
    agree: int = 0
    examples: list[dict[str, Any]] = Field(default_factory=list)

    def add(self, agrees: bool, example: dict[str, Any] | None = None) -> None:
        """Count one case; keep `example` (ours vs expected, and what identifies the case) if it disagrees."""
        self.cases += 1
        if agrees:
            self.agree += 1
        elif example is not None and len(self.examples) < MAX_EXAMPLES:
            self.examples.append(example)

    @property
    def full(self) -> bool:
        return self.cases > 0 and self.agree == self.cases


class ConformanceReport(BaseModel):
    files: dict[str, FileResult] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.files) and all(f.full for f in self.files.values())
