"""The MCP surface of an env service: a streamable-HTTP MCP endpoint at `/mcp` (PyPI `mcp`, low-level server).

Tools: the env's own (its `ToolSpec`s, with their JSON schemas) plus `episode_start`,
`episode_observation` and `episode_close`. Each MCP session owns at most one env session,
a session of the service's `SessionManager` (same limits, TTL and metrics as v1 sessions);
`episode_start` replaces it, and it is closed when the MCP session ends (DELETE, idle
timeout = the service's session TTL, shutdown). Every result carries `EpisodeContent`
(observation, reward, done, truncated, info, session id) as structured content.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import anyio
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import DEFAULT_MAX_SESSIONS, StreamableHTTPSessionManager
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from envs.actions import ActionParseError
from envs.types import StepResult, ToolCall
from services.error_status import status_of
from services.openenv_surface import NoEpisode
from services.client_key import key_of
from services.sessions import LOCAL, ClientKey, Session
from wire.errors import SessionNotFound
from wire.mcp_api import (
    CONTROL_TOOLS,
    EMPTY_INPUT_SCHEMA,
    EPISODE_CLOSE,
    EPISODE_OBSERVATION,
    EPISODE_START,
    OUTPUT_SCHEMA,
    START_INPUT_SCHEMA,
    EpisodeContent,
    EpisodeStart,
    tool_input_schema,
)

if TYPE_CHECKING:
    from services.app import EnvService


class McpEpisode:
    """The env session of one MCP session."""

    def __init__(self, service: EnvService) -> None:
        self.service = service
        self.session_id: str | None = None

    def session(self) -> Session:
        if self.session_id is None:
            raise NoEpisode(f"no episode in this MCP session: call {EPISODE_START} first")
        return self.service.sessions.get(self.session_id)

    async def start(self, args: EpisodeStart, client: ClientKey = LOCAL) -> EpisodeContent:
        await self.close()
        session, obs = await self.service.open_session(args.task_id, args.seed, args.split, client=client)
        self.session_id = session.id
        return EpisodeContent(session_id=session.id, task_id=obs.task_id, instruction=obs.instruction, observation=obs.observation,
                              valid_actions=obs.valid_actions, info=obs.info)

    def current(self) -> EpisodeContent:
        session = self.session()
        env = session.env
        return EpisodeContent(session_id=session.id, task_id=env.task.task_id if env.task else None,
                              instruction=env.task.instruction if env.task else "", observation=env.last_observation,
                              done=env.done, turn=env.turns, total_reward=env.total_reward,
                              valid_actions=None if env.done else env.valid_actions())

    async def step(self, name: str, arguments: dict[str, Any]) -> EpisodeContent:
        session = self.session()
        result: StepResult = await self.service.step(session, ToolCall(name=name, arguments=arguments))
        env = session.env
        return EpisodeContent(session_id=session.id, task_id=env.task.task_id if env.task else None,
                              instruction=env.task.instruction if env.task else "", observation=result.observation,
                              reward=result.reward, done=result.done, truncated=result.truncated, turn=env.turns,
                              total_reward=env.total_reward, valid_actions=result.valid_actions, info=result.info)

    async def close(self) -> EpisodeContent:
        session_id, self.session_id = self.session_id, None
        if session_id is not None:
            try:
                await self.service.close_session(session_id)
            except SessionNotFound:  # reaped by the TTL meanwhile
                pass
        return EpisodeContent(session_id=session_id, closed=True)


def _result(content: EpisodeContent) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=content.observation)],
                                structuredContent=content.model_dump(mode="json"), isError=False)


class McpSurface:
    """The MCP server of one env service: the instance is the ASGI endpoint, `run()` must wrap the app's lifespan."""

    def __init__(self, service: EnvService) -> None:
        self.service = service
        env_cls = service.env_cls
        clash = set(CONTROL_TOOLS) & {t.name for t in env_cls.tools}
        if clash:
            raise ValueError(f"{env_cls.name} has tools named like the MCP episode controls: {', '.join(sorted(clash))}")

        @contextlib.asynccontextmanager
        async def per_session(_: Server[Any, Any]) -> AsyncIterator[McpEpisode]:
            episode = McpEpisode(service)
            try:
                yield episode
            finally:
                with anyio.CancelScope(shield=True):
                    await episode.close()

        server: Server[McpEpisode, Any] = Server(
            f"trajgym-{env_cls.name}", version=env_cls.version, lifespan=per_session,
            instructions=(f"{env_cls.description or env_cls.name}\nCall {EPISODE_START} (task_id, or seed and split) to begin an "
                          f"episode, then the env's tools; each result's structured content has reward, done and info."),
        )
        self.tools = self._tools()
        known = [t.name for t in self.tools]

        @server.list_tools()
        async def list_tools() -> list[types.Tool]:
            return self.tools

        @server.call_tool()
        async def call_tool(name: str, arguments: dict[str, Any]) -> types.CallToolResult:
            episode: McpEpisode = server.request_context.lifespan_context
            try:
                if name == EPISODE_START:
                    request = getattr(server.request_context, "request", None)  # the HTTP request of this MCP message
                    client = key_of(request.client.host if request is not None and request.client else None,
                                    request.headers if request is not None else {})
                    return _result(await episode.start(EpisodeStart.model_validate(arguments), client))
                if name == EPISODE_OBSERVATION:
                    return _result(episode.current())
                if name == EPISODE_CLOSE:
                    return _result(await episode.close())
                if name not in known:
                    raise ActionParseError(f"unknown tool {name!r}; tools: {', '.join(known)}")
                return _result(await episode.step(name, arguments))
            except Exception as err:  # the SDK answers it as an isError result with the message
                service.metrics.error(status_of(err))
                raise

        self.server = server
        self.manager: StreamableHTTPSessionManager | None = None

    def _tools(self) -> list[types.Tool]:
        env_cls = self.service.env_cls
        tools = [types.Tool(name=t.name, description=t.description, inputSchema=tool_input_schema(t), outputSchema=OUTPUT_SCHEMA)
                 for t in env_cls.tools]
        controls = [
            (EPISODE_START, "Start an episode of this env: a task by id, or by seed within a split (closes the current one).",
             START_INPUT_SCHEMA),
            (EPISODE_OBSERVATION, "The current observation of the episode, with done and the total reward so far.", EMPTY_INPUT_SCHEMA),
            (EPISODE_CLOSE, "Close the episode's env session.", EMPTY_INPUT_SCHEMA),
        ]
        return tools + [types.Tool(name=n, description=d, inputSchema=s, outputSchema=OUTPUT_SCHEMA) for n, d, s in controls]

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Serve MCP sessions for the app's lifetime (a new SDK session manager each time: it runs only once)."""
        settings = self.service.settings
        # The env-session limit applies at episode_start (the service's table); MCP sessions without an
        # episode are capped by the SDK's own bound, never below the service's session limit.
        self.manager = StreamableHTTPSessionManager(
            app=self.server, session_idle_timeout=settings.session_ttl,
            max_sessions=max(settings.max_sessions, DEFAULT_MAX_SESSIONS), max_request_body_size=settings.max_body_bytes,
        )
        try:
            async with self.manager.run():
                yield
        finally:
            self.manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI endpoint (an instance, not a function, so Starlette routes raw ASGI to it)."""
        if self.manager is None:
            response = JSONResponse({"detail": "the MCP endpoint is not running (the service is starting or stopping)"}, status_code=503)
            await response(scope, receive, send)
            return
        await self.manager.handle_request(scope, receive, send)
