"""The `trajgym` command line: the one top of the layers, where every command group is registered.

Each group lives in its own module under `cli/` and exposes `register(app)`; this module
imports them all explicitly, so a command module that fails to import is an error, never a
silently missing command. Command modules keep their heavy imports inside the commands, so
`trajgym serve` does not pay for the collector's.

Every command reports an expected failure as one `error:` line and exit 2 (`cli/errors.py` maps the
exception types); `trajgym --debug COMMAND ...` shows the traceback instead.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli import collect, conformance, errors, export, hub, model, quickstart, serve

app = typer.Typer(cls=errors.ErrorMappingGroup, no_args_is_help=True, add_completion=False,
                  help="trajgym: agent environments as services, and a trajectory collector.")


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", envvar="TRAJGYM_DEBUG",
                                        help="show the traceback of an expected error instead of its one `error:` line")] = False,
) -> None:
    """trajgym: agent environments as services, and a trajectory collector."""
    errors.DEBUG = debug


for group in (serve, quickstart, collect, export, hub, model, conformance):
    group.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
