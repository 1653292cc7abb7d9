"""A trajgym deployment across the hosts of a `tests.support.netns.Network` (multi-host tests and bench).

    host A   PostgreSQL (`PgCluster`, the run's store and the hub's registry) and the hub
             (`trajgym hub --host A`)
    env      each runs a replica of the counter env that self-registers with the hub
    hosts    (`trajgym serve tests.support.counter_env:CounterEnv --host ADDR --register http://A:8700`)
    collector  each runs a model stub on its own loopback (`tests.support.stub_server`, a slow
    hosts      OpenAI-compatible server playing the counter env) and `trajgym collect` of one shared run
             (`--env counter --hub http://A:8700 --store postgresql+psycopg://...@A/... --resume`)

Every process runs the checkout's code (`sys.executable -m cli.main ...` from the repository root)
inside its host's namespace. The test process reads the hub, the replicas and the store through
`Network.call` (a thread inside a host's namespace).
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.netns import Network, Proc

REPO = Path(__file__).resolve().parents[2]
COUNTER = "tests.support.counter_env:CounterEnv"
HUB_PORT = 8700
ENV_PORT = 8000
STUB_PORT = 8100
TOKEN = "multihost-token"
TASKS = [f"counter-{i}" for i in range(30)]


def expected_steps(task_id: str) -> int:
    from tests.support.counter_env import CounterData

    target = int(CounterData().tasks[task_id].meta["target"])
    return math.ceil(target / 9) + 1


def replay_ok(turns: list[dict[str, Any]], task_id: str) -> str | None:
    """None when the stored turns are one whole counter episode, in order, each observation the result of
    the action before it from a fresh start (value 0) to the target; else what is wrong."""
    steps = expected_steps(task_id)
    if [t["idx"] for t in turns] != list(range(2 + 2 * steps)):
        return f"turn indexes {[t['idx'] for t in turns]} (expected {2 + 2 * steps} turns)"
    if [t["role"] for t in turns[:2]] != ["system", "user"] or "Current value: 0." not in (turns[1]["content"] or ""):
        return "does not start with the system prompt and the first observation at value 0"
    value, target = 0, int(re.search(r"Reach (\d+)", turns[1]["content"]).group(1))  # type: ignore[union-attr]
    for i in range(steps):
        act, obs = turns[2 + 2 * i], turns[3 + 2 * i]
        if act["role"] != "assistant" or obs["role"] != "user" or act["step"] != i + 1 or obs["step"] != i + 1:
            return f"step {i + 1}: roles/steps {act['role']}/{act['step']}, {obs['role']}/{obs['step']}"
        m = re.fullmatch(r"add\[(\d)\]|finish\[(\d+)\]", obs["action"] or "")
        if m is None:
            return f"step {i + 1}: action {obs['action']!r}"
        if m.group(1):
            value += int(m.group(1))
            if obs["observation"] != f"Current value: {value}." or obs["done"]:
                return f"step {i + 1}: {obs['action']} gave {obs['observation']!r}, expected value {value}"
        elif not (i == steps - 1 and int(m.group(2)) == target == value and obs["observation"] == "Correct!"
                  and obs["done"] and obs["reward"] == 1.0):
            return f"step {i + 1}: finish at value {value} of {target}: {obs['observation']!r}"
    return None


class Deployment:
    def __init__(self, net: Network, store_url: str, *, control: str = "A", env_hosts: Sequence[str] = ("B", "C"),
                 collector_hosts: Sequence[str] = ("D", "E"), model_delay: float = 0.25,
                 hub_flags: Sequence[str] = ("--health-interval", "0.5", "--health-timeout", "2", "--failures-before-down", "3"),
                 job: dict[str, Any] | None = None, tag: str = "") -> None:
        self.net = net
        self.tag = tag  # prefix of this deployment's log files (one deployment per test)
        self.store_url = store_url
        self.hub_store = store_url  # the hub's registry (and the dashboard's store): the run's database by default
        self.control = control
        self.env_hosts = list(env_hosts)
        self.collector_hosts = list(collector_hosts)
        self.model_delay = model_delay
        self.hub_flags = list(hub_flags)
        # operational knobs of the collectors (a job file): a lost replica is noticed after env_timeout,
        # a killed collector's claims are free again after lease_seconds
        self.job = {"env_timeout": 5.0, "lease_seconds": 8.0, "retry_backoff": 0.2, "max_attempts": 4,
                    "model_timeout": 60.0,
                    # the stub answers deterministically: identical samples are the point (task × sample bookkeeping)
                    "allow_identical_samples": True, **(job or {})}
        self.hub: Proc | None = None
        self.replicas: dict[str, Proc] = {}
        self.stubs: dict[str, Proc] = {}
        self.collectors: dict[str, Proc] = {}
        self._store: Any = None
        self._procs: list[Proc] = []

    # ----- addresses --------------------------------------------------------------------
    @property
    def hub_url(self) -> str:
        return f"http://{self.net.addr(self.control)}:{HUB_PORT}"

    def replica_url(self, host: str) -> str:
        return f"http://{self.net.addr(host)}:{ENV_PORT}"

    def hostname(self, host: str) -> str:
        return self.net.hosts[host].hostname

    # ----- processes --------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRAJGYM_") and k != "OPENAI_API_KEY"}
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _spawn(self, host: str, name: str, argv: Sequence[str]) -> Proc:
        name = f"{self.tag}-{name}" if self.tag else name
        proc = self.net.spawn(host, name, [sys.executable, *argv], cwd=REPO, env=self._env())
        self._procs.append(proc)
        return proc

    def start_hub(self) -> Proc:
        addr = self.net.addr(self.control)
        self.hub = self._spawn(self.control, f"hub-{len(self._procs)}", [
            "-m", "cli.main", "hub", "--host", addr, "--port", str(HUB_PORT), "--store", self.hub_store, "--token", TOKEN,
            *self.hub_flags])
        return self.hub

    def start_replica(self, host: str) -> Proc:
        proc = self._spawn(host, f"env-{host}", [
            "-m", "cli.main", "serve", COUNTER, "--host", self.net.addr(host), "--port", str(ENV_PORT),
            "--register", self.hub_url, "--hub-token", TOKEN])
        self.replicas[host] = proc
        return proc

    def start_stub(self, host: str) -> Proc:
        proc = self._spawn(host, f"stub-{host}", ["-m", "tests.support.stub_server", "--host", "127.0.0.1",
                                                  "--port", str(STUB_PORT), "--delay", str(self.model_delay)])
        self.stubs[host] = proc
        return proc

    def collect(self, host: str, run_name: str, *, samples: int, concurrency: int, policy: str = "model",
                limit: int | None = None) -> Proc:
        job_file = self.net.log_dir / f"job-{run_name}.yaml"
        job_file.write_text(yaml.safe_dump(self.job))
        argv = ["-m", "cli.main", "collect", "--job", str(job_file), "--env", "counter", "--hub", self.hub_url,
                "--policy", policy, "--split", "all", "--samples", str(samples), "--concurrency", str(concurrency),
                "--store", self.store_url, "--run-name", run_name, "--resume", "--quiet"]
        if policy == "model":
            argv += ["--model", f"http://127.0.0.1:{STUB_PORT}/v1"]
        if limit is not None:
            argv += ["--limit", str(limit)]
        proc = self._spawn(host, f"collect-{host}-{run_name}", argv)
        self.collectors[host] = proc
        return proc

    def start(self, *, stubs: bool = True, timeout: float = 180.0) -> None:
        """Hub, a replica per env host, a model stub per collector host; returns when the hub lists every replica up."""
        self.start_hub()
        self.wait_until(lambda: self.ready(self.control, self.hub_url), timeout, "the hub answers /readyz")
        for host in self.env_hosts:
            self.start_replica(host)
        if stubs:
            for host in self.collector_hosts:
                self.start_stub(host)
        self.wait_replicas_up(self.env_hosts, timeout)
        if stubs:
            for host in self.collector_hosts:
                self.wait_until(lambda h=host: self.ready(h, f"http://127.0.0.1:{STUB_PORT}", "/v1/models"), timeout,
                                f"the model stub on {host} answers")

    def stop(self) -> None:
        for proc in reversed(self._procs):
            if proc.alive():
                proc.kill()
        if self._store is not None:
            store, self._store = self._store, None
            self.net.call(self.control, store.close)

    def tails(self, lines: int = 25) -> str:
        return "\n".join(p.tail(lines) for p in self._procs)

    # ----- reads from inside the hosts --------------------------------------------------
    def get(self, host: str, url: str, timeout: float = 5.0) -> httpx.Response:
        return self.net.call(host, lambda: httpx.get(url, timeout=timeout), timeout=timeout + 30)

    def ready(self, host: str, base: str, path: str = "/readyz") -> bool:
        try:
            return self.get(host, base + path, timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def hub_env(self, name: str = "counter") -> dict[str, Any]:
        resp = self.get(self.control, f"{self.hub_url}/v1/envs/{name}")
        resp.raise_for_status()
        return resp.json()

    def replica_status(self) -> dict[str, dict[str, Any]]:
        """The hub's view: replica URL -> its record (status, failures, last_error, ...)."""
        try:
            env = self.hub_env()
        except httpx.HTTPError:
            return {}
        return {r["url"]: r for r in env["replicas"]}

    def wait_replicas_up(self, hosts: Sequence[str], timeout: float) -> None:
        urls = [self.replica_url(h) for h in hosts]
        self.wait_until(lambda: all(self.replica_status().get(u, {}).get("status") == "up" for u in urls), timeout,
                        f"the hub lists {urls} up")

    def metrics(self, host: str) -> dict[str, float]:
        """The replica's Prometheus counters and gauges (label-free names, summed over labels),
        read from inside its own host (reachable even while its link is down)."""
        from prometheus_client.parser import text_string_to_metric_families

        text = self.get(host, self.replica_url(host) + "/metrics").text
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
        return out

    def store(self, fn: Callable[[Any], Any]) -> Any:
        """`fn(store)` on a `store.Store` of the run's database, opened from the control host."""
        def call() -> Any:
            from store import Store

            if self._store is None:
                self._store = Store(self.store_url, migrate=False)
            return fn(self._store)

        return self.net.call(self.control, call)

    def run_id(self, run_name: str) -> int | None:
        def find(store: Any) -> int | None:
            from store import RunNotFound

            try:
                return int(store.get_run(run_name)["id"])
            except RunNotFound:
                return None
            except Exception:  # the schema is not there yet (the first collector is migrating)
                return None

        return self.store(find)

    def progress(self, run_name: str) -> dict[str, int]:
        run_id = self.run_id(run_name)
        return {} if run_id is None else self.store(lambda s: s.progress(run_id))

    def episodes(self, run_name: str) -> list[dict[str, Any]]:
        run_id = self.run_id(run_name)
        assert run_id is not None, f"no run {run_name}"
        return self.store(lambda s: s.episodes(run_id))

    def turns(self, episode_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        return self.store(lambda s: {eid: s.turns(eid) for eid in episode_ids})

    @staticmethod
    def done(progress: dict[str, int]) -> int:
        return sum(n for k, n in progress.items() if k not in ("pending", "claimed"))

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str, poll: float = 0.2) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            for name, proc in self.collectors.items():
                if not proc.alive() and proc.popen.returncode not in (0, None, -9):
                    raise AssertionError(f"collector on {name} exited with {proc.popen.returncode} while waiting for "
                                         f"{what}\n{self.tails()}")
            time.sleep(poll)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.tails()}")
