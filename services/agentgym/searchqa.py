"""AgentGym's SearchQA server (agentenv-searchqa, Search-R1 style) on trajgym's QA data.

The routes and shapes of the original: ``/create {id}`` → a bare integer; ``/reset {env_idx,
id}`` → the observation (a string); ``/step {env_idx, action}`` → ``{observation, reward,
done, info: null}``; ``/observation``; ``/close {env_idx}`` → true/false; ``GET /`` → ``"ok"``.

An episode as the original plays it. The observation is Search-R1's prompt with the question.
A step reads the first ``<search>…</search>`` or ``<answer>…</answer>`` anywhere in the text:
a search answers ``<information>Doc 1(Title: …) …</information>`` with the top 3 passages
(here BM25 over the QA corpus; the original uses e5 dense retrieval over Wikipedia); an answer
is graded on the last ``<answer>…</answer>`` of the text by exact match after SQuAD/HotpotQA
normalisation (the QA env's own `exact_match`), reward 1 and done only when right — a wrong
answer says so and the episode goes on; anything else gets the original's "invalid action"
text. There is no turn limit and no end: a step after a right answer is played the same way.

`id` is AgentGym's numbering (Search-R1 test sets 0–51712, train sets 51713–221327); trajgym
holds none of those questions, so they are a 404; its own questions are ids 221328 + their
position in ``GET /v1/tasks``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends

from envs.qa.data import QaData
from envs.qa.reward import exact_match
from services.client_key import client_key
from services.sessions import ClientKey
from services.agentgym.indices import NamedRange, RangedIndex
from services.agentgym.instances import InstancePool
from services.sessions import Session
from wire.agentgym_api import EnvIdx, SearchQACreate, SearchQAReset, SearchQAStep, SearchQAStepResult
from wire.errors import SessionNotFound
from services.agentgym.router import greeting_routes

if TYPE_CHECKING:
    from services.app import EnvService

SEARCH_R1 = (
    NamedRange("Search-R1 test: NQ", 0, 3610), NamedRange("Search-R1 test: TriviaQA", 3610, 14923),
    NamedRange("Search-R1 test: PopQA", 14923, 29190), NamedRange("Search-R1 test: HotpotQA", 29190, 36595),
    NamedRange("Search-R1 test: 2WikiMultihopQA", 36595, 49171), NamedRange("Search-R1 test: MuSiQue", 49171, 51588),
    NamedRange("Search-R1 test: Bamboogle", 51588, 51713), NamedRange("Search-R1 train: NQ", 51713, 130881),
    NamedRange("Search-R1 train: HotpotQA", 130881, 221328),
)
TOP_K = 3
ACTION = re.compile(r"<(search|answer)>(.*?)</\1>", re.DOTALL)
ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
PROMPT = (
    "You must reason inside <think>...</think> first. If you do not have enough knowledge, issue a "
    "<search>...</search> and then STOP. Do not generate <information> or <answer> yet. Wait for external input "
    "wrapped in <information>...</information>. After receiving information, reason again in <think>. If confident, "
    "output your final answer in <answer>...</answer>. Do not output <answer> before receiving <information> unless "
    "you are fully confident. If you find no further external knowledge needed, you can directly provide the answer "
    "inside <answer> and </answer>, without detailed illustrations. For example, <answer> Beijing </answer>. Follow "
    "this process every time.\n\n Question: {question}"
)
RIGHT = "Congratulations! You have answered the question correctly."
WRONG = "Sorry, your answer is incorrect. Please try again."
INVALID = ("Your previous action is invalid. If you want to search, you should put the query between <search> and "
           "</search>. If you want to give the final answer, you should put the answer between <answer> and </answer>. "
           "Please try again.")


def observation_of(session: Session) -> str:
    task = session.env.task
    return PROMPT.format(question=(task.instruction if task else "").strip())


def passages(data: QaData, query: str) -> str:
    """The top passages as Search-R1 formats them: ``Doc i(Title: title) text`` lines."""
    corpus = data.corpus
    lines = [f"Doc {i + 1}(Title: {corpus.pages[p].title}) {corpus.pages[p].text}\n"
             for i, p in enumerate(corpus.search(query, TOP_K))]
    return "".join(lines).strip()


def play(data: QaData, gold: str, response: str) -> SearchQAStepResult:
    """One Search-R1 step on `response` (the model's whole output)."""
    match = ACTION.search(response)
    if match is None:
        return SearchQAStepResult(observation=INVALID, reward=0.0, done=False)
    if match[1] == "search":
        return SearchQAStepResult(observation=f"<information>{passages(data, match[2].strip())}</information>",
                                  reward=0.0, done=False)
    answer = ANSWER.findall(response)[-1].strip()
    if exact_match(answer, gold) == 1.0:
        return SearchQAStepResult(observation=RIGHT, reward=1.0, done=True)
    return SearchQAStepResult(observation=WRONG, reward=0.0, done=False)


def routes(router: APIRouter, service: EnvService, pool: InstancePool) -> None:
    indices: list[RangedIndex] = []

    def index() -> RangedIndex:
        if not indices:
            assert service.data is not None
            indices.append(RangedIndex("SearchQA id", SEARCH_R1, service.data.task_ids()))
        return indices[0]

    def data() -> QaData:
        assert isinstance(service.data, QaData)
        return service.data

    greeting_routes(router)

    @router.post("/create", response_model=int, summary="AgentGym: create an instance → its integer id")
    async def create(body: SearchQACreate | None = None, client: ClientKey = Depends(client_key)) -> int:
        task_id = index().own.task_at(body.id) if body is not None and body.id is not None else None
        session = await pool.create(task_id, client)
        assert session.agentgym_index is not None
        return session.agentgym_index

    @router.post("/reset", response_model=str, summary="AgentGym: open SearchQA item `id`")
    async def reset(body: SearchQAReset) -> str:
        session = pool.get(body.env_idx)
        await pool.reset(session, session.env.reset, index().task_for(body.id), None, None)
        return observation_of(session)

    @router.post("/step", response_model=SearchQAStepResult, summary="AgentGym: <search>…</search> or <answer>…</answer>")
    async def step(body: SearchQAStep) -> SearchQAStepResult:
        session = pool.get(body.env_idx)
        task = session.env.task
        assert task is not None
        return await pool.run(session, play, data(), data().gold[task.task_id].answer, body.action)

    @router.get("/observation", response_model=str, summary="AgentGym: the prompt with the question")
    async def observation(env_idx: int) -> str:
        return observation_of(pool.get(env_idx))

    @router.post("/close", response_model=bool, summary="AgentGym: close the instance (false when unknown)")
    async def close(body: EnvIdx) -> bool:
        try:
            await pool.close(body.env_idx)
        except SessionNotFound:
            return False
        return True
