"""A scripted OpenAI-compatible chat-completions server for collector tests (FastAPI).

The policy is chosen by the request's `model` name and plays `tests.support.counter_env`:
`solver` reaches the target then finishes, `wrong` finishes with a wrong answer,
`looper` adds 1 forever, `garbage` never writes an action, `badtool` calls a tool
that does not exist, `double` makes two tool calls per reply (as the solver), and
`overflow` plays the solver but refuses, like vLLM, any prompt of more than 5 messages
with a 400 "maximum context length" error. ReAct replies are ``Thought: ...\nAction: ...`` text; when the
request carries `tools`, replies are tool calls. Token ids / logprobs are returned
when asked (`return_token_ids`, `logprobs`), derived deterministically from words,
unless `control.accept_extras` is False (then such requests get a vLLM-like 400).
Faults are scripted through `StubControl`: a queue of per-request faults
(`"500"`, `"timeout"` = no answer for 1 s, `"drop"` = response cut mid-body), an always-on fault, a delay.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

_TARGET = re.compile(r"Reach (\d+)")
_VALUE = re.compile(r"Current value: (\d+)")


@dataclass
class StubControl:
    faults: deque[str] = field(default_factory=deque)
    always: str | None = None
    delay: float = 0.0
    accept_extras: bool = True
    requests: list[dict[str, Any]] = field(default_factory=list)
    served: int = 0
    faulted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_fault(self) -> str | None:
        with self.lock:
            fault = self.faults.popleft() if self.faults else self.always
            if fault:
                self.faulted += 1
            return fault


def _tokens(text: str) -> list[int]:
    return [zlib.crc32(w.encode()) % 50_000 for w in text.split()]


def _decide(name: str, messages: list[dict[str, Any]]) -> tuple[str, dict[str, str]]:
    text = "\n".join(str(m.get("content") or "") for m in messages)
    target_m = _TARGET.search(text)
    target = int(target_m.group(1)) if target_m else 0
    values = _VALUE.findall(text)
    value = int(values[-1]) if values else 0
    if name == "wrong":
        return "finish", {"answer": str(target + 1)}
    if name == "looper":
        return "add", {"amount": "1"}
    if value < target:
        return "add", {"amount": str(min(9, target - value))}
    return "finish", {"answer": str(target)}


def _reply(body: dict[str, Any]) -> dict[str, Any]:
    name = str(body.get("model", "solver"))
    messages = body.get("messages") or []
    n_assistant = sum(1 for m in messages if m.get("role") == "assistant")
    message: dict[str, Any]
    if name == "garbage":
        content = "I am not sure what to do here."
        message = {"role": "assistant", "content": content}
        completion_text = content
    elif body.get("tools"):
        tool, args = _decide(name, messages)
        if name == "badtool":
            tool = "teleport"
        arguments = json.dumps(args)
        calls = [{"id": f"call_{n_assistant}", "type": "function", "function": {"name": tool, "arguments": arguments}}]
        if name == "double":
            calls.append({"id": f"call_{n_assistant}_b", "type": "function",
                          "function": {"name": "add", "arguments": json.dumps({"amount": "1"})}})
        message = {"role": "assistant", "content": None, "tool_calls": calls}
        completion_text = f"{tool} {arguments}"
    else:
        tool, args = _decide(name, messages)
        action = f"{tool}[{next(iter(args.values()))}]"
        content = f"Thought: step {n_assistant + 1}, I will {tool}.\nAction: {action}"
        message = {"role": "assistant", "content": content}
        completion_text = content
    prompt_text = " ".join(str(m.get("content") or "") for m in messages)
    prompt_ids, completion_ids = _tokens(prompt_text), _tokens(completion_text)
    choice: dict[str, Any] = {"index": 0, "message": message,
                              "finish_reason": "tool_calls" if message.get("tool_calls") else "stop"}
    out: dict[str, Any] = {"id": f"chatcmpl-{n_assistant}", "object": "chat.completion", "model": name,
                           "choices": [choice],
                           "usage": {"prompt_tokens": len(prompt_ids), "completion_tokens": len(completion_ids),
                                     "total_tokens": len(prompt_ids) + len(completion_ids)}}
    if body.get("logprobs"):
        choice["logprobs"] = {"content": [{"token": w, "logprob": -0.01 * (i + 1), "bytes": None, "top_logprobs": []}
                                          for i, w in enumerate(completion_text.split())]}
    if body.get("return_token_ids"):
        choice["token_ids"] = completion_ids
        out["prompt_token_ids"] = prompt_ids
    return out


def create_stub(control: StubControl | None = None) -> tuple[Any, StubControl]:
    """(ASGI app, control). Serve the app with `tests.support.server.running_server`."""
    control = control or StubControl()
    api = FastAPI(title="scripted OpenAI stub")

    @api.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "solver", "object": "model"}]}

    @api.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        with control.lock:
            control.requests.append(body)
        if not control.accept_extras and (body.get("return_token_ids") or body.get("logprobs")):
            return JSONResponse({"object": "error", "message": "return_token_ids: extra inputs are not permitted",
                                 "type": "BadRequestError", "code": 400}, status_code=400)
        if body.get("model") == "overflow" and len(body.get("messages") or []) > 5:
            return JSONResponse({"object": "error", "type": "BadRequestError", "code": 400,
                                 "message": "This model's maximum context length is 64 tokens. However, you requested 80 tokens."},
                                status_code=400)
        if control.delay:
            await asyncio.sleep(control.delay)
        with control.lock:
            control.served += 1
        return JSONResponse(_reply(body))

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/chat/completions"):
            fault = control.next_fault()
            if fault == "500":
                await send({"type": "http.response.start", "status": 500,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": b'{"error": {"message": "stub: internal error"}}'})
                return
            if fault == "timeout":
                await asyncio.sleep(1.0)
                return
            if fault == "drop":
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})
                await send({"type": "http.response.body", "body": b'{"id": "chatcmpl-cut', "more_body": True})
                raise ConnectionAbortedError("stub: connection dropped mid-response")
        await api(scope, receive, send)

    return app, control
