"""`trajgym conformance DIR`: check this install's graders and engines against reference vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def conformance(
    directory: Annotated[Path, typer.Argument(help="folder of vector files (webshop_reward.jsonl, spider_exec.jsonl, ...)")],
    data_root: Annotated[Optional[Path], typer.Option("--data-root", help="datasets laid out like shared/data "
                                                       "(default: DIR/../data)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print {\"files\": {NAME: {cases, agree, examples}}}")] = False,
) -> None:
    """Run every vector file in DIR against the envs' own graders (default modes); exit 0 only if all agree."""
    from conformance.runner import run_cli

    root = data_root if data_root is not None else directory.parent / "data"
    raise typer.Exit(run_cli(directory, root, as_json))


def register(app: typer.Typer) -> None:
    app.command("conformance")(conformance)
