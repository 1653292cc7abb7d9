"""A tiny deterministic env for testing the generic layers: reach a target number.

Tools: ``add[{amount}]`` (integer 1..9) and ``finish[{answer}]``. The expert adds the
largest step that does not overshoot, then finishes; progress is current/target.
"""

from __future__ import annotations

from pathlib import Path

from envs.base import DataDir, DataDirError, Env, EnvData
from envs.types import Action, Split, StepResult, TaskSpec, ToolParam, ToolSpec


class CounterData(EnvData):
    def __init__(self) -> None:
        tasks = []
        for i in range(30):
            split = Split.test if i < 10 else Split.dev if i < 15 else Split.train
            target = 5 + (i * 7) % 23
            tasks.append(TaskSpec(task_id=f"counter-{i}", split=split, instruction=f"Reach {target}, then finish with it.",
                                  meta={"target": target}))
        super().__init__(tasks)


class CounterEnv(Env[CounterData]):
    name = "counter"
    description = "Reach a target number by adding 1..9, then finish."
    max_turns = 20
    step_in_thread = True
    tools = [
        ToolSpec(name="add", description="Add an integer 1..9.", params=[ToolParam(name="amount")], text_template="add[{amount}]"),
        ToolSpec(name="finish", description="Finish with your answer.", params=[ToolParam(name="answer")], text_template="finish[{answer}]"),
    ]

    @classmethod
    def load(cls, data_dir: Path | None = None) -> CounterData:
        return CounterData()

    def start(self, task: TaskSpec) -> str:
        self.value = 0
        self.target = int(task.meta["target"])
        return f"{task.instruction} Current value: 0."

    def act(self, action: Action) -> StepResult:
        if action.name == "add":
            amount = action.arguments["amount"]
            if not amount.isdigit() or not 1 <= int(amount) <= 9:
                return StepResult(observation="Nothing happens. Amount must be 1..9.")
            self.value += int(amount)
            return StepResult(observation=f"Current value: {self.value}.")
        won = action.arguments["answer"].strip() == str(self.target) and self.value == self.target
        return StepResult(observation="Correct!" if won else "Wrong.", reward=1.0 if won else 0.0, done=True, info={"success": won})

    def valid_actions(self) -> list[str]:
        return [f"add[{k}]" for k in range(1, 10)] + [f"finish[{self.value}]"]

    def expert_action(self) -> str:
        if self.value < self.target:
            return f"add[{min(9, self.target - self.value)}]"
        return f"finish[{self.target}]"

    def progress(self) -> float:
        return min(1.0, self.value / self.target)


class InlineCounterEnv(CounterEnv):
    """The same env declaring its steps trivial: they run on the event loop (bench baseline)."""

    step_in_thread = False


class DataCounterEnv(CounterEnv):
    """The same env reading a data folder: it needs `counter.txt` there (`DataDirError` otherwise)."""

    @classmethod
    def load(cls, data_dir: DataDir | None = None) -> CounterData:
        if data_dir is None:
            raise DataDirError("data-counter needs --data-dir")
        data_dir.file("counter.txt")
        return CounterData()
