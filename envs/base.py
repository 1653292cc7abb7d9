"""The env protocol every trajgym environment implements.

An environment is two classes:

* an `EnvData` subclass: the read-only resources shared by every session of a
  service (catalog, search index, databases, corpus) and the task list. It is
  built once by `Env.load(data_dir)`.
* an `Env` subclass: one episode's state. It implements `start(task)` (first
  observation) and `act(action)` (one parsed action → `StepResult`), optionally
  `valid_actions()`, `expert_action()` and `progress()`.

Everything generic — reading files under `--data-dir` (`DataDir`), named modes
(`ModeSpec`), resolving a task from id/seed/split, parsing text and tool calls
through `envs.actions`, turn limits, refusing steps after the end — lives here,
so an env never repeats it. The HTTP layer (`services`) and the gymnasium
adapter (`envs.gym_adapter`) only call the public methods below.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from envs.actions import ActionParser, UnknownActionForm
from envs.types import (
    Action,
    ActionFormat,
    EnvInfo,
    Observation,
    Split,
    StepResult,
    TaskSpec,
    ToolCall,
    ToolSpec,
)


class EnvError(Exception):
    """Base of the errors an env raises on bad use; the service maps them to HTTP statuses."""


class UnknownTask(EnvError):
    pass


class StepAfterEnd(EnvError):
    """`step()` after the episode ended (the service answers 409)."""


class NoExpert(EnvError):
    pass


class DataDirError(Exception):
    """A `--data-dir` that cannot be used: missing, not a folder, lacking the env's files, or
    holding a path that leads outside it. `trajgym serve` reports it as one `error:` line."""


class DataDir:
    """A data folder an env reads published files from. Every path goes through `path()`:
    absolute paths, `..` and symlinks that resolve outside the folder are refused."""

    def __init__(self, path: str | Path) -> None:
        given = Path(path)
        if not given.exists():
            raise DataDirError(f"data directory {given} does not exist")
        if not given.is_dir():
            raise DataDirError(f"data directory {given} is not a directory")
        self.root = given.resolve()

    def __str__(self) -> str:
        return str(self.root)

    def path(self, relative: str | Path) -> Path:
        """`root / relative`, resolved; raises `DataDirError` when it leads outside the folder."""
        rel = Path(relative)
        if rel.is_absolute():
            if not rel.is_relative_to(self.root):
                raise DataDirError(f"{rel} is not inside the data directory {self.root}")
            rel = rel.relative_to(self.root)
        if ".." in rel.parts:
            raise DataDirError(f"{rel} leaves the data directory {self.root}")
        resolved = (self.root / rel).resolve()
        if not resolved.is_relative_to(self.root):
            raise DataDirError(f"{rel} resolves outside the data directory {self.root} (a symlink out?)")
        return resolved

    def exists(self, relative: str | Path) -> bool:
        return self.path(relative).exists()

    def file(self, relative: str | Path) -> Path:
        """A regular file inside the folder."""
        resolved = self.path(relative)
        if not resolved.is_file():
            raise DataDirError(f"{relative}: no such file in the data directory {self.root}")
        return resolved

    def glob(self, pattern: str) -> list[Path]:
        """Sorted matches of `pattern`, each checked like `path()`."""
        return [self.path(p) for p in sorted(self.root.glob(pattern))]

    def sub(self, relative: str | Path) -> DataDir:
        """A checked subfolder as a `DataDir` of its own."""
        return DataDir(self.path(relative))


def as_data_dir(data_dir: str | Path | DataDir) -> DataDir:
    return data_dir if isinstance(data_dir, DataDir) else DataDir(data_dir)


class ModeError(ValueError):
    """An unknown mode axis or value (`trajgym serve ... --mode AXIS=VALUE`)."""


@dataclass(frozen=True)
class ModeSpec:
    """One axis of named variants of an env. `choices[0]` is the default and must be the
    published benchmark's behaviour; the others are opt-in, recorded with every run."""

    axis: str
    choices: tuple[str, ...]
    help: str = ""


class EnvData:
    """Shared, read-only resources of one env service, with its task list.

    Subclasses add their own fields (catalog, index, ...) and must fill `tasks`.
    """

    def __init__(self, tasks: Sequence[TaskSpec]) -> None:
        self.tasks: dict[str, TaskSpec] = {t.task_id: t for t in tasks}
        self._by_split: dict[Split, list[str]] = {s: [] for s in Split}
        for t in tasks:
            self._by_split[t.split].append(t.task_id)
        # the env's named modes in force (set by `Env.load_data`), and tasks left out of the
        # served splits, counted by reason (shown in /v1/info and the serve log)
        self.modes: dict[str, str] = {}
        self.withheld: dict[str, int] = {}
        self._digest: str | None = None

    def withhold(self, task_ids: Sequence[str], reason: str) -> None:
        """Take tasks out of the served task list (e.g. tasks that cannot be graded honestly)."""
        gone = {t for t in task_ids if t in self.tasks}
        if not gone:
            return
        for t in gone:
            del self.tasks[t]
        for split, ids in self._by_split.items():
            self._by_split[split] = [i for i in ids if i not in gone]
        self.withheld[reason] = self.withheld.get(reason, 0) + len(gone)
        self._digest = None

    def apply_modes(self, modes: Mapping[str, str]) -> None:
        """Hook for modes that change the shared data (e.g. which tasks are served). Default: none."""

    def digest_parts(self) -> Iterable[bytes]:
        """Hook: bytes identifying the env's own resources beyond the task list (gold answers, database
        files, a corpus), e.g. their sizes and content hashes. Keep it cheap: it runs once at load."""
        return ()

    def digest(self) -> str:
        """`sha256:<hex>` over every served task (id, split, instruction, meta) and `digest_parts()`;
        computed once (at load, by `Env.load_data`) and shown in /v1/info as `data_digest`."""
        cached = getattr(self, "_digest", None)
        if cached is None:
            h = hashlib.sha256()
            for task_id in sorted(self.tasks):
                t = self.tasks[task_id]
                h.update(json.dumps([t.task_id, t.split.value, t.instruction, t.meta], sort_keys=True, default=str,
                                    separators=(",", ":")).encode())
                h.update(b"\n")
            for part in self.digest_parts():
                h.update(part)
            cached = self._digest = "sha256:" + h.hexdigest()
        return cached

    def task_ids(self, split: Split | None = None) -> list[str]:
        if split is None:
            return list(self.tasks)
        return self._by_split[split]

    def counts(self) -> dict[Split, int]:
        return {s: len(ids) for s, ids in self._by_split.items()}

    def close(self) -> None:
        """Release shared resources (server connections, temporary files) at service shutdown."""


D = TypeVar("D", bound=EnvData)


class Env(ABC, Generic[D]):
    """One episode of an environment. Cheap to create; heavy data lives in `EnvData`."""

    name: ClassVar[str]
    version: ClassVar[str] = "0.1.0"
    description: ClassVar[str] = ""
    tools: ClassVar[list[ToolSpec]]
    action_formats: ClassVar[tuple[ActionFormat, ...]] = (ActionFormat.text, ActionFormat.tool)
    max_turns: ClassVar[int] = 30
    system_prompt: ClassVar[str] = ""
    # AgentGym's WebShop client reads `/create` as a bare integer; the others as {"id": n}.
    agentgym_create_returns_int: ClassVar[bool] = False
    # Where the service runs this env's calls (services/step_policy.py): "adaptive" (in worker threads
    # until measured cheap, then on the event loop, back to threads when one turns slow), "thread", "inline".
    step_policy: ClassVar[str] = "adaptive"
    # False: steps are trivial and always run on the event loop (the same as step_policy = "inline").
    step_in_thread: ClassVar[bool] = True
    # Steps that may wait seconds on another process or server (not on the CPU): the service then runs
    # each concurrent step in its own thread, so that slow sessions never queue the others.
    long_steps: ClassVar[bool] = False
    # Named variants (grading, observation, parsing, ...); each axis' first choice is the published one.
    modes: ClassVar[tuple[ModeSpec, ...]] = ()

    def __init__(self, data: D) -> None:
        self.data = data
        self.task: TaskSpec | None = None
        self.turns = 0
        self.done = False
        self.total_reward = 0.0
        self.last_observation = ""

    # ----- what an env implements -------------------------------------------------
    @classmethod
    @abstractmethod
    def load(cls, data_dir: DataDir | None = None) -> D:
        """Build the shared data: from `data_dir` (published formats) or the built-in set.
        Read files only through `data_dir` (a checked `DataDir`); raise `DataDirError` when
        the folder lacks what the env needs."""

    @abstractmethod
    def start(self, task: TaskSpec) -> str:
        """Set up the episode for `task` and return the first observation."""

    @abstractmethod
    def act(self, action: Action) -> StepResult:
        """Apply one parsed action. Invalid-in-state actions return feedback, not errors."""

    def valid_actions(self) -> list[str] | None:
        """The currently admissible actions, where the env can list them."""
        return None

    def expert_action(self) -> str:
        """The oracle's next action (text form). Raise `NoExpert` if the env has none."""
        raise NoExpert(f"{self.name} has no expert")

    def progress(self) -> float | None:
        """AgentBoard-style progress rate in [0, 1], or None where the env has no subgoals."""
        return None

    def close(self) -> None:
        """Release per-session resources (temporary files, connections). Idempotent."""

    def invalid_action_feedback(self, error: UnknownActionForm) -> str:
        """Observation for text that matches none of the env's action forms."""
        return f"Invalid action: {error}"

    # ----- generic machinery --------------------------------------------------------
    @classmethod
    def resolve_modes(cls, requested: Mapping[str, str] | None = None) -> dict[str, str]:
        """Every axis with its value: the requested one, else the default (published) one."""
        specs = {m.axis: m for m in cls.modes}
        resolved = {m.axis: m.choices[0] for m in cls.modes}
        for axis, value in (requested or {}).items():
            spec = specs.get(axis)
            if spec is None:
                known = ", ".join(specs) or "none"
                raise ModeError(f"{cls.name} has no mode {axis!r} (its modes: {known})")
            if value not in spec.choices:
                raise ModeError(f"{cls.name} mode {axis} must be one of {', '.join(spec.choices)}, not {value!r}")
            resolved[axis] = value
        return resolved

    @classmethod
    def load_data(cls, data_dir: str | Path | DataDir | None = None, modes: Mapping[str, str] | None = None) -> D:
        """The one way to build shared data: checks the folder and the modes, loads, applies the modes."""
        resolved = cls.resolve_modes(modes)
        data = cls.load(None if data_dir is None else as_data_dir(data_dir))
        data.modes = resolved
        data.apply_modes(resolved)
        data.digest()
        return data

    @classmethod
    def has_expert(cls) -> bool:
        return cls.expert_action is not Env.expert_action

    @classmethod
    def has_progress(cls) -> bool:
        return cls.progress is not Env.progress

    @classmethod
    def parser(cls) -> ActionParser:
        cached = cls.__dict__.get("_parser")
        if cached is None:
            cached = ActionParser(cls.tools)
            cls._parser = cached  # type: ignore[attr-defined]
        return cached

    @classmethod
    def info(cls, data: EnvData) -> EnvInfo:
        return EnvInfo(
            name=cls.name,
            version=cls.version,
            description=cls.description,
            action_formats=list(cls.action_formats),
            tools=[t.json_schema() for t in cls.tools],
            text_actions=cls.parser().forms(),
            max_turns=cls.max_turns,
            has_expert=cls.has_expert(),
            has_progress=cls.has_progress(),
            task_counts=data.counts(),
            system_prompt=cls.system_prompt,
            modes=dict(data.modes),
            mode_choices={m.axis: list(m.choices) for m in cls.modes},
            withheld_tasks=dict(data.withheld),
            data_digest=data.digest(),
        )

    def resolve_task(self, task_id: str | None = None, seed: int | None = None, split: Split | None = None) -> TaskSpec:
        if task_id is not None:
            task = self.data.tasks.get(task_id)
            if task is None:
                raise UnknownTask(f"unknown task id {task_id!r}")
            return task
        ids = self.data.task_ids(split)
        if not ids:
            raise UnknownTask(f"no tasks in split {split.value if split else 'any'}")
        return self.data.tasks[ids[(seed or 0) % len(ids)]]

    def reset(self, task_id: str | None = None, seed: int | None = None, split: Split | None = None) -> Observation:
        task = self.resolve_task(task_id, seed, split)
        self.task = task
        self.turns = 0
        self.done = False
        self.total_reward = 0.0
        self.last_observation = self.start(task)
        return Observation(
            task_id=task.task_id,
            instruction=task.instruction,
            observation=self.last_observation,
            valid_actions=self.valid_actions(),
        )

    def parse_action(self, action: str | ToolCall | dict[str, Any]) -> Action:
        """Text or tool call → `Action`; raises `ActionParseError` when malformed."""
        return self.parser().parse(action)

    def step(self, action: str | ToolCall | dict[str, Any]) -> StepResult:
        """Parse and apply one action. Raises `StepAfterEnd` after the end, `ActionParseError`
        for an empty/oversized action or a malformed tool call. Text that names no verb is
        answered with feedback (a turn is used, nothing changes)."""
        if self.task is None:
            raise EnvError("reset() must be called before step()")
        if self.done:
            raise StepAfterEnd("the episode is finished; reset or open a new session")
        try:
            parsed = self.parse_action(action)
        except UnknownActionForm as err:
            result = StepResult(
                observation=self.invalid_action_feedback(err),
                valid_actions=self.valid_actions(),
                info={"invalid_action": True},
            )
        else:
            result = self.act(parsed)
        if result.valid_actions is None:
            result.valid_actions = self.valid_actions()
        self.turns += 1
        if not result.done and self.turns >= self.max_turns:
            result.done = True
            result.truncated = True
            result.info.setdefault("success", False)
        self.done = result.done
        self.total_reward += result.reward
        self.last_observation = result.observation
        progress = self.progress()
        if progress is not None:
            result.info.setdefault("progress", progress)
        return result
