"""Train a small model with TRL's GRPOTrainer on a trajgym env, reached through the env's OpenEnv surface.

    trajgym serve webshop --port 8000 &
    python examples/trl_grpo_openenv.py --env-url http://127.0.0.1:8000 \\
        --model ~/.cache/trajgym/models/SmolLM2-135M-Instruct --max-steps 20

Why `rollout_func` and not TRL's `environment_factory`: `environment_factory` exposes an env's
methods as *tools* and needs a model whose chat template renders tool calls (TRL checks
`supports_tool_calling`) plus a response parser for them; SmolLM2-135M-Instruct has neither.
trajgym envs take ReAct text (`search[shoes]`) natively, so a rollout function that plays whole
multi-turn episodes over OpenEnv's own client works with any causal LM: each model turn is one
text action, the env's observation comes back as the next user turn (masked out of the loss
with `env_mask`), and the episode's reward, computed by the env, is the GRPO reward.

`--expert-fraction F` plays a fraction F of the rollouts with the env's expert (its actions, read
from the v1 API on the same session, stand in for the model's turns): expert-guided GRPO, which
gives each group a non-degenerate reward spread while the model is still untrained.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import torch
from datasets import Dataset
from openenv import GenericEnvClient
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer


@dataclass
class EpisodeRecord:
    """One rollout as the env saw it (its reward is the env's total, read back from OpenEnv's state)."""

    task_id: str
    session_id: str
    reward: float
    turns: int
    done: bool
    expert: bool


def prompt_key(prompt: list[dict[str, str]]) -> str:
    return json.dumps(prompt, sort_keys=True)


def build_dataset(service_url: str, split: str, limit: int) -> tuple[Dataset, dict[str, str]]:
    """One row per task: [system prompt, first observation]. Returns the dataset and prompt -> task id."""
    info = httpx.get(f"{service_url}/v1/info", timeout=60).json()
    tasks = httpx.get(f"{service_url}/v1/tasks", params={"split": split, "limit": limit}, timeout=60).json()["tasks"]
    rows, task_of = [], {}
    with GenericEnvClient(base_url=service_url + "/openenv").sync() as client:
        for task in tasks:
            first = client.reset(task_id=task["task_id"]).observation
            prompt = [{"role": "system", "content": info["system_prompt"] or info["description"]},
                      {"role": "user", "content": first["text"]}]
            rows.append({"prompt": prompt, "task_id": task["task_id"]})
            task_of[prompt_key(prompt)] = task["task_id"]
    return Dataset.from_list(rows), task_of


class OpenEnvRollout:
    """TRL `rollout_func`: plays one whole episode per prompt over OpenEnv's client."""

    def __init__(self, service_url: str, task_of: dict[str, str], *, max_turns: int = 4, max_new_tokens: int = 32,
                 temperature: float = 1.0, expert_fraction: float = 0.0) -> None:
        self.service_url = service_url.rstrip("/")
        self.task_of = task_of
        self.max_turns = max_turns
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.expert_fraction = expert_fraction
        self.rollouts = 0
        self.calls: list[list[EpisodeRecord]] = []  # one list per trainer generation call

    def _is_expert(self) -> bool:
        n, f = self.rollouts, self.expert_fraction
        self.rollouts += 1
        return int((n + 1) * f) > int(n * f)  # exactly a fraction f of the rollouts, spread evenly

    def __call__(self, prompts: list[list[dict[str, str]]], trainer: GRPOTrainer) -> dict[str, Any]:
        tokenizer = trainer.processing_class
        model = trainer.accelerator.unwrap_model(trainer.model)
        out: dict[str, list[Any]] = {"prompt_ids": [], "completion_ids": [], "env_mask": [], "env_reward": []}
        records = []
        with GenericEnvClient(base_url=self.service_url + "/openenv").sync() as client, httpx.Client(timeout=60) as http:
            for prompt in prompts:
                task_id = self.task_of[prompt_key(prompt)]
                record, prompt_ids, completion_ids, env_mask = self._episode(client, http, model, tokenizer, prompt, task_id)
                records.append(record)
                out["prompt_ids"].append(prompt_ids)
                out["completion_ids"].append(completion_ids)
                out["env_mask"].append(env_mask)
                out["env_reward"].append(record.reward)
        self.calls.append(records)
        return {**out, "logprobs": None}

    def _episode(self, client: Any, http: httpx.Client, model: Any, tokenizer: Any, prompt: list[dict[str, str]],
                 task_id: str) -> tuple[EpisodeRecord, list[int], list[int], list[int]]:
        expert = self._is_expert()
        result = client.reset(task_id=task_id)
        session_id = client.state()["episode_id"]
        messages = [dict(m) for m in prompt]
        prompt_ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
        completion_ids: list[int] = []
        env_mask: list[int] = []
        turns = 0
        while not result.done and (expert or turns < self.max_turns):
            if expert:
                action = http.get(f"{self.service_url}/v1/sessions/{session_id}/expert").json()["action"]
                turn_ids = tokenizer.encode(action, add_special_tokens=False) + [tokenizer.eos_token_id]
            else:
                turn_ids = self._generate(model, tokenizer, prompt_ids + completion_ids)
                action = tokenizer.decode(turn_ids, skip_special_tokens=True).strip() or "(no action)"
            completion_ids += turn_ids
            env_mask += [1] * len(turn_ids)
            result = client.step({"text": action})
            turns += 1
            messages.append({"role": "assistant", "content": action})
            if not result.done:
                feedback = self._user_turn(tokenizer, messages, result.observation["text"])
                messages.append({"role": "user", "content": result.observation["text"]})
                completion_ids += feedback
                env_mask += [0] * len(feedback)
        state = client.state()  # the env's own account of the episode
        record = EpisodeRecord(task_id=task_id, session_id=session_id, reward=float(state["total_reward"]), turns=state["step_count"],
                               done=bool(state["done"]), expert=expert)
        return record, prompt_ids, completion_ids, env_mask

    def _generate(self, model: Any, tokenizer: Any, context: list[int]) -> list[int]:
        inputs = torch.tensor([context], device=model.device)
        with torch.no_grad():
            output = model.generate(inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=self.max_new_tokens, do_sample=True,
                                    temperature=self.temperature, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        turn = output[0, len(context):].tolist()
        if not turn or turn[-1] != tokenizer.eos_token_id:
            turn.append(tokenizer.eos_token_id)  # the turn ends here either way
        return turn

    @staticmethod
    def _user_turn(tokenizer: Any, messages: list[dict[str, str]], observation: str) -> list[int]:
        """Tokens that render the env's observation as the next user turn and open the assistant's."""
        before = tokenizer.apply_chat_template(messages, tokenize=False)
        after = tokenizer.apply_chat_template(messages + [{"role": "user", "content": observation}], tokenize=False,
                                              add_generation_prompt=True)
        delta = after[len(before):] if after.startswith(before) else f"\n{observation}\n"
        return tokenizer.encode(delta, add_special_tokens=False)


def env_reward(completions: list[Any], env_reward: list[float], **_: Any) -> list[float]:
    """The reward the env gave each rollout's episode (forwarded by the rollout function)."""
    return [float(r) for r in env_reward]


def train(service_url: str, model_path: str, output_dir: str, *, split: str = "train", tasks: int = 8, max_steps: int = 2,
          num_generations: int = 2, max_turns: int = 4, max_new_tokens: int = 32, expert_fraction: float = 0.0,
          learning_rate: float = 1e-6, seed: int = 0) -> tuple[GRPOTrainer, OpenEnvRollout]:
    dataset, task_of = build_dataset(service_url, split, tasks)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    rollout = OpenEnvRollout(service_url, task_of, max_turns=max_turns, max_new_tokens=max_new_tokens, expert_fraction=expert_fraction)
    cpu = not torch.cuda.is_available()
    config = GRPOConfig(
        output_dir=output_dir, max_steps=max_steps, per_device_train_batch_size=num_generations, num_generations=num_generations,
        gradient_accumulation_steps=1, learning_rate=learning_rate, logging_steps=1, save_strategy="no", report_to="none",
        gradient_checkpointing=False, bf16=False, use_cpu=cpu, seed=seed, max_completion_length=max_new_tokens * (max_turns + 1),
        dataloader_num_workers=0,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=[env_reward], args=config, train_dataset=dataset, processing_class=tokenizer,
                          rollout_func=rollout)
    trainer.train()
    return trainer, rollout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-url", default="http://127.0.0.1:8000", help="the trajgym env service (its OpenEnv surface is URL/openenv)")
    parser.add_argument("--model", default=str(Path.home() / ".cache/trajgym/models/SmolLM2-135M-Instruct"))
    parser.add_argument("--output-dir", default="grpo-openenv-out")
    parser.add_argument("--split", default="train")
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--num-generations", type=int, default=4)
    parser.add_argument("--max-turns", type=int, default=6)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--expert-fraction", type=float, default=0.0)
    parser.add_argument("--learning-rate", type=float, default=1e-6)
    args = parser.parse_args()
    trainer, rollout = train(args.env_url, args.model, args.output_dir, split=args.split, tasks=args.tasks, max_steps=args.max_steps,
                             num_generations=args.num_generations, max_turns=args.max_turns, max_new_tokens=args.max_new_tokens,
                             expert_fraction=args.expert_fraction, learning_rate=args.learning_rate)
    for entry in trainer.state.log_history:
        print(json.dumps(entry))
    Path(args.output_dir, "episodes.json").write_text(json.dumps([[asdict(r) for r in call] for call in rollout.calls], indent=1))


if __name__ == "__main__":
    main()
