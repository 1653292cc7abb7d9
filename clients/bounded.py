"""Read a remote HTTP body with a byte cap: what every client of a possibly hostile server uses.

`aiohttp`'s `resp.json()` / `resp.read()` buffer the whole body, however large: a replica answering
`/healthz` with 800 MiB took the hub to 2.2 GB per health round. `read_json(resp, max_bytes)` refuses a
declared `Content-Length` over the cap before reading anything, reads a chunked or undeclared body in
chunks and stops (closing the connection) as soon as it passes the cap. Time is bounded by the caller's
`aiohttp.ClientTimeout(total=...)`, which covers reading the body too. Every refusal is a `ValueError`
(`BodyTooLarge`, or `BadJson` for unparsable or absurdly nested JSON), which the callers already turn
into their transport error. `read_httpx_body` does the same for the synchronous httpx client.
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import httpx

CHUNK = 64 * 1024


class BodyTooLarge(ValueError):
    pass


class BadJson(ValueError):
    pass


async def read_body(resp: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The body of `resp`, at most `max_bytes` long; `BodyTooLarge` (the rest unread) past that."""
    declared = resp.content_length
    if declared is not None and declared > max_bytes:
        resp.close()
        raise BodyTooLarge(f"response body of {declared} bytes is larger than the {max_bytes} bytes allowed")
    if declared is not None and resp.headers.get("Content-Encoding", "identity").lower() in ("", "identity"):
        return await resp.read()  # exactly the declared length, in one call (the hot path)
    # Chunked, undeclared, or compressed (aiohttp inflates in bounded pieces; the cap counts inflated bytes).
    parts: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_chunked(CHUNK):
        total += len(chunk)
        if total > max_bytes:
            resp.close()  # drop the connection: the rest of the body is never read
            raise BodyTooLarge(f"response body larger than the {max_bytes} bytes allowed")
        parts.append(chunk)
    return b"".join(parts)


def parse_json(body: bytes) -> Any:
    """JSON of `body` (None when empty); `BadJson` for anything unparsable, including nesting too deep to parse."""
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except RecursionError as err:  # "[[[[…" a megabyte deep: not a ValueError, so callers would not catch it
        raise BadJson("response body is JSON nested too deeply") from err
    except (ValueError, UnicodeDecodeError) as err:
        raise BadJson(f"response body is not JSON: {err}") from err


async def read_json(resp: aiohttp.ClientResponse, max_bytes: int) -> Any:
    """`parse_json(await read_body(resp, max_bytes))`."""
    return parse_json(await read_body(resp, max_bytes))


IDENTITY = {"Accept-Encoding": "identity"}  # what an httpx client of `read_httpx_body` must send


def read_httpx_body(resp: httpx.Response, max_bytes: int, deadline: float) -> bytes:
    """The body of a streamed (`client.stream(...)`) httpx response, capped like `read_body`. httpx's
    timeouts are per read, so a server dripping a byte at a time is cut here at `deadline` (monotonic).
    Read raw: httpx would inflate a compressed chunk whole (a gzip bomb), so compressed answers are refused."""
    encoding = resp.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise BadJson(f"compressed response ({encoding}) not accepted: the request asked for identity")
    declared = resp.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(f"response body of {declared} bytes is larger than the {max_bytes} bytes allowed")
    parts: list[bytes] = []
    total = 0
    for chunk in resp.iter_raw():
        total += len(chunk)
        if total > max_bytes:
            raise BodyTooLarge(f"response body larger than the {max_bytes} bytes allowed")
        if time.monotonic() > deadline:
            raise TimeoutError("response body not read within the timeout")
        parts.append(chunk)
    return b"".join(parts)
