"""FireAct in miniature: does SmolLM2-135M-Instruct get better on an env after SFT on the env's expert trajectories?

1. the base model, served by the local vLLM CPU server (`trajgym model serve`), is scored on the env's test split;
2. the env's expert collects trajectories on the train split; they are exported (`--format hf`);
3. the same model is fine-tuned on them on CPU with TRL's SFTTrainer (`examples/trl_sft_export.py`, full
   fine-tuning, assistant-only loss) within a fixed time budget;
4. the fine-tuned folder is served by the same vLLM CPU server (under its own model name) and scored again with
   the same collection settings; the expert's own score on the test split is the ceiling;
5. both runs are read back from the dashboard's compare API (`/dashboard/api/compare`) of a hub on the store.

Every stage is a real `trajgym` command (printed, with its wall time); nothing else runs meanwhile, so the
model server is down while training. Not a CI test: about 15–17 minutes on two cores with `--minutes 12`
(bench/finetune_results.md has the runs).

Usage: python bench/bench_finetune.py [--env qa] [--minutes 12] [--epochs 5] [--out DIR]
Writes DIR/result.json (every command, time and score) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import free_port, wait_ready  # noqa: E402
from services.model.server import cache_root, model_dir  # noqa: E402

PY = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


class Bench:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.out.mkdir(parents=True, exist_ok=True)
        self.store = f"sqlite:///{out / 'runs.db'}"
        self.steps: list[dict[str, Any]] = []

    def run(self, label: str, argv: list[str], *, timeout: float) -> str:
        """A command to its end (stdout kept in DIR/<label>.log); its wall time is recorded."""
        shown = " ".join(shlex.quote(a) for a in argv).replace(PY, "python")
        print(f"+ {shown}", flush=True)
        t0 = time.monotonic()
        log = self.out / f"{label}.log"
        proc = subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
        log.write_text(f"$ {shown}\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
        seconds = time.monotonic() - t0
        self.steps.append({"stage": label, "command": shown, "seconds": round(seconds, 1), "rc": proc.returncode})
        print(f"  {label}: {seconds:.1f} s (rc {proc.returncode})", flush=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{label} failed ({proc.returncode}); see {log}")
        return proc.stdout

    def background(self, label: str, argv: list[str], ready_url: str, *, timeout: float) -> subprocess.Popen[bytes]:
        shown = " ".join(shlex.quote(a) for a in argv).replace(PY, "python")
        print(f"+ {shown} &", flush=True)
        t0 = time.monotonic()
        log = open(self.out / f"{label}.log", "wb")
        proc = subprocess.Popen(argv, cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_ready(ready_url, proc, timeout=timeout, interval=1.0)
        seconds = time.monotonic() - t0
        self.steps.append({"stage": label, "command": shown + " &", "seconds": round(seconds, 1), "rc": None})
        print(f"  {label} ready after {seconds:.1f} s", flush=True)
        return proc


def stop(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """SIGTERM the process group (the CLI stops its own children), SIGKILL after `timeout`."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def collect_args(bench: Bench, env_url: str, run: str, split: str, *, model_url: str | None, args: Any) -> list[str]:
    cmd = [PY, "-m", "cli.main", "collect", "--env", env_url, "--store", bench.store, "--run-name", run,
           "--split", split, "--concurrency", str(args.concurrency)]
    if model_url is None:
        return cmd + ["--policy", "expert", "--prompt-format", args.prompt_format]
    return cmd + ["--policy", "model", "--model", model_url, "--prompt-format", args.prompt_format,
                  "--temperature", "0", "--max-tokens", str(args.max_tokens), "--max-turns", str(args.max_turns),
                  "--stop", "\nObservation:"] + (["--limit", str(args.limit)] if args.limit else [])


def score(bench: Bench, runs: list[str]) -> list[dict[str, Any]]:
    text = bench.run("eval", [PY, "-m", "cli.main", "eval", *runs, "--store", bench.store, "--json",
                              "--allow-env-errors"], timeout=300)
    return json.loads(text)["runs"]


def served_model(bench: Bench, label: str, folder: Path, name: str, *, timeout: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = bench.background(label, [PY, "-m", "cli.main", "model", "serve", "--model", str(folder), "--served-name",
                                    name, "--port", str(port)], f"http://127.0.0.1:{port}/health", timeout=timeout)
    return proc, f"http://127.0.0.1:{port}/v1"


def dashboard_compare(bench: Bench, split: str) -> dict[str, Any]:
    port = free_port()
    hub = bench.background("hub", [PY, "-m", "cli.main", "hub", "--store", bench.store, "--port", str(port),
                                   "--token", "bench-finetune"],
                           f"http://127.0.0.1:{port}/dashboard/api/compare", timeout=120)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/dashboard/api/compare?split={split}", timeout=60) as r:
            return json.loads(r.read())
    finally:
        stop(hub)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="qa")
    parser.add_argument("--minutes", type=float, default=12.0, help="fine-tuning budget (optimizer steps stop after it)")
    parser.add_argument("--epochs", type=float, default=5.0)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--train-limit", type=int, default=None, help="first N expert trajectories of the train split")
    parser.add_argument("--prompt-format", default="react", choices=("react", "tools"))
    parser.add_argument("--limit", type=int, default=None, help="first N test tasks")
    parser.add_argument("--max-turns", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or cache_root() / "bench-finetune" / f"{args.env}-{time.strftime('%Y%m%d-%H%M%S')}"
    bench = Bench(out)
    base_name, sft_name = "smollm2-135m-instruct", f"smollm2-135m-sft-{args.env}"
    base_run, expert_run, sft_run, ceiling_run = (f"base-{args.env}", f"expert-{args.env}-train", f"sft-{args.env}",
                                                  f"expert-{args.env}-test")
    t_start = time.monotonic()
    env_port = free_port()
    env_url = f"http://127.0.0.1:{env_port}"
    env_proc = bench.background("serve-env", [PY, "-m", "cli.main", "serve", args.env, "--port", str(env_port)],
                                f"{env_url}/readyz", timeout=180)
    try:
        # expert trajectories on the train split, exported for TRL
        expert = collect_args(bench, env_url, expert_run, "train", model_url=None, args=args)
        bench.run("collect-expert", expert + (["--limit", str(args.train_limit)] if args.train_limit else []),
                  timeout=900)
        bench.run("collect-expert-test", collect_args(bench, env_url, ceiling_run, "test", model_url=None, args=args)
                  + (["--limit", str(args.limit)] if args.limit else []), timeout=900)
        data = out / "export"
        bench.run("export", [PY, "-m", "cli.main", "export", expert_run, "--store", bench.store, "--format", "hf",
                             "--out", str(data), "--success-only"], timeout=600)
        # the base model on the test split
        server, url = served_model(bench, "serve-base", model_dir(), base_name, timeout=900)
        try:
            bench.run("collect-base", collect_args(bench, env_url, base_run, "test", model_url=url, args=args),
                      timeout=3600)
        finally:
            stop(server)
        # fine-tuning on CPU within the budget (nothing else of ours running)
        tuned = out / "model"
        bench.run("finetune", [PY, str(ROOT / "examples" / "trl_sft_export.py"), "--data", str(data), "--model",
                               str(model_dir()), "--output-dir", str(tuned), "--epochs", str(args.epochs),
                               "--minutes", str(args.minutes), "--learning-rate", str(args.learning_rate),
                               "--batch-size", str(args.batch_size), "--max-length", str(args.max_length)],
                  timeout=args.minutes * 60 + 1800)
        train = json.loads((tuned / "train_log.json").read_text())
        # the fine-tuned weights, same server, same settings
        server, url = served_model(bench, "serve-sft", tuned, sft_name, timeout=900)
        try:
            bench.run("collect-sft", collect_args(bench, env_url, sft_run, "test", model_url=url, args=args),
                      timeout=3600)
        finally:
            stop(server)
    finally:
        stop(env_proc)
    scores = score(bench, [base_run, sft_run, ceiling_run])
    compare = dashboard_compare(bench, "test")
    shown = {s["model"]: s for s in compare["scores"] if s["env"] == args.env}
    assert base_name in shown and sft_name in shown, f"compare page misses a run: {sorted(shown)}"
    result = {"env": args.env, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "out": str(out), "total_seconds": round(time.monotonic() - t_start, 1), "steps": bench.steps,
              "train": {k: v for k, v in train.items() if k != "losses"},
              "loss_first_last": [train["losses"][0], train["losses"][-1]] if train["losses"] else None,
              "scores": scores, "dashboard_compare": list(shown.values())}
    (out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    print_table(result)


def print_table(result: dict[str, Any]) -> None:
    print("\n| run | model | split | episodes | success | mean reward | progress | avg turns | policy errors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run in result["scores"]:
        for s in run.get("scores", []):
            print(f"| {run['run']} | {run.get('model') or run.get('policy')} | {s['split']} | {s['episodes']} | "
                  f"{s['success_rate']:.1%} | {s['mean_reward']:.3f} | {s.get('mean_progress')} | "
                  f"{s['mean_turns']:.1f} | {s.get('policy_errors')} |")


if __name__ == "__main__":
    main()
