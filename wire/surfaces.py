"""Where each protocol surface of an env service lives, and the `/v1/info` answer that lists them.

One env definition is served on every surface at once: trajgym's v1 API, the AgentGym
routes, OpenEnv's env-server protocol (mounted under `/openenv`, because OpenEnv's root
`/reset` and `/step` would collide with AgentGym's), an MCP streamable-HTTP endpoint, and
gymnasium (client-side, over v1).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from envs.types import EnvInfo

V1_PREFIX = "/v1"
CHANNEL_PATH = V1_PREFIX + "/channel"  # the session channel (wire.channel_api)
OPENENV_PREFIX = "/openenv"
MCP_PATH = "/mcp"


class Surface(BaseModel):
    protocol: str
    url: str
    websocket: str | None = None
    client: str = Field(description="how a client reaches it")


class ServiceInfo(EnvInfo):
    """`/v1/info`: the env's metadata plus every surface it is served on, with its URL."""

    surfaces: dict[str, Surface] = Field(default_factory=dict)


def surfaces(base_url: str) -> dict[str, Surface]:
    """Every surface of a service reached at `base_url` (e.g. http://host:8000, or behind a path prefix)."""
    base = base_url.rstrip("/")
    ws_base = "ws" + base[4:] if base.startswith("http") else base
    return {
        "v1": Surface(protocol="trajgym v1 (REST)", url=base + V1_PREFIX,
                      client=f"clients.env_client.AsyncEnvClient({base!r}); trajgym collect --env {base}"),
        "channel": Surface(protocol="trajgym session channel: v1 operations of many sessions multiplexed over one WebSocket "
                           "(wire.channel_api)", url=base + V1_PREFIX, websocket=ws_base + CHANNEL_PATH,
                           client=f"clients.env_channel.ChannelEnvClient({base!r}); trajgym collect uses it when offered"),
        "agentgym": Surface(protocol="AgentGym env server (/create, /reset, /step, /observation, /available_actions, /close)",
                            url=base, client=f"AgentGym's env clients with env_server_base={base!r}"),
        "openenv": Surface(protocol="OpenEnv env server (WebSocket /ws; HTTP /reset /step /state /schema /metadata /health /mcp)",
                           url=base + OPENENV_PREFIX, websocket=ws_base + OPENENV_PREFIX + "/ws",
                           client=f"openenv.GenericEnvClient(base_url={base + OPENENV_PREFIX!r}) (it appends /ws)"),
        "mcp": Surface(protocol="MCP, streamable HTTP: the env's tools plus episode_start / episode_observation / episode_close",
                       url=base + MCP_PATH, client=f"mcp.client.streamable_http.streamable_http_client({base + MCP_PATH!r})"),
        "gymnasium": Surface(protocol="gymnasium.Env over the v1 API", url=base + V1_PREFIX,
                             client=f"clients.gym_remote.RemoteGymEnv({base!r})"),
    }
