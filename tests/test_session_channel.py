"""The session channel (`WS /v1/channel`): v1 semantics over one multiplexed WebSocket, its limits,
and the collector using it (falling back to v1 where a service has none)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import httpx
import pytest
from fastapi import FastAPI

from clients.env_channel import ChannelEnvClient, ChannelUnsupported
from clients.env_client import AsyncEnvClient
from services.app import ServiceSettings, create_app
from tests.support.counter_env import CounterEnv, InlineCounterEnv
from tests.support.server import running_server
from wire.errors import EnvRequestError, EpisodeFinished, EnvServiceError, EnvUnavailable, InvalidAction, ServerFull, SessionNotFound

pytestmark = pytest.mark.asyncio


class BuggyEnv(CounterEnv):
    name = "buggy"

    def act(self, action):  # type: ignore[no-untyped-def]
        if action.name == "add" and action.arguments["amount"] == "7":
            raise ZeroDivisionError("seven is unlucky")
        return super().act(action)


def _ws(url: str) -> str:
    return "ws" + url[4:] + "/v1/channel"


async def test_episode_over_the_channel_is_a_v1_session(counter_url: str) -> None:
    async with ChannelEnvClient(counter_url) as channel, AsyncEnvClient(counter_url) as v1:
        created = await channel.create(task_id="counter-0")
        assert created.task_id == "counter-0" and "Reach" in created.instruction
        first = await channel.step(created.session_id, "add[3]")
        assert first.turn == 1 and first.observation == "Current value: 3." and not first.done
        # the same session seen through v1, and the expert through the channel
        state = await v1.state(created.session_id)
        assert state.turns == 1 and state.observation == "Current value: 3."
        assert (await channel.state(created.session_id)).turns == 1
        assert "add[1]" in (await channel.valid_actions(created.session_id) or [])
        target = int(created.instruction.split()[1].rstrip(","))
        while (action := await channel.expert_action(created.session_id)).startswith("add"):
            await channel.step(created.session_id, action)
        last = await channel.step(created.session_id, action)
        assert last.done and last.reward == 1.0 and action == f"finish[{target}]"
        with pytest.raises(EpisodeFinished):
            await channel.step(created.session_id, "add[1]")
        await channel.close(created.session_id)
        await channel.close(created.session_id)  # idempotent, as DELETE is
        with pytest.raises(SessionNotFound):
            await channel.step(created.session_id, "add[1]")
        assert channel.supported is True


async def test_errors_carry_the_v1_statuses() -> None:
    app = create_app(BuggyEnv, settings=ServiceSettings(max_sessions=2, max_sessions_per_client=2))
    with running_server(app) as url:
        async with ChannelEnvClient(url, retries=0) as channel:
            with pytest.raises(SessionNotFound):
                await channel.step("nope", "add[1]")
            a = await channel.create(task_id="counter-1")
            with pytest.raises(InvalidAction):
                await channel.step(a.session_id, {"name": "warp", "arguments": {}})
            with pytest.raises(EnvServiceError, match="ZeroDivisionError: seven is unlucky"):
                await channel.step(a.session_id, "add[7]")
            await channel.create(task_id="counter-2")
            with pytest.raises(ServerFull) as full:
                await channel.create(task_id="counter-3")
            assert full.value.retry_after is not None
            # the channel is still usable after every error
            assert (await channel.step(a.session_id, "add[1]")).observation == "Current value: 1."
        metrics = httpx.get(url + "/metrics").text
        assert 'trajgym_errors_total{env="buggy",status="500"} 1.0' in metrics
        assert 'trajgym_errors_total{env="buggy",status="404"} 1.0' in metrics


@pytest.mark.parametrize("env_cls", [CounterEnv, InlineCounterEnv])
async def test_many_sessions_multiplexed_are_each_serialised(env_cls: type[CounterEnv]) -> None:
    """200 episodes on one connection, each sending its steps one after another, and one session that
    sends 10 steps at once: every reply reaches its caller, and a session's turns never interleave."""
    with running_server(create_app(env_cls, settings=ServiceSettings(max_sessions=1000, max_sessions_per_client=1000))) as url:
        async with ChannelEnvClient(url) as channel:
            async def episode(k: int) -> list[str]:
                created = await channel.create(task_id=f"counter-{k % 30}")
                seen = []
                for _ in range(5):
                    seen.append((await channel.step(created.session_id, "add[1]")).observation)
                await channel.close(created.session_id)
                return seen

            results = await asyncio.gather(*(episode(k) for k in range(200)))
            assert all(seen == [f"Current value: {v}." for v in range(1, 6)] for seen in results)
            one = await channel.create(task_id="counter-4")
            burst = await asyncio.gather(*(channel.step(one.session_id, "add[1]") for _ in range(10)))
            assert sorted(r.turn for r in burst) == list(range(1, 11))
            assert sorted(r.observation for r in burst) == sorted(f"Current value: {v}." for v in range(1, 11))


async def test_hostile_frames_get_errors_and_the_channel_survives(counter_url: str) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(_ws(counter_url)) as ws:
        hello = json.loads((await ws.receive(timeout=10)).data)
        assert hello["max_frame_bytes"] == 1 << 20 and hello["max_frame_requests"] == 1024 and hello["in_flight_limit"] == 4096

        async def exchange(frame: str, replies: int = 1) -> list[dict]:
            """Send one frame; the replies to it (which may come in several frames)."""
            await ws.send_str(frame)
            got: list[dict] = []
            while len(got) < replies:
                got += json.loads((await ws.receive(timeout=10)).data)
            return got

        reply = (await exchange("not json"))[0]
        assert reply["id"] is None and reply["status"] == 400 and "not JSON" in reply["detail"]
        reply = (await exchange("{}"))[0]
        assert reply["id"] is None and reply["status"] == 400 and "array" in reply["detail"]
        replies = await exchange(json.dumps([{"id": 1, "op": "step"}, {"id": 2, "op": "warp", "session_id": "x"},
                                             {"op": "create"}, {"id": 3, "op": "create", "task_id": "counter-0"}]), replies=4)
        by_id = {r["id"]: r for r in replies}
        assert by_id[1]["status"] == 422 and "session_id" in by_id[1]["detail"]
        assert by_id[2]["status"] == 422
        assert by_id[None]["status"] == 422  # no id to answer with
        assert by_id[3]["status"] == 201 and by_id[3]["result"]["task_id"] == "counter-0"
        too_many = json.dumps([{"id": k, "op": "state", "session_id": "x"} for k in range(1025)])
        replies = await exchange(too_many, replies=1025)
        assert len(replies) == 1025 and {r["status"] for r in replies} == {413}
        await ws.send_bytes(b"\xff\xfe")
        assert json.loads((await ws.receive(timeout=10)).data)[0]["status"] == 400
        long_action = json.dumps([{"id": 9, "op": "step", "session_id": by_id[3]["result"]["session_id"], "action": "x" * 20_001}])
        assert (await exchange(long_action))[0]["status"] == 422
        ok = await exchange(json.dumps([{"id": 10, "op": "step", "session_id": by_id[3]["result"]["session_id"], "action": "add[2]"}]))
        assert ok[0]["status"] == 200 and ok[0]["result"]["observation"] == "Current value: 2."


async def test_oversized_frame_is_refused_without_closing_others() -> None:
    app = create_app(CounterEnv, settings=ServiceSettings(max_body_bytes=4096))
    with running_server(app) as url:
        async with aiohttp.ClientSession() as http, http.ws_connect(_ws(url)) as ws:
            assert json.loads((await ws.receive(timeout=10)).data)["max_frame_bytes"] == 4096
            await ws.send_str(json.dumps([{"id": 1, "op": "create", "task_id": "x" * 5000}]))
            reply = json.loads((await ws.receive(timeout=10)).data)[0]
            assert reply["status"] == 413 and reply["id"] is None
        async with ChannelEnvClient(url) as channel:
            created = await channel.create(task_id="counter-0")
            # the client knows the limit from the hello: a step too large is the 413 v1 would answer
            with pytest.raises(EnvRequestError) as refused:
                await channel.step(created.session_id, "add[" + "1" * 5000 + "]")
            assert refused.value.status == 413
            assert (await channel.step(created.session_id, "add[1]")).turn == 1


async def test_idle_channel_is_closed_and_the_client_reconnects() -> None:
    app = create_app(CounterEnv, settings=ServiceSettings(channel_idle_timeout=0.3))
    with running_server(app) as url:
        async with ChannelEnvClient(url) as channel:
            created = await channel.create(task_id="counter-0")
            first = channel._connection
            await asyncio.sleep(1.0)
            assert first is not None and first.closed  # the service closed it
            assert (await channel.step(created.session_id, "add[1]")).turn == 1  # a new connection, the same session
            assert channel._connection is not first


async def test_back_pressure_bounds_what_one_channel_has_in_flight() -> None:
    """With room for 4 requests in flight, 50 steps sent at once (one frame: the limit is checked
    between frames) and 50 more one by one all complete — the channel reads on as replies leave,
    nothing is dropped."""
    app = create_app(CounterEnv, settings=ServiceSettings(channel_in_flight=4, max_sessions=100, max_sessions_per_client=100))
    with running_server(app) as url:
        async with ChannelEnvClient(url) as channel:
            sessions = [await channel.create(task_id=f"counter-{k % 30}") for k in range(50)]
            results = await asyncio.gather(*(channel.step(s.session_id, "add[2]") for s in sessions))
            assert [r.observation for r in results] == ["Current value: 2."] * 50
            for s in sessions:
                assert (await channel.step(s.session_id, "add[1]")).observation == "Current value: 3."


async def test_a_lost_connection_fails_its_requests_as_unavailable() -> None:
    app = create_app(CounterEnv)
    with running_server(app) as url:
        channel = ChannelEnvClient(url, timeout=5)
        created = await channel.create(task_id="counter-0")
    # the server is gone: the open connection fails, and so does a new one
    with pytest.raises(EnvUnavailable):
        await channel.step(created.session_id, "add[1]")
    await channel.aclose()


async def test_a_service_without_the_channel_is_reported_unsupported() -> None:
    bare = FastAPI()

    @bare.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    with running_server(bare) as url:
        async with ChannelEnvClient(url) as channel:
            with pytest.raises(ChannelUnsupported):
                await channel.create(task_id="counter-0")
            assert channel.supported is False


class WordyEnv(CounterEnv):
    name = "wordy"
    step_policy = "inline"

    def act(self, action):  # type: ignore[no-untyped-def]
        result = super().act(action)
        result.observation += " " + "x" * 300_000
        return result


async def test_replies_are_split_into_frames_a_client_can_read() -> None:
    """Eight 300 KB observations answered together leave in several frames of about 1 MiB at most."""
    app = create_app(WordyEnv, settings=ServiceSettings())
    with running_server(app) as url:
        async with aiohttp.ClientSession() as http, http.ws_connect(_ws(url), max_msg_size=4 << 20) as ws:
            await ws.receive(timeout=10)  # hello
            await ws.send_str(json.dumps([{"id": k, "op": "create", "task_id": f"counter-{k}"} for k in range(8)]))
            created: list[dict] = []
            while len(created) < 8:
                created += json.loads((await ws.receive(timeout=10)).data)
            await ws.send_str(json.dumps([{"id": 100 + k, "op": "step", "session_id": c["result"]["session_id"], "action": "add[1]"}
                                          for k, c in enumerate(created)]))
            sizes, replies = [], []
            while len(replies) < 8:
                frame = (await ws.receive(timeout=10)).data
                sizes.append(len(frame))
                replies += json.loads(frame)
            assert len(sizes) >= 2 and max(sizes) < (1 << 20) + 310_000
            assert sorted(r["id"] for r in replies) == list(range(100, 108)) and {r["status"] for r in replies} == {200}


async def test_the_collector_steps_over_the_channel_and_falls_back_to_v1(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An expert run against a trajgym service goes over its channel (the service's channel metrics count
    every create, step and close); against a service without one (only v1 routes) the same run goes over v1."""
    from collector.collect import Collector
    from collector.config import JobConfig
    from store import Store

    def job(url: str, name: str) -> JobConfig:
        return JobConfig(run_name=name, env=url, policy="expert", split="test", store=str(tmp_path / "c.db"), concurrency=4)

    app = create_app(CounterEnv)
    with running_server(app) as url:
        summary = await Collector(job(url, "over-channel")).run()
        metrics = httpx.get(url + "/metrics").text
    episodes = Store(str(tmp_path / "c.db")).episodes(summary.run_id)
    assert len(episodes) == 10 and all(e["outcome"] == "success" for e in episodes)
    steps = sum(e["turns"] for e in episodes)
    requests = float(metrics.split('trajgym_channel_requests_total{env="counter"} ')[1].split()[0])
    assert requests >= steps + 2 * len(episodes)  # every step, create and close (+ the expert's actions)

    v1_only = create_app(CounterEnv)
    v1_only.router.routes = [r for r in v1_only.router.routes if getattr(r, "path", "") != "/v1/channel"]
    with running_server(v1_only) as url:
        summary = await Collector(job(url, "over-v1")).run()
        metrics = httpx.get(url + "/metrics").text
    episodes = Store(str(tmp_path / "c.db")).episodes(summary.run_id)
    assert len(episodes) == 10 and all(e["outcome"] == "success" for e in episodes)
    assert 'trajgym_channel_requests_total{env="counter"} 0.0' in metrics


class SleepyEnv(CounterEnv):
    """Steps in worker threads, each taking a while: later operations of the session must wait for them."""

    name = "sleepy"
    step_policy = "thread"

    def act(self, action):  # type: ignore[no-untyped-def]
        import time

        time.sleep(0.05)
        return super().act(action)


@pytest.mark.parametrize("env_cls", [CounterEnv, SleepyEnv])
async def test_a_sessions_operations_keep_the_order_they_were_sent_in(env_cls: type[CounterEnv]) -> None:
    with running_server(create_app(env_cls)) as url:
        async with aiohttp.ClientSession() as http, http.ws_connect(_ws(url)) as ws:
            await ws.receive(timeout=10)  # hello

            async def frame(requests: list[dict], replies: int) -> dict[int, dict]:
                await ws.send_str(json.dumps(requests))
                got: list[dict] = []
                while len(got) < replies:
                    got += json.loads((await ws.receive(timeout=10)).data)
                return {r["id"]: r for r in got}

            sid = (await frame([{"id": 0, "op": "create", "task_id": "counter-0"}], 1))[0]["result"]["session_id"]
            ops = [{"id": 1, "op": "step", "session_id": sid, "action": "add[2]"},
                   {"id": 2, "op": "state", "session_id": sid},
                   {"id": 3, "op": "step", "session_id": sid, "action": "add[3]"},
                   {"id": 4, "op": "actions", "session_id": sid},
                   {"id": 5, "op": "close", "session_id": sid},
                   {"id": 6, "op": "step", "session_id": sid, "action": "add[1]"},
                   {"id": 7, "op": "state", "session_id": sid}]
            r = await frame(ops, len(ops))
            assert r[1]["result"]["observation"] == "Current value: 2." and r[2]["result"]["turns"] == 1
            assert r[3]["result"]["observation"] == "Current value: 5." and "finish[5]" in r[4]["result"]["valid_actions"]
            assert r[5]["status"] == 200 and r[6]["status"] == 404 and r[7]["status"] == 404


async def test_a_client_that_leaves_with_replies_pending_leaves_the_service_serving() -> None:
    """Steps still running in threads when the client disconnects finish; their replies are dropped, and
    the service (its loop) goes on answering everyone else."""
    with running_server(create_app(SleepyEnv, settings=ServiceSettings(max_sessions=100, max_sessions_per_client=100))) as url:
        async with ChannelEnvClient(url) as first:
            sessions = [await first.create(task_id=f"counter-{k}") for k in range(8)]
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(_ws(url))
            await ws.receive(timeout=10)
            await ws.send_str(json.dumps([{"id": k, "op": "step", "session_id": s.session_id, "action": "add[1]"}
                                          for k, s in enumerate(sessions)]))
            await ws.close()  # gone before any reply
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/healthz", timeout=5)).status_code == 200
            state = (await http.get(f"/v1/sessions/{sessions[0].session_id}", timeout=5)).json()
            assert state["turns"] == 1  # the step ran; only its reply was lost
        async with ChannelEnvClient(url) as again:
            assert (await again.step(sessions[1].session_id, "add[1]")).turn == 2
