"""`HouseholdEnv`: ALFWorld-style household tasks (find, clean, heat, cool, place, look at).

Commands are ALFWorld's (`go to desk 1`, `take mug 1 from desk 1`, `move mug 1 to desk 1`,
`open`, `close`, `use`, `heat/cool/clean ... with ...`, `slice`, `examine`, `inventory`,
`look`, `help`). Valid actions are ALFWorld's admissible commands; reward 1 when the PDDL goal
holds (episode ends), progress from the task's subgoals, expert from the state.

Mode `parsing`:
* `strict` (default, ALFWorld's): a text command is carried out only when, with its outer
  blank space stripped, it is exactly one of the admissible commands, as TextWorld matches
  it; anything else answers "Nothing happens." and changes nothing (case, a final period,
  doubled spaces, the old `put X in/on Y` form all count as unknown).
* `lenient` (trajgym's friendlier variant): case, blank space and a final period are ignored,
  `put/place X in/on/into/onto Y` means the game's put command, and the admissible list adds
  `examine` every object in an open receptacle here and `go to` the receptacle already faced.
Tool calls map to the game's own command in both modes (`put` → `move X to Y`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from envs.actions import UnknownActionForm
from envs.base import Env, ModeSpec
from envs.household.data import HouseholdData, load_data
from envs.household.commands import NOTHING, Op, admissible, apply, look, put_command, won
from envs.household.expert import next_action
from envs.household.reward import ProgressTracker, step_reward
from envs.household.task import TaskInfo
from envs.household.world import DEFAULT_PUT_TEMPLATE, State, World
from envs.types import Action, StepResult, TaskSpec, ToolCall, ToolParam, ToolSpec

_PUT_VARIANTS = re.compile(r"^\s*(?:put|move|place)\s+(?P<obj>.+?)\s+(?:in/on|into|onto|in|on|to)\s+(?P<recep>.+?)\s*$",
                           re.IGNORECASE | re.DOTALL)
_SPACES = re.compile(r"\s+")


def _p(name: str, description: str) -> ToolParam:
    return ToolParam(name=name, description=description)


_OBJ = _p("obj", "an object, e.g. 'mug 1'")
_RECEP = _p("recep", "a receptacle, e.g. 'countertop 1'")


def _norm(text: str) -> str:
    return _SPACES.sub(" ", text.strip().rstrip(".").strip()).lower()


class HouseholdEnv(Env[HouseholdData]):
    name = "household"
    version = "0.1.0"
    description = ("ALFWorld-style text household: find objects, clean/heat/cool them, place them in "
                   "receptacles, or examine them under a lamp. Pure-Python engine for ALFWorld game files.")
    max_turns = 50
    modes: ClassVar[tuple[ModeSpec, ...]] = (
        ModeSpec("parsing", ("strict", "lenient"),
                 "strict: ALFWorld's exact command strings and admissible list; lenient: case, spaces, a final "
                 "period and the old `put X in/on Y` form accepted, `examine` any visible object, `go to` the "
                 "current receptacle"),
    )
    system_prompt = ("Interact with a household to solve a task. Each turn, give one command, e.g. "
                     "'go to countertop 1', 'open fridge 1', 'take apple 1 from countertop 1', "
                     "'move apple 1 to fridge 1', 'clean apple 1 with sinkbasin 1', 'heat apple 1 with microwave 1', "
                     "'cool apple 1 with fridge 1', 'use desklamp 1', 'examine apple 1', 'inventory', 'look'.")
    tools: ClassVar[list[ToolSpec]] = [
        ToolSpec(name="goto", description="Go to a receptacle.", params=[_RECEP], text_template="go to {recep}"),
        ToolSpec(name="open", description="Open a receptacle you are at.", params=[_RECEP], text_template="open {recep}"),
        ToolSpec(name="close", description="Close a receptacle you are at.", params=[_RECEP], text_template="close {recep}"),
        ToolSpec(name="take", description="Take an object from a receptacle you are at.", params=[_OBJ, _RECEP],
                 text_template="take {obj} from {recep}"),
        ToolSpec(name="put", description="Put the object you hold in or on a receptacle you are at.",
                 params=[_OBJ, _RECEP], text_template="move {obj} to {recep}"),
        ToolSpec(name="use", description="Use (switch on/off) an object such as a desklamp.", params=[_OBJ],
                 text_template="use {obj}"),
        ToolSpec(name="heat", description="Heat the object you hold with a microwave.", params=[_OBJ, _RECEP],
                 text_template="heat {obj} with {recep}"),
        ToolSpec(name="cool", description="Cool the object you hold with a fridge.", params=[_OBJ, _RECEP],
                 text_template="cool {obj} with {recep}"),
        ToolSpec(name="clean", description="Clean the object you hold with a sinkbasin.", params=[_OBJ, _RECEP],
                 text_template="clean {obj} with {recep}"),
        ToolSpec(name="slice", description="Slice an object with the knife you hold.",
                 params=[_OBJ, _p("knife", "the knife you hold, e.g. 'knife 1'")], text_template="slice {obj} with {knife}"),
        ToolSpec(name="examine", description="Examine a receptacle you are at or the object you hold.",
                 params=[_p("target", "a receptacle or object")], text_template="examine {target}"),
        ToolSpec(name="inventory", description="List what you carry.", text_template="inventory"),
        ToolSpec(name="look", description="Look around.", text_template="look"),
        ToolSpec(name="help", description="List the commands.", text_template="help"),
    ]

    world: World
    state: State
    goal_info: TaskInfo
    tracker: ProgressTracker

    @classmethod
    def load(cls, data_dir: Path | None = None) -> HouseholdData:
        return load_data(data_dir)

    # ----- episode --------------------------------------------------------------------
    def start(self, task: TaskSpec) -> str:
        self.world, self.goal_info = self.data.game(task.task_id)
        self.state = self.world.initial_state()
        self._ops: dict[str, Op] | None = None
        self.won = False
        self.tracker = ProgressTracker(self.goal_info)
        self.tracker.update(self.world, self.state, False)
        return f"{look(self.world, self.state, intro=True)}\n\nYour task is to: {self.world.task_text}"

    @property
    def lenient(self) -> bool:
        return self.data.modes.get("parsing", "strict") == "lenient"

    def parse_action(self, action: str | ToolCall | dict[str, Any]) -> Action:
        """Text keeps its exact words in strict mode (only outer blank space goes, as in TextWorld);
        a tool call becomes the game's own command."""
        if not isinstance(action, str):
            parsed = super().parse_action(action)
            return parsed.model_copy(update={"text": self.command(parsed)})
        try:
            parsed = super().parse_action(action)
        except UnknownActionForm:
            m = _PUT_VARIANTS.match(action)
            if m is None:
                raise
            parsed = Action(name="put", arguments={"obj": m["obj"].strip(), "recep": m["recep"].strip()}, text=action)
        return parsed if self.lenient else parsed.model_copy(update={"text": action.strip()})

    def command(self, action: Action) -> str:
        """The ALFWorld command an action's verb and arguments stand for (the game's own put form);
        lenient mode lower-cases the arguments and collapses their blank space."""
        norm = _norm if self.lenient else str.strip
        a = {k: norm(v) for k, v in action.arguments.items()}
        if action.name in ("inventory", "look", "help"):
            return action.name
        if action.name == "put":
            world: World | None = getattr(self, "world", None)
            return (put_command(world, a["obj"], a["recep"]) if world is not None
                    else DEFAULT_PUT_TEMPLATE.replace("{o}", a["obj"]).replace("{r}", a["recep"]))
        tool = self.parser().tools[action.name]
        return norm(tool.text_template.format(**a))

    def _admissible(self) -> dict[str, Op]:
        if self._ops is None:
            self._ops = admissible(self.world, self.state, extended=self.lenient)
        return self._ops

    def act(self, action: Action) -> StepResult:
        cmd = self.command(action) if self.lenient else action.text
        op = self._admissible().get(cmd)
        if op is None:
            return StepResult(observation=NOTHING, info={"command": cmd, "admissible": False})
        feedback = apply(self.world, self.state, op)
        self._ops = None
        if op.kind in ("look", "inventory", "help", "examine_r", "examine_o"):
            is_won = self.won  # observing changes no state
        else:
            is_won = won(self.world, self.state)
        self.won = is_won
        self.tracker.update(self.world, self.state, is_won)
        info: dict[str, Any] = {"command": cmd, "admissible": True, "won": is_won}
        if is_won:
            info["success"] = True
        return StepResult(observation=feedback, reward=step_reward(is_won), done=is_won, info=info)

    def invalid_action_feedback(self, error: UnknownActionForm) -> str:
        return NOTHING

    def valid_actions(self) -> list[str]:
        return list(self._admissible())

    def expert_action(self) -> str:
        return next_action(self.world, self.state, self.goal_info)

    def progress(self) -> float:
        return self.tracker.rate()

