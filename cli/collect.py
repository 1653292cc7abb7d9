"""`trajgym collect | runs | show | eval`: the collector's commands on the main typer app."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from collector.config import EnvNotResolved, Extras, Policy, PromptFormat, SplitChoice, build_job


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return asyncio.new_event_loop()


def _fail(console: Console, message: str, code: int = 2) -> typer.Exit:
    """One `error:` line on stderr (never wrapped), exit 2: what every command does (cli/errors.py)."""
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    return typer.Exit(code)


def collect(
    env: Annotated[str | None, typer.Option("--env", help="env service URL, or a registered env name (with --hub)")] = None,
    hub: Annotated[str | None, typer.Option("--hub", help="hub URL: resolves --env NAME and places episodes on replicas (env TRAJGYM_HUB_URL)")] = None,
    model: Annotated[str | None, typer.Option("--model", help="OpenAI-compatible server URL (…/v1 or root)")] = None,
    policy: Annotated[Policy | None, typer.Option("--policy", help="model or expert")] = None,
    split: Annotated[SplitChoice | None, typer.Option("--split", help="train, dev, test or all")] = None,
    samples: Annotated[int | None, typer.Option("--samples", help="samples per task")] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", help="episodes in flight")] = None,
    store: Annotated[str | None, typer.Option("--store", help="SQLAlchemy URL or SQLite file")] = None,
    run_name: Annotated[str | None, typer.Option("--run-name", help="name of the run in the store")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue (or join) the run; same config hash required")] = False,
    job: Annotated[Path | None, typer.Option("--job", help="YAML or TOML job file; flags override it")] = None,
    max_turns: Annotated[int | None, typer.Option("--max-turns", help="turn limit (default: the env's)")] = None,
    prompt_format: Annotated[PromptFormat | None, typer.Option("--prompt-format", help="react or tools (with --policy expert: its actions as tool calls)")] = None,
    constrain: Annotated[bool, typer.Option("--constrain", help="ReAct: constrain decoding to the env's action forms (vLLM)")] = False,
    limit: Annotated[int | None, typer.Option("--limit", help="first N tasks of the selection")] = None,
    model_name: Annotated[str | None, typer.Option("--model-name", help="model id (default: first of /v1/models)")] = None,
    extras: Annotated[Extras | None, typer.Option("--extras", help="vLLM token ids + logprobs: auto, on, off")] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", help="sampling temperature (default 0: greedy)")] = None,
    top_p: Annotated[float | None, typer.Option("--top-p", help="nucleus sampling mass (default 1)")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", help="top-k sampling (vLLM; -1 = off; default: not sent)")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", help="completion tokens per model call (default 512)")] = None,
    stop: Annotated[list[str] | None, typer.Option("--stop", help="stop sequence (repeatable)")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="run seed (default 0): each task × sample gets its own seed from it")] = None,
    sampling_file: Annotated[Path | None, typer.Option("--sampling-file", help="YAML/TOML/JSON mapping of sampling keys "
                                                       "(min_p, repetition_penalty, extra_body, ...); flags override it")] = None,
    allow_identical_samples: Annotated[bool, typer.Option("--allow-identical-samples",
                                                          help="allow --samples > 1 at temperature 0 (identical greedy samples)")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="no live progress bar")] = False,
) -> None:
    """Collect trajectories: a policy (model or expert) against an env service, stored per turn."""
    from collector.display import make_progress, progress_line, summary_table
    from collector.collect import Collector, JobError
    from store import ConfigMismatch, RunExists

    console = Console(stderr=False)
    overrides = {"env": env, "hub": hub, "model": model, "policy": policy, "split": split, "samples": samples,
                 "concurrency": concurrency, "store": store, "run_name": run_name, "max_turns": max_turns,
                 "prompt_format": prompt_format, "constrain_actions": constrain or None, "limit": limit, "model_name": model_name,
                 "extras": extras, "allow_identical_samples": allow_identical_samples or None}
    sampling = {"temperature": temperature, "top_p": top_p, "top_k": top_k, "max_tokens": max_tokens, "stop": stop or None,
                "seed": seed}
    try:
        cfg = build_job(job, overrides, sampling_file=sampling_file, sampling=sampling)
    except (ValidationError, ValueError, OSError) as err:
        raise _fail(console, f"invalid job: {err}") from err
    if cfg.api_key is None and os.environ.get("OPENAI_API_KEY"):
        cfg.api_key = os.environ["OPENAI_API_KEY"]
    collector = Collector(cfg, resume=resume)

    async def main() -> object:
        loop = asyncio.get_running_loop()
        interrupts = 0

        def on_signal() -> None:
            nonlocal interrupts
            interrupts += 1
            if interrupts > 1:
                console.print("[red]second interrupt: exiting now (held claims expire with their lease)[/red]")
                os._exit(130)
            console.print("[yellow]stopping: releasing in-flight episodes (Ctrl-C again to quit at once)[/yellow]")
            collector.request_stop()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        run_task = asyncio.create_task(collector.run())
        if quiet:
            return await run_task
        with make_progress(console) as progress:
            bar = progress.add_task(cfg.run_name, total=None, line="starting")
            while not run_task.done():
                s = collector.stats
                if s.total:
                    progress.update(bar, total=s.total, completed=s.already_done + s.done, line=progress_line(s))
                await asyncio.wait({run_task}, timeout=0.25)
            s = collector.stats
            progress.update(bar, total=s.total or 1, completed=s.already_done + s.done, line=progress_line(s))
        return await run_task

    try:
        with asyncio.Runner(loop_factory=_new_loop) as runner:
            summary = runner.run(main())
    except (RunExists, ConfigMismatch, JobError, EnvNotResolved) as err:
        raise _fail(console, str(err)) from err
    except Exception as err:  # infra failures before collection starts: say what, exit non-zero
        from wire.errors import EnvClientError
        from collector.model_client import ModelError

        if isinstance(err, (EnvClientError, ModelError)):
            raise _fail(console, f"{type(err).__name__}: {err}") from err
        from sqlalchemy.exc import SQLAlchemyError

        from store.connect import safe_url

        if isinstance(err, SQLAlchemyError):  # disk full, read-only file, database down: name the store and the cause
            cause = getattr(err, "orig", None) or err
            raise _fail(console, f"store {safe_url(cfg.store)} failed: {type(cause).__name__}: {str(cause).splitlines()[0]} "
                                 f"(finished episodes are committed; fix the store and rerun with --resume)") from err
        raise
    console.print(summary_table(summary))  # type: ignore[arg-type]
    env_errors = summary.counts.get("env_error", 0)  # type: ignore[attr-defined]
    if env_errors:
        console.print(f"[red]{env_errors} episodes ended as env errors[/red] (the env service failed on its own, twice; "
                      f"they count as not solved): see `trajgym show {cfg.run_name} --store ... --list` for the exception texts")
    infra = summary.counts.get("infra_error", 0)  # type: ignore[attr-defined]
    if infra:
        console.print(f"[yellow]{infra} episodes ended as infra errors (not scored): run the same command with "
                      f"--resume to retry them[/yellow]")
    if summary.stopped:  # type: ignore[attr-defined]
        raise typer.Exit(130)


def runs(store: Annotated[str, typer.Option("--store", help="SQLAlchemy URL or SQLite file")]) -> None:
    """List the runs of a store with their episode counts."""
    from collector.display import runs_table
    from store import Store

    s = Store(store)
    try:
        Console().print(runs_table(s.list_runs()))
    finally:
        s.close()


def show(
    run: Annotated[str, typer.Argument(help="run name")],
    store: Annotated[str, typer.Option("--store", help="SQLAlchemy URL or SQLite file")],
    episode: Annotated[int | None, typer.Option("--episode", help="episode id (see the table); default: the first finished")] = None,
    list_episodes: Annotated[bool, typer.Option("--list", help="list the run's episodes instead")] = False,
    provenance: Annotated[bool, typer.Option("--provenance", help="print the run's whole provenance record as JSON, nothing else")] = False,
) -> None:
    """Print a run's provenance and a trajectory (one episode, every turn), or its episode list."""
    from collector.display import episodes_table, print_trajectory, provenance_table
    from store import RunNotFound, Store

    console = Console()
    s = Store(store)
    try:
        try:
            r = s.get_run(run)
        except RunNotFound as err:
            raise _fail(console, str(err)) from err
        if provenance:
            sys.stdout.write(json.dumps(r.get("provenance"), indent=2, ensure_ascii=False) + "\n")
            return
        console.print(provenance_table(r))
        eps = s.episodes(r["id"])
        if list_episodes:
            console.print(episodes_table(eps))
            return
        chosen = [e for e in eps if e["id"] == episode] if episode is not None else [e for e in eps if e["status"] == "done"][:1]
        if not chosen:
            raise _fail(console, f"run {run!r} has no episode {episode}" if episode is not None else f"run {run!r} has no finished episode yet")
        print_trajectory(console, chosen[0], s.turns(chosen[0]["id"]))
    finally:
        s.close()


def eval_run(
    store: Annotated[str, typer.Option("--store", help="SQLAlchemy URL or SQLite file")],
    runs: Annotated[list[str] | None, typer.Argument(help="run name(s): several are shown side by side")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    suite: Annotated[str | None, typer.Option("--suite", help="run a model on a named suite (or a suite .yaml/.json) and report it")] = None,
    env: Annotated[str | None, typer.Option("--env", help="--suite: env service URL (or name with TRAJGYM_ENV_URL_<NAME>)")] = None,
    model: Annotated[str | None, typer.Option("--model", help="--suite: OpenAI-compatible server URL")] = None,
    model_name: Annotated[str | None, typer.Option("--model-name", help="without --suite: also score all runs of this model pooled; with --suite: the model id (default: first of /v1/models)")] = None,
    policy: Annotated[Policy, typer.Option("--policy", help="--suite: model, or expert for a reference score")] = Policy.model,
    prompt_format: Annotated[PromptFormat | None, typer.Option("--prompt-format", help="--suite: react or tools")] = None,
    samples: Annotated[int | None, typer.Option("--samples", help="--suite: samples per task (default: the suite's)")] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", help="--suite: episodes in flight")] = None,
    max_turns: Annotated[int | None, typer.Option("--max-turns", help="--suite: turn limit (default: the env's)")] = None,
    run_name: Annotated[str | None, typer.Option("--run-name", help="--suite: run name (default: suite-model-time)")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="--suite: report file (default: <run>.report.json)")] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", help="--suite: sampling temperature (default 0)")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="--suite: run seed (default 0)")] = None,
    allow_identical_samples: Annotated[bool, typer.Option("--allow-identical-samples",
                                                          help="--suite: allow samples > 1 at temperature 0")] = False,
    allow_env_errors: Annotated[bool, typer.Option("--allow-env-errors", help="exit 0 even when a run has env errors")] = False,
) -> None:
    """Score runs per env and split side by side (env errors count as not solved, infra errors are excluded
    from the denominators); or run a suite. Exits 5 when a run has env errors, unless --allow-env-errors."""
    from collector.display import comparison_table
    from store.scoring import env_error_count, eval_payload, mixed_modes, score_model, score_runs
    from store import RunNotFound, Store

    console = Console(stderr=as_json)
    if suite is not None:
        if runs:
            raise _fail(console, "give either run names or --suite, not both")
        _eval_suite(console, suite, store=store, as_json=as_json, report=report, allow_env_errors=allow_env_errors, settings={
            "env": env, "model": model, "model_name": model_name, "policy": policy, "prompt_format": prompt_format,
            "samples": samples, "concurrency": concurrency, "max_turns": max_turns, "run_name": run_name,
            "store": store, "api_key": os.environ.get("OPENAI_API_KEY"),
            "sampling": {k: v for k, v in (("temperature", temperature), ("seed", seed)) if v is not None} or None,
            "allow_identical_samples": allow_identical_samples or None})
        return
    if not runs and model_name is None:
        raise _fail(console, "name at least one run (see `trajgym runs --store ...`), or --model-name, or --suite")
    s = Store(store)
    try:
        try:
            scored = score_runs(s, runs or [])
            if model_name is not None:
                scored.extend(score_model(s, model_name))
        except RunNotFound as err:
            raise _fail(console, str(err)) from err
    finally:
        s.close()
    if as_json:
        sys.stdout.write(json.dumps(eval_payload(scored), indent=2) + "\n")
    else:
        console.print(comparison_table(scored, title="eval " + " vs ".join(r.run for r in scored)))
        if mixed_modes(scored):
            console.print("[yellow]note:[/yellow] these runs were collected under different env modes (see the column "
                          "headers): their scores are not comparable")
    _check_env_errors(console, env_error_count(scored), allow_env_errors)


ENV_ERRORS_EXIT = 5


def _check_env_errors(console: Console, n: int, allowed: bool) -> None:
    """Env errors make `eval` fail (exit 5): the scores count them as not solved, but the env has a bug."""
    if not n:
        return
    if allowed:
        console.print(f"[yellow]{n} env error(s), counted as not solved (allowed by --allow-env-errors)[/yellow]")
        return
    console.print(f"[red]error:[/red] {n} episode(s) ended as env errors (the env service failed on its own; counted as "
                  f"not solved, see success_rate_excluding_env_errors): fix the env and collect again, or pass "
                  f"--allow-env-errors to accept these scores")
    raise typer.Exit(ENV_ERRORS_EXIT)


def _eval_suite(console: Console, ref: str, *, store: str, as_json: bool, report: Path | None,
                settings: dict[str, object], allow_env_errors: bool = False) -> None:
    from collector.display import comparison_table
    from store.scoring import RunScores, SplitScore
    from store import ConfigMismatch
    from collector.suites import SuiteError, UnknownSuite, get_suite, job_for_suite, run_suite

    try:
        suite = get_suite(ref)
        if settings.get("env") is None:
            raise ValueError("--suite needs --env (the env service URL)")
        job = job_for_suite(suite, settings)
    except (UnknownSuite, ValidationError, ValueError, OSError) as err:
        raise _fail(console, f"suite: {err}") from err
    try:
        with asyncio.Runner(loop_factory=_new_loop) as runner:
            result = runner.run(run_suite(suite, job))
    except (SuiteError, ConfigMismatch, EnvNotResolved) as err:
        raise _fail(console, str(err)) from err
    except Exception as err:
        from wire.errors import EnvClientError
        from collector.collect import JobError
        from collector.model_client import ModelError

        if isinstance(err, (EnvClientError, ModelError, JobError)):
            raise _fail(console, f"{type(err).__name__}: {err}") from err
        raise
    path = report or Path(f"{job.run_name}.report.json")
    path.write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    scores = RunScores(run=result.run, run_id=result.run_id, env=result.env, model=result.model, policy=result.policy,
                       prompt_format=result.prompt_format, scores=[SplitScore.model_validate(x) for x in result.scores])
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        console.print(comparison_table([scores], title=f"suite {suite.name} ({len(suite.task_ids)} tasks) · run {result.run}"))
        if result.missing:
            console.print(f"[yellow]{len(result.missing)} task(s) without a scored sample[/yellow] (infra errors?)")
        console.print(f"report written to {path}")
    _check_env_errors(console, sum(s.env_errors for s in scores.scores), allow_env_errors)


def register(app: typer.Typer) -> None:
    app.command("collect")(collect)
    app.command("runs")(runs)
    app.command("show")(show)
    app.command("eval")(eval_run)
