"""One episode: open a session, alternate policy and env until an outcome, close the session.

Every message of the conversation becomes a `TurnRecord` (system, user, assistant,
tool), so the stored turns are exactly what the model saw and said, with what the env
reported of each step (its info dict, progress, truncation, invalid-action flag, step
time) and of each model call (latency, queue time, seed). The outcome is decided where
its cause is known (`collector.outcomes`):

* an infrastructure failure discards the attempt (its turns are never stored) and the
  episode is tried again with backoff, up to `max_attempts`; after that it is recorded as
  `infra_error` with no reward;
* an env bug (the service answered 500) is retried once on a fresh session; a second one
  is recorded as `env_error` with the exception text and the turns up to it;
* a model reply that cannot be used, or a request the model server refuses for good, ends
  the episode as `policy_error` (a context overflow as `truncated`), the reason stored.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from wire.errors import EnvRequestError, EnvServiceError, EnvUnavailable, InvalidAction
from collector.config import JobConfig, Policy, PromptFormat, Sampling, call_seed
from collector.envlink import EnvLink
from collector.model_client import (
    ChatResult,
    ContextExceeded,
    Conversation,
    ModelClient,
    ModelError,
    ModelReplyError,
    ModelRequestError,
)
from collector.outcomes import EnvFault, InfraFailure, Outcome
from collector.prompts import (
    ParseFailure,
    observation_text,
    parse_react,
    parse_tool_call,
    action_parser,
    as_tool_call,
    react_system_prompt,
    tool_call_message,
    tools_system_prompt,
)
from collector.stats import Stats
from store.records import ClaimedEpisode, EpisodeRecord, TurnRecord
from envs.actions import ActionParser
from envs.types import EnvInfo, ToolCall
from wire.env_api import StepResponse


@dataclass
class EpisodeContext:
    job: JobConfig
    env: EnvLink
    info: EnvInfo
    model: ModelClient | None
    model_name: str | None
    stats: Stats
    extra_body: dict[str, Any] | None = None  # per-request fields, e.g. the constrained-decoding regex
    system_prompt: str | None = None          # default: built from the env info
    _parser: ActionParser | None = None

    @property
    def max_turns(self) -> int:
        return self.job.max_turns or self.info.max_turns

    @property
    def tools_format(self) -> bool:
        """Native tool calls (the expert's actions too are then written as tool calls)."""
        return self.job.prompt_format is PromptFormat.tools

    def parser(self) -> ActionParser:
        """The env's action forms, to write the expert's text actions as tool calls."""
        if self._parser is None:
            self._parser = action_parser(self.info)
        return self._parser

    def system(self) -> str:
        """The system prompt of every episode of the run."""
        if self.system_prompt is None:
            self.system_prompt = (tools_system_prompt(self.info, hermes=self.job.constrain_actions) if self.tools_format
                                  else react_system_prompt(self.info))
        return self.system_prompt

    @property
    def tools(self) -> list[dict[str, Any]] | None:
        """The tool schemas sent with every model call (native tool calling only)."""
        return self.info.tools if self.tools_format else None

# An env bug (500) is retried this many times on a fresh session before it is recorded.
ENV_ERROR_RETRIES = 1


class _Ended(Exception):
    def __init__(self, outcome: Outcome, error: str | None = None) -> None:
        self.outcome = outcome
        self.error = error


class Rollout:
    """State of one attempt."""

    def __init__(self, ctx: EpisodeContext, sampling: Sampling | None = None) -> None:
        self.ctx = ctx
        self.sampling = sampling or ctx.job.sampling
        self.calls = 0
        self.messages = Conversation()
        self.records: list[TurnRecord] = []
        self.step = 0
        self.reward = 0.0
        self.success: bool | None = None
        self.progress: float | None = None
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.model_time = 0.0
        self.env_time = 0.0
        self.parse_failures = 0
        self.error: str | None = None
        self.tools_format = ctx.tools_format

    def add(self, message: dict[str, Any], record: TurnRecord) -> None:
        self.messages.append(message)
        self.records.append(record)

    # ----- the loop -----------------------------------------------------------------
    async def run(self, task_id: str) -> Outcome:
        ctx = self.ctx
        try:
            created, dt = await ctx.env.create(task_id)
        except EnvUnavailable as err:
            raise InfraFailure(f"env create: {err}") from err
        except EnvServiceError as err:
            raise EnvFault(f"env create of {task_id!r}: {err}") from err
        except EnvRequestError as err:
            raise InfraFailure(f"env refused session for {task_id!r}: {err.status} {err}") from err
        self.env_time += dt
        session = created.session_id
        try:
            system = ctx.system()
            self.add({"role": "system", "content": system}, TurnRecord(step=0, role="system", content=system))
            first = observation_text(created.observation, created.valid_actions, created.instruction)
            self.add({"role": "user", "content": first},
                     TurnRecord(step=0, role="user", content=first, observation=created.observation,
                                info=created.info or None, env_ms=dt * 1000.0))
            while True:
                if self.step >= ctx.max_turns:
                    return Outcome.truncated
                try:
                    if ctx.job.policy is Policy.expert:
                        result = await self._expert_turn(session)
                    else:
                        result = await self._model_turn(session)
                except _Ended as end:
                    self.error = end.error
                    return end.outcome
                if result is None:
                    continue
                if result.done:
                    if result.truncated:
                        return Outcome.truncated
                    success = result.info.get("success")
                    self.success = bool(success) if success is not None else result.reward > 0
                    return Outcome.success if self.success else Outcome.failure
        finally:
            try:
                await asyncio.shield(ctx.env.close(session))
            except Exception:  # best effort: the service reaps idle sessions by TTL
                pass

    async def _env_step(self, session: str, action: str | ToolCall) -> tuple[StepResponse, float]:
        try:
            result, dt = await self.ctx.env.step(session, action)
        except EnvUnavailable as err:
            raise InfraFailure(f"env step: {err}") from err
        except EnvServiceError as err:
            raise EnvFault(f"env step {self.step + 1}: {err}") from err
        except InvalidAction:
            raise
        except EnvRequestError as err:
            if err.status == 413:  # the agent's action is larger than the service takes: its own doing
                raise InvalidAction(f"the action is too large for the env ({err.detail})", status=413) from err
            # 404 (session lost: service restarted or reaped) / 409 / 429: the env side broke, not the policy.
            raise InfraFailure(f"env step refused: {err.status} {err}") from err
        self.env_time += dt
        self.step += 1
        self.ctx.stats.turns += 1
        self.reward += result.reward
        if result.progress is not None:
            self.progress = result.progress
        return result, dt

    def _observe(self, result: StepResponse, action: str, tool_call_id: str | None, dt: float) -> None:
        text = observation_text(result.observation, None if result.done else result.valid_actions)
        if tool_call_id is not None:
            msg: dict[str, Any] = {"role": "tool", "tool_call_id": tool_call_id, "content": text}
            role = "tool"
        else:
            msg = {"role": "user", "content": text}
            role = "user"
        invalid = result.info.get("invalid_action")
        self.add(msg, TurnRecord(step=self.step, role=role, content=text, tool_call_id=tool_call_id, action=action,
                                 observation=result.observation, reward=result.reward, done=result.done,
                                 info=result.info or None, progress=result.progress, truncated=result.truncated,
                                 invalid_action=bool(invalid) if invalid is not None else False,
                                 env_ms=dt * 1000.0))

    async def _expert_turn(self, session: str) -> StepResponse:
        try:
            action, dt = await self.ctx.env.expert(session)
        except EnvUnavailable as err:
            raise InfraFailure(f"env expert: {err}") from err
        except EnvServiceError as err:
            raise EnvFault(f"env expert at step {self.step + 1}: {err}") from err
        except EnvRequestError as err:
            raise InfraFailure(f"env expert refused: {err.status} {err}") from err
        self.env_time += dt
        if self.tools_format:
            return await self._expert_tool_turn(session, action, dt)
        content = f"Action: {action}"
        self.add({"role": "assistant", "content": content},
                 TurnRecord(step=self.step + 1, role="assistant", content=content, action=action,
                            latency_ms=dt * 1000.0))
        try:
            result, step_dt = await self._env_step(session, action)
        except InvalidAction as err:  # the env refused its own expert's action: a bug of the env
            raise EnvFault(f"env refused its expert's action {action[:200]!r}: {err.status} {err}") from err
        self._observe(result, action, None, step_dt)
        return result

    async def _expert_tool_turn(self, session: str, text: str, dt: float) -> StepResponse:
        """The expert's action as one native tool call; the observation comes back as its tool message."""
        try:
            call = as_tool_call(self.ctx.parser(), text)
        except ValueError as err:  # the env's expert said something its own action forms do not take
            raise EnvFault(f"env expert's action {text[:200]!r} fits none of its tools: {err}") from err
        call_id = f"call_{self.step + 1}"
        calls = [tool_call_message(call, call_id)]
        self.add({"role": "assistant", "content": "", "tool_calls": calls},
                 TurnRecord(step=self.step + 1, role="assistant", content="", tool_calls=calls,
                            action=call.model_dump_json(), latency_ms=dt * 1000.0))
        try:
            result, step_dt = await self._env_step(session, call)
        except InvalidAction as err:
            raise EnvFault(f"env refused its expert's action {text[:200]!r}: {err.status} {err}") from err
        self._observe(result, call.model_dump_json(), call_id, step_dt)
        return result

    async def _chat(self) -> ChatResult:
        ctx = self.ctx
        assert ctx.model is not None
        seed = call_seed(self.sampling.seed, self.calls) if self.sampling.seed is not None else None
        self.calls += 1
        t0 = time.perf_counter()
        try:
            reply = await ctx.model.chat(self.messages, self.sampling, ctx.tools, ctx.extra_body, seed=seed)
        except ContextExceeded as err:
            raise _Ended(Outcome.truncated, str(err)) from err
        except ModelReplyError as err:
            raise _Ended(Outcome.policy_error, f"model reply unusable: {err}") from err
        except ModelRequestError as err:
            raise _Ended(Outcome.policy_error, f"model refused the request: {err}") from err
        except ModelError as err:
            raise InfraFailure(f"model: {err}") from err
        self.model_time += time.perf_counter() - t0
        self.prompt_tokens += reply.prompt_tokens
        self.completion_tokens += reply.completion_tokens
        ctx.stats.tokens += reply.prompt_tokens + reply.completion_tokens
        return reply

    def _feedback(self, message: str, tool_call_id: str | None, invalid_action: bool | None = None) -> None:
        self.parse_failures += 1
        if self.parse_failures > self.ctx.job.max_parse_retries:
            raise _Ended(Outcome.policy_error, message)
        if tool_call_id is not None:
            self.add({"role": "tool", "tool_call_id": tool_call_id, "content": message},
                     TurnRecord(step=self.step, role="tool", content=message, tool_call_id=tool_call_id,
                                invalid_action=invalid_action))
        else:
            self.add({"role": "user", "content": message},
                     TurnRecord(step=self.step, role="user", content=message, invalid_action=invalid_action))

    async def _model_turn(self, session: str) -> StepResponse | None:
        reply = await self._chat()
        keep = self.ctx.job.store_prompt_token_ids
        message: dict[str, Any] = {"role": "assistant", "content": reply.content or ""}
        if reply.tool_calls:
            message["tool_calls"] = reply.tool_calls
        self.add(message, TurnRecord(
            step=self.step + 1, role="assistant", content=reply.content, tool_calls=reply.tool_calls,
            prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
            finish_reason=reply.finish_reason, token_ids=reply.token_ids,
            prompt_token_ids=reply.prompt_token_ids if keep else None, logprobs=reply.logprobs,
            latency_ms=reply.latency_ms, queue_ms=reply.queue_ms, seed=reply.seed))
        budget = self.ctx.job.max_episode_tokens
        if budget is not None and reply.prompt_tokens + reply.completion_tokens >= budget:
            raise _Ended(Outcome.truncated, f"episode reached {budget} tokens")
        extra_ids = [c.get("id") for c in (reply.tool_calls or [])[1:]]
        call_id: str | None = None
        action: str | ToolCall
        try:
            if self.tools_format:
                if reply.tool_calls:
                    call_id = reply.tool_calls[0].get("id") or "call_0"
                action, _ = parse_tool_call(reply.tool_calls)
            else:
                action = parse_react(reply.content)
        except ParseFailure as err:
            self._answer_extra_calls(extra_ids)
            self._feedback(str(err), call_id)
            return None
        try:
            result, dt = await self._env_step(session, action)
        except InvalidAction as err:
            self._answer_extra_calls(extra_ids)
            self._feedback(f"Invalid action: {err.detail}", call_id, invalid_action=True)
            return None
        self.parse_failures = 0
        text = action.model_dump_json() if isinstance(action, ToolCall) else action
        self._observe(result, text, call_id, dt)
        self._answer_extra_calls(extra_ids)
        return result

    def _answer_extra_calls(self, ids: list[Any]) -> None:
        for cid in ids:
            if cid:
                text = "Not executed: one tool call per turn."
                self.add({"role": "tool", "tool_call_id": cid, "content": text},
                         TurnRecord(step=self.step, role="tool", content=text, tool_call_id=cid))


def _now() -> datetime:
    return datetime.now(UTC)


async def run_episode(ctx: EpisodeContext, claimed: ClaimedEpisode) -> EpisodeRecord:
    """Run one claimed episode to a typed outcome: infrastructure failures are retried with backoff (up to
    `max_attempts`), an env bug once on a fresh session."""
    job = ctx.job
    started = _now()
    t0 = time.perf_counter()
    sampling, sent = (job.sampling.for_episode(claimed.task_id, claimed.sample) if job.policy is Policy.model
                      else (None, None))
    last_error = ""
    infra = faults = attempt = 0
    while True:
        attempt += 1
        rollout = Rollout(ctx, sampling)
        try:
            outcome = await rollout.run(claimed.task_id)
        except InfraFailure as err:
            infra += 1
            last_error = str(err)
            if infra >= job.max_attempts:
                break
            ctx.stats.infra_retries += 1
            await asyncio.sleep(job.retry_backoff * 2 ** (infra - 1))
            continue
        except EnvFault as err:
            faults += 1
            if faults <= ENV_ERROR_RETRIES:
                ctx.stats.env_retries += 1
                continue
            note = f" (also on {ENV_ERROR_RETRIES} retry on a fresh session)" if ENV_ERROR_RETRIES else ""
            return EpisodeRecord(
                episode_id=claimed.id, outcome=Outcome.env_error.value, attempt=claimed.attempt + attempt,
                reward=None, success=False, progress=None, turns=rollout.step, prompt_tokens=rollout.prompt_tokens,
                completion_tokens=rollout.completion_tokens, model=ctx.model_name, started_at=started,
                finished_at=_now(), duration_s=time.perf_counter() - t0, model_time_s=rollout.model_time,
                env_time_s=rollout.env_time, error=(str(err) + note)[:4000], sampling=sent, messages=rollout.records)
        return EpisodeRecord(
            episode_id=claimed.id, outcome=outcome.value, attempt=claimed.attempt + attempt, reward=rollout.reward,
            success=bool(rollout.success) if outcome is not Outcome.success else True,
            progress=rollout.progress, turns=rollout.step, prompt_tokens=rollout.prompt_tokens,
            completion_tokens=rollout.completion_tokens, model=ctx.model_name, started_at=started,
            finished_at=_now(), duration_s=time.perf_counter() - t0, model_time_s=rollout.model_time,
            env_time_s=rollout.env_time, error=rollout.error, sampling=sent, messages=rollout.records)
    return EpisodeRecord(
        episode_id=claimed.id, outcome=Outcome.infra_error.value, attempt=claimed.attempt + attempt,
        reward=None, success=None, progress=None, turns=0, model=ctx.model_name, started_at=started,
        finished_at=_now(), duration_s=time.perf_counter() - t0, error=last_error[:4000], sampling=sent, messages=[])
