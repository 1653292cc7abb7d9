"""A hostile HTTP server for the hardening tests: answers that never end, lie about their size, drip, nest.

`HostileServer(info_json)` runs a raw asyncio server in a thread. `GET /v1/info` always answers
`info_json` (so the hub accepts it as a replica); every other path answers per `mode`, which
the test may change at any time:

- `benign`:   `{"status": "ok", "sessions": 0, "max_sessions": 10}`
- `endless`:  200, chunked, 64 KiB chunks of JSON-looking text forever
- `declared`: 200, `Content-Length: 838860800` (800 MiB), then bytes as fast as the reader takes them
- `drip`:     200, `Content-Length: 100000`, one byte every 0.2 s
- `nested`:   200, `[` × 300,000 (JSON nested deeper than any parser recursion)
- `counts`:   200, a /healthz document with counts past the hub's INTEGER columns
- `gzip`:     200, `Content-Encoding: gzip`: 60 KiB that inflate to 64 MiB of spaces (a small zip bomb)
- `longname`: /v1/info too: an env name of 300 characters

`sent` counts the body bytes written (what a reader could have buffered).
"""

from __future__ import annotations

import asyncio
import json
import threading
import zlib
from typing import Any

from services.ports import free_port

CHUNK = b'{"pad": "' + b"x" * (64 * 1024 - 12) + b'",\n'


def _bomb(size: int = 64 << 20) -> bytes:
    gz = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip container
    block = b" " * (1 << 20)
    return b"".join(gz.compress(block) for _ in range(size >> 20)) + gz.flush()


class HostileServer:
    def __init__(self, info: dict[str, Any]) -> None:
        self.info = info
        self.mode = "benign"
        self.sent = 0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HostileServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("hostile server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()

    async def _write(self, writer: asyncio.StreamWriter, data: bytes, body: bool = True) -> None:
        writer.write(data)
        await writer.drain()
        if body:
            self.sent += len(data)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                await self._answer(path, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _answer(self, path: str, writer: asyncio.StreamWriter) -> None:
        mode = self.mode
        if path == "/v1/info":
            info = {**self.info, "name": "n" * 300} if mode == "longname" else self.info
            await self._json(writer, info)
        elif mode in ("benign", "longname"):
            await self._json(writer, {"status": "ok", "sessions": 0, "max_sessions": 10})
        elif mode == "counts":
            await self._json(writer, {"status": "ok", "sessions": 2**40, "max_sessions": 2**41})
        elif mode == "nested":
            body = b"[" * 300_000
            await self._write(writer, b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body), False)
            await self._write(writer, body)
        elif mode == "endless":
            await self._write(writer, b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n", False)
            while True:
                await self._write(writer, b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
        elif mode == "declared":
            await self._write(writer, b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 838860800\r\n\r\n", False)
            while True:
                await self._write(writer, CHUNK)
        elif mode == "gzip":
            body = _bomb()
            await self._write(writer, b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\n"
                                      b"content-length: %d\r\n\r\n" % len(body), False)
            await self._write(writer, body)
        elif mode == "drip":
            await self._write(writer, b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n", False)
            while True:
                await self._write(writer, b" ")
                await asyncio.sleep(0.2)
        else:
            raise ValueError(mode)

    async def _json(self, writer: asyncio.StreamWriter, doc: Any) -> None:
        body = json.dumps(doc).encode()
        await self._write(writer, b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body), False)
        await self._write(writer, body)
