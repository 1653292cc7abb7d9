"""OpenAI-compatible chat-completions client over one pooled aiohttp session.

aiohttp, not httpx: measured 10× faster at 32+ concurrent requests on our machines
(shared/notes/http-client-performance.md; re-measured in bench/bench_collector.py).
A semaphore bounds in-flight calls to the endpoint. What can go wrong, by kind:

* `ModelUnavailable` (infrastructure, retried with exponential backoff, never scored):
  transport errors, timeouts, 429, 5xx, and 401/403/404/408 (the server or its
  configuration, not this request);
* `ContextExceeded`: a 4xx saying the prompt no longer fits (the episode is truncated);
* `ModelRequestError`: any other 4xx: this request is refused and would be refused again
  (the episode ends as a policy error, the reason stored);
* `ModelReplyError`: a 2xx whose body cannot be used: not JSON, missing fields, wrong
  types (`usage.prompt_tokens: "n/a"`, a list as `content`). The episode ends as a
  policy error with the reason; the run goes on.

vLLM extras (`logprobs`, `return_token_ids`) are requested when enabled; in `auto` mode
a server that refuses them (400 naming them) is asked again without them, once, and
never again. Each call reports its queue time (waiting for a free slot of this client)
apart from its latency (request sent to answer read).

A `Conversation` keeps each message's JSON from when it was added, so a request body is
the new messages' encoding spliced with the old ones', not the whole conversation
re-encoded at every turn (quadratic in the episode's length).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from collector.config import Extras, Sampling


class ModelError(Exception):
    pass


class ModelUnavailable(ModelError):
    """Transport failure, timeout, 429 or 5xx: infrastructure, retried, never scored."""


class ModelRequestError(ModelError):
    """The server refused the request (4xx other than context length): repeatable for this request."""


class ContextExceeded(ModelError):
    """The prompt no longer fits the model's context: the episode is truncated."""


class ModelReplyError(ModelError):
    """A 2xx reply that cannot be used (not JSON, missing fields, wrong types): the episode is a policy error."""


_CONTEXT = re.compile(r"context length|maximum context|context window|too long|max_model_len|exceeds? the model"
                      r"|maximum model length|model length|prompt is too large|too many tokens|context_length_exceeded",
                      re.IGNORECASE)
_EXTRA_NAMES = re.compile(r"logprobs|return_token_ids|token_ids|extra", re.IGNORECASE)
_TOKEN_ID = re.compile(r"^token_id:(\d+)$")
_JSON = {"Content-Type": "application/json"}
_INFRA_4XX = (401, 403, 404, 408)


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
    queue_ms: float = 0.0
    seed: int | None = None


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class Conversation(Sequence[dict[str, Any]]):
    """The messages of one chat, append-only, each JSON-encoded once when added (a message must not be
    changed after it is added: the request would send its old encoding)."""

    __slots__ = ("_messages", "_encoded")

    def __init__(self, messages: Sequence[dict[str, Any]] = ()) -> None:
        self._messages: list[dict[str, Any]] = []
        self._encoded: list[str] = []
        for message in messages:
            self.append(message)

    def append(self, message: dict[str, Any]) -> None:
        self._encoded.append(_dumps(message))
        self._messages.append(message)

    def json(self) -> str:
        """The messages as a JSON array (what `json.dumps(list(self), separators=(",", ":"))` gives)."""
        return "[" + ",".join(self._encoded) + "]"

    def __len__(self) -> int:
        return len(self._messages)

    def __getitem__(self, index: Any) -> Any:
        return self._messages[index]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._messages)


def request_body(payload: dict[str, Any], messages: Sequence[dict[str, Any]] | None = None) -> bytes:
    """`payload` as compact JSON with `"messages"` first when given: a `Conversation`'s cached encoding,
    any other sequence encoded now (a `"messages"` of `payload` itself, from an extra body, wins)."""
    rest = _dumps(payload)
    if messages is None or "messages" in payload:
        return rest.encode()
    encoded = messages.json() if isinstance(messages, Conversation) else _dumps(list(messages))
    return ('{"messages":' + encoded + ("," + rest[1:] if rest != "{}" else "}")).encode()


def api_base(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def _show(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _bad(where: str, value: Any, expected: str) -> ModelReplyError:
    return ModelReplyError(f"malformed chat completion: {where} is {_show(value)}, not {expected}")


def _count(usage: dict[str, Any], key: str) -> int:
    value = usage.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value != int(value):
        raise _bad(f"usage.{key}", value, "a non-negative integer")
    return int(value)


def _int_list(value: Any, where: str) -> list[int] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not {int}.issuperset(map(type, value)):  # JSON ints are exactly int (no bools)
        raise _bad(where, value, "a list of integers")
    return list(value)


def _tool_calls(value: Any) -> list[dict[str, Any]] | None:
    if value is None or value == []:
        return None
    if not isinstance(value, list):
        raise _bad("message.tool_calls", value, "a list")
    for i, call in enumerate(value):
        where = f"message.tool_calls[{i}]"
        if not isinstance(call, dict):
            raise _bad(where, call, "an object")
        fn = call.get("function")
        if not isinstance(fn, dict):
            raise _bad(f"{where}.function", fn, "an object")
        if not isinstance(fn.get("name"), str):
            raise _bad(f"{where}.function.name", fn.get("name"), "a string")
        args = fn.get("arguments")
        if args is not None and not isinstance(args, str | dict):
            raise _bad(f"{where}.function.arguments", args, "a JSON string or an object")
        if call.get("id") is not None and not isinstance(call.get("id"), str):
            raise _bad(f"{where}.id", call.get("id"), "a string")
    return value


def _logprobs(lp: Any) -> tuple[list[float] | None, list[int] | None]:
    """(logprobs, token ids read from `token_id:N` tokens) of a choice's `logprobs`."""
    if not isinstance(lp, dict) or lp.get("content") is None:
        return None, None
    content = lp["content"]
    if not isinstance(content, list):
        raise _bad("logprobs.content", content, "a list")
    out: list[float] = []
    for i, c in enumerate(content):
        value = c.get("logprob", 0.0) if isinstance(c, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _bad(f"logprobs.content[{i}].logprob", value, "a number")
        out.append(float(value))
    ids = [_TOKEN_ID.match(str(c.get("token", ""))) for c in content]
    token_ids = [int(m.group(1)) for m in ids if m] if content and all(ids) else None
    return out, token_ids


def parse_completion(body: Any, latency_ms: float) -> ChatResult:
    """The first choice of a chat completion, every field checked; `ModelReplyError` names what is wrong."""
    if not isinstance(body, dict):
        raise _bad("the body", body, "a JSON object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _bad("choices", choices, "a non-empty list")
    choice = choices[0]
    if not isinstance(choice, dict):
        raise _bad("choices[0]", choice, "an object")
    message = choice.get("message")
    if message is None:
        message = {}
    if not isinstance(message, dict):
        raise _bad("message", message, "an object")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise _bad("message.content", content, "a string")
    finish = choice.get("finish_reason")
    if finish is not None and not isinstance(finish, str):
        raise _bad("finish_reason", finish, "a string")
    usage = body.get("usage")
    if usage is None:
        usage = {}
    if not isinstance(usage, dict):
        raise _bad("usage", usage, "an object")
    logprobs, lp_ids = _logprobs(choice.get("logprobs"))
    token_ids = _int_list(choice.get("token_ids"), "choices[0].token_ids")
    prompt_ids = body.get("prompt_token_ids")
    if prompt_ids is None:
        prompt_ids = choice.get("prompt_token_ids")
    return ChatResult(
        content=content,
        tool_calls=_tool_calls(message.get("tool_calls")),
        finish_reason=finish,
        prompt_tokens=_count(usage, "prompt_tokens"),
        completion_tokens=_count(usage, "completion_tokens"),
        token_ids=token_ids if token_ids is not None else lp_ids,
        prompt_token_ids=_int_list(prompt_ids, "prompt_token_ids"),
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

    async def model_card(self) -> dict[str, Any]:
        """What the server reports of the model in use (`GET /v1/models`, its entry): id, root, owner, context
        length, revision where given. Volatile fields (`created`, permissions) are left out; {} when the
        server does not list it."""
        try:
            body = await self._send("GET", "/models", None)
        except ModelError:
            return {}
        entries = body.get("data") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            return {}
        entry = next((e for e in entries if isinstance(e, dict) and e.get("id") == self.model_name), None)
        if entry is None:
            return {}
        return {k: v for k, v in entry.items() if isinstance(k, str) and _stable_card_key(k)
                and isinstance(v, str | int | float | bool | type(None))}

    async def _send(self, method: str, path: str, payload: dict[str, Any] | None,
                    messages: Sequence[dict[str, Any]] | None = None) -> Any:
        try:
            data = request_body(payload, messages) if payload is not None else None
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
                raise ModelReplyError(f"{self.base}{path}: status {status} with a non-JSON body: {_show(body)}")
            return body
        detail = body.get("error", body) if isinstance(body, dict) else body
        message = json.dumps(detail)[:500] if not isinstance(detail, str) else detail[:500]
        if status == 429 or status >= 500 or status in _INFRA_4XX:
            raise ModelUnavailable(f"model server {status}: {message}")
        if _CONTEXT.search(message):
            raise ContextExceeded(f"model server {status}: {message}")
        raise ModelRequestError(f"model server {status}: {message}")

    def _payload(self, sampling: Sampling, tools: list[dict[str, Any]] | None, extras: bool,
                 extra_body: dict[str, Any] | None = None, seed: int | None = None) -> dict[str, Any]:
        """The request body without its messages (`_send` puts them first)."""
        payload: dict[str, Any] = {"model": self.model_name, **sampling.request_fields()}
        if seed is not None:
            payload["seed"] = seed
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

    async def chat(self, messages: Sequence[dict[str, Any]], sampling: Sampling,
                   tools: list[dict[str, Any]] | None = None, extra_body: dict[str, Any] | None = None,
                   seed: int | None = None) -> ChatResult:
        """One chat completion, retried on infrastructure errors with exponential backoff. `seed` (default:
        `sampling.seed`) is sent as the request's seed. `messages`: a `Conversation` is sent from its
        cached encoding."""
        attempt = 0
        queued = 0.0
        if seed is None:
            seed = sampling.seed
        while True:
            extras = self._extras_ok
            payload = self._payload(sampling, tools, extras, extra_body, seed)
            waiting = time.perf_counter()
            try:
                async with self._sem:
                    started = time.perf_counter()
                    queued += started - waiting
                    self.calls += 1
                    body = await self._send("POST", "/chat/completions", payload, messages)
                    latency = (time.perf_counter() - started) * 1000.0
                result = parse_completion(body, latency)
                result.queue_ms = queued * 1000.0
                result.seed = seed
                return result
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


_CARD_KEYS = ("id", "root", "parent", "owned_by", "max_model_len")
_CARD_VERSIONED = re.compile(r"revision|version|commit|sha|digest|hash", re.IGNORECASE)


def _stable_card_key(key: str) -> bool:
    return key in _CARD_KEYS or _CARD_VERSIONED.search(key) is not None
