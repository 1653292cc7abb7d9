"""Session table of one env service: create, look up, lock, close, reap idle sessions.

A session owns one `Env` instance. Steps on one session are serialised by its
lock; idle sessions are reaped after a TTL (the table's, or the session's own
`ttl`); a full table refuses new sessions (the service answers 429 with
Retry-After) instead of sharing or reusing one. Sessions opened for the AgentGym
routes also get an integer index, drawn at random so that no client can guess
another's (AgentGym clients need integers).

Quotas keep one client from taking every slot: a `ClientKey` (peer address, client id
from the `X-Trajgym-Client` header or "") may hold `per_client` sessions, and one peer
address `per_address` in all (so rotating the self-chosen id buys at most that).
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from envs.base import Env
from wire.errors import QuotaExceeded, ServerFull, SessionNotFound


class ClientKey(NamedTuple):
    """Whose session: the peer address, and the client id it sent ("" without the header)."""

    address: str
    client_id: str = ""

    def __str__(self) -> str:
        return f"{self.client_id}@{self.address}" if self.client_id else self.address


LOCAL = ClientKey("local")


@dataclass(eq=False)
class Session:
    id: str
    env: Env
    created_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    agentgym_index: int | None = None
    ttl: float | None = None  # idle seconds before reaping; None: the table's TTL
    agentgym_state: Any = None  # per-instance state of the AgentGym routes (services.agentgym)
    client: ClientKey = LOCAL

    def touch(self) -> None:
        self.last_used = time.monotonic()


# AgentGym indices: random in [1, 2**53) (exact in JSON numbers everywhere, JavaScript included).
AGENTGYM_INDEX_BOUND = 2**53


class SessionManager:
    """In-memory session table; all methods run on the event loop (no thread touches it)."""

    def __init__(self, max_sessions: int, ttl_seconds: float, on_close: Callable[[Session, str], None] | None = None,
                 remember_closed: int = 100_000, per_client: int | None = None, per_address: int | None = None) -> None:
        self.max_sessions = max_sessions
        self.ttl = ttl_seconds
        self.per_client = per_client or max_sessions
        self.per_address = per_address or max_sessions
        self._sessions: dict[str, Session] = {}
        self._reserved = 0
        self._by_client: Counter[ClientKey] = Counter()  # open + reserved
        self._by_address: Counter[str] = Counter()
        self._agentgym: dict[int, str] = {}
        self._closed: OrderedDict[str, None] = OrderedDict()
        self._remember_closed = remember_closed
        self._on_close = on_close

    def __len__(self) -> int:
        return len(self._sessions)

    def held(self, client: ClientKey) -> int:
        """Sessions `client` holds (open, or being opened)."""
        return self._by_client[client]

    # A slot is reserved before the (possibly slow) reset runs, so the limits hold under concurrency.
    def reserve(self, client: ClientKey = LOCAL) -> None:
        if len(self._sessions) + self._reserved >= self.max_sessions:
            retry_after = self._retry_after(self._sessions.values())
            raise ServerFull(f"session limit reached; retry after {retry_after} s", retry_after=retry_after)
        if self._by_client[client] >= self.per_client:
            retry_after = self._retry_after(s for s in self._sessions.values() if s.client == client)
            raise QuotaExceeded(f"client {client} already holds {self._by_client[client]} sessions, its quota "
                                f"(--max-sessions-per-client {self.per_client}); close one, or retry after {retry_after} s "
                                "when the oldest idle one expires", retry_after=retry_after)
        if self._by_address[client.address] >= self.per_address:
            retry_after = self._retry_after(s for s in self._sessions.values() if s.client.address == client.address)
            raise QuotaExceeded(f"address {client.address} already holds {self._by_address[client.address]} sessions, its "
                                f"quota (--max-sessions-per-address {self.per_address}) whatever client ids it sends; "
                                f"close one, or retry after {retry_after} s", retry_after=retry_after)
        self._reserved += 1
        self._count(client, +1)

    def release(self, client: ClientKey = LOCAL) -> None:
        self._reserved -= 1
        self._count(client, -1)

    def _count(self, client: ClientKey, delta: int) -> None:
        self._by_client[client] += delta
        if self._by_client[client] <= 0:
            del self._by_client[client]
        self._by_address[client.address] += delta
        if self._by_address[client.address] <= 0:
            del self._by_address[client.address]

    def add(self, env: Env, agentgym: bool = False, client: ClientKey = LOCAL) -> Session:
        """Turn `client`'s reservation into an open session."""
        self._reserved -= 1
        session = Session(id=str(uuid.uuid4()), env=env, client=client)
        if agentgym:
            index = 1 + secrets.randbelow(AGENTGYM_INDEX_BOUND - 1)
            while index in self._agentgym:
                index = 1 + secrets.randbelow(AGENTGYM_INDEX_BOUND - 1)
            session.agentgym_index = index
            self._agentgym[index] = session.id
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            state = "closed or expired" if session_id in self._closed else "unknown"
            raise SessionNotFound(f"session {session_id} is {state}")
        session.touch()
        return session

    def peek(self, session_id: str) -> Session | None:
        """The open session with that id, or None (not touched: looking is not using)."""
        return self._sessions.get(session_id)

    def check_open(self, session: Session) -> None:
        """Raise `SessionNotFound` if `session` was closed (e.g. while a request waited for its lock)."""
        if self._sessions.get(session.id) is not session:
            raise SessionNotFound(f"session {session.id} is closed or expired")

    def get_agentgym(self, index: int) -> Session:
        session_id = self._agentgym.get(index)
        if session_id is None:
            raise SessionNotFound(f"env index {index} is unknown or closed")
        return self.get(session_id)

    def agentgym_sessions(self) -> list[Session]:
        """The open sessions of the AgentGym routes."""
        return [self._sessions[sid] for sid in self._agentgym.values() if sid in self._sessions]

    def was_closed(self, session_id: str) -> bool:
        return session_id in self._closed

    def close(self, session_id: str, reason: str = "closed") -> bool:
        """Close a session; returns False if it was already closed (idempotent)."""
        session = self._sessions.pop(session_id, None)
        if session is None:
            if session_id in self._closed:
                return False
            raise SessionNotFound(f"session {session_id} is unknown")
        if session.agentgym_index is not None:
            self._agentgym.pop(session.agentgym_index, None)
        self._count(session.client, -1)
        self._closed[session_id] = None
        if len(self._closed) > self._remember_closed:
            self._closed.popitem(last=False)
        if self._on_close:
            self._on_close(session, reason)
        return True

    def reap(self) -> int:
        """Close sessions idle longer than their TTL (never one whose step is running)."""
        now = time.monotonic()
        expired = [s.id for s in self._sessions.values()
                   if s.last_used < now - (self.ttl if s.ttl is None else s.ttl) and not s.lock.locked()]
        for session_id in expired:
            self.close(session_id, reason="expired")
        return len(expired)

    def close_all(self) -> None:
        for session_id in list(self._sessions):
            self.close(session_id, reason="shutdown")

    def _retry_after(self, sessions: Iterable[Session]) -> int:
        """Seconds until the least recently used of `sessions` would expire (1 if none)."""
        oldest = min((s.last_used for s in sessions), default=None)
        if oldest is None:
            return 1
        return max(1, int(oldest + self.ttl - time.monotonic()) + 1)
