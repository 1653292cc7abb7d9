"""Rich rendering for the collector CLI: live progress, run summary, runs list, trajectories, scores."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from collector.collect import RunSummary
from store.scoring import RunScores, SplitScore, modes_label
from collector.stats import Stats


def make_progress(console: Console) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[line]}"), console=console, transient=False, refresh_per_second=4)


def progress_line(stats: Stats) -> str:
    rate = stats.success_rate
    succ = f"{rate:.1%}" if rate is not None else "–"
    return (f"success {succ} · {stats.turns / stats.elapsed:,.0f} turns/s · {stats.tokens / stats.elapsed:,.0f} tok/s"
            f" · errors {stats.errors} (env {stats.outcomes.get('env_error', 0)}, infra {stats.outcomes.get('infra_error', 0)}"
            f", retries {stats.infra_retries})")


def summary_table(summary: RunSummary) -> Table:
    s = summary.stats
    table = Table(title=f"run {summary.run_name} (id {summary.run_id})" + (" — stopped" if summary.stopped else ""))
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("episodes this process", str(s.done))
    for outcome in ("success", "failure", "truncated", "policy_error", "env_error", "infra_error"):
        table.add_row(f"  {outcome}", str(s.outcomes.get(outcome, 0)))
    table.add_row("success rate (scored)", f"{s.success_rate:.1%}" if s.success_rate is not None else "–")
    table.add_row("env turns", str(s.turns))
    table.add_row("tokens", str(s.tokens))
    table.add_row("elapsed", f"{s.elapsed:.1f} s")
    table.add_row("turns/s", f"{s.turns / s.elapsed:,.1f}")
    table.add_row("run total (stored)", ", ".join(f"{k} {v}" for k, v in sorted(summary.counts.items())))
    return table


def runs_table(runs: list[dict[str, Any]]) -> Table:
    table = Table(title="runs")
    for col in ("id", "name", "env", "policy", "format", "model", "episodes", "status", "created"):
        table.add_column(col)
    for r in runs:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r["counts"].items()))
        table.add_row(str(r["id"]), escape(r["name"]), r["env"], r["policy"], r["prompt_format"], r["model"] or "–",
                      str(r["total_episodes"]), counts, str(r["created_at"])[:19])
    return table


def episodes_table(episodes: list[dict[str, Any]], limit: int = 200) -> Table:
    table = Table(title=f"episodes (first {min(limit, len(episodes))} of {len(episodes)})")
    for col in ("episode", "task", "split", "sample", "status", "outcome", "reward", "turns", "attempt", "error"):
        table.add_column(col)
    for e in episodes[:limit]:
        table.add_row(str(e["id"]), escape(e["task_id"]), e["split"], str(e["sample"]), e["status"], e["outcome"] or "–",
                      "–" if e["reward"] is None else f"{e['reward']:.3g}", str(e["turns"] if e["turns"] is not None else "–"),
                      str(e["attempt"]), escape((e["error"] or "")[:60]))
    return table


def print_trajectory(console: Console, episode: dict[str, Any], turns: list[dict[str, Any]]) -> None:
    head = (f"episode {episode['id']} · task {episode['task_id']} ({episode['split']}) · sample {episode['sample']} · "
            f"{episode['outcome'] or episode['status']} · reward {episode['reward']} · turns {episode['turns']}")
    console.print(Panel(Text(head), style="bold"))
    for t in turns:
        body = t["content"] or ""
        if t["tool_calls"]:
            body += ("\n" if body else "") + "tool calls: " + json.dumps(t["tool_calls"])
        meta = []
        if t["reward"] is not None:
            meta.append(f"reward {t['reward']}")
        if t["latency_ms"] is not None:
            meta.append(f"{t['latency_ms']:.1f} ms")
        if t.get("queue_ms"):
            meta.append(f"queued {t['queue_ms']:.1f} ms")
        if t.get("env_ms") is not None:
            meta.append(f"env {t['env_ms']:.1f} ms")
        if t.get("progress") is not None:
            meta.append(f"progress {t['progress']:.3g}")
        if t.get("invalid_action"):
            meta.append("invalid action")
        if t.get("truncated"):
            meta.append("truncated")
        if t.get("info"):
            meta.append("info " + json.dumps(t["info"], default=str)[:120])
        if t["completion_tokens"] is not None:
            meta.append(f"{t['prompt_tokens']}+{t['completion_tokens']} tok")
        if t["token_ids"] is not None:
            meta.append(f"{len(t['token_ids'])} token ids")
        console.print(Panel(Text(body), title=escape(f"[{t['idx']}] {t['role']}"), subtitle=" · ".join(meta) or None,
                            title_align="left"))


def provenance_table(run: dict[str, Any]) -> Table:
    """A run's provenance, one field a row (long texts shortened; `show --provenance` prints it whole)."""
    from collector.provenance import summary_rows

    table = Table(title=f"provenance of run {escape(run['name'])}")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    prov = run.get("provenance")
    if not prov:
        table.add_row("–", "not recorded (a run collected before provenance was stored)")
        return table
    for field, value in summary_rows(prov):
        table.add_row(field, escape(value))
    return table


def scores_table(run_name: str, scores: list[SplitScore]) -> Table:
    table = Table(title=f"eval {run_name}")
    for col in ("env", "split", "episodes", "success_rate", "mean_reward", "mean_progress", "mean_turns", "failure",
                "truncated", "policy_error", "env_errors", "infra_errors", "unfinished"):
        table.add_column(col)

    def f(x: float | None, pct: bool = False) -> str:
        return "–" if x is None else (f"{x:.1%}" if pct else f"{x:.3f}")

    for s in scores:
        table.add_row(s.env, s.split, str(s.episodes), f(s.success_rate, True), f(s.mean_reward), f(s.mean_progress),
                      f(s.mean_turns), str(s.failures), str(s.truncated), str(s.policy_errors), str(s.env_errors),
                      str(s.infra_errors), str(s.unfinished))
    return table


def _fmt(x: float | None, pct: bool = False) -> str:
    return "–" if x is None else (f"{x:.1%}" if pct else f"{x:.3f}")


def _pass_cell(k: str) -> Any:
    return lambda s: _fmt(s.pass_at_k.get(k), True)


def comparison_table(runs: Sequence[RunScores], title: str = "eval") -> Table:
    """Runs side by side: one row per env/split/metric, one column per run."""
    table = Table(title=title)
    table.add_column("env")
    table.add_column("split")
    table.add_column("metric")
    for r in runs:
        table.add_column(f"{r.run}\n{r.model or r.policy}\n{modes_label(r.modes)}", justify="right")
    keys = sorted({(s.env, s.split) for r in runs for s in r.scores})
    index = [{(s.env, s.split): s for s in r.scores} for r in runs]
    ks = sorted({k for r in runs for s in r.scores for k in s.pass_at_k}, key=int)
    metrics: list[tuple[str, Any]] = [
        ("tasks", lambda s: str(s.tasks)),
        ("episodes (scored)", lambda s: str(s.episodes)),
        ("success rate", lambda s: _fmt(s.success_rate, True) + (
            f" [{s.success_ci95[0]:.0%}–{s.success_ci95[1]:.0%}]" if s.success_ci95 else "")),
        ("success rate excl. env errors", lambda s: _fmt(s.success_rate_excluding_env_errors, True)),
        ("mean reward", lambda s: _fmt(s.mean_reward)),
        ("mean progress", lambda s: _fmt(s.mean_progress)),
        ("mean turns", lambda s: _fmt(s.mean_turns)),
        *((f"pass@{k}", _pass_cell(k)) for k in ks),
        ("failure / truncated / policy error", lambda s: f"{s.failures} / {s.truncated} / {s.policy_errors}"),
        ("env errors (not solved)", lambda s: str(s.env_errors)),
        ("infra errors (excluded)", lambda s: str(s.infra_errors)),
        ("unfinished", lambda s: str(s.unfinished)),
    ]
    for env, split in keys:
        for i, (name, get) in enumerate(metrics):
            cells = [get(ix[(env, split)]) if (env, split) in ix else "–" for ix in index]
            table.add_row(env if i == 0 else "", split if i == 0 else "", name, *cells,
                          end_section=i == len(metrics) - 1)
    return table
