"""Bearer-token guard for the hub's write routes: 401 without a token, 403 with a wrong one."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from fastapi import Header, HTTPException


def bearer_guard(token: str) -> Callable[..., Awaitable[None]]:
    expected = token.encode()

    async def require_token(authorization: str | None = Header(default=None)) -> None:
        scheme, _, credential = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise HTTPException(401, "a bearer token is required for this route", headers={"WWW-Authenticate": "Bearer"})
        if not secrets.compare_digest(credential.strip().encode(), expected):
            raise HTTPException(403, "wrong token")

    return require_token
