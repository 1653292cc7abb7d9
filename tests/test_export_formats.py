"""Export formats byte-for-byte on a small case, loss masks, parquet and the Hugging Face directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from collector.export import Curation, ExportFormat, export_runs
from tests.support.synthetic_store import EpisodeSpec, build_run
from store import Store
from store.records import TurnRecord

pa = pytest.importorskip("pyarrow", reason="parquet export needs pyarrow")
pq = pytest.importorskip("pyarrow.parquet", reason="parquet export needs pyarrow")


def _react_turns() -> list[TurnRecord]:
    return [
        TurnRecord(step=0, role="system", content="S"),
        TurnRecord(step=0, role="user", content="Task: Reach 2."),
        TurnRecord(step=1, role="assistant", content="Thought: t\nAction: add[9x]"),
        TurnRecord(step=0, role="user", content="Invalid action: bad"),
        TurnRecord(step=1, role="assistant", content="Action: add[2]"),
        TurnRecord(step=1, role="user", content="Current value: 2.", action="add[2]"),
        TurnRecord(step=2, role="assistant", content="Action: finish[2]"),
        TurnRecord(step=2, role="user", content="Correct! é", action="finish[2]", reward=1.0, done=True),
    ]


def _call(cid: str, name: str, args: str) -> dict[str, Any]:
    return {"id": cid, "type": "function", "index": 0, "function": {"name": name, "arguments": args}}


def _tool_turns() -> list[TurnRecord]:
    return [
        TurnRecord(step=0, role="system", content="S"),
        TurnRecord(step=0, role="user", content="Task: Reach 2."),
        TurnRecord(step=1, role="assistant", content=None,
                   tool_calls=[_call("c1", "add", '{"amount": "2"}'), _call("c2", "finish", '{"answer": "2"}')]),
        TurnRecord(step=1, role="tool", content="Current value: 2.", tool_call_id="c1",
                   action='{"name":"add","arguments":{"amount":"2"}}'),
        TurnRecord(step=1, role="tool", content="Not executed: one tool call per turn.", tool_call_id="c2"),
        TurnRecord(step=2, role="assistant", content="Done.", tool_calls=[_call("c3", "finish", '{"answer": "2"}')]),
        TurnRecord(step=2, role="tool", content="Correct!", tool_call_id="c3",
                   action='{"name":"finish","arguments":{"answer":"2"}}'),
    ]


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    s = Store(str(tmp_path / "tiny.db"))
    build_run(s, "tiny", [EpisodeSpec("c-1", split="train", reward=1.0, progress=1.0, messages=_react_turns())],
              model="m1")
    build_run(s, "tiny-tools", [EpisodeSpec("c-2", split="dev", reward=1.0, progress=None, messages=_tool_turns())],
              model="m1", prompt_format="tools")
    yield s
    s.close()


AGENTGYM_TINY = (
    r'{"id":"tiny:1","conversations":['
    r'{"from":"human","value":"S\n\nTask: Reach 2.","loss":false},'
    r'{"from":"gpt","value":"Thought: t\nAction: add[9x]","loss":false},'
    r'{"from":"human","value":"Invalid action: bad","loss":false},'
    r'{"from":"gpt","value":"Action: add[2]","loss":true},'
    r'{"from":"human","value":"Current value: 2.","loss":false},'
    r'{"from":"gpt","value":"Action: finish[2]","loss":true}],'
    r'"run":"tiny","run_id":1,"episode_id":1,"model":"m1","policy":"model","env":"counter","split":"train",'
    r'"task_id":"c-1","sample":0,"outcome":"success","success":true,"reward":1.0,"progress":1.0,"turns":2}'
    "\n")

AGENTGYM_TOOLS = (
    r'{"id":"tiny-tools:2","conversations":['
    r'{"from":"human","value":"S\n\nTask: Reach 2.","loss":false},'
    r'{"from":"gpt","value":"<tool_call>{\"name\": \"add\", \"arguments\": {\"amount\": \"2\"}}</tool_call>\n'
    r'<tool_call>{\"name\": \"finish\", \"arguments\": {\"answer\": \"2\"}}</tool_call>","loss":true},'
    r'{"from":"human","value":"Current value: 2.\n\nNot executed: one tool call per turn.","loss":false},'
    r'{"from":"gpt","value":"Done.\n<tool_call>{\"name\": \"finish\", \"arguments\": {\"answer\": \"2\"}}</tool_call>",'
    r'"loss":true}],'
    r'"run":"tiny-tools","run_id":2,"episode_id":2,"model":"m1","policy":"model","env":"counter","split":"dev",'
    r'"task_id":"c-2","sample":0,"outcome":"success","success":true,"reward":1.0,"progress":null,"turns":2}'
    "\n")

MESSAGES_TINY = (
    r'{"id":"tiny:1","messages":['
    r'{"role":"system","content":"S"},'
    r'{"role":"user","content":"Task: Reach 2."},'
    r'{"role":"assistant","content":"Thought: t\nAction: add[9x]","weight":0},'
    r'{"role":"user","content":"Invalid action: bad"},'
    r'{"role":"assistant","content":"Action: add[2]","weight":1},'
    r'{"role":"user","content":"Current value: 2."},'
    r'{"role":"assistant","content":"Action: finish[2]","weight":1},'
    r'{"role":"user","content":"Correct! é"}],'
    r'"run":"tiny","run_id":1,"episode_id":1,"model":"m1","policy":"model","env":"counter","split":"train",'
    r'"task_id":"c-1","sample":0,"outcome":"success","success":true,"reward":1.0,"progress":1.0,"turns":2}'
    "\n")

MESSAGES_TOOLS = (
    r'{"id":"tiny-tools:2","messages":['
    r'{"role":"system","content":"S"},'
    r'{"role":"user","content":"Task: Reach 2."},'
    r'{"role":"assistant","content":"","tool_calls":['
    r'{"id":"c1","type":"function","function":{"name":"add","arguments":"{\"amount\": \"2\"}"}},'
    r'{"id":"c2","type":"function","function":{"name":"finish","arguments":"{\"answer\": \"2\"}"}}],"weight":1},'
    r'{"role":"tool","content":"Current value: 2.","tool_call_id":"c1"},'
    r'{"role":"tool","content":"Not executed: one tool call per turn.","tool_call_id":"c2"},'
    r'{"role":"assistant","content":"Done.","tool_calls":['
    r'{"id":"c3","type":"function","function":{"name":"finish","arguments":"{\"answer\": \"2\"}"}}],"weight":1},'
    r'{"role":"tool","content":"Correct!","tool_call_id":"c3"}],'
    r'"tools":['
    r'{"type":"function","function":{"name":"add","description":"","parameters":{"type":"object",'
    r'"properties":{"amount":{"type":"string"}},"required":[]}}},'
    r'{"type":"function","function":{"name":"finish","description":"","parameters":{"type":"object",'
    r'"properties":{"answer":{"type":"string"}},"required":[]}}}],'
    r'"run":"tiny-tools","run_id":2,"episode_id":2,"model":"m1","policy":"model","env":"counter","split":"dev",'
    r'"task_id":"c-2","sample":0,"outcome":"success","success":true,"reward":1.0,"progress":null,"turns":2}'
    "\n")


def test_agentgym_byte_for_byte(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "ag.jsonl"
    summary = export_runs(store, ["tiny", "tiny-tools"], ExportFormat.agentgym, out)
    assert summary.rows == 2
    assert out.read_bytes() == (AGENTGYM_TINY + AGENTGYM_TOOLS).encode("utf-8")


def test_messages_byte_for_byte_with_tools_only_when_used(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "m.jsonl"
    export_runs(store, ["tiny", "tiny-tools"], ExportFormat.messages, out)
    assert out.read_bytes() == (MESSAGES_TINY + MESSAGES_TOOLS).encode("utf-8")
    assert "tools" not in json.loads(MESSAGES_TINY)


def test_loss_masks(store: Store, tmp_path: Path) -> None:
    export_runs(store, ["tiny"], ExportFormat.agentgym, tmp_path / "a.jsonl")
    export_runs(store, ["tiny"], ExportFormat.agentgym, tmp_path / "b.jsonl", mask_refused=False)
    export_runs(store, ["tiny"], ExportFormat.messages, tmp_path / "c.jsonl", mask_refused=False)
    masked = json.loads((tmp_path / "a.jsonl").read_text())["conversations"]
    trained = json.loads((tmp_path / "b.jsonl").read_text())["conversations"]
    for conv in (masked, trained):
        assert all(t["loss"] is False for t in conv if t["from"] == "human")
        assert [t["from"] for t in conv] == ["human", "gpt"] * 3  # alternates, starts human, ends gpt
    assert [t["loss"] for t in masked if t["from"] == "gpt"] == [False, True, True]  # the refused reply is masked
    assert [t["loss"] for t in trained if t["from"] == "gpt"] == [True, True, True]
    msgs = json.loads((tmp_path / "c.jsonl").read_text())["messages"]
    assert [m.get("weight") for m in msgs] == [None, None, 1, None, 1, None, 1, None]  # weight on assistant only


def test_registered_env_tools_come_from_the_env_class(tmp_path: Path) -> None:
    from envs.registry import load_class

    s = Store(str(tmp_path / "sqltools.db"))
    try:
        build_run(s, "sqlrun", [EpisodeSpec("q1", messages=_tool_turns())], env="sql", prompt_format="tools")
        export_runs(s, ["sqlrun"], ExportFormat.messages, tmp_path / "m.jsonl")
    finally:
        s.close()
    row = json.loads((tmp_path / "m.jsonl").read_text())
    assert row["tools"] == [t.json_schema() for t in load_class("sql").tools]


def _as_arrow_rows(jsonl: str) -> list[dict[str, Any]]:
    """The expected parquet rows: the messages rows with every schema field present and tools as JSON text."""
    rows = []
    for line in jsonl.splitlines():
        r = json.loads(line)
        for m in r["messages"]:
            for k in ("tool_calls", "tool_call_id", "weight"):
                m.setdefault(k, None)
        r["tools"] = json.dumps(r["tools"], ensure_ascii=False) if "tools" in r else None
        rows.append(r)
    return rows


def test_parquet_roundtrip(store: Store, tmp_path: Path) -> None:
    from collector.export.writers import SCHEMA

    out = tmp_path / "x.parquet"
    export_runs(store, ["tiny", "tiny-tools"], ExportFormat.parquet, out)
    table = pq.read_table(out)
    assert table.schema.equals(SCHEMA)
    got = table.to_pylist()
    expected = _as_arrow_rows(MESSAGES_TINY + MESSAGES_TOOLS)
    assert got == [{k: r[k] for k in SCHEMA.names} for r in expected]


def test_hf_directory_loads_with_datasets(store: Store, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="the hf export check needs the datasets package")
    out = tmp_path / "hf"
    summary = export_runs(store, ["tiny", "tiny-tools"], ExportFormat.hf, out)
    assert summary.splits == {"train": 1, "validation": 1}
    ds = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert set(ds) == {"train", "validation"}
    expected = _as_arrow_rows(MESSAGES_TINY + MESSAGES_TOOLS)
    assert ds["train"][0] == expected[0]
    assert ds["validation"][0] == expected[1]
    # exporting again over an earlier export replaces it; a foreign non-empty directory is refused
    export_runs(store, ["tiny"], ExportFormat.hf, out, Curation(splits=["train"]))
    assert datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache2"))["train"].num_rows == 1
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        export_runs(store, ["tiny"], ExportFormat.hf, foreign)
    with pytest.raises(FileExistsError):
        export_runs(store, ["tiny"], ExportFormat.hf, foreign / "keep.txt")
    assert (foreign / "keep.txt").read_text() == "x"


def test_hf_exports_are_not_read_back_from_another_exports_cache(store: Store, tmp_path: Path) -> None:
    """`datasets` caches a local folder by its name and YAML configs: the file names carry their digest, so two
    exports to folders of the same name, and a re-export in place, each load their own rows (one cache dir)."""
    datasets = pytest.importorskip("datasets", reason="the hf export check needs the datasets package")
    cache = str(tmp_path / "cache")
    first, second = tmp_path / "a" / "export", tmp_path / "b" / "export"
    export_runs(store, ["tiny"], ExportFormat.hf, first)
    export_runs(store, ["tiny-tools"], ExportFormat.hf, second, Curation(splits=["dev"]))
    assert datasets.load_dataset(str(first), cache_dir=cache)["train"][0]["run"] == "tiny"
    assert set(datasets.load_dataset(str(second), cache_dir=cache)) == {"validation"}
    export_runs(store, ["tiny-tools"], ExportFormat.hf, first)  # in place, other rows
    assert datasets.load_dataset(str(first), cache_dir=cache)["validation"][0]["run"] == "tiny-tools"
    files = sorted(p.name for p in (first / "data").iterdir())
    assert len(files) == 1 and files[0].startswith("validation-") and files[0].endswith(".parquet")


def _cli_app() -> Any:
    import typer

    from cli.export import register

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test app"""

    register(app)
    return app


def test_cli_export_and_curate(store: Store, tmp_path: Path) -> None:
    url = store.url
    runner = CliRunner()
    out = tmp_path / "cli.jsonl"
    res = runner.invoke(_cli_app(), ["export", "tiny", "tiny-tools", "--store", url, "--format", "agentgym",
                                     "--out", str(out), "--split", "train"])
    assert res.exit_code == 0, res.output
    assert out.read_text(encoding="utf-8") == AGENTGYM_TINY
    res = runner.invoke(_cli_app(), ["curate", "tiny", "tiny-tools", "--store", url, "--json", "--solved", "1:",
                                     "--split", "dev", "--ids-out", str(tmp_path / "ids.txt")])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)["report"]
    assert report == {"finished": 2, "dropped": {"infra_error": 0, "pass_band": 0, "split": 1}, "kept": 1, "tasks": 1}
    assert (tmp_path / "ids.txt").read_text() == "2\n"
    res = runner.invoke(_cli_app(), ["export", "nope", "--store", url, "--format", "hf", "--out", str(tmp_path / "h")])
    assert res.exit_code == 2 and "no run named 'nope'" in res.output
    res = runner.invoke(_cli_app(), ["curate", "tiny", "--store", url, "--solved", "3"])
    assert res.exit_code == 2 and "MIN:MAX" in res.output
