"""Who is asking: the FastAPI dependency that names the client a new session is counted against.

The key is the TCP peer address (uvicorn runs with `proxy_headers=False`, so it cannot be
forged by a header) and the optional self-chosen id of the `X-Trajgym-Client` header. The id
lets several clients of one machine (collectors, notebooks) hold separate quotas; the
per-address quota bounds what rotating it can buy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

from fastapi import Header, Request

from services.sessions import ClientKey
from wire.env_api import CLIENT_HEADER, CLIENT_ID_PATTERN

_CLIENT_ID = re.compile(CLIENT_ID_PATTERN)


async def client_key(request: Request,
                     client_id: Annotated[str | None, Header(alias=CLIENT_HEADER, pattern=CLIENT_ID_PATTERN,
                                                             description="who opens the session (per-client session quota)")] = None,
                     ) -> ClientKey:
    address = request.client.host if request.client else "unknown"
    return ClientKey(address, client_id or "")


def key_of(host: str | None, headers: Mapping[str, str]) -> ClientKey:
    """The same key for a connection that is not a plain request (the OpenEnv WebSocket, an MCP session):
    a malformed id is ignored there (no 422 to give), so the connection counts against its address alone."""
    client_id = headers.get(CLIENT_HEADER.lower()) or headers.get(CLIENT_HEADER) or ""
    return ClientKey(host or "unknown", client_id if _CLIENT_ID.fullmatch(client_id) else "")
