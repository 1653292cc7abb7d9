"""The 340 real ALFWorld games: every file loads, every official walkthrough replays and wins,
the expert (a planner from state) wins, and the first observation reads like ALFWorld's."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from envs.household.data import HouseholdData, real_data
from envs.household.env import HouseholdEnv
from envs.types import Split

ALFWORLD = Path(__file__).resolve().parents[2] / "shared" / "data" / "alfworld"
pytestmark = pytest.mark.skipif(not (ALFWORLD / "games_index.json").exists(),
                                reason=f"real ALFWorld data not found at {ALFWORLD}")


@pytest.fixture(scope="module")
def data() -> HouseholdData:
    return real_data(ALFWORLD)


def test_all_games_load_with_splits_and_types(data: HouseholdData) -> None:
    index = json.loads((ALFWORLD / "games_index.json").read_text())
    assert len(data.tasks) == len(index) == 340
    assert data.counts() == {Split.train: 0, Split.dev: 200, Split.test: 140}
    types = Counter()
    for task in data.tasks.values():
        world, info = data.game(task.task_id)
        assert info.task_type == task.meta["task_type"]
        assert info.obj_type == task.meta["pddl_params"]["object_target"].lower() + "type"
        assert world.task_text == task.instruction
        types[info.task_type] += 1
    assert len(types) == 6


def test_official_walkthroughs_replay_and_win(data: HouseholdData) -> None:
    env = HouseholdEnv(data)
    replayed = 0
    for task in data.tasks.values():
        walkthrough = data.walkthroughs.get(task.task_id)
        if not walkthrough:
            continue
        env.reset(task_id=task.task_id)
        for i, action in enumerate(walkthrough):
            assert action in env.valid_actions(), (task.task_id, action)
            result = env.step(action)
            assert result.observation != "Nothing happens.", (task.task_id, action)
            assert result.done == (i == len(walkthrough) - 1), (task.task_id, i)
        assert result.reward == 1.0 and result.info["success"] is True and env.progress() == 1.0
        replayed += 1
    assert replayed == 140  # the valid_seen games carry walkthroughs; valid_train games do not


def test_expert_wins_every_game(data: HouseholdData) -> None:
    env = HouseholdEnv(data)
    wins = 0
    for task in data.tasks.values():
        env.reset(task_id=task.task_id)
        progress = 0.0
        while not env.done:
            result = env.step(env.expert_action())
            assert env.progress() >= progress
            progress = env.progress()
        wins += bool(result.info["success"])
    assert wins / len(data.tasks) >= 0.99


def test_first_observation_reads_like_alfworld(data: HouseholdData) -> None:
    env = HouseholdEnv(data)
    task_id = "valid_seen/pick_two_obj_and_place-Newspaper-None-Drawer-224/trial_T20190911_101248_326533"
    obs = env.reset(task_id=task_id)
    print(obs.observation)
    assert obs.observation.startswith("You are in the middle of a room. Looking quickly around you, you see a armchair 1, "
                                      "a cabinet 1, a drawer 21, a drawer 20,")
    assert obs.observation.endswith("and a sofa 1.\n\nYour task is to: put two newspaper in drawer.")
    assert obs.valid_actions is not None and "go to dresser 1" in obs.valid_actions
    result = env.step("go to dresser 1")
    assert result.observation.startswith("You arrive at dresser 1. On the dresser 1, you see a book 1, ")
    for task in data.tasks.values():
        first = env.reset(task_id=task.task_id).observation
        assert first.startswith("You are in the middle of a room. Looking quickly around you, you see a ")
        assert f"\n\nYour task is to: {task.instruction}" in first


def test_walkthroughs_are_not_in_task_meta(data: HouseholdData) -> None:
    assert len(data.walkthroughs) == 140
    assert all("walkthrough" not in task.meta for task in data.tasks.values())
