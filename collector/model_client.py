"""OpenAI-compatible chat-completions client over one pooled aiohttp session.

aiohttp, not httpx: measured 10× faster at 32+ concurrent requests on our machines
(shared/notes/http-client-performance.md; re-measured in bench/bench_collector.py).
A semaphore bounds in-flight calls to the endpoint. Transport errors, timeouts, 429
and 5xx are `ModelUnavailable` (infrastructure) and are retried with exponential
backoff; a context-length refusal is `ContextExceeded` (the episode is truncated);
other 4xx are `ModelRequestError`. vLLM extras (`logprobs`, `return_token_ids`) are
requested when enabled; in `auto` mode a server that refuses them (400 naming them)
is asked again without them, once, and never again.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from collector.config import Extras, Sampling


class ModelError(Exception):
    pass


class ModelUnavailable(ModelError):
    """Transport failure, timeout, 429 or 5xx: infrastructure, retried, never scored."""


class ModelRequestError(ModelError):
    """The server refused the request (4xx other than context length)."""


class ContextExceeded(ModelError):
    """The prompt no longer fits the model's context: the episode is truncated."""


_CONTEXT = re.compile(r"context length|maximum context|context window|too long|max_model_len|exceeds? the model",
                      re.IGNORECASE)
_EXTRA_NAMES = re.compile(r"logprobs|return_token_ids|token_ids|extra", re.IGNORECASE)
_TOKEN_ID = re.compile(r"^token_id:(\d+)$")
_JSON = {"Content-Type": "application/json"}


@dataclass(slots=True)
class ChatResult:
    content: str | None
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    token_ids: list[int] | None
    prompt_token_ids: list[int] | None
    logprobs: list[float] | None
    latency_ms: float


def api_base(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def parse_completion(body: dict[str, Any], latency_ms: float) -> ChatResult:
    try:
        choice = body["choices"][0]
        message = choice.get("message") or {}
    except (KeyError, IndexError, TypeError) as err:
        raise ModelUnavailable(f"malformed chat completion: {str(body)[:200]}") from err
    usage = body.get("usage") or {}
    logprobs: list[float] | None = None
    token_ids = choice.get("token_ids")
    lp = choice.get("logprobs")
    if isinstance(lp, dict) and isinstance(lp.get("content"), list):
        logprobs = [float(c.get("logprob", 0.0)) for c in lp["content"]]
        if token_ids is None and lp["content"]:
            ids = [_TOKEN_ID.match(str(c.get("token", ""))) for c in lp["content"]]
            if all(ids):
                token_ids = [int(m.group(1)) for m in ids if m]
    prompt_ids = body.get("prompt_token_ids") or choice.get("prompt_token_ids")
    return ChatResult(
        content=message.get("content"),
        tool_calls=message.get("tool_calls") or None,
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        token_ids=list(token_ids) if token_ids is not None else None,
        prompt_token_ids=list(prompt_ids) if prompt_ids is not None else None,
        logprobs=logprobs,
        latency_ms=latency_ms,
    )


class ModelClient:
    def __init__(self, url: str, *, model_name: str | None = None, api_key: str | None = None, timeout: float = 300.0,
                 concurrency: int = 64, retries: int = 3, backoff: float = 0.5, extras: Extras = Extras.auto) -> None:
        self.base = api_base(url)
        self.model_name = model_name
        self.retries = retries
        self.backoff = backoff
        self.extras = extras
        self._extras_ok = extras is not Extras.off
        self._sem = asyncio.Semaphore(concurrency)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
        self._http = aiohttp.ClientSession(connector=connector, headers=headers,
                                           timeout=aiohttp.ClientTimeout(total=timeout))
        self.calls = 0

    async def aclose(self) -> None:
        await self._http.close()

    async def resolve_model_name(self) -> str:
        if self.model_name:
            return self.model_name
        body = await self._send("GET", "/models", None)
        try:
            self.model_name = str(body["data"][0]["id"])
        except (KeyError, IndexError, TypeError) as err:
            raise ModelRequestError(f"{self.base}/models lists no model; pass --model-name") from err
        return self.model_name

    async def _send(self, method: str, path: str, payload: dict[str, Any] | None) -> Any:
        try:
            data = json.dumps(payload, separators=(",", ":")).encode() if payload is not None else None
            async with self._http.request(method, self.base + path, data=data, headers=_JSON if data else None) as resp:
                raw = await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as err:
            raise ModelUnavailable(f"{method} {self.base}{path}: {type(err).__name__}: {err}") from err
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw[:300].decode("utf-8", "replace")
        if status < 400:
            if body is None or isinstance(body, str):
                raise ModelUnavailable(f"{self.base}{path}: status {status} with a non-JSON body")
            return body
        detail = body.get("error", body) if isinstance(body, dict) else body
        message = json.dumps(detail)[:500] if not isinstance(detail, str) else detail[:500]
        if status == 429 or status >= 500:
            raise ModelUnavailable(f"model server {status}: {message}")
        if _CONTEXT.search(message):
            raise ContextExceeded(f"model server {status}: {message}")
        raise ModelRequestError(f"model server {status}: {message}")

    def _payload(self, messages: list[dict[str, Any]], sampling: Sampling, tools: list[dict[str, Any]] | None,
                 extras: bool, extra_body: dict[str, Any] | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model_name, "messages": messages,
                                   "temperature": sampling.temperature, "top_p": sampling.top_p,
                                   "max_tokens": sampling.max_tokens}
        if sampling.seed is not None:
            payload["seed"] = sampling.seed
        if sampling.stop:
            payload["stop"] = sampling.stop
        if tools:
            payload["tools"] = tools
            payload["tool_choice"] = "auto"
        if extras:
            payload["logprobs"] = True
            payload["return_token_ids"] = True
        if sampling.extra_body:
            payload.update(sampling.extra_body)
        if extra_body:
            payload.update(extra_body)
        return payload

    async def chat(self, messages: list[dict[str, Any]], sampling: Sampling,
                   tools: list[dict[str, Any]] | None = None, extra_body: dict[str, Any] | None = None) -> ChatResult:
        """One chat completion, retried on infrastructure errors with exponential backoff."""
        attempt = 0
        while True:
            extras = self._extras_ok
            payload = self._payload(messages, sampling, tools, extras, extra_body)
            started = time.perf_counter()
            try:
                async with self._sem:
                    self.calls += 1
                    body = await self._send("POST", "/chat/completions", payload)
                return parse_completion(body, (time.perf_counter() - started) * 1000.0)
            except ModelRequestError as err:
                if extras and self.extras is Extras.auto and _EXTRA_NAMES.search(str(err)):
                    self._extras_ok = False
                    continue
                raise
            except ModelUnavailable:
                attempt += 1
                if attempt > self.retries:
                    raise
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
