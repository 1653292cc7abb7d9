"""Several machines for real: the hub, env hosts and collectors on separate network hosts, one cut off mid-run.

Five hosts made with Linux network namespaces on one bridge (`tests.support.netns`): A runs a
PostgreSQL cluster bound to A's address (the run's store and the hub's registry) and the hub; B and C
each run a replica of the counter env that self-registers with the hub; D and E each run a model stub
(a slow OpenAI-compatible server on their loopback) and a `trajgym collect` of the same run against
the same PostgreSQL store. Each test injects one fault mid-run — B's link cut, collector E killed with
SIGKILL, the hub killed and restarted — and then checks that the run finished by itself with every
task × sample stored exactly once, each a complete trajectory replayed turn by turn (no episode scored
from a lost host's partial work), the lost host's episodes done again elsewhere, and the hub's view of
the hosts matching what happened. A fault lands mid-run by waiting for a state (episodes done, sessions
open on B, claims held by E), never for a time; no figure is asserted on durations.

Needs root, iproute2, util-linux and Debian's PostgreSQL server binaries; skipped, saying why, otherwise.
Marker `multihost` (`pytest -m multihost`).
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support import netns, pg_cluster
from tests.support.multihost import TASKS, Deployment, expected_steps, replay_ok
from tests.support.netns import HostsUnavailable, Network
from tests.support.pg_cluster import PgCluster

pytestmark = pytest.mark.multihost

HOSTS = ("A", "B", "C", "D", "E")
SAMPLES = 4
TOTAL = len(TASKS) * SAMPLES
CONCURRENCY = 3
RUN_TIMEOUT = 300.0  # generous upper bound on a 2-core machine shared with other jobs; never a figure


@pytest.fixture(scope="module")
def lan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Network, PgCluster]]:
    reason = netns.why_unavailable() or pg_cluster.why_unavailable()
    if reason:
        pytest.skip(f"multi-host tests: {reason}")
    net = Network("tgmh", HOSTS, log_dir=tmp_path_factory.mktemp("multihost"))
    pg = PgCluster(net, "A")
    try:
        try:
            net.create()
        except HostsUnavailable as err:
            pytest.skip(f"multi-host tests: {err}")
        pg.remove_leftovers()
        pg.start()
        yield net, pg
    finally:
        pg.stop()
        net.destroy()


@pytest.fixture
def deploy(lan: tuple[Network, PgCluster], request: pytest.FixtureRequest) -> Iterator[Deployment]:
    net, pg = lan
    database = "mh_" + re.sub(r"\W", "_", request.node.name)[:50].lower()
    d = Deployment(net, pg.create_database(database), tag=database)
    try:
        d.start()
        yield d
    finally:
        for host in HOSTS:
            net.restore(host)
        print(d.tails())  # shown by pytest when the test failed
        d.stop()


# ----- checks ---------------------------------------------------------------------------------------
def assert_exactly_once(d: Deployment, run: str, samples: int = SAMPLES) -> list[dict[str, Any]]:
    """Every task × sample stored once, done, successful, with one whole trajectory."""
    episodes = d.episodes(run)
    keys = sorted((e["task_id"], e["sample"]) for e in episodes)
    assert keys == sorted((t, s) for t in TASKS for s in range(samples)), "not every task × sample exactly once"
    bad = [(e["id"], e["status"], e["outcome"], e["reward"]) for e in episodes
           if (e["status"], e["outcome"], e["reward"], e["success"]) != ("done", "success", 1.0, True)]
    assert not bad, f"episodes not done with success: {bad[:10]}"
    turns = d.turns([e["id"] for e in episodes])
    wrong = {e["id"]: why for e in episodes if (why := replay_ok(turns[e["id"]], e["task_id"]))}
    assert not wrong, f"trajectories that are not one whole episode: {dict(list(wrong.items())[:5])}"
    for e in episodes:
        assert e["turns"] == expected_steps(e["task_id"]), e
    return episodes


def finish(d: Deployment, hosts: tuple[str, ...]) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT
    for host in hosts:
        proc = d.collectors[host]
        try:
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except Exception as err:
            raise AssertionError(f"collector on {host} did not finish: {err}\n{d.tails()}") from err
        assert code == 0, f"collector on {host} exited with {code}\n{proc.tail(40)}"


def sessions(d: Deployment, host: str) -> dict[str, float]:
    m = d.metrics(host)
    return {"created": m.get("trajgym_sessions_created_total", 0.0), "open": m.get("trajgym_sessions_open", 0.0),
            "steps": m.get("trajgym_steps_total", 0.0)}


def workers_by_host(d: Deployment, episodes: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in episodes:
        host = next((h for h in d.collector_hosts if (e["worker"] or "").startswith(d.hostname(h) + ":")), "?")
        out[host] = out.get(host, 0) + 1
    return out


# ----- faults -----------------------------------------------------------------------------------------
def test_env_host_link_cut_mid_run(deploy: Deployment) -> None:
    """B's link goes down with episodes in flight on it: they fail over the network (timeouts, no reset),
    are retried on C and the run finishes by itself; the hub marks B down."""
    d = deploy
    run = "link-cut"
    for host in d.collector_hosts:
        d.collect(host, run, samples=SAMPLES, concurrency=CONCURRENCY)
    b = d.replica_url("B")
    d.wait_until(lambda: d.done(d.progress(run)) >= 20 and sessions(d, "B")["open"] > 0, RUN_TIMEOUT,
                 "20 episodes done and sessions open on B")
    d.net.cut("B")
    at_cut = d.done(d.progress(run))
    finish(d, ("D", "E"))

    view = d.replica_status()
    assert view[b]["status"] == "down" and view[b]["failures"] >= 3, view[b]
    assert view[d.replica_url("C")]["status"] == "up", view
    episodes = assert_exactly_once(d, run)
    assert at_cut < TOTAL, "the link was cut after the run had finished"
    on_b, on_c = sessions(d, "B"), sessions(d, "C")
    # every session a replica opened was either one stored episode's whole attempt or abandoned partial work
    partial = on_b["created"] + on_c["created"] - TOTAL
    retried = sum(e["attempt"] - 1 for e in episodes)
    assert on_b["open"] >= 1 and partial >= 1, (on_b, on_c)  # B was cut with episodes in flight
    # each abandoned session's episode was tried again; B was unreachable from the cut to the end of the
    # run, so the tries that completed ran on C
    assert retried >= partial, (retried, partial)
    assert set(workers_by_host(d, episodes)) == {"D", "E"}
    print(f"FIGURES link-cut: episodes={TOTAL} done_at_cut={at_cut} partial_sessions={partial} retried={retried} "
          f"B_sessions={on_b} C_sessions={on_c} hub_B={view[b]['status']} failures={view[b]['failures']}")


def test_collector_host_killed_mid_run(deploy: Deployment) -> None:
    """Collector E is SIGKILLed holding claims when no episode is pending any more: D, out of work, waits
    for E's claims, takes them over once their leases run out and finishes the run alone; nothing E had
    half done is stored."""
    d = deploy
    run = "collector-kill"
    for host in d.collector_hosts:
        d.collect(host, run, samples=SAMPLES, concurrency=CONCURRENCY)
    e_worker = d.hostname("E") + ":"

    def e_busy() -> bool:
        run_id = d.run_id(run)
        if run_id is None:
            return False
        eps = d.store(lambda s: s.episodes(run_id))
        mine = [x for x in eps if (x["worker"] or "").startswith(e_worker)]
        # the hard case: nothing is pending any more, so D runs out of work while E's claims are still leased
        return (sum(x["status"] == "done" for x in mine) >= 8 and any(x["status"] == "claimed" for x in mine)
                and not any(x["status"] == "pending" for x in eps))

    d.wait_until(e_busy, RUN_TIMEOUT, "E has done 8 episodes and holds claims, none pending")
    created_before = sessions(d, "B")["created"] + sessions(d, "C")["created"]
    d.collectors["E"].signal(signal.SIGKILL)
    d.collectors["E"].wait(timeout=30)
    held = {x["id"] for x in d.episodes(run) if x["status"] == "claimed" and (x["worker"] or "").startswith(e_worker)}
    assert held
    finish(d, ("D",))

    episodes = assert_exactly_once(d, run)
    by_id = {x["id"]: x for x in episodes}
    taken_over = [by_id[i] for i in held]
    assert all(x["worker"].startswith(d.hostname("D") + ":") and x["claims"] >= 2 for x in taken_over), taken_over[:3]
    on_b, on_c = sessions(d, "B"), sessions(d, "C")
    partial = on_b["created"] + on_c["created"] - TOTAL
    assert partial >= 1, (on_b, on_c, created_before)  # E died inside episodes: their sessions were abandoned
    view = d.replica_status()
    assert all(view[d.replica_url(h)]["status"] == "up" for h in ("B", "C")), view
    print(f"FIGURES collector-kill: episodes={TOTAL} held_by_E_at_kill={len(held)} taken_over_by_D={len(taken_over)} "
          f"abandoned_sessions={partial} by_collector={workers_by_host(d, episodes)}")


def test_hub_killed_and_restarted_mid_run(deploy: Deployment) -> None:
    """The hub dies (SIGKILL) mid-run: the collectors go on with the replicas they know; the hub comes
    back on the same address and store, re-checks both replicas and the run finishes exactly once."""
    d = deploy
    run = "hub-restart"
    for host in d.collector_hosts:
        d.collect(host, run, samples=SAMPLES, concurrency=CONCURRENCY)
    d.wait_until(lambda: d.done(d.progress(run)) >= 20, RUN_TIMEOUT, "20 episodes done")
    assert d.hub is not None
    d.hub.kill()
    at_kill = d.done(d.progress(run))
    assert at_kill < TOTAL
    d.wait_until(lambda: d.done(d.progress(run)) >= min(at_kill + 20, TOTAL), RUN_TIMEOUT,
                 "20 more episodes done while the hub is down")
    during = d.done(d.progress(run)) - at_kill
    restarted = datetime.now(UTC)
    d.start_hub()
    d.wait_until(lambda: d.ready(d.control, d.hub_url), RUN_TIMEOUT, "the restarted hub answers /readyz")
    finish(d, ("D", "E"))

    episodes = assert_exactly_once(d, run)
    assert sum(x["outcome"] == "infra_error" for x in episodes) == 0

    def rechecked() -> bool:
        view = d.replica_status()
        return all(view.get(d.replica_url(h), {}).get("status") == "up"
                   and datetime.fromisoformat(view[d.replica_url(h)]["last_checked_at"]) > restarted for h in ("B", "C"))

    d.wait_until(rechecked, 60, "the restarted hub has checked B and C and lists them up")
    assert set(workers_by_host(d, episodes)) == {"D", "E"}
    print(f"FIGURES hub-restart: episodes={TOTAL} done_at_kill={at_kill} done_while_hub_down={during}")


def test_hub_restarted_with_an_empty_registry_gets_its_replicas_back(deploy: Deployment, lan: tuple[Network, PgCluster]) -> None:
    """The hub comes back with a registry that lost the replicas (a new store, as a hub on an ephemeral
    disk would): the run goes on with the replicas the collectors know, and the env services join the
    new hub again by themselves, so it lists B and C up and new collectors can resolve `counter`."""
    d = deploy
    _, pg = lan
    run = "hub-amnesia"
    for host in d.collector_hosts:
        d.collect(host, run, samples=2, concurrency=CONCURRENCY)
    d.wait_until(lambda: d.done(d.progress(run)) >= 10, RUN_TIMEOUT, "10 episodes done")
    assert d.hub is not None
    d.hub.kill()
    d.hub_store = pg.create_database("mh_empty_registry")
    d.start_hub()
    d.wait_until(lambda: d.ready(d.control, d.hub_url), RUN_TIMEOUT, "the restarted hub answers /readyz")
    finish(d, ("D", "E"))
    assert_exactly_once(d, run, samples=2)
    d.wait_until(lambda: all(d.replica_status().get(d.replica_url(h), {}).get("status") == "up" for h in ("B", "C")), 60,
                 "the env services registered again with the new hub")
