"""The OpenEnv surface of an env service: OpenEnv's env-server protocol, mounted under `/openenv`.

OpenEnv's own client (`openenv.GenericEnvClient(base_url="http://host:port/openenv")`, which
appends `/ws`) runs whole episodes here. Routes, relative to the mount:

* `WS /ws` — OpenEnv's session protocol: one env session per connection; `reset` opens it
  (a new one on each reset), `step` acts, `state` reads, `close` (or disconnecting) closes it;
  `mcp` frames carry JSON-RPC `tools/list` / `tools/call` on the same session.
  `/ws?session_id=ID` attaches to an open session instead (reset in place, left open).
* `POST /reset` opens a session and answers its first observation (`metadata.session_id`);
  `POST /step` and `GET /state` act on a session named by `session_id` (OpenEnv's HTTP routes
  are stateless, a trajgym episode is not).
* `GET /schema` (action schema generated from the env's ToolSpecs), `/metadata`, `/health`,
  `POST /mcp` (OpenEnv's plain JSON-RPC: tools/list, tools/call, openenv/session/create|close).

Mounted under a prefix because OpenEnv's root `/reset` and `/step` would collide with the
AgentGym routes. Every session here is a session of the service's one `SessionManager`:
same limits, TTL, metrics, and visible to `/v1/sessions/{id}` (e.g. for the expert).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from fastapi import Body, Depends, FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from envs.actions import ActionParseError
from envs.base import EnvError, StepAfterEnd, UnknownTask
from envs.types import Observation, StepResult, ToolCall
from services.client_key import client_key, key_of
from services.error_status import status_of
from services.sessions import LOCAL, ClientKey, Session
from wire.errors import EpisodeFinished, ServerFull, SessionNotFound
from wire.openenv_api import (
    OPENENV_API_VERSION,
    OpenEnvAction,
    OpenEnvHealth,
    OpenEnvMetadata,
    OpenEnvObservation,
    OpenEnvReset,
    OpenEnvResult,
    OpenEnvSchemas,
    OpenEnvState,
    OpenEnvStepRequest,
    WSErrorCode,
    WSMessage,
    WSResponse,
    action_schema,
    openenv_tools,
    ws_error,
)

if TYPE_CHECKING:
    from services.app import EnvService

log = logging.getLogger("trajgym.openenv")


class NoEpisode(EnvError):
    """A step or tools/call before any reset on this connection (or without a session id)."""


# ----- one episode's logic, shared by the WebSocket, HTTP and JSON-RPC routes ------------------------
def _reset_result(session: Session, obs: Observation) -> OpenEnvResult:
    view = OpenEnvObservation(text=obs.observation, task_id=obs.task_id, instruction=obs.instruction,
                              valid_actions=obs.valid_actions, turn=0, metadata=obs.info)
    return OpenEnvResult(observation=view.payload(), reward=None, done=False, metadata={**obs.info, "session_id": session.id})


def _step_result(session: Session, result: StepResult, tool_name: str | None) -> OpenEnvResult:
    env = session.env
    view = OpenEnvObservation(
        text=result.observation, task_id=env.task.task_id if env.task else None, instruction=env.task.instruction if env.task else "",
        valid_actions=result.valid_actions, turn=env.turns, truncated=result.truncated, metadata=result.info,
        tool_name=tool_name, result=result.observation if tool_name else None,
    )
    return OpenEnvResult(observation=view.payload(), reward=result.reward, done=result.done, metadata=result.info)


def state_of(session: Session | None, client_episode_id: str | None = None) -> OpenEnvState:
    if session is None:
        return OpenEnvState(client_episode_id=client_episode_id)
    env = session.env
    return OpenEnvState(episode_id=session.id, step_count=env.turns, task_id=env.task.task_id if env.task else None,
                        instruction=env.task.instruction if env.task else "", done=env.done, total_reward=env.total_reward,
                        progress=env.progress(), client_episode_id=client_episode_id)


def tools_result(service: EnvService, session: Session | None) -> OpenEnvResult:
    view = OpenEnvObservation(tools=openenv_tools(service.env_cls.tools))
    done = session.env.done if session is not None else False
    return OpenEnvResult(observation=view.payload(), reward=None, done=done, metadata={})


async def act(service: EnvService, session: Session | None, action: OpenEnvAction) -> OpenEnvResult:
    """Apply one OpenEnv action to a session (list_tools needs none and uses no turn)."""
    if action.type == "list_tools":
        return tools_result(service, session)
    if session is None:
        raise NoEpisode("no episode: send a reset first")
    if action.type == "call_tool":
        assert action.tool_name is not None
        result = await service.step(session, ToolCall(name=action.tool_name, arguments=action.arguments))
        return _step_result(session, result, action.tool_name)
    assert action.text is not None
    return _step_result(session, await service.step(session, action.text), None)


def _ws_error_for(service: EnvService, exc: Exception) -> WSResponse:
    """An OpenEnv error frame for an exception; counted in the service's error metrics like an HTTP error."""
    service.metrics.error(status_of(exc))
    if isinstance(exc, ValidationError):
        return ws_error("Invalid message", WSErrorCode.VALIDATION_ERROR, errors=json.loads(exc.json(include_url=False)))
    if isinstance(exc, ActionParseError):
        return ws_error(str(exc), WSErrorCode.VALIDATION_ERROR)
    if isinstance(exc, ServerFull):
        return ws_error(str(exc), WSErrorCode.CAPACITY_REACHED, retry_after=exc.retry_after,
                        active_sessions=len(service.sessions), max_sessions=service.settings.max_sessions)
    if isinstance(exc, (SessionNotFound, NoEpisode)):
        return ws_error(str(exc), WSErrorCode.SESSION_ERROR)
    if isinstance(exc, (EpisodeFinished, StepAfterEnd, UnknownTask, EnvError)):
        return ws_error(str(exc), WSErrorCode.EXECUTION_ERROR)
    log.exception("OpenEnv surface: unexpected error")
    return ws_error(f"internal error: {type(exc).__name__}", WSErrorCode.EXECUTION_ERROR)


# ----- JSON-RPC (OpenEnv's `mcp` frames and POST /mcp) ------------------------------------------------
def _rpc_error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


async def json_rpc(service: EnvService, payload: Any, session: Session | None, client: ClientKey = LOCAL) -> dict[str, Any]:
    """OpenEnv's JSON-RPC: tools/list, tools/call (on `session`, or on `params.session_id`), and its session
    methods openenv/session/create and openenv/session/close (used by OpenEnv's MCPToolClient)."""
    if not isinstance(payload, dict) or payload.get("jsonrpc") != "2.0" or not isinstance(payload.get("method"), str):
        return _rpc_error(payload.get("id") if isinstance(payload, dict) else None, -32600, "Invalid Request: expected a JSON-RPC 2.0 request")
    request_id, method = payload.get("id"), payload["method"]
    params = payload.get("params") or {}
    if not isinstance(params, dict):
        return _rpc_error(request_id, -32602, "Invalid params: expected an object")
    try:
        return {"jsonrpc": "2.0", "id": request_id, "result": await _rpc_method(service, method, params, session, client)}
    except _RpcError as err:
        return _rpc_error(request_id, err.code, str(err))
    except (ValidationError, ActionParseError) as err:
        service.metrics.error(422)
        return _rpc_error(request_id, -32602, f"Invalid params: {err}")
    except (EnvError, SessionNotFound, EpisodeFinished, ServerFull) as err:
        service.metrics.error(status_of(err))
        return _rpc_error(request_id, -32000, str(err))


class _RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


async def _rpc_method(service: EnvService, method: str, params: dict[str, Any], session: Session | None,
                      client: ClientKey = LOCAL) -> Any:
    if method == "tools/list":
        return {"tools": [{"name": t.name, "description": t.description, "inputSchema": t.input_schema}
                          for t in openenv_tools(service.env_cls.tools)]}
    if method == "openenv/session/create":  # a session on the default task; a reset over /ws?session_id=... picks another
        created, _ = await service.open_session(None, None, None, client=client)
        return {"session_id": created.id}
    named = params.get("session_id")
    if named is not None and not isinstance(named, str):
        raise _RpcError(-32602, "Invalid params: session_id must be a string")
    if method == "openenv/session/close":
        if named is None:
            raise _RpcError(-32602, "Invalid params: 'session_id' is required")
        await service.close_session(named)
        return {"session_id": named, "closed": True}
    if method != "tools/call":
        raise _RpcError(-32601, f"Method not found: {method} (served: tools/list, tools/call, openenv/session/create, "
                                "openenv/session/close; the MCP streamable-HTTP endpoint is /mcp at the service root)")
    if session is None:
        if named is None:
            raise NoEpisode("tools/call needs params.session_id (a session opened over /ws, /reset, /v1/sessions or openenv/session/create)")
        session = service.sessions.get(named)
    name, arguments = params.get("name"), params.get("arguments") or {}
    if not isinstance(name, str) or not isinstance(arguments, dict):
        raise _RpcError(-32602, "Invalid params: tools/call needs a string name and an arguments object")
    result = await act(service, session, OpenEnvAction(type="call_tool", tool_name=name, arguments=arguments))
    # OpenEnv answers a CallToolObservation: the observation's fields with reward, done and error beside them
    return {**result.observation, "reward": result.reward, "done": result.done, "error": None}


# ----- the WebSocket session ------------------------------------------------------------------------
class Connection:
    """One OpenEnv WebSocket connection: at most one env session.

    Its own session is replaced on each reset and closed with the connection. A connection
    attached to an existing session (`/ws?session_id=...`, as OpenEnv's MCPToolClient does)
    resets that session in place and leaves it open: its owner closes it."""

    def __init__(self, service: EnvService, attached: str | None = None, client: ClientKey = LOCAL) -> None:
        self.service = service
        self.client = client  # whose quota this connection's sessions count against
        self.session_id: str | None = attached
        self.attached = attached is not None
        self.client_episode_id: str | None = None

    def session(self) -> Session | None:
        if self.session_id is None:
            return None
        return self.service.sessions.get(self.session_id)  # raises if the TTL reaper closed it

    async def reset(self, params: OpenEnvReset) -> OpenEnvResult:
        self.client_episode_id = params.episode_id
        if self.attached:
            session = self.service.sessions.get(self.session_id or "")
            async with session.lock:
                obs = await self.service.call(session.env.reset, params.task_id, params.seed, params.split)
            return _reset_result(session, obs)
        await self.close()  # one session per episode: the old one's slot is free before the new one opens
        session, obs = await self.service.open_session(params.task_id, params.seed, params.split, client=self.client)
        self.session_id = session.id
        return _reset_result(session, obs)

    async def handle(self, message: WSMessage) -> WSResponse:
        if message.type == "reset":
            result = await self.reset(OpenEnvReset.model_validate(message.data))
            return WSResponse(type="observation", data=result.model_dump(mode="json"))
        if message.type == "step":
            result = await act(self.service, self.session(), OpenEnvAction.model_validate(message.data))
            return WSResponse(type="observation", data=result.model_dump(mode="json"))
        if message.type == "state":
            return WSResponse(type="state", data=state_of(self.session(), self.client_episode_id).model_dump(mode="json"))
        assert message.type == "mcp"
        return WSResponse(type="mcp", data=await json_rpc(self.service, message.data, self.session(), self.client))

    async def close(self) -> None:
        if self.session_id is not None and not self.attached:
            session_id, self.session_id = self.session_id, None
            await self.service.close_session(session_id)


async def _serve_ws(service: EnvService, websocket: WebSocket) -> None:
    await websocket.accept()
    attach = websocket.query_params.get("session_id")
    if attach is not None:
        try:
            service.sessions.get(attach)
        except SessionNotFound as err:
            await websocket.send_text(_ws_error_for(service, err).model_dump_json())
            await websocket.close()
            return
    connection = Connection(service, attached=attach,
                            client=key_of(websocket.client.host if websocket.client else None, websocket.headers))
    limit = service.settings.max_body_bytes
    try:
        while True:
            frame = await websocket.receive()
            if frame["type"] == "websocket.disconnect":
                break
            raw = frame.get("text")
            if raw is None:
                raw = (frame.get("bytes") or b"").decode("utf-8", errors="replace")
            if len(raw) > limit:
                service.metrics.error(413)
                reply = ws_error(f"message larger than {limit} bytes", WSErrorCode.VALIDATION_ERROR)
            else:
                try:
                    message = WSMessage.model_validate_json(raw)
                except ValidationError as err:
                    reply = _invalid_frame(service, raw, err)
                else:
                    if message.type == "close":
                        break
                    try:
                        reply = await connection.handle(message)
                    except Exception as err:  # every failure answers an error frame; the connection stays usable
                        reply = _ws_error_for(service, err)
            await websocket.send_text(reply.model_dump_json())
    except WebSocketDisconnect:
        pass
    finally:
        await connection.close()
        try:
            await websocket.close()
        except RuntimeError:  # already closed by the client
            pass


def _invalid_frame(service: EnvService, raw: str, err: ValidationError) -> WSResponse:
    service.metrics.error(422)
    try:
        parsed = json.loads(raw)
    except ValueError as bad:
        return ws_error(f"Invalid JSON: {bad}", WSErrorCode.INVALID_JSON)
    kind = parsed.get("type") if isinstance(parsed, dict) else None
    if isinstance(kind, str) and kind not in ("reset", "step", "state", "close", "mcp"):
        return ws_error(f"Unknown message type: {kind}", WSErrorCode.UNKNOWN_TYPE)
    return ws_error("Invalid message", WSErrorCode.VALIDATION_ERROR, errors=json.loads(err.json(include_url=False)))


# ----- the mounted app --------------------------------------------------------------------------------
def openenv_app(service: EnvService) -> FastAPI:
    """The OpenEnv protocol for `service`, as an app to mount (at `wire.surfaces.OPENENV_PREFIX`)."""
    from services.app import ERROR_STATUS, _error_handler

    env_cls = service.env_cls
    app = FastAPI(title=f"trajgym {env_cls.name}: OpenEnv protocol", version=OPENENV_API_VERSION,
                  description=f"The {env_cls.name} env (trajgym {env_cls.version}) over OpenEnv's env-server protocol.")
    for exc_type, status in ERROR_STATUS.items():
        app.add_exception_handler(exc_type, _error_handler(service, status))

    @app.post("/reset", response_model=OpenEnvResult, tags=["Environment Control"],
              summary="Open a session on a task (id, or seed within a split): its first observation; metadata.session_id names it")
    async def reset(body: OpenEnvReset = Body(default_factory=OpenEnvReset),
                    client: ClientKey = Depends(client_key)) -> OpenEnvResult:
        session, obs = await service.open_session(body.task_id, body.seed, body.split, client=client)
        return _reset_result(session, obs)

    @app.post("/step", response_model=OpenEnvResult, tags=["Environment Control"],
              summary="One action on the session named by session_id (the WebSocket /ws needs none)")
    async def step(body: OpenEnvStepRequest) -> OpenEnvResult:
        action = OpenEnvAction.model_validate(body.action)
        if action.type != "list_tools" and body.session_id is None:
            raise NoEpisode("a trajgym episode is stateful: give session_id (from /reset's metadata, /state, or /v1/sessions), "
                            "or use the WebSocket /ws")
        session = service.sessions.get(body.session_id) if body.session_id is not None else None
        return await act(service, session, action)

    @app.get("/state", response_model=OpenEnvState, tags=["State Management"], summary="State of the session named by session_id")
    async def state(session_id: str | None = Query(None, max_length=100)) -> OpenEnvState:
        return state_of(service.sessions.get(session_id) if session_id else None)

    @app.get("/metadata", response_model=OpenEnvMetadata, tags=["Environment Info"], summary="Env name, description, version")
    async def metadata() -> OpenEnvMetadata:
        return OpenEnvMetadata(name=env_cls.name, description=env_cls.description or f"the {env_cls.name} environment",
                               version=env_cls.version, author="trajgym")

    @app.get("/health", response_model=OpenEnvHealth, responses={503: {"model": OpenEnvHealth}}, tags=["Health"], summary="Health")
    async def health() -> JSONResponse:
        body = OpenEnvHealth(status="healthy" if service.ready else "unhealthy")
        return JSONResponse(body.model_dump(), status_code=200 if service.ready else 503)

    @app.get("/schema", response_model=OpenEnvSchemas, tags=["Schema"], summary="JSON schemas of actions (from the env's tools), observations, state")
    async def schema() -> OpenEnvSchemas:
        observation = OpenEnvObservation.model_json_schema()
        return OpenEnvSchemas(action=action_schema(env_cls.name, env_cls.tools, env_cls.parser().forms()),
                              observation=observation, state=OpenEnvState.model_json_schema(), reset_observation=observation)

    @app.post("/mcp", tags=["MCP"], summary="OpenEnv's JSON-RPC tools/list and tools/call (tools/call needs params.session_id)")
    async def mcp(request: Request) -> JSONResponse:
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return JSONResponse(_rpc_error(None, -32700, "Parse error"))
        return JSONResponse(await json_rpc(service, payload, None,
                                           key_of(request.client.host if request.client else None, request.headers)))

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await _serve_ws(service, websocket)

    return app
