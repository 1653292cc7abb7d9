"""ALFWorld engine traces (`alfworld_traces.jsonl`) replayed through the household env service.

Each line is one sequence the real ALFWorld engine played (alfworld 0.4.2 + textworld 1.7.0,
`AlfredDemangler(shuffle=False)`, no step cap): the state after `reset()` and every step's
observation, admissible commands (sorted), won and done. `check` starts the household service
in-process (`create_app(HouseholdEnv, data=...)` under uvicorn on a free loopback port, data
from `data_root/alfworld`, default modes) and replays every sequence over the public v1 API
with one HTTP client: `POST /v1/sessions {task_id}` (task id = game path without
`json_2.1.1/`), `GET /v1/sessions/{id}/actions` for the opening list, `POST .../step {action}`
for each step (its answer carries the list after the step), `DELETE` at the end.

Cases: one per sequence for its initial state (observation and admissible set) plus one per
step (observation, admissible set, won = `info.success` or a positive reward, done); a case
agrees only when every field does. Steps left after the service ended the episode early, or
that it refused, count as disagreeing. The references had no step cap (ALFWorld's own configs
cap episodes at 50), so the service runs the env with the turn limit lifted.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from conformance.report import FileResult
from envs.household.env import HouseholdEnv
from services.app import create_app
from services.ports import free_port

GAME_PREFIX = "json_2.1.1/"


class _UncappedHouseholdEnv(HouseholdEnv):
    """The household env with no turn limit, like the traces' `max_episode_steps=10**6`."""

    max_turns = 10**9


@contextlib.contextmanager
def household_service(data_dir: Path) -> Iterator[str]:
    """The household service on a free loopback port (uvicorn in a thread); yields its base URL."""
    data = _UncappedHouseholdEnv.load_data(data_dir)
    port = free_port()
    config = uvicorn.Config(create_app(_UncappedHouseholdEnv, data=data), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="alfworld-conformance", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the household service did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def task_id(game: str) -> str:
    return game.removeprefix(GAME_PREFIX)


def _differences(ours: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """The fields that differ; an admissible mismatch is shown as the commands missing / extra."""
    diff: dict[str, Any] = {}
    for key, want in expected.items():
        got = ours.get(key)
        if key == "admissible":
            got_set, want_set = set(got or ()), set(want)
            if got is None or got_set != want_set:
                diff[key] = {"missing": sorted(want_set - got_set), "extra": sorted(got_set - want_set)}
        elif got != want:
            diff[key] = {"ours": got, "expected": want}
    return diff


class _Replay:
    """Replays sequences on one client and adds their cases to one result."""

    def __init__(self, client: httpx.Client, result: FileResult) -> None:
        self.client = client
        self.result = result

    def _case(self, ours: dict[str, Any], expected: dict[str, Any], where: dict[str, Any]) -> None:
        diff = _differences(ours, expected)
        self.result.add(not diff, {**where, "differences": diff})

    def _fail_rest(self, steps: list[dict[str, Any]], start: int, where: dict[str, Any], reason: str) -> None:
        for i in range(start, len(steps)):
            self.result.add(False, {**where, "step": i, "action": steps[i].get("action"), "error": reason})

    def sequence(self, line: dict[str, Any]) -> None:
        where = {"game": line.get("game"), "sequence": line.get("sequence")}
        steps: list[dict[str, Any]] = list(line.get("steps") or [])
        initial = line.get("initial") or {}
        created = self.client.post("/v1/sessions", json={"task_id": task_id(str(line.get("game", "")))})
        if created.status_code != 201:
            self.result.add(False, {**where, "step": "initial", "error": f"HTTP {created.status_code}: {created.text[:300]}"})
            self._fail_rest(steps, 0, where, "no session")
            return
        session = created.json()["session_id"]
        try:
            listed = self.client.get(f"/v1/sessions/{session}/actions").json().get("valid_actions")
            self._case({"observation": created.json()["observation"], "admissible": listed},
                       {"observation": initial.get("observation"), "admissible": initial.get("admissible", [])},
                       {**where, "step": "initial"})
            for i, step in enumerate(steps):
                answer = self.client.post(f"/v1/sessions/{session}/step", json={"action": step["action"]})
                if answer.status_code != 200:
                    self._fail_rest(steps, i, where, f"HTTP {answer.status_code}: {answer.text[:300]}")
                    return
                body = answer.json()
                won = bool(body.get("info", {}).get("success")) or float(body.get("reward") or 0.0) > 0.0
                ours = {"observation": body["observation"], "admissible": body.get("valid_actions"),
                        "won": won, "done": bool(body["done"])}
                expected = {"observation": step["observation"], "admissible": step["admissible"],
                            "won": bool(step["won"]), "done": bool(step["done"])}
                self._case(ours, expected, {**where, "step": i, "action": step["action"], "kind": step.get("kind")})
                if ours["done"] and not expected["done"]:
                    self._fail_rest(steps, i + 1, where, "the service ended the episode before the reference did")
                    return
        finally:
            self.client.delete(f"/v1/sessions/{session}")


def check(lines: Iterable[dict[str, Any]], data_root: Path) -> FileResult:
    """Replay every trace line through the household service on the games in `data_root/alfworld`."""
    result = FileResult()
    with household_service(Path(data_root) / "alfworld") as url, httpx.Client(base_url=url, timeout=60.0) as client:
        replay = _Replay(client, result)
        for line in lines:
            replay.sequence(line)
    return result
