"""AgentGym's own clients and Evaluator, unmodified (../shared/peers/agentgym), against trajgym's four envs.

For each env: the client runs create → reset(idx) → observe → step … → done, and
`Evaluator.eval` runs the same task through `BaseTask`, with a scripted agent that says what
trajgym's expert says on a v1 session of the same task. Checked: rewards, done flags, that
reset(idx) opened the task AgentGym means by idx (WebShop against the conformance vectors'
shuffled goal order, ALFWorld against AgentGym's mapping files for all 200 test games), and
the failure paths (empty action, index out of range, step after done). AgentGym's known bug:
`Evaluator.eval` with several indices raises ValueError, so it is called one index at a time.

Skips, saying why, when the peers or their imports (requests, numpy, transformers, torch,
openai) are missing; real-data parts skip when ../shared/data is absent.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from envs.registry import load_class
from services.app import create_app
from tests.support.server import running_server

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PEERS = SHARED / "peers" / "agentgym"
MAPPINGS = PEERS / "servers" / "alfworld"
WEBSHOP_DATA = SHARED / "data" / "webshop"
ALFWORLD_DATA = SHARED / "data" / "alfworld"
SQL_DATA = SHARED / "data" / "sql"
WEBSHOP_VECTORS = SHARED / "conformance" / "webshop_reward.jsonl"

if not (PEERS / "agentenv").is_dir():
    pytest.skip(f"AgentGym's code is not at {PEERS} (see shared/peers/README.md)", allow_module_level=True)
for _module in ("requests", "numpy", "transformers", "torch", "openai"):
    pytest.importorskip(_module, reason=f"AgentGym's agentenv needs {_module} (pyproject test extra)")
sys.path.insert(0, str(PEERS))

from agentenv.controller import APIAgent, Evaluator  # noqa: E402
from agentenv.envs import (  # noqa: E402
    AlfWorldEnvClient,
    AlfWorldTask,
    SearchQAEnvClient,
    SearchQATask,
    SqlGymEnvClient,
    SqlGymTask,
    WebshopEnvClient,
    WebshopTask,
)

SQL_BASE, QA_BASE, ALF_BASE = 10962, 221328, 2620  # where trajgym's own tasks start in AgentGym's numbering


# ----- servers ---------------------------------------------------------------------------
def _serve(name: str, data_dir: Path | None = None) -> Iterator[str]:
    with running_server(create_app(load_class(name), data_dir=data_dir)) as url:
        yield url


@pytest.fixture(scope="module")
def webshop_url() -> Iterator[str]:
    yield from _serve("webshop", WEBSHOP_DATA if WEBSHOP_DATA.is_dir() else None)


@pytest.fixture(scope="module")
def household_url() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRAJGYM_AGENTGYM_ALFWORLD_MAPPINGS", str(MAPPINGS))
        yield from _serve("household", ALFWORLD_DATA if ALFWORLD_DATA.is_dir() else None)


@pytest.fixture(scope="module")
def sql_url() -> Iterator[str]:
    yield from _serve("sql")


@pytest.fixture(scope="module")
def qa_url() -> Iterator[str]:
    yield from _serve("qa")


def _tasks(url: str) -> list[dict[str, Any]]:
    return httpx.get(url + "/v1/tasks", params={"limit": 10_000}, timeout=30).json()["tasks"]


# ----- the scripted agent: trajgym's expert on a v1 session of the same task ---------------
def react(action: str) -> str:
    return f"Thought:\nI follow the plan.\n\nAction:\n{action}"


def sql_reply(action: str) -> str:
    assert action.startswith("execute["), action
    return f"Thought: The gold query answers it.\n\nAction: ```sql\n{action[len('execute['):-1]}\n```"


def search_r1(action: str) -> str:
    verb, _, arg = action.partition("[")
    tag = "answer" if verb == "finish" else "search"
    return f"<think>I follow the plan.</think>\n<{tag}>{arg[:-1]}</{tag}>"


class ExpertAgent(APIAgent):
    """An `APIAgent` without a model: each reply is the expert's next action on a mirror v1 session."""

    def __init__(self, url: str, render: Callable[[str], str]) -> None:  # no OpenAI client
        self.url, self.render = url, render
        self.session: str | None = None
        self.replies: list[str] = []

    def start(self, task_id: str) -> "ExpertAgent":
        self.session = httpx.post(self.url + "/v1/sessions", json={"task_id": task_id}, timeout=30).json()["session_id"]
        self.replies = []
        return self

    def next_action(self) -> str:
        action = httpx.get(f"{self.url}/v1/sessions/{self.session}/expert", timeout=30).json()["action"]
        httpx.post(f"{self.url}/v1/sessions/{self.session}/step", json={"action": action}, timeout=30).raise_for_status()
        return action

    def generate(self, conversation: list[Any]) -> tuple[str, None]:
        reply = self.render(self.next_action())
        self.replies.append(reply)
        return reply, None


def run_episode(client: Any, agent: ExpertAgent, max_steps: int = 60) -> list[tuple[float, bool]]:
    outcomes = []
    for _ in range(max_steps):
        out = client.step(agent.generate([])[0])
        outcomes.append((out.reward, out.done))
        if out.done:
            break
    return outcomes


def evaluate(task: Any, agent: ExpertAgent, idx: int, max_rounds: int = 60) -> Any:
    return Evaluator(agent, [task]).eval(max_rounds=max_rounds, idxs=[idx])  # one index: AgentGym's ValueError bug


def not_served(url: str, path: str, body: dict[str, Any]) -> str:
    r = httpx.post(url + path, json=body, timeout=30)
    assert r.status_code == 404, (path, body, r.status_code, r.text)
    return str(r.json()["detail"])


# ----- WebShop ------------------------------------------------------------------------------
def test_webshop_client_episode_and_evaluator(webshop_url: str) -> None:
    tasks = {t["task_id"]: t for t in _tasks(webshop_url)}
    idx = 17
    client = WebshopEnvClient(env_server_base=webshop_url, data_len=len(tasks), timeout=60)
    assert isinstance(client.env_id, int)
    client.reset(idx)
    assert client.observe().startswith("WebShop [SEP] Instruction: [SEP] ")
    instruction = httpx.get(webshop_url + "/instruction_text", params={"env_idx": client.env_id}).json()
    assert instruction == "Instruction: " + tasks[f"webshop-{idx}"]["instruction"]
    agent = ExpertAgent(webshop_url, react).start(f"webshop-{idx}")
    outcomes = run_episode(client, agent)
    assert outcomes[-1] == (1.0, True) and all(o == (0.0, False) for o in outcomes[:-1])

    task = WebshopTask(client_args={"env_server_base": webshop_url, "data_len": len(tasks), "timeout": 60}, n_clients=1)
    result = evaluate(task, ExpertAgent(webshop_url, react).start(f"webshop-{idx}"), idx)
    assert result.score == 1.0 and result.success == 1.0
    assert result.experiences[0].conversation[-1]["content"].startswith("Thank you for shopping with us!")


def test_webshop_failure_paths(webshop_url: str) -> None:
    client = WebshopEnvClient(env_server_base=webshop_url, data_len=1, timeout=60)
    client.reset(3)
    page = client.observe()
    for reply in ("Thought:\nnothing to do\n\nAction:\n", "Thought:\nhm\n\nAction:\nfly[to the moon]",
                  "Thought:\nhm\n\nAction:\nclick[Buy Now]"):  # empty, unparseable, impossible here
        out = client.step(reply)
        assert (out.state, out.reward, out.done) == (page, 0.0, False), reply
    raw = httpx.post(webshop_url + "/step", json={"env_idx": client.env_id, "action": ""})
    assert raw.status_code == 200 and raw.json() == {"state": page, "reward": 0.0, "done": False, "info": None}
    # the whole episode, then a step after the purchase: the done page stays, reward 0, not done
    agent = ExpertAgent(webshop_url, react).start("webshop-3")
    assert run_episode(client, agent)[-1][1] is True
    done_page = client.observe()
    assert client.step(react("click[Buy Now]")).__dict__ == {"state": done_page, "reward": 0.0, "done": False}
    detail = not_served(webshop_url, "/reset", {"env_idx": client.env_id, "session_id": 10**6})
    assert re.search(r"serves WebShop goals 0–\d+", detail), detail
    with pytest.raises(AssertionError):
        client.reset(10**6)  # the client asserts a 200: it stops instead of looping


def test_webshop_available_actions_and_extra_routes(webshop_url: str) -> None:
    index = httpx.post(webshop_url + "/create").json()
    httpx.post(webshop_url + "/reset", json={"env_idx": index, "session_id": 0}).raise_for_status()
    get = lambda path: httpx.get(webshop_url + path, params={"env_idx": index})  # noqa: E731
    assert get("/available_actions").json() == {"has_search_bar": True, "clickables": ["search"]}
    state = get("/state").json()
    assert set(state) == {"url", "html", "instruction_text"} and state["instruction_text"].startswith("Instruction: ")
    httpx.post(webshop_url + "/step", json={"env_idx": index, "action": "search[shirt]"}).raise_for_status()
    after = get("/available_actions").json()
    assert after["has_search_bar"] is False and after["clickables"][0] == "back to search"
    assert all(c == c.lower() for c in after["clickables"])
    assert httpx.get(webshop_url + "/").json() == "ok"
    assert httpx.get(webshop_url + "/list_envs").json() == []  # ids are private: none are listed


@pytest.mark.skipif(not (WEBSHOP_DATA.is_dir() and WEBSHOP_VECTORS.is_file()), reason="needs ../shared/data/webshop and "
                    "../shared/conformance/webshop_reward.jsonl")
def test_webshop_session_id_is_webshops_goal(webshop_url: str) -> None:
    """session_id N opens the goal WebShop's SimServer puts at N (the vectors' shuffled_index)."""
    goals: dict[int, str] = {}
    with WEBSHOP_VECTORS.open() as fh:
        for line in fh:
            v = json.loads(line)
            goals.setdefault(v["shuffled_index"], v["goal"]["instruction_text"])
    sample = sorted(goals)[::4]  # a quarter of the goals the vectors name (all 3,967 agree: ~11 s here)
    index = httpx.post(webshop_url + "/create").json()
    with httpx.Client(base_url=webshop_url, timeout=30) as http:
        for n in sample:
            http.post("/reset", json={"env_idx": index, "session_id": n}).raise_for_status()
            got = http.get("/instruction_text", params={"env_idx": index}).json()
            assert got == "Instruction: " + goals[n], n


# ----- ALFWorld -----------------------------------------------------------------------------
def _alf_index(url: str) -> tuple[int, str]:
    """AgentGym's first test game when the real data is served, else trajgym's first own game."""
    if ALFWORLD_DATA.is_dir():
        first = json.loads((MAPPINGS / "mappings_test.json").read_text())[0]
        return first["item_id"], f"valid_train/{first['task_type']}/{first['task_id']}"
    return ALF_BASE, _tasks(url)[0]["task_id"]


def test_alfworld_client_episode_and_evaluator(household_url: str) -> None:
    game, task_id = _alf_index(household_url)
    client = AlfWorldEnvClient(env_server_base=household_url, data_len=200, timeout=60)
    assert isinstance(client.env_id, int)
    reset = client.reset(game)
    assert set(reset) == {"id", "observation", "available_actions", "task_type"}
    assert reset["task_type"].endswith("/".join(task_id.split("/")[-2:]))  # <task folder>/<trial folder>
    instruction = next(t["instruction"] for t in _tasks(household_url) if t["task_id"] == task_id)
    assert reset["observation"].startswith("You are in the middle of a room.")
    assert reset["observation"].endswith(f"\nYour task is to: {instruction}")
    assert "\n\n" not in reset["observation"]  # AgentGym joins the paragraphs with one newline
    assert client.observe() == f"{reset['observation']}\nAVAILABLE ACTIONS: {','.join(reset['available_actions'])}"
    outcomes = run_episode(client, ExpertAgent(household_url, react).start(task_id))
    assert outcomes[-1] == (1.0, True) and all(o == (0.0, False) for o in outcomes[:-1])

    task = AlfWorldTask(client_args={"env_server_base": household_url, "data_len": 200, "timeout": 60})
    result = evaluate(task, ExpertAgent(household_url, react).start(task_id), game)
    assert result.score == 1.0 and result.success == 1.0


def test_alfworld_failure_paths(household_url: str) -> None:
    game, task_id = _alf_index(household_url)
    client = AlfWorldEnvClient(env_server_base=household_url, data_len=1, timeout=60)
    reset = client.reset(game)
    for reply in ("Thought:\nwait\n\nAction:\n", "Thought:\nhm\n\nAction:\nfly to the moon"):
        out = client.step(reply)
        assert (out.state, out.reward, out.done) == ("Nothing happens.", 0.0, False), reply
    assert client.info["available_actions"] == reset["available_actions"]
    run_episode(client, ExpertAgent(household_url, react).start(task_id))
    after = httpx.post(household_url + "/step", json={"id": client.env_id, "action": "look"})
    assert after.status_code == 200
    assert after.json() == {"error": f"The task with environment {client.env_id} has finished."}
    with pytest.raises(KeyError):
        client.step(react("look"))  # as against AgentGym's own server
    detail = not_served(household_url, "/reset", {"id": client.env_id, "game": 10**6, "world_type": "Text"})
    assert "out of range" in detail and "2620" in detail
    with pytest.raises(AssertionError):
        client.reset(10**6)
    assert httpx.get(household_url + "/").json() == "This is environment AlfWorld."


@pytest.mark.skipif(not ALFWORLD_DATA.is_dir(), reason="needs ../shared/data/alfworld")
def test_alfworld_test_items_open_agentgyms_games(household_url: str) -> None:
    """AgentGym's 200 test items (2420–2619) open the games its mapping names; train items are not served here."""
    mapping = json.loads((MAPPINGS / "mappings_test.json").read_text())
    index = httpx.post(household_url + "/create").json()["id"]
    with httpx.Client(base_url=household_url, timeout=30) as http:
        for entry in mapping:
            r = http.post("/reset", json={"id": index, "game": entry["item_id"], "world_type": "Text"})
            assert r.status_code == 200, (entry, r.text)
            assert r.json()["task_type"] == f"{entry['task_type']}/{entry['task_id']}"
        detail = http.get("/detail", params={"id": index}).json()
        assert detail["game"] == mapping[-1]["item_id"] and detail["done"] is False
    train_item = not_served(household_url, "/reset", {"id": index, "game": 5, "world_type": "Text"})
    assert "is not in this service's data" in train_item and "2420–2619" in train_item


# ----- SqlGym -------------------------------------------------------------------------------
def test_sqlgym_client_episode_and_evaluator(sql_url: str) -> None:
    tasks = _tasks(sql_url)
    k = next(i for i, t in enumerate(tasks) if t["meta"]["kind"] == "query")
    client = SqlGymEnvClient(env_server_base=sql_url, data_len=len(tasks), timeout=60)
    assert isinstance(client.env_id, int)
    observation, none = client.reset(SQL_BASE + k)
    assert none is None and observation == client.observe()
    assert re.match(r"^\w+ contains tables such as ", observation)
    assert observation.endswith("\n\n" + tasks[k]["instruction"])
    outcomes = run_episode(client, ExpertAgent(sql_url, sql_reply).start(tasks[k]["task_id"]))
    assert outcomes == [(1.0, True)]  # one step: the SQL ends the episode

    task = SqlGymTask(client_args={"env_server_base": sql_url, "data_len": len(tasks), "timeout": 60}, n_clients=1)
    result = evaluate(task, ExpertAgent(sql_url, sql_reply).start(tasks[k]["task_id"]), SQL_BASE + k)
    assert result.score == 1.0 and result.success == 1.0


def test_sqlgym_failure_paths(sql_url: str) -> None:
    tasks = _tasks(sql_url)
    k = next(i for i, t in enumerate(tasks) if t["meta"]["kind"] == "query")
    client = SqlGymEnvClient(env_server_base=sql_url, data_len=1, timeout=60)
    client.reset(SQL_BASE + k)
    agent = ExpertAgent(sql_url, sql_reply).start(tasks[k]["task_id"])
    gold = agent.generate([])[0]
    empty = client.step("Thought: none\n\nAction: ```sql\n```")
    assert (empty.state, empty.reward, empty.done) == ("[]", 0.0, True)
    wrong = client.step("Action: ```sql\nSELECT * FROM no_such_table\n```")  # a step after the end runs again
    assert "no_such_table" in wrong.state and (wrong.reward, wrong.done) == (0.0, True)
    right = client.step(gold)
    assert (right.reward, right.done) == (1.0, True) and right.state.startswith("[(")
    table = re.search(r"Table (\w+) has columns", client.observe())[1]  # type: ignore[index]
    long = client.step(f"Action: ```sql\nSELECT * FROM {table}\n```").state
    assert len(long) == 103 and long.endswith("...")  # SqlGym cuts the state at 100 characters
    bird = not_served(sql_url, "/reset", {"env_idx": client.env_id, "item_id": 9500})
    assert "BIRD dev" in bird and f"{SQL_BASE}–{SQL_BASE + len(tasks) - 1}" in bird, bird
    beyond = not_served(sql_url, "/reset", {"env_idx": client.env_id, "item_id": SQL_BASE + len(tasks)})
    assert "out of range" in beyond
    with pytest.raises(AssertionError):
        client.reset(5)
    assert httpx.get(sql_url + "/").json() == "ok"


@pytest.mark.skipif(not SQL_DATA.is_dir(), reason="needs ../shared/data/sql")
def test_sqlgym_on_real_data_grades_with_the_sql_env() -> None:
    """Spider questions and DB-bench data changes through SqlGym's one step: the gold SQL scores 1, a wrong one 0."""
    with running_server(create_app(load_class("sql"), data_dir=SQL_DATA)) as url:
        tasks = _tasks(url)
        client = SqlGymEnvClient(env_server_base=url, data_len=len(tasks), timeout=60)
        picked: dict[tuple[str, str], int] = {}
        for k, task in enumerate(tasks):
            kind = (task["meta"]["source"], task["meta"]["kind"])
            if kind == ("dbbench", "query") or picked.get(kind, 0) >= 6:
                continue  # DB-bench questions have no gold SQL to send (their expert submits the label)
            picked[kind] = picked.get(kind, 0) + 1
            observation, _ = client.reset(SQL_BASE + k)
            assert observation.endswith("\n\n" + task["instruction"])
            reply = sql_reply(ExpertAgent(url, sql_reply).start(task["task_id"]).next_action())
            right = client.step(reply)
            assert (right.reward, right.done) == (1.0, True), task
            wrong = client.step("Action: ```sql\nSELECT 1 WHERE 0\n```")  # again, from a fresh copy of the database
            assert (wrong.reward, wrong.done) == (0.0, True), task
        assert picked == {("spider", "query"): 6, ("dbbench", "mutation"): 6}


# ----- SearchQA -----------------------------------------------------------------------------
def test_searchqa_client_episode_and_evaluator(qa_url: str) -> None:
    tasks = _tasks(qa_url)
    k = 2
    client = SearchQAEnvClient(env_server_base=qa_url, data_len=len(tasks), timeout=60)
    assert isinstance(client.env_id, int)
    observation = client.reset(QA_BASE + k)
    assert observation == client.observe() and observation.endswith("\n\n Question: " + tasks[k]["instruction"])
    assert observation.startswith("You must reason inside <think>...</think> first.")
    agent = ExpertAgent(qa_url, search_r1).start(tasks[k]["task_id"])
    outcomes = run_episode(client, agent)
    assert outcomes[-1] == (1.0, True) and all(o == (0.0, False) for o in outcomes[:-1]) and len(outcomes) > 1
    assert "<answer>" in agent.replies[-1]

    task = SearchQATask(client_args={"env_server_base": qa_url, "data_len": len(tasks), "timeout": 60}, n_clients=1)
    result = evaluate(task, ExpertAgent(qa_url, search_r1).start(tasks[k]["task_id"]), QA_BASE + k)
    assert result.score == 1.0 and result.success == 1.0
    searched = result.experiences[0].conversation[4]["content"]  # the answer to the first <search>
    assert searched.startswith("<information>Doc 1(Title: ") and searched.endswith("</information>")


def test_searchqa_failure_paths(qa_url: str) -> None:
    tasks = _tasks(qa_url)
    client = SearchQAEnvClient(env_server_base=qa_url, data_len=1, timeout=60)
    client.reset(QA_BASE)
    empty = client.step("")
    assert empty.state.startswith("Your previous action is invalid.") and (empty.reward, empty.done) == (0.0, False)
    wrong = client.step("<think>guess</think><answer>certainly not this</answer>")
    assert wrong.state.startswith("Sorry, your answer is incorrect.") and (wrong.reward, wrong.done) == (0.0, False)
    agent = ExpertAgent(qa_url, search_r1).start(tasks[0]["task_id"])
    action = agent.next_action()
    while not action.startswith("finish["):
        action = agent.next_action()
    reply = agent.render(action)
    # the last <answer> of the text is graded; the first tag decides the kind of step
    right = client.step(f"<answer>no</answer> on second thought {reply}")
    assert (right.reward, right.done) == (1.0, True)
    again = client.step(reply)  # after the end: played the same way, as the original
    assert (again.reward, again.done) == (1.0, True)
    search_first = client.step(f"<search>{tasks[0]['instruction']}</search> {reply}")
    assert search_first.state.startswith("<information>") and (search_first.reward, search_first.done) == (0.0, False)
    nq = not_served(qa_url, "/reset", {"env_idx": client.env_id, "id": 0})
    assert "Search-R1 test: NQ" in nq and f"{QA_BASE}–{QA_BASE + len(tasks) - 1}" in nq, nq
    with pytest.raises(AssertionError):
        client.reset(QA_BASE + len(tasks))
    assert client.close() is True
    assert httpx.post(qa_url + "/close", json={"env_idx": client.env_id}).json() is False


# ----- instance ids -------------------------------------------------------------------------
def test_instance_ids_are_random_integers(webshop_url: str, household_url: str, sql_url: str, qa_url: str) -> None:
    ids = [WebshopEnvClient(env_server_base=webshop_url, data_len=1).env_id for _ in range(3)]
    ids += [AlfWorldEnvClient(env_server_base=household_url, data_len=1).env_id for _ in range(3)]
    ids += [SqlGymEnvClient(env_server_base=sql_url, data_len=1).env_id for _ in range(3)]
    ids += [SearchQAEnvClient(env_server_base=qa_url, data_len=1).env_id for _ in range(3)]
    assert all(isinstance(i, int) and 0 < i < 2**53 for i in ids) and len(set(ids)) == len(ids)
    assert sum(i > 2**32 for i in ids) >= len(ids) - 1  # drawn from 2**53 values, not counted from 0
    assert all(abs(a - b) > 1 for a, b in zip(ids, ids[1:]))
