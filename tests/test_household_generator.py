"""The built-in generator: all six task types, deterministic by seed, every game solvable by
the expert, written in ALFWorld's layout and read back by the same loader as real data."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import gymnasium
import pytest

from envs.base import DataDirError
from envs.household.data import builtin_data, generated_split, real_data
from envs.household.env import HouseholdEnv
from envs.household.generator import generate_game, sample_task, write_games
from envs.household.task import TASK_TYPES
from envs.household.world import World
from envs.types import Split


def test_same_seed_same_game_and_different_seeds_differ() -> None:
    a, b = generate_game(11), generate_game(11)
    assert a[0] == b[0] and json.dumps(a[1], sort_keys=True) == json.dumps(b[1], sort_keys=True)
    assert generate_game(12)[1]["pddl_problem"] != a[1]["pddl_problem"]
    assert sample_task(11) == a[0]


def test_all_six_types_and_every_game_solved_by_expert_through_env() -> None:
    data = builtin_data()
    env = HouseholdEnv(data)
    types: Counter[str] = Counter()
    for task_id, task in data.tasks.items():
        obs = env.reset(task_id=task_id)
        assert obs.observation.startswith("You are in the middle of a room. Looking quickly around you, you see a ")
        while not env.done:
            result = env.step(env.expert_action())
            assert result.info.get("admissible"), (task_id, result.info)
        assert result.info["success"] is True, task_id
        types[task.meta["task_type"]] += 1
    assert set(types) == set(TASK_TYPES) and min(types.values()) == len(data.tasks) // 6


def test_generated_walkthrough_replays_in_a_fresh_world() -> None:
    for seed in range(6):
        _, game = generate_game(seed)
        world = World(game)
        env_data = builtin_data(n=6)
        env = HouseholdEnv(env_data)
        env.reset(task_id=f"gen-{seed:05d}")
        for action in game["walkthrough"]:
            result = env.step(action)
        assert result.done and result.info["success"] is True
        assert world.task_text == sample_task(seed).task_text


def test_builtin_splits() -> None:
    data = HouseholdEnv.load(None)
    counts = data.counts()
    assert counts[Split.train] > counts[Split.dev] > 0 and counts[Split.test] > 0
    test_types = Counter(data.tasks[t].meta["task_type"] for t in data.task_ids(Split.test))
    assert set(test_types) == set(TASK_TYPES)
    assert generated_split(0) == Split.test and generated_split(6) == Split.dev and generated_split(12) == Split.train


def test_written_games_load_with_the_real_loader(tmp_path: Path) -> None:
    write_games(tmp_path, list(range(12)), lambda s: "valid_seen" if s % 2 else "valid_train")
    data = real_data(tmp_path)
    assert len(data.tasks) == 12 and data.counts()[Split.test] == 6
    env = HouseholdEnv(data)
    for task in data.tasks.values():
        env.reset(task_id=task.task_id)
        for action in data.walkthroughs[task.task_id]:
            result = env.step(action)
        assert result.info["success"] is True


def test_walkthroughs_naming_raw_pddl_ids_are_dropped_and_the_expert_solves_those_games(tmp_path: Path) -> None:
    """Some ALFWorld game files store walkthroughs with raw PDDL ids, which no game accepts: they
    are not kept as a solution (nor replayed by tests or benchmarks); the planner expert is."""
    write_games(tmp_path, [0, 1], lambda s: "valid_seen")
    index_file = tmp_path / "games_index.json"
    index = json.loads(index_file.read_text())
    raw_game, plain_game = sorted(index)
    index[raw_game]["walkthrough"] = ["go to countertop_bar__minus_00_dot_26_bar__plus_00_dot_93_bar__minus_03_dot_94",
                                      "look"]
    index_file.write_text(json.dumps(index))
    data = real_data(tmp_path)
    raw_id, plain_id = (g.removeprefix("json_2.1.1/") for g in (raw_game, plain_game))
    assert raw_id not in data.walkthroughs and data.unplayable_walkthroughs == 1
    assert data.walkthroughs[plain_id] == index[plain_game]["walkthrough"]
    env = HouseholdEnv(data)
    env.reset(task_id=raw_id)
    assert env.step(index[raw_game]["walkthrough"][0]).observation == "Nothing happens."
    while not env.done:
        result = env.step(env.expert_action())
    assert result.info["success"] is True


def test_loader_refuses_paths_outside_root(tmp_path: Path) -> None:
    (tmp_path / "games_index.json").write_text(json.dumps({"../outside/game": {"split": "valid_seen"}}))
    with pytest.raises(DataDirError, match="leaves the data directory"):
        real_data(tmp_path)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    write_games(outside, [0], lambda s: "valid_seen")
    root = tmp_path / "root"
    (root / "json_2.1.1").mkdir(parents=True)
    (root / "json_2.1.1" / "valid_seen").symlink_to(outside / "json_2.1.1" / "valid_seen")
    index = json.loads((outside / "games_index.json").read_text())
    (root / "games_index.json").write_text(json.dumps(index))
    with pytest.raises(DataDirError, match="outside the data directory"):
        real_data(root)


def test_gymnasium_make() -> None:
    env = gymnasium.make("trajgym/Household-v0")
    obs, _ = env.reset(seed=3)
    assert "Your task is to:" in str(obs)
    env.close()
