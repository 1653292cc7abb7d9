"""The training chat template for exported `messages` rows: ChatML, Hermes `<tool_call>` lines, `{% generation %}`.

TRL's `SFTTrainer(..., args=SFTConfig(assistant_only_loss=True))` trains on the tokens a
chat template puts inside `{% generation %}` … `{% endgeneration %}` (transformers'
`return_assistant_tokens_mask`). SmolLM2's own template has no such markers and drops
`tools` and `tool_calls`; this one is ChatML like it and adds what training needs:

* for rows without tools (ReAct runs) that start with a system message it renders
  exactly what SmolLM2's template renders, so the model is trained on the text it is
  served with;
* `tools` (TRL decodes the JSON text the parquet/hf exports store) are listed in the
  system turn inside `<tools>…</tools>` with the `<tool_call>` convention, unless the
  system prompt already spells them out (a `--constrain` run's Hermes prompt does);
* an assistant turn renders its content, then each tool call as one line
  `<tool_call>{"name": …, "arguments": {…}}</tool_call>` — the form the collector's
  decoding constraint makes the model write and vLLM's `hermes` parser reads — with the
  arguments as stored (OpenAI's JSON text) or serialised when given as an object;
* the trained span of an assistant turn is its text and its `<|im_end|>` (so the
  model learns to stop), not the `<|im_start|>assistant` cue; an assistant message of
  `weight` 0 (a refused reply, OpenAI's fine-tuning field) is rendered outside the
  markers, so TRL's assistant mask leaves it out;
* tool results are ChatML turns of role `tool`, as SmolLM2's template renders them.

`save_with_training_template(tokenizer, folder)` stores it as the tokenizer's template, so
a model fine-tuned with it is served (vLLM reads the folder's template) with the
rendering it was trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TRAINING_CHAT_TEMPLATE = """\
{%- for message in messages -%}
{%- set content = message.content if message.content is string else '' -%}
{%- if loop.first and message.role == 'system' -%}
{{- '<|im_start|>system\\n' + content -}}
{%- if tools and '<tools>' not in content -%}
{{- '\\n\\nYou can call these tools (JSON schemas):\\n<tools>' -}}
{%- for tool in tools -%}{{- '\\n' + tool | tojson -}}{%- endfor -%}
{{- '\\n</tools>\\nTo call a tool, reply with one line per call: <tool_call>{"name": <tool name>, "arguments": <JSON object>}</tool_call>' -}}
{%- endif -%}
{{- '<|im_end|>\\n' -}}
{%- elif message.role == 'assistant' -%}
{%- set turn = namespace(text=content) -%}
{%- for call in message.tool_calls or [] -%}
{%- set fn = call.function if call.function is defined and call.function else call -%}
{%- set args = fn.arguments if fn.arguments is string else (fn.arguments | tojson) -%}
{%- set line = '<tool_call>{"name": "' + fn.name + '", "arguments": ' + args + '}</tool_call>' -%}
{%- set turn.text = turn.text + '\\n' + line if turn.text else line -%}
{%- endfor -%}
{{- '<|im_start|>assistant\\n' -}}
{%- if message.weight is defined and message.weight is not none and message.weight == 0 -%}
{{- turn.text + '<|im_end|>' -}}
{%- else -%}
{%- generation -%}{{- turn.text + '<|im_end|>' -}}{%- endgeneration -%}
{%- endif -%}
{{- '\\n' -}}
{%- else -%}
{{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>\\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}
"""


def save_with_training_template(tokenizer: Any, folder: str | Path) -> None:
    """Save a (ChatML) tokenizer with the training template as its chat template."""
    tokenizer.chat_template = TRAINING_CHAT_TEMPLATE
    tokenizer.save_pretrained(str(folder))
