"""Dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright's Python package).

Against a hub (real uvicorn) over a seeded SQLite store: every page loads without console
errors or failed requests, charts render with data points, filters change the task table,
the trajectory viewer shows the stored turns and walks to the next episode of the task,
`<script>` in a trajectory stays text, the live view refreshes. Screenshots go to
`test-artifacts/dashboard/`. Skipped without /usr/bin/chromium or the playwright package.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from store.records import EpisodeRecord, TurnRecord
from store.repo import Store, worker_id
from services.dashboard import create_dashboard_router
from tests.support.dashboard_seed import RunSpec, seed_run, tasks_for
from services.hub.app import create_hub_app
from tests.support.server import running_server

CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
HAVE_PLAYWRIGHT = importlib.util.find_spec("playwright") is not None
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "dashboard"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
EVIL = "<script>window.__pwned = 1</script>"
EVIL_NAME = "<img src=x onerror=window.__pwned=2><b>bold</b>"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no chromium binary (apt-get install chromium)"),
    pytest.mark.skipif(not HAVE_PLAYWRIGHT, reason="the playwright package is not installed (pip install playwright)"),
]


def hub(db: Path) -> Any:
    url = f"sqlite:///{db}"
    return create_hub_app(url, "tok", health_checks=False, extra_routers=[create_dashboard_router(url)])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Store, dict[str, int]]]:
    db = tmp_path_factory.mktemp("dashb") / "store.db"
    store = Store(str(db))
    ids = {
        "a": seed_run(store, RunSpec("model-a-webshop", "webshop", "model-a", tasks_for("webshop", 80), samples=2,
                                     skill=0.6, seed=1, inject={"webshop-00002": EVIL})),
        "b": seed_run(store, RunSpec("model-b-webshop", "webshop", "model-b", tasks_for("webshop", 80), skill=0.3, seed=2)),
        "c": seed_run(store, RunSpec("model-a-household", "household", "model-a", tasks_for("household", 50), skill=0.5, seed=3)),
        "d": seed_run(store, RunSpec("model-b-household", "household", "model-b", tasks_for("household", 50), skill=0.2, seed=4)),
        "infra": seed_run(store, RunSpec("infra-only", "webshop", "model-b", tasks_for("webshop", 10), infra_only=True, seed=5)),
        "live": seed_run(store, RunSpec("live-run", "household", "model-c", tasks_for("household", 40), finish=10,
                                        claim_more=3, seed=6)),
        "evil": seed_run(store, RunSpec(EVIL_NAME, "webshop", "model-b", tasks_for("webshop", 3), seed=7)),
    }
    with running_server(hub(db)) as url:
        yield url, store, ids
    store.close()


class Watched:
    """A page whose console errors, uncaught exceptions and failed requests are recorded."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.problems.append(f"pageerror: {e}"))
        self.page.on("response", lambda r: self.problems.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None)
        self.page.on("requestfailed", lambda r: self.problems.append(f"request failed {r.url}"))

    def open(self, url: str) -> Any:
        self.page.goto(url)
        self.page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        return self.page

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser: Any) -> Iterator[Watched]:
    w = Watched(browser)
    yield w
    w.close()


def chart_points(page: Any, chart_id: str) -> dict[str, int]:
    """SVG drawn by plotly in the chart, and how many data points/lines it holds."""
    return page.evaluate("""(id) => {
        const div = document.getElementById(id);
        if (!div) return {svg: -1, points: 0, lines: 0, values: 0};
        const values = (div.data || []).reduce((n, t) => n + (t.y || t.r || []).filter((v) => v !== null).length, 0);
        return {svg: div.querySelectorAll("svg.main-svg").length,
                points: div.querySelectorAll(".point").length,
                lines: div.querySelectorAll("path.js-line").length, values: values};
    }""", chart_id)


def assert_chart(page: Any, chart_id: str) -> None:
    got = chart_points(page, chart_id)
    assert got["svg"] > 0, (chart_id, got)
    assert got["values"] > 0 and got["points"] + got["lines"] > 0, (chart_id, got)


def test_pages_load_and_charts_render(site: tuple[str, Store, dict[str, int]], tab: Watched) -> None:
    url, store, ids = site
    episode = next(e for e in store.episodes(ids["a"]) if e["turns"] and e["turns"] >= 3)
    pages = {
        "runs": ("/dashboard", ["chart-runs"]),
        "compare": ("/dashboard/compare", ["chart-success", "chart-reward", "chart-radar", "chart-progress"]),
        "run": (f"/dashboard/runs/{ids['a']}", ["chart-reward-hist", "chart-outcomes", "chart-turns"]),
        "episode": (f"/dashboard/episodes/{episode['id']}", ["chart-episode"]),
        "live": (f"/dashboard/runs/{ids['live']}/live", ["chart-live"]),
    }
    for name, (path, charts) in pages.items():
        page = tab.open(url + path)
        for chart in charts:
            assert_chart(page, chart)
        assert not page.locator("#error").is_visible(), page.locator("#error").text_content()
        tab.shot(name)
    assert tab.problems == []
    # a run name with markup is text in the table and in the chart's labels
    page = tab.open(url + "/dashboard")
    assert page.evaluate("window.__pwned === undefined")
    assert page.locator("#runs img, #chart-runs img, #chart-runs b").count() == 0
    assert page.locator("#runs").get_by_text(EVIL_NAME).count() == 1
    assert EVIL_NAME in page.locator("#chart-runs").text_content()
    # the radar has one closed trace per model; the grouped bars one trace per model
    page = tab.open(url + "/dashboard/compare")
    assert page.evaluate("document.getElementById('chart-radar').data.length") == 3
    assert page.evaluate("document.getElementById('chart-success').data.map(t => t.name)") == ["model-a", "model-b", "model-c"]
    page.select_option("#curve-env", "webshop")
    assert page.evaluate("document.getElementById('chart-progress').data.length") == 4  # 2 models x (progress, success)
    assert tab.problems == []


def test_empty_store_and_infra_only_run_render(tmp_path: Path, site: tuple[str, Store, dict[str, int]], tab: Watched) -> None:
    url, _, ids = site
    page = tab.open(f"{url}/dashboard/runs/{ids['infra']}")
    assert page.locator("#infra-errors").text_content() == "10"
    assert page.locator("#tasks tbody tr").count() == 10
    got = chart_points(page, "chart-outcomes")
    assert got["svg"] > 0 and got["values"] == 1
    assert chart_points(page, "chart-reward-hist")["svg"] > 0  # drawn, with a "no data" note
    assert "no data" in page.locator("#chart-reward-hist").text_content()
    tab.shot("run-infra-only")
    with running_server(hub(tmp_path / "empty.db")) as empty:
        for name, path in (("runs-empty", "/dashboard"), ("compare-empty", "/dashboard/compare")):
            page = tab.open(empty + path)
            assert page.locator("#empty").is_visible()
            tab.shot(name)
    assert tab.problems == []


def _rows(page: Any) -> list[str]:
    return page.locator("#tasks tbody tr td:first-child").all_text_contents()


def _wait_table(page: Any, *parts: str) -> None:
    """Wait until the table shows the answer to a query with all these `key=value` parts."""
    page.wait_for_function("(parts) => { const q = new URLSearchParams(document.body.dataset.tasksQuery || '');"
                           " return parts.every((p) => { const [k, v] = p.split('='); return q.get(k) === v; }); }",
                           arg=list(parts), timeout=15_000)


def test_filters_change_the_table(site: tuple[str, Store, dict[str, int]], tab: Watched) -> None:
    url, store, ids = site
    run = ids["a"]
    page = tab.open(f"{url}/dashboard/runs/{run}")
    all_rows = _rows(page)
    assert len(all_rows) == 50 and page.locator("#tasks-total").text_content() == "80"

    page.select_option("#task-filters select[name=outcome]", "truncated")
    _wait_table(page, "outcome=truncated")
    truncated = {e["task_id"] for e in store.episodes(run) if e["outcome"] == "truncated"}
    assert set(_rows(page)) == truncated and len(truncated) < 80
    assert page.locator("#tasks-total").text_content() == str(len(truncated))
    assert all("truncated" in c for c in page.locator("#tasks tbody tr td:last-child").all_text_contents())
    assert "outcome=truncated" in page.url

    page.select_option("#task-filters select[name=outcome]", "")
    page.fill("#task-filters input[name=q]", "0007")
    page.click("#task-filters button[type=submit]")
    _wait_table(page, "q=0007")
    assert _rows(page) == sorted(t for t in {e["task_id"] for e in store.episodes(run)} if "0007" in t)

    page.fill("#task-filters input[name=q]", "")
    page.select_option("#task-filters select[name=sort]", "mean_reward")
    page.select_option("#task-filters select[name=order]", "desc")
    _wait_table(page, "sort=mean_reward", "order=desc")
    rates = page.locator("#tasks tbody tr td:nth-child(6)").all_text_contents()
    assert [float(r) for r in rates] == sorted((float(r) for r in rates), reverse=True) and rates[0] == "1.000"

    page.click("#tasks-pager a.pager-next")
    _wait_table(page, "sort=mean_reward", "order=desc", "page=2")
    assert len(_rows(page)) == 30 and "page=2" in page.url
    tab.shot("run-filtered")
    page.reload()  # the URL carries the filters: the server renders the same table
    page.wait_for_selector("body[data-ready='1']")
    assert len(_rows(page)) == 30 and page.locator("#task-filters select[name=order]").input_value() == "desc"
    assert tab.problems == []


def test_trajectory_viewer(site: tuple[str, Store, dict[str, int]], tab: Watched) -> None:
    url, store, ids = site
    eps = [e for e in store.episodes(ids["a"]) if e["task_id"] == "webshop-00002"]
    page = tab.open(f"{url}/dashboard/episodes/{eps[0]['id']}")
    turns = store.turns(eps[0]["id"])
    actions = [t["action"] for t in turns if t["action"] is not None]
    assert page.locator(".step pre.action").all_text_contents() == actions
    observations = [t["observation"] for t in turns if t["role"] == "user" and t["observation"] is not None]
    assert page.locator(".step pre.observation").all_text_contents() == observations
    # the injected <script> is shown as text and never ran
    assert page.locator(".step pre.observation").first.text_content().startswith(EVIL)
    assert page.evaluate("window.__pwned === undefined")
    assert page.locator("#steps script").count() == 0
    tab.shot("episode-script-escaped")
    assert page.locator("#position").text_content().startswith("1 of ")
    page.click("#next")
    page.wait_for_url(f"**/dashboard/episodes/{eps[1]['id']}")
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator("#position").text_content().startswith("2 of ")
    second = [t["action"] for t in store.turns(eps[1]["id"]) if t["action"] is not None]
    assert page.locator(".step pre.action").all_text_contents() == second
    page.click("#prev")
    page.wait_for_url(f"**/dashboard/episodes/{eps[0]['id']}")
    assert tab.problems == []


def test_live_view_refreshes(site: tuple[str, Store, dict[str, int]], tab: Watched) -> None:
    url, store, ids = site
    run = ids["live"]
    page = tab.open(f"{url}/dashboard/runs/{run}/live?refresh=0.3")
    assert page.locator("#live-done").text_content() == "10"
    assert page.locator("#live-state").text_content() == "running"
    worker = worker_id()
    claimed = store.claim(run, worker, 5, lease_s=60)
    now = datetime.now(UTC)
    store.commit([EpisodeRecord(episode_id=c.id, outcome="failure", attempt=1, reward=0.0, success=False, turns=1,
                                started_at=now - timedelta(seconds=2), finished_at=now, duration_s=2.0,
                                messages=[TurnRecord(step=0, role="user", content="x")]) for c in claimed], worker)
    page.wait_for_function("() => document.getElementById('live-done').textContent === '15'", timeout=15_000)
    assert page.locator("#live-progress").get_attribute("value") == "15" or page.evaluate(
        "document.getElementById('live-progress').value") == 15
    assert page.locator("#live-recent tbody tr").first.locator("td").first.text_content() == str(max(c.id for c in claimed))
    assert_chart(page, "chart-live")
    assert page.evaluate("Number(document.body.dataset.refreshes)") >= 2
    tab.shot("live")
    assert tab.problems == []
