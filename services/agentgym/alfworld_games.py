"""AgentGym's ALFWorld game numbers → trajgym household tasks.

AgentGym numbers ALFWorld games with two files of its ALFWorld server
(``agentenv-alfworld/configs/mappings_train.json`` and ``mappings_test.json``): each entry
is ``{item_id, task_type, task_id}`` — the task folder and the trial folder of one game.
Its server looks the train items (0–2419) up under ``json_2.1.1/train`` and the test items
(2420–2619, AgentGym's published test set) under ``json_2.1.1/valid_train``. trajgym names
a real game by the same path (``valid_train/<task_type>/<trial>``), so game N opens the same
game file when that file is in ``--data-dir``.

The files are AgentGym's, not trajgym's: they are read from the folder named by
``TRAJGYM_AGENTGYM_ALFWORLD_MAPPINGS``, or from the data directory itself when it holds
them. Games of the service that AgentGym does not number are served from 2620 on (2620 +
the task's position in ``GET /v1/tasks``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, TypeAdapter, ValidationError

from envs.base import DataDir, DataDirError, UnknownTask
from services.agentgym.indices import OwnTasks, runs

log = logging.getLogger("trajgym.agentgym")

MAPPINGS_VAR = "TRAJGYM_AGENTGYM_ALFWORLD_MAPPINGS"
AGENTGYM_GAMES = 2620  # AgentGym's numbering: train 0–2419, test 2420–2619
# mapping file → the ALFWorld folder AgentGym's server reads its games from
MAPPING_FILES = {"mappings_train.json": "train", "mappings_test.json": "valid_train"}


class MappingEntry(BaseModel):
    item_id: int
    task_type: str
    task_id: str


def read_mappings(folder: Path) -> dict[int, str]:
    """AgentGym game number → game path (``<split folder>/<task_type>/<trial>``) from `folder`."""
    games: dict[int, str] = {}
    root = DataDir(folder)
    for name, split in MAPPING_FILES.items():
        if not root.exists(name):
            continue
        try:
            entries = TypeAdapter(list[MappingEntry]).validate_json(root.file(name).read_bytes())
        except ValidationError as err:
            raise DataDirError(f"{root}/{name} is not an AgentGym ALFWorld mapping file: {err}") from err
        for e in entries:
            if 0 <= e.item_id < AGENTGYM_GAMES:
                games[e.item_id] = f"{split}/{e.task_type}/{e.task_id}"
    return games


def mappings_folder() -> Path | None:
    """The folder named by ``TRAJGYM_AGENTGYM_ALFWORLD_MAPPINGS``, if set."""
    value = os.environ.get(MAPPINGS_VAR, "").strip()
    return Path(value) if value else None


def find_mappings(folder: Path | None, data_dir: Path | None) -> dict[int, str]:
    """The mapping from `folder`, else from the data directory; {} when neither has one."""
    candidates = [p for p in (folder, data_dir) if p is not None]
    for folder in candidates:
        try:
            games = read_mappings(folder)
        except DataDirError as err:
            log.warning("AgentGym ALFWorld mappings: %s", err)
            continue
        if games:
            return games
    return {}


class GameIndex:
    """Resolves AgentGym ALFWorld game numbers (and trajgym's own, from 2620) to task ids."""

    def __init__(self, mappings: dict[int, str], task_ids: Sequence[str]) -> None:
        served = set(task_ids)
        self.mappings = mappings
        self.held = {n: path for n, path in mappings.items() if path in served}
        self.own = OwnTasks(task_ids, AGENTGYM_GAMES)

    def task_for(self, game: int) -> str:
        task_id = self.own.task_at(game) if game >= AGENTGYM_GAMES else self.held.get(game)
        if task_id is not None:
            return task_id
        serves = f"AgentGym's games {runs(self.held)} and {self.own.describe()}"
        if game >= AGENTGYM_GAMES:
            raise UnknownTask(f"game {game} is out of range: this service serves {serves}")
        if not self.mappings:
            raise UnknownTask(f"AgentGym ALFWorld game {game}: no AgentGym mapping is loaded (set {MAPPINGS_VAR} to the "
                              f"folder holding AgentGym's mappings_train.json and mappings_test.json); this service "
                              f"serves {self.own.describe()}")
        path = self.mappings.get(game)
        where = f" ({path})" if path else ""
        raise UnknownTask(f"AgentGym ALFWorld game {game}{where} is not in this service's data; it serves {serves}")


def task_type_of(task_id: str, meta_task_type: object) -> str:
    """AgentGym's `task_type`: the game file's task and trial folders (``<task_type>/<trial>``)."""
    parts = task_id.split("/")
    if len(parts) >= 3:
        return "/".join(parts[-2:])
    return f"{meta_task_type}/{task_id}" if meta_task_type else task_id

