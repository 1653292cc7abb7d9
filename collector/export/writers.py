"""Writers of exported rows: JSONL, one parquet file, and a Hugging Face `datasets` directory.

Files are written next to their destination and renamed into place when complete,
so an interrupted export never leaves a half-written file under the final name.
Parquet uses one explicit Arrow schema (so batches always agree); its `tools` column
is the JSON text of the tool schemas, because arbitrary JSON schemas have no single
Arrow type. The Hugging Face directory holds `data/<split>-<digest>.parquet` per env split
(train → train, dev → validation, test → test) and a README.md whose YAML `configs`
names those files, so `datasets.load_dataset(path)` reads it unchanged. The digest (of the
file's bytes) is in the name because `datasets` caches a local folder under its name and
its YAML `configs` only: two exports to folders of the same name, or a re-export in
place, would otherwise be read back from the cache of the first one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

HF_SPLITS = {"train": "train", "dev": "validation", "test": "test"}
BATCH_ROWS = 2000

TOOL_CALL = pa.struct([("id", pa.string()), ("type", pa.string()),
                       ("function", pa.struct([("name", pa.string()), ("arguments", pa.string())]))])
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string()), ("tool_calls", pa.list_(TOOL_CALL)),
                     ("tool_call_id", pa.string()), ("weight", pa.int8())])
SCHEMA = pa.schema([
    ("id", pa.string()), ("messages", pa.list_(MESSAGE)), ("tools", pa.string()),
    ("run", pa.string()), ("run_id", pa.int64()), ("episode_id", pa.int64()), ("model", pa.string()),
    ("policy", pa.string()), ("env", pa.string()), ("split", pa.string()), ("task_id", pa.string()),
    ("sample", pa.int32()), ("outcome", pa.string()), ("success", pa.bool_()), ("reward", pa.float64()),
    ("progress", pa.float64()), ("turns", pa.int32()),
])


def dumps(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def write_jsonl(rows: Iterable[dict[str, Any]], out: Path) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp(out)
    n = 0
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(dumps(row))
            fh.write("\n")
            n += 1
    os.replace(tmp, out)
    return n


def arrow_row(row: dict[str, Any]) -> dict[str, Any]:
    """A messages row in the parquet schema (tools as JSON text)."""
    out = dict(row)
    tools = out.get("tools")
    out["tools"] = json.dumps(tools, ensure_ascii=False) if tools else None
    return out


class _ParquetSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = _tmp(path)
        self.writer = pq.ParquetWriter(self.tmp, SCHEMA, compression="zstd")
        self.batch: list[dict[str, Any]] = []
        self.rows = 0

    def add(self, row: dict[str, Any]) -> None:
        self.batch.append(arrow_row(row))
        if len(self.batch) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.batch:
            self.writer.write_table(pa.Table.from_pylist(self.batch, schema=SCHEMA))
            self.rows += len(self.batch)
            self.batch = []

    def close(self) -> None:
        self.flush()
        self.writer.close()
        os.replace(self.tmp, self.path)


def write_parquet(rows: Iterable[dict[str, Any]], out: Path) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    sink = _ParquetSink(out)
    for row in rows:
        sink.add(row)
    sink.close()
    return sink.rows


def _readme(counts: dict[str, int], files: dict[str, str], manifest: dict[str, Any]) -> str:
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split in counts:
        lines += [f"  - split: {split}", f"    path: data/{files[split]}"]
    lines += ["---", "", "# trajgym trajectories", "",
              ("Exported by `trajgym export --format hf`. Each row: `messages` (OpenAI/TRL chat; assistant "
               "messages carry `weight` 1 = trained, 0 = masked), `tools` (JSON text of the tool schemas, or null), "
               "and its provenance (run, episode_id, model, env, split, task_id, sample, outcome, success, reward, "
               "progress, turns)."), "",
              ("Train with TRL as it is: `datasets.load_dataset(<this folder>, split=\"train\")` → "
               "`SFTTrainer(args=SFTConfig(assistant_only_loss=True))` with the tokenizer's chat template set to "
               "trajgym's training template (`collector.export.chat_template.TRAINING_CHAT_TEMPLATE`: it marks "
               "the assistant turns of weight 1 for the loss and renders tool calls); see "
               "`examples/trl_sft_export.py`."), "",
              "| split | rows |", "| --- | --- |"]
    lines += [f"| {s} | {n} |" for s, n in counts.items()]
    lines += ["", "Curation:", "", "```json", json.dumps(manifest, indent=2, ensure_ascii=False), "```", ""]
    return "\n".join(lines)


def _name_by_digest(path: Path) -> str:
    """Rename `data/<split>.parquet` to `data/<split>-<16 hex of its SHA-256>.parquet`; returns the new name."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    name = f"{path.stem}-{h.hexdigest()[:16]}{path.suffix}"
    os.replace(path, path.with_name(name))
    return name


def write_hf_dir(rows: Iterable[dict[str, Any]], out: Path, manifest: dict[str, Any],
                 provenance: dict[str, Any] | None = None) -> dict[str, int]:
    """Write the directory (with `provenance.json`, the runs' provenance, when given); refuses a non-empty
    destination that is not an earlier export of this kind."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file; --format hf writes a directory")
    if out.exists() and any(out.iterdir()) and not (out / "trajgym_export.json").exists():
        raise FileExistsError(f"{out} exists and is not a trajgym export directory; choose an empty or new path")
    tmp = out.with_name(f".{out.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "data").mkdir(parents=True)
    sinks: dict[str, _ParquetSink] = {}
    for row in rows:
        split = HF_SPLITS.get(row["split"], row["split"])
        sink = sinks.get(split)
        if sink is None:
            sink = sinks[split] = _ParquetSink(tmp / "data" / f"{split}.parquet")
        sink.add(row)
    if not sinks:  # an empty selection still makes a loadable (empty) dataset
        sinks["train"] = _ParquetSink(tmp / "data" / "train.parquet")
    for sink in sinks.values():
        sink.close()
    order = [s for s in ("train", "validation", "test") if s in sinks] + sorted(s for s in sinks if s not in
                                                                                 HF_SPLITS.values())
    counts = {s: sinks[s].rows for s in order}
    files = {s: _name_by_digest(sinks[s].path) for s in order}
    (tmp / "README.md").write_text(_readme(counts, files, manifest), encoding="utf-8")
    (tmp / "trajgym_export.json").write_text(json.dumps({**manifest, "splits": counts, "files": files}, indent=2)
                                             + "\n", encoding="utf-8")
    if provenance is not None:
        (tmp / "provenance.json").write_text(json.dumps(provenance, indent=2, ensure_ascii=False) + "\n",
                                             encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return counts
