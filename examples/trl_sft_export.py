"""Fine-tune a model with TRL's SFTTrainer on a trajgym export, as exported.

    trajgym serve qa --port 8004 &
    trajgym collect --env http://127.0.0.1:8004 --policy expert --split train \\
        --store sqlite:///runs.db --run-name qa-expert            # add --prompt-format tools for tool calls
    trajgym export qa-expert --store sqlite:///runs.db --format hf --out qa-sft
    python examples/trl_sft_export.py --data qa-sft \\
        --model ~/.cache/trajgym/models/SmolLM2-135M-Instruct --output-dir qa-sft-model
    trajgym model serve --model qa-sft-model --port 8100           # the fine-tuned weights, same vLLM server

It imports trajgym's `collector.export.chat_template` (trajgym installed, or `PYTHONPATH=.` in a checkout).
The export is read with `datasets.load_dataset` and handed to `SFTTrainer` unchanged: TRL's
conversational language-modeling type (`messages`, plus `tools` per row), one row per episode.
The loss is TRL's own assistant-only loss (`assistant_only_loss=True`): TRL trains on the tokens
the chat template marks with `{% generation %}`. SmolLM2's template has no such markers and drops
tool calls, so the tokenizer gets trajgym's training template (`collector.export.chat_template`:
the same ChatML for ReAct rows, Hermes `<tool_call>` lines for tool calls, refused replies of
`weight` 0 outside the markers) and is saved with it, so the fine-tuned model is served with the
rendering it was trained on. Why not the prompt-completion type: an episode has many assistant
turns between observations, and a completion is trained whole, observations included, unless the
episode is cut into one row per reply (each repeating the whole history).

`--minutes M` stops training after M minutes of optimizer steps (a fixed CPU budget); the steps
done, tokens seen and the loss curve are written to `<output-dir>/train_log.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset, load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import SFTConfig, SFTTrainer

from collector.export.chat_template import TRAINING_CHAT_TEMPLATE


def load_export(path: str, split: str = "train") -> Dataset:
    """An export as a `datasets.Dataset`: an hf directory (its `split`), a messages JSONL or a parquet file."""
    p = Path(path)
    if p.is_dir():
        return load_dataset(str(p), split=split)
    kind = "parquet" if p.suffix == ".parquet" else "json"
    return load_dataset(kind, data_files=str(p), split="train")


class TimeBudget(TrainerCallback):
    """Stops training once `seconds` of training have passed (checked after each optimizer step)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.start = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.start = time.monotonic()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.seconds is not None and time.monotonic() - self.start >= self.seconds:
            control.should_training_stop = True


def sft_config(output_dir: str, *, max_steps: int = -1, epochs: float = 1.0, learning_rate: float = 2e-5,
               batch_size: int = 1, grad_accum: int = 1, max_length: int | None = 2048, seed: int = 0,
               **overrides: Any) -> SFTConfig:
    return SFTConfig(
        output_dir=output_dir, assistant_only_loss=True, max_length=max_length, max_steps=max_steps,
        num_train_epochs=epochs, learning_rate=learning_rate, per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=grad_accum, logging_steps=1, save_strategy="no", report_to="none",
        use_cpu=not torch.cuda.is_available(), bf16=False, seed=seed,
        dataloader_num_workers=0, **overrides)


def train(dataset: Dataset, model: Any, tokenizer: Any, config: SFTConfig, *, minutes: float | None = None,
          ) -> SFTTrainer:
    """SFTTrainer on the rows as exported; the tokenizer gets the training chat template."""
    tokenizer.chat_template = TRAINING_CHAT_TEMPLATE
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[TimeBudget(minutes * 60 if minutes is not None else None)])
    trainer.train()
    return trainer


def train_log(trainer: SFTTrainer, seconds: float) -> dict[str, Any]:
    """What the run did: steps, rows and tokens trained on, the loss per step."""
    data = trainer.train_dataset
    tokens = sum(len(ids) for ids in data["input_ids"])
    trained = sum(sum(1 for t in labels if t != -100) for labels in data["labels"]) if "labels" in data.column_names \
        else None
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    seen = [e["num_tokens"] for e in trainer.state.log_history if "num_tokens" in e]  # TRL's running count
    return {"steps": trainer.state.global_step, "epochs": trainer.state.epoch, "rows": data.num_rows,
            "tokens_per_epoch": tokens, "assistant_tokens_per_epoch": trained,
            "tokens_seen": int(seen[-1]) if seen else None, "train_seconds": round(seconds, 1), "losses": losses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="an export: hf directory, messages .jsonl or .parquet")
    parser.add_argument("--split", default="train", help="the split of an hf export directory")
    parser.add_argument("--model", default=str(Path.home() / ".cache/trajgym/models/SmolLM2-135M-Instruct"))
    parser.add_argument("--output-dir", default="sft-out")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=-1, help="optimizer steps (overrides --epochs)")
    parser.add_argument("--minutes", type=float, default=None, help="stop after this much training time")
    parser.add_argument("--learning-rate", type=float, default=2e-5)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    dataset = load_export(args.data, args.split)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    config = sft_config(args.output_dir, max_steps=args.max_steps, epochs=args.epochs, learning_rate=args.learning_rate,
                        batch_size=args.batch_size, grad_accum=args.grad_accum, max_length=args.max_length, seed=args.seed)
    t0 = time.monotonic()
    trainer = train(dataset, model, tokenizer, config, minutes=args.minutes)
    seconds = time.monotonic() - t0
    trainer.save_model(args.output_dir)  # weights + the tokenizer with its training chat template
    log = train_log(trainer, seconds)
    Path(args.output_dir, "train_log.json").write_text(json.dumps(log, indent=1) + "\n")
    print(json.dumps({k: v for k, v in log.items() if k != "losses"}))


if __name__ == "__main__":
    main()
