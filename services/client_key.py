"""Who is asking: the FastAPI dependency that names the client a new session is counted against.

The key is the TCP peer address (uvicorn runs with `proxy_headers=False`, so it cannot be
forged by a header) and the optional self-chosen id of the `X-Trajgym-Client` header. The id
lets several clients of one machine (collectors, notebooks) hold separate quotas; the
per-address quota bounds what rotating it can buy.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Request

from services.sessions import ClientKey
from wire.env_api import CLIENT_HEADER, CLIENT_ID_PATTERN


async def client_key(request: Request,
                     client_id: Annotated[str | None, Header(alias=CLIENT_HEADER, pattern=CLIENT_ID_PATTERN,
                                                             description="who opens the session (per-client session quota)")] = None,
                     ) -> ClientKey:
    address = request.client.host if request.client else "unknown"
    return ClientKey(address, client_id or "")
