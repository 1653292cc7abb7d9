"""A bare WebSocket echo: the baseline a session channel is measured against (bench_service.py).

`WS /ws` answers each JSON message with the same JSON (parsed and serialized again), one message at
a time, until the client goes away. `GET /health` answers once the server is up.

    python -m bench.ws_noop_app --port P   (uvicorn with the env service's settings, see common.serve_app)
"""

from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.websocket("/ws")
async def echo(ws: WebSocket) -> None:
    await ws.accept()
    try:
        while True:
            message: Any = await ws.receive_json()
            await ws.send_json(message)
    except WebSocketDisconnect:
        pass


if __name__ == "__main__":
    from bench.common import serve_app

    serve_app(app)
