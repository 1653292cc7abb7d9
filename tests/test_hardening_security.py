"""Security review as tests: size limits, hub write auth, SQL sandbox escapes over HTTP,
a source scan for eval/exec/pickle/unsafe YAML/shell=True, and data-dir loaders refusing
paths outside their root (symlinks and `..`).

The dashboard's escaping of trajectory text (`<script>` renders as text) is tested by the
dashboard engineer in tests/test_dashboard_browser.py.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from envs.registry import load_class
from services.app import ServiceSettings, create_app
from services.hub.app import create_hub_app
from wire.env_api import MAX_ACTION_CHARS
from tests.support.server import running_server

REPO = Path(__file__).resolve().parents[1]
ENVS = ["webshop", "household", "sql", "qa"]
TOKEN = "security-token"
LIMIT = 1 << 20  # the default max_body_bytes of env services and the hub


@pytest.fixture(scope="module")
def env_urls() -> Iterator[dict[str, str]]:
    servers = {name: running_server(create_app(load_class(name), settings=ServiceSettings(max_sessions=500)))
               for name in ENVS}
    urls = {name: server.__enter__() for name, server in servers.items()}
    try:
        yield urls
    finally:
        for server in servers.values():
            server.__exit__(None, None, None)


@pytest.fixture(scope="module")
def hub_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("hub-sec") / "hub.db"
    with running_server(create_hub_app(f"sqlite:///{db}", TOKEN, health_checks=False)) as url:
        yield url


# ----- body and action size limits -----------------------------------------------------
def _all_services(env_urls: dict[str, str], hub_url: str) -> list[tuple[str, str]]:
    return [*((f"{name} /v1/sessions", env_urls[name] + "/v1/sessions") for name in ENVS),
            *((f"{name} /step (AgentGym)", env_urls[name] + "/step") for name in ENVS),
            ("hub /v1/envs", hub_url + "/v1/envs")]


def test_oversized_bodies_get_413_with_a_message(env_urls: dict[str, str], hub_url: str) -> None:
    big = json.dumps({"action": "x" * (LIMIT + 10)}).encode()
    headers = {"content-type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    for label, url in _all_services(env_urls, hub_url):
        r = httpx.post(url, content=big, headers=headers, timeout=30)
        assert r.status_code == 413, (label, r.status_code, r.text[:200])
        assert "larger than" in r.json()["detail"], label

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted while streaming
            for i in range(0, len(big), 65536):
                yield big[i : i + 65536]

        r = httpx.post(url, content=chunks(), headers=headers, timeout=30)
        assert r.status_code == 413, (label, "chunked", r.status_code)


def test_oversized_actions_get_422_with_a_message(env_urls: dict[str, str]) -> None:
    action = "search[" + "a" * MAX_ACTION_CHARS + "]"
    for name in ENVS:
        url = env_urls[name]
        sid = httpx.post(url + "/v1/sessions", json={"seed": 1}).json()["session_id"]
        r = httpx.post(f"{url}/v1/sessions/{sid}/step", json={"action": action})
        assert r.status_code == 422 and "longer than" in r.text, (name, r.status_code, r.text[:200])
        long_tool = {"name": "x", "arguments": {"a": "b" * (MAX_ACTION_CHARS + 1)}}
        tool = load_class(name).tools[0]
        long_tool = {"name": tool.name, "arguments": {p.name: "b" * (MAX_ACTION_CHARS + 1) for p in tool.params}}
        r = httpx.post(f"{url}/v1/sessions/{sid}/step", json={"action": long_tool})
        assert r.status_code == 422 and "longer than" in r.text, (name, "tool", r.status_code, r.text[:200])
        # The refused actions used no turn: the session is untouched.
        assert httpx.get(f"{url}/v1/sessions/{sid}").json()["turns"] == 0
        created = httpx.post(url + "/create", json={}).json()
        index = created if isinstance(created, int) else created["id"]
        r = httpx.post(url + "/step", json={"env_idx": index, "id": index, "action": action})
        assert r.status_code == 422, (name, "agentgym", r.status_code)


async def test_body_limit_replays_a_chunked_body_then_hands_over_to_the_client() -> None:
    """The chunked path buffers the body, gives it to the app, then defers to the real `receive`
    (e.g. for http.disconnect) instead of looping on itself."""
    from services.body_limit import BodyLimitMiddleware

    got: list[dict] = []
    sent: list[dict] = []

    async def app(scope: dict, receive: object, send: object) -> None:
        while True:
            message = await receive()  # type: ignore[operator]
            got.append(message)
            if not message.get("more_body"):
                break
        got.append(await receive())  # type: ignore[operator]
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]

    incoming = iter([{"type": "http.request", "body": b"ab", "more_body": True},
                     {"type": "http.request", "body": b"c", "more_body": False}, {"type": "http.disconnect"}])

    async def receive() -> dict:
        return next(incoming)

    async def send(message: dict) -> None:
        sent.append(message)

    await BodyLimitMiddleware(app, max_bytes=1024)({"type": "http", "headers": []}, receive, send)
    assert [m.get("body") for m in got[:2]] == [b"ab", b"c"] and got[2] == {"type": "http.disconnect"}
    assert sent[0]["status"] == 200
    incoming = iter([{"type": "http.request", "body": b"x" * 1000, "more_body": True},
                     {"type": "http.request", "body": b"x" * 1000, "more_body": False}])
    sent.clear()
    got.clear()
    await BodyLimitMiddleware(app, max_bytes=1024)({"type": "http", "headers": []}, receive, send)
    assert sent[0]["status"] == 413 and got == []


# ----- hub write auth --------------------------------------------------------------------
WRITE_ROUTES = [
    ("POST", "/v1/envs", {"urls": ["http://127.0.0.1:9"]}),
    ("DELETE", "/v1/envs/qa", None),
    ("POST", "/v1/envs/qa/replicas", {"url": "http://127.0.0.1:9"}),
    ("DELETE", "/v1/envs/qa/replicas/1", None),
    ("POST", "/v1/health/check", None),
]


@pytest.mark.parametrize("method,path,body", WRITE_ROUTES)
def test_hub_write_routes_need_the_token(hub_url: str, method: str, path: str, body: dict | None) -> None:
    for headers, status in (({}, 401), ({"Authorization": "Bearer wrong"}, 403), ({"Authorization": "Basic " + TOKEN}, 401),
                            ({"Authorization": "Bearer " + TOKEN[:-1]}, 403), ({"Authorization": "Bearer"}, 401)):
        r = httpx.request(method, hub_url + path, json=body, headers=headers)
        assert r.status_code == status, (method, path, headers, r.status_code)
        assert r.json()["detail"]
    r = httpx.request(method, hub_url + path, json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code not in (401, 403), (method, path, r.status_code)


def test_hub_reads_are_open_and_nothing_was_written(hub_url: str) -> None:
    r = httpx.get(hub_url + "/v1/envs")
    assert r.status_code == 200 and r.json()["envs"] == []


# ----- SQL sandbox over HTTP ---------------------------------------------------------------
def _sql(url: str, sid: str, statement: str) -> dict:
    r = httpx.post(f"{url}/v1/sessions/{sid}/step", json={"action": f"execute[{statement}]"}, timeout=30)
    assert r.status_code == 200, (statement, r.status_code, r.text[:300])
    return r.json()


def test_sql_sandbox_escape_attempts_over_http(env_urls: dict[str, str], tmp_path: Path) -> None:
    url = env_urls["sql"]
    sid = httpx.post(url + "/v1/sessions", json={"seed": 3}).json()["session_id"]
    victim = httpx.post(url + "/v1/sessions", json={"seed": 3}).json()["session_id"]
    target = tmp_path / "escape.db"
    secret = tmp_path / "secret.db"
    with sqlite3.connect(secret) as conn:
        conn.execute("CREATE TABLE s(x)")
        conn.execute("INSERT INTO s VALUES ('top secret')")
    attempts = {
        f"ATTACH DATABASE '{target}' AS evil": "not authorized",
        f"ATTACH DATABASE '{secret}' AS s2; SELECT * FROM s2.s": "not authorized",
        f"VACUUM INTO '{target}'": "",
        "SELECT load_extension('/usr/lib/x86_64-linux-gnu/libsqlite3.so.0')": "",
        "PRAGMA writable_schema = 1": "not authorized",
        f"PRAGMA temp_store_directory = '{tmp_path}'": "not authorized",
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r": "time limit",
        "SELECT zeroblob(2000000000)": "too big",
        "SELECT 1\x00; DROP TABLE x": "NUL",
    }
    for statement, expected in attempts.items():
        obs = _sql(url, sid, statement)["observation"]
        assert "error" in obs.lower() or "not authorized" in obs or "stopped" in obs, (statement, obs[:300])
        assert expected.lower() in obs.lower(), (statement, obs[:300])
        assert not target.exists(), statement
    assert "top secret" not in json.dumps(httpx.get(f"{url}/v1/sessions/{sid}").json())
    # Destroying one's own database does not reach another session's copy.
    tables = _sql(url, sid, "SELECT name FROM sqlite_master WHERE type = 'table'")["observation"]
    first = re.findall(r"\b\w+\b", tables.splitlines()[-1])[0] if tables.strip() else None
    names_before = _sql(url, victim, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")["observation"]
    if first:
        _sql(url, sid, f'DROP TABLE IF EXISTS "{first}"')
    _sql(url, sid, "DELETE FROM sqlite_master")  # refused by SQLite itself
    assert _sql(url, victim, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")["observation"] == names_before
    assert httpx.get(url + "/healthz").status_code == 200


# ----- no eval / exec / pickle / unsafe YAML / shell=True on input ---------------------------
SCANNED = ["envs", "wire", "clients", "store", "services", "collector", "conformance", "cli"]
DANGEROUS = {
    "eval(": re.compile(r"(?<![\w.])eval\s*\("),
    "exec(": re.compile(r"(?<![\w.])exec\s*\("),
    "pickle": re.compile(r"\b(c?pickle|dill|shelve|marshal)\s*\.\s*(load|loads|Unpickler|open)\b"),
    "yaml.load without SafeLoader": re.compile(r"\byaml\s*\.\s*(load|load_all)\s*\((?![^)]*Safe(Loader)?)"),
    "unsafe yaml": re.compile(r"\byaml\s*\.\s*(unsafe_load|full_load|unsafe_load_all|full_load_all)\b"),
    "shell=True": re.compile(r"shell\s*=\s*True"),
    "os.system/popen": re.compile(r"\bos\s*\.\s*(system|popen)\s*\("),
    "sqlite load_extension on": re.compile(r"enable_load_extension\s*\(\s*True"),
}
# (path relative to the repo, pattern name) -> why this occurrence is safe.
ALLOWLIST: dict[tuple[str, str], str] = {
    ("envs/sql/worker.py", "pickle"): "SQL worker replies are decoded by an Unpickler whose find_class refuses every "
                                      "class (plain data only), with a size cap; test_sql_limits checks it",
}


def scan(text: str) -> list[tuple[int, str]]:
    hits = []
    for number, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0]
        hits += [(number, name) for name, pattern in DANGEROUS.items() if pattern.search(code)]
    return hits


def test_the_scanner_finds_each_pattern() -> None:
    samples = ["eval(x)", "y = exec (code)", "pickle.loads(b)", "yaml.load(f)", "yaml.full_load(f)",
               "run(cmd, shell=True)", "os.system(c)", "conn.enable_load_extension(True)"]
    assert all(scan(s) for s in samples)
    assert not scan("cursor.execute(sql)\nyaml.load(f, Loader=yaml.SafeLoader)\nmodel.eval()\n# eval(x)\nliteral_eval(s)")


def test_no_eval_exec_pickle_or_shell_in_the_tree() -> None:
    files = [p for d in SCANNED for p in sorted((REPO / d).rglob("*.py"))]
    assert len(files) > 50
    found = []
    for path in files:
        rel = path.relative_to(REPO).as_posix()
        for number, name in scan(path.read_text(encoding="utf-8")):
            if (rel, name) not in ALLOWLIST:
                found.append(f"{rel}:{number}: {name}")
    assert not found, "dangerous calls (add to ALLOWLIST with a reason only if the input is trusted):\n" + "\n".join(found)


# ----- data-dir loaders refuse paths outside their root ---------------------------------------
def _outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    return out


def test_webshop_loader_refuses_symlinks_out(tmp_path: Path) -> None:
    out = _outside(tmp_path)
    (out / "items_shuffle.json").write_text("[]")
    (out / "items_ins_v2.json").write_text("{}")
    data = tmp_path / "data"
    data.mkdir()
    (data / "items_shuffle.json").symlink_to(out / "items_shuffle.json")
    (data / "items_ins_v2.json").symlink_to(out / "items_ins_v2.json")
    with pytest.raises(Exception, match="outside"):
        load_class("webshop").load(data)


def test_household_loader_refuses_dotdot_and_symlinks_out(tmp_path: Path) -> None:
    out = _outside(tmp_path)
    (out / "game").mkdir()
    (out / "game" / "game.tw-pddl").write_text("{}")
    data = tmp_path / "data"
    data.mkdir()
    (data / "games_index.json").write_text(json.dumps({"../outside/game": {"split": "train"}}))
    with pytest.raises(Exception, match="leaves the data root|outside"):
        load_class("household").load(data)
    (data / "json_2.1.1" / "train" / "task").mkdir(parents=True)
    (data / "json_2.1.1" / "train" / "task" / "trial").symlink_to(out / "game")
    (data / "games_index.json").write_text(json.dumps({"json_2.1.1/train/task/trial": {"split": "train"}}))
    with pytest.raises(Exception, match="outside"):
        load_class("household").load(data)


def test_sql_loader_refuses_dotdot_and_symlinks_out(tmp_path: Path) -> None:
    out = _outside(tmp_path)
    with sqlite3.connect(out / "db1.sqlite") as conn:
        conn.execute("CREATE TABLE t(x)")
    spider = tmp_path / "data" / "spider"
    (spider / "database").mkdir(parents=True)
    question = {"db": "db1", "query": "how many?", "gold": "SELECT count(*) FROM t"}
    (spider / "questions.json").write_text(json.dumps([question]))
    (spider / "database" / "db1.sqlite").symlink_to(out / "db1.sqlite")
    with pytest.raises(Exception, match="outside"):
        load_class("sql").load(tmp_path / "data")
    (spider / "database" / "db1.sqlite").unlink()
    (spider / "questions.json").write_text(json.dumps([{**question, "db": "../../outside/db1"}]))
    with pytest.raises(Exception, match="pattern|outside"):
        load_class("sql").load(tmp_path / "data")
    (spider / "questions.json").unlink()
    (out / "questions.json").write_text(json.dumps([question]))
    (spider / "questions.json").symlink_to(out / "questions.json")
    with pytest.raises(Exception, match="outside"):
        load_class("sql").load(tmp_path / "data")


def test_qa_loader_refuses_symlinks_out(tmp_path: Path) -> None:
    out = _outside(tmp_path)
    (out / "questions.json").write_text(json.dumps([{"question": "q?", "answer": "a"}]))
    (out / "corpus.jsonl").write_text(json.dumps({"title": "A", "sentences": ["A is a."]}) + "\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "questions.json").symlink_to(out / "questions.json")
    with pytest.raises(Exception, match="symlink|outside"):
        load_class("qa").load(data)
    (data / "questions.json").unlink()
    (data / "hotpotqa").symlink_to(out, target_is_directory=True)
    with pytest.raises(Exception, match="symlink|outside"):
        load_class("qa").load(data)
