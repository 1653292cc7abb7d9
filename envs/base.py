"""The env protocol every trajgym environment implements.

An environment is two classes:

* an `EnvData` subclass: the read-only resources shared by every session of a
  service (catalog, search index, databases, corpus) and the task list. It is
  built once by `Env.load(data_dir)`.
* an `Env` subclass: one episode's state. It implements `start(task)` (first
  observation) and `act(action)` (one parsed action → `StepResult`), optionally
  `valid_actions()`, `expert_action()` and `progress()`.

Everything generic — resolving a task from id/seed/split, parsing text and tool
calls through `envs.actions`, turn limits, refusing steps after the end — lives
here, so an env never repeats it. The HTTP layer (`services`) and the gymnasium
adapter (`envs.gym_adapter`) only call the public methods below.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
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


class EpisodeFinished(EnvError):
    pass


class NoExpert(EnvError):
    pass


class EnvData:
    """Shared, read-only resources of one env service, with its task list.

    Subclasses add their own fields (catalog, index, ...) and must fill `tasks`.
    """

    def __init__(self, tasks: Sequence[TaskSpec]) -> None:
        self.tasks: dict[str, TaskSpec] = {t.task_id: t for t in tasks}
        self._by_split: dict[Split, list[str]] = {s: [] for s in Split}
        for t in tasks:
            self._by_split[t.split].append(t.task_id)

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
    # CPU-bound steps run in a worker thread in the service; trivial envs may opt out.
    step_in_thread: ClassVar[bool] = True

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
    def load(cls, data_dir: Path | None = None) -> D:
        """Build the shared data: from `data_dir` (published formats) or the built-in set."""

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
        """Parse and apply one action. Raises `EpisodeFinished` after the end, `ActionParseError`
        for an empty/oversized action or a malformed tool call. Text that names no verb is
        answered with feedback (a turn is used, nothing changes)."""
        if self.task is None:
            raise EnvError("reset() must be called before step()")
        if self.done:
            raise EpisodeFinished("the episode is finished; reset or open a new session")
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
