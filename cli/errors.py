"""How a command reports an expected failure: one `error:` line on stderr and exit code 2, never a traceback.

`fail(message)` is for a command's own checks; `CommandError` for failures found deeper down (the
quickstart's). `expected_error(err)` is the one place that maps the exception types that are expected
conditions — hub or model server down, no healthy replica, store locked or failing, port taken, bad data
dir or mode, unknown env, a path that cannot be used — to their line. `ErrorMappingGroup`, the class of the
root command (cli/main.py), applies it to every command. `trajgym --debug ...` (or TRAJGYM_DEBUG=1) lets
the exception through with its traceback; an exception that is not listed here is a bug and keeps it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

EXIT_ERROR = 2
DEBUG = False  # set by the root callback's --debug


class CommandError(Exception):
    """An expected failure a command describes in its own words (printed as is, exit 2)."""


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _loaded(module: str, name: str) -> type[BaseException] | None:
    """`module.name` if that module is imported already: an exception of a class never imported cannot occur."""
    mod = sys.modules.get(module)
    cls = getattr(mod, name, None) if mod is not None else None
    return cls if isinstance(cls, type) and issubclass(cls, BaseException) else None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def summary_line(text: str) -> str:
    """A multi-line message (a headline, then a log tail) as one line: the headline and the tail's last line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else ""
    return f"{lines[0].rstrip(':')}: … {lines[-1][:300]}"


def _store_error(err: Any) -> str:
    cause = getattr(err, "orig", None) or err
    first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    if "database is locked" in first:
        return ("the store is locked by another process (database is locked): wait for that process to finish, "
                "or stop it, then run again")
    return f"the store failed: {type(cause).__name__}: {first}"


def _os_error(err: Any) -> str:
    if err.filename is not None and err.strerror:
        return f"{err.strerror}: {err.filename}"
    return str(err)


# (module, class, message) in order: the first that matches wins, so subclasses come before their bases.
_EXPECTED: list[tuple[str, str, Callable[[Any], str]]] = [
    ("cli.errors", "CommandError", str),
    ("services.workers", "WorkersError", str),
    ("services.ports", "PortInUse", lambda e: f"{e}: another process listens there; stop it, or choose another port (--port)"),
    ("clients.hub_client", "HubUnavailable", lambda e: f"the hub is not reachable: {e}"),
    ("clients.hub_client", "NoHealthyReplica", str),
    ("clients.hub_client", "RegistryError", str),
    ("wire.errors", "EnvUnavailable", lambda e: f"an env service is not reachable: {e}"),
    ("wire.errors", "EnvClientError", str),
    ("collector.model_client", "ModelError", lambda e: f"the model server failed: {e}"),
    ("services.model.server", "SetupError", lambda e: summary_line(str(e)) or "the local model server failed"),
    ("collector.config", "EnvNotResolved", str),
    ("collector.collect", "JobError", str),
    ("store.repo", "RunExists", str),
    ("store.repo", "RunNotFound", str),
    ("store.repo", "ConfigMismatch", str),
    ("envs.registry", "UnknownEnv", str),
    ("envs.base", "DataDirError", str),
    ("envs.base", "ModeError", str),
    ("sqlalchemy.exc", "SQLAlchemyError", _store_error),
    ("builtins", "OSError", _os_error),
]


def expected_error(err: BaseException) -> str | None:
    """The `error:` line of an expected condition, or None (a bug: keep the traceback)."""
    for module, name, message in _EXPECTED:
        cls = _loaded(module, name)
        if cls is not None and isinstance(err, cls):
            return _one_line(message(err)) or type(err).__name__
    return None


class ErrorMappingGroup(TyperGroup):
    """The root command: an expected exception from any command becomes one `error:` line and exit 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as err:
            message = None if DEBUG else expected_error(err)
            if message is None:
                raise
            typer.echo(f"error: {message}", err=True)
            raise typer.Exit(EXIT_ERROR) from None
