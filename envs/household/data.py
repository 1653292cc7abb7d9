"""Task lists and game loading: ALFWorld game directories or the built-in generated games.

`load_data(None)` lists generated games (seeded, built on first use); `load_data(dir)` reads a
directory laid out like ALFWorld's release (`json_2.1.1/<split>/<task>/<trial>/game.tw-pddl`,
optional `games_index.json`). Paths are resolved inside the data root only. Parsed games are
kept in a small thread-safe LRU cache shared by all sessions (read-only once built).

Walkthroughs (kept for tests and benchmarks, never shown to agents) are kept only when they are
playable commands: some ALFWorld game files store them with raw PDDL ids (`go to
countertop_bar__minus_00_dot_26_bar_...`), which no game accepts — ALFWorld hands such a list
out unchanged and its `AlfredDemangler` renames entities only — so those are dropped
(`HouseholdData.unplayable_walkthroughs` counts them) and the planner expert stands in.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from envs.base import DataDir, DataDirError, EnvData, as_data_dir
from envs.household.generator import generate_game, sample_task
from envs.household.task import TaskInfo, task_info
from envs.household.world import GameFormatError, World
from envs.types import Split, TaskSpec

GAME_FILE = "game.tw-pddl"
N_GENERATED = 600
CACHE_SIZE = 1024  # parsed games (~65 KiB each): all 600 built-in ones, and ALFWorld's eval folders, stay parsed
# ALFWorld's folders → trajgym splits: the in-distribution eval set is our test set, the
# sample of training games ("valid_train") our dev set; train stays train, unseen is test too.
SPLIT_OF_FOLDER = {"train": Split.train, "valid_train": Split.dev, "valid_seen": Split.test, "valid_unseen": Split.test}


def generated_split(seed: int) -> Split:
    """Blocks of six consecutive seeds hold all six task types; one block in ten is test, one dev."""
    block = (seed // 6) % 10
    return Split.test if block == 0 else Split.dev if block == 1 else Split.train


class HouseholdData(EnvData):
    """Task list + a loader for each task's game; parsed `World`s are cached and shared."""

    def __init__(self, tasks: list[TaskSpec], loader: Callable[[str], World], source: str,
                 walkthroughs: dict[str, list[str]] | None = None) -> None:
        super().__init__(tasks)
        self.source = source
        # official walkthroughs (kept out of TaskSpec.meta, which agents can list)
        self.walkthroughs = walkthroughs or {}
        self.unplayable_walkthroughs = 0
        self._loader = loader
        self._cache: OrderedDict[str, tuple[World, TaskInfo]] = OrderedDict()
        self._lock = threading.Lock()

    def game(self, task_id: str) -> tuple[World, TaskInfo]:
        with self._lock:
            hit = self._cache.get(task_id)
            if hit is not None:
                self._cache.move_to_end(task_id)
                return hit
        world = self._loader(task_id)  # outside the lock: parsing is pure and deterministic
        entry = (world, task_info(world.goal))
        with self._lock:
            self._cache[task_id] = entry
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return entry


def _generated_world(task_id: str) -> World:
    seed = int(task_id.rsplit("-", 1)[1])
    _, game = generate_game(seed)
    return World(game, task_id)


def builtin_data(n: int = N_GENERATED) -> HouseholdData:
    tasks = []
    for seed in range(n):
        task = sample_task(seed)
        tasks.append(TaskSpec(task_id=f"gen-{seed:05d}", split=generated_split(seed), instruction=task.task_text,
                              meta={"task_type": task.task_type, "room": task.room, "seed": seed,
                                    "pddl_params": task.pddl_params(), "source": "generated"}))
    return HouseholdData(tasks, _generated_world, source="generated")


def playable(walkthrough: object) -> list[str] | None:
    """The walkthrough as a list of commands, or None when it is not one a game could accept:
    not a list of non-empty strings, or naming a raw PDDL id (ALFWorld mangles `|` into `_bar_`)."""
    if not isinstance(walkthrough, list) or not walkthrough:
        return None
    if not all(isinstance(a, str) and a.strip() and "_bar_" not in a for a in walkthrough):
        return None
    return list(walkthrough)


def _task_text(game_file: Path) -> str:
    return World.task_text_of(json.loads(game_file.read_text()))


def real_data(data_dir: str | Path | DataDir) -> HouseholdData:
    base = as_data_dir(data_dir)
    if not base.exists("games_index.json") and base.path("alfworld").is_dir():
        base = base.sub("alfworld")
    root = base.root
    index: dict[str, Any] = json.loads(base.file("games_index.json").read_text()) if base.exists("games_index.json") else {}
    if not index:
        for f in base.glob(f"json_2.1.1/*/*/*/{GAME_FILE}"):
            rel = f.parent.relative_to(root).as_posix()
            index[rel] = {"split": f.parent.parent.parent.name}
    tasks: list[TaskSpec] = []
    paths: dict[str, Path] = {}
    walkthroughs: dict[str, list[str]] = {}
    unplayable = 0
    for rel, entry in sorted(index.items()):
        if not isinstance(rel, str) or not rel:
            raise DataDirError(f"games_index.json: bad game path {rel!r}")
        game_file = base.file(f"{rel}/{GAME_FILE}")
        folder = str(entry.get("split") or Path(rel).parts[-3])
        split = SPLIT_OF_FOLDER.get(folder)
        if split is None:
            raise DataDirError(f"unknown ALFWorld split folder {folder!r} for {rel}")
        task_id = rel.removeprefix("json_2.1.1/")
        paths[task_id] = game_file
        text = entry.get("task_text") or _task_text(game_file)
        meta = {k: entry[k] for k in ("task_type", "pddl_params", "scene") if k in entry}
        if entry.get("walkthrough"):
            commands = playable(entry["walkthrough"])
            if commands is None:
                unplayable += 1
            else:
                walkthroughs[task_id] = commands
        meta.update({"source": "alfworld", "alfworld_split": folder, "game_path": rel})
        tasks.append(TaskSpec(task_id=task_id, split=split, instruction=text, meta=meta))
    if not tasks:
        raise DataDirError(f"no ALFWorld games under {root}")

    def load(task_id: str) -> World:
        try:
            return World(json.loads(paths[task_id].read_text()), task_id)
        except (ValueError, KeyError) as err:
            raise GameFormatError(f"{task_id}: {err}") from err

    data = HouseholdData(tasks, load, source=str(root), walkthroughs=walkthroughs)
    data.unplayable_walkthroughs = unplayable
    return data


def load_data(data_dir: str | Path | DataDir | None = None) -> HouseholdData:
    return builtin_data() if data_dir is None else real_data(data_dir)
